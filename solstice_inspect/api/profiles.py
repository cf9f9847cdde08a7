"""Sampling profiles of live workers: :meth:`Job.profile` and the ``profiles`` table."""

from __future__ import annotations


class ProfileViews:
    """Mixin of :class:`~solstice_inspect.api.Job`: profile a worker, read profiles."""
