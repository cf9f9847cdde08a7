"""The ingest protocol: Solstice state-message envelopes and how they are checked.

An envelope is the JSON object Solstice's state producer emits::

    {"message_type": "worker_metrics", "job_id": "etl_001", "source_id": "map_w0_1a2b3c",
     "timestamp": 1764331200.25, "sequence": 17, "payload": {...}}

:func:`validate` turns one envelope (a dict, or JSON text) into a :class:`Envelope` or
raises :class:`~solstice_inspect.errors.InvalidMessage` with a short reason code that the
recorder counts. It never mutates its input. Oversize strings are truncated (and marked),
not rejected — a long stack trace keeps its head and its last frames with the exception
line — and an envelope is measured against the size cap only after that; the caps are
documented in ``docs/protocol.md``.
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

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)

except ImportError:  # pragma: no cover - orjson is a declared dependency
    _loads = json.loads
    _JSONError = (ValueError, UnicodeDecodeError)

    def _dumps(value: Any) -> bytes:
        return json.dumps(value).encode()


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
EXTENSION_TYPES = (
    "worker_resources",
    "log",
    "event",
    "custom_metric",
    "incident",
    "profile",
    "sample",
)
MESSAGE_TYPES = frozenset(SOLSTICE_TYPES + EXTENSION_TYPES)

#: A job id becomes a path component: letters, digits, then ``.``, ``_`` or ``-``.
JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

# Caps on what one message may store (characters). Longer strings are cut and marked.
MAX_ENVELOPE_BYTES = 1 << 20  #: an envelope still above this once capped: ``oversize``
MAX_PARSE_BYTES = 16 << 20  #: raw JSON above this is rejected (``oversize``) unparsed
MAX_ID_CHARS = 256  #: ids (source, stage, worker, split) above this are rejected
MAX_MESSAGE_CHARS = 8_192  #: exception / log messages, event descriptions
MAX_STACKTRACE_CHARS = 65_536  #: exception stack traces
MAX_JSON_CHARS = 262_144  #: config, metadata, labels, final_metrics once serialised
MAX_REJECT_RAW_CHARS = 4_096  #: how much of a rejected envelope is kept for inspection
MAX_COUNTER = 1 << 53  #: counters above this are rejected (``out_of_range``)
MAX_DEPTH = 32  #: maps and lists nested deeper are rejected (``too_deep``)
TRUNCATION_MARK = "… [truncated {n} chars]"
TRACE_MARK = "… [truncated {n} chars, {frames} frames] …\n"

#: envelope timestamps outside [2000-01-01, 2200-01-01) UTC are rejected (``bad_timestamp``)
MIN_TIMESTAMP = 946_684_800.0
MAX_TIMESTAMP = 7_258_118_400.0

# Field kinds: "s" string, "n" finite number, "c" non-negative finite counter,
# "t" epoch seconds, "b" bool, "l" list, "d" dict, "x" id (short string).
_S, _N, _C, _T, _B, _L, _D, _X = "s", "n", "c", "t", "b", "l", "d", "x"

#: payload fields per message type: name -> (kind, required)
PAYLOAD_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "job_started": {"dag_edges": (_D, False), "stages": (_L, False), "config": (_D, False)},
    "job_completed": {
        "status": (_S, False),
        "duration_ms": (_C, False),
        "final_metrics": (_D, False),
        "error": (_S, False),
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
        "worker_id": (_X, False),
        "parent_split_ids": (_L, False),
        "input_records": (_C, False),
        "output_records": (_C, False),
        "processing_time": (_C, False),
    },
    "checkpoint": {
        "checkpoint_id": (_X, False),
        "stage_id": (_X, False),
        "status": (_S, False),
        "trigger_time": (_T, False),
        "completion_time": (_T, False),
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
    # a split running far longer than its stage's finished splits, seen by the worker's
    # own telemetry client: the stack and log tail are taken at detection time
    "incident": {
        "kind": (_X, True),
        "incident_id": (_X, False),
        "stage_id": (_X, False),
        "worker_id": (_X, False),
        "split_id": (_X, False),
        "started_at": (_T, False),
        "elapsed_s": (_C, False),
        "threshold_s": (_C, False),
        "mean_s": (_C, False),
        "std_s": (_C, False),
        "finished_splits": (_C, False),
        "description": (_S, False),
        "stack": (_S, False),
        "log_tail": (_S, False),
    },
    # a sampling profile of one worker: folded stacks ("outer;inner;leaf") and counts
    "profile": {
        "worker_id": (_X, True),
        "stacks": (_L, True),
        "profile_id": (_X, False),
        "stage_id": (_X, False),
        "duration_s": (_C, False),
        "rate_hz": (_C, False),
    },
    # a few output rows of one split (opt-in data peek): stored as capped JSON text
    "sample": {
        "split_id": (_X, True),
        "rows": (_L, True),
        "stage_id": (_X, False),
        "worker_id": (_X, False),
    },
}

#: string fields with their own cap (others: MAX_MESSAGE_CHARS)
_STRING_CAPS = {
    "stacktrace": MAX_STACKTRACE_CHARS,
    "stack": MAX_STACKTRACE_CHARS,
    "log_tail": MAX_STACKTRACE_CHARS,
}
#: maps stored as capped JSON text (the others become rows or recorder state)
_JSON_TEXT_FIELDS = frozenset({"config", "final_metrics", "metadata", "labels"})
#: list / map content (estimated characters) above which an envelope is measured exactly
_BULK_CHECK = 128 << 10
_SHORT_LIST = 64  #: lists up to this long of ints and short ids are checked inline


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
    """Parse one JSON envelope; raise ``InvalidMessage`` with a countable reason.

    Text above ``MAX_PARSE_BYTES`` is rejected unparsed (``oversize``); text above
    ``MAX_ENVELOPE_BYTES`` is parsed, so that :func:`validate` can cap its long fields
    before it measures the envelope again.
    """
    if isinstance(raw, memoryview):
        raw = raw.tobytes()  # json.loads (the fallback below) takes no memoryview
    if len(raw) > MAX_PARSE_BYTES:
        raise InvalidMessage("oversize", f"envelope of {len(raw)} bytes > {MAX_PARSE_BYTES}")
    try:
        return _loads(raw)
    except _JSONError as exc:
        # NaN / Infinity are not JSON; tell them apart from garbage for a clearer reason.
        # orjson also stops at 1,024 levels of nesting, where json.loads recurses until
        # the interpreter's limit: that is too deep, not garbage, and must not escape.
        try:
            obj = json.loads(raw)
        except RecursionError:
            raise InvalidMessage("too_deep", f"JSON nests deeper than {MAX_DEPTH} levels") from None
        except (ValueError, UnicodeDecodeError):
            raise InvalidMessage("invalid_json", str(exc)[:200]) from None
        return obj


def cap(text: str, limit: int) -> tuple[str, bool]:
    """Cut ``text`` to ``limit`` characters plus a visible mark; return (text, was_cut)."""
    if len(text) <= limit:
        return text, False
    return text[:limit] + TRUNCATION_MARK.format(n=len(text) - limit), True


def cap_trace(text: str, limit: int = MAX_STACKTRACE_CHARS) -> tuple[str, bool]:
    """Cut a stack trace in the middle; return (text, was_cut).

    A trace reads from the outermost call to the innermost one and ends with the
    exception itself, so both ends matter: the first quarter of ``limit`` keeps the
    head, the rest keeps the last frames and the final line, cut at line boundaries.
    Between them a mark says how many characters and frames were left out.

    Examples
    --------
    >>> frame = '  File "app.py", line 3, in f\\n    return f(n + 1)\\n'
    >>> trace = "Traceback (most recent call last):\\n" + frame * 1000 + "RecursionError: deep\\n"
    >>> short, cut = cap_trace(trace, 400)
    >>> cut, short.splitlines()[0], short.splitlines()[-1]
    (True, 'Traceback (most recent call last):', 'RecursionError: deep')
    >>> [line for line in short.splitlines() if "truncated" in line]
    ['… [truncated 49700 chars, 994 frames] …']
    """
    if len(text) <= limit:
        return text, False
    head_budget = limit // 4
    tail_budget = limit - head_budget
    lines = text.splitlines(keepends=True)
    head_end = size = 0  # whole lines of the head
    for line in lines:
        if size + len(line) > head_budget:
            break
        size += len(line)
        head_end += 1
    tail_start, size = len(lines), 0  # whole lines of the tail
    while tail_start > head_end and size + len(lines[tail_start - 1]) <= tail_budget:
        tail_start -= 1
        size += len(lines[tail_start])
    if tail_start < len(lines) - 1 and lines[tail_start].startswith("    "):
        tail_start += 1  # the source line of a frame whose "File" line was cut
    head = "".join(lines[:head_end]) if head_end else text[:head_budget]
    if tail_start < len(lines):
        tail = "".join(lines[tail_start:])
        cut_to = len(text) - len(tail)
    elif len(lines) > 1:  # a final line longer than the tail budget: keep its start
        tail = cap(lines[-1], tail_budget)[0]
        cut_to = len(text) - len(lines[-1])
    else:  # one long line
        tail = text[-tail_budget:]
        cut_to = len(text) - tail_budget
    middle = text[len(head) : cut_to]
    if not middle:
        return head + tail, True
    frames = middle.count('\n  File "') + middle.startswith('  File "')
    if not head.endswith("\n"):
        head += "\n"
    mark = TRACE_MARK.format(n=len(middle), frames=frames)
    return head + mark + tail, True


def _show(value: float | int) -> str:
    """A number for a reject's detail; an integer too long to print says its size."""
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return f"{value:.6g}" if type(value) is float else str(value)


def _number(name: str, value: Any, counter: bool) -> float | int:
    kind = type(value)
    if kind is not int and kind is not float:
        if isinstance(value, bool) or not isinstance(value, Real):
            raise InvalidMessage("wrong_type", f"{name} must be a number, got {kind.__name__}")
        try:
            value = float(value)  # Decimal, Fraction, numpy scalars
        except (OverflowError, ValueError):
            raise InvalidMessage("out_of_range", f"{name} is not a float") from None
    if type(value) is float and not math.isfinite(value):
        raise InvalidMessage("non_finite", f"{name} is {value}")
    if counter:
        if value < 0:
            raise InvalidMessage("negative", f"{name} is {_show(value)}")
        if value > MAX_COUNTER:
            raise InvalidMessage("out_of_range", f"{name} is {_show(value)} > 2**53")
    return value


def _time(name: str, value: Any, low: float) -> float:
    """An epoch time in seconds: a finite number in [low, MAX_TIMESTAMP)."""
    number = _number(name, value, False)
    if not low <= number < MAX_TIMESTAMP:
        raise InvalidMessage(
            "bad_timestamp", f"{name} {_show(number)} is outside [{low:.0f}, {MAX_TIMESTAMP:.0f})"
        )
    return float(number)


def _text_ok(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (not Unicode; Arrow cannot store it)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_json_finite(name: str, value: Any, depth: int = 0) -> int:
    """Check a map or list for NaN, depth and bad text; return its rough size in chars."""
    if depth > MAX_DEPTH:
        raise InvalidMessage("too_deep", f"{name} nests deeper than {MAX_DEPTH} levels")
    vtype = type(value)
    if vtype is str:
        if not _text_ok(value):
            raise InvalidMessage("bad_unicode", f"{name} holds a lone surrogate")
        return len(value) + 3
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMessage("non_finite", f"{name} contains {value}")
        return 8
    if isinstance(value, dict):
        size = 2
        for key, item in value.items():
            ktype = type(key)
            if ktype is str:
                if not _text_ok(key):
                    raise InvalidMessage("bad_unicode", f"{name} has a key with a lone surrogate")
            elif ktype is not int:  # JSON keys are text; ints (partition 3) read as text
                raise InvalidMessage("wrong_type", f"{name} has a {ktype.__name__} key")
            size += len(str(key)) + 4 + _check_json_finite(f"{name}.{key}", item, depth + 1)
        return size
    if isinstance(value, (list, tuple)):
        size = 2
        for item in value:
            size += 1 + _check_json_finite(name, item, depth + 1)
        return size
    if vtype is int and not -(1 << 63) <= value < 1 << 64:
        raise InvalidMessage("out_of_range", f"{name} holds an integer beyond 64 bits")
    return 8


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
        wrong_type, unknown_message_type, non_finite, negative, out_of_range,
        bad_timestamp, bad_unicode, job_id_mismatch, bad_job_id, oversize_id, too_deep.

    Examples
    --------
    >>> env = validate({"message_type": "log", "job_id": "j1", "source_id": "w0",
    ...                 "timestamp": 1764331200.5, "payload": {"message": "hi"}})
    >>> env.message_type, env.sequence
    ('log', None)
    """
    raw_size = 0
    if not isinstance(obj, dict):
        if isinstance(obj, (str, bytes, bytearray, memoryview)):
            raw_size = len(obj)
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
    if not source.isascii() and not _text_ok(source):
        raise InvalidMessage("bad_unicode", "source_id holds a lone surrogate")
    # MIN_TIMESTAMP <= ts < MAX_TIMESTAMP, written as constants: this is the hot path
    if type(ts) is not float or not 946_684_800.0 <= ts < 7_258_118_400.0:
        ts = _time("timestamp", ts, MIN_TIMESTAMP)
    seq = obj.get("sequence")
    if seq is not None and (type(seq) is not int or seq < 0):
        raise InvalidMessage("wrong_type", "sequence must be a non-negative integer or null")
    raw_payload = obj.get("payload")
    if raw_payload is None:
        raw_payload = {}
    elif type(raw_payload) is not dict:
        raise InvalidMessage("wrong_type", "payload must be an object")
    payload, truncated, bulk = _check_payload(mtype, spec, raw_payload)
    if bulk > 131_072 or raw_size > 1_048_576:  # _BULK_CHECK, MAX_ENVELOPE_BYTES
        size = _stored_size(spec, jid, source, payload)
        if size > MAX_ENVELOPE_BYTES:
            raise InvalidMessage(
                "oversize", f"{mtype} of {size} bytes once capped > {MAX_ENVELOPE_BYTES}"
            )
    return Envelope(mtype, jid, source, float(ts), seq, payload, truncated)


def _json_size(value: Any) -> int:
    try:
        return len(_dumps(value))
    except TypeError:  # keys or values orjson cannot write (ints beyond 64 bits, objects)
        return len(json.dumps(value, default=str))


def _stored_size(spec: dict[str, tuple[str, bool]], jid: str, source: str, p: dict) -> int:
    """Bytes of the envelope as it will be kept: capped strings, maps stored as capped
    JSON text at their cap, payload fields the protocol does not name left out."""
    size = 128 + len(jid) + len(source)  # the envelope's own fields
    for name in spec:
        value = p.get(name)
        if value is None:
            continue
        if type(value) is str:
            size += len(name) + 4 + len(value.encode("utf-8"))
        elif name in _JSON_TEXT_FIELDS:
            size += len(name) + 4 + min(_json_size(value), MAX_JSON_CHARS + 40)
        else:
            size += len(name) + 4 + _json_size(value)
    return size


def _check_payload(
    mtype: str, spec: dict[str, tuple[str, bool]], raw: dict[str, Any]
) -> tuple[dict[str, Any], bool, int]:
    # The hot path of ingest: common shapes (ints, finite floats, short ids, flat lists)
    # are checked inline; anything unusual falls through to the general checks.
    # Returns (payload, truncated, bulk): bulk estimates the characters held in lists
    # and maps, the only fields without a cap of their own.
    out: dict[str, Any] | None = None  # copied only when a value must change
    truncated = False
    bulk = 0
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
                if value >> 53:  # one operation for "below 0 or from 2**53 on" (MAX_COUNTER)
                    value = _number(f"payload.{name}", value, True)
            elif vtype is float and 0.0 <= value <= 9_007_199_254_740_992.0:
                pass
            else:
                value = _number(f"payload.{name}", value, True)
        elif kind == "x":
            if vtype is not str:
                if vtype is int:  # ids that are numbers (partition 3) are fine as text
                    value = str(value)
                else:
                    raise InvalidMessage("wrong_type", f"payload.{name} must be a string")
            if len(value) > 256:  # MAX_ID_CHARS
                raise InvalidMessage("oversize_id", f"payload.{name} of {len(value)} chars")
            if not value.isascii() and not _text_ok(value):
                raise InvalidMessage("bad_unicode", f"payload.{name} holds a lone surrogate")
        elif kind == "n":
            value = _number(f"payload.{name}", value, False)
        elif kind == "s":
            if vtype is not str:
                raise InvalidMessage("wrong_type", f"payload.{name} must be a string")
            if not value.isascii() and not _text_ok(value):
                # free text keeps what it can: a lone surrogate (a file name decoded with
                # surrogateescape, say) is written as its escape, \udcff
                value = value.encode("utf-8", "backslashreplace").decode("utf-8")
            if len(value) > MAX_MESSAGE_CHARS:  # the smallest cap
                limit = _STRING_CAPS.get(name, MAX_MESSAGE_CHARS)
                if name == "stacktrace" or name == "stack":
                    value, cut = cap_trace(value, limit)
                else:
                    value, cut = cap(value, limit)
                truncated |= cut
        elif kind == "t":
            if vtype is not float or not 0.0 <= value < MAX_TIMESTAMP:
                value = _time(f"payload.{name}", value, 0.0)
        elif kind == "b":
            if vtype is not bool:
                raise InvalidMessage("wrong_type", f"payload.{name} must be true or false")
        elif kind == "d":
            if vtype is not dict:
                raise InvalidMessage("wrong_type", f"payload.{name} must be an object")
            bulk += _check_json_finite(f"payload.{name}", value)
        elif kind == "l":
            if vtype is not list and vtype is not tuple:
                raise InvalidMessage("wrong_type", f"payload.{name} must be a list")
            if len(value) > 64:  # _SHORT_LIST
                bulk += _check_json_finite(f"payload.{name}", value)
            else:  # a short list of ints and short ids holds < 20 kB: checked inline
                for item in value:
                    itype = type(item)
                    if itype is int:
                        continue
                    if itype is not str or len(item) > MAX_ID_CHARS or not item.isascii():
                        bulk += _check_json_finite(f"payload.{name}", value)
                        break
        if value is not original:
            if out is None:
                out = dict(raw)
            out[name] = value
    return (raw if out is None else out), truncated, bulk


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
