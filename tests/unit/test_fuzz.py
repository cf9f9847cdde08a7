"""Fuzzing the ingest path: envelopes of all 17 types, plausible and not, and mutations
of valid ones (dropped, replaced and retyped fields, wrong nesting, huge strings, deep
nesting, bad UTF-8, duplicates, absurd times), sent as dicts, JSON text and bytes.

Invariants, checked after every batch:

- no exception escapes ``Recording.ingest``;
- accepted + duplicates + rejected == sent, per call and in ``rec.stats``;
- counters never regress: every stage total in the fold, and the records in / out the
  catalog row is written with (while the DAG stays the same);
- the recorder still accepts a valid envelope;

and at the end, everything accepted was written (no write error) and reads back.

10,000 envelopes in all (250 batches of 40), deterministic (``derandomize``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import solstice_inspect as si
from solstice_inspect.errors import InvalidMessage
from solstice_inspect.protocol import MESSAGE_TYPES, PAYLOAD_FIELDS, validate

#: the reasons docs/protocol.md lists
REASONS = {
    "invalid_json",
    "oversize",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "unknown_message_type",
    "non_finite",
    "negative",
    "out_of_range",
    "bad_timestamp",
    "bad_unicode",
    "job_id_mismatch",
    "bad_job_id",
    "oversize_id",
    "too_deep",
    "unfoldable",
    "unwritable",
}

JOB = "fuzz_001"
T0 = 1_764_331_200.0  # 2025-11-28 12:00:00 UTC
STAGES = ("src", "mid", "sink")
DAG = {"src": ["mid"], "mid": ["sink"]}
SPECS = [
    {"stage_id": s, "operator_type": s.title(), "min_parallelism": 1, "max_parallelism": 3}
    for s in STAGES
]
WORKERS = tuple(f"{s}_w{i}_{i:06x}" for s in STAGES for i in range(3))
BATCH = 40
BATCHES = 250

# ---------------------------------------------------------------------- values
SURROGATES = st.sampled_from(["\ud800", "\udcff", "\udfff"])
texts = st.text(max_size=12) | st.builds(lambda a, b: a + b, st.text(max_size=6), SURROGATES)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**53, max_value=2**80)
    | st.floats()
    | st.sampled_from([0, -1, 1e308, -1e308, 2**63, math.nan, math.inf])
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
times = st.floats(min_value=T0 - 30, max_value=T0 + 600, allow_nan=False)
absurd_times = st.sampled_from(
    [0, 0.0, 86_400, -1.0, 1e308, -1e308, 32_503_680_000.0, math.nan, math.inf, -math.inf]
) | st.sampled_from(["2025-11-28", True, None, [T0], 10**30])
counters = st.integers(0, 10**6)
seconds = st.floats(0, 1e4, allow_nan=False)
sequences = st.none() | st.integers(0, 40)  # a small range: duplicates happen
stages = st.sampled_from(STAGES)
workers = st.sampled_from(WORKERS)
splits = st.builds(lambda s, i: f"{s}_split_{i}", stages, st.integers(0, 50))


def trace(frames: int) -> str:
    body = "".join(
        f'  File "/app/stage.py", line {i}, in step\n    return step(n + 1)\n'
        for i in range(frames)
    )
    return "Traceback (most recent call last):\n" + body + "RecursionError: too deep\n"


stacktraces = st.text(max_size=40) | st.builds(trace, st.sampled_from([1, 50, 900, 4_000]))

# ---------------------------------------------------------------------- plausible payloads
optional = st.fixed_dictionaries
PLAUSIBLE: dict[str, tuple[Any, Any]] = {  # message type -> (source ids, payloads)
    "job_started": (
        st.just(JOB),
        optional(
            {},
            optional={
                "dag_edges": st.just(DAG),
                "stages": st.just(SPECS),
                "config": st.dictionaries(st.text(max_size=5), scalars, max_size=3),
            },
        ),
    ),
    "job_completed": (
        st.just(JOB),
        optional(
            {},
            optional={
                "status": st.sampled_from(["COMPLETED", "FAILED", "CANCELLED", "done"]),
                "duration_ms": seconds,
                "final_metrics": st.dictionaries(st.text(max_size=5), counters, max_size=2),
            },
        ),
    ),
    "job_failed": (
        st.just(JOB),
        optional({}, optional={"error": texts, "duration_ms": seconds}),
    ),
    "stage_started": (
        stages,
        optional(
            {},
            optional={
                "operator_type": st.text(max_size=10),
                "min_parallelism": st.integers(0, 4),
                "max_parallelism": st.integers(0, 8),
            },
        ),
    ),
    "stage_completed": (stages, st.just({})),
    "stage_metrics": (
        stages,
        optional(
            {},
            optional={
                "worker_count": st.integers(0, 8),
                "input_records": counters,
                "output_records": counters,
                "input_throughput": seconds,
                "queue_lag": st.integers(0, 10_000),
                "backpressure_active": st.booleans(),
                "partition_metrics": st.dictionaries(
                    st.sampled_from("0123"),
                    optional(
                        {},
                        optional={
                            "latest_offset": counters,
                            "committed_offset": counters,
                            "lag": counters,
                        },
                    ),
                    max_size=3,
                ),
            },
        ),
    ),
    "worker_started": (
        workers,
        optional(
            {"stage_id": stages},
            optional={
                "assigned_partitions": st.lists(st.integers(0, 8), max_size=3),
                "node_id": st.sampled_from(["node-0", "node-1"]),
                "pid": st.integers(1, 99_999),
            },
        ),
    ),
    "worker_stopped": (
        workers,
        optional(
            {"stage_id": stages},
            optional={
                "reason": st.sampled_from(["done", "killed", "failed: actor died"]) | texts,
                "processed_count": counters,
                "error_count": st.integers(0, 9),
            },
        ),
    ),
    "worker_metrics": (
        workers,
        optional(
            {"stage_id": stages},
            optional={
                "input_records": counters,
                "output_records": counters,
                "processing_time": seconds,
                "processed_count": counters,
                "assigned_partitions": st.lists(st.integers(0, 8), max_size=2),
                "is_running": st.booleans(),
            },
        ),
    ),
    "exception": (
        workers | stages,
        optional(
            {"exception_type": st.sampled_from(["ValueError", "KeyError", "RecursionError"])},
            optional={
                "stage_id": stages,
                "worker_id": workers,
                "message": texts,
                "stacktrace": stacktraces,
                "split_id": splits,
            },
        ),
    ),
    "backpressure": (
        stages,
        optional(
            {"active": st.booleans()},
            optional={
                "queue_lag": st.integers(0, 10_000),
                "slow_down_factor": st.floats(-1, 10),
            },
        ),
    ),
    "split_processed": (
        workers,
        optional(
            {"stage_id": stages, "split_id": splits},
            optional={
                "parent_split_ids": st.lists(splits, max_size=3),
                "input_records": counters,
                "output_records": counters,
                "processing_time": seconds,
            },
        ),
    ),
    "checkpoint": (
        stages,
        optional(
            {},
            optional={
                "checkpoint_id": st.sampled_from(["chk_1", "chk_2"]),
                "status": st.sampled_from(["IN_PROGRESS", "COMPLETED", "FAILED"]),
                "trigger_time": times,
                "completion_time": times,
                "state_size_bytes": counters,
                "offsets": st.lists(
                    optional(
                        {"partition_id": st.integers(0, 3)},
                        optional={"committed_offset": counters, "latest_offset": counters},
                    ),
                    max_size=2,
                ),
            },
        ),
    ),
    "worker_resources": (
        workers,
        optional(
            {},
            optional={
                "stage_id": stages,
                "cpu_percent": st.floats(0, 400),
                "memory_mb": st.floats(0, 1e5),
                "pid": st.integers(1, 99_999),
            },
        ),
    ),
    "log": (
        workers,
        optional(
            {"message": texts},
            optional={"level": st.sampled_from(["info", "WARNING", "error"]), "stage_id": stages},
        ),
    ),
    "event": (
        st.just(JOB) | stages,
        optional(
            {"event_type": st.sampled_from(["rescale", "worker_replaced"])},
            optional={
                "description": texts,
                "duration_ms": seconds,
                "metadata": st.dictionaries(st.text(max_size=4), scalars, max_size=3),
            },
        ),
    ),
    "custom_metric": (
        stages | workers,
        optional(
            {"name": st.sampled_from(["hit_ratio", "latency_ms"]), "value": st.floats(-1e9, 1e9)},
            optional={"labels": st.dictionaries(st.text(max_size=4), st.text(max_size=4))},
        ),
    ),
    "incident": (
        workers,
        optional(
            {"kind": st.sampled_from(["straggler", "hang"])},
            optional={
                "stage_id": stages,
                "split_id": splits,
                "started_at": times,
                "elapsed_s": seconds,
                "threshold_s": seconds,
                "finished_splits": counters,
                "stack": stacktraces,
                "log_tail": texts,
            },
        ),
    ),
    "profile": (
        st.just("profiler") | workers,
        optional(
            {
                "worker_id": workers,
                "stacks": st.lists(st.tuples(texts, st.integers(0, 1_000)).map(list), max_size=4),
            },
            optional={"duration_s": seconds, "rate_hz": st.floats(0, 1_000)},
        ),
    ),
    "sample": (
        workers,
        optional(
            {
                "split_id": splits,
                "rows": st.lists(st.dictionaries(st.text(max_size=4), scalars, max_size=3)),
            },
            optional={"stage_id": stages},
        ),
    ),
}
assert set(PLAUSIBLE) == MESSAGE_TYPES


@st.composite
def plausible(draw: st.DrawFn) -> dict[str, Any]:
    # final statuses flush at once: keep them rare (1 in 50) so the file stays fast
    final = draw(st.integers(0, 49)) == 0
    mtype = (
        draw(st.sampled_from(["job_completed", "job_failed"]))
        if final
        else draw(st.sampled_from(sorted(MESSAGE_TYPES - {"job_completed", "job_failed"})))
    )
    sources, payloads = PLAUSIBLE[mtype]
    return {
        "message_type": mtype,
        "job_id": JOB,
        "source_id": draw(sources),
        "timestamp": draw(times),
        "sequence": draw(sequences),
        "payload": draw(payloads),
    }


@st.composite
def implausible(draw: st.DrawFn) -> dict[str, Any]:
    """Any type, with payload fields of its own names (or others) holding any value."""
    env = draw(plausible())
    names = [*PAYLOAD_FIELDS[env["message_type"]], "extra"]
    env["payload"] = draw(st.dictionaries(st.sampled_from(names), json_values, max_size=5))
    return env


BIG_LIST = [f"src_split_{i:07d}" for i in range(60_000)]  # ~1.3 MB of JSON


def nested(depth: int, leaf: Any = 1) -> Any:
    for i in range(depth):
        leaf = {"k": leaf} if i % 2 else [leaf]
    return leaf


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    env = draw(plausible())
    payload = dict(env["payload"])
    env["payload"] = payload
    op = draw(st.integers(0, 13))
    keys = [*env, *(f"payload.{k}" for k in payload)]
    key = draw(st.sampled_from(keys))
    where, name = (payload, key[8:]) if key.startswith("payload.") else (env, key)
    if op == 0:  # drop a field
        where.pop(name, None)
    elif op == 1:  # replace it with anything
        where[name] = draw(json_values)
    elif op == 2:  # retype it
        value = where.get(name)
        where[name] = draw(
            st.sampled_from([str(value), [value], {"v": value}, True, 1.5, -3, None])
        )
    elif op == 3:  # wrong nesting
        choice = draw(st.integers(0, 2))
        if choice == 0:
            env["payload"] = [payload]
        elif choice == 1:
            env = {"envelope": env}
        else:
            env = [env]
    elif op == 4:  # a huge string, now and then past the envelope cap
        size = draw(st.sampled_from([300, 9_000, 70_000, 1_100_000]))
        field = draw(st.sampled_from(["source_id", "message", "stacktrace", "stage_id", "x"]))
        (env if field == "source_id" else payload)[field] = "x" * size
    elif op == 5:  # deep nesting
        depth = draw(st.integers(20, 80))
        field = draw(st.sampled_from([*PAYLOAD_FIELDS[env["message_type"]], "config", "extra"]))
        payload[field] = nested(depth)
    elif op == 6:  # an absurd time
        env["timestamp"] = draw(absurd_times)
    elif op == 7:  # another job, or an unsafe job id
        env["job_id"] = draw(st.sampled_from(["other_job", "../x", "", 7]))
    elif op == 8:  # an unknown or missing type
        env["message_type"] = draw(st.sampled_from(["telepathy", "", None, 3, "LOG"]))
    elif op == 9:  # a counter out of range
        env["payload"][draw(st.sampled_from(["input_records", "pid", "queue_lag"]))] = draw(
            st.sampled_from([2**64, 2**53 + 1, 1e300, -1, math.nan])
        )
    elif op == 10:  # a lone surrogate in an id
        env[draw(st.sampled_from(["source_id", "job_id"]))] = "w\udcff"
    elif op == 11:  # a sequence that is not one
        env["sequence"] = draw(st.sampled_from([-1, 1.5, "7", True, 2**70]))
    elif op == 12:  # shapes inside maps and lists that only the fold looks at
        junk = draw(json_values)
        env["message_type"], env["payload"] = draw(
            st.sampled_from(
                [
                    ("job_started", {"stages": [{"stage_id": "src", "min_parallelism": junk}]}),
                    ("job_started", {"stages": [junk]}),
                    ("job_started", {"dag_edges": {"src": junk}}),
                    ("checkpoint", {"offsets": [{"partition_id": 0, "latest_offset": junk}]}),
                    ("checkpoint", {"offsets": [junk]}),
                    ("stage_metrics", {"partition_metrics": {"0": junk}}),
                    ("stage_metrics", {"partition_metrics": {"0": {"worker_id": junk}}}),
                ]
            )
        )
    else:  # a list that keeps the envelope too big once its strings are capped
        env["message_type"] = "split_processed"
        env["payload"] = {"stage_id": "mid", "split_id": "mid_all", "parent_split_ids": BIG_LIST}
    return env


def to_json(obj: Any) -> str:
    return json.dumps(obj, default=str)  # NaN / Infinity written as JSON's extensions


@st.composite
def raw_text(draw: st.DrawFn) -> Any:
    """An envelope as JSON text or bytes, sometimes broken: bad UTF-8, cut, too deep."""
    env = draw(plausible() | mutated())
    text = to_json(env)
    op = draw(st.integers(0, 5))
    if op == 0:
        return text
    data = text.encode()
    if op == 1:
        return data
    if op == 2:  # a byte that is not UTF-8
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + data[i + 1 :]
    if op == 3:  # cut short (never to a blank line)
        return data[: max(4, draw(st.integers(0, len(data))))]
    if op == 4:  # nesting past the parser's limit
        depth = draw(st.sampled_from([1_500, 20_000]))
        return data.replace(
            b'"payload": {', b'"payload": {"x": ' + b"[" * depth + b"]" * depth + b", ", 1
        )
    return text.replace('"', "'", 1)  # not JSON


items = st.one_of(plausible(), plausible(), implausible(), mutated(), mutated(), raw_text())


@st.composite
def batches(draw: st.DrawFn) -> list[Any]:
    batch = draw(st.lists(items, min_size=BATCH - 8, max_size=BATCH - 8))
    # duplicates: resend some of them, as they were
    picks = draw(st.lists(st.integers(0, len(batch) - 1), min_size=8, max_size=8))
    batch.extend(batch[i] for i in picks)
    return batch


# ---------------------------------------------------------------------- the run
def canary(n: int) -> dict[str, Any]:
    return si.envelope(
        "worker_metrics",
        JOB,
        "canary_w0_000000",
        T0 + n,
        {"stage_id": "canary", "input_records": n, "output_records": n},
        sequence=n,
    )


def test_ingest_survives_10000_fuzzed_envelopes(tmp_path_factory):
    store = si.connect(tmp_path_factory.mktemp("fuzz") / "store")
    rec = store.record(
        JOB, dag_edges=DAG, stages=SPECS, flush_interval=3600, heartbeat_interval=3600
    )
    seen = {"sent": 0, "totals": {}, "records": None, "dag": None, "canary": 0}

    @settings(
        max_examples=BATCHES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=batches())
    def run(batch: list[Any]) -> None:
        counts = rec.ingest(batch)  # nothing may escape
        assert counts["accepted"] + counts["duplicates"] + counts["rejected"] == len(batch)
        seen["sent"] += len(batch)

        fold = rec._fold
        for stage_id, st_ in fold.stages.items():
            totals = fold.stage_totals(st_)
            before = seen["totals"].get(stage_id, (0, 0))
            assert totals[0] >= before[0], (stage_id, before, totals)
            assert totals[1] >= before[1], (stage_id, before, totals)
            seen["totals"][stage_id] = totals
        summary = fold.summary()
        records = (summary["records_in"], summary["records_out"])
        if seen["dag"] == fold.dag_edges and seen["records"] is not None:
            for now, before in zip(records, seen["records"]):
                if now is not None and before is not None:
                    assert now >= before, (records, seen["records"])
        seen["records"], seen["dag"] = records, dict(fold.dag_edges)

        seen["canary"] += 1
        assert rec.ingest(canary(seen["canary"]))["accepted"] == 1
        seen["sent"] += 1

    run()
    stats = rec.stats
    assert seen["sent"] >= BATCHES * BATCH
    assert stats["accepted"] + stats["duplicates"] + stats["rejected_total"] == seen["sent"]
    # the run exercised every outcome, and most reasons
    assert min(stats["accepted"], stats["duplicates"], stats["truncated"]) > 0
    assert len(stats["rejected"]) >= 12, stats["rejected"]
    assert rec.status in ("RUNNING", "COMPLETED", "FAILED", "CANCELLED")
    rec.finish()
    # everything accepted was written: one bad value never costs its batch
    assert rec.stats["write_errors"] == 0
    job = rec.job()
    summary = rec._fold.summary()
    info = job.info
    assert (info["records_in"], info["records_out"]) == (
        summary["records_in"],
        summary["records_out"],
    )
    canaries = job.worker_metrics(where="worker_id = 'canary_w0_000000'")
    assert len(canaries) == seen["canary"]
    assert len(job.rejects()) == rec.stats["rejected_total"]


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(obj=json_values | items)
def test_validate_raises_only_invalid_message(obj):
    try:
        env = validate(obj, JOB)
    except InvalidMessage as exc:
        reason = exc.reason
        assert reason in REASONS
    else:
        # what passes is storable text: no lone surrogate, no NaN, in the fields kept
        kept = {k: v for k, v in env.payload.items() if k in PAYLOAD_FIELDS[env.message_type]}
        json.dumps(kept, ensure_ascii=False, allow_nan=False).encode("utf-8")
        env.source_id.encode("utf-8")
