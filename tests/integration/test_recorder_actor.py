"""JobRecorder as a handle: context manager, one live recorder per job, checkpoints and
events from the driver, Solstice's own envelopes through ingest()."""

from __future__ import annotations

import time

import pytest
import ray

import solstice_inspect as si
from solstice_inspect.errors import InspectError
from solstice_inspect.protocol import envelope

pytestmark = pytest.mark.ray


def _stage_master(rec: si.JobRecorder, job_id: str, tmp_path) -> None:
    with pytest.raises(InspectError, match="already running"):
        si.JobRecorder.start(job_id, store=tmp_path)
    rec.checkpoint(
        "chk_0001",
        stage_id="b",
        trigger_time=1.0,
        completion_time=1.25,
        offsets=[{"partition_id": 0, "committed_offset": 7, "latest_offset": 9}],
    )
    rec.event("rescale", stage_id="b", description="b: 1 -> 2 workers")
    ref = rec.ingest(
        [envelope("log", job_id, "b_w0_abcdef", time.time(), {"message": "from Solstice"})]
    )
    assert ray.get(ref)["accepted"] == 1
    raise RuntimeError("stage master lost")


def test_context_manager_records_failure_and_frees_the_name(ray_cluster, tmp_path):
    job_id = "actor_cm"
    rec = si.JobRecorder.start(job_id, dag={"a": ["b"]}, store=tmp_path)
    with pytest.raises(RuntimeError, match="stage master lost"), rec:
        _stage_master(rec, job_id, tmp_path)
    job = si.connect(tmp_path).job(job_id)
    assert job.status == "FAILED"
    assert "RuntimeError: stage master lost" in job.info["error"]
    chk = job.checkpoints().iloc[0]
    assert chk.duration_ms == 250.0
    assert [o["committed_offset"] for o in chk.offsets] == [7]
    assert "rescale" in set(job.events()["event_type"])
    assert list(job.logs()["message"]) == ["from Solstice"]
    # the name is free again: a new attempt of the same job
    again = si.JobRecorder.start(job_id, store=tmp_path)
    assert again.attempt_id != rec.attempt_id
    again.finish()
    assert list(si.connect(tmp_path).attempts(job_id)["status"]) == ["FAILED", "COMPLETED"]
