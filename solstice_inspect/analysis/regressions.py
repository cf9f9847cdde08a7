"""Is this run unusual for its job? Pure statistics over a job's history.

A figure of a stage (output rate, share of processing time, selectivity, exceptions) is a
regression candidate when it lies outside the run-to-run spread of the job's earlier
runs — their median ± ``mad_k`` × MAD (the median absolute deviation, unscaled) — *and*
differs from that median by at least ``min_change`` (relative). The spread test keeps
noisy stages quiet; the change test keeps a stage whose figures never vary (MAD 0) from
being flagged for a 1 % wobble. Fewer than ``min_runs`` earlier runs flag nothing, and
say so in ``df.attrs["note"]``.

Examples
--------
>>> import pandas as pd
>>> earlier = pd.DataFrame({"rate:parse": [100.0, 98, 102, 101, 99, 100]})
>>> df = find_regressions(earlier, pd.Series({"rate:parse": 60.0}))
>>> df["message"].tolist()
['parse 40 % slower than the median of 6 runs (60 vs 100 rec/s)']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["METRICS", "REGRESSION_COLUMNS", "find_regressions", "spread"]

#: history column prefix -> what it measures, and which way is worse
METRICS: dict[str, dict[str, str]] = {
    "rate": {"label": "output rate", "worse": "lower"},
    "share": {"label": "share of processing time", "worse": "higher"},
    "selectivity": {"label": "selectivity", "worse": "either"},
    "exceptions": {"label": "exceptions", "worse": "higher"},
}
REGRESSION_COLUMNS = [
    "stage_id", "metric", "value", "median", "mad", "low", "high", "change", "runs",
    "direction", "worse", "message",
]  # fmt: skip


def spread(values: Any, *, mad_k: float = 3.0) -> tuple[float, float, float, float]:
    """Median, MAD, and the band median ± ``mad_k`` × MAD of ``values`` (NaN dropped).

    Examples
    --------
    >>> spread([1.0, 2.0, 3.0, 4.0, 100.0])
    (3.0, 1.0, 0.0, 6.0)
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    return med, mad, med - mad_k * mad, med + mad_k * mad


def _relative(value: float, med: float) -> float:
    if med == 0:
        return 0.0 if value == 0 else math.copysign(math.inf, value)
    return (value - med) / abs(med)


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"


def _message(stage: str, metric: str, value: float, med: float, change: float, n: int) -> str:
    up = value > med
    pct = "∞" if math.isinf(change) else f"{abs(change) * 100:.0f}"
    runs = f"the median of {n} runs"
    if metric == "rate":
        return (
            f"{stage} {pct} % {'faster' if up else 'slower'} than {runs} "
            f"({_num(value)} vs {_num(med)} rec/s)"
        )
    if metric == "share":
        return (
            f"{stage} took {value * 100:.0f} % of the processing time, against "
            f"{med * 100:.0f} % for {runs}"
        )
    if metric == "exceptions":
        return f"{stage} raised {value:,.0f} exceptions, against {med:,.0f} for {runs}"
    return (
        f"{stage} {METRICS[metric]['label']} {value:.3g}, {pct} % "
        f"{'higher' if up else 'lower'} than {runs} ({med:.3g})"
    )


def _worse(metric: str, up: bool) -> bool:
    way = METRICS[metric]["worse"]
    return way == "either" or (way == "higher") == up


def find_regressions(
    earlier: pd.DataFrame,
    current: Mapping[str, Any],
    *,
    min_runs: int = 5,
    mad_k: float = 3.0,
    min_change: float = 0.10,
) -> pd.DataFrame:
    """The stage figures of ``current`` outside the spread of the ``earlier`` runs.

    Parameters
    ----------
    earlier
        One row per earlier run, with ``<metric>:<stage>`` columns (``si.history``).
    current
        The run examined: a history row (a Series or dict with those columns).
    min_runs
        Fewer earlier runs (with a value) than this: nothing is flagged.
    mad_k
        Width of the band, in MADs either side of the median.
    min_change
        The smallest relative change from the median that is flagged (0.10: 10 %).

    Returns
    -------
    pandas.DataFrame
        ``REGRESSION_COLUMNS``, one row per flagged (stage, metric), the worse changes
        first; ``change`` is relative to the median (-0.4: 40 % lower; ±inf from 0);
        ``worse``: a lower rate, a larger share, more exceptions, or any selectivity
        change. ``attrs["note"]`` says what was compared, or why nothing could be;
        ``attrs["runs"]``: the earlier runs.
    """
    if min_runs < 1:
        raise ValueError(f"min_runs must be at least 1, not {min_runs!r}")
    if not mad_k >= 0 or not min_change >= 0:
        raise ValueError(f"mad_k and min_change must be >= 0, not {mad_k!r}, {min_change!r}")
    runs = len(earlier)
    rows = []
    for col, raw in current.items():
        metric, sep, stage = str(col).partition(":")
        if not sep or metric not in METRICS or col not in earlier:
            continue
        value = float(raw) if raw is not None and not pd.isna(raw) else math.nan
        values = earlier[col].to_numpy(dtype=float)
        n = int(np.isfinite(values).sum())
        if not math.isfinite(value) or n < min_runs:
            continue
        med, mad, low, high = spread(values, mad_k=mad_k)
        change = _relative(value, med)
        if low <= value <= high or abs(change) < min_change:
            continue
        up = value > med
        rows.append(
            {
                "stage_id": stage, "metric": metric, "value": value, "median": med,
                "mad": mad, "low": low, "high": high, "change": change, "runs": n,
                "direction": "higher" if up else "lower", "worse": _worse(metric, up),
                "message": _message(stage, metric, value, med, change, n),
            }
        )  # fmt: skip
    df = pd.DataFrame(rows, columns=REGRESSION_COLUMNS)
    if not df.empty:
        order = df.assign(_w=~df["worse"], _c=-df["change"].abs())
        df = df.loc[order.sort_values(["_w", "_c"], kind="stable").index].reset_index(drop=True)
    if runs < min_runs:
        note = (
            f"only {runs} earlier completed run{'s' if runs != 1 else ''} to compare with "
            f"(at least {min_runs} are needed to tell a change from run-to-run noise): "
            "nothing flagged"
        )
    elif df.empty:
        note = f"every stage within median ± {mad_k:g} MAD of {runs} earlier runs"
    else:
        note = (
            f"{len(df)} figure{'s' if len(df) != 1 else ''} outside median ± {mad_k:g} MAD "
            f"of {runs} earlier runs and {min_change * 100:.0f} % or more from the median"
        )
    df.attrs["note"] = note
    df.attrs["runs"] = runs
    return df
