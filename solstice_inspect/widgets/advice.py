"""Recommendations as HTML: :func:`recommendations_html`, for the monitor's panel and for
saved reports (static, escaped, no script; colours from JupyterLab's ``--jp-*``
variables with fallbacks)."""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

__all__ = ["ACTION_COLOURS", "recommendations_html"]

#: the badge colour of each action
ACTION_COLOURS = {
    "add workers": "#c62828",
    "remove workers": "#1f77b4",
    "investigate": "#e07b00",
    "at max_parallelism": "#8e24aa",
    "keep": "#2e7d32",
    "no recommendation": "#6d6d6d",
}

_STYLE = (
    "<style>.si-advice{font-family:var(--jp-ui-font-family,system-ui,sans-serif);"
    "color:var(--jp-ui-font-color1,#222);font-size:13px}"
    ".si-advice table{border-collapse:collapse;font-size:12px;width:100%}"
    ".si-advice td,.si-advice th{border-bottom:1px solid var(--jp-border-color2,#ddd);"
    "padding:3px 8px;vertical-align:top;text-align:left}"
    ".si-advice td.num{text-align:right;white-space:nowrap}"
    ".si-advice .si-action{color:#fff;padding:1px 6px;border-radius:3px;white-space:nowrap}"
    ".si-advice .si-note{color:var(--jp-ui-font-color2,#666)}</style>"
)


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _pct(value: Any) -> str:
    v = _number(value)
    return "" if v is None else f"{round(v * 100):d} %"


def _workers(row: dict[str, Any]) -> str:
    now, then = _number(row.get("current_workers")), _number(row.get("suggested_workers"))
    if now is None:
        return ""
    if then is None or then == now:
        return f"{int(now)}"
    return f"{int(now)} → {int(then)}"


def recommendations_html(df: pd.DataFrame, *, title: str | None = "Recommendations") -> str:
    """:meth:`Job.recommendations`'s frame as an escaped HTML table.

    One row per stage: the action as a coloured badge, workers now → suggested, the
    reason, then the evidence (busy, backpressure and bottleneck shares, output rate,
    earlier runs). ``df.attrs["note"]`` is shown above it.

    Parameters
    ----------
    df
        The frame :meth:`~solstice_inspect.Job.recommendations` returned.
    title
        A heading (None: none).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"stage_id": ["<b>x</b>"], "action": ["keep"],
    ...     "current_workers": [2], "suggested_workers": [2], "reason": ["fine & dandy"],
    ...     "busy_fraction": [0.5], "backpressure_share": [0.0], "bottleneck_share": [0.0],
    ...     "output_rate": [12.5], "history": ["no earlier runs"], "note": [""]})
    >>> out = recommendations_html(df)
    >>> "<b>x</b>" in out, "&lt;b&gt;x&lt;/b&gt;" in out, "fine &amp; dandy" in out
    (False, True, True)
    """
    parts = [_STYLE, "<div class='si-advice'>"]
    if title:
        parts.append(f"<h4>{html.escape(title)}</h4>")
    note = str(df.attrs.get("note") or "")
    if note:
        parts.append(f"<p class='si-note'>{html.escape(note)}</p>")
    if df.empty:
        if not note:
            parts.append("<p class='si-note'>No stage to recommend anything for.</p>")
        parts.append("</div>")
        return "".join(parts)
    heads = ["stage", "action", "workers", "why", "busy", "backpressure", "bottleneck",
             "out/s", "earlier runs"]  # fmt: skip
    parts.append(
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in heads)
        + "</tr></thead><tbody>"
    )
    for row in df.to_dict("records"):
        action = str(row.get("action") or "")
        colour = ACTION_COLOURS.get(action, "#6d6d6d")
        rate = _number(row.get("output_rate"))
        cells = [
            f"<td>{html.escape(str(row.get('stage_id') or ''))}</td>",
            f"<td><span class='si-action' style='background:{colour}'>"
            f"{html.escape(action)}</span></td>",
            f"<td class='num'>{html.escape(_workers(row))}</td>",
            f"<td>{html.escape(str(row.get('reason') or ''))}</td>",
            f"<td class='num'>{_pct(row.get('busy_fraction'))}</td>",
            f"<td class='num'>{_pct(row.get('backpressure_share'))}</td>",
            f"<td class='num'>{_pct(row.get('bottleneck_share'))}</td>",
            f"<td class='num'>{'' if rate is None else f'{rate:,.1f}'}</td>",
            f"<td>{html.escape(str(row.get('history') or ''))}</td>",
        ]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)
