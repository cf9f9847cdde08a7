"""The exporter's collector over a real store: families, labels, values, caching, errors."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import solstice_inspect as si
from solstice_inspect.cli import main
from solstice_inspect.errors import StoreError
from solstice_inspect.ops.exporter import FAMILIES, StoreCollector

JOB = "etl_unit"


def stream(t0: float, ticks: int) -> list[dict]:
    """read (1 worker) → write (1 worker); 10 records a tick; one exception in write."""
    env = si.envelope
    msgs = [
        env("job_started", JOB, JOB, t0, {"dag_edges": {"read": ["write"]}}),
        env("worker_started", JOB, "read_w0", t0, {"stage_id": "read"}),
        env("worker_started", JOB, "write_w0", t0, {"stage_id": "write"}),
    ]
    for k in range(1, ticks + 1):
        msgs += [
            env("worker_metrics", JOB, "read_w0", t0 + k,
                {"stage_id": "read", "input_records": 0, "output_records": 10 * k}),
            env("worker_metrics", JOB, "write_w0", t0 + k,
                {"stage_id": "write", "input_records": 10 * k, "output_records": 0}),
        ]  # fmt: skip
    msgs.append(env("exception", JOB, "write_w0", t0 + 1, {
        "stage_id": "write", "exception_type": "KeyError", "message": "'uri'"}))  # fmt: skip
    msgs.append(env("checkpoint", JOB, "read", t0 + 2, {
        "checkpoint_id": "c1", "status": "COMPLETED", "trigger_time": t0 + 1,
        "completion_time": t0 + 1.5, "state_size_bytes": 4096}))  # fmt: skip
    return msgs


def scrape(collector: StoreCollector) -> dict[str, dict[tuple, float]]:
    """What Prometheus would read: {family: {sorted label items: value}}."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def stage(attempt: str, sid: str, **more: str) -> tuple:
    return tuple(sorted({"job_id": JOB, "attempt_id": attempt, "stage_id": sid, **more}.items()))


@pytest.fixture
def finished(tmp_path):
    store = si.connect(tmp_path / "store")
    t0 = time.time() - 60
    with store.record(JOB) as rec:
        rec.ingest([*stream(t0, 4), si.envelope("job_completed", JOB, JOB, t0 + 4, {})])
    return store, store.job(JOB).attempt_id


def test_families_labels_and_values_of_a_finished_job(finished):
    store, attempt = finished
    got = scrape(StoreCollector(store))
    assert got["solstice_stage_input_records_total"] == {
        stage(attempt, "read"): 0,
        stage(attempt, "write"): 40,
    }
    assert got["solstice_stage_output_records_total"] == {
        stage(attempt, "read"): 40,
        stage(attempt, "write"): 0,
    }
    assert got["solstice_stage_exceptions_total"] == {
        stage(attempt, "read"): 0,
        stage(attempt, "write"): 1,
    }
    # workers started and never stopped: alive in the last window
    assert got["solstice_stage_workers_alive"] == {
        stage(attempt, "read"): 1,
        stage(attempt, "write"): 1,
    }
    # 40 records over the 4 s between the stage's first and last window
    assert got["solstice_stage_output_rate"][stage(attempt, "read")] == pytest.approx(10.0)
    assert got["solstice_checkpoint_duration_seconds"] == {stage(attempt, "read"): 0.5}
    assert got["solstice_checkpoint_size_bytes"] == {stage(attempt, "read"): 4096}
    assert got["solstice_checkpoints_total"] == {stage(attempt, "read", status="COMPLETED"): 1}
    job = (("attempt_id", attempt), ("job_id", JOB))
    assert got["solstice_job_duration_seconds"] == {job: 4.0}
    assert {dict(k)["status"]: v for k, v in got["solstice_job_status"].items()} == {
        "RUNNING": 0, "COMPLETED": 1, "FAILED": 0, "CANCELLED": 0, "LOST": 0}  # fmt: skip
    # every family the exporter sends is documented in docs/ops.md
    docs = (Path(__file__).parents[2] / "docs" / "ops.md").read_text()
    for name in FAMILIES:
        assert f"`{name}`" in docs, name


def test_worker_series_only_when_asked(finished):
    store, attempt = finished
    off = scrape(StoreCollector(store))
    assert not [n for n in off if n.startswith("solstice_worker_")]
    on = scrape(StoreCollector(store, workers=True))
    w = lambda sid, wid: stage(attempt, sid, worker_id=wid)  # noqa: E731
    assert on["solstice_worker_output_records_total"] == {
        w("read", "read_w0"): 40,
        w("write", "write_w0"): 0,
    }
    assert on["solstice_worker_input_records_total"][w("write", "write_w0")] == 40
    assert on["solstice_worker_alive"] == {w("read", "read_w0"): 1, w("write", "write_w0"): 1}


def test_a_finished_attempt_is_read_once_then_cached(finished):
    store, attempt = finished
    collector = StoreCollector(store)
    first = scrape(collector)
    assert first["solstice_exporter_attempts"][(("state", "cached"),)] == 1
    # its tables gone: a scrape that read them would change or fail; a cached one cannot
    shutil.rmtree(f"{store.root}/jobs/{JOB}/{attempt}/stage_metrics.lance")
    again = scrape(collector)
    assert (
        again["solstice_stage_input_records_total"] == first["solstice_stage_input_records_total"]
    )
    assert again["solstice_exporter_read_errors_total"][()] == 0


def test_a_running_job_is_followed_and_recent_window_applies(tmp_path):
    (tmp_path / "store").mkdir()  # an empty store folder: recorders have not written yet
    store = si.connect(tmp_path / "store")
    collector = StoreCollector(store)
    assert "solstice_job_status" not in scrape(collector)
    t0 = time.time()
    rec = store.record(JOB, flush_interval=0.05)
    try:
        msgs = stream(t0, 6)
        rec.ingest(msgs[:7])  # ticks 1-2
        rec.flush()
        early = scrape(collector)
        attempt = rec.attempt_id
        assert early["solstice_stage_output_records_total"][stage(attempt, "read")] == 20
        assert early["solstice_exporter_attempts"][(("state", "followed"),)] == 1
        rec.ingest(msgs[7:])
        rec.flush()
        later = scrape(collector)
        assert later["solstice_stage_output_records_total"][stage(attempt, "read")] == 60
        running = {dict(k)["status"]: v for k, v in later["solstice_job_status"].items()}
        assert running["RUNNING"] == 1
    finally:
        rec.finish()
    done = scrape(collector)
    assert {dict(k)["status"]: v for k, v in done["solstice_job_status"].items()}["COMPLETED"] == 1
    # an hour and a bit later, a finished attempt is no longer exported
    later_on = StoreCollector(store, recent=3600, clock=lambda: time.time() + 3700)
    assert "solstice_job_status" not in scrape(later_on)


def test_a_bad_store_path_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nope"
    with pytest.raises(StoreError, match=r"no store at .*nope.*--store"):
        StoreCollector(str(missing))
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a store folder"):
        StoreCollector(str(tmp_path / "file"))
    assert main(["exporter", "--store", str(missing), "--port", "0"]) == 2
    assert "no store at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["exporter", "--store", str(tmp_path), "--recent", "soon"])
    assert "is not a duration" in capsys.readouterr().err
