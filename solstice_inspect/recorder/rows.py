"""Row tuples from the fold → Arrow tables in the stored schema."""

from __future__ import annotations

from functools import cache

import numpy as np
import pyarrow as pa

from solstice_inspect.schema import SCHEMAS, TS


@cache
def _row_type(table: str) -> tuple[pa.StructType, tuple[int, ...]]:
    """The struct type of one table's row tuples (timestamps as float seconds, the way
    the fold keeps them) and the positions of its timestamp columns."""
    fields = list(SCHEMAS[table])[2:-1]
    ts_at = tuple(i for i, f in enumerate(fields) if f.type == TS)
    row_type = pa.struct(
        [pa.field(f.name, pa.float64() if i in ts_at else f.type) for i, f in enumerate(fields)]
    )
    return row_type, ts_at


def _micros(seconds: pa.Array) -> pa.Array:
    """Float seconds -> timestamps in integer microseconds, rounded half to even (as
    Python's ``round``), keeping nulls."""
    micros = np.rint(seconds.to_numpy(zero_copy_only=False) * 1_000_000)
    if not seconds.null_count:
        return pa.array(micros.astype(np.int64)).cast(TS)
    nulls = seconds.is_null().to_numpy(zero_copy_only=False)
    micros[nulls] = 0  # NaN where the nulls were: no integer to cast them to
    return pa.array(micros.astype(np.int64), mask=nulls).cast(TS)


def to_arrow(
    table: str, rows: list[tuple], job_id: str, attempt_id: str, batch: int = 0
) -> pa.Table:
    """Build one table's batch; ``rows`` are tuples in schema order between the two ids
    and the trailing ``batch`` column."""
    schema = SCHEMAS[table]
    row_type, ts_at = _row_type(table)
    n = len(rows)
    # one conversion of the whole list of tuples, in Arrow's C++ converter: splitting the
    # tuples into Python columns first (zip(*rows)) cost three times as much
    if n:
        columns = pa.array(rows, type=row_type).flatten()
    else:
        columns = [pa.array([], type=field.type) for field in row_type]
    columns = [_micros(c) if i in ts_at else c for i, c in enumerate(columns)]
    arrays = [
        pa.repeat(pa.scalar(job_id, pa.string()), n),
        pa.repeat(pa.scalar(attempt_id, pa.string()), n),
        *columns,
        pa.array(np.full(n, batch, dtype=np.int64)),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


#: what building a batch raises on a row the schema cannot hold (a count beyond int64, …)
_UNWRITABLE = (pa.ArrowException, OverflowError, TypeError, ValueError)


def to_arrow_checked(
    table: str, rows: list[tuple], job_id: str, attempt_id: str, batch: int = 0
) -> tuple[pa.Table | None, list[tuple[tuple, str]]]:
    """:func:`to_arrow`, except that a row the schema cannot hold is set aside with the
    reason instead of failing the whole batch (and every other table of the flush).

    Returns the batch of the good rows (``None`` when there are none) and the bad rows.

    Examples
    --------
    >>> ok = (0.0, "w1", "parse", "INFO", "fine", False)
    >>> bad = (0.0, "w1", "parse", "INFO", "x", 1 << 70)
    >>> good, unwritable = to_arrow_checked("logs", [ok, bad], "j", "a")
    >>> good.num_rows, [reason.split(":")[0] for _, reason in unwritable]
    (1, ['ArrowInvalid'])
    """
    try:
        return to_arrow(table, rows, job_id, attempt_id, batch), []
    except _UNWRITABLE:
        pass
    good, bad = [], []
    for row in rows:
        try:
            to_arrow(table, [row], job_id, attempt_id, batch)
        except _UNWRITABLE as exc:
            bad.append((row, f"{type(exc).__name__}: {exc}"))
        else:
            good.append(row)
    return (to_arrow(table, good, job_id, attempt_id, batch) if good else None), bad
