"""The follower's per-topic bookkeeping (no broker: the records a consumer would hand
over are built here): attempts per run, the saved position, and the restart after a
crash between a flush and the save of its position."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from waiting import wait_until

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

    # a restarted follower: a late report of the ended run still goes into its attempt
    # (as it would have without the restart), which stays COMPLETED; a new run still
    # opens a new attempt
    late = msg("worker_metrics", "write_w0_dddddd", T0 + 70, {"stage_id": "write"}, job_id=job_id)
    run3 = _run(msg, job_id, T0 + 120, ["read_w0_eeeeee"], fail=False)
    again = Track(store, topic, job_id)
    again.take(0, records(topic, [late, *run3], first=len(recs)))
    again.stop()
    assert again.late_dropped == 0
    attempts = store.attempts(job_id).sort_values("start_time")
    assert list(attempts["status"]) == ["FAILED", "COMPLETED", "COMPLETED"]
    wm = store.job(job_id, attempt=second.attempt_id).table("worker_metrics").to_pandas()
    assert sorted(wm["ts"].map(lambda t: t.timestamp())) == [T0 + 60.2, T0 + 60.2, T0 + 70]
    third = store.job(job_id, attempt=attempts["attempt_id"].iloc[2])
    assert third.table("worker_metrics")["worker_id"].to_pylist() == ["read_w0_eeeeee"]


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


def _driver_run(
    job_id: str, t: float, suffix: str, records: int, *, final: bool, workers_first=False
) -> list[dict]:
    """One run of a job by its own driver: job_started, a reader and a writer worker
    (``workers_first``: as Solstice's, they start before job_started) that each move
    ``records`` records, and (``final``) job_completed; every source's sequence numbers
    start at 0, as a new process's do."""
    read, write = f"read_w0_{suffix}", f"write_w0_{suffix}"
    started = t + 0.5 if workers_first else t
    w = t if workers_first else t + 0.1
    out = [
        si.envelope("worker_started", job_id, read, w, {"stage_id": "read"}, 0),
        si.envelope("worker_started", job_id, write, w, {"stage_id": "write"}, 0),
        si.envelope(
            "worker_metrics",
            job_id,
            read,
            t + 1,
            {"stage_id": "read", "input_records": 0, "output_records": records},
            1,
        ),
        si.envelope(
            "worker_metrics",
            job_id,
            write,
            t + 1,
            {"stage_id": "write", "input_records": records, "output_records": 0},
            1,
        ),
    ]
    job = si.envelope("job_started", job_id, job_id, started, {"dag_edges": {"read": ["write"]}}, 0)
    out.insert(len(out) if workers_first else 0, job)
    if final:
        out.append(si.envelope("job_completed", job_id, job_id, t + 2, {}, 1))
    return out


def test_a_rerun_after_a_driver_died_without_a_final_status_is_a_new_attempt(store):
    job_id = "crashed_driver"
    topic = f"{job_id}_state"
    run1 = _driver_run(job_id, T0, "aaaaaa", 100, final=False)  # SIGKILLed: no job_failed
    run1.append(dict(run1[0]))  # its job_started delivered twice (a producer's retry)
    run2 = _driver_run(job_id, T0 + 60, "bbbbbb", 50, final=True)  # the same job id again
    recs = records(topic, run1 + run2)

    track = Track(store, topic, job_id, heartbeat_interval=0.5)
    track.take(0, recs[: len(run1)])
    heard_last = time.time()  # the crashed run's last message was read before this
    track.take(0, recs[len(run1) :])
    track.stop()

    attempts = store.attempts(job_id).sort_values("start_time")
    assert len(attempts) == 2
    old, new = (store.job(job_id, attempt=a) for a in attempts["attempt_id"])
    # each run is its own: its start, its workers, its records (not 100 + 50)
    for job, t, suffix, n in ((old, T0, "aaaaaa", 100), (new, T0 + 60, "bbbbbb", 50)):
        cat = job.catalog_row()
        assert cat["start_time"].timestamp() == t
        assert (cat["records_in"], cat["records_out"]) == (n, n)
        assert sorted(job.table("workers")["worker_id"].to_pylist()) == [
            f"read_w0_{suffix}",
            f"write_w0_{suffix}",
        ]
        assert job.events()["event_type"].tolist().count("job_started") == 1
    assert new.status == "COMPLETED"
    # the crashed run has no final status: it says why, and reads as LOST from its last
    # message on (its heartbeat goes back to then), not RUNNING
    assert "run_superseded" in set(old.events()["event_type"])
    assert old.catalog_row()["heartbeat"].timestamp() <= heard_last
    wait_until(lambda: old.status == "LOST", 10, "the crashed run to read as LOST")
    info = track.info()
    assert (info["attempts"], info["duplicates"], info["accepted"]) == (2, 1, 11)


@pytest.mark.parametrize(
    ("same_ids", "one_by_one"), [(False, False), (True, True)], ids=["new_ids", "same_ids"]
)
def test_a_rerun_s_workers_reporting_before_its_job_started_are_the_rerun_s(
    store, same_ids, one_by_one
):
    """Solstice's workers start and report before the driver's job_started: those of the
    rerun are its own, not the crashed run's (nor duplicates of it when the new workers
    have the old ids and their sequence numbers start over)."""
    job_id = "crashed_again"
    topic = f"{job_id}_state"
    run1 = _driver_run(job_id, T0, "aaaaaa", 100, final=False)
    suffix = "aaaaaa" if same_ids else "bbbbbb"
    run2 = _driver_run(job_id, T0 + 60, suffix, 50, final=True, workers_first=True)
    recs = records(topic, run1 + run2)

    track = Track(store, topic, job_id)
    track.take(0, recs[: len(run1)])
    rest = recs[len(run1) :]
    for chunk in [[r] for r in rest] if one_by_one else [rest]:
        track.take(0, chunk)
    track.stop()

    attempts = store.attempts(job_id).sort_values("start_time")
    assert len(attempts) == 2
    old, new = (store.job(job_id, attempt=a) for a in attempts["attempt_id"])
    for job, t, n in ((old, T0, 100), (new, T0 + 60, 50)):  # a run starts at its first
        cat = job.catalog_row()
        assert cat["start_time"].timestamp() == t
        assert (cat["records_in"], cat["records_out"]) == (n, n)
        assert sorted(job.table("workers")["event"].to_pylist()) == ["STARTED", "STARTED"]
        assert job.table("worker_metrics").num_rows == 2
    assert new.status == "COMPLETED"
    info = track.info()
    assert (info["attempts"], info["duplicates"], info["accepted"]) == (2, 0, 11)
    assert offsets.read(store.root, topic)["partitions"]["0"]["next"] == len(recs)


def test_a_worker_that_joins_a_running_job_after_a_quiet_spell_stays_in_it(store, tmp_path):
    """A producer the running attempt never heard of, after 10 s without a message, may be
    a rerun's: it is held only until a producer the attempt knows goes on — then it is
    the job's, in order, nothing lost."""
    job_id = "scaled"
    topic = f"{job_id}_state"
    run = _driver_run(job_id, T0, "aaaaaa", 100, final=False)  # its last message at T0 + 1
    extra = "read_w1_cccccc"
    joined = [
        si.envelope("worker_started", job_id, extra, T0 + 15, {"stage_id": "read"}, 0),
        si.envelope(
            "worker_metrics",
            job_id,
            extra,
            T0 + 15.5,
            {"stage_id": "read", "input_records": 0, "output_records": 7},
            1,
        ),
    ]
    goes_on = [
        si.envelope(
            "worker_metrics",
            job_id,
            "write_w0_aaaaaa",
            T0 + 16,
            {"stage_id": "write", "input_records": 107, "output_records": 0},
            2,
        ),
        si.envelope("job_completed", job_id, job_id, T0 + 17, {}, 1),
    ]
    recs = records(topic, [*run, *joined, *goes_on])
    track = Track(store, topic, job_id)
    track.take(0, recs[: len(run) + len(joined)])
    # held: neither recorded nor covered by the saved position (a restart reads them)
    assert track.next == {0: len(run)}
    assert track.commit()
    assert offsets.read(store.root, topic)["partitions"]["0"]["next"] == len(run)
    assert store.job(job_id).table("workers").num_rows == 2
    track.take(0, recs[len(run) + len(joined) :])
    track.stop()
    assert len(store.attempts(job_id)) == 1
    baseline = ingested(tmp_path, job_id, [*run, *joined, *goes_on], "baseline")
    for table in JOB_TABLES:
        assert table_rows(store, job_id, table) == table_rows(baseline, job_id, table), table
    cat = store.job(job_id).catalog_row()
    assert (cat["status"], cat["records_in"], cat["records_out"]) == ("COMPLETED", 107, 107)


def _crash(track: Track) -> None:
    """The follower's process dies: its recording's thread stops, nothing is saved."""
    rec = track.rec
    assert rec is not None
    rec._stop.set()
    rec._thread.join()


def test_a_redelivered_job_started_after_a_restart_is_a_duplicate_not_a_new_run(store, tmp_path):
    job_id = "redelivered"
    topic = f"{job_id}_state"
    stream = list(simulate(job_id, duration_s=12, faults=False))
    starts = [i for i, e in enumerate(stream) if e["message_type"] == "job_started"]
    assert len(starts) == 1
    cut_saved = starts[0] + 5  # the saved position covers the job_started
    cut_flushed = len(stream) // 2
    # the producer sends the job_started again later on (a retry): same message
    topic_msgs = [*stream[:cut_flushed], stream[starts[0]], *stream[cut_flushed:]]
    recs = records(topic, topic_msgs)

    first = Track(store, topic, job_id)
    first.take(0, recs[:cut_saved])
    assert first.commit()
    first.take(0, recs[cut_saved:cut_flushed])
    assert first.rec is not None
    first.rec.flush()
    _crash(first)

    second = Track(store, topic, job_id)
    assert second.next == {0: cut_saved}
    second.take(0, recs[cut_saved:])
    second.stop()

    assert len(store.attempts(job_id)) == 1
    assert store.job(job_id).status == "COMPLETED"
    assert second.info()["duplicates"] == 1
    baseline = ingested(tmp_path, job_id, topic_msgs, "baseline")  # counts it a duplicate
    for table in JOB_TABLES:
        if table != "stage_metrics":  # windows cut by the flushes
            assert table_rows(store, job_id, table) == table_rows(baseline, job_id, table), table
    # the resumed attempt says what happened: re-read, nothing missing
    restarted = store.job(job_id).events().query("event_type == 'recorder_restarted'")
    assert list(restarted["description"]) == [
        "the follower restarted and re-read the topic from its saved position; nothing is missing"
    ]


@pytest.mark.parametrize("sources_saved", [True, False], ids=["saved", "read_back"])
def test_a_late_report_after_a_restart_goes_into_the_ended_attempt(
    store, msg, tmp_path, sources_saved
):
    job_id = "late_after_restart"
    topic = f"{job_id}_state"
    run = _run(msg, job_id, T0, ["read_w0_aaaaaa", "write_w0_bbbbbb"], fail=True)
    assert run[-2]["message_type"] == "job_failed"  # and a worker_stopped after it
    for m in run:  # with a node id: restore() gives a worker stored without one a NaN
        if m["message_type"] == "worker_started":  # one, and its STOPPED row is refused
            m["payload"]["node_id"] = "node-1"
    recs = records(topic, run)

    first = Track(store, topic, job_id)
    first.take(0, recs[:-1])  # the final status is flushed and its position saved
    assert offsets.read(store.root, topic)["status"] == "FAILED"
    _crash(first)  # the follower dies while the attempt lingers for late reports
    if not sources_saved:  # an offsets file without them: read back from the store
        doc = offsets.read(store.root, topic)
        del doc["sources"]
        offsets.write(store.root, topic, doc)

    second = Track(store, topic, job_id)
    second.take(0, recs[-1:])
    second.stop()

    assert second.late_dropped == 0
    assert len(store.attempts(job_id)) == 1
    job = store.job(job_id)
    baseline = ingested(tmp_path, job_id, run, "baseline")
    for table in JOB_TABLES:
        if table != "stage_metrics":
            assert table_rows(store, job_id, table) == table_rows(baseline, job_id, table), table
    cat, base = job.catalog_row(), baseline.job(job_id).catalog_row()
    for key in ("status", "start_time", "end_time", "workers"):
        assert cat[key] == base[key], key
    assert cat["status"] == "FAILED"
    # never listed as RUNNING again once FAILED: every catalog row after the first
    # FAILED one is FAILED
    rows = store.catalog(job_id=job_id).to_pandas().sort_values("ts")
    statuses = list(rows["status"])
    assert statuses[statuses.index("FAILED") :] == ["FAILED"] * (
        len(statuses) - statuses.index("FAILED")
    )


def test_rows_refused_by_the_store_are_read_again_never_deleted_unread(
    store, tmp_path, monkeypatch
):
    from solstice_inspect.recorder import session

    monkeypatch.setattr(session, "FINISH_RETRY_S", 0.5)  # give up on refused rows quickly
    job_id = "refused"
    topic = f"{job_id}_state"
    stream = list(simulate(job_id, duration_s=12, faults=True))
    recs = records(topic, stream)
    third = len(stream) // 3

    track = Track(store, topic, job_id, idle_close=0.0)
    track.take(0, recs[:third])
    assert track.commit()
    track.suspect = False  # as the follower leaves it once it checked the broker
    saved = offsets.read(store.root, topic)
    attempt = track.attempt_id
    # one table of the attempt cannot be written for a while (a real file in the way)
    table = tmp_path / "store" / "jobs" / job_id / attempt / "worker_metrics.lance"
    assert table.is_dir()
    table.rename(table.with_name("aside"))
    table.write_bytes(b"")
    track.take(0, recs[third : 2 * third])
    assert not track.commit()  # the other tables' rows of this flush are written
    track.upkeep(time.monotonic() + 1)  # silent: closed, with rows the store refused
    suspect, reread_from = track.suspect, track.next[0]
    table.unlink()
    table.with_name("aside").rename(table)

    track.take(0, recs[reread_from:])  # what the broker delivers from there
    track.stop()
    assert list(store.attempts(job_id)["attempt_id"]) == [attempt]
    baseline = ingested(tmp_path, job_id, stream, "baseline")
    for name in JOB_TABLES:
        if name != "stage_metrics":
            assert table_rows(store, job_id, name) == table_rows(baseline, job_id, name), name
    assert store.job(job_id).status == "COMPLETED"
    # it went back to the saved position, to be read again (the follower seeks there)
    assert suspect
    assert reread_from == saved["partitions"]["0"]["next"]
    restarted = store.job(job_id).events().query("event_type == 'recorder_restarted'")
    assert "re-read the topic from its last saved position" in restarted["description"].iloc[0]
