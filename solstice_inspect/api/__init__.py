"""The public :class:`Store` and :class:`Job`: the store's readers plus derived views.

:mod:`.job` holds the classes; each other module here adds one family of views to
:class:`Job` as a mixin (incidents, profiles, recommendations), so that no module grows
past what a reader can hold.
"""

from solstice_inspect.api.job import Job, Store, connect, read_snapshot

__all__ = ["Job", "Store", "connect", "read_snapshot"]
