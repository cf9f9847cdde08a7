"""Pure analysis functions: fingerprints, grouping, backpressure levels, stage summary."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from solstice_inspect.analysis.exceptions import fingerprint, root_cause_hint, top_frames
from solstice_inspect.analysis.snapshot import JobSnapshot
from solstice_inspect.analysis.stages import backpressure_level, bottleneck


def fold(**tables: pd.DataFrame) -> JobSnapshot:
    snap = JobSnapshot("j", "a1")
    snap.add({name: pa.Table.from_pandas(df, preserve_index=False) for name, df in tables.items()})
    return snap


TRACE = """Traceback (most recent call last):
  File "/app/runner.py", line 10, in run
    stage.process(split)
  File "/app/stages.py", line 88, in process
    rec = json.loads(raw)
json.decoder.JSONDecodeError: Expecting ',' delimiter"""


def test_one_bug_at_many_places_has_one_fingerprint():
    a = fingerprint("KeyError", "missing 'user_id' in record 17", TRACE)
    b = fingerprint("KeyError", "missing 'session' in record 90411", TRACE)
    assert a == b


def test_different_types_or_code_paths_have_different_fingerprints():
    base = fingerprint("KeyError", "missing x", TRACE)
    assert fingerprint("ValueError", "missing x", TRACE) != base
    assert fingerprint("KeyError", "missing x", TRACE.replace("process", "flush")) != base


def test_top_frames_are_the_innermost():
    assert top_frames(TRACE, 1) == ["stages.py:process"]


@pytest.mark.parametrize(
    ("etype", "message", "word"),
    [
        ("MemoryError", "", "memory"),
        ("RayActorError", "The actor died", "worker died"),
        ("TimeoutError", "timed out after 30s", "timeout"),
        ("KeyError", "'user_id'", "schema drift"),
    ],
)
def test_root_cause_hints(etype, message, word):
    assert word in root_cause_hint(etype, message)


def test_group_exceptions_counts_and_orders_by_frequency():
    ts = pd.to_datetime([1, 2, 3, 4], unit="s", utc=True)
    df = pd.DataFrame(
        {
            "ts": ts,
            "exception_id": list("abcd"),
            "fingerprint": ["f1", "f2", "f2", "f2"],
            "exception_type": ["OOM", "KeyError", "KeyError", "KeyError"],
            "message": ["m", "k1", "k2", "k3"],
            "stacktrace": ["", "", "", ""],
            "stage_id": ["embed", "parse", "parse", "enrich"],
            "worker_id": ["e0", "p0", "p1", "n0"],
            "split_id": [None, "s1", "s2", "s3"],
        }
    )
    groups = fold(exceptions=df).exception_groups()
    first = groups.iloc[0]
    assert (first["fingerprint"], first["count"]) == ("f2", 3)
    assert first["stages"] == ["enrich", "parse"]
    assert first["first_seen"] == ts[1]
    assert first["last_seen"] == ts[3]
    assert first["message"] == "k3"
    assert fold(exceptions=df.iloc[:0]).exception_groups().empty


@pytest.mark.parametrize(
    ("ratio", "level"),
    [(0.0, "OK"), (0.10, "OK"), (0.11, "LOW"), (0.5, "LOW"), (0.51, "HIGH"), (None, "OK")],
)
def test_backpressure_levels_follow_flink(ratio, level):
    assert backpressure_level(ratio) == level


def test_stage_summary_uses_time_weighted_backpressure_and_real_rates():
    ts = pd.to_datetime([0, 1, 2, 10], unit="s", utc=True)
    sm = pd.DataFrame(
        {
            "ts": ts,
            "stage_id": ["s"] * 4,
            "workers_alive": [2, 2, 2, 1],
            "input_records": [0, 100, 200, 1000],
            "output_records": [0, 50, 100, 500],
            "input_rate": [None, 100.0, 100.0, 100.0],
            "output_rate": [None, 50.0, 50.0, 50.0],
            "queue_lag": [0, 10, 20, 30],
            "backpressure_active": [False, True, True, False],
            "backpressure_ratio": [None, 1.0, 1.0, 0.0],
            "skew_ratio": [None, 1.0, 3.0, 2.5],
        }
    )
    row = fold(stage_metrics=sm).stage_summary().iloc[0]
    assert row["input_rate"] == 100.0  # 1000 records over 10 s of message time
    assert row["selectivity"] == 0.5
    assert row["backpressure_ratio"] == pytest.approx(0.2)  # 2 s of 10
    assert row["backpressure_level"] == "LOW"
    assert bool(row["skewed"])
    assert row["workers_alive"] == 1


def test_bottleneck_is_the_most_downstream_backpressured_stage():
    df = pd.DataFrame(
        {
            "stage_id": ["a", "b", "c"],
            "backpressure_level": ["HIGH", "LOW", "OK"],
            "queue_lag": [10, 5, 0],
        }
    )
    assert bottleneck(df) == "b"
    calm = df.assign(backpressure_level="OK", queue_lag=[0, 0, 0])
    assert bottleneck(calm) is None
