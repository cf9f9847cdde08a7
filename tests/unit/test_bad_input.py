"""Bad input is rejected with a counted, queryable reason; nothing good around it is lost."""

from __future__ import annotations

import json
import re
import sys
import traceback

import pytest

from solstice_inspect.protocol import MAX_ENVELOPE_BYTES, MAX_PARSE_BYTES
from tests.conftest import T0, metrics, started


def test_a_mixed_stream_keeps_every_valid_message(store, msg):
    good = [started(msg)] + [
        metrics(msg, "src_w0_aaaaaa", "src", T0 + i, i * 10) for i in range(1, 6)
    ]
    lines = [json.dumps(m) for m in good]
    bad = [
        "{this is not json",
        json.dumps({"message_type": "worker_metrics", "job_id": "j1"}),  # missing fields
        json.dumps(
            {**good[1], "sequence": 99, "payload": {"stage_id": "src", "input_records": "many"}}
        ),
        json.dumps({**good[1], "message_type": "telepathy"}),
        json.dumps(
            {
                **good[1],
                "sequence": 98,
                "payload": {"stage_id": "src", "processing_time": float("inf")},
            }
        ),
        json.dumps({**good[1], "job_id": "someone_else"}),
        "[]",
    ]
    stream = [
        lines[0],
        bad[0],
        lines[1],
        bad[1],
        lines[2],
        bad[2],
        bad[3],
        lines[3],
        bad[4],
        lines[4],
        bad[5],
        bad[6],
        lines[5],
    ]
    with store.record("j1") as rec:
        counts = rec.ingest("\n".join(stream).encode())
    assert counts == {"accepted": 6, "duplicates": 0, "rejected": 7}
    assert rec.stats["rejected"] == {
        "invalid_json": 1,
        "missing_field": 1,
        "wrong_type": 1,
        "unknown_message_type": 1,
        "non_finite": 1,
        "job_id_mismatch": 1,
        "not_an_object": 1,
    }
    job = store.job("j1")
    assert len(job.worker_metrics()) == 5
    assert job.info["records_in"] == 50
    rejects = job.rejects()
    assert sorted(rejects["reason"]) == sorted(rec.stats["rejected"])
    assert rejects.loc[rejects["reason"] == "invalid_json", "raw"].iloc[0] == "{this is not json"


def test_a_malformed_checkpoint_is_rejected_without_partial_state(store, msg):
    with store.record("j1") as rec:
        rec.ingest(
            [
                started(msg),
                msg(
                    "checkpoint",
                    "src",
                    T0 + 1,
                    {"checkpoint_id": "c1", "offsets": [{"topic": "no-partition"}]},
                ),
                msg(
                    "checkpoint",
                    "src",
                    T0 + 2,
                    {
                        "checkpoint_id": "c2",
                        "offsets": [{"partition_id": 0, "committed_offset": 5, "latest_offset": 9}],
                    },
                ),
            ]
        )
    chk = store.job("j1").checkpoints()
    assert list(chk["checkpoint_id"]) == ["c2"]
    assert chk["offsets"].iloc[0][0]["committed_offset"] == 5
    assert rec.stats["rejected"] == {"wrong_type": 1}


def test_oversize_messages_are_stored_truncated_and_marked(store, msg):
    with store.record("j1") as rec:
        rec.ingest(
            [
                started(msg),
                msg(
                    "exception",
                    "src_w0_aaaaaa",
                    T0 + 1,
                    {
                        "stage_id": "src",
                        "exception_type": "ValueError",
                        "message": "<b>" * 10_000,
                        "stacktrace": "x" * 200_000,
                    },
                ),
                msg("log", "src_w0_aaaaaa", T0 + 2, {"message": "y" * 50_000}),
            ]
        )
    job = store.job("j1")
    exc = job.exceptions().iloc[0]
    assert bool(exc["truncated"])
    assert exc["message"].endswith("chars]")
    assert len(exc["message"]) < 8_300
    assert bool(job.logs()["truncated"].iloc[0])
    assert rec.stats["truncated"] == 2


def test_a_hostile_object_is_rejected_and_the_recorder_goes_on(store, msg):
    class Weird:
        def __repr__(self):
            raise RuntimeError("no repr for you")

    with store.record("j1") as rec:
        counts = rec.ingest([Weird(), started(msg), object(), None])
    assert counts["accepted"] == 1
    assert counts["rejected"] == 3
    assert store.job("j1").status == "COMPLETED"


def ping(n: int) -> int:
    return pong(n + 1)


def pong(n: int) -> int:  # two functions, so the trace does not fold repeated frames
    return ping(n + 1)


def recursion_trace(limit: int = 20_000) -> str:
    """The text of a real RecursionError, as a worker's except block formats it."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)  # as libraries with deep structures do
    try:
        ping(0)
    except RecursionError:
        return traceback.format_exc()
    finally:
        sys.setrecursionlimit(old)
    raise AssertionError("no RecursionError")


@pytest.mark.parametrize("as_json", [False, True], ids=["dict", "json_bytes"])
def test_an_exception_with_a_huge_stack_trace_is_kept_truncated(store, msg, as_json):
    trace = recursion_trace()
    lines = trace.splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
    assert len(frames) > 15_000
    exc = msg(
        "exception",
        "src_w0_aaaaaa",
        T0 + 1,
        {
            "stage_id": "src",
            "worker_id": "src_w0_aaaaaa",
            "exception_type": "RecursionError",
            "message": lines[-1].split(": ", 1)[1],
            "stacktrace": trace,
            "split_id": "src_split_3",
        },
    )
    item = json.dumps(exc).encode() if as_json else exc
    if as_json:
        assert len(item) > MAX_ENVELOPE_BYTES  # the size that used to be rejected whole
    with store.record("j1") as rec:
        counts = rec.ingest([started(msg), item, metrics(msg, "src_w0_aaaaaa", "src", T0 + 2, 5)])
    assert counts == {"accepted": 3, "duplicates": 0, "rejected": 0}
    assert rec.stats["truncated"] == 1
    job = store.job("j1")
    assert job.info["exceptions"] == 1
    row = job.exceptions().iloc[0]
    assert (row["exception_type"], row["split_id"], bool(row["truncated"])) == (
        "RecursionError",
        "src_split_3",
        True,
    )
    assert row["message"] == "maximum recursion depth exceeded"
    kept = row["stacktrace"]
    # the head: where the trace started, with its first frames
    first_frames = "\n".join(lines[: frames[3]])
    assert kept.startswith("Traceback (most recent call last):\n" + first_frames.split("\n", 1)[1])
    # the tail: the innermost frames and the exception line itself
    last_frames = "\n".join(lines[frames[-3] :])
    assert kept.endswith(last_frames + "\n")
    assert kept.rstrip("\n").splitlines()[-1] == "RecursionError: maximum recursion depth exceeded"
    # the mark between says what was cut
    mark = next(line for line in kept.splitlines() if line.startswith("… [truncated"))
    n_chars, n_frames = (int(x) for x in re.findall(r"\d+", mark))
    assert kept.count('  File "') + n_frames == len(frames)
    assert len(kept) - len(mark) - 1 + n_chars == len(trace)


def test_only_what_stays_too_big_is_oversize_and_the_rest_goes_on(store, msg):
    parents = [f"src_split_{i}" for i in range(150_000)]  # lists have no cap: ~3 MB
    too_big = msg(
        "split_processed",
        "mid_w0_bbbbbb",
        T0 + 1,
        {"stage_id": "mid", "split_id": "mid_all", "parent_split_ids": parents},
    )
    huge_line = b'{"message_type": "log", "x": "' + b"y" * MAX_PARSE_BYTES + b'"}'
    with store.record("j1") as rec:
        counts = rec.ingest(
            [
                started(msg),
                too_big,
                json.dumps(too_big).encode(),
                huge_line,
                metrics(msg, "src_w0_aaaaaa", "src", T0 + 2, 10),
            ]
        )
    assert counts == {"accepted": 2, "duplicates": 0, "rejected": 3}
    assert rec.stats["rejected"] == {"oversize": 3}
    job = store.job("j1")
    assert job.lineage().empty
    assert job.info["records_in"] == 10
    rejects = job.rejects()
    assert all(len(raw) < 4_200 for raw in rejects["raw"])  # kept capped
    assert rejects["detail"].str.contains("bytes").all()


def test_json_nested_past_the_parsers_limit_is_rejected_not_raised(store, msg):
    deep = json.dumps(started(msg)).replace(
        '"config": {', '"config": {"x": ' + "[" * 50_000 + "]" * 50_000 + ", "
    )
    with store.record("j1") as rec:
        counts = rec.ingest([deep.encode(), deep, metrics(msg, "src_w0_aaaaaa", "src", T0 + 1, 3)])
    assert counts == {"accepted": 1, "duplicates": 0, "rejected": 2}
    assert rec.stats["rejected"] == {"too_deep": 2}


def test_a_message_the_fold_cannot_use_is_unfoldable_and_changes_nothing(store, msg):
    bad = started(msg, stages=["src", "mid", "sink"])
    bad["payload"]["stages"][0]["min_parallelism"] = "one"  # int("one") fails in the fold
    bad["sequence"] = 50
    with store.record("j1") as rec:
        counts = rec.ingest([bad, metrics(msg, "x_w0_aaaaaa", "x", T0 + 1, 3)])
        assert rec._fold.stages.keys() == {"x"}  # no half-declared stage left behind
    assert counts == {"accepted": 1, "duplicates": 0, "rejected": 1}
    assert rec.stats["rejected"] == {"unfoldable": 1}
    reject = store.job("j1").rejects().iloc[0]
    assert reject["reason"] == "unfoldable"
    assert reject["detail"].startswith("ValueError: invalid literal for int()")
    assert store.job("j1").info["stages"] == 1


def test_absurd_timestamps_are_rejected_and_never_move_the_attempt(store, msg):
    good = [started(msg), metrics(msg, "src_w0_aaaaaa", "src", T0 + 1, 10)]
    absurd = [
        metrics(msg, "src_w0_aaaaaa", "src", ts, 99)
        for ts in (0, 86_400, 32_503_680_000.0, 1e308, -5.0)
    ]
    line = json.dumps(metrics(msg, "src_w0_aaaaaa", "src", T0 + 2, 98))
    texts = [line.replace(str(T0 + 2), v) for v in ("NaN", "-Infinity", "1e999", "0")]
    with store.record("j1") as rec:
        counts = rec.ingest(good + absurd + [t.encode() for t in texts])
    assert counts == {"accepted": 2, "duplicates": 0, "rejected": 9}
    assert rec.stats["rejected"] == {"bad_timestamp": 6, "non_finite": 3}
    assert rec.stats["write_errors"] == 0
    job = store.job("j1")
    assert job.info["start_time"].year == 2025
    assert list(job.worker_metrics()["input_records"]) == [10]
    assert job.info["records_in"] == 10
    # a reject keeps the time it came at, not its absurd one
    assert (job.rejects()["ts"].dt.year >= 2025).all()


def test_values_that_cannot_be_stored_never_cost_the_batch_around_them(store, msg):
    """One bad value used to fail the write of its table's whole batch."""
    w = "src_w0_aaaaaa"
    with store.record("j1") as rec:
        counts = rec.ingest(
            [
                started(msg),
                metrics(msg, w, "src", T0 + 1, 10),
                metrics(msg, w, "src", T0 + 2, 2**64),  # beyond int64
                metrics(msg, w, "src", T0 + 3, 1e300),  # a float no counter reaches
                msg(
                    "stage_metrics",
                    "mid",
                    T0 + 3,
                    {"partition_metrics": {"0": {"latest_offset": 10**30, "committed_offset": 1}}},
                ),
                msg("worker_started", "src_w1_\udcff", T0 + 3, {"stage_id": "src"}),
                msg("log", w, T0 + 3, {"message": "bad byte in caf\udce9.csv"}),
                "not json but text with a lone surrogate \ud800",
                metrics(msg, w, "src", T0 + 4, 20),
            ]
        )
    assert counts == {"accepted": 4, "duplicates": 0, "rejected": 5}
    assert rec.stats["rejected"] == {"out_of_range": 3, "bad_unicode": 1, "invalid_json": 1}
    assert rec.stats["write_errors"] == 0
    job = store.job("j1")
    assert list(job.worker_metrics()["input_records"]) == [10, 20]
    assert job.info["records_in"] == 20
    assert list(job.logs()["message"]) == ["bad byte in caf\\udce9.csv"]
    rejects = job.rejects()
    assert len(rejects) == 5
    assert "\\ud800" in rejects.loc[rejects["reason"] == "invalid_json", "raw"].iloc[0]


def test_a_config_with_keys_of_mixed_types_does_not_block_the_final_status(store, msg):
    job_started = started(msg)
    job_started["payload"]["config"] = {1: "one", "two": 2}  # a Python producer's dict
    with store.record("j1") as rec:
        rec.ingest([job_started, msg("job_completed", "j1", T0 + 5, {"duration_ms": 5000.0})])
    job = store.job("j1")
    assert job.status == "COMPLETED"
    assert job.info["config"] == {"1": "one", "two": 2}
    assert rec.stats["rejected"] == {}


def test_a_huge_or_undecodable_error_still_records_the_failure(store, msg):
    """``with rec:`` records the body's exception; its text may be anything."""

    def body(rec) -> None:
        rec.ingest(started(msg))
        raise OSError("cannot open /data/caf\udce9.csv: " + "x" * 20_000)  # surrogateescape

    rec = store.record("j1")
    with pytest.raises(OSError, match="cannot open"), rec:
        body(rec)
    job = store.job("j1")
    assert job.status == "FAILED"
    error = job.info["error"]
    assert error.startswith("OSError: cannot open /data/caf\\udce9.csv: xxx")
    assert error.endswith("chars]")
    assert len(error) < 8_300
    assert rec.stats["write_errors"] == 0


def test_an_integer_timestamp_too_big_for_a_float_is_rejected_not_raised(store):
    import solstice_inspect as si

    env = si.envelope("job_started", "big_ts", "big_ts", 1_764_331_200.0, {}, 0)
    env["timestamp"] = 10**400  # float(10**400) raises OverflowError
    with store.record("big_ts") as rec:
        rec.ingest([env])
    assert rec.stats["rejected"] == {"bad_timestamp": 1}
