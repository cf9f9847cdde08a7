"""The job monitor's tab strip (:class:`TabsView`): the dashboard's paged tables plus
the state of its deeper tabs — the splits query, the timeline and time travel, the
clicked worker — and the messages the front end sends about them
(``docs/widget-protocol.md``).

It keeps the name of the :class:`~solstice_inspect.widgets.tables.TabsView` it extends:
it is the same part of the dashboard (``part = "tabs"``), and tools that count a
dashboard's messages by widget class name see one tab strip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import traitlets

from solstice_inspect.widgets import tables

log = logging.getLogger("solstice_inspect.widgets")

__all__ = ["TabsView", "api_job"]


def api_job(job: Any) -> Any:
    """``job`` as :class:`solstice_inspect.api.job.Job` (splits, logs, timeline rows…):
    the monitor may hold the store layer's plain reader."""
    from solstice_inspect.api.job import Job as ApiJob

    return job if isinstance(job, ApiJob) else ApiJob(job.store, job.job_id, job.attempt_id)


class TabsView(tables.TabsView):
    """The dashboard's tabs; the kernel side of ``js/lib/tabs.js``.

    Parameters
    ----------
    handlers
        ``{message type: callback(message)}`` for the front end's own messages beyond
        pages and row clicks (``"splits"``: run a query; ``"travel"``: the job as of a
        time). A callback's error shows in ``error`` (it would be invisible otherwise).
    """

    #: the Splits tab: stages, the query, the Python call, its error, rows, seconds
    splits = traitlets.Dict().tag(sync=True)
    #: the Timeline tab: lanes, spans, marks (compact columns, bounded)
    timeline = traitlets.Dict().tag(sync=True)
    #: time travel: ``{}`` live, else ``{t, stages: [...], took_s}``
    travel = traitlets.Dict().tag(sync=True)
    #: the clicked worker: ``{worker_id, facts: [[label, value, type]]}``
    worker = traitlets.Dict().tag(sync=True)
    #: the clicked stage's lines over time (``stage_detail.stage_series``)
    stage_series = traitlets.Dict().tag(sync=True)

    def __init__(self, handlers: dict[str, Callable[[dict[str, Any]], Any]] | None = None) -> None:
        super().__init__()
        self._handlers = dict(handlers or {})

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        handler = self._handlers.get(str(content.get("type")))
        if handler is None:
            super()._on_msg(_widget, content, _buffers)
            return
        try:
            handler(content)
        except Exception as exc:
            log.exception("%s message failed", content.get("type"))
            self.error = f"{type(exc).__name__}: {exc}"
