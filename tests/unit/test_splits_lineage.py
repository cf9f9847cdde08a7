"""Splits and lineage (issue 9): ``job.splits``, ``job.trace`` and ``si.lineage_view`` on
crafted streams in a real Lance store, against answers worked out by hand below.

The stream (times are seconds after T0; pt = processing_time):

    src_w0   src_split_0   t=1 pt=0.5   (its own per-record error at t=0.8: stays ok)
    src_w0   src_split_1   t=2 pt=0.5
    src_w0   src_split_2   t=3 pt=0.5
    mid_w0   mid_src_split_0 ← src_split_0   t=4 pt=1.0
    mid_w0   mid_src_split_1 ← src_split_1   t=5 pt=0.5
    mid_w1   crashes on src_split_2 at t=6 (exception, worker FAILED)
    mid_w0   mid_src_split_1 ← src_split_1   t=7 pt=0.5   (redelivered: processed twice)
    mid_w2   mid_src_split_2 ← src_split_2   t=8 pt=1.5   (the replacement redoes it)
    join_w0  join_0 ← mid_src_split_0, mid_src_split_1   t=9 pt=0.5   (fan-in)
    join_w0  fails on join_1 at t=10; nobody processes it
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from widget_jobs import append_rows

import solstice_inspect as si
from solstice_inspect.analysis.lineage import LineageGraph, Neighbourhood
from solstice_inspect.analysis.splits import split_status

T0 = 1_764_331_200.0
TS = pa.timestamp("us", tz="UTC")
SRC, MID0, MID1, MID2, JOIN = (
    "src_w0_aaaaaa", "mid_w0_bbbbbb", "mid_w1_cccccc", "mid_w2_dddddd", "join_w0_eeeeee",
)  # fmt: skip
EDGES = {"src": ["mid"], "mid": ["join"]}


def t(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + seconds, unit="s", tz="UTC")


def stream(msg) -> list[dict]:
    def split(worker, stage, sid, ts, pt, parents=(), n_in=100, n_out=90):
        return msg(
            "split_processed",
            worker,
            T0 + ts,
            {
                "stage_id": stage,
                "split_id": sid,
                "parent_split_ids": list(parents),
                "input_records": n_in,
                "output_records": n_out,
                "processing_time": pt,
            },
        )

    def exc(worker, stage, sid, ts, etype, message):
        return msg(
            "exception",
            worker,
            T0 + ts,
            {
                "stage_id": stage,
                "worker_id": worker,
                "exception_type": etype,
                "message": message,
                "stacktrace": f'Traceback (most recent call last):\n  File "{stage}.py"\n{etype}',
                "split_id": sid,
            },
        )

    def started(worker, stage, ts):
        return msg("worker_started", worker, T0 + ts, {"stage_id": stage})

    return [
        msg("job_started", "j1", T0, {"dag_edges": EDGES}),
        started(SRC, "src", 0.1),
        started(MID0, "mid", 0.2),
        started(MID1, "mid", 0.3),
        started(JOIN, "join", 0.4),
        exc(SRC, "src", "src_split_0", 0.8, "ValueError", "bad record 17"),
        split(SRC, "src", "src_split_0", 1, 0.5),
        split(SRC, "src", "src_split_1", 2, 0.5),
        split(SRC, "src", "src_split_2", 3, 0.5),
        split(MID0, "mid", "mid_src_split_0", 4, 1.0, ["src_split_0"]),
        split(MID0, "mid", "mid_src_split_1", 5, 0.5, ["src_split_1"]),
        exc(MID1, "mid", "src_split_2", 6, "MemoryError", "worker died"),
        msg("worker_stopped", MID1, T0 + 6.1, {"stage_id": "mid", "reason": "FAILED"}),
        split(MID0, "mid", "mid_src_split_1", 7, 0.5, ["src_split_1"]),
        started(MID2, "mid", 7.2),
        split(MID2, "mid", "mid_src_split_2", 8, 1.5, ["src_split_2"], n_out=80),
        split(JOIN, "join", "join_0", 9, 0.5, ["mid_src_split_0", "mid_src_split_1"], 180, 170),
        exc(JOIN, "join", "join_1", 10, "KeyError", "'customer_9'"),
    ]


#: the answer, by hand: (end s, split, stage, worker, duration s, status, exception)
EXPECTED = [
    (1, "src_split_0", "src", SRC, 0.5, "ok", "ValueError"),
    (2, "src_split_1", "src", SRC, 0.5, "ok", None),
    (3, "src_split_2", "src", SRC, 0.5, "ok", None),
    (4, "mid_src_split_0", "mid", MID0, 1.0, "ok", None),
    (5, "mid_src_split_1", "mid", MID0, 0.5, "ok", None),
    (7, "mid_src_split_1", "mid", MID0, 0.5, "retried", None),
    (8, "mid_src_split_2", "mid", MID2, 1.5, "retried", "MemoryError"),
    (9, "join_0", "join", JOIN, 0.5, "ok", None),
    (10, "join_1", "join", JOIN, None, "failed", "KeyError"),
]


def record(store, msgs, job_id="j1") -> si.Job:
    for m in msgs:
        m["job_id"] = job_id
    with store.record(job_id) as rec:
        rec.ingest(msgs)
    return store.job(job_id)


@pytest.fixture
def job(store, msg):
    return record(store, stream(msg))


def fingerprints(job) -> dict[str, str]:
    """Exception type → the fingerprint the recorder stored (read from the raw rows)."""
    raw = job.table("exceptions").to_pandas()
    return dict(zip(raw["exception_type"], raw["fingerprint"]))


def expected(job, rows=EXPECTED) -> pd.DataFrame:
    fp = fingerprints(job)
    return pd.DataFrame(
        {
            "end_time": [t(r[0]) for r in rows],
            "split_id": [r[1] for r in rows],
            "stage_id": [r[2] for r in rows],
            "worker_id": [r[3] for r in rows],
            "duration_s": [np.nan if r[4] is None else r[4] for r in rows],
            "status": [r[5] for r in rows],
            # strings as Arrow hands them to pandas (missing: None or NaN by pandas version)
            "exception_fingerprint": pa.array(
                [None if r[6] is None else fp[r[6]] for r in rows], pa.string()
            ).to_pandas(),
        }
    )


def compare(got: pd.DataFrame, want: pd.DataFrame) -> None:
    cols = list(want.columns)
    got = got[cols].reset_index(drop=True)
    got = got.assign(end_time=got["end_time"].dt.as_unit("us"))
    want = want.assign(end_time=want["end_time"].dt.as_unit("us"))
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


# ------------------------------------------------------------------ splits
def test_splits_one_row_per_processing_with_status_by_hand(job):
    got = job.splits()
    assert list(got.columns) == [
        "split_id", "stage_id", "worker_id", "parent_split_ids", "start_time", "end_time",
        "duration_s", "input_records", "output_records", "status", "exception_fingerprint",
    ]  # fmt: skip
    compare(got, expected(job))
    row = got[got["worker_id"] == MID2].iloc[0]
    assert row["start_time"] == t(8 - 1.5)  # ts - processing_time
    assert list(row["parent_split_ids"]) == ["src_split_2"]
    assert (row["input_records"], row["output_records"]) == (100, 80)
    failed = got[got["status"] == "failed"].iloc[0]
    assert pd.isna(failed["start_time"])
    assert pd.isna(failed["input_records"])


def test_a_worker_that_crashed_mid_split_shows_as_a_retry_with_its_failure(job):
    got = job.splits(stage="mid")
    redone = got[got["split_id"] == "mid_src_split_2"]
    assert redone["worker_id"].tolist() == [MID2]
    assert redone["status"].tolist() == ["retried"]
    # the failure stays visible: the crash's fingerprint and the crashed worker's exception
    crash = job.table("exceptions", where=f"worker_id = '{MID1}'").to_pandas()
    assert redone["exception_fingerprint"].tolist() == crash["fingerprint"].tolist()
    assert crash["split_id"].tolist() == ["src_split_2"]


def test_out_of_order_messages_give_the_same_splits(store, msg):
    msgs = stream(msg)
    random.Random(3).shuffle(msgs)
    job = record(store, msgs, "j_shuffled")
    compare(job.splits(), expected(job))


@pytest.mark.parametrize(
    ("kwargs", "ends"),
    [
        ({"stage": "mid"}, [4, 5, 7, 8]),
        ({"stage": ["src", "join"]}, [1, 2, 3, 9, 10]),
        ({"worker": MID2}, [8]),  # still "retried": its siblings are read too
        ({"worker": JOIN}, [9, 10]),
        ({"status": "retried"}, [7, 8]),
        ({"status": "failed"}, [10]),
        ({"status": ["ok", "failed"]}, [1, 2, 3, 4, 5, 9, 10]),
        ({"min_duration_s": 1.0}, [4, 8]),  # failed splits have no duration
        ({"since": T0 + 5, "until": T0 + 9}, [5, 7, 8]),
        ({"since": t(9)}, [9, 10]),
        ({"where": "split_id LIKE 'join%'"}, [9, 10]),  # the failure's exception passes
        ({"where": "output_records < 90"}, [8]),  # exceptions have no output_records
        ({"stage": "mid", "status": "ok", "min_duration_s": 0.6}, [4]),
    ],
)
def test_each_filter_against_the_hand_answer(job, kwargs, ends):
    want = expected(job, [r for r in EXPECTED if r[0] in ends])
    compare(job.splits(**kwargs), want)


def test_unknown_stage_worker_status_or_keyword_name_the_closest(job):
    with pytest.raises(si.InspectError, match=r"no stage 'midd'.*closest.*: mid") as err:
        job.splits(stage="midd")
    assert isinstance(err.value, KeyError)
    assert err.value.closest[0] == "mid"
    with pytest.raises(KeyError, match=r"no worker 'mid_w9_dddddd'.*mid_w2_dddddd"):
        job.splits(worker="mid_w9_dddddd")
    with pytest.raises(ValueError, match=r"no split status 'retry'.*'retried'"):
        job.splits(status="retry")
    with pytest.raises(TypeError, match=r"'stages' \(did you mean 'stage'\?\).*min_duration_s"):
        job.splits(stages="mid")
    # a known stage with nothing to show is an empty answer, not an error
    assert job.splits(stage="mid", status="failed").empty


def test_a_redelivered_split_that_arrived_late_is_decided_by_time():
    # the recorder marks DUPLICATE by arrival: here the earlier processing arrived second
    ts = pa.array([T0 + 7, T0 + 5, T0 + 9], pa.timestamp("s", tz="UTC"))
    rows = pa.table(
        {
            "ts": ts,
            "split_id": ["m_a", "m_a", "m_b"],
            "parent_split_ids": [["a"], ["a"], ["b"]],
            "stage_id": ["m"] * 3,
            "worker_id": ["w1", "w2", "w1"],
            "input_records": [1, 1, 1],
            "output_records": [1, 1, 1],
            "processing_time": [0.1, 0.1, 0.1],
            "status": ["PROCESSED", "DUPLICATE", "DUPLICATE"],
        }
    )
    none = pa.table(
        {
            "ts": pa.array([], pa.timestamp("s", tz="UTC")),
            **{c: pa.array([], pa.string()) for c in ("stage_id", "worker_id", "split_id")},
            "fingerprint": pa.array([], pa.string()),
        }
    )
    got = split_status(rows, none)
    # w2's (t=5) came first in time: ok; w1's (t=7) is the retry; m_b is a lone DUPLICATE
    assert got[["worker_id", "split_id", "status"]].values.tolist() == [
        ["w2", "m_a", "ok"], ["w1", "m_a", "retried"], ["w1", "m_b", "retried"],
    ]  # fmt: skip


# ------------------------------------------------------------------ trace
def edges(df: pd.DataFrame) -> list[tuple]:
    return [
        (r.split_id, r.parent_split_id, r.direction, r.depth, r.end_time) for r in df.itertuples()
    ]


def test_trace_follows_fan_in_up_every_branch(job):
    got = job.trace("join_0", direction="up")
    assert edges(got) == [
        ("join_0", "mid_src_split_0", "up", 1, t(9)),
        ("join_0", "mid_src_split_1", "up", 1, t(9)),
        ("mid_src_split_0", "src_split_0", "up", 2, t(4)),
        ("mid_src_split_1", "src_split_1", "up", 2, t(5)),
        ("mid_src_split_1", "src_split_1", "up", 2, t(7)),  # processed twice: two edges
    ]
    first = got.iloc[0]
    assert (first["stage_id"], first["worker_id"]) == ("join", JOIN)
    assert (first["start_time"], first["duration_s"]) == (t(8.5), 0.5)
    assert (first["input_records"], first["output_records"]) == (180, 170)


def test_trace_down_both_and_depth(job):
    down = job.trace("src_split_1", direction="down")
    assert edges(down) == [
        ("mid_src_split_1", "src_split_1", "down", 1, t(5)),
        ("mid_src_split_1", "src_split_1", "down", 1, t(7)),
        ("join_0", "mid_src_split_1", "down", 2, t(9)),
    ]
    assert edges(job.trace("src_split_1", direction="down", depth=1)) == edges(down)[:2]
    assert len(job.trace("join_0", depth=1)) == 2
    assert job.trace("join_0", depth=0).empty
    both = job.trace("mid_src_split_0", direction="both")
    assert edges(both) == [
        ("mid_src_split_0", "src_split_0", "up", 1, t(4)),
        ("join_0", "mid_src_split_0", "down", 1, t(9)),
    ]
    # a split only named as a parent can be traced too
    assert job.trace("src_split_2", direction="up").empty


def test_trace_unknown_split_or_argument_is_a_clear_error(job):
    with pytest.raises(KeyError, match=r"no split 'join_2'.*closest.*join_0") as err:
        job.trace("join_2")
    assert isinstance(err.value, si.InspectError)
    with pytest.raises(ValueError, match=r"direction must be one of .*did you mean 'down'"):
        job.trace("join_0", direction="dwn")
    with pytest.raises(ValueError, match="depth must be"):
        job.trace("join_0", depth=-1)
    with pytest.raises(TypeError, match=r"no keyword 'dept'.*did you mean 'depth'"):
        job.trace("join_0", dept=1)


# ------------------------------------------------------------------ lineage view
def fanout_job(store, children: int = 50_000) -> si.Job:
    """One source split with ``children`` children, each with one grandchild (Arrow rows
    appended as the recorder stores them: folding 100,000 envelopes takes too long)."""
    job = record(store, [si.envelope("job_started", "fan", "fan", T0, {})], "fan")
    kids = [f"explode_{i}" for i in range(children)]
    ids = ["src_split_0", *kids, *[f"sink_{k}" for k in kids]]
    parents = [[], *[["src_split_0"]] * children, *[[k] for k in kids]]
    n = len(ids)
    stages = ["src"] + ["explode"] * children + ["sink"] * children
    append_rows(
        store,
        job,
        "lineage",
        {
            "ts": pa.array(((T0 + np.arange(n) * 1e-3) * 1e6).astype("int64"), TS),
            "split_id": ids,
            "parent_split_ids": parents,
            "stage_id": stages,
            "worker_id": [f"{s}_w0_abcdef" for s in stages],
            "input_records": np.ones(n, dtype=np.int64),
            "output_records": np.ones(n, dtype=np.int64),
            "processing_time": np.full(n, 1e-3),
            "status": ["PROCESSED"] * n,
        },
        n,
    )
    return store.job("fan")


def drawn(view) -> tuple[int, list[str]]:
    nodes = view.cyto.graph.nodes
    return len(nodes), [n.data["label"] for n in nodes if "more" in n.classes]


def test_a_source_with_50000_children_stays_within_300_nodes_and_expands(store):
    job = fanout_job(store)
    view = si.lineage_view(job, "src_split_0", depth=2)
    # 1 source + 20 children + "+49,980 more" + 20 grandchildren
    assert drawn(view) == (42, ["+49,980 more"])
    assert len(view.cyto.graph.edges) == 41
    key = next(iter(view.hood.more))
    view._on_click({"data": {"id": key}})  # play the front end: a click on "+N more"
    assert drawn(view) == (82, ["+49,960 more"])
    for _ in range(20):  # keep clicking: never past 300
        if key not in view.hood.more:
            break
        view._on_click({"data": {"id": key}})
    count, more = drawn(view)
    assert count == 300
    assert view.hood.size == 300
    # 42 + 6 clicks × 40 = 282; the 7th fits 18 children (one slot stays "+N more")
    assert more == [f"+{50_000 - 20 * 7 - 18:,} more"]
    assert not view.errors.value


def test_clicking_a_split_shows_worker_exceptions_logs_and_checkpoint(store, msg):
    msgs = stream(msg)
    msgs += [
        msg("log", MID2, T0 + 6.4, {"level": "INFO", "message": "before the split"}),
        msg("log", MID2, T0 + 7.0, {"level": "WARNING", "message": "retrying src_split_2"}),
        msg("log", MID0, T0 + 7.0, {"level": "INFO", "message": "another worker's line"}),
        msg("log", MID2, T0 + 8.0, {"level": "INFO", "message": "done src_split_2"}),
        msg("log", MID2, T0 + 8.2, {"level": "INFO", "message": "after the split"}),
    ]
    for cid, status, done in [("cp1", "COMPLETED", 7.5), ("cp2", "FAILED", 8.5),
                              ("cp3", "COMPLETED", 9.5), ("cp4", "COMPLETED", 11.0)]:  # fmt: skip
        msgs.append(
            msg("checkpoint", "mid", T0 + done,
                {"checkpoint_id": cid, "stage_id": "mid", "status": status,
                 "trigger_time": T0 + done - 0.3, "completion_time": T0 + done})
        )  # fmt: skip
    job = record(store, msgs)
    view = si.lineage_view(job, "src_split_2")
    target = next(n for n in view.cyto.graph.nodes if n.data.get("split_id") == "mid_src_split_2")
    view._on_click({"data": dict(target.data)})
    text = view.detail.value
    assert view.selected == "mid_src_split_2"
    assert MID2 in text
    assert "MemoryError" in text
    assert "worker died" in text
    assert "retrying src_split_2" in text
    assert "done src_split_2" in text
    assert "before the split" not in text
    assert "after the split" not in text
    assert "another worker" not in text
    assert "Checkpoint: cp3" in text  # the first COMPLETED one after it ended at t=8


def test_hostile_split_ids_and_log_lines_stay_escaped(store, msg):
    evil = "<script>alert(1)</script>"
    msgs = [
        msg("job_started", "j1", T0, {"dag_edges": {"src": ["mid"]}}),
        msg("split_processed", SRC, T0 + 1,
            {"stage_id": "src", "split_id": evil, "processing_time": 0.5}),
        msg("split_processed", MID0, T0 + 2,
            {"stage_id": "mid", "split_id": f"mid_{evil}", "parent_split_ids": [evil],
             "processing_time": 1.0}),
        msg("log", MID0, T0 + 1.5, {"message": f"<img src=x onerror=alert(2)> {evil}"}),
        msg("exception", MID0, T0 + 1.6,
            {"stage_id": "mid", "exception_type": "ValueError", "message": evil,
             "split_id": evil}),
    ]  # fmt: skip
    job = record(store, msgs)
    view = si.lineage_view(job, f"mid_{evil}")
    static = view._repr_mimebundle_()["text/html"]
    for page in (view.detail.value, static, view._repr_html_(), view.title.value):
        assert "<script" not in page
        assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in static
    assert "&lt;img src=x onerror=alert(2)&gt;" in view.detail.value  # the log line, as text
    parent = next(n for n in view.cyto.graph.nodes if n.data.get("split_id") == evil)
    view._on_click({"data": dict(parent.data)})
    assert "<script" not in view.detail.value
    assert view.selected == evil
    assert job.splits(where=f"split_id = '{evil}'")["split_id"].tolist() == [evil]


def test_lineage_view_unknown_split_names_the_closest(job):
    with pytest.raises(KeyError, match=r"no split 'join_9'.*join_0"):
        si.lineage_view(job, "join_9")


def test_neighbourhood_keeps_fan_in_edges_and_the_depth_bound():
    graph = LineageGraph(
        pa.table(
            {
                "split_id": ["a", "b", "c", "d", "e"],
                "parent_split_ids": [[], [], ["a", "b"], ["c"], ["d"]],
                "stage_id": ["s", "s", "j", "m", "k"],
            }
        )
    )
    hood = Neighbourhood(graph, "c", depth=1)
    assert hood.nodes == {"c": 0, "a": -1, "b": -1, "d": 1}
    assert hood.edges == {("a", "c"), ("b", "c"), ("c", "d")}
    assert Neighbourhood(graph, "a", depth=None).nodes == {"a": 0, "c": 1, "d": 2, "e": 3}
