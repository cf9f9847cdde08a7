"""Checkpoints (rows, history, diff), log queries and the exceptions explorer, read from a
real Lance store fed one crafted stream; every expected answer is worked out by hand
below, next to the messages it comes from."""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest

import solstice_inspect as si
from solstice_inspect.errors import NotFound
from solstice_inspect.schema import SCHEMAS
from solstice_inspect.semantics import fingerprint

T0 = 1_764_331_200.0  # 2025-11-28 12:00:00 UTC
JOB = "j1"
SRC, MAP0, MAP1 = "src_w0_aaaaaa", "map_w0_bbbbbb", "map_w1_cccccc"


def at(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + seconds, unit="s", tz="UTC").round("us")


def env(mtype: str, source: str, t: float, payload: dict) -> dict:
    return si.envelope(mtype, JOB, source, T0 + t, payload)


def off(partition, topic, committed, latest):
    return {
        "partition_id": partition,
        "topic": topic,
        "consumer_group": topic.removesuffix("-in"),
        "committed_offset": committed,
        "latest_offset": latest,
    }


def chk(stage: str, t: float, cid: str, **fields) -> dict:
    return env("checkpoint", stage, t, {"checkpoint_id": cid, "stage_id": stage, **fields})


# ------------------------------------------------------------------ the stream
CHECKPOINTS = [
    # chk_1, triggered at +10: both stages complete
    chk("src", 10.2, "chk_1", status="COMPLETED", trigger_time=T0 + 10, completion_time=T0 + 10.2,
        state_size_bytes=1000, offsets=[off("0", "src-in", 100, 110), off("1", "src-in", 50, 50)]),
    chk("map", 10.5, "chk_1", status="COMPLETED", trigger_time=T0 + 10, completion_time=T0 + 10.5,
        state_size_bytes=2000, offsets=[off("0", "map-in", 30, 40)]),
    # chk_2, triggered at +20: src reports COMPLETED (without its trigger time) *before*
    # its IN_PROGRESS report arrives; map fails and commits nothing
    chk("src", 20.4, "chk_2", status="COMPLETED", completion_time=T0 + 20.4,
        state_size_bytes=1500,
        offsets=[off("0", "src-in", 160, 170), off("1", "src-in", 80, 95),
                 off("2", "src-in", 5, 9)]),
    chk("src", 20.0, "chk_2", status="IN_PROGRESS", trigger_time=T0 + 20, offsets=[]),
    chk("map", 21.0, "chk_2", status="FAILED", trigger_time=T0 + 20, completion_time=T0 + 21,
        state_size_bytes=700),
    # chk_3, triggered at +35
    chk("src", 35.1, "chk_3", status="COMPLETED", trigger_time=T0 + 35, completion_time=T0 + 35.1,
        state_size_bytes=1200, offsets=[off("0", "src-in", 200, 200)]),
    chk("sink", 35.3, "chk_3", status="COMPLETED", trigger_time=T0 + 35,
        completion_time=T0 + 35.3, state_size_bytes=10),
]  # fmt: skip

#: (seconds, worker, stage, level, message); numbered 1..12 in arrival order
LOGS = [
    (1, SRC, "src", "INFO", "started source"),
    (2, MAP0, "map", "DEBUG", "batch size 64"),
    (3, MAP0, "map", "WARNING", "Retry 1 of 3: Connection reset"),
    (4, MAP1, "map", "WARN", "disk 90% full"),
    (5, MAP1, "map", "ERROR", "record a_b failed: KeyError 'uri'"),
    (6, SRC, "src", "CRITICAL", "it's over"),
    (7, MAP0, "map", "FATAL", "100% broken"),
    (8, MAP0, "map", "INFO", "axb normal line"),  # what an unescaped "a_b" would match
    (9, MAP1, "map", "INFO", "disk 90 full"),  # what an unescaped "90%" would match
    (2.5, SRC, "src", "ERROR", "late line about CONNECTION trouble"),  # arrives late
    (10, MAP0, "map", "trace", "trace detail"),  # a level outside the standard ones
    (11, MAP1, "map", "INFO", "path C:\\tmp\\x"),
]
#: log number (1-based, as listed) → message
LINE = {i + 1: row[4] for i, row in enumerate(LOGS)}
#: the lines in time order: 10 (at +2.5) comes after 2
BY_TIME = [1, 2, 10, 3, 4, 5, 6, 7, 8, 9, 11, 12]

TRACE_DECODE = (
    "Traceback (most recent call last):\n"
    '  File "/app/pipeline/decode.py", line 7, in decode_frame\n'
    "    img = frame['uri']\n"
    "KeyError: 'uri'"
)
#: (seconds, worker, stage, type, message, stacktrace, split); numbered E1..E5
EXCEPTIONS = [
    (12, MAP0, "map", "KeyError", "'uri'", TRACE_DECODE, "map_split_1"),
    (13, MAP1, "map", "ValueError", "Bad JSON at 100%",
     '  File "/app/parse.py", line 3, in parse_record\nValueError: Bad JSON at 100%',
     "map_split_2"),
    (14, SRC, "src", "TimeoutError", "timed out after 30 s", '  File "/app/io.py", in fetch',
     "src_split_0"),
    (12.5, MAP0, "map", "KeyError", "'uri'", TRACE_DECODE, "map_split_3"),  # arrives late
    (15, MAP1, "map", "RuntimeError", "it's 50%_done", '  File "/app/x.py", in run', None),
]  # fmt: skip
E = {f"E{i + 1}": row for i, row in enumerate(EXCEPTIONS)}
FP = {k: fingerprint(row[3], row[4], row[5]) for k, row in E.items()}


def stream() -> list[dict]:
    msgs = [
        env("job_started", JOB, 0, {"dag_edges": {"src": ["map"], "map": ["sink"]}}),
        env("worker_started", SRC, 0.1, {"stage_id": "src"}),
        env("worker_started", MAP0, 0.1, {"stage_id": "map"}),
        env("worker_started", MAP1, 0.1, {"stage_id": "map"}),
        *CHECKPOINTS,
    ]
    for t, worker, stage, level, text in LOGS:
        msgs.append(
            env("log", worker, t, {"worker_id": worker, "stage_id": stage, "level": level,
                                   "message": text})
        )  # fmt: skip
    for t, worker, stage, etype, text, trace, split in EXCEPTIONS:
        payload = {"worker_id": worker, "stage_id": stage, "exception_type": etype,
                   "message": text, "stacktrace": trace, "split_id": split}  # fmt: skip
        msgs.append(env("exception", worker, t, payload))
    msgs.append(env("job_completed", JOB, 40, {"status": "COMPLETED"}))
    return msgs


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> si.Job:
    store = si.connect(tmp_path_factory.mktemp("store"))
    with store.record(JOB) as rec:
        rec.ingest(stream())
    assert rec.stats["rejected"] == {}
    return store.job(JOB)


def messages(df: pd.DataFrame) -> list[str]:
    return df["message"].tolist()


def lines(*numbers: int) -> list[str]:
    return [LINE[n] for n in numbers]


# ------------------------------------------------------------------ checkpoints
def test_checkpoints_one_row_per_checkpoint_and_stage_with_derived_columns(job):
    df = job.checkpoints()
    # the stored columns as before, then the derived ones
    assert df.columns.tolist() == [*SCHEMAS["checkpoints"].names, "interval_s", "partitions", "lag"]
    # by trigger time, then stage; chk_2's two src reports are one row
    keys = list(zip(df["checkpoint_id"], df["stage_id"]))
    assert keys == [
        ("chk_1", "map"), ("chk_1", "src"), ("chk_2", "map"), ("chk_2", "src"),
        ("chk_3", "sink"), ("chk_3", "src"),
    ]  # fmt: skip
    row = df.set_index(["checkpoint_id", "stage_id"])
    # chk_2/src: COMPLETED arrived first but is the final word; trigger from IN_PROGRESS
    src2 = row.loc[("chk_2", "src")]
    assert src2["status"] == "COMPLETED"
    assert src2["trigger_time"] == at(20)
    assert src2["completion_time"] == at(20.4)
    assert src2["duration_ms"] == pytest.approx(400.0, abs=1e-3)
    assert src2["state_size_bytes"] == 1500
    assert [o["committed_offset"] for o in src2["offsets"]] == [160, 80, 5]
    # partitions and lag: 3 partitions, lag (170-160) + (95-80) + (9-5) = 29
    assert (src2["partitions"], src2["lag"]) == (3, 29)
    assert (row.loc[("chk_1", "src"), "partitions"], row.loc[("chk_1", "src"), "lag"]) == (2, 10)
    assert row.loc[("chk_2", "map"), "partitions"] == 0
    assert pd.isna(row.loc[("chk_2", "map"), "lag"])
    # interval since the same stage's previous trigger: src +10 → +20 → +35
    src = df[df["stage_id"] == "src"]
    assert math.isnan(src["interval_s"].iloc[0])
    assert src["interval_s"].iloc[1:].tolist() == pytest.approx([10.0, 15.0])
    assert math.isnan(row.loc[("chk_3", "sink"), "interval_s"])
    assert row.loc[("chk_2", "map"), "interval_s"] == pytest.approx(10.0)
    assert row.loc[("chk_1", "map"), "duration_ms"] == pytest.approx(500.0, abs=1e-3)


def test_checkpoints_filters(job):
    src = job.checkpoints(stage="src")
    assert src["checkpoint_id"].tolist() == ["chk_1", "chk_2", "chk_3"]
    # the interval of a filtered read is still measured within the stage
    assert src["interval_s"].iloc[1:].tolist() == pytest.approx([10.0, 15.0])
    failed = job.checkpoints(status="failed")
    assert list(zip(failed["checkpoint_id"], failed["stage_id"])) == [("chk_2", "map")]
    window = job.checkpoints(since=T0 + 15, until=T0 + 35)  # triggered at +20 only
    assert set(window["checkpoint_id"]) == {"chk_2"}
    assert len(window) == 2
    both = job.checkpoints(stage=["map", "sink"], status=["COMPLETED"])
    assert list(zip(both["checkpoint_id"], both["stage_id"])) == [
        ("chk_1", "map"),
        ("chk_3", "sink"),
    ]
    with pytest.raises(ValueError, match="did you mean 'COMPLETED'"):
        job.checkpoints(status="complete")


def test_checkpoint_history_aggregates_per_checkpoint(job):
    h = job.checkpoint_history().set_index("checkpoint_id")
    assert h.index.tolist() == ["chk_1", "chk_2", "chk_3"]
    assert h["status"].tolist() == ["COMPLETED", "FAILED", "COMPLETED"]
    # longest stage: chk_1 max(200, 500); chk_2 max(400, 1000); chk_3 max(100, 300)
    assert h["duration_ms"].tolist() == pytest.approx([500.0, 1000.0, 300.0], abs=1e-3)
    # total size: 1000 + 2000; 1500 + 700; 1200 + 10
    assert h["state_size_bytes"].tolist() == [3000, 2200, 1210]
    assert math.isnan(h["interval_s"].iloc[0])
    assert h["interval_s"].iloc[1:].tolist() == pytest.approx([10.0, 15.0])
    assert h["failed_stages"].tolist() == [[], ["map"], []]
    assert h["stages"].tolist() == [2, 2, 2]
    assert h["trigger_time"].tolist() == [at(10), at(20), at(35)]
    assert h["completion_time"].tolist() == [at(10.5), at(21), at(35.3)]
    assert h["partitions"].tolist() == [3, 3, 1]
    assert h["lag"].tolist() == [20, 29, 0]
    recent = job.checkpoint_history(since=T0 + 30)
    assert recent["checkpoint_id"].tolist() == ["chk_3"]
    assert recent["interval_s"].tolist() == pytest.approx([15.0])


def test_checkpoint_diff_per_partition_across_stages(job):
    d = job.checkpoint_diff("chk_1", "chk_2")
    assert [c for c in d.columns if "delta" in c] == ["committed_delta", "latest_delta"]
    key = list(zip(d["stage_id"], d["topic"], d["consumer_group"], d["partition_id"]))
    assert key == [
        ("map", "map-in", "map", "0"),  # only in chk_1 (map failed chk_2, committed nothing)
        ("src", "src-in", "src", "0"),
        ("src", "src-in", "src", "1"),
        ("src", "src-in", "src", "2"),  # only in chk_2
    ]

    def col(name):
        return [None if pd.isna(v) else int(v) for v in d[name]]

    assert col("committed_a") == [30, 100, 50, None]
    assert col("committed_b") == [None, 160, 80, 5]
    assert col("committed_delta") == [None, 60, 30, None]
    assert col("latest_a") == [40, 110, 50, None]
    assert col("latest_b") == [None, 170, 95, 9]
    assert col("latest_delta") == [None, 60, 45, None]
    assert col("lag_a") == [10, 10, 0, None]
    assert col("lag_b") == [None, 10, 15, 4]
    # and back: deltas change sign
    back = job.checkpoint_diff("chk_2", "chk_1")
    assert [None if pd.isna(v) else int(v) for v in back["committed_delta"]] == [
        None, -60, -30, None,
    ]  # fmt: skip


def test_checkpoint_diff_unknown_id_names_the_closest(job):
    with pytest.raises(NotFound) as err:
        job.checkpoint_diff("chk_1", "chk_22")
    assert err.value.closest[0] == "chk_2"
    assert "no checkpoint 'chk_22'" in str(err.value)
    assert "chk_2" in str(err.value)
    assert isinstance(err.value, KeyError)


def test_checkpoints_unknown_stage_names_the_closest(job):
    with pytest.raises(NotFound, match="no stage 'srcc'") as err:
        job.checkpoints(stage="srcc")
    assert err.value.closest[0] == "src"
    # a stage of the job that checkpointed nothing in the window is no error
    assert job.checkpoints(stage="sink", until=T0 + 30).empty


# ------------------------------------------------------------------ logs
def test_logs_without_arguments_are_every_line_in_time_order(job):
    df = job.logs()
    assert df.columns.tolist() == SCHEMAS["logs"].names
    assert messages(df) == lines(*BY_TIME)
    assert df["ts"].is_monotonic_increasing


def test_logs_level_means_this_level_and_above(job):
    assert messages(job.logs(level="warning")) == lines(10, 3, 4, 5, 6, 7)
    assert messages(job.logs(level="ERROR")) == lines(10, 5, 6, 7)
    assert messages(job.logs(level="warn")) == lines(10, 3, 4, 5, 6, 7)
    assert messages(job.logs(level=logging.CRITICAL)) == lines(6, 7)
    # DEBUG and up: every standard level, not the line logged as TRACE
    assert messages(job.logs(level="debug")) == lines(1, 2, 10, 3, 4, 5, 6, 7, 8, 9, 12)
    with pytest.raises(ValueError, match="no log level 'loud'"):
        job.logs(level="loud")


def test_logs_worker_stage_and_time_filters(job):
    assert messages(job.logs(worker=MAP1)) == lines(4, 5, 9, 12)
    assert messages(job.logs(worker=[SRC, MAP1])) == lines(1, 10, 4, 5, 6, 9, 12)
    assert messages(job.logs(stage="src")) == lines(1, 10, 6)
    assert messages(job.logs(since=T0 + 3, until=T0 + 6)) == lines(3, 4, 5)  # until excluded
    assert messages(job.logs(limit=2)) == lines(11, 12)
    assert messages(job.logs(limit=0)) == []
    with pytest.raises(ValueError, match="limit"):
        job.logs(limit=-1)


def test_logs_search_is_a_case_insensitive_substring(job):
    assert messages(job.logs(search="connection")) == lines(10, 3)
    assert messages(job.logs(search="CONNECTION RESET")) == lines(3)
    assert messages(job.logs(search="")) == lines(*BY_TIME)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90%", [4]),  # not 9, "disk 90 full"
        ("%", [4, 7]),
        ("a_b", [5]),  # not 8, "axb normal line"
        ("_", [5]),
        ("it's", [6]),
        ("'", [5, 6]),
        ("\\", [12]),
        ("C:\\tmp", [12]),
        ("' OR '1'='1", []),
        ("x') OR TRUE OR contains(message, '", []),
    ],
)
def test_logs_search_special_characters_match_themselves(job, text, expected):
    assert messages(job.logs(search=text)) == lines(*expected)


def test_logs_combined_filters(job):
    # map lines at WARNING or above containing "r": 3, 5, 7 (4 "disk 90% full" has none)
    assert messages(job.logs(stage="map", level="warning", search="R")) == lines(3, 5, 7)
    assert messages(job.logs(stage="map", level="warning", search="r", limit=2)) == lines(5, 7)
    assert messages(job.logs(worker=MAP0, level="info", since=T0 + 4)) == lines(7, 8)


def test_logs_unknown_worker_or_stage_names_the_closest(job):
    with pytest.raises(NotFound, match="no worker 'map_w9_cccccc'") as err:
        job.logs(worker="map_w9_cccccc")
    assert err.value.closest[0] == MAP1
    with pytest.raises(NotFound, match="no stage 'mapp'") as err:
        job.logs(stage="mapp")
    assert err.value.closest[0] == "map"
    # a known worker without lines in the window: nothing, no error
    assert job.logs(worker=SRC, since=T0 + 100).empty


# ------------------------------------------------------------------ exceptions
def kinds(df: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(df["exception_type"], df["split_id"].fillna("-")))


def expect(*names: str) -> list[tuple[str, str]]:
    return [(E[n][3], E[n][6] or "-") for n in names]


def test_exceptions_without_arguments_are_every_occurrence_in_time_order(job):
    df = job.exceptions()
    assert df.columns.tolist() == SCHEMAS["exceptions"].names
    assert kinds(df) == expect("E1", "E4", "E2", "E3", "E5")  # E4 (+12.5) arrived last


def test_exceptions_search_in_message_stacktrace_and_type(job):
    # only in the stack trace, in another case
    assert kinds(job.exceptions(search="DECODE_FRAME")) == expect("E1", "E4")
    assert kinds(job.exceptions(search="bad json")) == expect("E2")  # the message
    assert kinds(job.exceptions(search="timeouterror")) == expect("E3")  # the type
    assert kinds(job.exceptions(search="50%_")) == expect("E5")
    # "0%" as a LIKE pattern would also match E3's "30 s"
    assert kinds(job.exceptions(search="0%")) == expect("E2", "E5")
    assert kinds(job.exceptions(search="it's")) == expect("E5")
    assert job.exceptions(search="no such text").empty


def test_exceptions_filters_and_their_combinations(job):
    assert kinds(job.exceptions(stage="map", search="uri")) == expect("E1", "E4")
    assert kinds(job.exceptions(worker=MAP1)) == expect("E2", "E5")
    assert kinds(job.exceptions(fingerprint=FP["E1"])) == expect("E1", "E4")
    assert kinds(job.exceptions(fingerprint=[FP["E2"], FP["E3"]])) == expect("E2", "E3")
    assert kinds(job.exceptions(fingerprint=FP["E1"], since=T0 + 12.2)) == expect("E4")
    assert kinds(job.exceptions(fingerprint=FP["E1"], until=T0 + 12.5)) == expect("E1")
    assert kinds(job.exceptions(stage="map", worker=MAP0, search="KEYERROR")) == expect("E1", "E4")
    assert job.exceptions(stage="src", search="uri").empty


def test_exceptions_unknown_ids_name_the_closest(job):
    with pytest.raises(NotFound, match="no stage 'mapp'") as err:
        job.exceptions(stage="mapp")
    assert err.value.closest[0] == "map"
    with pytest.raises(NotFound, match="no worker") as err:
        job.exceptions(worker="map_w1_ccccc")
    assert err.value.closest[0] == MAP1
    wrong = FP["E2"][:-1] + ("0" if FP["E2"][-1] != "0" else "1")
    with pytest.raises(NotFound, match="no fingerprint") as err:
        job.exceptions(fingerprint=wrong)
    assert err.value.closest[0] == FP["E2"]


def test_exception_occurrences_over_time_with_first_and_last_seen(job):
    occ = job.exception_occurrences(freq="1s")
    # E1 (+12) and E4 (+12.5) share a group and a 1 s bucket; the others once each
    assert occ["fingerprint"].tolist() == [FP["E1"], FP["E2"], FP["E3"], FP["E5"]]
    assert occ["time"].tolist() == [at(12), at(13), at(14), at(15)]
    assert occ["count"].tolist() == [2, 1, 1, 1]
    assert occ["exception_type"].tolist() == ["KeyError", "ValueError", "TimeoutError",
                                              "RuntimeError"]  # fmt: skip
    first = occ.iloc[0]
    assert (first["first_seen"], first["last_seen"]) == (at(12), at(12.5))
    # finer buckets split the group; the same figures as the exception groups
    fine = job.exception_occurrences(FP["E1"], freq="250ms")
    assert fine["time"].tolist() == [at(12), at(12.5)]
    assert fine["count"].tolist() == [1, 1]
    groups = job.exception_groups().set_index("fingerprint")
    assert groups.loc[FP["E1"], "first_seen"] == first["first_seen"]
    assert groups.loc[FP["E1"], "last_seen"] == first["last_seen"]
    assert job.exception_occurrences(search="json")["fingerprint"].tolist() == [FP["E2"]]
    with pytest.raises(ValueError, match="freq"):
        job.exception_occurrences(freq="soon")
