"""``job.recommendations()``: workers to add to the bottleneck, to take from idle stages,
with the figures — on crafted runs recorded into a real Lance store.

Every expected figure is worked out by hand from the crafted stream: each worker reports
once a second from t = 1 to t = 20 s, its cumulative ``processing_time`` growing by its
busy fraction each second (so busy = Δprocessing_time / Δt exactly); the stage's workers
together write ``rate`` records a second from t = 0 (so its mean output rate is ``rate``);
backpressure messages switch a stage's input queue on (and off) at given seconds.
"""

from __future__ import annotations

import itertools
import math

import pytest

import solstice_inspect as si
from solstice_inspect.widgets.advice import recommendations_html

T0 = 1_764_331_200.0  # 2025-11-28 12:00:00 UTC
DURATION = 20


def record(
    store: si.Store,
    job_id: str,
    stages: dict[str, tuple[int, float, float]],
    *,
    run: int = 0,
    duration: int = DURATION,
    limits: dict[str, tuple[int, int]] | None = None,
    backpressure: dict[str, tuple[float, float | None]] | None = None,
    status: str = "COMPLETED",
    processing_time: bool = True,
) -> si.Job:
    """One attempt: ``stages`` = {stage: (workers, busy fraction, records/s)} in a chain;
    ``limits`` = {stage: (min, max parallelism)} (default 1, 8); ``backpressure`` =
    {stage: (on at s, off at s or None)}. The run starts ``run`` hours after T0."""
    start = T0 + run * 3600.0
    ids = list(stages)
    limits = limits or {}
    specs = [
        {"stage_id": s, "operator_type": s.title(), "min_parallelism": limits.get(s, (1, 8))[0],
         "max_parallelism": limits.get(s, (1, 8))[1]}
        for s in ids
    ]  # fmt: skip
    edges = {u: [d] for u, d in itertools.pairwise(ids)}
    msgs = [
        si.envelope("job_started", job_id, job_id, start, {"dag_edges": edges, "stages": specs})
    ]
    for sid, (n, busy, rate) in stages.items():
        for i in range(n):
            wid = f"{sid}_w{i}"
            msgs.append(si.envelope("worker_started", job_id, wid, start, {"stage_id": sid}, 0))
            for t in range(1, duration + 1):
                out = round(rate / n * t)
                payload = {"stage_id": sid, "input_records": out, "output_records": out,
                           "processed_count": t}  # fmt: skip
                if processing_time:
                    payload["processing_time"] = busy * t
                msgs.append(si.envelope("worker_metrics", job_id, wid, start + t, payload, t))
    for sid, (on, off) in (backpressure or {}).items():
        msgs.append(si.envelope("backpressure", job_id, sid, start + on, {"active": True}))
        if off is not None:
            msgs.append(si.envelope("backpressure", job_id, sid, start + off, {"active": False}))
    msgs.sort(key=lambda m: m["timestamp"])
    final = "job_completed" if status == "COMPLETED" else "job_failed"
    msgs.append(si.envelope(final, job_id, job_id, start + duration, {"status": status}))
    with store.record(job_id) as rec:
        rec.ingest(msgs)
    return store.job(job_id, attempt=run + 1) if run else store.job(job_id)


def by_stage(df):
    return df.set_index("stage_id")


# ------------------------------------------------------------------ this run
def test_the_bottleneck_gets_more_workers_and_the_idle_source_fewer(store):
    # read → enrich → write; enrich cannot keep up from 12:00:05, which throttles read
    # (its queue backs up too from 12:00:08): the root cause is enrich, the most
    # downstream stage backpressured
    job = record(
        store, "etl",
        {"read": (2, 0.10, 40.0), "enrich": (4, 0.97, 40.0), "write": (1, 0.50, 40.0)},
        backpressure={"enrich": (5, None), "read": (8, None)},
    )  # fmt: skip

    df = by_stage(job.recommendations())

    assert list(df.index) == ["read", "enrich", "write"]
    enrich = df.loc["enrich"]
    assert enrich["action"] == "add workers"
    assert enrich["current_workers"] == 4
    # 4 workers × 97 % busy = 3.88 busy workers; at 70 % each: 3.88 / 0.7 = 5.54 → 6
    assert enrich["suggested_workers"] == 6
    assert enrich["busy_fraction"] == pytest.approx(0.97)
    assert enrich["idle_fraction"] == pytest.approx(0.03)
    # bottleneck from 5 s to the last window at 20 s of a 0 → 20 s run: 15 / 20
    assert enrich["bottleneck_share"] == pytest.approx(0.75)
    assert enrich["backpressure_share"] == pytest.approx(0.75, abs=0.05)  # ± one window
    assert enrich["output_rate"] == pytest.approx(40.0)
    assert enrich["reason"] == (
        "enrich was the bottleneck 75 % of the run (backpressure on its input queue since "
        "12:00:05 UTC); its 4 workers were busy 97 % of the time; 6 would be ~65 % busy: "
        "give it 6 workers."
    )
    # read was backpressured too, but only because enrich throttled it: never the
    # bottleneck, and 90 % idle — 2 × 0.1 / 0.7 = 0.29 → 1 worker
    read = df.loc["read"]
    assert read["bottleneck_share"] == 0.0
    assert read["backpressure_share"] > 0.5
    assert (read["action"], read["suggested_workers"]) == ("remove workers", 1)
    assert "idle 90 % of the time (busy 10 %)" in read["reason"]
    assert "may get busier once enrich (downstream, the bottleneck) keeps up" in read["reason"]
    write = df.loc["write"]
    assert (write["action"], write["suggested_workers"]) == ("keep", 1)
    assert write["reason"] == (
        "write's 1 worker was busy 50 % of the time and it was not a bottleneck: keep 1."
    )
    assert (df["history"] == "no earlier runs").all()
    assert job.recommendations().attrs["note"] == ""


def test_a_stage_idle_90_percent_gives_workers_back_down_to_its_min_parallelism(store):
    job = record(
        store, "idle",
        {"parse": (5, 0.10, 50.0), "tag": (6, 0.10, 60.0), "sink": (1, 0.7, 60.0)},
        limits={"tag": (3, 8)},
    )  # fmt: skip

    df = by_stage(job.recommendations())

    # 5 × 0.1 = 0.5 busy workers: 1 worker would be 50 % busy
    parse = df.loc["parse"]
    assert (parse["action"], parse["current_workers"], parse["suggested_workers"]) == (
        "remove workers", 5, 1,
    )  # fmt: skip
    assert parse["idle_fraction"] == pytest.approx(0.9)
    assert parse["reason"] == (
        "parse's 5 workers were idle 90 % of the time (busy 10 %); 1 worker would be ~50 % "
        "busy: give it 1 worker."
    )
    # 6 × 0.1 / 0.7 → 1, but tag must keep its min_parallelism of 3
    tag = df.loc["tag"]
    assert (tag["action"], tag["suggested_workers"]) == ("remove workers", 3)
    assert "3 workers would be ~20 % busy (its min_parallelism is 3)" in tag["reason"]
    assert (df.loc["sink", "action"], df.loc["sink", "suggested_workers"]) == ("keep", 1)


def test_never_beyond_max_parallelism_and_the_reason_says_so(store):
    job = record(
        store, "capped",
        {"read": (1, 0.5, 10.0), "enrich": (4, 0.97, 40.0), "embed": (4, 0.97, 40.0)},
        limits={"enrich": (1, 5), "embed": (1, 4)},
        backpressure={"enrich": (0, 10), "embed": (10, None)},
    )  # fmt: skip

    df = by_stage(job.recommendations())

    # each was the bottleneck half the run; each wants 6 workers
    assert df.loc["enrich", "bottleneck_share"] == pytest.approx(0.5)
    assert df.loc["embed", "bottleneck_share"] == pytest.approx(0.5)
    enrich = df.loc["enrich"]
    assert (enrich["action"], enrich["suggested_workers"]) == ("add workers", 5)
    assert enrich["reason"].endswith(
        "6 would be ~65 % busy: give it 5 workers, capped at its max_parallelism of 5."
    )
    assert "backpressure on its input queue from 12:00:00 to 12:00:10 UTC" in enrich["reason"]
    embed = df.loc["embed"]
    assert (embed["action"], embed["suggested_workers"]) == ("at max_parallelism", 4)
    assert "already runs its max_parallelism of 4" in embed["reason"]
    assert (df["suggested_workers"] <= [8, 5, 4]).all()


def test_a_bottleneck_whose_workers_wait_is_to_be_investigated_not_grown(store):
    job = record(
        store, "waiting",
        {"read": (1, 0.5, 10.0), "enrich": (4, 0.30, 40.0)},
        backpressure={"enrich": (0, None)},
    )  # fmt: skip
    enrich = by_stage(job.recommendations()).loc["enrich"]
    assert (enrich["action"], enrich["suggested_workers"]) == ("investigate", 4)
    assert "busy 30 % of the time: more workers would mostly wait" in enrich["reason"]


def test_too_little_evidence_gives_no_recommendation_and_says_why(store):
    short = record(store, "short", {"read": (2, 0.1, 10.0), "enrich": (4, 0.97, 40.0)},
                   duration=5, backpressure={"enrich": (1, None)})  # fmt: skip
    df = short.recommendations()
    assert (df["action"] == "no recommendation").all()
    assert df["suggested_workers"].isna().all()
    # reports at 1 … 5 s: 4 s between a worker's first and last report
    assert (
        df["note"].tolist()
        == ["only 4.0 s of its workers' reports; at least 10 s are needed to tell busy from idle"]
        * 2
    )
    assert df.attrs["note"] == "no stage has enough evidence yet (see each row's note)"

    blind = record(store, "blind", {"read": (2, 0.1, 10.0)}, processing_time=False)
    row = blind.recommendations().iloc[0]
    assert row["action"] == "no recommendation"
    assert "reported no processing_time" in row["note"]
    assert math.isnan(row["busy_fraction"])

    with store.record("empty") as rec:
        rec.ingest(si.envelope("job_started", "empty", "empty", T0, {"dag_edges": {}}))
    df = store.job("empty").recommendations()
    assert df.empty
    assert df.attrs["note"] == "nothing to recommend from: no stage or worker has reported yet"


# ------------------------------------------------------------------ earlier runs
def test_earlier_runs_with_more_workers_that_ran_faster_set_the_count(store):
    # three earlier runs gave enrich 6 workers and it wrote 60 rec/s; a failed one with
    # 8 workers (not counted: its rate is partial); this run: 4 workers, 40 rec/s
    for run in range(3):
        record(store, "hist", {"read": (1, 0.5, 60.0), "enrich": (6, 0.9, 60.0)}, run=run,
               backpressure={"enrich": (5, None)})  # fmt: skip
    record(store, "hist", {"read": (1, 0.5, 90.0), "enrich": (8, 0.9, 90.0)}, run=3,
           status="FAILED")  # fmt: skip
    job = record(store, "hist", {"read": (1, 0.5, 40.0), "enrich": (4, 0.97, 40.0)}, run=4,
                 backpressure={"enrich": (5, None)})  # fmt: skip

    df = job.recommendations()
    enrich = by_stage(df).loc["enrich"]

    assert df.attrs["earlier_runs"] == 3
    assert enrich["history_runs"] == 3
    assert enrich["history"] == "6 workers: 60.0 rec/s (3 runs)"
    # 60 / 40 = 1.5: 50 % faster with 6 workers
    assert (enrich["action"], enrich["suggested_workers"]) == ("add workers", 6)
    assert enrich["reason"].endswith(
        "its 4 workers were busy 97 % of the time; in 3 earlier runs with 6 workers it ran "
        "50 % faster: give it 6 workers."
    )
    # without history: the utilisation rule alone (also 6 here, but no earlier runs named)
    alone = by_stage(job.recommendations(history=False)).loc["enrich"]
    assert alone["history"] == "no earlier runs"
    assert "earlier runs" not in alone["reason"]


def test_earlier_runs_where_more_workers_did_not_help_turn_add_into_investigate(store):
    for run in range(2):
        record(store, "flat", {"read": (1, 0.5, 41.0), "enrich": (8, 0.9, 41.0)}, run=run,
               backpressure={"enrich": (5, None)})  # fmt: skip
    job = record(store, "flat", {"read": (1, 0.5, 40.0), "enrich": (4, 0.97, 40.0)}, run=2,
                 backpressure={"enrich": (5, None)})  # fmt: skip
    enrich = by_stage(job.recommendations()).loc["enrich"]
    assert (enrich["action"], enrich["suggested_workers"]) == ("investigate", 4)
    # 41 / 40 − 1 = +2.5 %: within the 10 % of "as fast"
    assert "in 2 earlier runs with 8 workers it was not faster (+2 %)" in enrich["reason"]


def test_earlier_runs_that_were_slower_with_fewer_workers_limit_the_cut(store):
    # parse is 90 % idle with 4 workers (40 rec/s); with 1 worker it used to manage only
    # 24 rec/s (40 % slower), with 2 workers 39 rec/s (as fast): keep 2, not 1
    record(store, "cut", {"parse": (1, 0.4, 24.0)}, run=0)
    record(store, "cut", {"parse": (2, 0.2, 39.0)}, run=1)
    job = record(store, "cut", {"parse": (4, 0.1, 40.0)}, run=2)
    parse = by_stage(job.recommendations()).loc["parse"]
    assert (parse["action"], parse["suggested_workers"]) == ("remove workers", 2)
    assert "in 1 earlier run with 1 worker it ran 40 % slower" in parse["reason"]
    assert parse["history"] == "2 workers: 39.0 rec/s (1 run); 1 worker: 24.0 rec/s (1 run)"


# ------------------------------------------------------------------ rendering
def test_the_html_table_escapes_everything_and_shows_the_figures(store):
    job = record(
        store, "html",
        {"read": (2, 0.10, 40.0), "<img src=x onerror=alert(1)>": (4, 0.97, 40.0)},
        backpressure={"<img src=x onerror=alert(1)>": (5, None)},
    )  # fmt: skip
    out = recommendations_html(job.recommendations())
    assert "<img" not in out
    assert "&lt;img src=x onerror=alert(1)&gt;" in out
    assert "4 → 6" in out
    assert "2 → 1" in out
    assert "97 %" in out
    assert "75 %" in out

    report = si.report(job).html()
    assert "<h2>Recommendations</h2>" in report
    assert "give it 6 workers" in report
    assert "<img" not in report


def test_unknown_keyword_names_the_valid_one(store):
    job = record(store, "kw", {"read": (1, 0.5, 10.0)})
    with pytest.raises(TypeError, match="history"):
        job.recommendations(histroy=False)  # type: ignore[call-arg]
