"""Notebook views (anywidget, ipycytoscape, Altair): they take a ``Job`` and never open
Lance or call Ray themselves.

- :func:`job_monitor` — the live dashboard of a job;
- :func:`job_browser` — every job of a store: filters, live statuses, click → monitor;
- :func:`compare` — 2–10 runs side by side (:class:`Comparison`);
- :func:`lineage_view` — the bounded lineage graph around a split (:class:`LineageView`);
- :class:`Table` — a paged, sortable, filterable table of any Arrow table, DataFrame or
  query, paged in the kernel like the dashboard's own tables.
"""

from __future__ import annotations

from solstice_inspect.widgets.browser import JobBrowser, job_browser
from solstice_inspect.widgets.compare import Comparison, compare
from solstice_inspect.widgets.lineage import LineageView, lineage_view
from solstice_inspect.widgets.monitor import JobMonitor, job_monitor
from solstice_inspect.widgets.tables import Table

__all__ = [
    "Comparison",
    "JobBrowser",
    "JobMonitor",
    "LineageView",
    "Table",
    "compare",
    "job_browser",
    "job_monitor",
    "lineage_view",
]
