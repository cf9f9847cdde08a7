"""The job timeline as plain SVG, drawn in Python, for saved reports.

The twin of ``si.charts.timeline`` (Altair) drawn from the same lanes
(:func:`solstice_inspect.analysis.timeline.lanes`), without importing Altair or starting
vl-convert (seconds each): a report of a 1M-row job stays quick to save.
"""

from __future__ import annotations

import pandas as pd

from solstice_inspect.analysis.timeline import ENDINGS, Lanes
from solstice_inspect.report.svgcharts import esc

__all__ = ["timeline_svg"]

ENDING_COLOURS = dict(zip(ENDINGS, ["#4c78a8", "#9aa5b1", "#e45756", "#f58518", "#b279a2"]))
RULE_COLOURS = {"checkpoint": "#2ca02c", "checkpoint_failed": "#e45756", "restart": "#7f3fbf"}
LANE_H, LABEL_W, PLOT_W, LEGEND_W, TOP, BOTTOM = 14, 240, 760, 130, 24, 30


def _seconds(values: pd.Series) -> list[float]:
    stamps = pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]")
    return list(stamps.astype("int64").to_numpy() / 1e6)


def timeline_svg(laid: Lanes) -> str:
    """One SVG: a lane per worker (bars coloured by how it ended), a backpressure band
    per stage, failure / restart marks on their lanes, checkpoints as vertical rules.

    Examples
    --------
    >>> from solstice_inspect.analysis.timeline import lanes
    >>> t = pd.to_datetime([0, 5], unit="s", utc=True)
    >>> spans = pd.DataFrame({"worker_id": ["<w>"], "stage_id": ["s"], "start": t[:1],
    ...     "end": t[1:], "ended": ["FAILED"], "reason": [None]})
    >>> none = pd.DataFrame(columns=["stage_id", "start", "end"])
    >>> pts = pd.DataFrame(columns=["ts", "kind", "stage_id", "worker_id", "label"])
    >>> svg = timeline_svg(lanes(spans, none, pts, stage_order=["s"]))
    >>> "&lt;w&gt;" in svg and "<w>" not in svg and "class='mark-bar'" in svg
    True
    """
    order = laid.order
    legend = [*ENDING_COLOURS.items(), *RULE_COLOURS.items()]
    height = TOP + max(len(order), len(legend), 1) * LANE_H + BOTTOM
    width = LABEL_W + PLOT_W + LEGEND_W
    title = "Workers over time"
    if laid.total_workers > len(laid.spans):
        title += f" ({len(laid.spans):,} of {laid.total_workers:,} workers)"
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        "font-family='sans-serif' font-size='10' class='si-chart-svg si-timeline-svg'>",
        f"<text x='{LABEL_W}' y='14' font-size='12' font-weight='bold' "
        f"fill='currentColor'>{esc(title)}</text>",
    ]
    times = (
        _seconds(laid.spans["start"])
        + _seconds(laid.spans["end"])
        + _seconds(laid.backpressure["end"])
        + _seconds(laid.marks["ts"])
    )
    if not order or not times:
        parts.append(f"<text x='{LABEL_W}' y='{TOP + 12}' fill='currentColor'>no workers</text>")
        return "".join([*parts, "</svg>"])
    t0, t1 = min(times), max(times)
    span = (t1 - t0) or 1.0
    row = {lane: i for i, lane in enumerate(order)}

    def x(t: float) -> float:
        return LABEL_W + (t - t0) / span * PLOT_W

    def y(lane: str) -> float:
        return TOP + row[lane] * LANE_H

    for lane in order:
        parts.append(
            f"<text x='{LABEL_W - 6}' y='{y(lane) + 10:.1f}' text-anchor='end' "
            f"fill='currentColor'>{esc(lane[:48])}</text>"
        )
    bottom = TOP + len(order) * LANE_H
    for i in range(5):  # time ticks; the last label ends at the plot's edge
        tv = t0 + span * i / 4
        label = pd.Timestamp(tv, unit="s", tz="UTC").strftime("%H:%M:%S")
        anchor = "end" if i == 4 else "middle"
        parts.append(
            f"<line x1='{x(tv):.1f}' x2='{x(tv):.1f}' y1='{TOP}' y2='{bottom}' "
            "stroke='currentColor' stroke-opacity='0.12'/>"
            f"<text x='{x(tv):.1f}' y='{bottom + 14}' text-anchor='{anchor}' "
            f"fill='currentColor'>{label}</text>"
        )
    bp = laid.backpressure
    for lane, a, b in zip(bp["lane"], _seconds(bp["start"]), _seconds(bp["end"])):
        if lane in row:
            parts.append(
                f"<rect class='mark-band' x='{x(a):.1f}' y='{y(lane) + 2:.1f}' "
                f"width='{max(x(b) - x(a), 1):.1f}' height='{LANE_H - 4}' fill='#f2a900' "
                f"fill-opacity='0.6'><title>backpressured</title></rect>"
            )
    s = laid.spans
    for lane, a, b, ended, reason in zip(
        s["lane"], _seconds(s["start"]), _seconds(s["end"]), s["ended"], s["reason"]
    ):
        tip = f"{lane}: {ended}" + (f" ({reason})" if isinstance(reason, str) else "")
        parts.append(
            f"<rect class='mark-bar' x='{x(a):.1f}' y='{y(lane) + 2:.1f}' "
            f"width='{max(x(b) - x(a), 1):.1f}' height='{LANE_H - 4}' "
            f"fill='{ENDING_COLOURS.get(str(ended), '#888')}'><title>{esc(tip)}</title></rect>"
        )
    m = laid.marks
    for lane, t, kind, label in zip(m["lane"], _seconds(m["ts"]), m["kind"], m["label"]):
        tip = f"<title>{esc(kind)}: {esc(label)}</title>"
        if lane in row:
            parts.append(
                f"<circle class='mark-point' cx='{x(t):.1f}' cy='{y(lane) + LANE_H / 2:.1f}' "
                f"r='4' fill='#b00020'>{tip}</circle>"
            )
        else:
            colour = RULE_COLOURS.get(str(kind), "#888")
            parts.append(
                f"<line class='mark-rule' x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{TOP}' "
                f"y2='{bottom}' stroke='{colour}' stroke-dasharray='4 3'>{tip}</line>"
            )
    lx = LABEL_W + PLOT_W + 12
    for i, (name, colour) in enumerate(legend):
        ly = TOP + 4 + i * 14
        parts.append(
            f"<rect x='{lx}' y='{ly}' width='10' height='10' fill='{colour}'/>"
            f"<text x='{lx + 14}' y='{ly + 9}' fill='currentColor'>{esc(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
