"""A plain Ray Data pipeline shows up as a job: one stage per operator Ray Data runs, with
the pipeline's true row counts, blocks, bytes and tasks, live while it runs."""

from __future__ import annotations

import threading
import time

import pytest

import solstice_inspect as si

pytestmark = pytest.mark.ray

N = 10_000
#: ids doubled, then multiples of 3 kept: the multiples of 6 below 2 * N
KEPT = len(range(0, 2 * N, 6))


def test_a_three_operator_pipeline_is_a_job_with_its_true_counts(ray_cluster, tmp_path):
    import ray.data

    def double(batch):  # defined here: Ray pickles it by value (no test module in workers)
        time.sleep(0.15)  # slow enough that a reader sees the job running
        return {"id": batch["id"] * 2}

    store = si.connect(tmp_path / "store")
    seen_running = threading.Event()
    stop = threading.Event()

    def watch():
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            jobs = store.jobs()
            running = not jobs.empty and jobs["status"].iloc[0] == "RUNNING"
            if running and not store.job("rd").stage_metrics().empty:
                seen_running.set()
                return
            stop.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with si.trace_ray_data("rd", store=store, interval=0.2) as tracer:
        ds = (
            ray.data.range(N, override_num_blocks=8)
            .map_batches(double)
            .repartition(4)
            .filter(lambda r: r["id"] % 3 == 0)
        )
        rows = ds.materialize().count()
    stop.set()
    watcher.join()
    assert rows == KEPT
    assert seen_running.is_set(), "the job was never visible as RUNNING with stage metrics"
    assert tracer.errors == 0
    assert len(tracer.attempts) == 1

    job = store.job("rd")
    assert job.status == "COMPLETED"
    summary = job.stage_summary().set_index("stage_id")
    stages = list(summary.index)
    assert len(stages) == 3, stages
    read, repartition, keep = stages
    assert read.startswith("ReadRange->MapBatches(double)")
    assert repartition == "Repartition"
    assert keep.startswith("Filter")
    assert job.dag.edges == [(read, repartition), (repartition, keep)]
    # rows: the source's output, then each operator's in and out
    assert summary.loc[read, "output_records"] == N
    assert (
        summary.loc[repartition, "input_records"],
        summary.loc[repartition, "output_records"],
    ) == (N, N)
    assert (summary.loc[keep, "input_records"], summary.loc[keep, "output_records"]) == (N, KEPT)
    assert (job.info["records_in"], job.info["records_out"]) == (N, KEPT)
    # blocks, bytes and tasks per stage over time, as custom metrics
    cm = job.custom_metrics()
    last = cm.sort_values("ts").groupby(["source_id", "name"])["value"].last()
    assert last[(read, "tasks_finished")] == 8  # one read task per block
    assert last[(repartition, "blocks_out")] == 4
    assert last[(read, "bytes_out")] == N * 8  # one int64 column
    assert cm[cm["name"] == "tasks_running"]["value"].max() >= 1
    assert cm["ts"].nunique() >= 3  # sampled over time, not once at the end


def test_a_failing_pipeline_is_a_failed_job_with_its_exception(ray_cluster, tmp_path):
    import ray.data

    def boom(batch):
        raise ValueError("bad <batch> in the pipeline")

    store = si.connect(tmp_path / "store")
    with (
        si.trace_ray_data("rd_fail", store=store) as tracer,
        pytest.raises(Exception, match="bad <batch>"),
    ):
        ray.data.range(100, override_num_blocks=2).map_batches(boom).materialize()
    assert len(tracer.attempts) == 1
    job = store.job("rd_fail")
    assert job.status == "FAILED"
    exc = job.exceptions()
    assert len(exc) == 1
    assert "bad <batch> in the pipeline" in exc["message"].iloc[0]


def test_datasets_made_before_the_block_are_recorded_when_watched(ray_cluster, tmp_path):
    import ray.data

    store = si.connect(tmp_path / "store")
    early = ray.data.range(100, override_num_blocks=2).map(lambda r: r)
    tracer = si.trace_ray_data("rd_early", store=store)
    early.materialize()
    assert tracer.attempts == []  # the dataset's context was copied before the tracer
    tracer.watch(early).materialize()
    assert len(tracer.attempts) == 1
    assert store.job("rd_early").info["records_out"] == 100


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="interval must be > 0"):
        si.trace_ray_data("rd", store=tmp_path, interval=0)
    with pytest.raises(ValueError, match="not a safe name"):
        si.trace_ray_data("no spaces allowed", store=tmp_path)
