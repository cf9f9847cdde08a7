"""``si.worker_view``: one worker's lifecycle, metrics, resources, logs, stack and profile,
read from a real Lance store fed one crafted stream. Every expected figure is worked out
by hand next to the messages it comes from (or read back from the store with pandas)."""

from __future__ import annotations

import html
import json
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from widget_jobs import XSS, append_rows

import solstice_inspect as si
from solstice_inspect.errors import NotFound
from solstice_inspect.widgets.worker import LOG_CHARS, MAX_POINTS, WorkerView

T0 = 1_764_331_200.0  # 2025-11-28 12:00:00 UTC
JOB = "j1"
W, OTHER, GPU = "parse_w0_aaaaaa", "parse_w1_bbbbbb", "embed_w0_cccccc"


def env(mtype: str, source: str, t: float, payload: dict) -> dict:
    return si.envelope(mtype, JOB, source, T0 + t, payload)


def stream() -> list[dict]:
    out = [env("job_started", JOB, 0, {"dag_edges": {"parse": ["embed"]}})]
    out.append(env("worker_started", W, 1, {"stage_id": "parse", "node_id": "n1", "pid": 4242}))
    out.append(env("worker_started", OTHER, 1, {"stage_id": "parse", "node_id": "n2"}))
    out.append(env("worker_started", GPU, 1, {"stage_id": "embed", "node_id": "n3"}))
    for i in range(1, 6):  # W: 10 records in, 9 out per second
        counts = {"input_records": 10 * i, "output_records": 9 * i, "processed_count": i}
        out.append(env("worker_metrics", W, 1 + i, {"stage_id": "parse", **counts}))
        out.append(env("worker_metrics", OTHER, 1 + i, {"stage_id": "parse",
                       "input_records": 1000 * i, "output_records": 0}))  # fmt: skip
    out.append(env("worker_resources", W, 2, {"stage_id": "parse", "cpu_percent": 50.0,
                                              "memory_mb": 100.0}))  # fmt: skip
    out.append(env("worker_resources", W, 4, {"stage_id": "parse", "cpu_percent": 60.0,
                                              "memory_mb": 120.0}))  # fmt: skip
    out.append(env("worker_resources", GPU, 4, {"stage_id": "embed", "cpu_percent": 5.0,
               "memory_mb": 900.0, "gpu_utilization": 87.0, "gpu_memory_mb": 2048.0}))  # fmt: skip
    for i, (level, text) in enumerate([("INFO", "started parsing"),
                                       ("WARNING", "Retrying split 7"),
                                       ("ERROR", XSS),
                                       ("INFO", "retry of split 7 worked")]):  # fmt: skip
        out.append(env("log", W, 2 + i, {"stage_id": "parse", "level": level, "message": text}))
    out.append(env("log", OTHER, 3, {"stage_id": "parse", "level": "INFO",
                                     "message": "retry elsewhere"}))  # fmt: skip
    trace = f'File "p.py", line 3, in parse\n{XSS}'
    exc = {"stage_id": "parse", "exception_type": "ValueError", "message": "bad"}
    out.append(env("exception", W, 6.5, {**exc, "stacktrace": trace}))
    out.append(env("worker_stopped", W, 7, {"stage_id": "parse", "reason": "failed: bad",
                                            "processed_count": 5, "error_count": 1}))  # fmt: skip
    return out


@pytest.fixture
def job(store) -> si.Job:
    with store.record(JOB) as rec:
        rec.ingest(stream())
    return store.job(JOB)


def secs(*ts: float) -> list[float]:
    return [round(T0 + t, 3) for t in ts]


def series(points: dict, name: str) -> list[float]:
    i = points["names"].index(name)
    return [v for s, v in zip(points["s"], points["v"]) if s == i]


def test_the_view_holds_exactly_the_workers_figures(job):
    view = si.worker_view(job, W)
    p = view.panel
    s = p.summary
    assert (s["stage_id"], s["status"], s["node_id"], s["pid"]) == ("parse", "FAILED", "n1", 4242)
    assert (s["input_records"], s["output_records"], s["processed_count"]) == (50, 45, 5)
    assert (s["cpu_percent"], s["memory_mb"], s["gpu_utilization"]) == (60.0, 120.0, None)
    assert s["alive"] is False
    assert s["job_running"] is False
    assert s["first_seen"] == pytest.approx(T0 + 1)
    assert s["last_seen"] == pytest.approx(T0 + 7)

    assert [(e["event"], e["reason"], e["ts"]) for e in p.lifecycle] == [
        ("STARTED", None, round(T0 + 1, 3)),
        ("FAILED", "failed: bad", round(T0 + 7, 3)),  # the recorder reads "failed" reasons
    ]
    assert (p.lifecycle[1]["processed_count"], p.lifecycle[1]["error_count"]) == (5, 1)

    rec = p.points["records"]
    assert rec["names"] == ["in", "out"]
    assert series(rec, "in") == [10, 20, 30, 40, 50]
    assert series(rec, "out") == [9, 18, 27, 36, 45]
    assert sorted(set(rec["t"])) == secs(2, 3, 4, 5, 6)
    # the recorder's rates, read back with pandas: this worker's rows only
    stored = job.worker_metrics(where=f"worker_id = '{W}'")
    assert series(p.points["rates"], "in/s") == stored["input_rate"].dropna().round(3).tolist()
    assert set(series(p.points["rates"], "in/s")) <= {10.0, 0.0}
    assert p.points["cpu"]["names"] == ["CPU %"], "no GPU line for a worker without a GPU"
    assert series(p.points["cpu"], "CPU %") == [50.0, 60.0]
    assert series(p.points["memory"], "memory") == [100.0, 120.0]

    assert [(lv, m) for _, lv, m in p.logs] == [
        ("INFO", "started parsing"), ("WARNING", "Retrying split 7"), ("ERROR", XSS),
        ("INFO", "retry of split 7 worked"),
    ]  # fmt: skip
    assert p.log_total == 4
    assert [t for t, _, _ in p.logs] == secs(2, 3, 4, 5)
    view.close()


def test_gpu_columns_show_where_the_worker_reported_them(job):
    p = si.worker_view(job, GPU).panel
    assert p.points["cpu"]["names"] == ["CPU %", "GPU %"]
    assert series(p.points["cpu"], "GPU %") == [87.0]
    assert series(p.points["memory"], "GPU memory") == [2048.0]
    assert (p.summary["gpu_utilization"], p.summary["gpu_memory_mb"]) == (87.0, 2048.0)


def test_log_search_finds_this_workers_matching_lines_only(job):
    view = si.worker_view(job, W)
    answer = view.find("RETRY")
    # by hand: W's lines containing "retry" in any case; OTHER's "retry elsewhere" is not W's
    assert [m for _, _, m in answer["lines"]] == ["Retrying split 7", "retry of split 7 worked"]
    assert answer["total"] == 2
    assert view.panel.search == answer
    assert view.find("no such text")["lines"] == []
    view._on_msg(view.panel, {"type": "search", "query": ""}, [])  # what "clear" sends
    assert view.panel.search == {}


def test_hostile_strings_stay_escaped_in_the_static_fallback(job):
    view = si.worker_view(job, W)
    view._on_msg(view.panel, {"type": "stack"}, [])  # the button: answered from a thread
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not view.panel.stack:
        time.sleep(0.02)
    stack = view.panel.stack  # W is gone: its last exception's stack
    assert stack["source"].startswith("the last exception")
    assert XSS in stack["text"]
    page = view._repr_mimebundle_()["text/html"]
    assert "<img" not in page
    assert page.count(html.escape(XSS)) == 2, "the log line and the stack, as text"


def test_a_gone_worker_without_a_stored_stack_says_so(job):
    view = si.worker_view(job, OTHER)
    assert view.panel.summary["status"] == "ENDED WITH THE JOB"
    out = view.fetch_stack()
    assert out["text"] == ""
    assert "not running" in out["error"]
    assert "no incident" in out["error"]


def test_an_unknown_worker_names_the_closest_ids(job):
    with pytest.raises(NotFound, match=r"no worker 'parse_w0_aaaaab'.*closest.*parse_w0_aaaaaa"):
        si.worker_view(job, "parse_w0_aaaaab")
    with pytest.raises(TypeError, match=r"no keyword 'refrsh' \(did you mean 'refresh'\?\)"):
        si.worker_view(job, W, refrsh=2)
    with pytest.raises(TypeError, match=r"did you mean 'seconds'"):
        job.profile(W, second=2)


def test_profiling_a_finished_job_says_why_and_where_stored_profiles_are(job):
    from solstice_inspect.ray_tools import WorkerGone

    with pytest.raises(WorkerGone, match=r"COMPLETED: profiling needs a running worker.*profiles"):
        job.profile(W, seconds=1)
    with pytest.raises(ValueError, match=r"seconds must be in"):
        job.profile(W, seconds=0)


def test_a_stored_profile_draws_after_the_worker_is_gone(store):
    stacks = [["main (w.py:1);parse (p.py:9)", 30], ["main (w.py:1)", 10]]
    with store.record(JOB) as rec:
        rec.ingest(stream())
        rec.ingest(env("profile", "solstice_inspect.profiler", 6, {"worker_id": W,
                   "profile_id": "p1", "stacks": stacks}))  # fmt: skip
    job = store.job(JOB)
    prof = job.profiles(worker=W)
    assert prof[["stack", "samples"]].values.tolist() == stacks
    assert prof["share"].tolist() == [0.75, 0.25]
    assert prof["frames"][0] == ["main (w.py:1)", "parse (p.py:9)"]
    view = si.worker_view(job, W)
    assert view.panel.stored_profiles == [{"profile_id": "p1", "ts": T0 + 6, "samples": 40}]
    assert view.panel.profile == {}, "drawn when asked: the icicle needs Altair (slow import)"
    view._on_msg(view.panel, {"type": "show_profile", "profile_id": "p1"}, [])  # the button
    spec = view.panel.profile["spec"]
    rects = next(iter(spec["datasets"].values()))
    assert sorted((r["frame"], r["x0"], r["x1"]) for r in rects) == [
        ("main (w.py:1)", 0, 40),
        ("parse (p.py:9)", 0, 30),
    ]
    assert view.panel.profile["samples"] == 40
    view._on_msg(view.panel, {"type": "show_profile", "profile_id": "p2"}, [])
    assert "no profile &#x27;p2&#x27;" in view.errors.value
    assert "closest of the 1 known profiles: p1" in view.errors.value
    with pytest.raises(NotFound, match="closest"):
        job.profiles(worker="parse_w9_zzzzzz")


def test_the_view_follows_a_running_job(store):
    with store.record(JOB, flush_interval=0.05) as rec:
        rec.ingest(stream()[:4])  # started: no metrics, no log line yet
        rec.flush()
        job = store.job(JOB)
        view = WorkerView(job, W, refresh=0.1)
        assert view.live is not None
        assert view.panel.summary["alive"] is True
        rec.ingest(env("log", W, 3, {"stage_id": "parse", "message": "a new line"}))
        rec.ingest(env("log", OTHER, 3, {"stage_id": "parse", "message": "not mine"}))
        rec.ingest(env("worker_metrics", W, 3, {"stage_id": "parse", "input_records": 77}))
        rec.flush()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not view.panel.logs:
            time.sleep(0.05)
        assert [m for _, _, m in view.panel.logs] == ["a new line"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not view.panel.points["records"]["t"]:
            time.sleep(0.05)
        assert series(view.panel.points["records"], "in") == [77]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and view.panel.summary["job_running"]:
        time.sleep(0.05)
    assert view.panel.summary["status"] == "ENDED WITH THE JOB"
    assert view.errors.value == ""
    view.close()


def test_state_stays_under_1_mb_for_a_big_worker(store):
    with store.record(JOB) as rec:
        rec.ingest(stream())
    job = store.job(JOB)
    n_logs, n_metrics = 10_000, 100_000
    start_us = int((T0 + 10) * 1e6)
    append_rows(store, job, "logs", {
        "ts": pa.array(start_us + np.arange(n_logs) * 1000, pa.timestamp("us", tz="UTC")),
        "worker_id": [W] * n_logs, "stage_id": ["parse"] * n_logs, "level": ["INFO"] * n_logs,
        "message": [f"line {i} " + "x" * 290 for i in range(n_logs)],
    }, n_logs)  # fmt: skip
    append_rows(store, job, "worker_metrics", {
        "ts": pa.array(start_us + np.arange(n_metrics) * 10_000, pa.timestamp("us", tz="UTC")),
        "worker_id": [W] * n_metrics, "stage_id": ["parse"] * n_metrics,
        "input_records": np.arange(n_metrics) * 3, "output_records": np.arange(n_metrics) * 2,
        "input_rate": np.sin(np.arange(n_metrics)) + 5, "output_rate": np.ones(n_metrics),
    }, n_metrics)  # fmt: skip
    started = time.perf_counter()
    view = si.worker_view(job, W)
    built = time.perf_counter() - started
    state = view.panel.get_state()
    size = len(json.dumps({k: v for k, v in state.items() if k not in ("_esm", "_css")}))
    assert size <= 1_000_000, size
    assert view.panel.log_total == n_logs + 4
    logs = view.panel.logs
    # the newest lines, newest last, within the character budget
    assert logs[-1][2] == f"line {n_logs - 1} " + "x" * 290
    assert len(logs) == LOG_CHARS // len(logs[-1][2])
    for name in ("records", "rates"):
        pts = view.panel.points[name]
        assert max(pd.Series(pts["s"]).value_counts()) <= MAX_POINTS
    # the peaks of the rate (5 ± sin) survive the downsampling (min/max per bucket)
    rates = series(view.panel.points["rates"], "in/s")
    assert max(r for r in rates if r < 9) == pytest.approx(6.0, abs=1e-3)
    assert min(r for r in rates if r > 1) == pytest.approx(4.0, abs=1e-3)
    assert built < 10, built  # measured ~0.5 s: docs/benchmarks.md


def test_the_views_bundle_loads_nothing_from_the_internet():
    from solstice_inspect.widgets.views import bundle

    code = bundle("worker").read_text(encoding="utf-8")
    assert len(code) > 300_000, "vega, vega-lite and vega-embed are inside"
    assert "cdn.jsdelivr" not in code
    assert 'import("http' not in code
