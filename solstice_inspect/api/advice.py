"""Recommendations and data samples: :meth:`Job.recommendations`, :meth:`Job.samples`."""

from __future__ import annotations


class AdviceViews:
    """Mixin of :class:`~solstice_inspect.api.Job`: what to change, and what went through."""
