"""The job model (JobSnapshot): the same rows in 1 batch or in 100 give identical figures,
and every figure equals an independent pandas computation over the raw tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from widget_jobs import archived_job

import solstice_inspect as si
from solstice_inspect.analysis.snapshot import SNAPSHOT_COLUMNS, JobSnapshot

T0 = 1_764_331_200.0  # 2025-11-28 12:00:00 UTC
NOW = T0 + 3600


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return archived_job(si.connect(tmp_path_factory.mktemp("store")), "etl_model", duration_s=40)


@pytest.fixture(scope="module")
def raw(job):
    """Every table the model reads, whole, in storage order."""
    return {name: job.table(name) for name in SNAPSHOT_COLUMNS}


def fed(job, batches: list[dict[str, pa.Table]]) -> JobSnapshot:
    snap = JobSnapshot(job.job_id, job.attempt_id)
    for rows in batches:
        snap.add(rows)
    snap.set_catalog(job.catalog_row())
    return snap


def split(raw: dict[str, pa.Table], n: int) -> list[dict[str, pa.Table]]:
    """Every table cut into ``n`` consecutive slices; slice i of every table together."""
    out = []
    for i in range(n):
        rows = {}
        for name, table in raw.items():
            bounds = np.linspace(0, table.num_rows, n + 1).astype(int)
            rows[name] = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        out.append(rows)
    return out


def figures(snap: JobSnapshot) -> dict:
    return {
        "header": snap.header(now=NOW),
        "summary": snap.stage_summary(),
        "workers": snap.workers().to_pandas(),
        "groups": snap.exception_groups(),
        "partitions": snap.partitions(),
        "spark": snap.spark(),
        "exceptions": snap.exceptions.num_rows,
        "facts": snap.stage_facts("enrich"),
        "dag": (list(snap.dag.stages["stage_id"]), snap.dag.edges),
    }


def test_one_batch_or_a_hundred_give_identical_figures(job, raw):
    one = figures(fed(job, [raw]))
    hundred = figures(fed(job, split(raw, 100)))
    assert one["header"] == hundred["header"]
    pd.testing.assert_frame_equal(one["summary"], hundred["summary"], check_exact=True)
    pd.testing.assert_frame_equal(one["workers"], hundred["workers"], check_exact=True)
    pd.testing.assert_frame_equal(one["groups"], hundred["groups"], check_exact=True)
    pd.testing.assert_frame_equal(one["partitions"], hundred["partitions"], check_exact=True)
    for key in ("spark", "exceptions", "facts", "dag"):
        assert one[key] == hundred[key], key
    # and batches in the reverse order of arrival (late rows): still the same figures
    late = figures(fed(job, split(raw, 7)[::-1]))
    pd.testing.assert_frame_equal(one["summary"], late["summary"], check_exact=False, rtol=1e-12)
    assert one["header"]["records_out"] == late["header"]["records_out"]


def test_stage_summary_equals_pandas(job, raw):
    summary = fed(job, split(raw, 13)).stage_summary().set_index("stage_id")
    sm = raw["stage_metrics"].to_pandas().sort_values("ts", kind="stable")
    assert set(summary.index) == set(sm["stage_id"])
    for stage, g in sm.groupby("stage_id"):
        row = summary.loc[stage]
        first, last = g.iloc[0], g.iloc[-1]
        span = (last["ts"] - first["ts"]).total_seconds()
        assert row["input_records"] == last["input_records"]
        assert row["output_records"] == last["output_records"]
        assert row["workers_alive"] == last["workers_alive"]
        assert row["queue_lag"] == last["queue_lag"]
        assert row["input_rate"] == pytest.approx(
            (last["input_records"] - first["input_records"]) / span
        )
        assert row["output_rate"] == pytest.approx(
            (last["output_records"] - first["output_records"]) / span
        )
        assert row["output_rate_now"] == g["output_rate"].dropna().iloc[-1]
        dt = g["ts"].diff().dt.total_seconds()
        ok = g["backpressure_ratio"].notna() & (dt > 0)
        ratio = (g["backpressure_ratio"][ok] * dt[ok]).sum() / dt[ok].sum()
        assert row["backpressure_ratio"] == pytest.approx(ratio, rel=1e-9)
        level = "OK" if ratio <= 0.1 else "LOW" if ratio <= 0.5 else "HIGH"
        assert row["backpressure_level"] == level
    assert (summary["backpressure_level"] != "OK").any(), "the slow stage is backpressured"


def test_header_equals_pandas_and_the_recorders_catalog(job, raw):
    snap = fed(job, split(raw, 5))
    head = snap.header(now=NOW)
    sm = raw["stage_metrics"].to_pandas().sort_values("ts", kind="stable")
    last = sm.groupby("stage_id").tail(1).set_index("stage_id")
    assert head["records_in"] == last.loc["source", "output_records"]
    sink_out = last.loc["sink", "output_records"] or last.loc["sink", "input_records"]
    assert head["records_out"] == sink_out
    assert head["workers"] == last["workers_alive"].sum()
    assert head["exceptions"] == raw["exceptions"].num_rows
    cat = job.catalog_row()  # the recorder's own counts, by the same rule
    assert (head["records_in"], head["records_out"]) == (cat["records_in"], cat["records_out"])
    assert head["exceptions"] == cat["exceptions"]
    assert head["status"] == "COMPLETED"
    assert head["elapsed_s"] == pytest.approx(
        (cat["end_time"] - cat["start_time"]).total_seconds(), abs=0.05
    )


def test_workers_groups_and_partitions_equal_pandas(job, raw):
    snap = fed(job, split(raw, 9))
    wm = raw["worker_metrics"].to_pandas().sort_values("ts", kind="stable")
    latest = wm.groupby("worker_id").tail(1).set_index("worker_id")
    workers = snap.workers().to_pandas().set_index("worker_id")
    for wid, row in latest.iterrows():
        assert workers.loc[wid, "input_records"] == row["input_records"]
        assert workers.loc[wid, "output_rate"] == pytest.approx(row["output_rate"], nan_ok=True)
    exc = raw["exceptions"].to_pandas().sort_values("ts", kind="stable")
    groups = snap.exception_groups().set_index("fingerprint")
    for fp, g in exc.groupby("fingerprint"):
        assert groups.loc[fp, "count"] == len(g)
        assert groups.loc[fp, "first_seen"] == g["ts"].min()
        assert groups.loc[fp, "last_seen"] == g["ts"].max()
        assert groups.loc[fp, "message"] == g["message"].iloc[-1]
        assert groups.loc[fp, "stages"] == sorted(set(g["stage_id"].dropna()))
    pm = raw["partition_metrics"].to_pandas().sort_values("ts", kind="stable")
    want = pm.groupby(["stage_id", "partition_id"]).tail(1)
    got = snap.partitions()
    assert len(got) == len(want) > 0
    merged = got.merge(want, on=["stage_id", "partition_id"], suffixes=("", "_want"))
    assert (merged["lag"] == merged["lag_want"]).all()


def test_lost_shows_its_reason_and_progress_shows_eta(job, raw):
    snap = fed(job, [raw])
    head = snap.header(now=NOW)
    records_in = head["records_in"]
    hb = pd.Timestamp(NOW - 42, unit="s", tz="UTC")
    snap.set_catalog({**job.catalog_row(), "status": "LOST", "heartbeat": hb})
    head = snap.header(now=NOW)
    assert head["status"] == "LOST"
    assert (
        head["status_reason"] == "no heartbeat for 42 s (expected every 5 s): the recorder is gone"
    )
    snap.config = {**snap.config, "total_records": records_in * 4}
    snap.set_catalog({**job.catalog_row(), "status": "RUNNING"})
    head = snap.header(now=NOW)
    assert head["progress"] == pytest.approx(0.25)
    src = raw["stage_metrics"].to_pandas()
    rate_now = src[src["stage_id"] == "source"].sort_values("ts")["output_rate"].dropna().iloc[-1]
    assert head["rate_in"] == pytest.approx(rate_now, abs=0.05)
    if rate_now:
        assert head["eta_s"] == pytest.approx(records_in * 3 / rate_now, abs=1)


# ---------------------------------------------------------------- real Solstice semantics
def real_solstice_stream(job_id: str = "real") -> list[dict]:
    """What the real Solstice runtime sends (DESIGN §3): workers report before
    job_started, a sink reports output_records = 0, worker_metrics are not sent at stop
    (the last counters lag), and job_failed arrives before the last worker_stopped."""
    env = si.envelope
    w = {"read": "read_w0_aaaaaa", "write": "write_w0_bbbbbb"}
    return [
        env("worker_started", job_id, w["read"], T0, {"stage_id": "read"}, 0),
        env("worker_started", job_id, w["write"], T0 + 0.1, {"stage_id": "write"}, 0),
        env("worker_metrics", job_id, w["read"], T0 + 0.5,
            {"stage_id": "read", "input_records": 0, "output_records": 400,
             "processed_count": 4}, 1),
        env("job_started", job_id, job_id, T0 + 2,
            {"dag_edges": {"read": ["write"]},
             "stages": [{"stage_id": "read"}, {"stage_id": "write"}]}, 0),
        env("worker_metrics", job_id, w["write"], T0 + 3,
            {"stage_id": "write", "input_records": 300, "output_records": 0,
             "processed_count": 3}, 1),
        env("worker_metrics", job_id, w["read"], T0 + 3.2,
            {"stage_id": "read", "input_records": 0, "output_records": 500,
             "processed_count": 5}, 2),
        env("worker_stopped", job_id, w["read"], T0 + 4,
            {"stage_id": "read", "reason": "done", "processed_count": 5, "error_count": 0}, 3),
        env("job_failed", job_id, job_id, T0 + 5,
            {"status": "FAILED", "error": "sink quota exceeded", "duration_ms": 2500.5}, 1),
        env("worker_stopped", job_id, w["write"], T0 + 5.2,
            {"stage_id": "write", "reason": "error: quota", "processed_count": 4,
             "error_count": 1}, 2),
    ]  # fmt: skip


def test_real_solstice_semantics(store):
    with store.record("real") as rec:
        rec.ingest(real_solstice_stream())
    job = store.job("real")
    cat = job.catalog_row()
    assert cat["status"] == "FAILED"
    assert cat["start_time"] == pd.Timestamp(T0, unit="s", tz="UTC"), (
        "first message, not job_started"
    )
    assert cat["records_in"] == 500
    assert cat["records_out"] == 300, "a sink reporting 0 output wrote its input"
    snap = job.snapshot()
    head = snap.header(now=T0 + 10)
    assert (head["records_in"], head["records_out"]) == (500, 300)
    assert head["status_reason"] == "sink quota exceeded"
    workers = snap.workers().to_pandas().set_index("worker_id")
    write = workers.loc["write_w0_bbbbbb"]
    assert write["status"] == "FAILED"
    assert bool(write["stale"]), "its last metrics predate worker_stopped and miss a split"
    assert write["processed_count"] == 4, "splits from worker_stopped"
    read = workers.loc["read_w0_aaaaaa"]
    assert not bool(read["stale"]), "its last metrics agree with worker_stopped"
    assert read["processed_count"] == 5
    facts = {label: value for label, value, _ in snap.stage_facts("write")}
    assert facts["records written (sink)"] == 300
    assert job.info["duration_ms"] == 2500.5


def test_stage_detail_names_flagged_partitions_and_backpressure_since(store):
    t0 = 1_764_331_200.0
    seq = iter(range(100))

    def env(mtype, source, ts, payload):
        return si.envelope(mtype, "evid", source, ts, payload, next(seq))

    lags = {"0": 100, "1": 100, "2": 900}  # mean 366.7: partition 2 is 2.45x
    parts = {
        p: {"latest_offset": 1000 + v, "committed_offset": 1000, "lag": v} for p, v in lags.items()
    }
    msgs = [env("job_started", "evid", t0, {"dag_edges": {"read": ["embed"]}})]
    for k, active in enumerate([False, True, False, True, True]):
        msgs.append(
            env(
                "stage_metrics",
                "embed",
                t0 + 1 + k,
                {
                    "worker_count": 2,
                    "backpressure_active": active,
                    "queue_lag": 1100,
                    "partition_metrics": parts,
                },
            )
        )
    with si.connect(store.root).record("evid") as rec:
        rec.ingest(msgs)
    snap = store.job("evid").snapshot()
    p = snap.partitions("embed").set_index("partition_id")
    assert p["flagged"].tolist() == [False, False, True]
    assert p.loc["2", "lag_vs_mean"] == round(900 / (1100 / 3), 2)
    facts = {label: value for label, value, _ in snap.stage_facts("embed")}
    assert facts["flagged partitions (lag > 2x mean)"] == "1 of 3: 2 (lag 900, 2.5x mean)"
    # backpressured in the windows at t0+4 and t0+5 (the run after the calm one at t0+3)
    assert facts["backpressured since"] == t0 + 4
    assert facts["bottleneck"].startswith("yes: most downstream backpressured stage")
    assert {label: value for label, value, _ in snap.stage_facts("read")}["bottleneck"] == (
        "no: embed is"
    )
