"""Rows that could not be written yet: a full disk, a read-only mount, an object store
that is down. The recorder keeps them (bounded), retries them first at every flush, says
so once when the outage starts and once when it ends, and counts what it had to drop."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import pyarrow as pa

log = logging.getLogger("solstice_inspect.recorder")

#: rows kept in memory while the store cannot be written; beyond, the oldest are dropped
MAX_BACKLOG_ROWS = 2_000_000


class Backlog:
    """Per table, the batches (Arrow, with their flush numbers) waiting to be written."""

    def __init__(self, what: str, max_rows: int = MAX_BACKLOG_ROWS) -> None:
        self.what = what
        self.max_rows = max_rows
        self.pending: dict[str, deque[pa.Table]] = {}
        self.rows = 0
        self.dropped = 0
        self.errors = 0
        self.outage: str | None = None  # the first error of the current outage

    def write(self, table: str, batch: pa.Table | None, append: Callable[[pa.Table], None]) -> int:
        """Write what waits for ``table`` and then ``batch``, in order; keep what fails.

        Returns the rows written. Never raises: a failure is kept for the next try.
        """
        queue = self.pending.setdefault(table, deque())
        if batch is not None and batch.num_rows:
            queue.append(batch)
            self.rows += batch.num_rows
        written = 0
        while queue:
            head = queue[0]
            try:
                append(head)
            except Exception as exc:  # noqa: BLE001 - an unwritable store must not stop the job
                self.failed(table, exc)
                break
            queue.popleft()
            self.rows -= head.num_rows
            written += head.num_rows
        self._bound()
        if not self.rows:
            self.recovered()
        return written

    def recovered(self) -> None:
        """A write went through and nothing waits: log the end of an outage, once."""
        if self.outage is not None and not self.rows:
            log.warning(
                "%s: the store is writable again; delayed rows written (%d dropped while "
                "it was not)",
                self.what,
                self.dropped,
            )
            self.outage = None

    def failed(self, table: str, exc: BaseException) -> None:
        """Count a failed write; log the first one of an outage."""
        self.errors += 1
        if self.outage is None:
            self.outage = f"{type(exc).__name__}: {exc}"
            log.error(
                "%s: cannot write %s to the store (%s); keeping rows in memory (up to %d) "
                "and retrying at every flush",
                self.what,
                table,
                self.outage,
                self.max_rows,
            )

    def _bound(self) -> None:
        while self.rows > self.max_rows:
            oldest = max(self.pending.values(), key=len)
            dropped = oldest.popleft()
            self.rows -= dropped.num_rows
            self.dropped += dropped.num_rows
