"""A recording resumed from the store after its process died (what a restarted recorder
actor does): the same attempt goes on, totals come back to the truth with the next
cumulative reports, flush numbers continue, and the gap is recorded."""

from __future__ import annotations

import solstice_inspect as si
from solstice_inspect.recorder.session import Recording

T0 = 1_764_331_200.0


def _env(mtype, source, ts, payload, seq):
    return si.envelope(mtype, "resumed", source, ts, payload, seq)


def _report(worker, stage, ts, inp, out, seq):
    payload = {"stage_id": stage, "input_records": inp, "output_records": out}
    return _env("worker_metrics", worker, ts, payload, seq)


def _exception(ts, seq):
    payload = {"stage_id": "write", "exception_type": "IOError", "message": f"disk {seq}"}
    return _env("exception", "write_w0", ts, payload, seq)


def test_a_resumed_recording_continues_the_attempt(store):
    first = store.record("resumed", flush_interval=60)
    first.ingest(
        [
            _env("job_started", "resumed", T0, {"dag_edges": {"read": ["write"]}}, 0),
            _env("worker_started", "read_w0", T0, {"stage_id": "read"}, 0),
            _report("read_w0", "read", T0 + 1, 0, 100, 1),
            _report("write_w0", "write", T0 + 1, 100, 0, 0),
            _exception(T0 + 1.5, 1),
        ]
    )
    first.flush()
    last_batch = max(store.job("resumed").table("stage_metrics")["batch"].to_pylist())
    # rows folded after the last flush die with the process
    first.ingest([_report("read_w0", "read", T0 + 2, 0, 150, 2), _exception(T0 + 2.5, 2)])
    first._stop.set()  # the process dies: no finish, no further flush
    first._thread.join()

    second = Recording(store, "resumed", attempt_id=first.attempt_id, resume=True)
    assert second.restored is not None
    assert second.restored.last_batch == last_batch
    assert second.stats["restarts"] == 1
    # the workers' next cumulative reports carry everything, the lost window included
    second.ingest([_report("read_w0", "read", T0 + 3, 0, 400, 3)])
    second.ingest([_report("write_w0", "write", T0 + 3, 390, 0, 1), _exception(T0 + 3.5, 3)])
    second.finish("COMPLETED")

    assert list(store.attempts("resumed")["attempt_id"]) == [first.attempt_id]
    job = store.job("resumed")
    cat = job.catalog_row()
    assert cat["status"] == "COMPLETED"
    assert (cat["records_in"], cat["records_out"]) == (400, 390)
    assert cat["start_time"].timestamp() == T0
    sm = job.stage_metrics().sort_values(["batch", "ts"], kind="stable")
    last = sm.groupby("stage_id").tail(1).set_index("stage_id")
    assert last.loc["read", "output_records"] == 400
    assert last.loc["write", "input_records"] == 390
    assert min(sm[sm["ts"].map(lambda t: t.timestamp()) >= T0 + 3]["batch"]) > last_batch
    # the exception folded but not flushed before the death is the counted gap
    assert sorted(job.exceptions()["message"]) == ["disk 1", "disk 3"]
    assert cat["exceptions"] == 2
    events = job.events()
    restart = events[events["event_type"] == "recorder_restarted"]
    assert len(restart) == 1
    assert "may be missing" in restart["description"].iloc[0]
    # the model sees the same figures
    head = job.snapshot().header(now=T0 + 10)
    assert (head["records_in"], head["records_out"]) == (400, 390)


def _split(ts, split_id, seq):
    payload = {
        "stage_id": "read",
        "split_id": split_id,
        "parent_split_ids": [],
        "input_records": 0,
        "output_records": 100,
        "worker_id": "read_w0",  # committed by the stage master, on behalf of read_w0
    }
    return _env("split_processed", "read", ts, payload, seq)


def test_a_resumed_recording_keeps_split_totals_and_counts_a_redelivery_once(store):
    first = store.record("resumed", flush_interval=60)
    first.ingest(
        [
            _env("job_started", "resumed", T0, {"dag_edges": {"read": ["write"]}}, 0),
            _split(T0 + 1, "read_split_0", 1),
            _split(T0 + 2, "read_split_1", 2),
        ]
    )
    first.flush()
    first._stop.set()  # the process dies: no finish
    first._thread.join()

    second = Recording(store, "resumed", attempt_id=first.attempt_id, resume=True)
    # split 1 redelivered after the restart, then a new one
    second.ingest([_split(T0 + 3, "read_split_1", 3), _split(T0 + 4, "read_split_2", 4)])
    second.finish("COMPLETED")
    job = store.job("resumed")
    sm = job.stage_metrics().sort_values(["batch", "ts"], kind="stable")
    assert sm[sm["stage_id"] == "read"]["output_records"].iloc[-1] == 300
    assert job.catalog_row()["records_in"] == 300
    statuses = job.lineage().sort_values("ts")["status"].tolist()
    assert statuses == ["COMMITTED", "COMMITTED", "DUPLICATE", "COMMITTED"]


def test_a_worker_stored_without_a_node_is_stopped_after_a_resume(store):
    # Solstice's worker_started carries no node_id: the resumed fold must not turn the
    # missing value into NaN (its STOPPED row would then not fit the string column)
    first = store.record("resumed", flush_interval=60)
    first.ingest(
        [
            _env("job_started", "resumed", T0, {"dag_edges": {"read": []}}, 0),
            _env("worker_started", "read_w0", T0, {"stage_id": "read"}, 0),
        ]
    )
    first.flush()
    first._stop.set()
    resumed = Recording(store, "resumed", attempt_id=first.attempt_id, resume=True)
    resumed.ingest(_env("worker_stopped", "read_w0", T0 + 5, {"stage_id": "read"}, 1))
    resumed.finish()
    assert resumed.stats["rejected"] == {}
    events = store.attempt("resumed", first.attempt_id).workers()
    assert list(events["event"]) == ["STARTED", "STOPPED"]
