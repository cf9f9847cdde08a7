"""A job's summary as static, escaped HTML (works with no kernel and no network)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Job

STATUS_COLOURS = {
    "RUNNING": "#1f77b4",
    "COMPLETED": "#2ca02c",
    "FAILED": "#d62728",
    "CANCELLED": "#7f7f7f",
    "LOST": "#ff7f0e",
}


def esc(value: Any) -> str:
    """Escape anything for HTML; NaN / None become an empty cell."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return html.escape(f"{value:,.2f}")
    if isinstance(value, int):
        return html.escape(f"{value:,}")
    return html.escape(str(value), quote=True)


def table_html(df: pd.DataFrame, columns: list[str] | None = None, max_rows: int = 50) -> str:
    columns = columns or list(df.columns)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(row.get(c))}</td>" for c in columns) + "</tr>"
        for row in df.head(max_rows).to_dict("records")
    )
    more = f"<p>… {len(df) - max_rows} more rows</p>" if len(df) > max_rows else ""
    return (
        f"<table class='si-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"
    )


def job_summary_html(job: Job) -> str:
    info = job.info
    status = str(info["status"])
    colour = STATUS_COLOURS.get(status, "#333")
    stages = job.stage_summary()
    groups = job.exception_groups()
    parts = [
        "<div class='si-job'>",
        f"<h3>{esc(job.job_id)} <small>attempt {esc(job.attempt_id)}</small> "
        f"<span style='background:{colour};color:#fff;padding:1px 6px;border-radius:3px'>"
        f"{esc(status)}</span></h3>",
        f"<p>start {esc(info['start_time'])} · duration {esc(info['duration_s'])} s · "
        f"records in {esc(info['records_in'])} · out {esc(info['records_out'])} · "
        f"workers alive {esc(info['workers'])} · exceptions {esc(info['exceptions'])}</p>",
    ]
    if info.get("error"):
        parts.append(f"<pre>{esc(info['error'])}</pre>")
    if not stages.empty:
        parts.append(
            table_html(
                stages,
                [
                    "stage_id",
                    "operator_type",
                    "workers_alive",
                    "input_records",
                    "output_records",
                    "output_rate",
                    "queue_lag",
                    "backpressure_level",
                    "skew_ratio",
                ],
            )
        )
    if not groups.empty:
        parts.append(
            table_html(
                groups, ["exception_type", "count", "stages", "message", "hint"], max_rows=10
            )
        )
    parts.append("</div>")
    return "".join(parts)
