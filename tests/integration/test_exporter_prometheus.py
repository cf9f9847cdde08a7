"""A real Prometheus scrapes `solstice-inspect exporter` while a job records.

Debian's `prometheus` (installed by `make ops-deps`, which `make test` runs) runs on
127.0.0.1 with a scrape every second and its TSDB in tmp; the exporter runs as the CLI
does, in its own process, over a store that this test records into with a crafted
stream. Expected figures are worked out by hand from that stream.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import solstice_inspect as si

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
JOB, FAILED_JOB = "etl_prom", "etl_broken"
DT = 0.5  # seconds between ticks, message time and real time alike
N = 15  # ticks with counters (1..N)
BP_ON, BP_OFF = 3, 13  # parse is backpressured from tick 3 to tick 13 (cleared there)
PARSE_EXC_TICKS, WRITE_EXC_TICKS = (3, 5, 9), (7,)


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run `make ops-deps` (Debian's prometheus)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float = 30.0, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # not listening yet
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


# ---------------------------------------------------------------------- the stream
def tick_messages(k: int, t0: float) -> list[dict]:
    """Messages of tick ``k`` (message time t0 + k·DT)."""
    ts = t0 + k * DT
    env = si.envelope
    if k == 0:
        msgs = [
            env("job_started", JOB, JOB, ts, {
                "dag_edges": {"read": ["parse"], "parse": ["write"]},
                "stages": [{"stage_id": s, "operator_type": s.title(), "max_parallelism": 2}
                           for s in ("read", "parse", "write")]}),
        ]  # fmt: skip
        for w, s in (("read_w0", "read"), ("parse_w0", "parse"), ("parse_w1", "parse"),
                     ("write_w0", "write")):  # fmt: skip
            msgs.append(env("worker_started", JOB, w, ts, {"stage_id": s}))
        return msgs
    if k == N + 1:  # every worker stops, the job completes
        msgs = [
            env("worker_stopped", JOB, w, ts, {"stage_id": s, "reason": "done"})
            for w, s in (("read_w0", "read"), ("parse_w0", "parse"), ("parse_w1", "parse"),
                         ("write_w0", "write"))
        ]  # fmt: skip
        return [*msgs, env("job_completed", JOB, JOB, ts, {"status": "COMPLETED"})]
    msgs = [
        env("worker_metrics", JOB, "read_w0", ts,
            {"stage_id": "read", "input_records": 0, "output_records": 100 * k}),
        env("worker_metrics", JOB, "parse_w0", ts,
            {"stage_id": "parse", "input_records": 50 * k, "output_records": 40 * k}),
        env("worker_metrics", JOB, "parse_w1", ts,
            {"stage_id": "parse", "input_records": 50 * k, "output_records": 40 * k}),
        env("worker_metrics", JOB, "write_w0", ts,
            {"stage_id": "write", "input_records": 80 * k, "output_records": 0}),
        env("stage_metrics", JOB, "parse", ts,
            {"queue_lag": 10 * k, "backpressure_active": BP_ON <= k < BP_OFF}),
    ]  # fmt: skip
    for stage, ticks in (("parse", PARSE_EXC_TICKS), ("write", WRITE_EXC_TICKS)):
        if k in ticks:
            msgs.append(env("exception", JOB, f"{stage}_w0", ts, {
                "stage_id": stage, "exception_type": "ValueError", "message": f"bad row {k}",
                "stacktrace": f'File "{stage}.py", line {k}, in run'}))  # fmt: skip
    checkpoints = {
        4: ("c1", "read", "COMPLETED", 0.25, 1000),
        6: ("c1", "parse", "FAILED", None, None),
        10: ("c2", "read", "COMPLETED", 0.75, 2500),
    }
    if k in checkpoints:
        cid, stage, status, took, size = checkpoints[k]
        msgs.append(env("checkpoint", JOB, stage, ts, {
            "checkpoint_id": cid, "stage_id": stage, "status": status, "trigger_time": ts - 1,
            "completion_time": None if took is None else ts - 1 + took,
            "state_size_bytes": size}))  # fmt: skip
    return msgs


#: what the store must say when the job is over, worked out by hand from the stream
EXPECTED = {
    "solstice_stage_input_records_total": {"read": 0, "parse": 100 * N, "write": 80 * N},
    "solstice_stage_output_records_total": {"read": 100 * N, "parse": 80 * N, "write": 0},
    "solstice_stage_exceptions_total": {"read": 0, "parse": 3, "write": 1},
    "solstice_stage_workers_alive": {"read": 0, "parse": 0, "write": 0},
    "solstice_stage_queue_lag": {"parse": 10 * N},
    # backpressured BP_OFF - BP_ON ticks of the N + 1 ticks between its first and last window
    "solstice_stage_backpressure_ratio": {
        "read": 0.0, "parse": (BP_OFF - BP_ON) / (N + 1), "write": 0.0,
    },
    # its numerator: the BP_OFF - BP_ON ticks of DT seconds
    "solstice_stage_backpressured_seconds_total": {
        "read": 0.0, "parse": (BP_OFF - BP_ON) * DT, "write": 0.0,
    },
    # mean rate after the run: records over the (N + 1)·DT seconds of its windows
    "solstice_stage_output_rate": {
        "read": 100 * N / ((N + 1) * DT), "parse": 80 * N / ((N + 1) * DT), "write": 0.0,
    },
    "solstice_checkpoint_duration_seconds": {"read": 0.75},
    "solstice_checkpoint_size_bytes": {"read": 2500},
}  # fmt: skip


# ---------------------------------------------------------------------- fixtures
@pytest.fixture
def exporter(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    cmd = [sys.executable, "-m", "solstice_inspect.cli", "exporter", "--store", str(store),
           "--port", "0", "--recent", "30m"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    deadline, port, seen = time.monotonic() + 60, None, []
    while port is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert proc.poll() is None, f"the exporter exited: {''.join(seen)}"
            continue
        seen.append(line)
        m = re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics", line)
        port = int(m.group(1)) if m else None
    assert port is not None, f"the exporter did not say where it serves: {''.join(seen)}"
    yield si.connect(store), port
    proc.terminate()
    assert proc.wait(timeout=15) == 0, "the exporter did not stop cleanly on SIGTERM"


@pytest.fixture
def prometheus(tmp_path, exporter):
    binary = _need("prometheus")
    store, exporter_port = exporter
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {OPS / 'prometheus' / 'alerts.yml'}\n"
        "scrape_configs:\n  - job_name: solstice\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait("Prometheus ready", lambda: urllib.request.urlopen(f"{base}/-/ready").status == 200)
        yield store, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        finally:
            log.close()


def _api(base: str, path: str, **params: str) -> dict:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]


def query(base: str, promql: str) -> list[dict]:
    return _api(base, "query", query=promql)["result"]


def by_stage(result: list[dict]) -> dict[str, float]:
    return {r["metric"]["stage_id"]: float(r["value"][1]) for r in result}


# ---------------------------------------------------------------------- the test
@pytest.mark.timeout(180)
def test_prometheus_scrapes_the_store_while_a_job_records(prometheus):
    store, base = prometheus
    _wait("the exporter scraped up", lambda: query(base, 'up{job="solstice"} == 1'))
    t0 = time.time()
    with store.record(JOB, flush_interval=0.2, heartbeat_interval=1.0, window_s=DT) as rec:
        for k in range(N + 2):
            # real time keeps pace with message time: the job runs ~8 s, ~8 scrapes
            time.sleep(max(0.0, t0 + k * DT - time.time()))
            rec.ingest(tick_messages(k, t0))
    with store.record(FAILED_JOB, flush_interval=0.2) as rec:
        now = time.time()
        rec.ingest([
            si.envelope("job_started", FAILED_JOB, FAILED_JOB, now, {"dag_edges": {"a": ["b"]}}),
            si.envelope("job_failed", FAILED_JOB, FAILED_JOB, now + 1, {"status": "FAILED"}),
        ])  # fmt: skip

    sel = f'job_id="{JOB}"'
    _wait("COMPLETED in Prometheus",
          lambda: query(base, f'solstice_job_status{{{sel},status="COMPLETED"}} == 1'))  # fmt: skip

    # values through Prometheus equal the figures worked out from the stream
    for family, expected in EXPECTED.items():
        got = by_stage(query(base, f"{family}{{{sel}}}"))
        assert got.keys() == expected.keys(), family
        for stage, value in expected.items():
            assert got[stage] == pytest.approx(value, rel=1e-9, abs=1e-9), (family, stage)
    checkpoints = {
        (r["metric"]["stage_id"], r["metric"]["status"]): float(r["value"][1])
        for r in query(base, f"solstice_checkpoints_total{{{sel}}}")
    }
    assert checkpoints == {("read", "COMPLETED"): 2.0, ("parse", "FAILED"): 1.0}
    status = {r["metric"]["status"]: float(r["value"][1])
              for r in query(base, f"solstice_job_status{{{sel}}}")}  # fmt: skip
    assert status == {"RUNNING": 0, "COMPLETED": 1, "FAILED": 0, "CANCELLED": 0, "LOST": 0}
    duration = query(base, f"solstice_job_duration_seconds{{{sel}}}")
    assert float(duration[0]["value"][1]) == pytest.approx((N + 1) * DT, abs=0.05)
    assert query(base, 'solstice_job_status{job_id="etl_broken",status="FAILED"} == 1')
    # no worker series unless asked for
    assert not query(base, '{__name__=~"solstice_worker_.*"}')

    # Prometheus saw the job running, and the counters never went down between scrapes
    running = _api(base, "query", query=f'solstice_job_status{{{sel},status="RUNNING"}}[5m]')
    ones = [v for _, v in running["result"][0]["values"] if v == "1"]
    assert len(ones) >= 3, f"only {len(ones)} scrapes saw the job RUNNING"
    for family in ("solstice_stage_input_records_total", "solstice_stage_output_records_total",
                   "solstice_stage_exceptions_total",
                   "solstice_stage_backpressured_seconds_total"):  # fmt: skip
        for series in _api(base, "query", query=f"{family}{{{sel}}}[5m]")["result"]:
            values = [float(v) for _, v in series["values"]]
            assert values == sorted(values), (family, series["metric"]["stage_id"], values)
    parse_in = _api(
        base, "query", query=f'solstice_stage_input_records_total{{{sel},stage_id="parse"}}[5m]'
    )
    assert len({v for _, v in parse_in["result"][0]["values"]}) >= 3, "no growth seen mid-run"

    # every Grafana panel's query returns data from this server
    for name in ("overview", "job"):
        dashboard = json.loads((OPS / "grafana" / f"{name}.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$job_id", JOB).replace("$__rate_interval", "1m")
                assert query(base, expr), f"{name} / {panel['title']}: no data for {expr}"

    # the alert rules loaded into this server, and the failed job's alert fires
    groups = _api(base, "rules")["groups"]
    rules = {r["name"]: r["health"] for g in groups for r in g["rules"]}
    assert len(rules) == 7, rules
    assert set(rules.values()) == {"ok"}, rules
    firing = _wait("SolsticeJobFailed firing", lambda: [
        a for a in _api(base, "alerts")["alerts"]
        if a["labels"]["alertname"] == "SolsticeJobFailed" and a["state"] == "firing"])  # fmt: skip
    assert {a["labels"]["job_id"] for a in firing} == {FAILED_JOB}


def test_promtool_checks_and_unit_tests_the_alert_rules():
    promtool = _need("promtool")
    rules = OPS / "prometheus"
    check = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"], cwd=rules, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"], cwd=rules, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
