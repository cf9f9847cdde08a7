"""Notebook views (anywidget, ipycytoscape, Altair): they take a ``Job`` and never open
Lance or call Ray themselves."""

from __future__ import annotations

try:
    import anywidget  # noqa: F401
    import ipycytoscape  # noqa: F401
    import ipywidgets  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"the widgets need {exc.name}: pip install 'solstice_inspect[widgets]'"
    ) from exc

from solstice_inspect.widgets.monitor import JobMonitor, job_monitor

__all__ = ["JobMonitor", "job_monitor"]
