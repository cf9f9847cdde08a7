"""Arrow schemas of every stored table (DESIGN §4); ``docs/schema.md`` documents them.

Every table starts with ``job_id``, ``attempt_id`` and ``ts`` so that tables of many jobs
can be concatenated and queried together. Timestamps are ``timestamp[us, tz=UTC]``;
free-form maps are JSON strings.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
_STR = pa.string()
_I64 = pa.int64()
_F64 = pa.float64()
_BOOL = pa.bool_()

_KEY = [("job_id", _STR), ("attempt_id", _STR), ("ts", TS)]

OFFSET = pa.struct(
    [
        ("partition_id", _STR),
        ("topic", _STR),
        ("consumer_group", _STR),
        ("committed_offset", _I64),
        ("latest_offset", _I64),
    ]
)


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    # ``batch``: the recorder's flush number, increasing within an attempt. Live readers
    # use it as their cursor: unlike ``ts`` it also catches late rows with old timestamps,
    # and unlike row positions it survives compaction.
    return pa.schema([pa.field(n, t) for n, t in (*_KEY, *fields, ("batch", _I64))])


SCHEMAS: dict[str, pa.Schema] = {
    "catalog": _schema(
        ("status", _STR),
        ("start_time", TS),
        ("end_time", TS),
        ("heartbeat", TS),
        ("heartbeat_interval_s", _F64),
        ("stages", _I64),
        ("workers", _I64),
        ("records_in", _I64),
        ("records_out", _I64),
        ("exceptions", _I64),
    ),
    "job": _schema(
        ("status", _STR),
        ("start_time", TS),
        ("end_time", TS),
        ("duration_ms", _F64),
        ("config", _STR),
        ("dag_edges", _STR),
        ("stage_specs", _STR),
        ("final_metrics", _STR),
        ("error", _STR),
    ),
    "stages": _schema(
        ("stage_id", _STR),
        ("operator_type", _STR),
        ("min_parallelism", _I64),
        ("max_parallelism", _I64),
        ("upstream", pa.list_(_STR)),
        ("status", _STR),
    ),
    "workers": _schema(
        ("worker_id", _STR),
        ("stage_id", _STR),
        ("event", _STR),
        ("reason", _STR),
        ("node_id", _STR),
        ("pid", _I64),
        ("assigned_partitions", pa.list_(_STR)),
        ("processed_count", _I64),
        ("error_count", _I64),
    ),
    "worker_metrics": _schema(
        ("worker_id", _STR),
        ("stage_id", _STR),
        ("input_records", _I64),
        ("output_records", _I64),
        ("processed_count", _I64),
        ("processing_time", _F64),
        ("input_rate", _F64),
        ("output_rate", _F64),
    ),
    "worker_resources": _schema(
        ("worker_id", _STR),
        ("stage_id", _STR),
        ("cpu_percent", _F64),
        ("memory_mb", _F64),
        ("gpu_utilization", _F64),
        ("gpu_memory_mb", _F64),
        ("node_id", _STR),
        ("pid", _I64),
    ),
    "stage_metrics": _schema(
        ("stage_id", _STR),
        ("workers_alive", _I64),
        ("input_records", _I64),
        ("output_records", _I64),
        ("input_rate", _F64),
        ("output_rate", _F64),
        ("queue_lag", _I64),
        ("backpressure_active", _BOOL),
        ("backpressure_ratio", _F64),
        ("skew_ratio", _F64),
    ),
    "partition_metrics": _schema(
        ("stage_id", _STR),
        ("partition_id", _STR),
        ("latest_offset", _I64),
        ("committed_offset", _I64),
        ("lag", _I64),
        ("worker_id", _STR),
    ),
    "lineage": _schema(
        ("split_id", _STR),
        ("parent_split_ids", pa.list_(_STR)),
        ("stage_id", _STR),
        ("worker_id", _STR),
        ("input_records", _I64),
        ("output_records", _I64),
        ("processing_time", _F64),
        ("status", _STR),
    ),
    "exceptions": _schema(
        ("exception_id", _STR),
        ("fingerprint", _STR),
        ("exception_type", _STR),
        ("message", _STR),
        ("stacktrace", _STR),
        ("stage_id", _STR),
        ("worker_id", _STR),
        ("split_id", _STR),
        ("truncated", _BOOL),
    ),
    "checkpoints": _schema(
        ("checkpoint_id", _STR),
        ("stage_id", _STR),
        ("status", _STR),
        ("trigger_time", TS),
        ("completion_time", TS),
        ("duration_ms", _F64),
        ("state_size_bytes", _I64),
        ("offsets", pa.list_(OFFSET)),
    ),
    "events": _schema(
        ("event_type", _STR),
        ("stage_id", _STR),
        ("worker_id", _STR),
        ("description", _STR),
        ("duration_ms", _F64),
        ("metadata", _STR),
    ),
    "logs": _schema(
        ("worker_id", _STR),
        ("stage_id", _STR),
        ("level", _STR),
        ("message", _STR),
        ("truncated", _BOOL),
    ),
    "custom_metrics": _schema(
        ("source_id", _STR),
        ("name", _STR),
        ("value", _F64),
        ("labels", _STR),
    ),
    "incidents": _schema(
        ("incident_id", _STR),
        ("kind", _STR),
        ("stage_id", _STR),
        ("worker_id", _STR),
        ("split_id", _STR),
        ("started_at", TS),
        ("elapsed_s", _F64),
        ("threshold_s", _F64),
        ("mean_s", _F64),
        ("std_s", _F64),
        ("finished_splits", _I64),
        ("description", _STR),
        ("stack", _STR),
        ("log_tail", _STR),
        ("truncated", _BOOL),
    ),
    "profiles": _schema(
        ("profile_id", _STR),
        ("worker_id", _STR),
        ("stage_id", _STR),
        ("duration_s", _F64),
        ("rate_hz", _F64),
        ("stack", _STR),
        ("samples", _I64),
    ),
    "samples": _schema(
        ("split_id", _STR),
        ("stage_id", _STR),
        ("worker_id", _STR),
        ("rows", _STR),
        ("row_count", _I64),
        ("truncated", _BOOL),
    ),
    "rejects": _schema(("reason", _STR), ("detail", _STR), ("raw", _STR)),
}

#: tables under ``jobs/<job_id>/<attempt_id>/`` (the catalog lives at the root)
JOB_TABLES = tuple(name for name in SCHEMAS if name != "catalog")

STATUSES = ("RUNNING", "COMPLETED", "FAILED", "CANCELLED", "LOST")
FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


def json_map(text: str) -> dict[str, Any]:
    """A stored free-form map (config, metadata, final_metrics) read back.

    One cut at the protocol's cap is not JSON any more: its text is kept under
    ``"_truncated"`` rather than making the whole job unreadable.

    Examples
    --------
    >>> json_map('{"batch": 64}'), json_map('{"batch": 6')
    ({'batch': 64}, {'_truncated': '{"batch": 6'})
    """
    try:
        value = json.loads(text)
    except ValueError:
        return {"_truncated": text}
    return value if isinstance(value, dict) else {"_value": value}
