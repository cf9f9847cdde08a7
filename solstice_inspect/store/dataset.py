"""Appending to one Lance dataset the way TESTING.md measured works: few, compacted
fragments; old versions cleaned only after a grace period that readers outlive."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import lance
import pyarrow as pa

from solstice_inspect.errors import StoreError
from solstice_inspect.store import fs

log = logging.getLogger("solstice_inspect.store")

#: appends between two compactions of one dataset
COMPACT_EVERY = 100
#: versions younger than this are never deleted (a reader may hold one)
CLEANUP_GRACE = timedelta(minutes=2)
#: fragments at least this large are left alone by compaction. It bounds what one
#: compaction rewrites, and so the recorder's memory: a running job's newest compacted
#: fragment stays below it and is rewritten, with the new appends, at every compaction;
#: the allocator keeps that peak. Measured (``bench/scale_bench.py compaction``: 200
#: workers, 40 min of appends): RSS growth after the first compaction +59 MB at 262,144
#: rows, +26 MB at 65,536, +13 MB at 32,768; 1M rows read as fast in 16 fragments as in 4.
TARGET_ROWS_PER_FRAGMENT = 65_536


def open_dataset(uri: str) -> lance.LanceDataset | None:
    """The latest version of a dataset, or None when it does not exist (yet).

    Raises
    ------
    StoreError
        It cannot be opened: naming the dataset and the cause (a missing bucket, refused
        credentials, an unreachable endpoint), never a secret.
    """
    try:
        return lance.dataset(uri, storage_options=fs.storage_options(uri))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError) and fs.missing(exc):
            return None
        raise StoreError(f"cannot open {fs.display(uri)}: {fs.describe(exc, uri)}") from None


def write_dataset(table: pa.Table, uri: str, schema: pa.Schema, mode: str) -> None:
    """``lance.write_dataset`` with the store's options for ``uri``."""
    lance.write_dataset(
        table, uri, schema=schema, mode=mode, storage_options=fs.storage_options(uri)
    )


def _latest(uri: str) -> lance.LanceDataset:
    """The dataset, which must exist (a writer's own): its errors propagate."""
    return lance.dataset(uri, storage_options=fs.storage_options(uri))


class DatasetWriter:
    """Append batches to one dataset; compact every ``compact_every`` appends."""

    def __init__(
        self,
        uri: str,
        schema: pa.Schema,
        *,
        compact_every: int = COMPACT_EVERY,
        grace: timedelta = CLEANUP_GRACE,
        schedule: Callable[[DatasetWriter], None] | None = None,
    ) -> None:
        self.uri = uri
        self.schema = schema
        self.compact_every = compact_every
        self.grace = grace
        #: when set, a due compaction is handed to it (a background thread) instead of
        #: running inside ``append``: the writer's flush does not wait for it
        self.schedule = schedule
        self.appends = 0
        self.compactions = 0
        #: the last append failed: it may have committed all the same (an object store
        #: that went away after taking the commit, before answering)
        self._unsure = False
        #: None until the first append looks (there, a store that cannot be reached is
        #: an append's error, which the recorder keeps and retries, not the constructor's)
        self._exists: bool | None = None

    def append(self, table: pa.Table) -> None:
        """Append ``table``; a retry of a failed append is not written twice.

        Raises
        ------
        StoreError
            Naming the dataset and the cause (never a secret); the caller keeps the rows
            and retries (``recorder/backlog.py``).
        """
        if table.num_rows == 0:
            return
        table = table.cast(self.schema) if table.schema != self.schema else table
        try:
            if self._unsure and self._committed(table):
                self._unsure = False
                self._after_append()
                return
            self._write(table)
        except (OSError, ValueError, RuntimeError, StoreError) as exc:
            self._unsure = True
            if isinstance(exc, StoreError):
                raise
            raise StoreError(
                f"cannot append to {fs.display(self.uri)}: {fs.describe(exc, self.uri)}"
            ) from None
        self._unsure = False
        self._after_append()

    def _write(self, table: pa.Table) -> None:
        if self._exists is None:
            self._exists = open_dataset(self.uri) is not None
        if not self._exists:
            try:
                write_dataset(table, self.uri, self.schema, "create")
                self._exists = True
                return
            except (OSError, ValueError) as exc:
                # another writer created it first (the shared catalog): append instead
                if open_dataset(self.uri) is None:
                    raise StoreError(
                        f"cannot create {fs.display(self.uri)}: {fs.describe(exc, self.uri)}"
                    ) from None
                self._exists = True
        write_dataset(table, self.uri, self.schema, "append")

    def _committed(self, table: pa.Table) -> bool:
        """True when the rows of ``table`` (one flush: its ``batch`` numbers) are already
        in the dataset: the failed append that kept them had committed after all."""
        if "batch" not in table.schema.names:
            return False
        ds = open_dataset(self.uri)
        if ds is None:
            return False
        batches = sorted({b for b in table.column("batch").to_pylist() if b is not None})
        if not batches:
            return False
        found = ds.count_rows(filter=f"batch IN ({', '.join(str(int(b)) for b in batches)})")
        return found >= table.num_rows

    def _after_append(self) -> None:
        self.appends += 1
        if self.compact_every and self.appends % self.compact_every == 0:
            if self.schedule is not None:
                self.schedule(self)
            else:
                self.compact()

    def finalize(self, index_columns: tuple[str, ...] = ()) -> None:
        """The last compaction of an attempt's table, then a BTREE index on each of
        ``index_columns`` (one worker's rows of a 10M-row table: 0.11 s with it, 0.3 s
        without). Rows appended later (a resumed recorder) are still found: Lance scans
        what the index does not cover. Failures are logged, never raised."""
        self.compact()
        if not index_columns:
            return
        try:
            ds = _latest(self.uri)
            for column in index_columns:
                ds.create_scalar_index(column, index_type="BTREE", replace=True)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("index of %s skipped: %s", fs.display(self.uri), fs.describe(exc, self.uri))

    def compact(self) -> None:
        """Merge small fragments, then drop versions older than the grace period.

        Failures are logged and counted, never raised: compaction is an optimisation and
        another process (e.g. a concurrent recorder on the shared catalog) may race it.
        """
        started = time.perf_counter()
        try:
            ds = _latest(self.uri)
            if len(ds.get_fragments()) > 1:
                # one thread: compaction is background work that must not take the cores
                # (or the memory peak of many threads) from the job being recorded
                ds.optimize.compact_files(
                    target_rows_per_fragment=TARGET_ROWS_PER_FRAGMENT, num_threads=1
                )
            _latest(self.uri).cleanup_old_versions(older_than=self.grace)
            self.compactions += 1
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning(
                "compaction of %s skipped: %s", fs.display(self.uri), fs.describe(exc, self.uri)
            )
        log.debug("compacted %s in %.3fs", fs.display(self.uri), time.perf_counter() - started)


class Compactor:
    """One background thread compacting the datasets handed to it, one at a time.

    A recorder's flush appends and returns; compaction (seconds on an hour-long job) runs
    here, beside the next appends — Lance commits an append and a compaction of other
    fragments concurrently. A dataset already waiting is not queued twice.
    """

    def __init__(self, name: str = "solstice-compactor") -> None:
        self._queue: queue.Queue[DatasetWriter | None] = queue.Queue()
        self._waiting: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, writer: DatasetWriter) -> None:
        with self._lock:
            if writer.uri in self._waiting:
                return
            self._waiting.add(writer.uri)
        self._queue.put(writer)

    def _run(self) -> None:
        while True:
            writer = self._queue.get()
            if writer is None:
                return
            with self._lock:
                self._waiting.discard(writer.uri)
            writer.compact()  # logs and counts its own failures, never raises

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()
