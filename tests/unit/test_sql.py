"""si.sql: DuckDB over every job's Lance tables, checked against pandas on the same rows."""

from __future__ import annotations

import pandas as pd
import pytest

import solstice_inspect as si
from tests.conftest import T0, metrics

pytest.importorskip("duckdb")


def _run(store, msg, job_id, scale):
    msgs = [
        msg("job_started", job_id, T0, {"dag_edges": {"src": ["sink"]}}, job_id=job_id),
        metrics(msg, "src_w0_aaaaaa", "src", T0 + 1, 10 * scale) | {"job_id": job_id},
        metrics(msg, "src_w0_aaaaaa", "src", T0 + 2, 25 * scale) | {"job_id": job_id},
        metrics(msg, "sink_w0_bbbbbb", "sink", T0 + 2, 20 * scale) | {"job_id": job_id},
        msg(
            "exception",
            "sink_w0_bbbbbb",
            T0 + 3,
            {"stage_id": "sink", "exception_type": "TimeoutError", "message": "it's slow"},
            job_id=job_id,
        ),
    ]
    with store.record(job_id) as rec:
        rec.ingest(msgs)


@pytest.fixture
def two_jobs(store, msg):
    _run(store, msg, "etl_a", 1)
    _run(store, msg, "etl_b", 2)
    _run(store, msg, "etl_b", 3)  # a second attempt of etl_b
    return store


def test_sql_spans_every_attempt_of_every_job(two_jobs):
    got = si.sql(
        "select job_id, attempt_id, max(output_records) as top from worker_metrics "
        "group by all order by job_id, top",
        store=two_jobs,
    )
    # the same answer from pandas, one attempt at a time
    rows = []
    for row in two_jobs.jobs(all_attempts=True).itertuples():
        wm = two_jobs.job(row.job_id, attempt=row.attempt_id).worker_metrics()
        rows.append((row.job_id, row.attempt_id, wm["output_records"].max()))
    want = pd.DataFrame(rows, columns=["job_id", "attempt_id", "top"])
    want = want.sort_values(["job_id", "top"]).reset_index(drop=True)
    assert got.astype({"top": "int64"}).equals(want.astype({"top": "int64"}))
    assert list(got["top"]) == [25, 50, 75]


def test_jobs_filter_latest_and_the_listing(two_jobs):
    latest = si.sql(
        "select job_id, count(*) as n from exceptions group by all order by 1",
        store=two_jobs,
        latest=True,
    )
    assert latest.values.tolist() == [["etl_a", 1], ["etl_b", 1]]
    only_b = si.sql("select count(*) as n from exceptions", store=two_jobs, jobs=["etl_b"])
    assert only_b["n"].iloc[0] == 2
    listing = si.sql("select job_id, status from jobs order by job_id", store=two_jobs)
    assert listing.values.tolist() == [
        ["etl_a", "COMPLETED"],
        ["etl_b", "COMPLETED"],
        ["etl_b", "COMPLETED"],
    ]
    # a quote in the data is data, not SQL
    assert si.sql("select message from exceptions", store=two_jobs, jobs="etl_a")[
        "message"
    ].tolist() == ["it's slow"]


def test_a_table_no_attempt_wrote_is_empty_with_its_columns(two_jobs):
    got = si.sql("select checkpoint_id, stage_id from checkpoints", store=two_jobs)
    assert got.empty
    assert list(got.columns) == ["checkpoint_id", "stage_id"]


def test_bad_sql_and_unknown_jobs_say_what_to_do(two_jobs):
    with pytest.raises(si.InspectError, match="tables: jobs, "):
        si.sql("select nope from worker_metrics", store=two_jobs)
    with pytest.raises(si.JobNotFound, match="etl_a"):
        si.sql("select 1", store=two_jobs, jobs=["etl_aa"])
