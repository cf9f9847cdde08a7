"""Envelope checks: every bad shape gets a countable reason, good ones pass untouched."""

from __future__ import annotations

import json
import math
import re

import pytest

from solstice_inspect.errors import InvalidMessage
from solstice_inspect.protocol import (
    MAX_ENVELOPE_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_PARSE_BYTES,
    MAX_STACKTRACE_CHARS,
    MESSAGE_TYPES,
    SOLSTICE_TYPES,
    cap_trace,
    valid_job_id,
    validate,
)
from tests.conftest import T0


def good(**over):
    env = {
        "message_type": "worker_metrics",
        "job_id": "j1",
        "source_id": "p_w0_abcdef",
        "timestamp": T0 + 1.5,
        "sequence": 3,
        "payload": {"stage_id": "p", "input_records": 10, "output_records": 9},
    }
    env.update(over)
    return env


def reason(obj, job_id="j1") -> str:
    with pytest.raises(InvalidMessage) as info:
        validate(obj, job_id)
    return info.value.reason


def test_a_good_envelope_keeps_its_values():
    env = validate(good())
    assert (env.message_type, env.source_id, env.timestamp, env.sequence) == (
        "worker_metrics",
        "p_w0_abcdef",
        T0 + 1.5,
        3,
    )
    assert env.payload["input_records"] == 10


def test_solstices_thirteen_types_and_our_seven_new_ones_are_known():
    # resources, logs, events, custom metrics, incidents, profiles and samples; our
    # checkpoint payload uses Solstice's own type
    assert len(SOLSTICE_TYPES) == 13
    assert len(MESSAGE_TYPES) == 20


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (b"{not json", "invalid_json"),
        (memoryview(b"{not json"), "invalid_json"),
        (memoryview(json.dumps(good(timestamp=math.nan)).encode()), "non_finite"),
        ("[1, 2]", "not_an_object"),
        (42, "not_an_object"),
        ({k: v for k, v in good().items() if k != "timestamp"}, "missing_field"),
        (good(payload={"input_records": 1}), "missing_field"),  # stage_id is required
        (good(timestamp="yesterday"), "wrong_type"),
        (good(sequence=-1), "wrong_type"),
        (good(payload={"stage_id": "p", "input_records": "10"}), "wrong_type"),
        (good(payload={"stage_id": "p", "input_records": True}), "wrong_type"),
        (good(payload=[1]), "wrong_type"),
        (good(message_type="worker_telemetry"), "unknown_message_type"),
        (good(payload={"stage_id": "p", "processing_time": math.nan}), "non_finite"),
        (good(payload={"stage_id": "p", "processing_time": math.inf}), "non_finite"),
        (good(timestamp=math.inf), "non_finite"),
        (good(payload={"stage_id": "p", "input_records": -5}), "negative"),
        (good(job_id="other_job"), "job_id_mismatch"),
        (good(source_id="x" * 5000), "oversize_id"),
    ],
)
def test_bad_envelopes_are_rejected_with_a_reason(obj, expected):
    assert reason(obj) == expected


YEAR_3000 = 32_503_680_000.0


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (0, "bad_timestamp"),  # 1970: a clock that was never set
        (0.0, "bad_timestamp"),
        (86_400, "bad_timestamp"),
        (946_684_799.0, "bad_timestamp"),  # a second before 2000-01-01
        (YEAR_3000, "bad_timestamp"),
        (7_258_118_400.0, "bad_timestamp"),  # 2200-01-01 is the first time rejected
        (1e308, "bad_timestamp"),
        (-1.0, "bad_timestamp"),
        (-1e308, "bad_timestamp"),
        (10**30, "bad_timestamp"),
        (math.nan, "non_finite"),
        (-math.inf, "non_finite"),
        (True, "wrong_type"),
        ("1764331200", "wrong_type"),
    ],
)
def test_absurd_timestamps_are_rejected_with_a_reason(timestamp, expected):
    assert reason(good(timestamp=timestamp)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"timestamp": 0', "bad_timestamp"),
        ('"timestamp": 1e308', "bad_timestamp"),
        ('"timestamp": -86400', "bad_timestamp"),
        ('"timestamp": 32503680000', "bad_timestamp"),
        ('"timestamp": NaN', "non_finite"),
        ('"timestamp": Infinity', "non_finite"),
        ('"timestamp": -Infinity', "non_finite"),
        ('"timestamp": 1e999', "non_finite"),  # overflows to inf when parsed
    ],
)
def test_absurd_timestamps_in_json_text_are_rejected(text, expected):
    line = json.dumps(good()).replace(f'"timestamp": {T0 + 1.5}', text)
    assert text in line
    assert reason(line.encode()) == expected


@pytest.mark.parametrize(
    "timestamp", [946_684_800.0, 1e9, T0, 1_764_331_200, 7_258_118_399.0]
)  # 2000-01-01 .. 2199
def test_timestamps_from_2000_to_2199_pass(timestamp):
    assert validate(good(timestamp=timestamp)).timestamp == float(timestamp)


def test_a_job_id_that_is_not_a_safe_name_is_rejected_when_no_job_is_given():
    assert reason(good(job_id="../../etc"), job_id=None) == "bad_job_id"
    assert reason(good(job_id="a b"), job_id=None) == "bad_job_id"
    assert validate(good(job_id="etl_001"), None).job_id == "etl_001"


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"k": value}
    return value


def test_maps_nested_deeper_than_32_levels_are_rejected_as_too_deep():
    env = good(message_type="job_started", source_id="j1", payload={"config": nested(40)})
    assert reason(env) == "too_deep"
    assert validate({**env, "payload": {"config": nested(20)}}).payload["config"]["k"]
    stages = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
    assert reason(good(message_type="job_started", payload={"stages": stages})) == "too_deep"


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_json_text_nested_beyond_the_parsers_limit_is_too_deep_not_a_crash(depth):
    # orjson stops at 1,024 levels; the stdlib fallback used to raise RecursionError
    line = json.dumps(good()).replace(
        '"payload": {', '"payload": {"x": ' + "[" * depth + "]" * depth + ", "
    )
    assert reason(line.encode()) == "too_deep"
    assert reason(line) == "too_deep"


def test_raw_text_beyond_the_parse_limit_is_oversize_unparsed():
    huge = b'{"message_type": "log", "junk": "' + b"x" * MAX_PARSE_BYTES + b'"}'
    assert reason(huge) == "oversize"
    assert reason(huge.decode()) == "oversize"


def test_an_envelope_still_too_big_after_capping_is_oversize():
    # lists have no cap of their own: 150,000 parent split ids are ~3 MB once stored
    parents = [f"src_split_{i}" for i in range(150_000)]
    env = good(
        message_type="split_processed",
        payload={"stage_id": "p", "split_id": "p_x", "parent_split_ids": parents},
    )
    assert reason(env) == "oversize"
    assert reason(json.dumps(env).encode()) == "oversize"
    small = {**env, "payload": {**env["payload"], "parent_split_ids": parents[:1000]}}
    assert len(validate(small).payload["parent_split_ids"]) == 1000


def test_raw_text_over_the_cap_is_kept_when_capping_brings_it_under():
    env = good(
        message_type="log",
        payload={"message": "m" * (3 * MAX_ENVELOPE_BYTES), "unknown_field": "u" * 100},
    )
    line = json.dumps(env).encode()
    assert len(line) > 3 * MAX_ENVELOPE_BYTES
    out = validate(line)
    assert out.truncated
    assert out.payload["message"].endswith(f"[truncated {3 * MAX_ENVELOPE_BYTES - 8192} chars]")


@pytest.mark.parametrize(
    "payload",
    [
        {"stage_id": "p", "input_records": 2**64},  # beyond int64: would fail the write
        {"stage_id": "p", "input_records": 2**53 + 1},
        {"stage_id": "p", "input_records": 1e300},  # finite, but not a count
        {"stage_id": "p", "processed_count": 18446744073709551616.0},
    ],
)
def test_counters_beyond_2_to_the_53_are_out_of_range(payload):
    assert reason(good(payload=payload)) == "out_of_range"
    assert validate(good(payload={"stage_id": "p", "input_records": 2**53})).payload


def test_integers_beyond_64_bits_in_maps_are_out_of_range():
    env = good(message_type="job_started", source_id="j1", payload={"config": {"n": 10**30}})
    assert reason(env) == "out_of_range"
    # orjson reads such a number from JSON text as a float, which is storable
    line = json.dumps(env).encode()
    assert validate(line).payload["config"]["n"] == 1e30


def test_checkpoint_times_past_2200_are_bad_timestamps():
    env = good(message_type="checkpoint", source_id="p", payload={"trigger_time": 1e15})
    assert reason(env) == "bad_timestamp"
    ok = {**env, "payload": {"trigger_time": T0, "completion_time": T0 + 0.25}}
    assert validate(ok).payload["completion_time"] == T0 + 0.25


def test_ids_with_a_lone_surrogate_are_rejected_and_free_text_is_repaired():
    assert reason(good(source_id="p_w0_\udcff")) == "bad_unicode"
    assert reason(good(payload={"stage_id": "p\ud800"})) == "bad_unicode"
    assert reason(good(message_type="job_started", payload={"config": {"\ud800": 1}})) == (
        "bad_unicode"
    )
    # a file name decoded with surrogateescape inside a trace: keep the exception
    env = validate(
        good(
            message_type="exception",
            payload={"exception_type": "OSError", "stacktrace": 'File "/data/caf\udce9.csv"'},
        )
    )
    assert env.payload["stacktrace"] == 'File "/data/caf\\udce9.csv"'
    env.payload["stacktrace"].encode("utf-8")  # storable


def trace_of(frames: int) -> str:
    lines = ["Traceback (most recent call last):\n"]
    for i in range(frames):
        lines.append(f'  File "/app/stage.py", line {i}, in step_{i}\n    return step(n + 1)\n')
    return "".join(lines) + "RecursionError: maximum recursion depth exceeded\n"


def test_a_long_trace_keeps_its_head_its_last_frames_and_the_exception_line():
    trace = trace_of(5_000)
    short, cut = cap_trace(trace, MAX_STACKTRACE_CHARS)
    assert cut
    assert len(short) <= MAX_STACKTRACE_CHARS + 60
    assert short.startswith('Traceback (most recent call last):\n  File "/app/stage.py", line 0,')
    assert short.endswith(
        "line 4999, in step_4999\n    return step(n + 1)\n"
        "RecursionError: maximum recursion depth exceeded\n"
    )
    mark = next(line for line in short.splitlines() if line.startswith("… [truncated"))
    n_chars, n_frames = (int(x) for x in re.findall(r"\d+", mark))
    kept = short.count('  File "')
    assert kept + n_frames == 5_000
    assert len(short) - len(mark) - 1 + n_chars == len(trace)
    assert cap_trace(trace_of(10), MAX_STACKTRACE_CHARS) == (trace_of(10), False)


def test_a_trace_whose_last_line_is_huge_keeps_that_lines_start():
    trace = trace_of(100) + "ValueError: " + "v" * 200_000
    short, cut = cap_trace(trace, 4_000)
    assert cut
    assert short.startswith("Traceback (most recent call last):")
    last = short.splitlines()[-1]
    assert last.startswith("ValueError: vvv")
    assert last.endswith("chars]")


def test_nan_in_json_text_is_reported_as_non_finite_not_as_garbage():
    text = json.dumps(good(payload={"stage_id": "p", "processing_time": float("nan")}))
    assert "NaN" in text
    assert reason(text) == "non_finite"


def test_nan_hidden_in_a_config_map_is_rejected():
    env = {
        "message_type": "job_started",
        "job_id": "j1",
        "source_id": "j1",
        "timestamp": T0,
        "payload": {"config": {"lr": {"value": float("inf")}}},
    }
    assert reason(env) == "non_finite"


def test_oversize_strings_are_truncated_and_marked_not_rejected():
    env = validate(
        {
            "message_type": "exception",
            "job_id": "j1",
            "source_id": "p_w0_1",
            "timestamp": T0,
            "payload": {
                "exception_type": "ValueError",
                "message": "m" * 100_000,
                "stacktrace": "s" * 1_000_000,
            },
        }
    )
    assert env.truncated
    assert env.payload["message"].startswith("m" * MAX_MESSAGE_CHARS)
    assert "[truncated 91808 chars]" in env.payload["message"]
    assert len(env.payload["stacktrace"]) < MAX_STACKTRACE_CHARS + 50


def test_validation_does_not_mutate_the_callers_dict():
    env = good()
    before = json.dumps(env, sort_keys=True)
    validate(env)
    assert json.dumps(env, sort_keys=True) == before


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 500, ".hidden", "a b", None, 7])
def test_unsafe_job_ids_raise_value_error(bad):
    with pytest.raises(ValueError, match="not a safe name"):
        valid_job_id(bad)


@pytest.mark.parametrize("ok", ["etl_001", "a", "Job-2.v3", "x" * 128])
def test_safe_job_ids_pass(ok):
    assert valid_job_id(ok) == ok
