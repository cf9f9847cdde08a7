"""Envelope checks: every bad shape gets a countable reason, good ones pass untouched."""

from __future__ import annotations

import json
import math

import pytest

from solstice_inspect.errors import InvalidMessage
from solstice_inspect.protocol import (
    MAX_MESSAGE_CHARS,
    MAX_STACKTRACE_CHARS,
    MESSAGE_TYPES,
    SOLSTICE_TYPES,
    valid_job_id,
    validate,
)


def good(**over):
    env = {
        "message_type": "worker_metrics",
        "job_id": "j1",
        "source_id": "p_w0_abcdef",
        "timestamp": 1.5,
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
        1.5,
        3,
    )
    assert env.payload["input_records"] == 10


def test_solstices_thirteen_types_and_our_four_new_ones_are_known():
    # our fifth extension is the checkpoint payload, which uses Solstice's own type
    assert len(SOLSTICE_TYPES) == 13
    assert len(MESSAGE_TYPES) == 17


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


def test_nan_in_json_text_is_reported_as_non_finite_not_as_garbage():
    text = json.dumps(good(payload={"stage_id": "p", "processing_time": float("nan")}))
    assert "NaN" in text
    assert reason(text) == "non_finite"


def test_nan_hidden_in_a_config_map_is_rejected():
    env = {
        "message_type": "job_started",
        "job_id": "j1",
        "source_id": "j1",
        "timestamp": 1.0,
        "payload": {"config": {"lr": {"value": float("inf")}}},
    }
    assert reason(env) == "non_finite"


def test_oversize_strings_are_truncated_and_marked_not_rejected():
    env = validate(
        {
            "message_type": "exception",
            "job_id": "j1",
            "source_id": "p_w0_1",
            "timestamp": 2.0,
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
