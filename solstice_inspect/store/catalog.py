"""The catalog: one row per attempt state change or heartbeat, at the store's root.

Readers take the newest row per attempt and derive LOST: a RUNNING attempt whose
heartbeat is older than three heartbeat intervals.
"""

from __future__ import annotations

import time
from typing import Any, cast

import pandas as pd
import pyarrow as pa

from solstice_inspect.schema import SCHEMAS

#: a RUNNING attempt is LOST after this many missed heartbeats
LOST_AFTER_HEARTBEATS = 3

LISTING_COLUMNS = [
    "job_id",
    "attempt_id",
    "status",
    "start_time",
    "end_time",
    "duration_s",
    "stages",
    "workers",
    "records_in",
    "records_out",
    "exceptions",
    "heartbeat",
    "heartbeat_interval_s",
]


def latest_attempts(catalog: pa.Table, *, now: float | None = None) -> pd.DataFrame:
    """Newest catalog row per attempt with LOST derived; newest attempts first."""
    if catalog.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LISTING_COLUMNS})
    df = catalog.to_pandas()
    df = df.sort_values(["ts"], kind="stable").groupby(["job_id", "attempt_id"], sort=False).tail(1)
    now = time.time() if now is None else now
    hb_age = now - df["heartbeat"].astype("int64") / 1e6
    lost = (df["status"] == "RUNNING") & (
        hb_age > LOST_AFTER_HEARTBEATS * df["heartbeat_interval_s"].fillna(5.0)
    )
    df.loc[lost, "status"] = "LOST"
    end = df["end_time"].where(df["end_time"].notna(), df["heartbeat"])
    df["duration_s"] = (end - df["start_time"]).dt.total_seconds()
    for col in ("stages", "workers", "records_in", "records_out", "exceptions"):
        df[col] = df[col].astype("Int64")
    df = df.sort_values(["start_time", "attempt_id"], ascending=False, kind="stable")
    return df[LISTING_COLUMNS].reset_index(drop=True)


def still_alive(row: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """A newest row read earlier, its LOST re-derived for ``now`` (a RUNNING attempt
    goes LOST as time passes with no new heartbeat; nothing else changes without one)."""
    if row.get("status") != "RUNNING" or row.get("heartbeat") is None:
        return row
    now = time.time() if now is None else now
    interval = row.get("heartbeat_interval_s")
    interval = 5.0 if interval is None or pd.isna(interval) else float(interval)
    beat = pd.Timestamp(row["heartbeat"])
    if pd.isna(beat):
        return row
    if now - cast(pd.Timestamp, beat).timestamp() > LOST_AFTER_HEARTBEATS * interval:
        row["status"] = "LOST"
    return row


def empty_catalog() -> pa.Table:
    return SCHEMAS["catalog"].empty_table()
