"""Listing, attempts, LOST, lookups and filtered reads against a real Lance store."""

from __future__ import annotations

import gzip
import time

import pandas as pd
import pytest

import solstice_inspect as si
from solstice_inspect.analysis.stages import bottleneck
from tests.conftest import T0, metrics, started


def run_job(store, msg, job_id, status=None, t0=T0, **options):
    rec = store.record(job_id, **options)
    rec.ingest(
        [
            msg("job_started", job_id, t0, {"dag_edges": {"a": ["b"]}}, job_id=job_id),
            msg(
                "worker_metrics",
                "a_w0_aaaaaa",
                t0 + 1,
                {"stage_id": "a", "output_records": 10},
                job_id=job_id,
            ),
        ]
    )
    if status is not None:
        rec.finish(status)
    return rec


def test_listing_with_running_failed_completed_and_several_attempts(store, msg):
    running = [run_job(store, msg, "run_a"), run_job(store, msg, "run_b")]
    run_job(store, msg, "broken", "FAILED")
    run_job(store, msg, "nightly", "FAILED", t0=T0)
    run_job(store, msg, "nightly", "COMPLETED", t0=T0 + 100)
    try:
        jobs = store.jobs().set_index("job_id")
        assert jobs["status"].to_dict() == {
            "run_a": "RUNNING",
            "run_b": "RUNNING",
            "broken": "FAILED",
            "nightly": "COMPLETED",
        }
        assert jobs.loc["nightly", "attempts"] == 2
        every = store.jobs(all_attempts=True)
        assert sorted(every[every["job_id"] == "nightly"]["status"]) == ["COMPLETED", "FAILED"]
        attempts = store.job("nightly").attempts()
        assert list(attempts["status"]) == ["FAILED", "COMPLETED"]  # oldest first
        first = store.job("nightly", attempt=1)
        assert first.status == "FAILED"
        assert store.job("nightly", attempt=first.attempt_id).attempt_id == first.attempt_id
        assert si.job("nightly", store=store).status == "COMPLETED"
    finally:
        for rec in running:
            rec.close()


def test_a_running_attempt_with_a_stale_heartbeat_reads_lost(store, msg):
    rec = run_job(store, msg, "flaky", heartbeat_interval=0.2)
    assert store.job("flaky").status == "RUNNING"
    rec.close()  # the writer goes away without a final status, like a killed process
    time.sleep(0.8)  # > 3 heartbeat intervals
    assert store.job("flaky").status == "LOST"
    assert store.jobs().set_index("job_id").loc["flaky", "status"] == "LOST"


def test_a_live_recording_keeps_its_heartbeat_fresh(store, msg):
    rec = run_job(store, msg, "steady", heartbeat_interval=0.2)
    try:
        time.sleep(1.0)
        assert store.job("steady").status == "RUNNING"
    finally:
        rec.finish("COMPLETED")


def test_unknown_job_lists_known_ones_and_suggests_the_closest(store, msg):
    run_job(store, msg, "etl_001", "COMPLETED")
    run_job(store, msg, "etl_002", "COMPLETED")
    with pytest.raises(si.JobNotFound) as info:
        store.job("etl_01")
    text = str(info.value)
    assert "etl_001, etl_002" in text
    assert "did you mean etl_001?" in text
    assert str(store.root) in text
    with pytest.raises(si.JobNotFound, match="attempt"):
        store.job("etl_001", attempt=5)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 500])
def test_unsafe_job_ids_fail_before_touching_disk(store, bad):
    with pytest.raises(ValueError, match="not a safe name"):
        store.record(bad)
    with pytest.raises(ValueError, match="not a safe name"):
        store.job(bad)
    assert not (store.root and __import__("os").path.exists(store.root))


def test_table_reads_columns_filters_and_time_ranges(store, msg):
    with store.record("j1") as rec:
        rec.ingest(
            [started(msg)]
            + [
                metrics(msg, f"{s}_w0_aaaaaa", s, T0 + t, t * 10)
                for t in range(1, 6)
                for s in ("src", "mid")
            ]
        )
    job = store.job("j1")
    t = job.table(
        "worker_metrics",
        columns=["ts", "worker_id", "output_records"],
        where="stage_id = 'mid'",
        since=T0 + 2,
        until=T0 + 4,
    )
    assert t.column_names == ["ts", "worker_id", "output_records"]
    assert t.column("output_records").to_pylist() == [20, 30]
    since_dt = pd.Timestamp(T0 + 5, unit="s", tz="UTC").to_pydatetime()
    assert job.table("worker_metrics", since=since_dt).num_rows == 2
    assert job.table("lineage").num_rows == 0  # a table nobody wrote is empty, with its schema
    assert "parent_split_ids" in job.table("lineage").column_names
    with pytest.raises(ValueError, match=r"tables: .*worker_metrics"):
        job.table("worker_metric")
    with pytest.raises(ValueError, match="no column"):
        job.table("worker_metrics", columns=["nope"])
    with pytest.raises(ValueError, match="cannot read worker_metrics"):
        job.table("worker_metrics", where="stage_id ==== 'x'")


def test_dag_and_info(store, msg):
    with store.record("j1", config={"owner": "data-eng"}) as rec:
        rec.ingest(started(msg))
    job = store.job("j1")
    assert sorted(job.dag.edges) == [("mid", "sink"), ("src", "mid")]
    assert job.dag.sources == ["src"]
    assert job.dag.sinks == ["sink"]
    assert job.dag.topological_order() == ["src", "mid", "sink"]
    assert job.info["config"] == {"owner": "data-eng", "batch": 64}
    assert "<h3>j1" in job._repr_html_()


def test_the_shipped_sample_reads_back_consistently(store):
    from solstice_inspect.demo.stream import SAMPLE_PATH

    with store.record("sample_etl") as rec, gzip.open(SAMPLE_PATH, "rb") as fh:
        rec.ingest(fh)
    job = store.job("sample_etl")
    summary = job.stage_summary().set_index("stage_id")
    assert list(summary.index) == ["source", "parse", "filter", "enrich", "sink"]
    # records flow: each stage reads what its upstream wrote, and the job drains
    for up, down in [
        ("source", "parse"),
        ("parse", "filter"),
        ("filter", "enrich"),
        ("enrich", "sink"),
    ]:
        assert summary.loc[down, "input_records"] == summary.loc[up, "output_records"]
    assert summary.loc["filter", "selectivity"] == pytest.approx(0.7, abs=0.01)
    # enrich is the slow stage: Solstice marks it (its input lags) and it is the bottleneck
    assert summary.loc["enrich", "backpressure_level"] in ("LOW", "HIGH")
    assert summary.loc["parse", "backpressure_level"] == "OK"
    assert bottleneck(summary.reset_index()) == "enrich"
    assert job.info["records_in"] == summary.loc["source", "output_records"]
    assert job.info["records_out"] == summary.loc["sink", "output_records"]
    groups = job.exception_groups()
    assert groups.iloc[0]["exception_type"] == "JSONDecodeError"
    assert groups.iloc[0]["count"] > 1  # many line numbers, one fingerprint
    assert job.checkpoints()["offsets"].map(len).min() >= 1


def test_a_cached_catalog_row_still_turns_lost_as_time_passes(store, msg):
    rec = store.record("j1", heartbeat_interval=0.2)
    rec.ingest(started(msg))
    rec.flush()
    job = store.job("j1")
    assert job.catalog_row()["status"] == "RUNNING"
    assert job.catalog_row()["status"] == "RUNNING", "a second read, from the cache"
    rec._stop.set()  # the recorder stops heartbeating (its process is gone)
    rec._thread.join()
    deadline = time.monotonic() + 5
    while job.catalog_row()["status"] != "LOST" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.catalog_row()["status"] == "LOST"
    assert store.job("j1").status == "LOST", "a fresh read agrees"
