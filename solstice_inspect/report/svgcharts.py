"""The dashboard's charts as plain SVG line charts, drawn in Python.

For static HTML (the no-kernel fallback, ``Job._repr_html_``): no JavaScript and no
network, and fast enough to sit on the path of every ``display()`` — drawing them with
vl-convert cost ~0.65 s in a new kernel. The live widget draws the same series with
Vega; these are their small, faithful twins (≤ 150 points per series, min/max kept).
"""

from __future__ import annotations

import html
import math

import pandas as pd

from solstice_inspect.analysis.downsample import downsample

__all__ = ["STATIC_POINTS", "charts_svg", "line_chart_svg"]

#: points per series in static charts
STATIC_POINTS = 150
#: Vega's default category colours (tableau10), so a stage keeps its colour
PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b",
           "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"]  # fmt: skip
W, H = 360, 180  # plot area
LEFT, TOP, RIGHT, BOTTOM = 56, 26, 96, 34


def esc(value: object) -> str:
    """Escape text for SVG."""
    return html.escape(str(value), quote=True)


def _nice(value: float) -> str:
    a = abs(value)
    if a >= 1e9:
        return f"{value / 1e9:.3g}G"
    if a >= 1e6:
        return f"{value / 1e6:.3g}M"
    if a >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


def line_chart_svg(
    points: pd.DataFrame, stages: list[str], title: str, y_title: str, *, percent: bool = False
) -> str:
    """One chart: ``points`` has columns ``t`` (datetime), ``stage``, ``v``.

    Examples
    --------
    >>> import pandas as pd
    >>> pts = pd.DataFrame({"t": pd.to_datetime([0, 10], unit="s", utc=True),
    ...                     "stage": ["<a>", "<a>"], "v": [1.0, 3.0]})
    >>> svg = line_chart_svg(pts, ["<a>"], "rate", "records / s")
    >>> svg.startswith("<svg") and "&lt;a&gt;" in svg and "<a>" not in svg
    True
    """
    width, height = LEFT + W + RIGHT, TOP + H + BOTTOM
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        "font-family='sans-serif' font-size='10' class='si-chart-svg'>",
        f"<text x='{LEFT}' y='14' font-size='12' font-weight='bold' fill='currentColor'>"
        f"{esc(title)}</text>",
    ]
    pts = points.dropna(subset=["v"])
    if pts.empty:
        parts.append(f"<text x='{LEFT + 10}' y='{TOP + H / 2}' fill='currentColor'>no data</text>")
        parts.append("</svg>")
        return "".join(parts)
    t = pts["t"].astype("datetime64[us, UTC]").astype("int64").to_numpy() / 1e6
    t0, t1 = float(t.min()), float(t.max())
    v0 = 0.0
    v1 = 1.0 if percent else float(pts["v"].max())
    v1 = v1 if v1 > v0 else v0 + 1.0
    span = t1 - t0 or 1.0

    def x(tv: float) -> float:
        return LEFT + (tv - t0) / span * W

    def y(vv: float) -> float:
        return TOP + H - (min(max(vv, v0), v1) - v0) / (v1 - v0) * H

    grid = "stroke='currentColor' stroke-opacity='0.15'"
    for i in range(5):  # y ticks
        vv = v0 + (v1 - v0) * i / 4
        label = f"{vv * 100:.0f}%" if percent else _nice(vv)
        parts.append(
            f"<line x1='{LEFT}' x2='{LEFT + W}' y1='{y(vv):.1f}' y2='{y(vv):.1f}' {grid}/>"
        )
        parts.append(
            f"<text x='{LEFT - 4}' y='{y(vv) + 3:.1f}' text-anchor='end' fill='currentColor'>"
            f"{esc(label)}</text>"
        )
    for i in range(4):  # time ticks
        tv = t0 + span * i / 3
        label = pd.Timestamp(tv, unit="s", tz="UTC").strftime("%H:%M:%S")
        parts.append(
            f"<text x='{x(tv):.1f}' y='{TOP + H + 14}' text-anchor='middle' "
            f"fill='currentColor'>{label}</text>"
        )
    parts.append(
        f"<text transform='translate(12,{TOP + H / 2}) rotate(-90)' text-anchor='middle' "
        f"fill='currentColor'>{esc(y_title)}</text>"
    )
    colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(stages)}
    for stage, g in pts.assign(_t=t).groupby("stage", sort=False):
        coords = " ".join(
            f"{x(tv):.1f},{y(vv):.1f}"
            for tv, vv in zip(g["_t"], g["v"].astype(float))
            if math.isfinite(vv)
        )
        colour = colours.get(str(stage), "#888")
        parts.append(
            f"<polyline class='mark-line' fill='none' stroke='{colour}' stroke-width='1.5' "
            f"points='{coords}'><title>{esc(stage)}</title></polyline>"
        )
    for i, stage in enumerate(s for s in stages if s in set(pts["stage"])):
        ly = TOP + 8 + i * 14
        parts.append(
            f"<line x1='{LEFT + W + 10}' x2='{LEFT + W + 24}' y1='{ly}' y2='{ly}' "
            f"stroke='{colours[stage]}' stroke-width='2'/>"
            f"<text x='{LEFT + W + 28}' y='{ly + 3}' fill='currentColor'>{esc(stage)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def charts_svg(stage_metrics: pd.DataFrame, stages: list[str]) -> str:
    """The three dashboard charts (throughput, queue lag, backpressure) as inline SVG."""
    from solstice_inspect.charts import CHARTS, series

    out = []
    for name, (_, title, y_title) in CHARTS.items():
        pts = downsample(
            series(stage_metrics, name), "t", "v", by="stage", max_points=STATIC_POINTS
        )
        out.append(line_chart_svg(pts, stages, title, y_title, percent=name == "backpressure"))
    return "<div class='si-static-charts'>" + "".join(out) + "</div>"
