"""Issue 9's bounds, timed: with 100,000 lineage rows, 10,000 checkpoints, 5,000 workers
and 50,000 exceptions (``tests/bounds_job.py``), how long each view takes to build (the
target: < 2 s) and how many bytes of state it sends (the bound, asserted by
tests/unit/test_view_bounds.py: ≤ 1 MB).

Not a test: it prints figures and never fails on a number. Run it with

    .venv/bin/python bench/bounds_bench.py [--repeat 3]

What is timed, for each view, in one process (imports and a first build of every view
on a small job done before any clock starts): the first build on the big job (its
datasets read for the first time by this process), then the median of ``--repeat`` more,
in wall time and in CPU time of the whole process (``time.process_time``: every thread,
so Lance's parallel reads can make it exceed the wall time; on a loaded machine it shows
the work done, which the wall time does not).
A view's bytes are those of every comm message it published (the JS bundles excluded),
plus the first page of each table it opened (for the timeline chart and the
recommendations panel: the JSON spec's and the HTML's characters). Baseline, same run:
the same views on the small job the big one is built from (a 10-s simulated job, the
same 5 stages).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

import comm  # noqa: E402
from bounds_job import CHECKPOINTS, SOURCE_SPLIT, bounds_job  # noqa: E402
from widget_jobs import archived_job  # noqa: E402

import solstice_inspect as si  # noqa: E402
from solstice_inspect.widgets.advice import recommendations_html  # noqa: E402

SENT: list[int] = []


def _publish(self, msg_type, data=None, metadata=None, buffers=None, **keys):
    size = len(json.dumps(data, default=str)) + sum(len(bytes(b)) for b in buffers or ())
    state = (data or {}).get("state") or {}
    SENT.append(size - sum(len(str(state.get(k, ""))) for k in ("_esm", "_css")))


comm.DummyComm.publish_msg = _publish  # count what the widgets would send to the page


def _pages(widget: Any) -> None:
    for name, meta in widget.tables.items():
        widget.answer(
            {"type": "page", "id": 1, "table": name, "offset": 0, "limit": meta["page_size"]}
        )


def views(job: si.Job, *, big: bool) -> dict[str, Callable[[], Any]]:
    """Each view, built as a user builds it; returns what it built (closed after)."""
    worker = "enrich_w3_bnd00003" if big else str(job.workers()["worker_id"].iloc[0])
    split = SOURCE_SPLIT if big else str(job.lineage()["split_id"].iloc[0])
    start = job.info["start_time"].timestamp()
    monitor: dict[str, Any] = {}

    def build_monitor() -> Any:
        m = si.job_monitor(job)
        _pages(m.tabs)
        monitor["m"] = m
        return None  # kept open for the deeper tabs below

    def deep(act: Callable[[Any], Any]) -> Callable[[], Any]:
        def run() -> Any:
            m = monitor["m"]
            act(m)
            _pages(m.tabs)
            assert not m.errors.value, m.errors.value

        return run

    def table(query: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            t = si.widgets.Table(query(), title="rows")
            _pages(t)
            return t

        return run

    a, b = ("chk_1", f"chk_{CHECKPOINTS - 1}") if big else _two_checkpoints(job)
    return {
        "job_monitor (+ first page of each tab)": build_monitor,
        "  Splits tab: query all": deep(lambda m: m.run_splits({})),
        "  Splits tab: one stage": deep(lambda m: m.run_splits({"stage": "enrich"})),
        "  Timeline tab": deep(lambda m: m.refresh_timeline()),
        "  worker row clicked": deep(lambda m: m.select_worker(worker)),
        "  stage clicked": deep(lambda m: m.select_stage("enrich")),
        "  time travel (t = start + 5 s)": deep(lambda m: m.travel_to(start + 5)),
        "  lineage opened from a split": deep(lambda m: m.open_lineage(split)),
        "lineage_view(source split, depth 2)": lambda: si.lineage_view(job, split),
        "worker_view": lambda: si.worker_view(job, worker),
        "Table(checkpoint_history())": table(job.checkpoint_history),
        "Table(checkpoint_diff(a, b))": table(lambda: job.checkpoint_diff(a, b)),
        "Table(exceptions(search=...))": table(lambda: job.exceptions(search="decode_7")),
        "Table(exception_groups())": table(job.exception_groups),
        "Table(splits())": table(job.splits),
        "Table(logs(search=...))": table(lambda: job.logs(search="explode_1")),
        "charts.timeline(job).to_json()": lambda: si.charts.timeline(job).to_json(),
        "recommendations_html(job.recommendations())": lambda: recommendations_html(
            job.recommendations()
        ),
    }


def _two_checkpoints(job: si.Job) -> tuple[str, str]:
    ids = list(dict.fromkeys(job.checkpoints()["checkpoint_id"].dropna()))
    return (ids[0], ids[-1]) if ids else ("none", "none")


def measure(job: si.Job, *, big: bool, repeat: int) -> dict[str, tuple[float, float, float, int]]:
    """{view: (first build s, median of the next ``repeat`` s, their median CPU s (every
    thread of the process), bytes sent)}."""
    out = {}
    for label, build in views(job, big=big).items():
        times, cpus, sizes = [], [], []
        for _ in range(repeat + 1):
            start = len(SENT)
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                made = build()
            except Exception as exc:  # a view that fails is reported, not fatal
                print(f"  {label}: {type(exc).__name__}: {exc}")
                break
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            # a widget's state is what it sent; a chart spec's or a panel's, its text
            sizes.append(sum(SENT[start:]) + (len(made) if isinstance(made, str) else 0))
            if hasattr(made, "close"):
                made.close()
        if times:
            rest = statistics.median(times[1:]) if len(times) > 1 else times[0]
            cpu = statistics.median(cpus[1:]) if len(cpus) > 1 else cpus[0]
            out[label] = (times[0], rest, cpu, max(sizes))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = si.connect(Path(tmp) / "store")
        t0 = time.perf_counter()
        job = bounds_job(store)
        print(f"big job written in {time.perf_counter() - t0:.1f} s")
        small = archived_job(store, "small", duration_s=10)
        measure(small, big=False, repeat=0)  # imports, first builds: not timed
        base = measure(small, big=False, repeat=args.repeat)
        big = measure(job, big=True, repeat=args.repeat)
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, nproc {os.cpu_count()}, "
        f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}"
    )
    print(
        f"{'view':46} {'first':>7} {'median':>7} {'cpu':>7} {'< 2 s':>6} {'state':>10} "
        f"{'small job':>10}"
    )
    for label, (first, med, cpu, size) in big.items():
        small_t = base.get(label, (None, None, None, 0))[1]
        met = "ok" if med < 2.0 else "OVER"
        ratio = f"{med / small_t:.1f}x" if small_t else "-"
        print(
            f"{label:46} {first:7.3f} {med:7.3f} {cpu:7.3f} {met:>6} {size / 1e6:8.3f}MB "
            f"{(small_t or 0):7.3f} s ({ratio})"
        )


if __name__ == "__main__":
    main()
