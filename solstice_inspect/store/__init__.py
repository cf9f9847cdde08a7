"""The Lance job store: layout, writing, reading (one primitive: :func:`scan`), catalog."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from solstice_inspect.store import fs
from solstice_inspect.store.layout import default_root
from solstice_inspect.store.reader import Dag, Job, Store
from solstice_inspect.store.scan import Scan, scan

__all__ = ["Dag", "Job", "Scan", "Store", "connect", "scan"]


def connect(
    uri: str | os.PathLike[str] | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> Store:
    """Open a store: a local directory or an ``s3://`` / ``gs://`` / ``az://`` URI.

    Parameters
    ----------
    uri
        Default: ``$SOLSTICE_INSPECT_STORE``, else ``./.solstice_inspect``. Nothing is
        created until a recording writes.
    storage_options
        For object stores: Lance's options (``aws_access_key_id``,
        ``aws_secret_access_key``, ``aws_endpoint``, ``aws_region``, ``allow_http``, …),
        over the ``AWS_*`` environment variables. An ``s3://`` store is checked at once
        (one small request): a missing bucket, refused credentials or an unreachable
        endpoint raise :class:`~solstice_inspect.errors.StoreError` naming the URI.

    This is the data-only store of the ``store`` layer; :func:`solstice_inspect.connect`
    returns :class:`solstice_inspect.api.Store`, which adds recording and derived views.

    Examples
    --------
    >>> import tempfile
    >>> connect(tempfile.mkdtemp()).jobs().columns[:3].tolist()
    ['job_id', 'attempt_id', 'status']
    """
    store = Store(default_root() if uri is None else uri, storage_options=storage_options)
    fs.check(store.root)
    return store
