"""Each recorder rule of DESIGN §3, checked through the real store (Lance on tmp_path)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd

from tests.conftest import T0, metrics, started


def record(store, msgs, **options):
    with store.record("j1", **options) as rec:
        rec.ingest(msgs)
    return rec, store.job("j1")


def last_stage_row(job, stage):
    sm = job.stage_metrics()
    return sm[sm["stage_id"] == stage].iloc[-1]


def test_duplicates_by_source_and_sequence_are_dropped(store, msg):
    m1 = metrics(msg, "src_w0_aaaaaa", "src", T0 + 1, 100, seq=1)
    m2 = metrics(msg, "src_w0_aaaaaa", "src", T0 + 2, 250, seq=2)
    rec, job = record(store, [started(msg), m1, m2, m1, m2, m2])
    assert rec.stats["duplicates"] == 3
    assert len(job.worker_metrics()) == 2
    assert last_stage_row(job, "src")["output_records"] == 250


def test_same_sequence_from_two_sources_is_not_a_duplicate(store, msg):
    a = metrics(msg, "src_w0_aaaaaa", "src", T0 + 1, 100, seq=7)
    b = metrics(msg, "src_w1_bbbbbb", "src", T0 + 1, 50, seq=7)
    rec, job = record(store, [started(msg), a, b])
    assert rec.stats["duplicates"] == 0
    assert last_stage_row(job, "src")["output_records"] == 150


def test_a_late_older_report_never_replaces_a_newer_one(store, msg):
    newer = metrics(msg, "src_w0_aaaaaa", "src", T0 + 10, 500, seq=9)
    older = metrics(msg, "src_w0_aaaaaa", "src", T0 + 5, 200, seq=4)
    rec, job = record(store, [started(msg), newer, older])
    assert last_stage_row(job, "src")["output_records"] == 500
    assert job.info["records_in"] == 500
    assert rec.stats["late_reports"] == 1
    # the late report itself is still stored, at its own time
    assert sorted(job.worker_metrics()["output_records"]) == [200, 500]


def test_stage_totals_include_stopped_workers(store, msg):
    msgs = [
        started(msg),
        msg("worker_started", "mid_w0_aaaaaa", T0 + 1, {"stage_id": "mid"}),
        msg("worker_started", "mid_w1_bbbbbb", T0 + 1, {"stage_id": "mid"}),
        metrics(msg, "mid_w0_aaaaaa", "mid", T0 + 2, 300),
        metrics(msg, "mid_w1_bbbbbb", "mid", T0 + 2, 200),
        msg("worker_stopped", "mid_w0_aaaaaa", T0 + 3, {"stage_id": "mid", "reason": "done"}),
        metrics(msg, "mid_w1_bbbbbb", "mid", T0 + 4, 260),
    ]
    _, job = record(store, msgs)
    row = last_stage_row(job, "mid")
    assert row["output_records"] == 300 + 260
    assert row["workers_alive"] == 1


def test_worker_count_means_alive_workers(store, msg):
    msgs = (
        [started(msg)]
        + [
            msg("worker_started", f"mid_w{i}_00000{i}", T0 + 1, {"stage_id": "mid"})
            for i in range(3)
        ]
        + [
            msg("worker_stopped", "mid_w0_000000", T0 + 2, {"stage_id": "mid", "reason": "killed"}),
            msg("worker_stopped", "mid_w1_000001", T0 + 2, {"stage_id": "mid", "reason": "done"}),
        ]
    )
    with store.record("j1") as rec:
        rec.ingest(msgs)
        rec.flush()
        assert store.job("j1").info["workers"] == 1  # while running: alive now
        assert last_stage_row(store.job("j1"), "mid")["workers_alive"] == 1
    workers = store.job("j1").workers()
    assert workers.groupby("worker_id")["event"].last().to_dict() == {
        "mid_w0_000000": "KILLED",
        "mid_w1_000001": "STOPPED",
        "mid_w2_000002": "STARTED",
    }


def test_job_records_come_from_source_and_sink_stages_only(store, msg):
    msgs = [
        started(msg),  # src -> mid -> sink
        metrics(msg, "src_w0_aaaaaa", "src", T0 + 1, 1000, 1000),
        metrics(msg, "mid_w0_bbbbbb", "mid", T0 + 1, 1000, 700),
        metrics(msg, "sink_w0_cccccc", "sink", T0 + 1, 700, 700),
    ]
    _, job = record(store, msgs)
    assert (job.info["records_in"], job.info["records_out"]) == (1000, 700)
    listing = store.jobs().iloc[0]
    assert (listing["records_in"], listing["records_out"]) == (1000, 700)


def test_rates_are_never_negative_even_when_a_counter_goes_back(store, msg):
    msgs = [started(msg)] + [
        metrics(msg, "src_w0_aaaaaa", "src", T0 + t, n)
        for t, n in [(1, 100), (2, 300), (3, 50), (4, 80), (5, 400)]  # a restart at t=3
    ]
    _, job = record(store, msgs)
    wm = job.worker_metrics()
    sm = job.stage_metrics()
    for col in ("input_rate", "output_rate"):
        assert (wm[col].dropna() >= 0).all()
        assert (sm[col].dropna() >= 0).all()
    assert wm["output_rate"].iloc[1] == 200.0  # (300 - 100) / 1 s, from message time
    assert sm["output_records"].is_monotonic_increasing


def test_durations_keep_milliseconds(store, msg):
    msgs = [
        started(msg),
        msg(
            "checkpoint",
            "src",
            T0 + 5,
            {"checkpoint_id": "c1", "trigger_time": T0 + 5.0, "completion_time": T0 + 5.1234},
        ),
        msg("job_completed", "j1", T0 + 9.876, {"status": "COMPLETED", "duration_ms": 9876.5}),
    ]
    _, job = record(store, msgs)
    assert job.info["duration_ms"] == 9876.5
    assert job.info["duration_s"] == 9.876
    assert abs(job.checkpoints()["duration_ms"].iloc[0] - 123.4) < 1e-6


def test_timestamps_are_the_messages_own(store, msg):
    msgs = [
        started(msg),
        metrics(msg, "src_w0_aaaaaa", "src", T0 + 1.25, 10),
        msg("log", "src_w0_aaaaaa", T0 + 2.5, {"message": "hello"}),
    ]
    _, job = record(store, msgs)
    assert job.worker_metrics()["ts"].iloc[0] == pd.Timestamp(T0 + 1.25, unit="s", tz="UTC")
    assert job.logs()["ts"].iloc[0] == pd.Timestamp(T0 + 2.5, unit="s", tz="UTC")
    assert job.info["start_time"] == pd.Timestamp(T0, unit="s", tz="UTC")


def test_a_worker_started_before_job_started_is_kept(store, msg):
    msgs = [
        msg("worker_started", "mid_w0_aaaaaa", T0 - 1, {"stage_id": "mid"}),
        metrics(msg, "mid_w0_aaaaaa", "mid", T0 - 0.5, 5),
        started(msg),
    ]
    _, job = record(store, msgs)
    assert list(job.workers()["worker_id"]) == ["mid_w0_aaaaaa"]
    assert set(job.dag.stages["stage_id"]) == {"src", "mid", "sink"}


def test_the_final_status_is_durable_even_as_the_last_message(tmp_path):
    """The process ingests job_failed and dies at once (no finish, no atexit)."""
    root = tmp_path / "store"
    code = textwrap.dedent(f"""
        import os, solstice_inspect as si
        rec = si.connect({str(root)!r}).record("j1", flush_interval=60, heartbeat_interval=60)
        rec.ingest([si.envelope("job_started", "j1", "j1", {T0}, {{}}),
                    si.envelope("job_failed", "j1", "j1", {T0} + 3.5,
                                {{"error": "OOM in enrich", "duration_ms": 3500.25}})])
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    import solstice_inspect as si

    job = si.connect(root).job("j1")
    assert job.status == "FAILED"
    assert job.info["error"] == "OOM in enrich"
    assert job.info["duration_ms"] == 3500.25


def test_backpressure_without_a_flag_follows_solstices_5000_3500_hysteresis(store, msg):
    lags = [1000, 5200, 4000, 3600, 3400, 5001]
    msgs = [started(msg)] + [
        msg("stage_metrics", "mid", T0 + i, {"queue_lag": lag}) for i, lag in enumerate(lags, 1)
    ]
    _, job = record(store, msgs)
    sm = job.stage_metrics()
    active = sm[sm["stage_id"] == "mid"].set_index("queue_lag")["backpressure_active"]
    assert active.to_dict() == {
        1000: False,
        5200: True,
        4000: True,
        3600: True,
        3400: False,
        5001: True,
    }
    kinds = job.events()["event_type"].tolist()
    assert kinds.count("backpressure_started") == 2
    assert kinds.count("backpressure_cleared") == 1


def test_a_stages_own_totals_never_fall(store, msg):
    """A stage master's cumulative report is a counter too: a late, smaller one (or the
    first worker report of a stage known so far by its own reports) never lowers it."""
    msgs = [
        started(msg),
        msg("stage_metrics", "mid", T0 + 1, {"input_records": 500, "output_records": 400}),
        msg("stage_metrics", "mid", T0 + 2, {"input_records": 300, "output_records": 200}),
        metrics(msg, "mid_w0_aaaaaa", "mid", T0 + 3, 50, 40),
        msg("stage_metrics", "mid", T0 + 4, {"input_records": 600, "output_records": 450}),
        metrics(msg, "mid_w0_aaaaaa", "mid", T0 + 5, 900, 800),
    ]
    _, job = record(store, msgs)
    sm = job.stage_metrics()
    mid = sm[sm["stage_id"] == "mid"]
    assert list(mid["input_records"]) == [500, 500, 500, 600, 900]
    assert list(mid["output_records"]) == [400, 400, 400, 450, 800]


def _split(msg, reporter, ts, split_id, parents, inp, out, worker=None):
    payload = {
        "stage_id": "mid",
        "split_id": split_id,
        "parent_split_ids": parents,
        "input_records": inp,
        "output_records": out,
        "processing_time": 0.1,
    }
    if worker is not None:
        payload["worker_id"] = worker
    return msg("split_processed", reporter, ts, payload)


def test_splits_a_crashed_worker_never_reported_count_in_the_stage_totals(store, msg):
    # mid_w0 finished three splits of 10 records, but its rate-limited counters reported
    # only the first before it crashed; the stage master reported each committed split
    w0, w1 = "mid_w0_aaaaaa", "mid_w1_bbbbbb"
    msgs = [
        started(msg),
        msg("worker_started", w0, T0 + 1, {"stage_id": "mid"}),
        metrics(msg, w0, "mid", T0 + 1.2, 10, 8),
        *[
            _split(msg, "mid", T0 + 1 + k * 0.3, f"mid_s{k}", [f"s{k}"], 10, 8, worker=w0)
            for k in range(3)
        ],
        msg("worker_stopped", w0, T0 + 2, {"stage_id": "mid", "reason": "failed: crash"}),
        # the replacement processes the split that was in flight, and one more
        msg("worker_started", w1, T0 + 2.1, {"stage_id": "mid"}),
        _split(msg, "mid", T0 + 2.5, "mid_s3", ["s3"], 10, 7, worker=w1),
        _split(msg, "mid", T0 + 2.8, "mid_s4", ["s4"], 10, 9, worker=w1),
        metrics(msg, w1, "mid", T0 + 2.9, 20, 16),
    ]
    _rec, job = record(store, msgs)
    row = last_stage_row(job, "mid")
    # truth by hand: five splits of 10 in; 8 + 8 + 8 + 7 + 9 out
    assert (row["input_records"], row["output_records"]) == (50, 40)
    lineage = job.lineage()
    assert sorted(lineage["worker_id"]) == [w0, w0, w0, w1, w1]  # on behalf of, not "mid"
    assert set(lineage["status"]) == {"COMMITTED"}


def test_a_redelivered_split_is_stored_twice_and_counted_once(store, msg):
    w0, w1 = "mid_w0_aaaaaa", "mid_w1_bbbbbb"
    msgs = [
        started(msg),
        _split(msg, "mid", T0 + 1, "mid_s0", ["s0"], 10, 10, worker=w0),
        _split(msg, "mid", T0 + 1.5, "mid_s1", ["s1"], 10, 10, worker=w0),
        # w0 died after finishing s1 but before its commit: s1 is processed again
        _split(msg, "mid", T0 + 2, "mid_s1", ["s1"], 10, 10, worker=w1),
    ]
    rec, job = record(store, msgs)
    row = last_stage_row(job, "mid")
    assert (row["input_records"], row["output_records"]) == (20, 20)
    lineage = job.lineage().sort_values("ts")
    assert list(lineage["status"]) == ["COMMITTED", "COMMITTED", "DUPLICATE"]
    assert list(lineage["worker_id"]) == [w0, w0, w1]
    assert rec.stats["duplicate_splits"] == 1


def test_a_workers_own_split_reports_are_lineage_not_totals(store, msg):
    # a producer reporting lineage for a sample of its splits (or with its own counting):
    # the stage's totals stay its counters'
    w0 = "mid_w0_aaaaaa"
    msgs = [
        started(msg),
        metrics(msg, w0, "mid", T0 + 1, 10, 7),
        _split(msg, w0, T0 + 1.5, "mid_s0", ["s0"], 512, 512),
    ]
    _rec, job = record(store, msgs)
    row = last_stage_row(job, "mid")
    assert (row["input_records"], row["output_records"]) == (10, 7)
    assert list(job.lineage()["status"]) == ["PROCESSED"]
