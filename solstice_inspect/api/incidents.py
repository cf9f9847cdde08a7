"""Incidents (stragglers) of an attempt: :meth:`Job.incidents`."""

from __future__ import annotations


class IncidentViews:
    """Mixin of :class:`~solstice_inspect.api.Job`: the ``incidents`` table, read."""
