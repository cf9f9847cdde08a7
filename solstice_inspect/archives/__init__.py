"""Jobs recorded elsewhere, brought into the store: Solstice's old web UI archives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from solstice_inspect.archives.slatedb_import import find_archives, import_archive

__all__ = ["import_solstice"]


def import_solstice(path: str | Path, store: Any = None) -> pd.DataFrame:
    """Import the jobs Solstice's old web UI archived (SlateDB) into a store.

    Each ``<job_id>/<attempt_id>/db`` database under ``path`` becomes that attempt of
    that job, recorded through the same rules as live telemetry. An attempt already in
    the store is skipped, so importing twice changes nothing. docs/import-solstice.md
    maps every archive key to the tables.

    Parameters
    ----------
    path
        The old UI's storage directory (``/tmp/solstice-webui`` by default there), or
        one job's or one attempt's directory under it.
    store
        A :class:`~solstice_inspect.api.Store` or a path / URI; default: the default
        store.

    Returns
    -------
    pandas.DataFrame
        One row per archive: job_id, attempt_id, status, keys, envelopes, rejected,
        skipped (reason → count), already_present, note, path.

    Raises
    ------
    InspectError
        When ``path`` holds no archive.

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> si.import_solstice(tempfile.mkdtemp(), store=tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    solstice_inspect.errors.InspectError: no Solstice archive under ...
    """
    from solstice_inspect.api import Store, connect

    target = store if isinstance(store, Store) else connect(store)
    rows = [
        import_archive(target, db, job_id, attempt_id).as_row()
        for db, job_id, attempt_id in find_archives(path)
    ]
    return pd.DataFrame(rows)
