"""Paging, sorting and filtering a table in the kernel; pages travel as Arrow IPC bytes.

The front end never holds more than one page of a table: it asks for ``offset``,
``limit``, a sort and per-column filters (``docs/widget-protocol.md``), and
:meth:`Pager.page` answers from the Arrow table kept here — so row 99,999 of a
100,000-row table is as reachable as row 1, and nothing grows with the job in the browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as _pc

#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

__all__ = ["MAX_CELL_CHARS", "MAX_PAGE_ROWS", "FilterError", "Pager", "column_meta", "ipc_bytes"]

#: the most rows one page may hold (a page is one comm message; budgets: ≤ 4 MB)
MAX_PAGE_ROWS = 500
#: a page is cut to fewer rows when it would be larger (one message must stay ≤ 4 MB)
MAX_PAGE_BYTES = 3 * 1024 * 1024
#: longer text cells are cut (a stack trace is read in full from the row detail… up to this)
MAX_CELL_CHARS = 10_000

_NUMBER = re.compile(r"^\s*(>=|<=|!=|>|<|=)?\s*(-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*$")
_TIME_OF_DAY = re.compile(r"^\s*(>=|<=|!=|>|<|=)?\s*(\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*$")
_OPS = {
    ">": pc.greater,
    ">=": pc.greater_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    "=": pc.equal,
    "!=": pc.not_equal,
}


class FilterError(ValueError):
    """A filter or sort the table cannot apply; its message is shown in place of rows."""


def wire_type(dtype: pa.DataType) -> str:
    """The front end's type of a column: int, float, time, bool or string."""
    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "float"
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "time"
    if pa.types.is_boolean(dtype):
        return "bool"
    return "string"


def _to_wire_column(col: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    dtype = col.type
    if pa.types.is_timestamp(dtype):
        # nanosecond times (a pandas frame's) are cut to the microsecond, not refused
        micros = col.cast(pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64())
        return pc.divide(micros.cast(pa.float64()), 1e6)
    if pa.types.is_date(dtype):
        return _to_wire_column(col.cast(pa.timestamp("us", tz="UTC")))
    if pa.types.is_integer(dtype):
        return col.cast(pa.int64())
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return col.cast(pa.float64())
    if pa.types.is_boolean(dtype):
        return col
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return pc.utf8_slice_codeunits(col.cast(pa.string()), 0, MAX_CELL_CHARS)
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        flat = pc.list_flatten(col)
        if pa.types.is_string(dtype.value_type) and flat.null_count == 0:
            return pc.binary_join(col, ", ")  # vectorised: 100,000 lists in ~10 ms
        values = [", ".join(str(v) for v in x) if x is not None else None for x in col.to_pylist()]
        return pa.array(values, pa.string())
    values = [None if x is None else json.dumps(x, default=str) for x in col.to_pylist()]
    return pa.array(values, pa.string())


def to_wire(table: pa.Table) -> pa.Table:
    """The table as the front end reads it: times as epoch seconds (float64), integers
    int64, lists and structs as text, text capped at :data:`MAX_CELL_CHARS`."""
    return pa.table({name: _to_wire_column(table.column(name)) for name in table.column_names})


def column_meta(schema: pa.Schema, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """``[{name, type, label}]`` for ``tables[name].columns``.

    Examples
    --------
    >>> import pyarrow as pa
    >>> column_meta(pa.schema([("ts", pa.timestamp("us", tz="UTC")), ("n", pa.int32())]))
    [{'name': 'ts', 'type': 'time', 'label': 'ts'}, {'name': 'n', 'type': 'int', 'label': 'n'}]
    """
    labels = labels or {}
    return [
        {"name": f.name, "type": wire_type(f.type), "label": labels.get(f.name, f.name)}
        for f in schema
    ]


def ipc_bytes(table: pa.Table) -> bytes:
    """One Arrow IPC stream holding ``table``."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def as_arrow(data: Any) -> pa.Table:
    """A ``pyarrow.Table`` from a table, a pandas DataFrame or a RecordBatch."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(
        f"a table must be a pyarrow.Table, a pandas.DataFrame or a callable returning one, "
        f"not {type(data).__name__}"
    )


def _time_value(text: str, column: pa.ChunkedArray) -> float:
    """Epoch seconds of ``HH:MM[:SS]`` (on the day of the column's first time) or of a
    date-time text."""
    if re.fullmatch(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?", text):
        first = pc.min(column).as_py()
        day = float(first or 0) // 86_400 * 86_400  # midnight UTC of the first time
        parts = [float(p) for p in text.split(":")] + [0.0]
        return day + parts[0] * 3600 + parts[1] * 60 + parts[2]
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise FilterError(f"{text!r} is not a time (use HH:MM:SS or 2026-11-30 12:00)") from exc
    if pd.isna(stamp):
        raise FilterError(f"{text!r} is not a time (use HH:MM:SS or 2026-11-30 12:00)")
    stamp = cast(pd.Timestamp, stamp)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return float(stamp.timestamp())


def _mask(table: pa.Table, column: str, text: str, kind: str) -> pa.ChunkedArray:
    col = table.column(column)
    text = text.strip()
    if kind in ("int", "float", "time"):
        m = _NUMBER.match(text)
        if m:
            op, value = m.group(1) or "=", float(m.group(2))
        elif kind == "time":
            tm = _TIME_OF_DAY.match(text)
            op = (tm.group(1) if tm else None) or "="
            raw = tm.group(2) if tm else text.lstrip("<>=! ")
            if not tm:
                for prefix in (">=", "<=", "!=", ">", "<", "="):
                    if text.startswith(prefix):
                        op, raw = prefix, text[len(prefix) :].strip()
                        break
            value = _time_value(raw, col)
            if op == "=" and tm and raw.count(":") == 1:  # HH:MM: the whole minute
                return pc.and_(pc.greater_equal(col, value), pc.less(col, value + 60))
            if op == "=" and tm and "." not in raw:  # HH:MM:SS: the whole second
                return pc.and_(pc.greater_equal(col, value), pc.less(col, value + 1))
        else:
            raise FilterError(
                f"filter {text!r} on {column}: use a number with an optional "
                "comparison, e.g. >100, <=5, =3, !=0"
            )
        return _OPS[op](col, value)
    if kind == "bool":
        truth = text.lower()
        if truth not in ("true", "false", "yes", "no", "1", "0", "✓"):
            raise FilterError(f"filter {text!r} on {column}: use true or false")
        return pc.equal(col, truth in ("true", "yes", "1", "✓"))
    if text.startswith("="):
        return pc.equal(col, text[1:])
    return pc.match_substring(col, text, ignore_case=True)


class Pager:
    """Pages of one table, sorted and filtered on request.

    Parameters
    ----------
    source
        The table (Arrow or pandas), or a callable returning it: a callable is only
        called when a page is asked for after :meth:`invalidate`, so a table nobody looks
        at costs nothing to keep current.
    """

    def __init__(self, source: Any) -> None:
        self._source = source
        self.version = 0
        self._wire: pa.Table | None = None
        self._schema: pa.Schema | None = None  # the source's, before the wire conversion
        self._order: dict[tuple, pa.Array | None] = {}

    def set(self, source: Any) -> None:
        """Replace the rows (a table or a callable); the version increases."""
        self._source = source
        self.invalidate()

    def invalidate(self) -> None:
        """The rows changed: drop the cached table and orders; the version increases."""
        self.version += 1
        self._wire = None
        self._order.clear()

    @property
    def computed(self) -> bool:
        """Whether the rows are at hand (computed since the last :meth:`invalidate`)."""
        return self._wire is not None

    @property
    def table(self) -> pa.Table:
        """The rows as the front end reads them (see :func:`to_wire`)."""
        if self._wire is None:
            data = as_arrow(self._source() if callable(self._source) else self._source)
            self._schema = data.schema
            self._wire = to_wire(data)
        return self._wire

    @property
    def schema(self) -> pa.Schema:
        """The source's schema (a time column is a timestamp here, a float on the wire)."""
        if self._schema is None:
            _ = self.table
        assert self._schema is not None
        return self._schema

    def _indices(self, sort: dict | None, filters: dict[str, str]) -> pa.Array | None:
        key = (
            None if not sort else (sort.get("column"), bool(sort.get("desc"))),
            tuple(sorted((k, v) for k, v in filters.items() if v.strip())),
        )
        if key in self._order:
            return self._order[key]
        table = self.table
        kinds = {f.name: wire_type(f.type) for f in table.schema}
        indices: pa.Array | None = None
        active = key[1]
        if active:
            mask = None
            for column, text in active:
                if column not in kinds:
                    raise FilterError(f"no column {column!r}; columns: {', '.join(kinds)}")
                m = _mask(table, column, text, kinds[column])
                mask = m if mask is None else pc.and_(mask, m)
            indices = pc.indices_nonzero(pc.fill_null(mask, False))
        if key[0] is not None:
            column, desc = key[0]
            if column not in kinds:
                raise FilterError(f"cannot sort by {column!r}; columns: {', '.join(kinds)}")
            part = table if indices is None else table.take(indices)
            order = pc.sort_indices(
                part, sort_keys=[(column, "descending" if desc else "ascending", "at_end")]
            )
            indices = order if indices is None else indices.take(order)
        if len(self._order) > 16:
            self._order.clear()
        self._order[key] = indices
        return indices

    def page(
        self,
        offset: int = 0,
        limit: int = 25,
        sort: dict | None = None,
        filters: dict[str, str] | None = None,
    ) -> tuple[pa.Table, int, int]:
        """``(rows, offset, filtered)``: at most ``limit`` rows from ``offset`` (clamped to
        the last page) of the table sorted and filtered as asked, and how many rows match.
        A page of huge cells holds fewer rows (at most :data:`MAX_PAGE_BYTES`).

        Examples
        --------
        >>> import pyarrow as pa
        >>> p = Pager(pa.table({"stage": ["a", "b", "a", "c"], "n": [3, 1, 2, 5]}))
        >>> rows, offset, matched = p.page(0, 10, {"column": "n", "desc": True},
        ...                                {"stage": "=a"})
        >>> rows.column("n").to_pylist(), offset, matched
        ([3, 2], 0, 2)
        """
        limit = max(1, min(int(limit), MAX_PAGE_ROWS))
        filters = {str(k): str(v) for k, v in (filters or {}).items() if v is not None}
        try:
            indices = self._indices(sort, filters)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise FilterError(str(exc).splitlines()[0]) from None
        total = self.table.num_rows if indices is None else len(indices)
        offset = max(0, int(offset))
        if offset >= total:
            offset = max(0, (total - 1) // limit * limit)
        if indices is None:
            rows = self.table.slice(offset, limit)
        else:
            rows = self.table.take(indices.slice(offset, limit))
        while rows.num_rows > 1 and rows.nbytes > MAX_PAGE_BYTES:
            rows = rows.slice(0, rows.num_rows // 2)  # huge cells: fewer rows, same start
        return rows, offset, total


Source = pa.Table | pd.DataFrame | Callable[[], Any]
