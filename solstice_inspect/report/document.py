"""Saved reports: one self-contained HTML file per job (or comparison) that opens with no
network and no kernel — the header, DAG, stage table, charts, timeline, exception
groups, checkpoints, failures and configuration.

Nothing in the file loads anything: no scripts, no fonts, no images by URL; the DAG and
charts and the timeline are inline SVG drawn in Python (no Altair import, no
vl-convert: saving stays quick). Every string from the job passes through
:func:`~solstice_inspect.report.static.esc` (or is escaped by the SVG writer).
"""

from __future__ import annotations

import html
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from solstice_inspect.report.static import STYLE, esc, snapshot_html, table_html

if TYPE_CHECKING:
    from solstice_inspect.api import Job

__all__ = ["CompareReport", "Report", "report"]

log = logging.getLogger("solstice_inspect.report")

#: rows of the checkpoint and failure tables kept in a report
MAX_TABLE_ROWS = 100

_PAGE_STYLE = (
    "<style>body{margin:24px auto;max-width:1200px;background:#fff}"
    "h1{font:600 20px system-ui,sans-serif;margin:0 0 4px}"
    "h2{font:600 15px system-ui,sans-serif;margin:22px 0 6px;border-bottom:1px solid #ddd}"
    ".si-meta{color:#666;font:12px system-ui,sans-serif;margin-bottom:12px}"
    ".si-config{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto;"
    "max-height:400px}.si-timeline svg{max-width:100%;height:auto}</style>"
)


def _section(title: str, body: str) -> str:
    return f"<h2>{esc(title)}</h2>{body}" if body else ""


def _timeline_svg(job: Job) -> str:
    from solstice_inspect.charts import timeline_lanes
    from solstice_inspect.report.svgtimeline import timeline_svg

    return f"<div class='si-timeline'>{timeline_svg(timeline_lanes(job))}</div>"


def _checkpoints_html(job: Job) -> str:
    chk: pd.DataFrame = job.checkpoints()
    if chk.empty:
        return ""
    cols = [
        "checkpoint_id",
        "stage_id",
        "status",
        "trigger_time",
        "completion_time",
        "duration_ms",
        "state_size_bytes",
    ]
    shown = chk.tail(MAX_TABLE_ROWS)
    note = "" if len(chk) <= MAX_TABLE_ROWS else f"<p>last {MAX_TABLE_ROWS} of {len(chk):,}</p>"
    return note + table_html(shown.loc[:, [c for c in cols if c in shown]], max_rows=MAX_TABLE_ROWS)


def _failures_html(job: Job) -> str:
    """Workers that failed or were killed, and the recorder's own incidents (events)."""
    workers: pd.DataFrame = job.workers()
    parts = []
    if not workers.empty:
        bad = workers.loc[workers["event"].isin(["FAILED", "KILLED"])]
        if len(bad):
            parts.append(
                table_html(
                    bad.loc[:, ["ts", "worker_id", "stage_id", "event", "reason"]],
                    max_rows=MAX_TABLE_ROWS,
                )
            )
    events: pd.DataFrame = job.events()
    if not events.empty:
        kinds = ("recorder_restarted", "telemetry_dropped", "straggler")
        odd = events.loc[events["event_type"].isin(kinds)]
        if len(odd):
            parts.append(
                table_html(
                    odd.loc[:, ["ts", "event_type", "stage_id", "worker_id", "description"]],
                    max_rows=MAX_TABLE_ROWS,
                )
            )
    return "".join(parts)


def _recommendations_html(job: Job) -> str:
    """Workers to add or remove per stage, with the figures (``job.recommendations()``)."""
    from solstice_inspect.widgets.advice import recommendations_html

    try:
        df = job.recommendations()
    except Exception as exc:  # a report is still worth having without this section
        log.exception("recommendations of %s failed", job.job_id)
        return f"<p>Recommendations failed: {esc(f'{type(exc).__name__}: {exc}')}</p>"
    return recommendations_html(df, title=None)


def _config_html(info: dict[str, Any]) -> str:
    config = info.get("config") or {}
    if not config:
        return ""
    text = json.dumps(config, indent=2, sort_keys=True, default=str)
    return f"<pre class='si-config'>{html.escape(text)}</pre>"


class Report:
    """A saved-report document of one job: :meth:`html`, :meth:`save`, shown inline.

    Get one with :func:`solstice_inspect.report`.

    Examples
    --------
    >>> r = si.report("etl_001")                 # doctest: +SKIP
    >>> r.save("etl_001.html")                   # doctest: +SKIP
    PosixPath('etl_001.html')
    """

    def __init__(self, job: Job, *, timeline: bool = True) -> None:
        self.job = job
        self.timeline = timeline
        self._html: str | None = None

    def __repr__(self) -> str:
        return f"Report({self.job.job_id!r}, attempt={self.job.attempt_id!r})"

    @property
    def title(self) -> str:
        return f"{self.job.job_id} · solstice_inspect report"

    def body(self) -> str:
        """The report's content (no ``<html>`` wrapper): what is shown inline."""
        job = self.job
        snap = job.snapshot()
        head = snap.header(now=time.time())
        info = job.info
        parts = [
            STYLE,
            _PAGE_STYLE,
            f"<h1>{esc(job.job_id)}</h1>",
            f"<div class='si-meta'>attempt {esc(job.attempt_id)} · report made "
            f"{esc(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))}</div>",
            snapshot_html(snap, head, charts=True),
        ]
        if self.timeline:
            parts.append(_section("Timeline", _timeline_svg(job)))
        parts.append(_section("Checkpoints", _checkpoints_html(job)))
        parts.append(_section("Failures and incidents", _failures_html(job)))
        parts.append(_section("Recommendations", _recommendations_html(job)))
        parts.append(_section("Configuration", _config_html(info)))
        # the sections after the snapshot share its look (fonts, tables, colours)
        return "".join(parts[:5]) + "<div class='si-static'>" + "".join(parts[5:]) + "</div>"

    def html(self) -> str:
        """The whole self-contained HTML document (built once, then kept)."""
        if self._html is None:
            title = esc(self.title)
            self._html = (
                "<!DOCTYPE html><html><head><meta charset='utf-8'>"
                # nothing may load from anywhere: the file is all there is
                "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
                "style-src 'unsafe-inline'; img-src data:\">"
                f"<title>{title}</title></head><body>{self.body()}</body></html>"
            )
        return self._html

    def save(self, path: str | Path) -> Path:
        """Write the report to ``path`` (UTF-8) and return the path."""
        out = Path(path)
        out.write_text(self.html(), encoding="utf-8")
        return out

    def _repr_html_(self) -> str:
        return self.body()


class CompareReport(Report):
    """A saved report of a comparison (``si.report(si.compare(a, b))``): the runs, the
    flags, the per-stage deltas, the overlaid rate charts and the config diff."""

    def __init__(self, comparison: Any) -> None:
        self.comparison = comparison
        self._html = None

    def __repr__(self) -> str:
        return f"CompareReport({len(self.comparison.runs)} runs)"

    @property
    def title(self) -> str:
        return "comparison of " + ", ".join(map(str, self.comparison.runs["label"]))

    def body(self) -> str:
        made = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        return "".join(
            [
                STYLE,
                _PAGE_STYLE,
                f"<h1>{esc(self.title)}</h1>",
                f"<div class='si-meta'>report made {esc(made)}</div>",
                self.comparison.static_html(charts=True),
            ]
        )


def report(job: Any, *, timeline: bool = True) -> Report:
    """A saved-report document of one job, or of a comparison; see :class:`Report`."""
    if hasattr(job, "config_diff") and hasattr(job, "static_html"):
        return CompareReport(job)
    return Report(job, timeline=timeline)
