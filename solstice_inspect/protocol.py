"""The ingest protocol: Solstice state-message envelopes and how they are checked.

An envelope is the JSON object Solstice's state producer emits::

    {"message_type": "worker_metrics", "job_id": "etl_001", "source_id": "map_w0_1a2b3c",
     "timestamp": 1764331200.25, "sequence": 17, "payload": {...}}

:func:`validate` turns one envelope (a dict, or JSON text) into a :class:`Envelope` or
raises :class:`~solstice_inspect.errors.InvalidMessage` with a short reason code that the
recorder counts. It never mutates its input. Oversize strings are truncated (and marked),
not rejected; the caps are documented in ``docs/protocol.md``.
"""

from __future__ import annotations

import json
import math
import re
from numbers import Real
from typing import Any, NamedTuple

from solstice_inspect.errors import InvalidMessage

try:  # orjson parses 3-5x faster; the stdlib is the fallback, never a requirement
    import orjson

    _loads = orjson.loads
    _JSONError: tuple[type[Exception], ...] = (orjson.JSONDecodeError, UnicodeDecodeError)
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _loads = json.loads
    _JSONError = (ValueError, UnicodeDecodeError)

#: Solstice's own message types, then ours (DESIGN §3).
SOLSTICE_TYPES = (
    "job_started",
    "job_completed",
    "job_failed",
    "stage_started",
    "stage_completed",
    "stage_metrics",
    "worker_started",
    "worker_stopped",
    "worker_metrics",
    "exception",
    "backpressure",
    "split_processed",
    "checkpoint",
)
EXTENSION_TYPES = ("worker_resources", "log", "event", "custom_metric")
MESSAGE_TYPES = frozenset(SOLSTICE_TYPES + EXTENSION_TYPES)

#: A job id becomes a path component: letters, digits, then ``.``, ``_`` or ``-``.
JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

# Caps on what one message may store (characters). Longer strings are cut and marked.
MAX_ENVELOPE_BYTES = 1 << 20  #: a raw envelope above this is rejected as ``oversize``
MAX_ID_CHARS = 256  #: ids (source, stage, worker, split) above this are rejected
MAX_MESSAGE_CHARS = 8_192  #: exception / log messages, event descriptions
MAX_STACKTRACE_CHARS = 65_536  #: exception stack traces
MAX_JSON_CHARS = 262_144  #: config, metadata, labels, final_metrics once serialised
MAX_REJECT_RAW_CHARS = 4_096  #: how much of a rejected envelope is kept for inspection
TRUNCATION_MARK = "… [truncated {n} chars]"

# Field kinds: "s" string, "n" finite number, "c" non-negative finite counter,
# "b" bool, "l" list, "d" dict, "x" id (short string), "sn" string or number.
_S, _N, _C, _B, _L, _D, _X = "s", "n", "c", "b", "l", "d", "x"

#: payload fields per message type: name -> (kind, required)
PAYLOAD_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "job_started": {"dag_edges": (_D, False), "stages": (_L, False), "config": (_D, False)},
    "job_completed": {
        "status": (_S, False),
        "duration_ms": (_C, False),
        "final_metrics": (_D, False),
    },
    "job_failed": {
        "status": (_S, False),
        "duration_ms": (_C, False),
        "final_metrics": (_D, False),
        "error": (_S, False),
    },
    "stage_started": {
        "operator_type": (_S, False),
        "min_parallelism": (_C, False),
        "max_parallelism": (_C, False),
    },
    "stage_completed": {
        "operator_type": (_S, False),
        "min_parallelism": (_C, False),
        "max_parallelism": (_C, False),
    },
    "stage_metrics": {
        "worker_count": (_C, False),
        "input_records": (_C, False),
        "output_records": (_C, False),
        "input_throughput": (_C, False),
        "output_throughput": (_C, False),
        "queue_lag": (_C, False),
        "backpressure_active": (_B, False),
        "partition_metrics": (_D, False),
    },
    "worker_started": {
        "stage_id": (_X, True),
        "assigned_partitions": (_L, False),
        "node_id": (_X, False),
        "pid": (_C, False),
    },
    "worker_stopped": {
        "stage_id": (_X, True),
        "reason": (_S, False),
        "processed_count": (_C, False),
        "error_count": (_C, False),
        "node_id": (_X, False),
        "pid": (_C, False),
    },
    "worker_metrics": {
        "stage_id": (_X, True),
        "input_records": (_C, False),
        "output_records": (_C, False),
        "processing_time": (_C, False),
        "processed_count": (_C, False),
        "assigned_partitions": (_L, False),
        "is_running": (_B, False),
    },
    "exception": {
        "stage_id": (_X, False),
        "worker_id": (_X, False),
        "exception_type": (_S, True),
        "message": (_S, False),
        "stacktrace": (_S, False),
        "split_id": (_X, False),
    },
    "backpressure": {
        "active": (_B, True),
        "queue_lag": (_C, False),
        "slow_down_factor": (_N, False),
    },
    "split_processed": {
        "stage_id": (_X, True),
        "split_id": (_X, True),
        "parent_split_ids": (_L, False),
        "input_records": (_C, False),
        "output_records": (_C, False),
        "processing_time": (_C, False),
    },
    "checkpoint": {
        "checkpoint_id": (_X, False),
        "status": (_S, False),
        "trigger_time": (_C, False),
        "completion_time": (_C, False),
        "state_size_bytes": (_C, False),
        "offsets": (_L, False),
    },
    "worker_resources": {
        "stage_id": (_X, False),
        "cpu_percent": (_C, False),
        "memory_mb": (_C, False),
        "gpu_utilization": (_C, False),
        "gpu_memory_mb": (_C, False),
        "node_id": (_X, False),
        "pid": (_C, False),
    },
    "log": {
        "stage_id": (_X, False),
        "worker_id": (_X, False),
        "level": (_S, False),
        "message": (_S, True),
    },
    "event": {
        "event_type": (_X, True),
        "stage_id": (_X, False),
        "worker_id": (_X, False),
        "description": (_S, False),
        "duration_ms": (_C, False),
        "metadata": (_D, False),
    },
    "custom_metric": {"name": (_X, True), "value": (_N, True), "labels": (_D, False)},
}

#: string fields with their own cap (others: MAX_MESSAGE_CHARS)
_STRING_CAPS = {"stacktrace": MAX_STACKTRACE_CHARS}
_INF = math.inf


class Envelope(NamedTuple):
    """A checked envelope. ``payload`` is the producer's dict unless a value had to change
    (a capped string, an id given as a number): then it is a copy. It is never mutated."""

    message_type: str
    job_id: str
    source_id: str
    timestamp: float
    sequence: int | None
    payload: dict[str, Any]
    truncated: bool


def valid_job_id(job_id: object) -> str:
    """Return ``job_id`` if it is a safe path component, else raise ``ValueError``.

    Examples
    --------
    >>> valid_job_id("etl_001")
    'etl_001'
    >>> valid_job_id("../x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: job_id '../x' is not a safe name: ...
    """
    if not isinstance(job_id, str) or JOB_ID_RE.fullmatch(job_id) is None:
        raise ValueError(
            f"job_id {job_id!r} is not a safe name: use 1-128 letters, digits, '.', '_' or"
            " '-', starting with a letter or digit"
        )
    return job_id


def parse(raw: str | bytes | bytearray | memoryview) -> Any:
    """Parse one JSON envelope; raise ``InvalidMessage`` with a countable reason."""
    if isinstance(raw, memoryview):
        raw = raw.tobytes()  # json.loads (the fallback below) takes no memoryview
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise InvalidMessage("oversize", f"envelope of {len(raw)} bytes > {MAX_ENVELOPE_BYTES}")
    try:
        return _loads(raw)
    except _JSONError as exc:
        # NaN / Infinity are not JSON; tell them apart from garbage for a clearer reason.
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidMessage("invalid_json", str(exc)[:200]) from None
        return obj


def cap(text: str, limit: int) -> tuple[str, bool]:
    """Cut ``text`` to ``limit`` characters plus a visible mark; return (text, was_cut)."""
    if len(text) <= limit:
        return text, False
    return text[:limit] + TRUNCATION_MARK.format(n=len(text) - limit), True


def _number(name: str, value: Any, counter: bool) -> float | int:
    kind = type(value)
    if kind is not int and kind is not float:
        if isinstance(value, bool) or not isinstance(value, Real):
            raise InvalidMessage("wrong_type", f"{name} must be a number, got {kind.__name__}")
        value = float(value)
    if kind is float and not math.isfinite(value):
        raise InvalidMessage("non_finite", f"{name} is {value}")
    if counter and value < 0:
        raise InvalidMessage("negative", f"{name} is {value}")
    return value


def _check_json_finite(name: str, value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise InvalidMessage("too_deep", f"{name} nests deeper than 32 levels")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMessage("non_finite", f"{name} contains {value}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json_finite(f"{name}.{key}", item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_json_finite(name, item, depth + 1)


def validate(obj: Any, job_id: str | None = None) -> Envelope:
    """Check one envelope and return it as an :class:`Envelope`.

    Parameters
    ----------
    obj
        A dict, or JSON text (str / bytes) of one envelope.
    job_id
        When given, an envelope for any other job is rejected (``job_id_mismatch``).

    Raises
    ------
    InvalidMessage
        With ``reason`` one of: invalid_json, oversize, not_an_object, missing_field,
        wrong_type, unknown_message_type, non_finite, negative, job_id_mismatch,
        bad_job_id, oversize_id, too_deep.

    Examples
    --------
    >>> env = validate({"message_type": "log", "job_id": "j1", "source_id": "w0",
    ...                 "timestamp": 1.5, "payload": {"message": "hi"}})
    >>> env.message_type, env.sequence
    ('log', None)
    """
    if not isinstance(obj, dict):
        if isinstance(obj, (str, bytes, bytearray, memoryview)):
            obj = parse(obj)
        if not isinstance(obj, dict):
            raise InvalidMessage("not_an_object", f"got {type(obj).__name__}")
    try:
        mtype = obj["message_type"]
        jid = obj["job_id"]
        source = obj["source_id"]
        ts = obj["timestamp"]
    except KeyError as exc:
        raise InvalidMessage("missing_field", str(exc.args[0])) from None
    if type(mtype) is not str:
        raise InvalidMessage("wrong_type", "message_type must be a string")
    spec = PAYLOAD_FIELDS.get(mtype)
    if spec is None:
        raise InvalidMessage("unknown_message_type", mtype[:100])
    if type(jid) is not str:
        raise InvalidMessage("wrong_type", "job_id must be a string")
    if job_id is not None and jid != job_id:
        raise InvalidMessage("job_id_mismatch", f"{jid[:130]!r} is not {job_id!r}")
    if job_id is None and JOB_ID_RE.fullmatch(jid) is None:  # a given job_id is checked
        raise InvalidMessage("bad_job_id", repr(jid[:130]))
    if type(source) is not str:
        raise InvalidMessage("wrong_type", "source_id must be a string")
    if len(source) > MAX_ID_CHARS:
        raise InvalidMessage("oversize_id", f"source_id of {len(source)} chars")
    if type(ts) is not float or not 0.0 <= ts < _INF:
        ts = _number("timestamp", ts, counter=True)
    seq = obj.get("sequence")
    if seq is not None and (type(seq) is not int or seq < 0):
        raise InvalidMessage("wrong_type", "sequence must be a non-negative integer or null")
    raw_payload = obj.get("payload")
    if raw_payload is None:
        raw_payload = {}
    elif type(raw_payload) is not dict:
        raise InvalidMessage("wrong_type", "payload must be an object")
    payload, truncated = _check_payload(mtype, spec, raw_payload)
    return Envelope(mtype, jid, source, float(ts), seq, payload, truncated)


def _check_payload(
    mtype: str, spec: dict[str, tuple[str, bool]], raw: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    # The hot path of ingest: common shapes (ints, finite floats, short ids, flat lists)
    # are checked inline; anything unusual falls through to the general checks.
    out: dict[str, Any] | None = None  # copied only when a value must change
    truncated = False
    for name, (kind, required) in spec.items():
        value = raw.get(name)
        original = value
        if value is None:
            if required:
                raise InvalidMessage("missing_field", f"payload.{name} ({mtype})")
            continue
        vtype = type(value)
        if kind == "c":
            if vtype is int:
                if value < 0:
                    raise InvalidMessage("negative", f"payload.{name} is {value}")
            elif vtype is float and 0.0 <= value < _INF:
                pass
            else:
                value = _number(f"payload.{name}", value, True)
        elif kind == "x":
            if vtype is not str:
                if vtype is int:  # ids that are numbers (partition 3) are fine as text
                    value = str(value)
                else:
                    raise InvalidMessage("wrong_type", f"payload.{name} must be a string")
            if len(value) > MAX_ID_CHARS:
                raise InvalidMessage("oversize_id", f"payload.{name} of {len(value)} chars")
        elif kind == "n":
            value = _number(f"payload.{name}", value, False)
        elif kind == "s":
            if vtype is not str:
                raise InvalidMessage("wrong_type", f"payload.{name} must be a string")
            if len(value) > MAX_MESSAGE_CHARS:
                value, cut = cap(value, _STRING_CAPS.get(name, MAX_MESSAGE_CHARS))
                truncated |= cut
        elif kind == "b":
            if vtype is not bool:
                raise InvalidMessage("wrong_type", f"payload.{name} must be true or false")
        elif kind == "d":
            if vtype is not dict:
                raise InvalidMessage("wrong_type", f"payload.{name} must be an object")
            _check_json_finite(f"payload.{name}", value)
        elif kind == "l":
            if vtype is not list and vtype is not tuple:
                raise InvalidMessage("wrong_type", f"payload.{name} must be a list")
            for item in value:
                itype = type(item)
                if itype is not int and itype is not str:
                    _check_json_finite(f"payload.{name}", value)
                    break
        if value is not original:
            if out is None:
                out = dict(raw)
            out[name] = value
    return (raw if out is None else out), truncated


def envelope(
    message_type: str,
    job_id: str,
    source_id: str,
    timestamp: float,
    payload: dict[str, Any] | None = None,
    sequence: int | None = None,
) -> dict[str, Any]:
    """Build an envelope dict, as a Solstice producer would send it.

    Examples
    --------
    >>> envelope("log", "etl_001", "parse_w0_1a2b3c", 1764331200.0, {"message": "hi"})["payload"]
    {'message': 'hi'}
    """
    return {
        "message_type": message_type,
        "job_id": job_id,
        "source_id": source_id,
        "timestamp": timestamp,
        "sequence": sequence,
        "payload": payload or {},
    }
