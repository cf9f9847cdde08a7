"""Runs of a job over time (``si.history``, ``si.regressions``) and side by side
(``si.compare``), on crafted runs with known figures in a real Lance store.

Expected values are worked out here by hand (or with plain pandas from the stored rows),
never by the code under test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from widget_jobs import XSS, crafted_run

import solstice_inspect as si

STAGES = ("read", "parse", "write")
#: parse's rate in runs 1–6 of "steady": 100 rec/s ± 3 %
NOISE = [97.0, 103.0, 100.0, 98.0, 102.0, 101.0]


def _steady(store: si.Store, run: int, parse_rate: float, **more) -> si.Job:
    return crafted_run(
        store, "steady", rates={"read": 200.0, "parse": parse_rate, "write": 100.0}, run=run,
        **more,
    )  # fmt: skip


@pytest.fixture(scope="module")
def steady(tmp_path_factory) -> si.Store:
    """Job "steady": runs 1–6 with ±3 % noise on parse, run 7 with parse 40 % slower,
    run 8 back to normal (101.5)."""
    store = si.connect(tmp_path_factory.mktemp("steady") / "store")
    for run, rate in enumerate(NOISE):
        _steady(store, run, rate)
    _steady(store, 6, 60.0)
    _steady(store, 7, 101.5)
    return store


# ------------------------------------------------------------------ history
def test_history_has_one_row_per_attempt_with_statuses_rates_shares_and_exceptions(store):
    crafted_run(store, "etl", rates={"read": 100, "parse": 80}, run=0,
                busy_s={"read": 1.0, "parse": 3.0})  # fmt: skip
    crafted_run(store, "etl", rates={"read": 100, "parse": 40}, run=1, status="FAILED",
                selectivity={"parse": 0.5}, exceptions={"parse": 4},
                busy_s={"read": 1.0, "parse": 1.0})  # fmt: skip
    crafted_run(store, "etl", rates={"read": 120, "parse": 90}, run=2, duration_s=20)

    h = si.history("etl", store=store)

    assert list(h["run"]) == [1, 2, 3]
    assert list(h["status"]) == ["COMPLETED", "FAILED", "COMPLETED"]
    assert list(h["start"].dt.hour) == [12, 13, 14]  # oldest first, an hour apart
    assert list(h["duration_s"]) == [10.0, 10.0, 20.0]
    assert h["rate:read"].tolist() == [100.0, 100.0, 120.0]
    assert h["rate:parse"].tolist() == [80.0, 40.0, 90.0]
    # busy seconds: read 1 + parse 3 → parse 3/4; then 1/2; default 1 + 1 → 1/2
    assert h["share:parse"].tolist() == pytest.approx([0.75, 0.5, 0.5])
    # run 2: parse read 40 / 0.5 = 80 records a second and wrote 40
    assert h["selectivity:parse"].tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert h["exceptions:parse"].tolist() == [0, 4, 0]
    assert h["exceptions"].tolist() == [0, 4, 0]
    assert h["records_out"].tolist() == [800, 400, 1800]


def test_history_of_an_unknown_job_names_the_closest(steady):
    with pytest.raises(si.JobNotFound, match="did you mean steady"):
        si.history("steddy", store=steady)


def test_history_figures_are_the_monitors(store):
    from widget_jobs import archived_job

    job = archived_job(store, "sim", duration_s=10)
    monitor = job.stage_summary().set_index("stage_id")
    row = si.history("sim", store=store).iloc[0]
    for stage in monitor.index:
        assert row[f"rate:{stage}"] == pytest.approx(monitor.loc[stage, "output_rate"])
        assert row[f"selectivity:{stage}"] == pytest.approx(monitor.loc[stage, "selectivity"])


def test_a_sink_that_reports_no_output_is_given_what_it_wrote():
    import pyarrow as pa

    from solstice_inspect.analysis.history import stage_figures

    ts = pa.array([0, 10_000_000] * 2, pa.timestamp("us", tz="UTC"))
    sm = pa.table({
        "ts": ts, "stage_id": ["drop", "drop", "sink", "sink"], "workers_alive": [1] * 4,
        "input_records": [0, 500, 0, 300], "output_records": [0, 0, 0, 0],
        "backpressure_active": [False] * 4, "backpressure_ratio": [None, 0.0] * 2,
        "skew_ratio": [None] * 4,
    })  # fmt: skip
    fig = stage_figures(sm, sinks=["sink"]).set_index("stage_id")
    assert fig.loc["sink", "output_rate"] == 30.0  # 300 written in 10 s
    assert fig.loc["drop", "output_rate"] == 0.0  # a filter that kept nothing: 0
    assert fig.loc["drop", "selectivity"] == 0.0
    assert np.isnan(fig.loc["sink", "duration_share"])  # no processing time reported


def test_a_figure_that_never_varies_is_flagged_only_for_a_real_change():
    from solstice_inspect.analysis.regressions import find_regressions

    earlier = pd.DataFrame({"rate:a": [50.0] * 6, "exceptions:a": [0.0] * 6})
    # MAD 0: 52.5 is outside the band but only 5 % off: no flag; no exceptions before
    df = find_regressions(earlier, {"rate:a": 52.5, "exceptions:a": 2.0})
    assert df[["stage_id", "metric", "change"]].values.tolist() == [["a", "exceptions", np.inf]]
    assert df["message"].tolist() == ["a raised 2 exceptions, against 0 for the median of 6 runs"]
    flagged = find_regressions(earlier, {"rate:a": 60.0})
    assert flagged["message"].tolist() == [
        "a 20 % faster than the median of 6 runs (60 vs 50 rec/s)"
    ]
    assert not flagged["worse"].any()


# ------------------------------------------------------------------ regressions
def test_a_40_percent_slower_stage_is_flagged(steady):
    df = si.regressions(("steady", 7), store=steady)

    median = float(np.median(NOISE))  # 100.5
    mad = float(np.median(np.abs(np.array(NOISE) - median)))  # 1.5
    assert df[["stage_id", "metric"]].values.tolist() == [["parse", "rate"]]
    row = df.iloc[0]
    assert row["value"] == 60.0
    assert row["median"] == median
    assert row["mad"] == mad
    assert row["change"] == pytest.approx(60.0 / 100.5 - 1)  # −40.3 %
    assert bool(row["worse"])
    assert row["message"] == "parse 40 % slower than the median of 6 runs (60 vs 100 rec/s)"
    assert "1 figure outside median ± 3 MAD of 6 earlier runs" in df.attrs["note"]


def test_plus_minus_3_percent_noise_is_not_flagged(steady):
    # run 8 (101.5) against runs 1–7, the slow run 7 among them: the median and MAD
    # shrug the outlier off, and a 1 % difference is no change
    df = si.regressions(("steady", 8), store=steady)
    assert df.empty
    assert df.attrs["note"] == "every stage within median ± 3 MAD of 7 earlier runs"
    # and each noisy run against the ones before it, once there are five
    assert si.regressions(("steady", 6), store=steady).empty


def test_the_latest_run_a_job_or_a_pair_name_the_same_run(steady):
    job = steady.job("steady", attempt=7)
    by_job = si.regressions(job)
    by_pair = si.regressions(("steady", job.attempt_id), store=steady)
    assert by_job["message"].tolist() == by_pair["message"].tolist() != []
    assert si.regressions("steady", store=steady).attrs["attempt_id"] == (
        steady.job("steady").attempt_id
    )


def test_fewer_than_5_earlier_runs_flag_nothing_and_say_why(steady, store):
    df = si.regressions(("steady", 5), store=steady)  # 4 earlier runs
    assert df.empty
    assert df.attrs["note"].startswith("only 4 earlier completed runs")
    assert "at least 5" in df.attrs["note"]

    # failed runs are no baseline: 5 earlier runs, one FAILED, then a slow one
    for run, rate in enumerate([100.0, 101.0, 99.0, 100.0]):
        crafted_run(store, "mixed", rates={"parse": rate}, run=run)
    crafted_run(store, "mixed", rates={"parse": 100.0}, run=4, status="FAILED")
    crafted_run(store, "mixed", rates={"parse": 50.0}, run=5)
    df = si.regressions("mixed", store=store)
    assert df.empty
    assert df.attrs["note"].startswith("only 4 earlier completed runs")


def test_regression_options_are_checked(steady):
    with pytest.raises(ValueError, match="min_runs"):
        si.regressions("steady", store=steady, min_runs=0)
    with pytest.raises(ValueError, match="mad_k and min_change must be >= 0"):
        si.regressions("steady", store=steady, min_change=-0.1)


# ------------------------------------------------------------------ compare
@pytest.fixture(scope="module")
def three(tmp_path_factory) -> tuple[si.Store, list[si.Job]]:
    """Runs A, B, C of "cmp" (oldest first) and D of "other", whose DAG differs."""
    store = si.connect(tmp_path_factory.mktemp("cmp") / "store")
    a = crafted_run(
        store, "cmp", rates={"read": 100, "parse": 80, "write": 80}, run=0,
        busy_s={"read": 1.0, "parse": 2.0, "write": 1.0},
        config={"io": {"batch": 64, "s3": {"region": "eu"}}, "seed": 7, "name": "etl"},
    )  # fmt: skip
    b = crafted_run(
        store, "cmp", rates={"read": 100, "parse": 48, "write": 48}, run=1,
        busy_s={"read": 1.0, "parse": 6.0, "write": 1.0}, exceptions={"parse": 3},
        selectivity={"parse": 0.8}, backpressured=("read",), partition_lags={"parse": [30, 10]},
        config={"io": {"batch": 128, "s3": {"region": "eu"}}, "seed": 7, "name": XSS},
    )  # fmt: skip
    c = crafted_run(
        store, "cmp", rates={"read": 110, "parse": 88, "write": 88}, run=2,
        busy_s={"read": 1.0, "parse": 2.0, "write": 1.0},
        config={"io": {"batch": 64, "s3": {"region": "us"}}, "seed": 7, "name": "etl"},
    )  # fmt: skip
    d = crafted_run(
        store, "other", rates={"read": 100, "clean": 90, "write": 90}, run=3,
        config={"io": {"batch": 64, "s3": {"region": "eu"}}, "seed": 7, "name": "etl"},
    )  # fmt: skip
    return store, [a, b, c, d]


def _bp_ratio(job: si.Job, stage: str) -> float:
    """Time-weighted backpressure ratio of a stage, from its stored windows."""
    sm = job.stage_metrics()
    g = pd.DataFrame(sm[sm["stage_id"] == stage]).sort_values(by="ts")
    dt = g["ts"].diff().dt.total_seconds()
    ok = dt.gt(0) & g["backpressure_ratio"].notna()
    return float((g["backpressure_ratio"][ok] * dt[ok]).sum() / dt[ok].sum())


def test_compare_three_runs_gives_deltas_against_the_baseline(three):
    store, (_, b, _, _) = three
    cmp = si.compare(("cmp", 1), b, "cmp", store=store)
    try:
        assert list(cmp.runs["label"]) == ["cmp #1", "cmp #2", "cmp #3"]
        assert cmp.baseline == "cmp #1"
        t = cmp.table().set_index(["stage_id", "run"])
        assert list(t.index.get_level_values(0).unique()) == ["read", "parse", "write"]
        assert t["common"].all()

        parse_b = t.loc[("parse", "cmp #2")]
        assert parse_b["output_rate"] == 48.0
        assert parse_b["output_rate_delta"] == 48.0 - 80.0
        assert parse_b["output_rate_rel"] == pytest.approx(-0.4)
        assert parse_b["input_rate"] == 60.0  # 48 out at selectivity 0.8
        assert parse_b["selectivity"] == pytest.approx(0.8)
        assert parse_b["selectivity_rel"] == pytest.approx(-0.2)
        assert parse_b["output_records"] == 480.0
        assert parse_b["output_records_delta"] == -320.0
        # busy 6 of 8 s against 2 of 4 s
        assert parse_b["duration_share"] == pytest.approx(0.75)
        assert parse_b["duration_share_delta"] == pytest.approx(0.25)
        assert parse_b["exceptions"] == 3.0
        assert parse_b["exceptions_rel"] == np.inf  # from none
        assert parse_b["skew_ratio"] == pytest.approx(30 / 20)

        read_b = t.loc[("read", "cmp #2")]
        expected = _bp_ratio(b, "read")
        assert expected > 0.5
        assert read_b["backpressure_ratio"] == pytest.approx(expected)
        assert read_b["backpressure_ratio_delta"] == pytest.approx(expected)

        read_c = t.loc[("read", "cmp #3")]
        assert read_c["output_rate_rel"] == pytest.approx(0.10)
        assert t.loc[("write", "cmp #3"), "output_rate_delta"] == pytest.approx(8.0)
        base = t.xs("cmp #1", level="run")
        assert (base["output_rate_delta"] == 0).all()
        assert (base["output_rate_rel"] == 0).all()

        flags = cmp.flags()
        from_none = flags[np.isinf(flags["change"].astype(float))]  # the largest: first
        assert flags.index[: len(from_none)].tolist() == from_none.index.tolist()
        assert sorted(zip(from_none["stage_id"], from_none["run"], from_none["metric"])) == [
            ("parse", "cmp #2", "exceptions"), ("read", "cmp #2", "backpressure_ratio"),
        ]  # fmt: skip
        msgs = set(flags["message"])
        assert "parse: output rate 40 % lower in cmp #2 (48 vs 80)" in msgs
        assert "read: output rate 10 % higher in cmp #3 (110 vs 100)" in msgs
        assert not any(m.startswith("read: output rate") for m in msgs if "cmp #2" in m)
        assert cmp.flags(threshold=0.5)["change"].abs().min() >= 0.5
    finally:
        cmp.close()


def test_config_diff_shows_only_the_nested_keys_that_differ(three):
    _, (a, b, c, _) = three
    cmp = si.compare(a, b, c)
    try:
        diff = cmp.config_diff()
        assert list(diff.columns) == ["key", "cmp #1", "cmp #2", "cmp #3", "differs"]
        assert diff["key"].tolist() == ["io.batch", "io.s3.region", "name"]
        rows = diff.set_index("key")
        assert rows.loc["io.batch"].tolist()[:3] == ["64", "128", "64"]
        assert rows.loc["io.s3.region"].tolist()[:3] == ["eu", "eu", "us"]
        assert rows.loc["name", "cmp #2"] == XSS

        every = cmp.config_diff(all=True)
        assert every["key"].tolist() == ["io.batch", "io.s3.region", "name", "seed"]
        assert every.set_index("key").loc["seed"].tolist() == ["7", "7", "7", False]
        assert every.attrs["keys"] == 4
    finally:
        cmp.close()


def test_runs_with_different_dags_align_the_common_stages_and_list_the_others(three):
    _, (a, _, _, d) = three
    cmp = si.compare(a, d)
    try:
        t = cmp.table()
        common = t[t["common"]]
        assert sorted(set(common["stage_id"])) == ["read", "write"]
        only = t[~t["common"]].set_index("stage_id")
        assert only.loc["parse", "in_runs"] == "cmp #1"
        assert only.loc["clean", "in_runs"] == "other #1"
        assert np.isnan(only.loc["clean", "output_rate_delta"])  # the baseline lacks it
        write = t[(t["stage_id"] == "write") & (t["run"] == "other #1")].iloc[0]
        assert write["output_rate_delta"] == 10.0
        assert cmp.stages == ["read", "parse", "clean", "write"]
        flags = cmp.flags()
        assert {"parse: only in cmp #1", "clean: only in other #1"} <= set(flags["message"])
        classes = {n.data["id"]: n.classes for n in cmp.dag.graph.nodes}
        assert classes == {"read": "same", "parse": "partial", "clean": "partial",
                           "write": "faster"}  # fmt: skip
    finally:
        cmp.close()


def test_unknown_runs_raise_job_not_found_naming_the_closest(three):
    store, _ = three
    with pytest.raises(si.JobNotFound, match=r"no job 'cmq'.*did you mean cmp\?"):
        si.compare("cmp", "cmq", store=store)
    with pytest.raises(si.JobNotFound, match="no attempt '9'"):
        si.compare("cmp", ("cmp", "9"), store=store)
    with pytest.raises(TypeError, match="a run is a Job, a job id"):
        si.compare("cmp", 3, store=store)


def test_compare_takes_2_to_10_runs(three):
    store, _ = three
    with pytest.raises(ValueError, match="2 to 10 runs, not 11"):
        si.compare(*["cmp"] * 11, store=store)
    with pytest.raises(ValueError, match="2 to 10 runs, not 1"):
        si.compare("cmp", store=store)
    with pytest.raises(ValueError, match="baseline=2"):
        si.compare("cmp", "other", baseline=2, store=store)


def test_the_widget_serves_the_deltas_the_config_toggle_charts_and_escaped_html(three):
    _, (a, b, c, _) = three
    cmp = si.compare([a, b, c], baseline=1)
    try:
        assert cmp.baseline == "cmp #2"
        name = cmp.deltas.name
        reply, buffers = cmp.deltas.answer(
            {"type": "page", "id": 1, "table": name, "offset": 0, "limit": 50,
             "filters": {"stage_id": "=parse"}}
        )  # fmt: skip
        assert reply["type"] == "page"
        assert reply["filtered"] == 3
        assert len(buffers) == 1
        import pyarrow as pa

        page = pa.ipc.open_stream(buffers[0]).read_all().to_pandas()
        assert page["output_rate"].tolist() == [80.0, 48.0, 88.0]
        assert page["output_rate_rel"].tolist() == pytest.approx([80 / 48 - 1, 0.0, 88 / 48 - 1])

        cfg = cmp.config.name
        assert cmp.config.tables[cfg]["total"] == 3
        cmp.show_all.value = True  # the toggle, as the front end sets it
        assert cmp.config.tables[cfg]["total"] == 4
        assert cmp.errors.value == ""

        assert set(cmp.charts.specs) == {"read", "parse", "write"}
        assert cmp.charts.stages == ["cmp #1", "cmp #2", "cmp #3"]
        parse = cmp.charts.data["parse"]
        assert sorted(set(parse["s"])) == [0, 1, 2]  # one line per run
        assert min(parse["t"]) >= 0  # seconds since each run's start
        assert max(parse["t"]) <= 10
        by_run = pd.DataFrame(parse).groupby("s")["v"].median().tolist()
        assert by_run == [80.0, 48.0, 88.0]
        json.dumps(cmp.charts.specs["parse"])  # plain JSON, as it travels

        page_html = cmp._repr_mimebundle_()["text/html"]
        assert XSS not in page_html
        assert "&lt;img src=x onerror=alert(1)&gt;" in page_html
        assert "<svg" in page_html
        assert "cmp #2</b> (baseline)" in page_html
        assert "parse: output rate 67 % higher in cmp #1 (80 vs 48)" in set(cmp.flags()["message"])
        assert cmp.flag_list.value.count("<li>") == 11  # the 10 largest, and "… N more"
    finally:
        cmp.close()


def test_the_chart_of_a_stage_is_an_altair_chart_with_one_line_per_run(three):
    _, (a, b, _, _) = three
    cmp = si.compare(a, b)
    try:
        chart = cmp.chart("parse")
        spec = chart.to_dict()
        assert spec["encoding"]["x"]["field"] == "elapsed"
        assert sorted(chart.data["stage"].unique()) == ["cmp #1", "cmp #2"]
        with pytest.raises(ValueError, match="no stage 'nope'"):
            cmp.chart("nope")
    finally:
        cmp.close()
