"""The Lance job store: layout, writing, reading and the catalog."""

from __future__ import annotations

import os

from solstice_inspect.store.layout import default_root
from solstice_inspect.store.reader import Dag, Job, Store

__all__ = ["Dag", "Job", "Store", "connect"]


def connect(uri: str | os.PathLike[str] | None = None) -> Store:
    """Open a store: a local directory or an ``s3://`` / ``gs://`` / ``az://`` URI.

    Parameters
    ----------
    uri
        Default: ``$SOLSTICE_INSPECT_STORE``, else ``./.solstice_inspect``. Nothing is
        created until a recording writes.

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> si.connect(tempfile.mkdtemp()).jobs().columns[:3].tolist()
    ['job_id', 'attempt_id', 'status']
    """
    return Store(default_root() if uri is None else uri)
