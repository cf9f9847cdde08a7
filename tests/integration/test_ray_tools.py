"""Discovery and live-only debugging through Ray: running_jobs, worker logs/stack/process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

import solstice_inspect as si
from solstice_inspect import ray_tools
from solstice_inspect.demo.pipeline import _RemoteWorker, new_worker_id
from solstice_inspect.errors import JobNotFound
from solstice_inspect.recorder.actor import NAMESPACE

pytestmark = pytest.mark.ray
JOB = "tools_job"


def test_running_jobs_and_live_worker_debugging(ray_cluster, tmp_path, monkeypatch):
    rec = si.JobRecorder.start(
        JOB, dag={"parse": []}, store=tmp_path, flush_interval=0.2, heartbeat_interval=0.5
    )
    worker_id = new_worker_id("parse", 0)
    tel = rec.telemetry(stage_id="parse", worker_id=worker_id)
    actor = _RemoteWorker.options(name=f"parse:{worker_id}", namespace=NAMESPACE).remote(
        "parse", worker_id, tel, partitions=[0], options={}
    )
    pid = ray.get(actor.pid.remote())
    ray.get(actor.flush_telemetry.remote())
    job = rec.job
    deadline = time.monotonic() + 10
    while job.workers().empty and time.monotonic() < deadline:
        time.sleep(0.1)

    deadline = time.monotonic() + 10  # catalog counts refresh with each heartbeat
    while time.monotonic() < deadline:
        running = si.running_jobs()
        mine = running[running["job_id"] == JOB]
        if len(mine) and mine["workers"].iloc[0] == 1:
            break
        time.sleep(0.2)
    assert list(mine["attempt_id"]) == [rec.attempt_id]
    assert mine["status"].iloc[0] == "RUNNING"
    assert mine["workers"].iloc[0] == 1

    proc = job.worker_process(worker_id)
    assert proc["pid"] == pid
    assert proc["memory_mb"] > 10
    assert f"Process {pid}" in job.worker_stack(worker_id)
    deadline = time.monotonic() + 15
    logs = ""
    while worker_id not in logs and time.monotonic() < deadline:
        logs = job.worker_logs(worker_id, tail=50)
        time.sleep(0.5)
    assert f"{worker_id} started: stage parse" in logs
    with pytest.raises(ValueError, match="between 1 and 5000"):
        job.worker_logs(worker_id, tail=6000)
    with pytest.raises(JobNotFound, match="did you mean"):
        job.worker_logs(worker_id[:-1] + "x")
    monkeypatch.setattr(ray_tools, "_pyspy", lambda: None)
    with pytest.raises(ray_tools.PySpyMissing, match="pip install py-spy"):
        job.worker_stack(worker_id)
    monkeypatch.undo()

    ray.kill(actor, no_restart=True)
    from ray.util.state import list_actors

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = [
            a.state
            for a in list_actors(
                address=ray.get_runtime_context().gcs_address,
                filters=[("name", "=", f"parse:{worker_id}")],
            )
        ]
        if states == ["DEAD"]:
            break
        time.sleep(0.2)
    with pytest.raises(ray_tools.WorkerGone, match="is DEAD in Ray"):
        job.worker_process(worker_id)

    rec.finish("COMPLETED")
    with pytest.raises(ray_tools.WorkerGone, match="is COMPLETED"):
        job.worker_logs(worker_id)
    assert JOB not in set(si.running_jobs()["job_id"])


def test_the_cluster_refuses_requests_without_its_token(ray_cluster):
    """The State API ray_tools uses answers only with Ray's token (what the fixture's
    cluster uses for every Ray test): without it, the dashboard refuses."""
    import urllib.error
    import urllib.request

    url = f"http://{ray_cluster.dashboard_url}/api/v0/actors?limit=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code in (401, 403)
    token = (Path.home() / ".ray" / "auth_token").read_text().strip()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
