"""The catalog: the attempts of every job, at the store's root (``catalog.lance``).

A recorder appends a catalog row when its attempt starts and when its status changes
(the final status included): a few rows per attempt, however long it runs. Its heartbeat
— the same values, refreshed every ``heartbeat_interval`` — goes to the attempt's own
heartbeat file (:mod:`solstice_inspect.store.heartbeat`), so the shared catalog stays
bounded by the number of attempts.

Readers take the newest catalog row per attempt; when that row is RUNNING they overlay
the attempt's heartbeat file (a fresher heartbeat and live counts), then derive LOST: a
RUNNING attempt whose heartbeat is older than three heartbeat intervals. Stores written
before heartbeat files existed carry their heartbeats as catalog rows; the newest row is
the last heartbeat, so they read the same way.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as _pc

from solstice_inspect.errors import StoreError
from solstice_inspect.schema import SCHEMAS
from solstice_inspect.store import fs, heartbeat
from solstice_inspect.store.dataset import (
    CLEANUP_GRACE,
    DatasetWriter,
    _latest,
    open_dataset,
    write_dataset,
)

log = logging.getLogger("solstice_inspect.store")
#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

#: a RUNNING attempt is LOST after this many missed heartbeats
LOST_AFTER_HEARTBEATS = 3

LISTING_COLUMNS = [
    "job_id",
    "attempt_id",
    "status",
    "start_time",
    "end_time",
    "duration_s",
    "stages",
    "workers",
    "records_in",
    "records_out",
    "exceptions",
    "heartbeat",
    "heartbeat_interval_s",
]
_COUNTS = ("stages", "workers", "records_in", "records_out", "exceptions")
_US = pd.Timedelta(1, "us")

#: small catalog fragments a writer lets pile up before it compacts them, plus a share of
#: as many again that differs per writer: writers that finish together do not all start
#: the same compaction (all but one would lose the commit race and redo the work)
COMPACT_FRAGMENTS = 64
#: catalog fragments this large are final: compaction merges only the new small ones, so
#: a year of history (~200k rows, ~20 MB) is not rewritten for each handful of new rows
CATALOG_ROWS_PER_FRAGMENT = 65_536
#: tries of one catalog commit that lost the race to other processes' commits
COMMIT_TRIES = 5


# ---------------------------------------------------------------------- reading
def latest_attempts(
    catalog: pa.Table, *, now: float | None = None, root: str | None = None
) -> pd.DataFrame:
    """Newest catalog row per attempt with LOST derived; newest attempts first.

    Parameters
    ----------
    catalog
        Catalog rows (of one job or of all).
    now
        The time LOST is derived for (default: now).
    root
        The store root: attempts whose newest row is RUNNING take their heartbeat file's
        values when it is fresher. Without it, the catalog rows alone.
    """
    if catalog.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LISTING_COLUMNS})
    # in Arrow, then pandas for the few columns derived: 100k attempts list in ~0.1 s
    newest = catalog.take(_newest_per_attempt(catalog))
    if root is not None:
        newest = _overlay(newest, root)
    newest = newest.sort_by([("start_time", "descending"), ("attempt_id", "descending")])
    df = newest.to_pandas()
    for col in _COUNTS:
        df[col] = df[col].astype("Int64")
    now = time.time() if now is None else now
    hb_age = now - df["heartbeat"].dt.as_unit("us").astype("int64") / 1e6
    lost = (df["status"] == "RUNNING") & (
        hb_age > LOST_AFTER_HEARTBEATS * df["heartbeat_interval_s"].fillna(5.0)
    )
    df.loc[lost, "status"] = "LOST"
    end = df["end_time"].where(df["end_time"].notna(), df["heartbeat"])
    df["duration_s"] = (end - df["start_time"]).dt.total_seconds()
    return cast(pd.DataFrame, df[LISTING_COLUMNS])


def _newest_per_attempt(catalog: pa.Table) -> np.ndarray:
    """Row numbers of each attempt's newest row: the latest ``ts``, on a tie the row
    written last."""
    keys = pc.binary_join_element_wise(catalog["job_id"], catalog["attempt_id"], "/")
    codes = keys.combine_chunks().dictionary_encode().indices.to_numpy(zero_copy_only=False)
    ts = pc.fill_null(catalog["ts"].cast(pa.int64()), -(2**62)).to_numpy()
    order = np.lexsort((np.arange(len(codes)), ts, codes))
    grouped = codes[order]
    last = np.append(grouped[1:] != grouped[:-1], True)
    return order[last]


def _overlay(newest: pa.Table, root: str) -> pa.Table:
    """``newest`` with each RUNNING row replaced by its attempt's fresher heartbeat file."""
    running = np.flatnonzero(
        pc.fill_null(pc.equal(newest["status"], "RUNNING"), False).to_numpy(zero_copy_only=False)
    )
    if not len(running):
        return newest
    jobs = newest["job_id"].take(running).to_pylist()
    attempts = newest["attempt_id"].take(running).to_pylist()
    stored = newest["heartbeat"].take(running).cast(pa.int64()).to_pylist()
    beats = heartbeat.read_many(root, zip(jobs, attempts))
    if not beats:
        return newest  # a store written before heartbeat files: its rows are the heartbeats
    replaced, fresh = [], []
    for i, job_id, attempt_id, beat_us in zip(running, jobs, attempts, stored):
        beat = beats.get((job_id, attempt_id))
        # older than the row: the file of a recorder that a resumed one has replaced
        if beat is not None and (beat_us is None or beat["heartbeat"] >= beat_us):
            replaced.append(i)
            fresh.append(
                {"job_id": job_id, "attempt_id": attempt_id, "ts": beat["heartbeat"]} | beat
            )
    if not fresh:
        return newest
    keep = np.ones(newest.num_rows, dtype=bool)
    keep[replaced] = False
    rows = pa.Table.from_pylist(fresh, schema=SCHEMAS["catalog"]).cast(newest.schema)
    return pa.concat_tables([newest.filter(keep), rows])


def _micros(stamp: Any) -> int:
    """Epoch microseconds of a pandas time; a missing one is the smallest."""
    if pd.isna(stamp):
        return -(2**62)
    return (pd.Timestamp(stamp) - pd.Timestamp(0, tz="UTC")) // _US


def overlay_row(row: dict[str, Any], beat: dict[str, Any] | None) -> dict[str, Any]:
    """One listing row (:func:`latest_attempts`) with ``beat`` (a heartbeat file read
    later, :func:`solstice_inspect.store.heartbeat.read`) applied when it is fresher.

    A RUNNING row, or one read as LOST (its recorder may have come back), takes the
    beat's status, times and counts; pass the result to :func:`still_alive` to re-derive
    LOST. Other rows are final and returned as they are.
    """
    if beat is None or row.get("status") not in ("RUNNING", "LOST"):
        return row
    current = row.get("heartbeat")
    if current is not None and beat["heartbeat"] < _micros(current):
        return row
    for col in heartbeat.TIMES:
        value = beat[col]
        row[col] = pd.NaT if value is None else pd.Timestamp(value, unit="us", tz="UTC")
    for col in _COUNTS:
        row[col] = pd.NA if beat[col] is None else int(beat[col])
    row["status"] = beat["status"]
    row["heartbeat_interval_s"] = beat["heartbeat_interval_s"]
    end = row["end_time"] if not pd.isna(row["end_time"]) else row["heartbeat"]
    row["duration_s"] = (end - row["start_time"]).total_seconds()
    return row


def still_alive(row: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """A newest row read earlier, its LOST re-derived for ``now`` (a RUNNING attempt
    goes LOST as time passes with no new heartbeat; nothing else changes without one)."""
    if row.get("status") != "RUNNING" or row.get("heartbeat") is None:
        return row
    now = time.time() if now is None else now
    interval = row.get("heartbeat_interval_s")
    interval = 5.0 if interval is None or pd.isna(interval) else float(interval)
    beat = pd.Timestamp(row["heartbeat"])
    if pd.isna(beat):
        return row
    if now - cast(pd.Timestamp, beat).timestamp() > LOST_AFTER_HEARTBEATS * interval:
        row["status"] = "LOST"
    return row


def empty_catalog() -> pa.Table:
    return SCHEMAS["catalog"].empty_table()


# ---------------------------------------------------------------------- writing
class CatalogWriter(DatasetWriter):
    """The shared catalog's writer: many recorders (threads and processes) append to it.

    - Creation happens once: concurrent creates of a Lance dataset commit as overwrites
      and drop rows already appended, so the first writer creates it empty under a lock
      (a lock file for local stores) and every row is appended.
    - Within a process, rows waiting for a commit are committed together (one commit for
      many recordings that start or finish at once).
    - A commit that loses the race to other processes is retried after a random pause.
    - Compaction merges only small fragments, once enough of them piled up.

    ``key`` (the attempt) spreads the compaction threshold between writers.
    """

    def __init__(
        self,
        uri: str,
        *,
        key: str = "",
        grace: timedelta = CLEANUP_GRACE,
        schedule: Callable[[DatasetWriter], None] | None = None,
    ) -> None:
        super().__init__(uri, SCHEMAS["catalog"], compact_every=0, grace=grace, schedule=schedule)
        self.max_fragments = COMPACT_FRAGMENTS + zlib.crc32(key.encode()) % COMPACT_FRAGMENTS
        #: commits retried because another process committed first
        self.retries = 0

    def append(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = table.cast(self.schema) if table.schema != self.schema else table
        if not self._exists:
            _create(self.uri, self.schema)
            self._exists = True
        _group(self.uri).append(table, self._commit)
        self.appends += 1
        try:
            due = len(self._small_fragments()) > self.max_fragments
        except StoreError:  # the rows are in: raising now would make the caller write them twice
            due = False
        if due:
            if self.schedule is not None:
                self.schedule(self)
            else:
                self.compact()

    def _commit(self, table: pa.Table) -> None:
        for attempt in range(COMMIT_TRIES):
            try:
                write_dataset(table, self.uri, self.schema, "append")
                return
            except OSError as exc:
                text = str(exc).lower()
                if attempt + 1 == COMMIT_TRIES or not ("concurrent" in text or "conflict" in text):
                    raise
                self.retries += 1
                time.sleep(random.uniform(0.05, 0.25) * 2**attempt)

    def _small_fragments(self) -> list[Any]:
        """The fragments compaction would merge (the manifest says their row counts)."""
        ds = open_dataset(self.uri)
        if ds is None:
            return []
        return [
            f for f in ds.get_fragments() if f.metadata.physical_rows < CATALOG_ROWS_PER_FRAGMENT
        ]

    def compact(self) -> None:
        """Merge the small fragments once more than ``max_fragments`` piled up, then drop
        versions older than the grace period. Logged, never raised (as the base class)."""
        try:
            if len(self._small_fragments()) <= self.max_fragments:
                return
            _latest(self.uri).optimize.compact_files(
                target_rows_per_fragment=CATALOG_ROWS_PER_FRAGMENT, num_threads=1
            )
            _latest(self.uri).cleanup_old_versions(older_than=self.grace)
            self.compactions += 1
        except (OSError, ValueError, RuntimeError, StoreError) as exc:
            # another writer's compaction of the same fragments won: theirs is as good
            log.info(
                "compaction of %s skipped: %s", fs.display(self.uri), fs.describe(exc, self.uri)
            )


class _Waiting:
    __slots__ = ("done", "error", "table")

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.done = False
        self.error: BaseException | None = None


class _GroupCommit:
    """The catalog rows of one process waiting for a commit: whoever holds the commit lock
    commits every row waiting, so N recordings finishing together make one commit, not N
    racing ones."""

    def __init__(self) -> None:
        self._commit_lock = threading.Lock()
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []

    def append(self, table: pa.Table, commit: Callable[[pa.Table], None]) -> None:
        mine = _Waiting(table)
        with self._lock:
            self._waiting.append(mine)
        with self._commit_lock:
            if not mine.done:
                with self._lock:
                    group, self._waiting = self._waiting, []
                # an interrupt leaves this error: no row may pass for committed when it was not
                error: BaseException | None = StoreError("the commit was interrupted")
                try:
                    commit(pa.concat_tables([w.table for w in group]))
                    error = None
                except Exception as exc:  # noqa: BLE001 - handed to every row's writer below
                    error = exc
                finally:
                    for w in group:
                        w.done, w.error = True, error
        if mine.error is not None:
            raise StoreError(
                f"cannot append to the catalog: {fs.describe(mine.error)}"
            ) from mine.error


_GROUPS: dict[str, _GroupCommit] = {}
_GROUPS_LOCK = threading.Lock()
_CREATE_LOCK = threading.Lock()


def _group(uri: str) -> _GroupCommit:
    with _GROUPS_LOCK:
        group = _GROUPS.get(uri)
        if group is None:
            group = _GROUPS[uri] = _GroupCommit()
        return group


def _create(uri: str, schema: pa.Schema) -> None:
    """Create the catalog empty, once, whoever else tries at the same moment (a lock file
    locally; on an object store Lance's conditional commit: :func:`fs.create_lock`)."""
    if open_dataset(uri) is not None:
        return
    with _CREATE_LOCK, fs.create_lock(uri):
        if open_dataset(uri) is not None:
            return
        try:
            write_dataset(schema.empty_table(), uri, schema, "create")
        except (OSError, ValueError) as exc:
            # another process created it first
            if open_dataset(uri) is None:
                raise StoreError(
                    f"cannot create {fs.display(uri)}: {fs.describe(exc, uri)}"
                ) from None
