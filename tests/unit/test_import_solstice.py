"""``import-solstice``: an archive written with slatedb in the old web UI's layout
(``<base>/<job_id>/<attempt_id>/db``, the keys its JobStorage wrote) becomes an attempt
whose figures are the archive's."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json

import pandas as pd
import pytest

import solstice_inspect as si
from solstice_inspect.cli import main

slatedb = pytest.importorskip("slatedb.uniffi")

T0 = 1_735_732_800.0  # 2025-01-01 12:00:00 UTC
JOB, ATTEMPT = "etl_old", "20250101_120000_abc1"


def write_archive(base, job_id, attempt_id, items):
    """The old JobStorage's layout: one SlateDB per attempt at <base>/<job>/<attempt>/db."""
    path = base / job_id / attempt_id / "db"
    path.parent.mkdir(parents=True, exist_ok=True)

    async def put():
        db = await slatedb.DbBuilder(str(path), slatedb.ObjectStore.resolve("file:///")).build()
        for key, value in items.items():
            raw = value if isinstance(value, bytes) else json.dumps(value).encode()
            await db.put(key.encode(), raw)
        await db.flush()
        await db.shutdown()

    # in a thread of its own: a session that drove a browser (Playwright's sync API) has an
    # event loop running in the main thread, where asyncio.run() refuses to start
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, put()).result()
    return path


def stage(sid, op, n_in, n_out, workers):
    return {
        "stage_id": sid,
        "operator_type": op,
        "min_parallelism": 1,
        "max_parallelism": 4,
        "final_worker_count": workers,
        "is_finished": True,
        "failed": False,
        "failure_message": None,
        "final_metrics": {
            "stage_id": sid,
            "worker_count": workers,
            "input_records": n_in,
            "output_records": n_out,
            "queue_lag": 0,
            "backpressure_active": False,
        },
    }


ARCHIVE = {
    "config": {"job_config": {"job_id": JOB, "queue_type": "tansu"}, "environment": {"A": "1"}},
    "job": {
        "job_id": JOB,
        "status": "COMPLETED",
        "start_time": T0,
        "end_time": T0 + 60,
        "duration_ms": 60_000,
        "config": {"queue_type": "tansu", "tansu_storage_url": "memory://"},
        "stages": [
            stage("source", "LanceSource", 0, 1000, 1),
            stage("parse", "JsonParse", 1000, 990, 2),
            stage("sink", "LanceSink", 990, 0, 1),
        ],
        "dag_edges": {"source": ["parse"], "parse": ["sink"]},
        "final_metrics": {"stages": {}},
        "total_input_records": 1990,
        "total_output_records": 1990,
        "error": None,
    },
    f"metrics:parse:{int(T0 + 30)}": {
        "stage_id": "parse",
        "worker_count": 2,
        "input_records": 500,
        "output_records": 495,
        "queue_lag": 12,
        "backpressure_active": False,
        "timestamp": T0 + 30.25,
    },
    "exception:5f1d": {
        "exception_id": "5f1d",
        "timestamp": T0 + 10,
        "exception_type": "ValueError",
        "message": "bad <row> 17",
        "stacktrace": "Traceback (most recent call last):\nValueError: bad <row> 17",
        "job_id": JOB,
        "stage_id": "parse",
        "worker_id": "parse_w0",
        "split_id": "parse_split_0",
        "occurrence_count": 3,
        "first_seen": T0 + 10,
        "last_seen": T0 + 40,
    },
    "lineage:source_split_0": {
        "split_id": "source_split_0",
        "stage_id": "source",
        "parent_ids": [],
        "worker_id": "source_w0",
        "processing_time": 0.5,
        "input_records": 0,
        "output_records": 100,
        "timestamp": T0 + 2,
        "data_range": {"start": 0, "end": 100},
    },
    "lineage:parse_split_0": {
        "split_id": "parse_split_0",
        "stage_id": "parse",
        "parent_ids": ["source_split_0"],
        "worker_id": "parse_w0",
        "processing_time": 1.5,
        "input_records": 100,
        "output_records": 99,
        "timestamp": T0 + 3,
        "data_range": None,
    },
    # the old storage's indexes of the lineage keys: derived, not imported
    "lineage_by_stage:parse:parse_split_0": b"parse_split_0",
    "lineage_by_parent:source_split_0:parse_split_0": b"parse_split_0",
    "worker:parse_w0": {
        "worker_id": "parse_w0",
        "stage_id": "parse",
        "status": "COMPLETED",
        "processed_count": 10,
        "assigned_partitions": ["0", "1"],
        "input_records": 1000,
        "output_records": 990,
        "processing_time": 12.5,
        "start_time": T0 + 1,
        "end_time": T0 + 59,
        "processed_splits": [],
    },
    f"worker_event:parse_w0:{int((T0 + 1) * 1000)}": {"event_type": "STARTED", "stage_id": "parse"},
    "ray_event:e1": {
        "eventId": "e1",
        "eventType": "ACTOR_LIFECYCLE_EVENT",
        "timestamp": "2025-01-01T12:00:05Z",
        "severity": "INFO",
        "message": "actor parse_w0 <alive>",
    },
    "exception:broken": b"{not json",
    "mystery:1": {"x": 1},
}


def at(seconds):
    return pd.Timestamp(round((T0 + seconds) * 1e6), unit="us", tz="UTC")


@pytest.fixture
def archive(tmp_path):
    base = tmp_path / "solstice-webui"
    write_archive(base, JOB, ATTEMPT, ARCHIVE)
    return base


def test_an_archive_becomes_an_attempt_with_the_archives_figures(tmp_path, archive):
    store = si.connect(tmp_path / "store")
    result = si.import_solstice(archive, store=store)
    row = result.iloc[0]
    assert (row["job_id"], row["attempt_id"], row["status"]) == (JOB, ATTEMPT, "COMPLETED")
    assert row["rejected"] == 0
    assert row["skipped"] == {"invalid_json": 1, "unknown_key:mystery": 1}

    job = store.job(JOB)
    assert job.attempt_id == ATTEMPT
    assert job.status == "COMPLETED"
    assert job.info["start_time"] == at(0)
    assert job.info["end_time"] == at(60)
    assert job.info["config"]["queue_type"] == "tansu"
    assert job.info["config"]["environment"] == {"A": "1"}
    summary = job.stage_summary().set_index("stage_id")
    assert list(summary.index) == ["source", "parse", "sink"]  # the archive's DAG order
    truth = {"source": (0, 1000), "parse": (1000, 990), "sink": (990, 0)}
    for sid, (n_in, n_out) in truth.items():
        assert (summary.loc[sid, "input_records"], summary.loc[sid, "output_records"]) == (
            n_in,
            n_out,
        ), sid
    # the 30-second snapshot is a point of the stage's history at its own time
    sm = job.stage_metrics()
    mid = sm[(sm["stage_id"] == "parse") & (sm["ts"] == at(30.25))]
    assert mid[["input_records", "output_records", "queue_lag"]].values.tolist() == [[500, 495, 12]]
    # an exception group with a count of 3: its first time, then its last time twice
    exc = job.exceptions().sort_values("ts")
    assert list(exc["ts"]) == [at(10), at(40), at(40)]
    assert set(exc["message"]) == {"bad <row> 17"}
    assert set(exc["split_id"]) == {"parse_split_0"}
    # lineage: the parse split's parent is the source split
    lin = job.lineage().set_index("split_id")
    assert list(lin.loc["parse_split_0", "parent_split_ids"]) == ["source_split_0"]
    assert lin.loc["parse_split_0", "worker_id"] == "parse_w0"
    assert lin.loc["parse_split_0", "output_records"] == 99
    # the worker's life and its final counters
    workers = job.workers().sort_values("ts")
    assert workers[["event", "ts"]].values.tolist() == [["STARTED", at(1)], ["STOPPED", at(59)]]
    wm = job.worker_metrics().iloc[-1]
    assert (wm["input_records"], wm["output_records"], wm["processing_time"]) == (1000, 990, 12.5)
    # the worker event and the Ray event, at their own times
    events = job.events().set_index("event_type")
    assert events.loc["worker_started", "ts"] == at(1)
    assert events.loc["ray_actor_lifecycle_event", "ts"] == at(5)


def test_importing_twice_adds_nothing(tmp_path, archive):
    store = si.connect(tmp_path / "store")
    si.import_solstice(archive, store=store)
    rows = len(store.job(JOB).exceptions())
    again = si.import_solstice(archive, store=store)
    assert bool(again.iloc[0]["already_present"])
    assert len(store.attempts(JOB)) == 1
    assert len(store.job(JOB).exceptions()) == rows


def test_an_archive_without_a_job_record_reads_as_not_finished(tmp_path):
    base = tmp_path / "old"
    write_archive(base, "crashed_job", "a1", {"lineage:s0": ARCHIVE["lineage:source_split_0"]})
    store = si.connect(tmp_path / "store")
    row = si.import_solstice(base, store=store).iloc[0]
    assert row["status"] == "RUNNING"
    assert "no final status" in row["note"]
    assert len(store.job("crashed_job").lineage()) == 1


def test_the_cli_imports_and_reports(tmp_path, archive, capsys):
    code = main(["import-solstice", str(archive), "--store", str(tmp_path / "store")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{JOB} {ATTEMPT}: COMPLETED" in out
    assert "invalid_json 1" in out
    assert main(["import-solstice", str(archive), "--store", str(tmp_path / "store")]) == 0
    assert "already in the store" in capsys.readouterr().out


def test_a_path_without_an_archive_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(si.InspectError, match="no Solstice archive under"):
        si.import_solstice(tmp_path, store=tmp_path / "store")
    assert main(["import-solstice", str(tmp_path / "nowhere"), "--store", str(tmp_path)]) == 2
    assert "the path does not exist" in capsys.readouterr().err


#: the later layout: Solstice's JobStateManager wrote the state messages themselves
STATE_MANAGER_ARCHIVE = {
    "job": {
        "job_id": "etl_sm",
        "status": "COMPLETED",
        "timestamp": T0 + 20,
        "dag_edges": {"read": ["write"]},
        "stages": [{"stage_id": "read"}, {"stage_id": "write"}],
        "config": {"queue_type": "tansu"},
        "start_time": T0,
        "end_time": T0 + 20,
    },
    "stage:read": {
        "stage_id": "read",
        "status": "COMPLETED",
        "timestamp": T0 + 19,
        "operator_type": "LanceSource",
        "min_parallelism": 1,
        "max_parallelism": 2,
        "end_time": T0 + 19,
    },
    "worker:read_w0": {
        "worker_id": "read_w0",
        "stage_id": "read",
        "status": "STOPPED",
        "timestamp": T0 + 19,
        "assigned_partitions": [0],
        "reason": "finished",
        "end_time": T0 + 19,
    },
    "worker:write_w0": {
        "worker_id": "write_w0",
        "stage_id": "write",
        "status": "RUNNING",
        "timestamp": T0 + 5,
        "assigned_partitions": [0],
        "partition_offsets": {"0": 40},
    },
    "split:read:0:0": {
        "ts": T0 + 2,
        "stage_id": "read",
        "partition_id": 0,
        "offset": 0,
        "worker_id": "read_w0",
        "process_time_ms": 250,
        "input_records": 0,
        "output_records": 100,
    },
    "split:read:0:100": {
        "ts": T0 + 3,
        "stage_id": "read",
        "partition_id": 0,
        "offset": 100,
        "worker_id": "read_w0",
        "process_time_ms": 500,
        "input_records": 0,
        "output_records": 100,
    },
    "split:write:0:0": {
        "ts": T0 + 4,
        "stage_id": "write",
        "partition_id": 0,
        "offset": 0,
        "worker_id": "write_w0",
        "process_time_ms": 1000,
        "input_records": 100,
        "output_records": 0,
    },
    f"offset:read:0:{int((T0 + 4) * 1000)}": {
        "ts": T0 + 4,
        "stage_id": "read",
        "partition_id": 0,
        "offset": 200,
        "worker_id": "read_w0",
    },
    f"exception:write_w0:{int((T0 + 6) * 1000)}": {
        "ts": T0 + 6,
        "stage_id": "write",
        "worker_id": "write_w0",
        "exception_type": "OSError",
        "message": "disk full",
        "stacktrace": "Traceback ...\nOSError: disk full",
        "split_id": "write:0:0",
    },
    f"backpressure:read:{int((T0 + 7) * 1000)}": {
        "ts": T0 + 7,
        "stage_id": "read",
        "active": True,
        "queue_lag": 6000,
    },
}


def test_an_archive_of_the_state_manager_layout_imports_its_splits_and_offsets(tmp_path):
    base = tmp_path / "webui"
    write_archive(base, "etl_sm", "20250102_080000_beef", STATE_MANAGER_ARCHIVE)
    store = si.connect(tmp_path / "store")
    row = si.import_solstice(base, store=store).iloc[0]
    assert row["status"] == "COMPLETED"
    assert row["skipped"] == {}
    job = store.job("etl_sm")
    assert job.info["start_time"] == at(0)
    assert job.info["end_time"] == at(20)
    # stage totals from the committed splits (the workers reported no counters)
    summary = job.stage_summary().set_index("stage_id")
    assert summary.loc["read", "output_records"] == 200
    assert summary.loc["write", "input_records"] == 100
    assert summary.loc["read", "operator_type"] == "LanceSource"
    lin = job.lineage().set_index("split_id").sort_index()
    assert list(lin.index) == ["read:0:0", "read:0:100", "write:0:0"]
    assert list(lin["processing_time"]) == [0.25, 0.5, 1.0]  # from milliseconds
    # the committed offset of partition 0 at its own time
    parts = job.partition_metrics()
    assert parts[["stage_id", "partition_id", "committed_offset", "ts"]].values.tolist() == [
        ["read", "0", 200, at(4)]
    ]
    # one exception occurrence; backpressure on read from its time
    exc = job.exceptions()
    assert exc[["exception_type", "split_id", "ts"]].values.tolist() == [
        ["OSError", "write:0:0", at(6)]
    ]
    events = job.events()
    bp = events[events["event_type"] == "backpressure_started"]
    assert bp[["stage_id", "ts"]].values.tolist() == [["read", at(7)]]
    # one worker stopped (its start is not in this layout), one seen running
    workers = job.workers().sort_values("ts")
    assert workers[["worker_id", "event", "ts"]].values.tolist() == [
        ["write_w0", "STARTED", at(5)],
        ["read_w0", "STOPPED", at(19)],
    ]
    assert workers.set_index("worker_id").loc["read_w0", "reason"] == "finished"


def test_iso_times_without_a_zone_are_utc(monkeypatch):
    import time

    from solstice_inspect.archives.slatedb_import import to_envelopes

    monkeypatch.setenv("TZ", "America/New_York")  # a machine not on UTC
    time.tzset()
    try:
        raw = b'{"eventType": "X", "timestamp": "2025-01-01T12:00:05"}'
        (env,) = to_envelopes({b"ray_event:e": raw}, "j")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert env["timestamp"] == T0 + 5


def test_it_imports_from_inside_a_running_event_loop(tmp_path, archive):
    # a notebook's kernel runs an event loop: the SlateDB reads go to a thread of their own
    async def in_a_notebook():
        return si.import_solstice(archive, store=tmp_path / "store")

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # (see write_archive)
        result = pool.submit(asyncio.run, in_a_notebook()).result()
    assert list(result["status"]) == ["COMPLETED"]
