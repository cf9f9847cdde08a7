"""The rows of the ``samples`` table (a few output rows per split, stored as capped JSON
text) read back as a DataFrame: :func:`sample_rows`.

Examples
--------
>>> import pyarrow as pa
>>> t = pa.table({"ts": pa.array([0], pa.timestamp("us", tz="UTC")), "split_id": ["s1"],
...     "stage_id": ["parse"], "worker_id": ["parse_w0"],
...     "rows": ['[{"user": "ann", "n": 1}, {"user": "bob", "n": 2}]'],
...     "row_count": [2], "truncated": [False]})
>>> sample_rows(t)[["split_id", "sample_row", "user", "n"]]
  split_id  sample_row user  n
0       s1           0  ann  1
1       s1           1  bob  2
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa

__all__ = ["SAMPLE_COLUMNS", "sample_rows"]

#: the columns of :func:`sample_rows` before the sampled rows' own fields
SAMPLE_COLUMNS = ["ts", "split_id", "stage_id", "worker_id", "sample_row", "truncated"]


def _parsed(text: Any) -> tuple[list[Any], bool]:
    """The rows of one stored sample, and whether they could not all be read back (the
    recorder cut text too long to be JSON any more: its text is kept as ``_raw``)."""
    if not isinstance(text, str):
        return [], False
    try:
        rows = json.loads(text)
    except ValueError:
        return [{"_raw": text}], True
    return (rows if isinstance(rows, list) else [rows]), False


def sample_rows(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """One row per sampled row, oldest sample first: ``SAMPLE_COLUMNS`` then the rows'
    fields (a row that is not a mapping is put in ``value``; a field named like one of
    ``SAMPLE_COLUMNS`` becomes ``row.<name>``).

    ``truncated`` is True when the producer's sample was cut (more rows than kept, or
    text over the cap).
    """
    df = table.to_pandas() if isinstance(table, pa.Table) else table
    if df.empty:
        return pd.DataFrame(columns=SAMPLE_COLUMNS)
    df = df.sort_values("ts", kind="stable")
    meta: list[dict[str, Any]] = []
    data: list[dict[str, Any]] = []
    for rec in df.to_dict("records"):
        rows, broken = _parsed(rec.get("rows"))
        cut = bool(rec.get("truncated")) or broken
        for i, row in enumerate(rows):
            meta.append(
                {
                    "ts": rec.get("ts"),
                    "split_id": rec.get("split_id"),
                    "stage_id": rec.get("stage_id"),
                    "worker_id": rec.get("worker_id"),
                    "sample_row": i,
                    "truncated": cut,
                }
            )
            if isinstance(row, dict):
                data.append(
                    {(f"row.{k}" if k in SAMPLE_COLUMNS else str(k)): v for k, v in row.items()}
                )
            else:
                data.append({"value": row})
    out = pd.DataFrame(meta, columns=SAMPLE_COLUMNS)
    fields = pd.DataFrame(data, index=out.index)
    out = pd.concat([out, fields], axis=1) if len(fields.columns) else out
    out["sample_row"] = out["sample_row"].astype("int64")
    out["truncated"] = out["truncated"].astype(bool)
    return out.reset_index(drop=True)
