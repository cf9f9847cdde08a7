"""The state of a store's datasets on disk, for ``solstice-inspect doctor``.

Whether each table reads, its versions, fragments and size. Only the store opens Lance,
so the checks that need the dataset itself live here; the doctor command (``ops/``)
turns them into a report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import lance

from solstice_inspect.schema import JOB_TABLES
from solstice_inspect.store import layout

__all__ = ["TableHealth", "attempts_on_disk", "table_health", "tables_on_disk"]

#: rows per batch of the full read (bounded memory, whatever the table's size)
READ_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class TableHealth:
    """What :func:`table_health` found for one dataset.

    ``error`` is None when the dataset opened and every row read back; otherwise the
    other figures are those known before it failed (None when unknown).
    """

    uri: str
    rows: int | None
    version: int | None
    versions: int | None
    fragments: int | None
    size_bytes: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        """Whether the table opened and read back whole."""
        return self.error is None


def _size_on_disk(uri: str) -> int | None:
    """Bytes of every file under a local dataset (None for object-store URIs)."""
    if layout.is_uri(uri):
        return None
    total = 0
    for folder, _, files in os.walk(uri):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                continue  # removed between the listing and the stat (a cleanup)
    return total


def table_health(uri: str, *, read: bool = True) -> TableHealth:
    """Open one dataset and, with ``read``, read every row back (in bounded batches).

    The manifest alone lists rows and fragments without touching the data files; only a
    full read finds a data file that is missing or damaged. The rows read must match the
    manifest's count.

    Examples
    --------
    >>> import pyarrow as pa, tempfile, lance
    >>> uri = tempfile.mkdtemp() + "/t.lance"
    >>> _ = lance.write_dataset(pa.table({"x": [1, 2, 3]}), uri)
    >>> h = table_health(uri)
    >>> h.ok, h.rows, h.version, h.fragments
    (True, 3, 1, 1)
    """
    size = _size_on_disk(uri)
    version = versions = fragments = rows = None
    try:
        ds = lance.dataset(uri)
        version = int(ds.version)
        versions = len(ds.versions())
        fragments = len(ds.get_fragments())
        rows = int(ds.count_rows())
        if read:
            seen = 0
            for batch in ds.to_batches(batch_size=READ_BATCH_ROWS):
                seen += batch.num_rows
            if seen != rows:
                raise ValueError(f"the manifest lists {rows} rows but {seen} read back")
    except (OSError, ValueError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())
        return TableHealth(
            uri, rows, version, versions, fragments, size, f"{type(exc).__name__}: {detail}"
        )
    return TableHealth(uri, rows, version, versions, fragments, size, None)


def tables_on_disk(root: str, job_id: str, attempt_id: str) -> list[str]:
    """The job tables an attempt has written (local stores: the datasets present;
    object stores: every job table, a missing one reads as not written)."""
    base = layout.attempt_uri(root, job_id, attempt_id)
    if layout.is_uri(root):
        return list(JOB_TABLES)
    return [t for t in JOB_TABLES if os.path.isdir(os.path.join(base, f"{t}.lance"))]


def attempts_on_disk(root: str) -> list[tuple[str, str]]:
    """(job_id, attempt_id) of every attempt folder of a local store (sorted); an
    object store lists none (its attempts come from the catalog)."""
    jobs = os.path.join(root, "jobs")
    if layout.is_uri(root) or not os.path.isdir(jobs):
        return []
    found = []
    for job_id in sorted(os.listdir(jobs)):
        folder = os.path.join(jobs, job_id)
        if os.path.isdir(folder):
            found.extend(
                (job_id, a) for a in sorted(os.listdir(folder))
                if os.path.isdir(os.path.join(folder, a))
            )  # fmt: skip
    return found
