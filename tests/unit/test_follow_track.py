"""The follower's per-topic bookkeeping (no broker: the records a consumer would hand
over are built here): attempts per run, the saved position, and the restart after a
crash between a flush and the save of its position."""

from __future__ import annotations

import gzip
import json
import time

import pytest

import solstice_inspect as si
from solstice_inspect.cli import main as cli
from solstice_inspect.demo.stream import simulate
from solstice_inspect.schema import JOB_TABLES
from solstice_inspect.store import offsets

pytest.importorskip("aiokafka")
from aiokafka.structs import ConsumerRecord

from solstice_inspect.follow.track import Track

T0 = 1_764_331_200.0


def records(topic: str, envelopes: list, first: int = 0) -> list[ConsumerRecord]:
    out = []
    for i, env in enumerate(envelopes):
        value = env if isinstance(env, bytes) else json.dumps(env).encode()
        out.append(
            ConsumerRecord(
                topic, 0, first + i, 1_000 + first + i, 0, None, value, None, -1, len(value), ()
            )
        )
    return out


def ingested(tmp_path, job_id: str, envelopes: list, name: str) -> si.Store:
    path = tmp_path / f"{name}.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        for env in envelopes:
            fh.write(json.dumps(env).encode() + b"\n")
    assert cli(["ingest", str(path), "--store", str(tmp_path / name), "--job-id", job_id]) == 0
    return si.connect(tmp_path / name)


def table_rows(store, job_id: str, table: str, attempt=None) -> list[str]:
    df = store.job(job_id, attempt=attempt).table(table).to_pandas()
    if table == "events":
        df = df.loc[df["event_type"] != "recorder_restarted"]
    df = df.drop(columns=["attempt_id", "batch"])
    return sorted(json.dumps(list(r), default=str) for r in df.itertuples(index=False))


def test_a_crash_between_a_flush_and_its_saved_position_neither_doubles_nor_loses(store, tmp_path):
    job_id = "crashy"
    topic = f"{job_id}_state"
    stream = list(simulate(job_id, duration_s=12, faults=True))
    recs = records(topic, stream)
    cut_saved, cut_flushed = len(stream) // 3, 2 * len(stream) // 3

    first = Track(store, topic, job_id)
    first.take(0, recs[:cut_saved])
    assert first.commit()
    assert offsets.read(store.root, topic)["partitions"]["0"]["next"] == cut_saved
    first.take(0, recs[cut_saved:cut_flushed])
    rec = first.rec
    assert rec is not None
    rec.flush()  # the rows are written ...
    rec._stop.set()  # ... and the process dies before it saves their position
    rec._thread.join()
    attempt = rec.attempt_id
    saved = offsets.read(store.root, topic)["batch"]
    # rows beyond what the saved position covers are in the store
    assert max(store.job(job_id).table("worker_metrics")["batch"].to_pylist()) > saved

    second = Track(store, topic, job_id)  # the restarted follower
    assert second.next == {0: cut_saved}
    second.take(0, recs[second.next[0] :])
    second.stop()

    assert list(store.attempts(job_id)["attempt_id"]) == [attempt]
    baseline = ingested(tmp_path, job_id, stream, "baseline")
    for table in JOB_TABLES:
        if table == "stage_metrics":  # windows cut by the flushes, as in any live recording
            continue
        assert table_rows(store, job_id, table) == table_rows(baseline, job_id, table), table
    cat, base = store.job(job_id).catalog_row(), baseline.job(job_id).catalog_row()
    assert (cat["status"], cat["records_in"], cat["records_out"]) == (
        "COMPLETED",
        base["records_in"],
        base["records_out"],
    )
    restarted = store.job(job_id).events().query("event_type == 'recorder_restarted'")
    assert len(restarted) == 1


def _run(msg, job_id: str, t: float, workers: list[str], *, fail: bool) -> list[dict]:
    """One run as the Solstice runtime sends it: its workers start and report before
    job_started; a failed job's last worker_stopped comes after job_failed."""
    out = [
        msg("worker_started", w, t, {"stage_id": w.split("_w")[0]}, job_id=job_id) for w in workers
    ]
    out += [
        msg(
            "worker_metrics",
            w,
            t + 0.2,
            {"stage_id": w.split("_w")[0], "input_records": 10, "output_records": 0},
            job_id=job_id,
        )
        for w in workers
    ]
    out.append(
        msg("job_started", job_id, t + 0.5, {"dag_edges": {"read": ["write"]}}, job_id=job_id)
    )
    final = "job_failed" if fail else "job_completed"
    out.append(msg(final, job_id, t + 2, {"duration_ms": 1500.0}, job_id=job_id))
    stop = {"stage_id": workers[-1].split("_w")[0], "reason": "done", "processed_count": 1}
    out.append(msg("worker_stopped", workers[-1], t + 2.1, stop, job_id=job_id))
    return out


def test_each_run_of_a_job_is_one_attempt_and_late_reports_stay_with_theirs(store, msg):
    job_id = "reruns"
    topic = f"{job_id}_state"
    run1 = _run(msg, job_id, T0, ["read_w0_aaaaaa", "write_w0_bbbbbb"], fail=True)
    run2 = _run(msg, job_id, T0 + 60, ["read_w0_cccccc", "write_w0_dddddd"], fail=False)
    recs = records(topic, run1 + run2)

    track = Track(store, topic, job_id)
    track.take(0, recs[:3])
    track.take(0, recs[3:])  # both runs' boundaries fall inside one batch
    track.stop()

    attempts = store.attempts(job_id).sort_values("start_time")
    assert list(attempts["status"]) == ["FAILED", "COMPLETED"]
    first, second = (store.job(job_id, attempt=a) for a in attempts["attempt_id"])
    w1, w2 = first.table("workers").to_pandas(), second.table("workers").to_pandas()
    # the late worker_stopped after job_failed is the first run's; the second run's
    # workers, started before its job_started, are the second's
    assert sorted(w1["worker_id"] + ":" + w1["event"]) == [
        "read_w0_aaaaaa:STARTED",
        "write_w0_bbbbbb:STARTED",
        "write_w0_bbbbbb:STOPPED",
    ]
    assert sorted(w2["worker_id"] + ":" + w2["event"]) == [
        "read_w0_cccccc:STARTED",
        "write_w0_dddddd:STARTED",
        "write_w0_dddddd:STOPPED",
    ]
    assert track.info()["attempts"] == 2
    doc = offsets.read(store.root, topic)
    assert doc["partitions"]["0"]["next"] == len(run1) + len(run2)
    assert doc["attempt_id"] == second.attempt_id
    assert doc["status"] == "COMPLETED"

    # a restarted follower: a late report of the ended run is dropped and counted; a new
    # run still opens a new attempt
    late = msg("worker_metrics", "write_w0_dddddd", T0 + 70, {"stage_id": "write"}, job_id=job_id)
    run3 = _run(msg, job_id, T0 + 120, ["read_w0_eeeeee"], fail=False)
    again = Track(store, topic, job_id)
    again.take(0, records(topic, [late, *run3], first=len(recs)))
    again.stop()
    assert again.late_dropped == 1
    assert list(store.attempts(job_id).sort_values("start_time")["status"]) == [
        "FAILED",
        "COMPLETED",
        "COMPLETED",
    ]


def test_offsets_files_are_per_topic_and_refuse_odd_names(tmp_path):
    root = str(tmp_path)
    assert offsets.read(root, "a_state") is None
    offsets.write(root, "a_state", {"job_id": "a", "partitions": {"0": {"next": 5}}})
    assert offsets.read(root, "a_state")["partitions"] == {"0": {"next": 5}}
    assert offsets.read(root, "b_state") is None
    (tmp_path / "follow" / "c_state.json").write_text("{torn")
    assert offsets.read(root, "c_state") is None
    with pytest.raises(ValueError, match="not a Kafka topic name"):
        offsets.uri(root, "../etc")


def test_a_silent_running_job_is_closed_and_resumed_by_its_next_message(store, tmp_path):
    job_id = "quiet"
    topic = f"{job_id}_state"
    stream = list(simulate(job_id, duration_s=8, faults=False))
    recs = records(topic, stream)
    half = len(stream) // 2
    track = Track(store, topic, job_id, idle_close=0.0)
    track.take(0, recs[:half])
    track.upkeep(time.monotonic() + 1)  # silent past idle_close: closed, not finished
    assert track.rec is None
    assert store.job(job_id).catalog_row()["status"] == "RUNNING"
    track.take(0, recs[half:])  # it speaks again: the same attempt goes on
    track.stop()
    assert len(store.attempts(job_id)) == 1
    baseline = ingested(tmp_path, job_id, stream, "baseline")
    for table in JOB_TABLES:
        if table != "stage_metrics":
            assert table_rows(store, job_id, table) == table_rows(baseline, job_id, table), table
    assert store.job(job_id).catalog_row()["status"] == "COMPLETED"
