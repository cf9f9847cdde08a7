"""A job's summary as static, escaped HTML (works with no kernel and no network)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from solstice_inspect.report.static import snapshot_html

if TYPE_CHECKING:
    from solstice_inspect.analysis.snapshot import JobSnapshot


def job_summary_html(snap: JobSnapshot, *, charts: bool = True) -> str:
    """Header, DAG, stage table, charts and exception groups of a job's model."""
    return snapshot_html(snap, snap.header(now=time.time()), charts=charts)
