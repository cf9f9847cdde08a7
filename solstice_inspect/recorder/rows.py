"""Row tuples from the fold → Arrow tables in the stored schema."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from solstice_inspect.schema import SCHEMAS, TS


def _column(values: tuple, dtype: pa.DataType) -> pa.Array:
    if dtype == TS:
        # float seconds -> integer microseconds, keeping nulls
        if None in values:
            micros = [None if v is None else round(v * 1_000_000) for v in values]
            return pa.array(micros, type=pa.int64()).cast(TS)
        arr = np.rint(np.asarray(values, dtype=np.float64) * 1_000_000).astype(np.int64)
        return pa.array(arr).cast(TS)
    return pa.array(values, type=dtype)


def to_arrow(
    table: str, rows: list[tuple], job_id: str, attempt_id: str, batch: int = 0
) -> pa.Table:
    """Build one table's batch; ``rows`` are tuples in schema order between the two ids
    and the trailing ``batch`` column."""
    schema = SCHEMAS[table]
    n = len(rows)
    fields = list(schema)[2:-1]
    columns = list(zip(*rows)) if rows else [()] * len(fields)
    arrays = [pa.array([job_id] * n, pa.string()), pa.array([attempt_id] * n, pa.string())]
    for field, values in zip(fields, columns):
        arrays.append(_column(values, field.type))
    arrays.append(pa.array(np.full(n, batch, dtype=np.int64)))
    return pa.Table.from_arrays(arrays, schema=schema)
