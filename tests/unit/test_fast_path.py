"""The ingest fast path (recorder/fastpath.py) is the general path, only faster.

The same envelopes — well formed and subtly not: every field of the four fast types
dropped, nulled, retyped or pushed to a boundary; envelopes with bad ids, times and
sequences; as dicts, JSON text and bytes, duplicates and out-of-order ones included — go
once through the fast path and once through the general path alone (``validate`` then
``Fold.apply``, as ``Recording._ingest_one`` does). Both must give the same rows, the
same reject reasons and details in the same order, the same counts and the same fold
state.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import solstice_inspect as si
from solstice_inspect.demo.stream import simulate
from solstice_inspect.errors import InvalidMessage
from solstice_inspect.protocol import PAYLOAD_FIELDS, validate
from solstice_inspect.recorder import fastpath
from solstice_inspect.recorder.fold import Fold
from solstice_inspect.recorder.rows import to_arrow
from solstice_inspect.recorder.session import _UNFORESEEN
from solstice_inspect.schema import SCHEMAS, TS

JOB = "fast_001"
T0 = 1_764_331_200.0  # 2025-11-28 12:00:00 UTC
STAGES = ("src", "sink")
WORKERS = ("src_w0_aaaaaa", "src_w1_bbbbbb", "sink_w0_cccccc")

# values at and around every boundary the fast checks draw
EDGE_NUMBERS = [
    0,
    1,
    -1,
    2**53 - 1,
    2**53,
    2**53 + 1,
    2**63,
    2**64,
    0.0,
    -0.0,
    1.5,
    -1.5,
    9_007_199_254_740_992.0,
    9_007_199_254_740_994.0,
    1e300,
    math.nan,
    math.inf,
    -math.inf,
    True,
    False,
]
EDGE_TEXT = ["", "x", "é", "\ud800", "a" * 256, "a" * 257, "0", "stage with space"]
EDGE_LISTS = [[], [0], [0, "p1"], ["é"], [1.5], [None], [[1]], list(range(64)), list(range(65))]
EDGE_VALUES = st.sampled_from(
    [None, {}, {"a": 1}, {"a": math.nan}, *EDGE_NUMBERS, *EDGE_TEXT, *EDGE_LISTS]
)

counters = st.integers(0, 10**6) | st.floats(0, 1e6, allow_nan=False)
PAYLOADS: dict[str, Any] = {
    "worker_metrics": st.fixed_dictionaries(
        {"stage_id": st.sampled_from(STAGES)},
        optional={
            "input_records": counters,
            "output_records": counters,
            "processed_count": st.integers(0, 100),
            "processing_time": st.floats(0, 1e4, allow_nan=False) | st.integers(0, 100),
            "assigned_partitions": st.lists(st.integers(0, 8) | st.just("p1"), max_size=3),
            "is_running": st.booleans(),
        },
    ),
    "split_processed": st.fixed_dictionaries(
        {
            "stage_id": st.sampled_from(STAGES),
            "split_id": st.builds(lambda i: f"src_split_{i}", st.integers(0, 6)),
        },
        optional={
            "worker_id": st.sampled_from(WORKERS),
            "parent_split_ids": st.lists(st.just("src_split_0"), max_size=2),
            "input_records": counters,
            "output_records": counters,
            "processing_time": counters,
        },
    ),
    "stage_metrics": st.fixed_dictionaries(
        {},
        optional={
            "worker_count": st.integers(0, 4),
            "input_records": counters,
            "output_records": counters,
            "input_throughput": counters,
            "output_throughput": counters,
            "queue_lag": st.integers(0, 10_000),
            "backpressure_active": st.booleans(),
            "partition_metrics": st.dictionaries(
                st.sampled_from("012"),
                st.fixed_dictionaries(
                    {},
                    optional={"latest_offset": counters, "committed_offset": counters},
                ),
                max_size=2,
            ),
        },
    ),
    "worker_resources": st.fixed_dictionaries(
        {},
        optional={
            "stage_id": st.sampled_from(STAGES),
            "cpu_percent": counters,
            "memory_mb": counters,
            "gpu_utilization": counters,
            "gpu_memory_mb": counters,
            "node_id": st.sampled_from(["node-0", "node-1"]),
            "pid": st.integers(1, 99_999),
        },
    ),
}
FAST_TYPES = tuple(PAYLOADS)


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    mtype = draw(st.sampled_from(FAST_TYPES))
    source = draw(st.sampled_from(WORKERS if mtype != "stage_metrics" else STAGES))
    env: dict[str, Any] = {
        "message_type": mtype,
        "job_id": JOB,
        "source_id": source,
        "timestamp": draw(
            st.floats(T0, T0 + 30, allow_nan=False) | st.integers(int(T0), int(T0) + 30)
        ),
        "sequence": draw(st.none() | st.integers(0, 12)),  # a small range: duplicates
        "payload": draw(PAYLOADS[mtype]),
    }
    for _ in range(draw(st.integers(0, 2))):  # a few mutations, often none
        kind = draw(st.sampled_from(["payload", "payload", "payload", "drop", "envelope", "type"]))
        payload = env.get("payload")
        if kind == "payload" and isinstance(payload, dict):
            field = draw(st.sampled_from(sorted(PAYLOAD_FIELDS[mtype])))
            payload[field] = draw(EDGE_VALUES)
        elif kind == "drop":
            target = (
                payload if isinstance(payload, dict) and payload and draw(st.booleans()) else env
            )
            if target:
                target.pop(draw(st.sampled_from(sorted(target))))
        elif kind == "envelope":
            field = draw(st.sampled_from(["job_id", "source_id", "timestamp", "sequence"]))
            env[field] = draw(
                EDGE_VALUES
                | st.sampled_from(["other_job", 946_684_799.0, 7_258_118_400.0, 7_258_118_399])
            )
        else:
            env["message_type"] = draw(st.sampled_from(["log", "checkpoint", "nope", 3]))
            if draw(st.booleans()):
                env["payload"] = draw(st.sampled_from([None, [], "x", {}]))
    form = draw(st.sampled_from(["dict", "dict", "str", "bytes", "blank"]))
    if form == "dict":
        return env
    if form == "blank":
        return draw(st.sampled_from(["", " ", b"\n", b"{}", "[1]", b"x" * 5]))
    text = json.dumps(env)  # NaN / Infinity written as such: not JSON, for the general path
    return text if form == "str" else text.encode("utf-8", "surrogatepass")


class Run:
    """One fold fed by one path; what it produced and rejected."""

    def __init__(self) -> None:
        self.fold = Fold(JOB, window_s=2.0)
        self.rejects: list[tuple[str, str]] = []

    def reject(self, item: Any, reason: str, detail: str) -> None:
        self.fold.reject(reason)
        self.rejects.append((reason, detail))

    def general(self, item: Any) -> bool:
        """The general path of one item, as ``Recording._ingest_one`` takes it."""
        if type(item) in (bytes, str) and len(item) < 4 and not item.strip():
            return False
        try:
            return self.fold.apply(validate(item, JOB))
        except InvalidMessage as exc:
            self.reject(item, exc.reason, exc.detail)
        except _UNFORESEEN as exc:
            self.reject(item, "unfoldable", f"{type(exc).__name__}: {exc}")
        return False

    def outcome(self) -> dict[str, Any]:
        f = self.fold
        f.close_windows()
        return {
            "rows": _comparable(f.drain()),
            "rejects": self.rejects,
            "rejected": dict(f.rejected),
            "stats": {k: v for k, v in f.stats.items() if v},
            "times": (f.start_time, f.last_ts),
            "summary": f.summary(),
            "workers": {k: _slots(w) for k, w in f.workers.items()},
            "stages": {k: _slots(s) for k, s in f.stages.items()},
            "seqs": {k: (m, sorted(a)) for k, (m, a) in f._seqs.items()},
        }


def _slots(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in type(obj).__slots__}


def _comparable(rows: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """Rows with their types (1 and 1.0 are equal in Python, not in Arrow) and NaN-safe."""
    return {
        table: [tuple((type(v).__name__, repr(v)) for v in row) for row in batch]
        for table, batch in rows.items()
    }


def both_paths(items: list[Any], chunk: int = 7) -> tuple[dict, dict]:
    fast, general = Run(), Run()
    final_fast = final_general = False
    for k in range(0, len(items), chunk):
        final_fast |= fastpath.ingest(
            fast.fold, JOB, items[k : k + chunk], fast.general, fast.reject, _UNFORESEEN
        )
    for item in items:
        final_general |= general.general(item)
    assert final_fast == final_general
    return fast.outcome(), general.outcome()


@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(items=st.lists(envelopes(), min_size=1, max_size=40))
def test_fast_and_general_paths_give_the_same_rows_and_reasons(items):
    fast, general = both_paths(items)
    assert fast == general


def well_formed(n: int) -> list[dict[str, Any]]:
    """A plausible stream of the four fast types, in order, as Solstice would send it."""
    out = []
    for i in range(n):
        worker = WORKERS[i % 3]
        stage = worker.split("_w")[0]
        ts = T0 + i * 0.25
        payloads = {
            "worker_metrics": (
                worker,
                {
                    "stage_id": stage,
                    "input_records": i * 10,
                    "output_records": float(i * 9),
                    "processed_count": i,
                    "processing_time": i * 0.1,
                    "assigned_partitions": [i % 3, "p1"],
                    "is_running": True,
                },
            ),
            "split_processed": (
                worker,
                {"stage_id": stage, "split_id": f"src_split_{i}", "input_records": 10},
            ),
            "stage_metrics": (
                stage,
                {
                    "worker_count": 2,
                    "queue_lag": i * 100,
                    "partition_metrics": {"0": {"latest_offset": i, "committed_offset": 0}},
                },
            ),
            "worker_resources": (worker, {"stage_id": stage, "cpu_percent": 50.0, "pid": 7}),
        }
        mtype = FAST_TYPES[i % 4]
        source, payload = payloads[mtype]
        out.append(si.envelope(mtype, JOB, source, ts, payload, i))
    return out


def test_the_fast_path_takes_well_formed_envelopes_and_leaves_the_rest():
    """Not vacuous: the fast path takes every well-formed envelope of its types, and the
    crafted boundaries go on to the general path and its many reasons."""
    good = well_formed(400)
    items = good + [orjson.dumps(e) for e in well_formed(400)[::-1]] + crafted()
    taken: list[Any] = []

    def general(item: Any) -> bool:
        taken.append(item)
        return run.general(item)

    run = Run()
    fastpath.ingest(run.fold, JOB, items, general, run.reject, _UNFORESEEN)
    assert not any(item in taken for item in good)
    assert run.fold.stats["accepted"] >= 400
    assert run.fold.stats["duplicates"] >= 400  # the same envelopes again, as JSON
    assert len({reason for reason, _ in run.rejects}) >= 9, run.rejects
    fast, general_only = both_paths(items, chunk=100)
    assert fast == general_only


def crafted() -> list[Any]:
    """Each fast check's boundary, one envelope at a time, around good reports."""
    good = {
        "message_type": "worker_metrics",
        "job_id": JOB,
        "source_id": WORKERS[0],
        "timestamp": T0,
        "sequence": None,
        "payload": {"stage_id": "src", "input_records": 10, "processing_time": 1.0},
    }
    out: list[Any] = []
    for field in (
        "stage_id",
        "input_records",
        "output_records",
        "processed_count",
        "processing_time",
        "assigned_partitions",
        "is_running",
    ):
        for value in [None, *EDGE_NUMBERS, *EDGE_TEXT, *EDGE_LISTS]:
            env = json.loads(json.dumps(good))
            env["timestamp"] = T0 + len(out) * 0.01
            env["payload"][field] = value
            out.append(env)
    for field, values in {
        "job_id": [JOB + "x", 1, None],
        "source_id": ["é_w0", "\ud800", "a" * 257, 3, ""],
        "timestamp": [T0, int(T0), 946_684_799, 946_684_800, 7_258_118_400.0, "1", True, 10**30],
        "sequence": [0, 0, 2, 1, -1, True, 1.0, 2**70],
        "message_type": [None, 1, ["worker_metrics"], "Worker_Metrics"],
        "payload": [None, [], "x"],
    }.items():
        for value in values:
            env = json.loads(json.dumps(good))
            env[field] = value
            out.append(env)
    out.append({k: v for k, v in good.items() if k != "source_id"})
    texts = [orjson.dumps(good), orjson.dumps(good).decode(), json.dumps(good) + " ", "  ", b""]
    return out + texts + [bytearray(orjson.dumps(good)), memoryview(orjson.dumps(good))]


def test_every_boundary_gives_the_general_paths_reason():
    items = crafted()
    fast, general = both_paths(items, chunk=len(items))
    assert fast == general
    reasons = set(fast["rejected"])
    assert {"wrong_type", "negative", "out_of_range", "non_finite", "oversize_id"} <= reasons
    assert {"bad_unicode", "bad_timestamp", "job_id_mismatch", "missing_field"} <= reasons


def test_a_recording_stores_the_same_tables_either_way(tmp_path):
    """End to end through Recording.ingest (the fast path) and Recording._ingest_one (the
    general one): the same rows in the store, the same rejects."""
    items = well_formed(300) + crafted()
    tables = {}
    for name in ("fast", "general"):
        store = si.connect(tmp_path / name)
        with store.record(JOB, attempt_id="a1", flush_interval=3600) as rec:
            if name == "fast":
                rec.ingest(items)
            else:
                for item in items:
                    with rec._lock:
                        rec._ingest_one(item)
        job = store.job(JOB)
        tables[name] = {
            table: job.table(table).drop_columns(["attempt_id"]).to_pylist()
            for table in ("worker_metrics", "lineage", "stage_metrics", "worker_resources")
        }
        rejects = job.table("rejects")
        tables[name]["rejects"] = rejects.select(["reason", "detail", "raw"]).to_pylist()
    assert tables["fast"] == tables["general"]
    assert len(tables["fast"]["worker_metrics"]) > 50


def _reference_arrow(table: str, rows: list[tuple], job_id: str, attempt_id: str) -> pa.Table:
    """Column by column, in Python: how rows.to_arrow built tables before it converted
    the row tuples in one pass (the oracle for the faster one)."""
    schema = SCHEMAS[table]
    fields = list(schema)[2:-1]
    columns = list(zip(*rows)) if rows else [()] * len(fields)
    arrays = [pa.array([job_id] * len(rows)), pa.array([attempt_id] * len(rows))]
    for field, values in zip(fields, columns):
        if field.type == TS:
            micros = [None if v is None else round(v * 1_000_000) for v in values]
            arrays.append(pa.array(micros, type=pa.int64()).cast(TS))
        else:
            arrays.append(pa.array(values, type=field.type))
    arrays.append(pa.array([7] * len(rows), type=pa.int64()))
    return pa.Table.from_arrays(arrays, schema=schema)


def test_rows_become_the_same_arrow_as_column_by_column():
    fold = Fold("sample_etl")
    for message in simulate(duration_s=60):
        fold.apply(validate(message, "sample_etl"))
    fold.finish("COMPLETED", T0 + 120)
    fold.close_windows()
    rows = fold.drain()
    # timestamps on a rounding tie, nulls among them, and an empty batch
    rows["checkpoints"].append(
        (T0 + 0.0000005, "c9", "parse", "IN_PROGRESS", 2.5e-6, None, None, None, [])
    )
    rows["rejects"] = []
    assert len(rows) >= 12
    for table, batch in rows.items():
        got = to_arrow(table, batch, "sample_etl", "a1", 7)
        assert got.equals(_reference_arrow(table, batch, "sample_etl", "a1")), table
