"""The ingest fast path: the common, well-formed envelopes checked and folded in one loop.

A stream is mostly ``worker_metrics`` (and, from our own telemetry, ``split_processed``,
``stage_metrics`` and ``worker_resources``). The general path —
:func:`~solstice_inspect.protocol.validate` then :meth:`Fold.apply` — checks any shape
with generic loops over the field specs and builds an :class:`Envelope` per message.
Here each of those types has its own check, written for exactly the shape the general
path accepts *unchanged* (no capped string, no id given as a number, no value that needs
converting), and a ``worker_metrics`` report is folded without an Envelope.

One rule keeps the two paths one: the fast path only ever *accepts*. Anything it does not
recognise as well formed — a missing or null value, a type or range it does not check
inline, non-ASCII text, a long line, a parse error — goes to the general path untouched,
before any state has changed. So every reject reason is the general path's, by
construction, and every accepted envelope is one the general path accepts with the same
values (``tests/unit/test_fast_path.py`` holds both paths to identical rows and reasons).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from solstice_inspect.errors import InvalidMessage
from solstice_inspect.protocol import (
    _BULK_CHECK,
    MAX_ENVELOPE_BYTES,
    MAX_ID_CHARS,
    PAYLOAD_FIELDS,
    Envelope,
    _check_json_finite,
    _JSONError,
    _loads,
)
from solstice_inspect.recorder.fold import Fold

_MAX_COUNTER_F = 9_007_199_254_740_992.0  # MAX_COUNTER as a float (2**53)
#: the other types this path takes, through ``Fold.apply``: the kinds of their fields the
#: fast checks know (counters, ids, flags, lists, maps) cover every field they have
_CHECKED_TYPES = ("split_processed", "stage_metrics", "worker_resources")


def _fields(mtype: str) -> tuple[tuple[str, str, bool], ...]:
    fields = tuple((name, kind, req) for name, (kind, req) in PAYLOAD_FIELDS[mtype].items())
    assert all(kind in "cxbld" for _, kind, _ in fields), mtype
    return fields


_FIELDS = {mtype: _fields(mtype) for mtype in _CHECKED_TYPES}


def _plain(fields: tuple[tuple[str, str, bool], ...], p: dict[str, Any]) -> bool:
    """True when ``p`` is a payload the general check accepts as it is (and whose lists
    and maps stay below the size at which it measures the whole envelope)."""
    bulk = 0
    for name, kind, required in fields:
        value = p.get(name)
        if value is None:
            if required:
                return False
            continue
        vtype = type(value)
        if kind == "c":
            if vtype is int:
                if value >> 53:  # below 0, or from 2**53 on
                    return False
            elif vtype is not float or not 0.0 <= value <= _MAX_COUNTER_F:
                return False
        elif kind == "x":
            if vtype is not str or len(value) > MAX_ID_CHARS or not value.isascii():
                return False
        elif kind == "b":
            if vtype is not bool:
                return False
        elif kind == "l":
            if (vtype is not list and vtype is not tuple) or not _short_list(value):
                return False
        else:  # "d": a map of numbers and text, measured as the general check does
            if vtype is not dict:
                return False
            try:
                bulk += _check_json_finite(name, value)
            except InvalidMessage:
                return False
    return bulk <= _BULK_CHECK


def _short_list(value: list | tuple) -> bool:
    """A list the general check passes inline: up to 64 ints and short ASCII ids."""
    if len(value) > 64:
        return False
    for item in value:
        itype = type(item)
        if itype is not int and (
            itype is not str or len(item) > MAX_ID_CHARS or not item.isascii()
        ):
            return False
    return True


def _counter(value: Any) -> int | None:
    """A counter the general check passes unchanged, as the fold's ``int()`` reads it."""
    vtype = type(value)
    if vtype is int:
        return None if value >> 53 else value
    if vtype is float and 0.0 <= value <= _MAX_COUNTER_F:
        return int(value)
    return None


def ingest(
    fold: Fold,
    job_id: str,
    items: Iterable[Any],
    slow: Callable[[Any], bool],
    reject: Callable[[Any, str, str], None],
    unforeseen: tuple[type[Exception], ...],
) -> bool:
    """Check and fold ``items``; return True when one set the job's final status.

    ``slow`` takes one item through the general path (and returns the same flag);
    ``reject`` and ``unforeseen`` are what it does with a message the fold cannot use,
    so an error inside the fold is handled here exactly as there.
    """
    final = False
    accepted = 0
    seqs = fold._seqs
    report = fold.worker_report
    inf = float("inf")
    # the attempt's first and last message times, refreshed after any item that went
    # through Fold.apply (which keeps them itself)
    first = inf if fold.start_time is None else fold.start_time
    last = -inf if fold.last_ts is None else fold.last_ts
    try:
        for item in items:
            # ---- the envelope: exactly what validate() passes unchanged, else slow
            itype = type(item)
            if itype is bytes or itype is str:
                obj = None
                if 4 <= len(item) <= MAX_ENVELOPE_BYTES:  # not blank lines, not oversize
                    try:
                        obj = _loads(item)
                    except _JSONError:
                        pass
            else:
                obj = item
            if type(obj) is not dict:
                final |= slow(item)
                first, last = _times(fold)
                continue
            try:
                mtype = obj["message_type"]
                jid = obj["job_id"]
                source = obj["source_id"]
                ts = obj["timestamp"]
                p = obj["payload"]
            except KeyError:
                final |= slow(item)
                first, last = _times(fold)
                continue
            seq = obj.get("sequence")
            if type(ts) is not float:  # an int in range reads as its float; else out
                ts = float(ts) if type(ts) is int and 0 < ts < 1 << 33 else 0.0
            if (
                type(mtype) is not str
                or type(jid) is not str
                or jid != job_id
                or type(source) is not str
                or len(source) > MAX_ID_CHARS
                or not source.isascii()
                or not 946_684_800.0 <= ts < 7_258_118_400.0  # MIN/MAX_TIMESTAMP
                or (seq is not None and (type(seq) is not int or seq < 0))
                or type(p) is not dict
            ):
                final |= slow(item)
                first, last = _times(fold)
                continue
            if mtype != "worker_metrics":
                if mtype in _FIELDS and _plain(_FIELDS[mtype], p):
                    try:
                        final |= fold.apply(Envelope(mtype, jid, source, ts, seq, p, False))
                    except InvalidMessage as exc:
                        reject(item, exc.reason, exc.detail)
                    except unforeseen as exc:
                        reject(item, "unfoldable", f"{type(exc).__name__}: {exc}")
                else:
                    final |= slow(item)
                first, last = _times(fold)
                continue
            # ---- worker_metrics: the payload check and the fold's int() / float() in one
            get = p.get
            stage = get("stage_id")
            inp = get("input_records", 0)
            out = get("output_records", 0)
            done = get("processed_count", 0)
            ptime = get("processing_time", 0.0)
            parts = get("assigned_partitions")
            running = get("is_running")
            if type(inp) is not int or inp >> 53:  # a float, or out of range: None
                inp = _counter(inp)
            if type(out) is not int or out >> 53:
                out = _counter(out)
            if type(done) is not int or done >> 53:
                done = _counter(done)
            if type(ptime) is not float:
                ptime = float(ptime) if type(ptime) is int and not ptime >> 53 else -1.0
            if (
                inp is None
                or out is None
                or done is None
                or not 0.0 <= ptime <= _MAX_COUNTER_F
                or type(stage) is not str
                or not stage
                or len(stage) > MAX_ID_CHARS
                or not stage.isascii()
                or (parts is not None and (type(parts) is not list or not _short_list(parts)))
                or (running is not None and type(running) is not bool)
            ):
                final |= slow(item)
                first, last = _times(fold)
                continue
            if seq is not None:
                state = seqs.get(source)
                if state is not None and seq == state[0] + 1 and not state[1]:
                    state[0] = seq  # the next in order: all Fold.is_duplicate would do
                elif fold.is_duplicate(source, seq):
                    fold.stats["duplicates"] += 1
                    continue
            try:
                report(source, seq, ts, stage, inp, out, done, ptime)
            except InvalidMessage as exc:
                reject(item, exc.reason, exc.detail)
                continue
            except unforeseen as exc:
                reject(item, "unfoldable", f"{type(exc).__name__}: {exc}")
                continue
            # what Fold.apply does after its handler
            accepted += 1
            if ts > last:
                last = fold.last_ts = ts
            if ts < first:
                first = fold.start_time = ts
    finally:
        fold.stats["accepted"] += accepted
    return final


def _times(fold: Fold) -> tuple[float, float]:
    """(first, last) message time of the attempt, infinities while there is none."""
    first = float("inf") if fold.start_time is None else fold.start_time
    last = float("-inf") if fold.last_ts is None else fold.last_ts
    return first, last
