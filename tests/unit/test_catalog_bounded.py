"""The shared catalog grows with the number of attempts, not with their running time
(issue 8): heartbeats go to each attempt's own file; listings overlay it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import lance
import pandas as pd
import pyarrow as pa
import pytest

import solstice_inspect as si
from solstice_inspect.recorder.rows import to_arrow
from solstice_inspect.schema import SCHEMAS
from solstice_inspect.store import heartbeat, layout
from solstice_inspect.store.catalog import CatalogWriter, latest_attempts, overlay_row, still_alive
from solstice_inspect.store.dataset import DatasetWriter
from tests.conftest import T0


def _wait(condition, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _rows(store, job_id: str) -> int:
    return store.catalog(job_id=job_id).num_rows


def _listed(root, job_id: str) -> dict[str, Any]:
    jobs = si.connect(root).jobs().set_index("job_id")
    return {str(k): v for k, v in jobs.loc[job_id].items()}


def _live(row, records_out: int) -> bool:
    return row["status"] == "RUNNING" and row["records_out"] == records_out


def _report(job_id: str, out: int, seq: int) -> dict:
    payload = {"stage_id": "a", "input_records": out, "output_records": out}
    return si.envelope("worker_metrics", job_id, "a_w0", T0 + seq, payload, seq)


def _started(job_id: str) -> dict:
    return si.envelope("job_started", job_id, job_id, T0, {"dag_edges": {"a": []}}, 0)


def test_many_heartbeats_add_no_catalog_rows_yet_the_listing_is_live(store):
    rec = store.record("long", heartbeat_interval=0.05, flush_interval=0.02)
    try:
        rec.ingest([_started("long"), _report("long", 10, 1)])
        beats: set[int] = set()

        def many_beats():
            beat = heartbeat.read(store.root, "long", rec.attempt_id)
            if beat is not None:
                beats.add(beat["heartbeat"])
            return len(beats) >= 25

        _wait(many_beats, "25 heartbeats")
        assert _rows(store, "long") == 1, "only the start: heartbeats left the catalog alone"

        sent = time.time()
        rec.ingest(_report("long", 5000, 2))  # the counts move on between two heartbeats
        # RUNNING too: a loaded machine may stall the recorder past 3 intervals for a while
        row = _wait(
            lambda: r if _live(r := _listed(store.root, "long"), 5000) else None,
            "the live count in the listing",
        )
        assert row["heartbeat"].timestamp() >= sent, "the heartbeat that carried the count"
        start_row = store.catalog(job_id="long").to_pandas().iloc[0]
        assert row["heartbeat"] > start_row["heartbeat"]
        assert row["workers"] == 1
        assert _rows(store, "long") == 1
    finally:
        rec.finish("COMPLETED")
    # the final status is the second and last row
    assert _rows(store, "long") == 2
    row = _listed(store.root, "long")
    assert (row["status"], row["records_out"]) == ("COMPLETED", 5000)


def test_a_recorder_that_stops_heartbeating_turns_lost_and_back(store):
    rec = store.record("flaky", heartbeat_interval=0.2, flush_interval=0.05)
    rec.ingest([_started("flaky"), _report("flaky", 7, 1)])
    job = store.job("flaky")
    _wait(lambda: _live(job.catalog_row(), 7), "the first counts, RUNNING")
    rec.close()  # gone without a final status, like a killed process
    last = heartbeat.read(store.root, "flaky", rec.attempt_id)
    assert last is not None
    assert last["status"] == "RUNNING"

    _wait(lambda: job.catalog_row()["status"] == "LOST", "LOST on the cached job")
    row = _listed(store.root, "flaky")
    assert row["status"] == "LOST"
    assert row["records_out"] == 7, "the last counts the recorder wrote"
    assert row["heartbeat"] == pd.Timestamp(last["heartbeat"], unit="us", tz="UTC")

    # a recorder resumed on the same attempt makes it RUNNING again
    again = si.connect(store.root).record(
        "flaky", attempt_id=rec.attempt_id, resume=True, heartbeat_interval=0.2
    )
    try:
        _wait(lambda: job.catalog_row()["status"] == "RUNNING", "RUNNING after the resume")
    finally:
        again.finish("FAILED", error="boom")
    assert job.status == "FAILED"
    assert _rows(store, "flaky") == 3, "start, restart, final"


def test_final_statuses_are_listed(store):
    with store.record("done") as rec:
        rec.ingest([_started("done"), _report("done", 3, 1)])
    with pytest.raises(RuntimeError), store.record("broken"):
        raise RuntimeError("disk full")
    store.record("stopped").finish("CANCELLED")
    rec = store.record("by_message")
    rec.ingest(si.envelope("job_completed", "by_message", "by_message", T0 + 5, {}, 9))
    jobs = si.connect(store.root).jobs().set_index("job_id")
    assert jobs["status"].to_dict() == {
        "done": "COMPLETED",
        "broken": "FAILED",
        "stopped": "CANCELLED",
        "by_message": "COMPLETED",
    }
    assert jobs.loc["done", "records_out"] == 3
    rec.close()
    assert store.catalog().num_rows == 8, "two rows per attempt"


def test_twenty_threads_recording_at_once_lose_no_commit(store):
    statuses = ["COMPLETED", "FAILED", "CANCELLED"]
    start = threading.Barrier(20)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        job_id = f"job{i:02d}"
        try:
            start.wait()
            rec = store.record(job_id, heartbeat_interval=0.05, flush_interval=0.02)
            rec.ingest([_started(job_id), _report(job_id, i, 1)])
            rec.finish(statuses[i % 3])
            assert rec.stats["write_errors"] == 0
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    jobs = si.connect(store.root).jobs().set_index("job_id").sort_index()
    assert jobs["status"].to_dict() == {f"job{i:02d}": statuses[i % 3] for i in range(20)}
    assert jobs["records_out"].tolist() == list(range(20))
    assert store.catalog().num_rows == 40, "every start and every final status committed"


PROCESS = """
import sys, threading
import solstice_inspect as si
store = si.connect(sys.argv[1])
def one(i):
    rec = store.record(f"p{sys.argv[2]}_{i}", heartbeat_interval=0.05)
    rec.finish("COMPLETED" if i % 2 else "FAILED")
    assert rec.stats["write_errors"] == 0, rec.stats
threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
[t.start() for t in threads]
[t.join() for t in threads]
"""


def test_processes_creating_the_catalog_at_once_lose_no_commit(tmp_path):
    root = tmp_path / "store"  # no catalog yet: every process races to create it
    procs = [subprocess.Popen([sys.executable, "-c", PROCESS, str(root), str(p)]) for p in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    jobs = si.connect(root).jobs().set_index("job_id")
    expected = {f"p{p}_{i}": "COMPLETED" if i % 2 else "FAILED" for p in range(4) for i in range(5)}
    assert jobs["status"].to_dict() == expected
    assert si.connect(root).catalog().num_rows == 40


def test_a_store_written_with_heartbeat_rows_still_reads(tmp_path):
    """The previous recorder wrote a catalog row per heartbeat and no heartbeat file."""
    root = str(tmp_path / "old")
    now = time.time()

    def row(age, status, out=0, final=False):
        at = now - age  # its time, its heartbeat, and its end when final
        return (at, status, now - 100, at if final else None, at, 5.0, 1, 1, out, out, 0)

    rows = {
        ("fresh", "a1"): [row(3, "RUNNING"), row(1, "RUNNING", out=9)],
        ("stale", "a1"): [row(60, "RUNNING", out=4)],
        ("done", "a1"): [row(9, "RUNNING"), row(8, "COMPLETED", out=5, final=True)],
    }
    writer = DatasetWriter(layout.catalog_uri(root), SCHEMAS["catalog"])
    writer.append(
        pa.concat_tables(to_arrow("catalog", v, job, att, 1) for (job, att), v in rows.items())
    )
    jobs = si.connect(root).jobs().set_index("job_id")
    assert jobs["status"].to_dict() == {"fresh": "RUNNING", "done": "COMPLETED", "stale": "LOST"}
    assert jobs.loc["fresh", "records_out"] == 9
    assert si.connect(root).job("stale").status == "LOST"


def test_a_newer_heartbeat_revives_a_row_read_as_lost_and_an_older_one_does_not():
    stamp = pd.Timestamp(T0, unit="s", tz="UTC")
    row = {
        "status": "LOST",
        "start_time": stamp - pd.Timedelta(60, "s"),
        "end_time": pd.NaT,
        "heartbeat": stamp,
        "heartbeat_interval_s": 1.0,
        "records_out": 1,
    }
    us = int(T0 * 1e6)
    beat = dict.fromkeys(heartbeat.FIELDS, 2) | {
        "status": "RUNNING",
        "start_time": us - 60_000_000,
        "end_time": None,
        "heartbeat": us + 2_000_000,
        "heartbeat_interval_s": 1.0,
    }
    revived = still_alive(overlay_row(dict(row), beat), now=T0 + 3)
    assert revived["status"] == "RUNNING"
    assert (revived["records_out"], revived["duration_s"]) == (2, 62.0)
    older = overlay_row(dict(row), beat | {"heartbeat": us - 1})
    assert (older["status"], older["records_out"]) == ("LOST", 1)


def test_the_catalog_compacts_its_small_fragments_and_keeps_every_row(tmp_path):
    uri = layout.catalog_uri(str(tmp_path))
    writer = CatalogWriter(uri, key="a")
    writer.max_fragments = 3  # instead of 64–127
    for i in range(6):
        row = (T0 + i, "RUNNING", T0, None, T0 + i, 5.0, 1, 1, i, i, 0)
        writer.append(to_arrow("catalog", [row], f"job{i}", "a1", 1))
    ds = lance.dataset(uri)
    # the 4th small fragment set compaction off; the 5th and 6th appends came after
    assert writer.compactions == 1
    assert len(ds.get_fragments()) == 3
    listing = latest_attempts(ds.to_table())
    assert sorted(listing["records_out"]) == list(range(6))
