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


def to_arrow(table: str, rows: list[tuple], job_id: str, attempt_id: str) -> pa.Table:
    """Build one table's batch; ``rows`` are tuples in schema order after the two ids."""
    schema = SCHEMAS[table]
    n = len(rows)
    columns = list(zip(*rows)) if rows else [()] * (len(schema) - 2)
    arrays = [pa.array([job_id] * n, pa.string()), pa.array([attempt_id] * n, pa.string())]
    for field, values in zip(list(schema)[2:], columns):
        arrays.append(_column(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
