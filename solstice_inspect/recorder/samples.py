"""What ``Telemetry.sample`` sends: a few rows of a split made JSON-safe and small.

Rows come as a list (of dicts or any values), a pandas DataFrame or a pyarrow Table /
RecordBatch; only the first ones are read (:func:`first_rows`). Each value becomes JSON
the recorder accepts (:func:`json_rows`): times as ISO text, bytes as a short hex
preview, numpy and Arrow scalars as numbers, NaN as null, long text and lists cut, other
objects as their ``str()``/``repr()`` (never raising). :class:`Sampling` is one
producer's budget: a token bucket (``SAMPLE_BURST`` at once, then one per
``SAMPLE_EVERY`` seconds) and at most ``SAMPLE_ROWS`` rows per split.

Examples
--------
>>> import datetime
>>> json_rows([{"when": datetime.date(2025, 11, 28), "raw": b"\\x01\\x02", "x": float("nan")}])
[{'when': '2025-11-28', 'raw': '<2 bytes: 0102>', 'x': None}]
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

__all__ = ["SAMPLE_CHARS", "SAMPLE_ROWS", "Sampling", "first_rows", "json_rows", "safe_text"]

#: rows one split's sample keeps (as many as the recorder stores)
SAMPLE_ROWS = 5
#: characters of a sample's JSON text at most (the recorder's cap: nothing is cut there)
SAMPLE_CHARS = 16_384
#: characters of one text value, and items of one list, kept in a sample
SAMPLE_VALUE_CHARS = 1_000
SAMPLE_ITEMS = 20
#: samples a producer sends at once, then one every ``SAMPLE_EVERY`` seconds
SAMPLE_BURST = 10
SAMPLE_EVERY = 1.0
#: splits a producer remembers (to keep ≤ SAMPLE_ROWS rows per split)
SAMPLE_SPLITS = 1_000
_SAMPLE_DEPTH = 6


class Sampling:
    """One producer's sample budget: a token bucket, and rows sent per recent split."""

    def __init__(self) -> None:
        self.tokens = float(SAMPLE_BURST)
        self.at: float | None = None
        self.rows: dict[str, int] = {}  # insertion-ordered: the oldest split goes first
        self.skipped = 0

    def admit(self, split_id: str, now: float) -> int:
        """Rows this split may still get now (0: skip this sample)."""
        if self.at is not None:
            self.tokens = min(float(SAMPLE_BURST), self.tokens + (now - self.at) / SAMPLE_EVERY)
        self.at = now
        room = SAMPLE_ROWS - self.rows.get(split_id, 0)
        if room <= 0 or self.tokens < 1.0:
            self.skipped += 1
            return 0
        self.tokens -= 1.0
        return room

    def taken(self, split_id: str, n: int) -> None:
        self.rows[split_id] = self.rows.pop(split_id, 0) + n
        while len(self.rows) > SAMPLE_SPLITS:
            del self.rows[next(iter(self.rows))]


def first_rows(rows: Any, n: int) -> list[Any]:
    """The first ``n`` rows of a list, DataFrame, Arrow table / batch or iterable."""
    if rows is None or n <= 0:
        return []
    if hasattr(rows, "to_pylist") and hasattr(rows, "slice") and hasattr(rows, "schema"):
        return list(rows.slice(0, n).to_pylist())  # pyarrow Table / RecordBatch
    if hasattr(rows, "iloc") and hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        return list(rows.head(n).to_dict("records"))  # pandas DataFrame
    if isinstance(rows, (dict, str, bytes, bytearray)):
        return [rows]
    try:
        it = iter(rows)
    except TypeError:
        return [rows]
    out = []
    for row in it:
        if len(out) >= n:
            break
        out.append(row)
    return out


def safe_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, lone surrogates replaced (JSON takes none)."""
    cut = text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit:,} more chars]"
    return cut.encode("utf-8", "replace").decode("utf-8")


def _safe(value: Any, limit: int, depth: int = 0) -> Any:
    """``value`` as JSON the recorder accepts: no NaN, no bytes, no objects."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(1 << 63) <= value < 1 << 63 else str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return None if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return safe_text(value, limit)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value[:16])
        more = "…" if len(value) > 16 else ""
        return f"<{len(value):,} bytes: {raw.hex()}{more}>"
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if depth >= _SAMPLE_DEPTH:
        return safe_text(f"<{type(value).__name__}>", limit)
    if hasattr(value, "as_py") and callable(value.as_py):  # a pyarrow scalar
        return _safe(value.as_py(), limit, depth + 1)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(value, "shape", None) == ():  # a numpy scalar
        if getattr(dtype, "kind", "") in "mMOSUV":
            return safe_text(str(value), limit)
        return _safe(value.item(), limit, depth + 1)
    if isinstance(value, dict):
        items = list(value.items())
        out = {safe_text(str(k), 200): _safe(v, limit, depth + 1) for k, v in items[:SAMPLE_ITEMS]}
        if len(items) > SAMPLE_ITEMS:
            out["…"] = f"{len(items) - SAMPLE_ITEMS:,} more keys"
        return out
    if isinstance(value, (list, tuple, set, frozenset)) or (
        dtype is not None and hasattr(value, "tolist")  # a numpy array
    ):
        if isinstance(value, (list, tuple)):
            seq: list[Any] = list(value[:SAMPLE_ITEMS])
        elif isinstance(value, (set, frozenset)):
            seq = list(value)[:SAMPLE_ITEMS]
        else:
            seq = list(value[:SAMPLE_ITEMS])
        total = len(value)
        out_list = [_safe(v, limit, depth + 1) for v in seq]
        if total > SAMPLE_ITEMS:
            out_list.append(f"… {total - SAMPLE_ITEMS:,} more items")
        return out_list
    try:  # Decimal, UUID, paths, timedeltas read best as their str(); others as repr()
        text = str(value) if type(value).__str__ is not object.__str__ else repr(value)
    except Exception:  # noqa: BLE001 - a hostile __str__ / __repr__ must not escape
        text = f"<unprintable {type(value).__name__}>"
    return safe_text(text, limit)


def json_rows(rows: list[Any]) -> list[Any]:
    """``rows`` made JSON-safe, within ``SAMPLE_CHARS``: long text is cut shorter, then
    rows are left out from the end, until the sample fits."""
    for limit in (SAMPLE_VALUE_CHARS, 200, 40):
        safe = [_safe(row, limit) for row in rows]
        while safe:
            text = json.dumps(safe, ensure_ascii=False)
            if len(text) <= SAMPLE_CHARS:
                return safe
            if limit != 40:
                break  # cut the text shorter first
            safe.pop()
    return []
