"""Static, escaped HTML of a job's model (:class:`JobSnapshot`): what a saved notebook,
an nbconvert export and ``Job._repr_html_`` show without a kernel, and what reports are
made of. Works with no network: the DAG and charts are inline SVG.

Every value passes through :func:`esc`: exception messages and stack traces are user data
and may contain markup. Colours come from JupyterLab's ``--jp-*`` variables (light and
dark themes), with fallbacks for a plain browser.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import pandas as pd

from solstice_inspect.analysis.layout import LEVEL_COLOURS, edge_label, layers, node_data

if TYPE_CHECKING:
    from solstice_inspect.analysis.snapshot import JobSnapshot

STATUS_COLOURS = {
    "RUNNING": "#1f77b4",
    "COMPLETED": "#2e7d32",
    "FAILED": "#c62828",
    "CANCELLED": "#6d6d6d",
    "LOST": "#e07b00",
}
#: exception groups listed in static HTML
MAX_EXCEPTION_GROUPS = 50

STYLE = (
    "<style>.si-static{font-family:var(--jp-ui-font-family,system-ui,sans-serif);"
    "color:var(--jp-ui-font-color1,#222);font-size:13px}"
    ".si-static .si-table{border-collapse:collapse;font-size:12px}"
    ".si-static .si-table td,.si-static .si-table th{border-bottom:1px solid "
    "var(--jp-border-color2,#ddd);padding:2px 8px;text-align:right;white-space:nowrap}"
    ".si-static .si-table td:first-child,.si-static .si-table th:first-child{text-align:left}"
    ".si-static .si-exc summary{cursor:pointer}.si-static .si-exc pre{max-height:300px;"
    "overflow:auto;background:var(--jp-layout-color2,#f3f3f3);padding:6px;font-size:11px}"
    ".si-static .si-badge{color:#fff;padding:1px 6px;border-radius:3px}</style>"
)


def esc(value: Any) -> str:
    """Escape anything for HTML; NaN / None become an empty cell.

    Examples
    --------
    >>> esc("<b>"), esc(1234567), esc(0.5), esc(None)
    ('&lt;b&gt;', '1,234,567', '0.50', '')
    """
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return html.escape(f"{value:,.2f}")
    if isinstance(value, int):
        return html.escape(f"{value:,}")
    if isinstance(value, pd.Timestamp):
        return html.escape(value.strftime("%H:%M:%S"))
    return html.escape(str(value), quote=True)


def table_html(df: pd.DataFrame, columns: list[str] | None = None, max_rows: int = 50) -> str:
    """An escaped HTML table of the first ``max_rows`` rows (and how many more there are)."""
    columns = columns or list(df.columns)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(row.get(c))}</td>" for c in columns) + "</tr>"
        for row in df.head(max_rows).to_dict("records")
    )
    more = f"<p>… {len(df) - max_rows:,} more rows</p>" if len(df) > max_rows else ""
    return (
        f"<table class='si-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"
    )


def _count(value: Any) -> str:
    """A count with thousands separators ("—" when unknown)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return f"{round(float(value)):,}"


def header_html(head: dict[str, Any]) -> str:
    """The header (``JobSnapshot.header``) as static HTML."""
    colour = STATUS_COLOURS.get(str(head.get("status")), "#555")
    reason = (
        f" <span class='si-reason'>{esc(head['status_reason'])}</span>"
        if head.get("status_reason")
        else ""
    )
    start = head.get("start")
    started = (
        f"started {pd.Timestamp(start, unit='s', tz='UTC'):%Y-%m-%d %H:%M:%S} UTC · "
        if start is not None
        else ""
    )
    progress = (
        f" · progress {head['progress'] * 100:.1f}%" if head.get("progress") is not None else ""
    )
    elapsed = head.get("elapsed_s")
    return (
        f"<h3>{esc(head['job_id'])} <small>attempt {esc(head['attempt_id'])}</small> "
        f"<span class='si-badge' style='background:{colour}'>{esc(head['status'])}</span>"
        f"{reason}</h3>"
        f"<p>{started}{'elapsed' if head.get('running') else 'duration'} "
        f"{esc(None if elapsed is None else float(elapsed))} s{progress} · records in "
        f"{_count(head.get('records_in'))} · out {_count(head.get('records_out'))} · rate "
        f"out {esc(head.get('rate_out'))} rec/s · workers alive {_count(head.get('workers'))}"
        f" · exceptions {_count(head.get('exceptions'))}</p>"
    )


def exceptions_html(groups: pd.DataFrame) -> str:
    """One expandable entry per fingerprint (at most 50) with its stack trace.

    Examples
    --------
    >>> import pandas as pd
    >>> g = pd.DataFrame([{"fingerprint": "f", "exception_type": "E", "count": 1,
    ...     "first_seen": None, "last_seen": None, "stages": ["s"], "message": "<b>x</b>",
    ...     "stacktrace": "", "hint": ""}])
    >>> "<b>x</b>" in exceptions_html(g), "&lt;b&gt;x&lt;/b&gt;" in exceptions_html(g)
    (False, True)
    """
    if groups.empty:
        return "<p>No exceptions.</p>"
    parts = [f"<p>{int(groups['count'].sum()):,} exceptions, {len(groups):,} kinds</p>"]
    for row in groups.head(MAX_EXCEPTION_GROUPS).to_dict("records"):
        stages = ", ".join(str(s) for s in (row.get("stages") or []))
        hint = f"<div><i>hint: {esc(row['hint'])}</i></div>" if row.get("hint") else ""
        parts.append(
            "<details class='si-exc'><summary>"
            f"<b>{esc(row['exception_type'])}</b> ×{esc(int(row['count']))} — "
            f"<span class='si-exc-message'>{esc(row['message'])}</span></summary>"
            f"<div>stages: {esc(stages)} · first {esc(row['first_seen'])} · "
            f"last {esc(row['last_seen'])} · fingerprint {esc(row['fingerprint'])}</div>"
            f"{hint}<pre>{esc(row['stacktrace'])}</pre></details>"
        )
    if len(groups) > MAX_EXCEPTION_GROUPS:
        parts.append(f"<p>… {len(groups) - MAX_EXCEPTION_GROUPS:,} more kinds</p>")
    return "".join(parts)


def dag_svg(summary: pd.DataFrame, edges: list[tuple[str, str]]) -> str:
    """The DAG as a standalone SVG string (escaped labels), for static HTML.

    Examples
    --------
    >>> import pandas as pd
    >>> svg = dag_svg(pd.DataFrame({"stage_id": ["a", "<b>"], "backpressure_level": "OK"}),
    ...               [("a", "<b>")])
    >>> svg.startswith("<svg") and "&lt;b&gt;" in svg and "<b>" not in svg
    True
    """
    ids = list(summary["stage_id"])
    rows = {r["stage_id"]: r for r in summary.to_dict("records")}
    col = layers(ids, edges)
    per_col: dict[int, int] = {}
    pos = {}
    for s in ids:
        c = col[s]
        pos[s] = (20 + c * 200, 20 + per_col.get(c, 0) * 80)
        per_col[c] = per_col.get(c, 0) + 1
    width = 20 + (max(col.values(), default=0) + 1) * 200
    height = 20 + max(per_col.values(), default=1) * 80
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        "font-family='sans-serif' font-size='10' class='si-dag-svg'>",
        "<defs><marker id='si-arrow' markerWidth='8' markerHeight='8' refX='8' refY='4' "
        "orient='auto'><path d='M0,0 L8,4 L0,8 z' fill='#999'/></marker></defs>",
    ]
    for up, down in edges:
        if up not in pos or down not in pos:
            continue
        (x1, y1), (x2, y2) = pos[up], pos[down]
        parts.append(
            f"<line x1='{x1 + 150}' y1='{y1 + 28}' x2='{x2}' y2='{y2 + 28}' stroke='#999' "
            "stroke-width='2' marker-end='url(#si-arrow)'/>"
            f"<text x='{(x1 + 150 + x2) / 2}' y='{(y1 + y2) / 2 + 22}' text-anchor='middle'>"
            f"{esc(edge_label(rows[down].get('queue_lag')))}</text>"
        )
    for s in ids:
        x, y = pos[s]
        data, _ = node_data(rows[s])
        colour = LEVEL_COLOURS.get(data["level"], "#2ca02c")
        parts.append(
            f"<rect x='{x}' y='{y}' width='150' height='56' rx='6' fill='{colour}' stroke='#333'/>"
        )
        for i, line in enumerate(data["label"].split("\n")):
            parts.append(
                f"<text x='{x + 75}' y='{y + 16 + i * 13}' fill='#fff' text-anchor='middle'>"
                f"{esc(line)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


SUMMARY_TABLE = [
    "stage_id", "operator_type", "workers_alive", "input_records", "output_records",
    "output_rate", "queue_lag", "backpressure_level", "skew_ratio",
]  # fmt: skip


def snapshot_html(snap: JobSnapshot, head: dict[str, Any], *, charts: bool = True) -> str:
    """A job as static HTML: header, DAG (SVG), stage table, charts (SVG), error,
    exception groups."""
    summary = snap.stage_summary()
    parts = [STYLE, "<div class='si-static si-monitor-static'>", header_html(head)]
    if snap.error:
        parts.append(f"<pre class='si-job-error'>{esc(snap.error)}</pre>")
    if not summary.empty:
        parts.append(dag_svg(summary, snap.dag.edges))
        parts.append(table_html(summary, SUMMARY_TABLE))
    if charts and not snap.stage_metrics.empty:
        from solstice_inspect.report.svgcharts import charts_svg

        parts.append(charts_svg(snap.stage_metrics, list(summary["stage_id"])))
    parts.append(exceptions_html(snap.exception_groups()))
    parts.append("</div>")
    return "".join(parts)
