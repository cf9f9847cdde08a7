"""Escaped HTML for the monitor's tabs and stage detail, and its static fallback.

Every value passes through :func:`~solstice_inspect.report.summary.esc`: exception
messages and stack traces are user data and may contain markup.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from solstice_inspect.report.summary import STATUS_COLOURS, esc, table_html

#: rows of the workers tab shown at once (the rest is counted, not sent)
MAX_WORKER_ROWS = 200
#: exception groups shown in the exceptions tab
MAX_EXCEPTION_GROUPS = 50

STYLE = (
    "<style>.si-table{border-collapse:collapse;font-size:12px;font-family:sans-serif}"
    ".si-table td,.si-table th{border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}"
    ".si-table td:first-child,.si-table th:first-child{text-align:left}"
    ".si-exc summary{cursor:pointer}.si-exc pre{max-height:300px;overflow:auto;"
    "background:#f6f6f6;padding:6px;font-size:11px}</style>"
)


def workers_html(workers: pd.DataFrame) -> str:
    """The workers tab: one row per worker (at most ``MAX_WORKER_ROWS``).

    Examples
    --------
    >>> import pandas as pd
    >>> "w&lt;1&gt;" in workers_html(pd.DataFrame({"worker_id": ["w<1>"]}))
    True
    """
    if workers.empty:
        return "<p>No worker has reported yet.</p>"
    df = workers.copy()
    if "last_seen" in df:
        df["last_seen"] = pd.to_datetime(df["last_seen"], utc=True).dt.strftime("%H:%M:%S")
    return STYLE + f"<p>{len(df):,} workers</p>" + table_html(df, max_rows=MAX_WORKER_ROWS)


def exceptions_html(groups: pd.DataFrame) -> str:
    """The exceptions tab: one expandable entry per fingerprint with its stacktrace.

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
    parts = [STYLE, f"<p>{int(groups['count'].sum()):,} exceptions, {len(groups)} kinds</p>"]
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
        parts.append(f"<p>… {len(groups) - MAX_EXCEPTION_GROUPS} more kinds</p>")
    return "".join(parts)


def config_html(config: dict[str, Any]) -> str:
    """The configuration tab: the job's config as indented JSON."""
    if not config:
        return "<p>The job sent no configuration.</p>"
    return f"<pre>{esc(json.dumps(config, indent=2, sort_keys=True, default=str))}</pre>"


def stage_detail_html(
    stage_id: str,
    summary: pd.DataFrame,
    dag_stages: pd.DataFrame,
    partitions: pd.DataFrame,
    workers: pd.DataFrame,
) -> str:
    """The detail shown under the DAG for the stage the user clicked."""
    row = summary[summary["stage_id"] == stage_id]
    if row.empty:
        return f"<p>No stage {esc(stage_id)}.</p>"
    s = row.iloc[0].to_dict()
    spec = dag_stages[dag_stages["stage_id"] == stage_id]
    min_p = spec["min_parallelism"].iloc[0] if not spec.empty else None
    max_p = spec["max_parallelism"].iloc[0] if not spec.empty else None
    facts = [
        ("operator", s.get("operator_type")),
        ("records in", s.get("input_records")),
        ("records out", s.get("output_records")),
        ("selectivity", s.get("selectivity")),
        ("mean rate in (rec/s)", s.get("input_rate")),
        ("mean rate out (rec/s)", s.get("output_rate")),
        ("rate out now (rec/s)", s.get("output_rate_now")),
        ("parallelism min / max / now", f"{esc(min_p)} / {esc(max_p)} / {esc(s['workers_alive'])}"),
        ("queue lag", s.get("queue_lag")),
        (
            "backpressure",
            f"{esc(s.get('backpressure_level'))} ({esc(s.get('backpressure_ratio'))})",
        ),
        ("skew ratio", s.get("skew_ratio")),
    ]
    cells = "".join(
        f"<tr><th>{esc(k)}</th><td>{v if isinstance(v, str) and '/' in v else esc(v)}</td></tr>"
        for k, v in facts
    )
    stage_workers = workers[workers["stage_id"] == stage_id] if not workers.empty else workers
    return (
        STYLE
        + f"<div class='si-stage-detail' data-stage='{esc(stage_id)}'>"
        + f"<h4>Stage {esc(stage_id)}</h4><table class='si-table'>{cells}</table>"
        + (
            "<h5>Partitions</h5>" + table_html(partitions, max_rows=50)
            if not partitions.empty
            else "<p>No partition metrics.</p>"
        )
        + f"<h5>Workers ({len(stage_workers)})</h5>"
        + table_html(stage_workers, max_rows=50)
        + "</div>"
    )


def header_html(head: dict[str, Any]) -> str:
    """The header as static HTML (for the no-kernel fallback)."""
    colour = STATUS_COLOURS.get(str(head.get("status")), "#333")
    reason = f" {esc(head['status_reason'])}" if head.get("status_reason") else ""
    progress = (
        f" · progress {head['progress'] * 100:.1f}%" if head.get("progress") is not None else ""
    )
    return (
        f"<h3>{esc(head['job_id'])} <small>attempt {esc(head['attempt_id'])}</small> "
        f"<span style='background:{colour};color:#fff;padding:1px 6px;border-radius:3px'>"
        f"{esc(head['status'])}</span>{reason}</h3>"
        f"<p>{'elapsed' if head.get('running') else 'duration'} {esc(head.get('elapsed_s'))} s"
        f"{progress} · records in {esc(head.get('records_in'))} · out "
        f"{esc(head.get('records_out'))} · rate out {esc(head.get('rate_out'))} rec/s · "
        f"workers alive {esc(head.get('workers'))} · exceptions {esc(head.get('exceptions'))}</p>"
    )
