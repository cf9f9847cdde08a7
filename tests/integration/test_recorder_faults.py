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
