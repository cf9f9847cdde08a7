"""Per-stage figures: totals, rates, backpressure level (Flink's), skew, bottleneck."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Dag

#: Flink's levels: OK <= 10 % of time backpressured, LOW <= 50 %, HIGH above
BACKPRESSURE_LEVELS = ((0.10, "OK"), (0.50, "LOW"), (1.01, "HIGH"))
#: max / mean partition lag (or per-worker records) above this is flagged as skew
SKEW_THRESHOLD = 2.0

SUMMARY_COLUMNS = [
    "stage_id",
    "operator_type",
    "workers_alive",
    "max_parallelism",
    "input_records",
    "output_records",
    "selectivity",
    "input_rate",
    "output_rate",
    "output_rate_now",
    "queue_lag",
    "backpressure_ratio",
    "backpressure_level",
    "skew_ratio",
    "skewed",
]


def backpressure_level(ratio: float | None) -> str:
    """OK, LOW or HIGH for the fraction of time a stage was backpressured.

    Examples
    --------
    >>> backpressure_level(0.05), backpressure_level(0.3), backpressure_level(0.8)
    ('OK', 'LOW', 'HIGH')
    """
    if ratio is None or (isinstance(ratio, float) and np.isnan(ratio)):
        return "OK"
    for bound, name in BACKPRESSURE_LEVELS:
        if ratio <= bound:
            return name
    return "HIGH"


def _last_valid(series: pd.Series) -> float:
    valid = series.dropna()
    return float(valid.iloc[-1]) if len(valid) else np.nan


def _time_weighted_ratio(g: pd.DataFrame) -> float:
    ratio = g["backpressure_ratio"]
    dt = g["ts"].diff().dt.total_seconds()
    mask = ratio.notna() & dt.notna() & (dt > 0)
    if not mask.any():
        return 1.0 if bool(g["backpressure_active"].iloc[-1]) else 0.0
    return float((ratio[mask] * dt[mask]).sum() / dt[mask].sum())


def stage_summary(stage_metrics: pd.DataFrame, dag: Dag | None = None) -> pd.DataFrame:
    """One row per stage (in DAG order) from the ``stage_metrics`` table.

    ``input_rate`` / ``output_rate`` are averages over the stage's active time;
    ``output_rate_now`` is the latest window's rate.
    """
    order = dag.topological_order() if dag is not None else []
    ops = {}
    max_p = {}
    if dag is not None and not dag.stages.empty:
        ops = dict(zip(dag.stages["stage_id"], dag.stages["operator_type"]))
        max_p = dict(zip(dag.stages["stage_id"], dag.stages["max_parallelism"]))
    rows = []
    groups = (
        dict(tuple(stage_metrics.sort_values("ts").groupby("stage_id")))
        if len(stage_metrics)
        else {}
    )
    for stage_id in order + sorted(s for s in groups if s not in order):
        g = groups.get(stage_id)
        if g is None or g.empty:
            rows.append(
                {
                    "stage_id": stage_id,
                    "operator_type": ops.get(stage_id),
                    "max_parallelism": max_p.get(stage_id),
                    "workers_alive": 0,
                    "input_records": 0,
                    "output_records": 0,
                    "backpressure_level": "OK",
                    "skewed": False,
                }
            )
            continue
        last = g.iloc[-1]
        span = (g["ts"].iloc[-1] - g["ts"].iloc[0]).total_seconds()
        first_in, first_out = g["input_records"].iloc[0], g["output_records"].iloc[0]
        rate_in = (last["input_records"] - first_in) / span if span > 0 else np.nan
        rate_out = (last["output_records"] - first_out) / span if span > 0 else np.nan
        ratio = _time_weighted_ratio(g)
        skew = last["skew_ratio"]
        rows.append(
            {
                "stage_id": stage_id,
                "operator_type": ops.get(stage_id),
                "workers_alive": int(last["workers_alive"]),
                "max_parallelism": max_p.get(stage_id),
                "input_records": int(last["input_records"]),
                "output_records": int(last["output_records"]),
                "selectivity": (
                    last["output_records"] / last["input_records"]
                    if last["input_records"]
                    else np.nan
                ),
                "input_rate": max(rate_in, 0.0) if not np.isnan(rate_in) else np.nan,
                "output_rate": max(rate_out, 0.0) if not np.isnan(rate_out) else np.nan,
                "output_rate_now": _last_valid(g["output_rate"]),
                "queue_lag": last["queue_lag"],
                "backpressure_ratio": ratio,
                "backpressure_level": backpressure_level(ratio),
                "skew_ratio": skew,
                "skewed": bool(pd.notna(skew) and skew > SKEW_THRESHOLD),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def bottleneck(summary: pd.DataFrame) -> str | None:
    """The stage most likely limiting the job, or None when nothing lags.

    Solstice marks a stage backpressured when its *input* queue lags (it cannot keep
    up), and throttles the stages upstream of it, whose own input queues may then lag
    in turn. So the root cause is the most downstream stage that is backpressured;
    with none, the stage with the largest queue lag.

    Examples
    --------
    >>> df = pd.DataFrame({"stage_id": ["read", "parse", "embed", "write"],
    ...                    "backpressure_level": ["LOW", "OK", "HIGH", "OK"],
    ...                    "queue_lag": [4000, 10, 90000, 0]})
    >>> bottleneck(df)
    'embed'
    """
    if summary.empty:
        return None
    levels = list(summary["backpressure_level"])
    for i in range(len(levels) - 1, -1, -1):
        if levels[i] in ("LOW", "HIGH"):
            return str(summary["stage_id"].iloc[i])
    lag = summary["queue_lag"].astype(float)
    if lag.notna().any() and lag.max() > 0:
        return str(summary.loc[lag.idxmax(), "stage_id"])
    return None
