"""Per-stage rules: backpressure level (Flink's), skew threshold, bottleneck. The
per-stage figures themselves come from the job model (``analysis/snapshot.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
