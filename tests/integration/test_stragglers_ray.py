"""Stragglers on a real Ray: a worker actor whose split sleeps raises an incident with the
sleeping stack, read from the store, still there after the worker is killed; the demo's
straggler (``run_pipeline(hang_s=...)``) too."""

from __future__ import annotations

import time

import pytest
import ray

import solstice_inspect as si
from solstice_inspect.demo.pipeline import run_pipeline

pytestmark = pytest.mark.ray

STAGE = "embed"
WORKER = "embed_w0_a1b2c3"


def _embed_worker():
    """The worker actor, defined in a function: Ray ships it by value (the test module
    is not importable in Ray's worker processes)."""

    def wait_for_model_server(seconds: float) -> None:
        time.sleep(seconds)

    class EmbedWorker:
        def __init__(self, tel):
            self.tel = tel
            tel.started(assigned_partitions=[0])

        def process(self, split_id: str, seconds: float) -> float:
            with self.tel.split(split_id, ["src_" + split_id]) as s:
                if seconds > 1:
                    self.tel.log("INFO", f"calling the model server for {split_id}")
                    wait_for_model_server(seconds)
                else:
                    time.sleep(seconds)
                s.input_records = s.output_records = 8
            return time.time()

    return ray.remote(num_cpus=0, max_restarts=0)(EmbedWorker)


def _incidents(job, deadline_s: float):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        rows = job.incidents()
        if len(rows):
            return rows
        time.sleep(0.2)
    raise AssertionError("no incident stored in time")


def test_a_sleeping_split_is_an_incident_that_outlives_its_worker(ray_cluster, tmp_path):
    job_id = "stragglers_ray"
    rec = si.JobRecorder.start(job_id, dag={"src": [STAGE]}, store=tmp_path, flush_interval=0.5)
    worker = _embed_worker().remote(rec.telemetry(stage_id=STAGE, worker_id=WORKER))
    # twelve splits of 0.05 s, then one that hangs for a minute
    ray.get([worker.process.remote(f"embed_s{i}", 0.05) for i in range(12)])
    hang = worker.process.remote("embed_hung", 60.0)
    hang_sent = time.time()
    job = si.connect(tmp_path).job(job_id)
    rows = _incidents(job, 20)
    row = rows.iloc[0]
    assert (row["kind"], row["stage_id"], row["worker_id"], row["split_id"]) == (
        "straggler",
        STAGE,
        WORKER,
        "embed_hung",
    )
    assert row["finished_splits"] >= 12
    assert row["mean_s"] == pytest.approx(0.05, abs=0.03)
    assert row["threshold_s"] == pytest.approx(1.0)  # 0.05 s + 4σ, raised to the 1 s floor
    # detected within two 1 s detection intervals past the threshold
    detected_after = (row["detected_at"] - row["started_at"]).total_seconds()
    assert 1.0 <= detected_after <= 1.0 + 2 * 1.0 + 0.5, detected_after
    assert row["started_at"].timestamp() >= hang_sent - 1.0
    assert "in wait_for_model_server" in row["stack"]
    assert "time.sleep(seconds)" in row["stack"]
    assert row["log_tail"].endswith("INFO calling the model server for embed_hung")
    assert row["status"] == "running"
    # the worker dies mid-hang: the incident stays, and says its split never finished
    ray.kill(worker, no_restart=True)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(hang, timeout=30)
    rec.ingest(
        [
            si.envelope(
                "worker_stopped",
                job_id,
                WORKER,
                time.time(),
                {"stage_id": STAGE, "reason": "killed"},
            )
        ]
    )
    rec.finish("COMPLETED")
    archived = si.connect(tmp_path).job(job_id).incidents()
    assert len(archived) == 1
    after = archived.iloc[0]
    assert after["incident_id"] == row["incident_id"]
    assert "in wait_for_model_server" in after["stack"]
    assert after["status"] == "unfinished"
    assert after["outcome"] == "not finished: its worker killed"
    # the twelve fast splits were reported by the worker itself, with measured times
    lineage = si.connect(tmp_path).job(job_id).lineage()
    assert len(lineage) == 12
    assert lineage["processing_time"].between(0.05, 0.5).all()


def test_the_demo_straggler_is_an_incident_with_the_sleeping_frame(ray_cluster, tmp_path):
    result = run_pipeline(job_id="demo_hang", duration=5, hang_s=6.0, store=tmp_path)
    assert result.job is not None
    rows = result.job.incidents()
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["stage_id"] == "enrich"
    assert row["worker_id"].startswith("enrich_w0_")
    assert row["finished_splits"] >= 10
    assert "in _slow_geo_lookup" in row["stack"]
    assert "time.sleep(" in row["stack"]
    assert "geo lookup for" in row["log_tail"]
    # the split was committed after its hang: the incident says how long it took
    assert row["status"] == "finished"
    assert 6.0 <= row["duration_s"] < 8.0
    assert row["outcome"] == f"finished after {row['duration_s']:.1f} s"
