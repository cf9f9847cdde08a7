"""Downsampling for charts: at most ``max_points`` points per series, whatever the job
length (DESIGN §2 principle 4, bounded payloads).

Largest-Triangle-Three-Buckets (Steinarsson, 2013) keeps the points that shape the line
(spikes in lag or rate survive), unlike taking every n-th point or averaging buckets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: the most points of one series a chart receives
MAX_POINTS = 2000


def lttb_indices(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` points of ``(x, y)`` chosen by LTTB.

    ``x`` must be sorted. The first and last points are always kept. NaN values of ``y``
    are treated as 0 for the choice (the kept rows keep their NaN).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(10_000, dtype=float); y = np.sin(x / 100)
    >>> idx = lttb_indices(x, y, 500)
    >>> len(idx), int(idx[0]), int(idx[-1])
    (500, 0, 9999)
    >>> lttb_indices(x[:3], y[:3], 500).tolist()
    [0, 1, 2]
    """
    n = len(x)
    if max_points < 3:
        raise ValueError(f"max_points must be >= 3, not {max_points}")
    if n <= max_points:
        return np.arange(n)
    x = np.asarray(x, dtype=float)
    y = np.nan_to_num(np.asarray(y, dtype=float))
    # bucket edges over the points between the first and the last one
    edges = np.linspace(1, n - 1, max_points - 1).astype(int)
    out = np.empty(max_points, dtype=np.int64)
    out[0], out[-1] = 0, n - 1
    a = 0
    for i in range(max_points - 2):
        lo, hi = edges[i], max(edges[i + 1], edges[i] + 1)
        nlo, nhi = edges[i + 1], edges[i + 2] if i + 2 < len(edges) else n
        nhi = max(nhi, nlo + 1)
        cx, cy = x[nlo:nhi].mean(), y[nlo:nhi].mean()
        xs, ys = x[lo:hi], y[lo:hi]
        area = np.abs((x[a] - cx) * (ys - y[a]) - (x[a] - xs) * (cy - y[a]))
        a = lo + int(area.argmax())
        out[i + 1] = a
    return out


def downsample(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    by: str | None = None,
    max_points: int = MAX_POINTS,
) -> pd.DataFrame:
    """Keep at most ``max_points`` rows per series (per value of ``by``), chosen by LTTB
    on ``(x, y)``; rows stay in ``x`` order.

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
        xv = g[x]
        xs = xv.astype("int64").to_numpy() if pd.api.types.is_datetime64_any_dtype(xv) else xv
        idx = lttb_indices(np.asarray(xs, dtype=float), g[y].to_numpy(dtype=float), max_points)
        kept.append(g.iloc[idx])
    return pd.concat(kept, ignore_index=True)
