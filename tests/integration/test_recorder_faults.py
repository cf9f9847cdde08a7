"""Must hold 2 and 3: the recorder's process dies mid-run."""

from __future__ import annotations

import time

import pytest

from solstice_inspect.demo.pipeline import run_pipeline

pytestmark = pytest.mark.ray


def _stage_totals(job):
    """The recorder's own per-stage totals: its last stage_metrics window of each stage."""
    sm = job.stage_metrics().sort_values(["batch", "ts"], kind="stable")
    last = sm.groupby("stage_id").tail(1).set_index("stage_id")
    return {
        s: {"input_records": int(r.input_records), "output_records": int(r.output_records)}
        for s, r in last.iterrows()
    }


def test_recorder_process_killed_is_restarted_and_the_attempt_completes(ray_cluster, tmp_path):
    result = run_pipeline(
        job_id="rec_killed_sigkill",
        duration=6,
        store=tmp_path,
        flush_interval=0.25,
        heartbeat_interval=0.5,
        kill_recorder_at=0.4,
        kill_recorder_with="sigkill",
    )
    assert result.recorder_killed
    assert not result.recorder_gone
    job = result.job
    # the same attempt went on and completed: no second attempt, no LOST
    assert list(job.attempts()["attempt_id"]) == [job.attempt_id]
    assert job.status == "COMPLETED"
    # every stage's totals, as the recorder itself stored them, equal the pipeline's truth
    totals = _stage_totals(job)
    for stage, truth in result.truth.items():
        assert totals[stage]["input_records"] == truth["input_records"], stage
        assert totals[stage]["output_records"] == truth["output_records"], stage
    cat = job.catalog_row()
    assert cat["records_in"] == result.truth["source"]["output_records"]
    assert cat["records_out"] == result.sink_rows > 0
    # nothing flushed before the kill was lost, and the restart is counted and shown
    for table, (rows, last_batch) in result.flushed_before_kill.items():
        kept = job.table(table, columns=["batch"], where=f"batch <= {last_batch}").num_rows
        assert kept == rows, table
    events = job.events()
    restarts = events[events["event_type"] == "recorder_restarted"]
    assert len(restarts) == 1
    assert "may be missing" in restarts["description"].iloc[0]
    # the workers' reports reached the restarted recorder: nothing was dropped
    assert result.telemetry_dropped == 0
    assert all(w["telemetry"]["sender_errors"] == 0 for w in result.workers.values())


def test_recorder_killed_for_good_leaves_a_lost_attempt(ray_cluster, tmp_path):
    result = run_pipeline(
        job_id="rec_killed_ray",
        duration=5,
        store=tmp_path,
        flush_interval=0.25,
        heartbeat_interval=0.5,
        kill_recorder_at=0.4,
        kill_recorder_with="ray",
    )
    # the pipeline completed without its recorder
    assert result.recorder_gone
    assert result.sink_rows == result.truth["sink"]["output_records"] > 0
    # and the workers' telemetry counted what it could not deliver
    assert result.telemetry_dropped > 0
    job = result.job
    for table, (rows, last_batch) in result.flushed_before_kill.items():
        assert rows > 0 or table == "lineage", table
        kept = job.table(table, columns=["batch"], where=f"batch <= {last_batch}").num_rows
        assert kept == rows, table
    # LOST once three heartbeats (0.5 s each) are missed
    deadline = time.monotonic() + 10
    while job.status != "LOST" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.status == "LOST"


def test_worker_crash_mid_split_is_redelivered(ray_cluster, tmp_path):
    result = run_pipeline(job_id="crash", duration=4, store=tmp_path, crash_worker_at=0.4)
    assert result.crashed is not None
    assert result.job.status == "COMPLETED"
    # the crashed split was redelivered: every record the source made reached the sink
    # stage (less what the filter dropped), none twice
    assert result.sink_rows == result.truth["sink"]["output_records"]
    assert result.truth["parse"]["input_records"] == result.truth["source"]["output_records"]
    workers = result.job.workers()
    crashed = workers[workers["worker_id"] == result.crashed]
    assert list(crashed["event"]) == ["STARTED", "FAILED"]
    assert "actor died" in crashed["reason"].iloc[-1]
    replacement = workers[workers["worker_id"] == result.replacements[0]]
    assert list(replacement["event"]) == ["STARTED", "STOPPED"]
    # the recorder's own per-stage totals equal the truth, although the crashed worker
    # never reported the splits it finished since its last rate-limited report
    totals = _stage_totals(result.job)
    for stage, truth in result.truth.items():
        assert totals[stage]["input_records"] == truth["input_records"], stage
        assert totals[stage]["output_records"] == truth["output_records"], stage
    lineage = result.job.lineage()
    assert len(lineage[lineage["status"] == "COMMITTED"]) == sum(
        t["splits"] for t in result.truth.values()
    )
