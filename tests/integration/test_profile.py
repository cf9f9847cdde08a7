"""``job.profile``: py-spy samples a live worker actor, the profile goes through the job's
recorder into the ``profiles`` table, and stays readable after the worker and the job
are gone."""

from __future__ import annotations

import time

import pytest
import ray
from waiting import wait_until as wait_for

import solstice_inspect as si
from solstice_inspect.ray_tools import WorkerGone
from solstice_inspect.recorder.actor import NAMESPACE

pytestmark = pytest.mark.ray
JOB = "profile_job"
STAGE = "parse"
WID, OTHER = "parse_w0_a1a1a1", "parse_w1_b2b2b2"


def make_worker_class():
    """A demo-like worker whose only work is a known CPU loop (defined here so that Ray
    ships it by value: the test module is not importable in Ray's workers)."""

    class SpinWorker:
        def __init__(self, tel):
            self.tel = tel
            tel.started(assigned_partitions=[0])
            tel.flush(5.0)

        def burn_cpu_for_profile(self, seconds: float) -> int:
            end, n = time.perf_counter() + seconds, 0
            while time.perf_counter() < end:
                sum(i * i for i in range(200))
                n += 1
            return n

        def stop(self) -> bool:
            self.tel.stopped("stopped by the test")
            return self.tel.flush(5.0)

    # two threads: stop() runs while a loop still burns
    return ray.remote(num_cpus=0, max_concurrency=2)(SpinWorker)


def test_a_live_workers_profile_is_stored_and_outlives_it(ray_cluster, tmp_path):
    rec = si.JobRecorder.start(
        JOB, dag={STAGE: []}, store=tmp_path, flush_interval=0.2, heartbeat_interval=0.5
    )
    actor = (
        make_worker_class()
        .options(name=f"{STAGE}:{WID}", namespace=NAMESPACE)
        .remote(rec.telemetry(stage_id=STAGE, worker_id=WID))
    )
    job = rec.job
    wait_for(lambda: not job.workers().empty, 20, "the worker_started row")

    busy = actor.burn_cpu_for_profile.remote(8.0)
    prof = job.profile(WID, seconds=2, rate=100)
    assert ray.get(busy) > 0

    assert prof["profile_id"].nunique() == 1
    assert set(prof["worker_id"]) == {WID}
    assert set(prof["stage_id"]) == {STAGE}
    assert prof["rate_hz"].iloc[0] == 100.0
    in_loop = prof[prof["stack"].str.contains("burn_cpu_for_profile")]
    # the loop's thread: 2 s at 100 Hz, about 200 samples (fewer when py-spy misses some on
    # a loaded host); Ray's own threads of the actor make up the rest
    assert 60 <= in_loop["samples"].sum() <= 210
    assert in_loop["samples"].sum() >= 0.5 * prof["samples"].sum(), prof[["stack", "samples"]]
    assert prof["stack"].iloc[0] == in_loop["stack"].iloc[0], "the loop is the most sampled"
    assert all(f == f.strip() and f for f in in_loop["frames"].iloc[0])

    # the worker view's buttons on the live worker: a py-spy dump, then a profile drawn
    view = si.worker_view(job, WID)
    busy = actor.burn_cpu_for_profile.remote(30.0)
    wait_for(lambda: "burn_cpu_for_profile" in view.fetch_stack()["text"], 20, "a busy stack")
    assert view.panel.stack["source"] == "live (py-spy dump)"
    thread = view.start_profile(2)
    assert thread is not None
    thread.join(120)
    drawn = view.panel.profile
    assert drawn.get("error") is None, drawn
    rects = next(iter(drawn["spec"]["datasets"].values()))
    frames = [r["frame"] for r in rects]
    # py-spy names a frame by its qualified name and line: "….SpinWorker.burn_cpu_for_profile
    # (test_profile.py:35)"
    assert any("burn_cpu_for_profile (" in f for f in frames), "\n".join(frames)
    assert view.panel.stored_profiles[0]["profile_id"] == drawn["profile_id"], "newest first"
    assert len(view.panel.stored_profiles) == 2
    view.close()

    # the worker stops (its own report: the recorder dedupes a producer's sequence
    # numbers); another worker of its stage is alive
    assert ray.get(actor.stop.remote())
    ray.kill(actor, no_restart=True)
    other = rec.telemetry(stage_id=STAGE, worker_id=OTHER)
    other.started(assigned_partitions=[1])
    assert other.flush(5.0)
    rec.flush()
    wait_for(lambda: len(job.workers()) >= 3, 20, "the stop and the other worker's start")
    with pytest.raises(WorkerGone, match=rf"live workers of stage {STAGE}: {OTHER}"):
        job.profile(WID, seconds=1)

    rec.finish("COMPLETED")
    archived = si.connect(tmp_path).job(JOB)
    stored = archived.profiles(worker=WID)
    assert stored["profile_id"].nunique() == 2  # job.profile's and the view's
    first = stored[stored["profile_id"] == prof["profile_id"].iloc[0]]
    assert first[["stack", "samples"]].to_numpy().tolist() == (
        prof[["stack", "samples"]].to_numpy().tolist()
    )
    with pytest.raises(WorkerGone, match=r"profiling needs a running worker.*job\.profiles\(\)"):
        archived.profile(WID, seconds=1)
