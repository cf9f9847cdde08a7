"""Per-stage rules: backpressure level (Flink's), skew threshold, bottleneck. The
per-stage figures themselves come from the job model (``analysis/snapshot.py``)."""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

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
    "backpressured_s",
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


#: points of the header's sparkline kept per stage
SPARK_POINTS = 60


def _floats(column: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for nulls (and anything not a number)."""
    numbers = pd.Series(pd.to_numeric(column, errors="coerce"), index=column.index)
    return numbers.to_numpy(dtype=float, na_value=np.nan)


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, NaN or infinite."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class ExactSum:
    """A float sum that does not depend on how the terms were batched.

    Shewchuk's partials, as in ``math.fsum``: the model's figures are identical whether
    its rows came in one batch or in a hundred.
    """

    __slots__ = ("partials",)

    def __init__(self) -> None:
        self.partials: list[float] = []

    def add(self, x: float) -> None:
        """Add one term, exactly."""
        partials = self.partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def value(self) -> float:
        """The sum, correctly rounded."""
        return math.fsum(self.partials)


class StageWindows:
    """What a stage's summary needs of its ``stage_metrics`` rows, kept as they come.

    :meth:`fold` takes rows of one stage sorted by time (a ``_us`` column: microseconds);
    the cost of a fold is that of its rows, and the figures do not depend on how the rows
    were batched.
    """

    #: the summary of a stage that has not reported yet
    EMPTY: ClassVar[dict[str, Any]] = {
        "workers_alive": 0, "input_records": 0, "output_records": 0,
        "backpressured_s": 0.0, "backpressure_level": "OK", "skewed": False,
    }  # fmt: skip

    __slots__ = (
        "bp_den", "bp_num", "first", "last", "last_ts", "rate_in_now", "rate_out_now",
        "recent", "rows",
    )  # fmt: skip

    def __init__(self) -> None:
        self.first: dict[str, Any] | None = None  # the row with the smallest ts
        self.last: dict[str, Any] | None = None  # the row with the largest ts
        self.last_ts: int | None = None  # µs
        self.bp_num = ExactSum()  # Σ ratio × dt (µs), over rows with a ratio and dt > 0
        self.bp_den = 0  # Σ dt (µs) of those rows
        self.rate_out_now: float | None = None  # latest window's rate with a value
        self.rate_in_now: float | None = None
        self.recent: deque[tuple[int, float | None, float | None]] = deque(maxlen=SPARK_POINTS + 2)
        self.rows = 0

    def fold(self, g: pd.DataFrame) -> None:
        """Take this stage's next rows (sorted by ``_us``).

        Vectorised: only the backpressure products (exact sum) and the sparkline's last
        points are Python loops. The products are the same float operations, in the same
        order, as a row-by-row fold, so figures stay identical whatever the batching.
        """
        n = len(g)
        if n == 0:
            return
        us = g["_us"].to_numpy(dtype="int64")
        ratio = _floats(g["backpressure_ratio"])
        out_r, in_r = _floats(g["output_rate"]), _floats(g["input_rate"])
        if self.first is None:
            self.first = g.iloc[0].to_dict()
        prev = np.empty(n, dtype="int64")
        prev[1:] = us[:-1]
        has_prev = np.ones(n, dtype=bool)
        if self.last_ts is None:
            has_prev[0], prev[0] = False, 0
        else:
            prev[0] = self.last_ts
        dt = us - prev
        ok = has_prev & (dt > 0) & ~np.isnan(ratio)
        for term in (ratio[ok] * dt[ok].astype(float)).tolist():
            self.bp_num.add(term)
        self.bp_den += int(dt[ok].sum())
        fin_out, fin_in = np.isfinite(out_r), np.isfinite(in_r)
        if fin_out.any():
            self.rate_out_now = float(out_r[np.flatnonzero(fin_out)[-1]])
        if fin_in.any():
            self.rate_in_now = float(in_r[np.flatnonzero(fin_in)[-1]])
        k = min(n, self.recent.maxlen or n)
        for u, o, i, fo, fi in zip(
            us[-k:].tolist(), out_r[-k:].tolist(), in_r[-k:].tolist(),
            fin_out[-k:].tolist(), fin_in[-k:].tolist(),
        ):  # fmt: skip
            self.recent.append((u, o if fo else None, i if fi else None))
        self.last = g.iloc[-1].to_dict()
        self.last_ts = int(us[-1])
        self.rows += n

    def summary(self) -> dict[str, Any]:
        """The stage's figures (``SUMMARY_COLUMNS`` less its id, operator, parallelism)."""
        acc = self
        if acc.last is None or acc.first is None:
            return dict(self.EMPTY)
        last, first = acc.last, acc.first
        span = (int(last["_us"]) - int(first["_us"])) / 1e6
        d_in = last["input_records"] - first["input_records"]
        d_out = last["output_records"] - first["output_records"]
        if acc.bp_den > 0:
            ratio = acc.bp_num.value() / acc.bp_den
        else:
            ratio = 1.0 if bool(last["backpressure_active"]) else 0.0
        skew = finite(last.get("skew_ratio"))
        return {
            "workers_alive": int(last["workers_alive"]),
            "input_records": int(last["input_records"]),
            "output_records": int(last["output_records"]),
            "selectivity": (
                last["output_records"] / last["input_records"] if last["input_records"] else np.nan
            ),
            "input_rate": max(d_in / span, 0.0) if span > 0 else np.nan,
            "output_rate": max(d_out / span, 0.0) if span > 0 else np.nan,
            "output_rate_now": (np.nan if acc.rate_out_now is None else acc.rate_out_now),
            "queue_lag": last["queue_lag"],
            "backpressure_ratio": ratio,
            # the ratio's numerator: seconds backpressured (time-weighted), a counter
            "backpressured_s": acc.bp_num.value() / 1e6,
            "backpressure_level": backpressure_level(ratio),
            "skew_ratio": np.nan if skew is None else skew,
            "skewed": bool(skew is not None and skew > SKEW_THRESHOLD),
        }
