"""Must hold 2 and 3: the recorder's process dies mid-run."""

from __future__ import annotations

import time

import pytest

from solstice_inspect.demo.pipeline import run_pipeline

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("how", ["sigkill", "ray"])
def test_recorder_killed_mid_run(ray_cluster, tmp_path, how):
    result = run_pipeline(
        job_id=f"rec_killed_{how}",
        duration=5,
        store=tmp_path,
        flush_interval=0.25,
        heartbeat_interval=0.5,
        kill_recorder_at=0.4,
        kill_recorder_with=how,
    )
    # the pipeline completed without its recorder
    assert result.recorder_killed
    assert result.sink_rows == result.truth["sink"]["output_records"] > 0
    assert result.truth["sink"]["input_records"] == result.truth["enrich"]["output_records"]
    # and the workers' telemetry counted what it could not deliver
    assert result.telemetry_dropped > 0
    assert all(w["telemetry"]["sender_errors"] == 0 for w in result.workers.values())
    # everything flushed before the kill is intact and readable
    job = result.job
    for table, (rows, last_batch) in result.flushed_before_kill.items():
        assert rows > 0 or table == "lineage", table
        kept = job.table(table, columns=["batch"], where=f"batch <= {last_batch}").num_rows
        assert kept == rows, table
    wm = job.worker_metrics()
    assert {"source", "parse"} <= set(wm["stage_id"])
    assert (wm["output_records"] > 0).any()
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
