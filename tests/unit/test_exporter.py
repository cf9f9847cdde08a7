"""The exporter's collector over a real store: families, labels, values, caching, errors."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import solstice_inspect as si
from solstice_inspect.analysis.snapshot import SNAPSHOT_COLUMNS, JobSnapshot
from solstice_inspect.cli import main
from solstice_inspect.errors import StoreError
from solstice_inspect.ops.exporter import FAMILIES, StoreCollector, attempt_samples
from solstice_inspect.schema import SCHEMAS
from solstice_inspect.store import layout
from solstice_inspect.store.dataset import DatasetWriter

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
    # no stage reported backpressure
    assert got["solstice_stage_backpressured_seconds_total"] == {
        stage(attempt, "read"): 0.0,
        stage(attempt, "write"): 0.0,
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


# ---------------------------------------------------------------------- the fast path
def windows(job: si.Job, batch: int, rows: list[tuple]) -> None:
    """Append crafted stage_metrics rows (one flush, ``batch``), as a recorder stores them:
    (seconds after T0, stage, workers, in, out, out rate, queue lag, bp active, bp ratio)."""
    names = ["ts", "stage_id", "workers_alive", "input_records", "output_records",
             "output_rate", "queue_lag", "backpressure_active", "backpressure_ratio"]  # fmt: skip
    cols = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    cols["ts"] = [int((WINDOWS_T0 + s) * 1e6) for s in cols["ts"]]
    n = len(rows)
    schema = SCHEMAS["stage_metrics"]
    more = {"job_id": [job.job_id] * n, "attempt_id": [job.attempt_id] * n, "batch": [batch] * n}
    arrays = [pa.array({**cols, **more}.get(f.name, [None] * n), f.type) for f in schema]
    uri = layout.table_uri(job.store.root, job.job_id, job.attempt_id, "stage_metrics")
    DatasetWriter(uri, schema, compact_every=0).append(pa.Table.from_arrays(arrays, schema=schema))


WINDOWS_T0 = time.time() - 120
#: three flushes of windows: late ones (older than their stage's latest), ties, rows out
#: of order within a flush, a stage only the windows name ("extra"), null and "" stages
FLUSHES = [
    [
        (10, "read", 2, 0, 100, None, 5, False, None),
        (30, "read", 2, 0, 300, 7.0, 1, False, 0.25),
        (20, "read", 2, 0, 200, 6.0, 3, True, 0.5),
        (10, "parse", 1, 100, 90, None, 0, True, None),
        (30, "write", 1, 300, 0, None, None, False, 0.0),
        (10, "write", 1, 100, 0, None, None, False, None),
        (20, "write", 1, 200, 0, None, 7, False, 0.0),
        (15, None, 9, 9, 9, 9.0, 9, True, 1.0),
    ],
    [
        (25, "read", 2, 0, 250, 8.0, 2, True, 1.0),  # late: read's latest is at 30
        (40, "read", 2, 0, 400, 5.0, 0, False, 0.5),
        (10, "parse", 1, 110, 95, None, 0, False, None),  # a tie: the later row wins
        (12, "extra", 3, 5, 5, 1.5, 4, False, 0.1),
        (15, "", 9, 9, 9, 9.0, 9, True, 1.0),
    ],
    [
        (40, "read", 3, 0, 420, 9.0, None, False, 0.75),  # a tie at the latest time
        (35, "read", 2, 0, 350, None, 0, False, 0.0),  # late again
        (16, "extra", 3, 8, 8, None, 2, True, 0.2),
    ],
]


def model_samples(job: si.Job, now: float) -> dict[tuple, float]:
    """The reference: the monitor's model (JobSnapshot) of every row, one read."""
    snap = JobSnapshot(job.job_id, job.attempt_id)
    snap.add({name: job.table(name) for name in SNAPSHOT_COLUMNS})
    snap.set_catalog(job.catalog_row())
    samples = attempt_samples(snap, exceptions={}, checkpoints=None, now=now)
    return {(name, labels): value for name, labels, value in samples}


def collector_samples(collector: StoreCollector) -> dict[tuple, float]:
    return {
        (name, labels): value
        for name, labels, value in collector.samples()
        if not name.startswith("solstice_exporter_")
    }


def test_the_fast_path_equals_the_model_with_late_and_out_of_order_windows(tmp_path):
    store = si.connect(tmp_path / "store")
    now = time.time()
    edges = {"read": ["parse"], "parse": ["write", "audit"]}  # audit never reports
    rec = store.record(JOB, flush_interval=3600)
    try:
        rec.ingest([si.envelope("job_started", JOB, JOB, WINDOWS_T0, {"dag_edges": edges})])
        rec.flush()
        job = store.job(JOB)
        follower = StoreCollector(store, clock=lambda: now)
        read = (JOB, job.attempt_id, "read")
        bp_s = ("solstice_stage_backpressured_seconds_total", read)
        exported: dict[tuple, float] = {}  # what the follower may export: never lower
        # by hand, read's seconds backpressured (Σ ratio·dt over dt > 0) after each flush:
        # 10 20 30 (ratios - .5 .25); + 25 (1, late) 40 (.5); + 35 (0, late) 40 (.75, tie)
        by_hand = [0.5 * 10 + 0.25 * 10, 0.5 * 10 + 1.0 * 5 + 0.25 * 5 + 0.5 * 10,
                   0.5 * 10 + 1.0 * 5 + 0.25 * 5 + 0.0 * 5 + 0.5 * 5]  # fmt: skip
        for i, rows in enumerate(FLUSHES):
            windows(job, 1000 + i, rows)
            model = model_samples(job, now)
            assert model[bp_s] == pytest.approx(by_hand[i], rel=1e-12), f"after flush {i}"
            # the fast path reading every row at once gives the model's values exactly
            assert collector_samples(StoreCollector(store, clock=lambda: now)) == model
            # incremental (only this flush's rows): the same, except that a counter the
            # late window at 35 lowers (30-35 counted at 40's ratio .5, now at its own 0)
            # keeps its highest value: Prometheus would read a drop as a reset
            exported = {
                k: max(v, exported.get(k, v)) if k[0].endswith("_total") else v
                for k, v in model.items()
            }
            got = collector_samples(follower)
            assert got == exported, f"after flush {i}"
        assert got[bp_s] == by_hand[1] > model[bp_s]
        # the ratio is the same sum over Σ dt (30 s)
        bp = by_hand[2] / 30
        assert got[("solstice_stage_backpressure_ratio", read)] == pytest.approx(bp, rel=1e-12)
        assert got[("solstice_stage_output_records_total", read)] == 420  # the later tie
        assert got[("solstice_stage_workers_alive", read)] == 3
        assert ("solstice_stage_queue_lag", read) not in got  # the latest window has none
        assert got[("solstice_stage_output_rate", read)] == 9.0  # the latest window's rate
        parse, extra = (JOB, job.attempt_id, "parse"), (JOB, job.attempt_id, "extra")
        assert got[("solstice_stage_backpressure_ratio", parse)] == 0.0  # no dt: last flag
        assert got[("solstice_stage_backpressured_seconds_total", parse)] == 0.0
        assert got[("solstice_stage_input_records_total", extra)] == 8
        audit = (JOB, job.attempt_id, "audit")
        assert got[("solstice_stage_workers_alive", audit)] == 0
        assert got[("solstice_stage_backpressured_seconds_total", audit)] == 0  # no window
        assert ("solstice_stage_output_rate", audit) not in got
        assert {labels[2] for name, labels in got if name.startswith("solstice_stage_")} == {
            "read", "parse", "write", "audit", "extra"}  # fmt: skip
    finally:
        rec.finish()
    # finished: the follower caches its last read, a new collector reads it whole
    done = model_samples(job, now)
    assert done[("solstice_job_status", (JOB, job.attempt_id, "COMPLETED"))] == 1
    # the mean rate over the run now: (420 - 100) records over 30 s
    assert done[("solstice_stage_output_rate", read)] == pytest.approx(320 / 30, rel=1e-12)
    assert collector_samples(follower) == {**done, bp_s: by_hand[1]}  # kept, never lower
    assert collector_samples(StoreCollector(store, clock=lambda: now)) == done
