"""The one read primitive: every read of a job table goes through :func:`scan`.

Archived reads (``Job.table``), live reads (``LiveJob``, the same scan from a cursor) and
every view use it; no module outside ``store/`` opens a Lance dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import lance
import pyarrow as pa

from solstice_inspect.errors import StoreError
from solstice_inspect.store import fs
from solstice_inspect.store.dataset import open_dataset


@dataclass(frozen=True)
class Scan:
    """What one :func:`scan` read: the rows, and the dataset version they came from.

    ``version`` is None when the dataset does not exist (yet); ``unchanged`` is True when
    the caller's ``known_version`` was still current, and nothing was read.
    """

    table: pa.Table
    version: int | None
    unchanged: bool = False
    #: the highest fragment id of the version read (-1: none), for ``after_fragment``
    last_fragment: int = -1


def dataset_version(uri: str) -> int | None:
    """The latest version of a dataset, or None when it does not exist (yet)."""
    ds = open_dataset(uri)
    return None if ds is None else ds.version


def scan(
    uri: str,
    schema: pa.Schema,
    *,
    columns: list[str] | None = None,
    where: str | None = None,
    after_batch: int | None = None,
    known_version: int | None = None,
    after_fragment: int | None = None,
) -> Scan:
    """Read rows of one table, filters pushed down to Lance.

    Parameters
    ----------
    uri
        The dataset.
    schema
        Its stored schema (an empty table of it is returned when it does not exist).
    columns
        Only these columns (all when None).
    where
        A SQL filter, e.g. ``"stage_id = 'parse'"``.
    after_batch
        Only rows of flushes after this one (the live cursor; see ``docs/schema.md``).
    known_version
        When the dataset is still at this version, read nothing (``unchanged``).
    after_fragment
        Only read fragments with a higher id (a live reader's second cursor). Appends and
        compactions both write new fragments with higher ids, so together with
        ``after_batch`` (which drops rows a compaction rewrote) a poll reads what is new,
        not the whole table: its cost follows the new rows, not the job's length.
    """
    ds: lance.LanceDataset | None = open_dataset(uri)
    if ds is None:
        empty = schema.empty_table()
        return Scan(empty.select(columns) if columns is not None else empty, None)
    version = ds.version
    if known_version is not None and version == known_version:
        empty = schema.empty_table()
        return Scan(empty.select(columns) if columns is not None else empty, version, True)
    filters = [f"({where})"] if where else []
    if after_batch is not None and after_batch >= 0:
        filters.append(f"batch > {int(after_batch)}")
    fragments = ds.get_fragments()
    last_fragment = max((f.fragment_id for f in fragments), default=-1)
    if after_fragment is not None and after_fragment >= 0:
        fragments = [f for f in fragments if f.fragment_id > after_fragment]
        if not fragments:
            empty = schema.empty_table()
            return Scan(
                empty.select(columns) if columns is not None else empty,
                version,
                last_fragment=last_fragment,
            )
    else:
        fragments = None  # the whole dataset
    try:
        table = ds.scanner(
            columns=columns, filter=" AND ".join(filters) or None, fragments=fragments
        ).to_table()
    except ValueError as exc:
        table_name = uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".lance")
        detail = str(exc).split(", /", 1)[0]  # drop the Rust source location
        raise ValueError(f"cannot read {table_name} where {where!r}: {detail}") from None
    except OSError as exc:
        raise StoreError(f"cannot read {fs.display(uri)}: {fs.describe(exc, uri)}") from None
    return Scan(table, version, last_fragment=last_fragment)
