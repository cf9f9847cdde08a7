"""Downsampling for charts: at most ``max_points`` points per series, whatever the job
length (DESIGN §2 principle 4, bounded payloads).

Per-bucket minimum and maximum (the idea of M4, Jugel et al. 2014) keep what a line
chart shows: spikes in lag or rate survive, unlike taking every n-th point or averaging
buckets; and it is vectorised (LTTB needs a Python loop per output point).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: the most points of one series a chart receives
MAX_POINTS = 2000


def minmax_indices(y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` points of ``y`` (sorted by x): the first and last
    point, and the minimum and maximum of each of ``max_points // 2 - 1`` equal buckets.

    Spikes survive (a one-point lag spike is a bucket maximum), and it is O(n) in numpy:
    1M points take a few milliseconds. NaNs are never chosen as extremes of a bucket
    that has a number.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.zeros(100_000); y[54_321] = 9.0
    >>> idx = minmax_indices(y, 500)
    >>> len(idx) <= 500, 54_321 in idx, int(idx[0]), int(idx[-1])
    (True, True, 0, 99999)
    >>> minmax_indices(np.arange(3.0), 500).tolist()
    [0, 1, 2]
    """
    n = len(y)
    if max_points < 4:
        raise ValueError(f"max_points must be >= 4, not {max_points}")
    if n <= max_points:
        return np.arange(n)
    buckets = max_points // 2 - 1
    size = -(-(n - 2) // buckets)  # ceil: the inner points split into equal buckets
    inner = np.asarray(y[1 : n - 1], dtype=float)
    pad = buckets * size - len(inner)
    grid = np.concatenate([inner, np.full(pad, np.nan)]).reshape(buckets, size)
    filled = np.isnan(grid)
    lo = np.where(filled, np.inf, grid).argmin(axis=1)
    hi = np.where(filled, -np.inf, grid).argmax(axis=1)
    base = np.arange(buckets) * size + 1
    idx = np.concatenate([[0], base + lo, base + hi, [n - 1]])
    return np.unique(idx[idx < n])


def downsample(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    by: str | None = None,
    max_points: int = MAX_POINTS,
) -> pd.DataFrame:
    """Keep at most ``max_points`` rows per series (per value of ``by``): per time bucket
    the rows with the smallest and largest ``y``; rows stay in ``x`` order.

    Parameters
    ----------
    frame
        Long-form data, one row per point.
    x, y
        Column names; ``x`` may be a datetime column.
    by
        The column that names the series (e.g. ``"stage_id"``); one series when None.
    max_points
        Upper bound per series.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"t": list(range(5000)) * 2, "v": range(10000),
    ...                    "stage": ["a"] * 5000 + ["b"] * 5000})
    >>> downsample(df, "t", "v", by="stage", max_points=100).groupby("stage").size().tolist()
    [100, 100]
    """
    if frame.empty:
        return frame
    groups = [frame] if by is None else [g for _, g in frame.groupby(by, sort=False)]
    kept = []
    for g in groups:
        g = g.sort_values(x, kind="stable")
        kept.append(g.iloc[minmax_indices(g[y].to_numpy(dtype=float), max_points)])
    return pd.concat(kept, ignore_index=True)
