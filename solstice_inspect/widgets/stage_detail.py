"""The monitor's Stage tab beyond the stage's figures: partition lag over time,
backpressure over time, and the evidence for the named bottleneck (which queue, since
when).

The figures and the flagged partitions come from
:meth:`~solstice_inspect.analysis.snapshot.JobSnapshot.stage_facts`; the series here are
small (downsampled) lists for the front end's own SVG charts (``js/lib/minichart.js``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from solstice_inspect.analysis.downsample import downsample
from solstice_inspect.analysis.query import sql_literal

if TYPE_CHECKING:
    from solstice_inspect.analysis.snapshot import JobSnapshot
    from solstice_inspect.store.reader import Job

__all__ = ["MAX_PARTITION_LINES", "SERIES_POINTS", "queue_evidence", "stage_series"]

#: points per line of the stage's charts
SERIES_POINTS = 200
#: partition lines drawn: the flagged ones first, then the largest lag now
MAX_PARTITION_LINES = 8


def _secs(ts: pd.Series, t0: float) -> np.ndarray:
    micros = ts.astype("datetime64[us, UTC]").astype("int64").to_numpy()
    return np.round(micros / 1e6 - t0, 3)


def _points(frame: Any, y: str, t0: float) -> list[list[float]]:
    """``[[seconds since t0, value]]`` of at most :data:`SERIES_POINTS` rows.

    (Frames are typed Any here: pandas' stubs cannot follow them through masks.)
    """
    values: Any = pd.to_numeric(frame[y], errors="coerce")
    frame = frame.loc[values.notna()]
    if frame.empty:
        return []
    small: Any = downsample(frame, "ts", y, max_points=SERIES_POINTS)
    t = _secs(small["ts"], t0)
    v = np.asarray(pd.to_numeric(small[y]), dtype=float)
    return [[float(a), round(float(b), 3)] for a, b in zip(t, v)]


def stage_series(job: Job, snap: JobSnapshot, stage_id: str) -> dict[str, Any]:
    """The stage's lines over time, seconds since ``t0`` (the stage's first window).

    ``{t0, lag: [{partition, flagged, ratio, points}], lag_total, backpressure: {queue_lag,
    active}}``: partition lag from the stored ``partition_metrics`` rows of the stage
    (the flagged partitions — lag > 2× the stage's mean — and then the largest, at most
    :data:`MAX_PARTITION_LINES`); queue lag and whether backpressure was on, from its
    ``stage_metrics`` windows.
    """
    sm: Any = snap.stage_metrics
    mine: Any = sm.loc[sm["stage_id"] == stage_id] if not sm.empty else sm
    parts: Any = pd.DataFrame()
    if job.version("partition_metrics") is not None:
        parts = job.table(
            "partition_metrics",
            columns=["ts", "partition_id", "lag"],
            where=f"stage_id = {sql_literal(stage_id)}",
        ).to_pandas()
    starts = [f["ts"].min() for f in (mine, parts) if len(f)]
    if not starts:
        return {"t0": None, "lag": [], "lag_total": 0, "backpressure": {}}
    first: Any = pd.Timestamp(min(starts))
    t0 = float(first.timestamp())
    latest: Any = snap.partitions(stage_id)
    flagged = set(latest.loc[latest["flagged"].astype(bool), "partition_id"])
    ratio = dict(zip(latest["partition_id"], latest["lag_vs_mean"]))
    order = latest.assign(_f=~latest["flagged"].astype(bool)).sort_values(
        ["_f", "lag"], ascending=[True, False], kind="stable"
    )
    lines = []
    for pid in list(order["partition_id"])[:MAX_PARTITION_LINES]:
        rows = parts.loc[parts["partition_id"] == pid, ["ts", "lag"]].sort_values("ts")
        r = ratio.get(pid)
        lines.append(
            {
                "partition": str(pid),
                "flagged": pid in flagged,
                "ratio": None if r is None or pd.isna(r) else float(r),
                "points": _points(rows, "lag", t0),
            }
        )
    back: dict[str, Any] = {}
    if len(mine):
        m = mine.sort_values("ts", kind="stable")
        if "queue_lag" in m:
            back["queue_lag"] = _points(m[["ts", "queue_lag"]], "queue_lag", t0)
        if "backpressure_active" in m:
            on = m[["ts"]].assign(on=m["backpressure_active"].fillna(False).astype(float))
            back["active"] = _points(on, "on", t0)
    return {
        "t0": t0,
        "lag": lines,
        "lag_total": len(latest),
        "backpressure": back,
    }


def queue_evidence(snap: JobSnapshot, stage_id: str) -> list[list[Any]]:
    """Which queue backs up: the stage's input queue (from its upstream stages), its lag
    now and at its peak, and when backpressure on it began — as stage-detail facts.

    ``[label, value, type]`` rows, like ``stage_facts``.
    """
    ups = sorted(u for u, downs in snap.dag_edges.items() if stage_id in downs)
    sm: Any = snap.stage_metrics
    mine: Any = sm.loc[sm["stage_id"] == stage_id] if not sm.empty else sm
    queue = f"{', '.join(ups) or '(source)'} → {stage_id}"
    out: list[list[Any]] = [["input queue", queue, "string"]]
    if len(mine) and "queue_lag" in mine:
        lag: Any = pd.to_numeric(mine["queue_lag"], errors="coerce")
        if lag.notna().any():
            peak = int(lag.idxmax())
            out.append(["input queue lag now", float(lag.dropna().iloc[-1]), "int"])
            out.append(["input queue lag peak", float(lag[peak]), "int"])
            out.append(["peak at", mine.loc[peak, "ts"].timestamp(), "time"])
    if len(mine) and "backpressure_active" in mine:
        active = mine["backpressure_active"].fillna(False).astype(bool).to_numpy()
        if active.any():
            first = int(active.nonzero()[0][0])
            out.append(["first backpressured", mine["ts"].iloc[first].timestamp(), "time"])
            share = float(active.mean())
            out.append(["windows backpressured", round(share, 3), "float"])
    return out
