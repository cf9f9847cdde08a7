"""A recording: the single writer of one job attempt (``Store.record``).

Envelopes are checked and folded in the caller's thread; a background thread flushes
the folded rows at most once per ``flush_interval`` (only tables with new rows) and
writes the attempt's heartbeat file every ``heartbeat_interval``; the shared catalog gets
a row only when the status changes (the start, the final status), so it grows with the
number of attempts, not with their running time. A final status (job_completed /
job_failed, or :meth:`Recording.finish`) is flushed at once, so it is durable even when
it is the last thing a process does.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from solstice_inspect.errors import InvalidMessage, RecorderClosed
from solstice_inspect.protocol import (
    MAX_REJECT_RAW_CHARS,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    cap,
    valid_job_id,
    validate,
)
from solstice_inspect.recorder import fastpath
from solstice_inspect.recorder.backlog import Backlog
from solstice_inspect.recorder.fold import Fold
from solstice_inspect.recorder.resume import Restored, restore
from solstice_inspect.recorder.rows import to_arrow, to_arrow_checked
from solstice_inspect.schema import FINAL_STATUSES, SCHEMAS
from solstice_inspect.store import fs, heartbeat, layout
from solstice_inspect.store.catalog import CatalogWriter
from solstice_inspect.store.dataset import Compactor, DatasetWriter

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Job, Store

log = logging.getLogger("solstice_inspect.recorder")

#: columns indexed when an attempt ends: the filters users and views run on big tables
INDEXED = {
    "worker_metrics": ("worker_id",),
    "worker_resources": ("worker_id",),
    "logs": ("worker_id",),
}

#: while the store refuses writes (an object store down), the flush thread waits twice
#: as long after each failed try, up to this (seconds): retries back off, rows wait in
#: the bounded backlog, and they are written within this long after the store is back
RETRY_MAX_S = 5.0
#: how long ``finish`` goes on retrying rows the store has not taken yet (seconds)
FINISH_RETRY_S = 60.0

_OPTIONS = (
    "config",
    "dag_edges",
    "stages",
    "flush_interval",
    "heartbeat_interval",
    "window_s",
    "attempt_id",
    "compact_every",
    "resume",
)


class FinishOnExit:
    """Context manager of a writer: COMPLETED on a normal exit, FAILED with the error
    (then re-raised) when the body raises. Subclasses define ``finish``."""

    def finish(self, status: str = "COMPLETED", *, error: str | None = None) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.finish("COMPLETED")
        else:
            self.finish("FAILED", error=f"{type(exc).__name__}: {exc}")


class Recording(FinishOnExit):
    """The only writer of one attempt; create it with :meth:`Store.record`.

    Use it as a context manager: leaving the block normally finishes the attempt as
    COMPLETED (unless a message already set a final status); an exception finishes it
    as FAILED with the error and is re-raised.
    """

    def __init__(
        self,
        store: Store,
        job_id: str,
        *,
        config: dict[str, Any] | None = None,
        dag_edges: dict[str, list[str]] | None = None,
        stages: list[dict[str, Any]] | None = None,
        flush_interval: float = 1.0,
        heartbeat_interval: float = 5.0,
        window_s: float = 1.0,
        attempt_id: str | None = None,
        compact_every: int = 100,
        resume: bool = False,
        resume_reason: str | None = None,
    ) -> None:
        self.job_id = valid_job_id(job_id)
        self.attempt_id = valid_job_id(attempt_id) if attempt_id else layout.new_attempt_id()
        if flush_interval <= 0 or heartbeat_interval <= 0 or window_s <= 0:
            raise ValueError("flush_interval, heartbeat_interval and window_s must be > 0")
        self.store = store
        self.flush_interval = float(flush_interval)
        self.heartbeat_interval = float(heartbeat_interval)
        self.created = time.time()
        self._fold = Fold(job_id, window_s=window_s)
        if config:
            self._fold.config = dict(config)
        if dag_edges or stages:
            self._fold.set_dag(dag_edges, stages)
        self._rejects: list[tuple] = []
        self._lock = threading.Lock()  # guards the fold and the reject buffer
        self._write_lock = threading.Lock()  # one flush at a time, in order
        self._writers: dict[str, DatasetWriter] = {}
        #: compactions run beside the flushes, not inside them
        self._compactor = Compactor(f"solstice-compactor-{job_id}")
        #: batches the store did not take yet (full disk, read-only, object store down)
        self._backlog = Backlog(f"{job_id}/{self.attempt_id}")
        self._compact_every = compact_every
        self._closed = False
        self._last_flush = 0.0
        self._last_heartbeat = 0.0
        #: the status of the last catalog row written ("" before the first)
        self._catalog_status = ""
        self._catalog_shown: tuple = ()
        self.flushes = 0
        self.write_errors = 0
        #: flushes that retried rows a failed write had left waiting
        self.write_retries = 0
        #: consecutive flushes that left rows waiting (the backoff's exponent)
        self._failures = 0
        #: ``finish`` gave up on rows the store did not take: the final status goes out
        self._giving_up = False
        self._stop = threading.Event()
        self._wakeup = threading.Event()  # set by ingest when a flush is due, and at close
        #: what a resumed recording found in the store (None for a new attempt)
        self.restored: Restored | None = None
        if resume:
            self._resume(resume_reason)
        self._catalog_row(time.time())  # the attempt is listed from its first moment
        self._thread = threading.Thread(
            target=self._run, name=f"solstice-recorder-{job_id}", daemon=True
        )
        self._thread.start()
        _OPEN.add(self)

    def __repr__(self) -> str:
        return f"Recording({self.job_id!r}, attempt={self.attempt_id!r}, status={self.status!r})"

    def _resume(self, reason: str | None = None) -> None:
        """Go on writing an attempt whose recorder died: rebuild the fold from the store,
        continue the flush numbers, and record the gap (what the dead process had folded
        but not flushed is at most the time between its last flush and its death).
        ``reason``, when given, is what the ``recorder_restarted`` event says instead (a
        writer that reads its input again, like the follower, misses nothing)."""
        now = time.time()
        restored = restore(self._fold, self.store.attempt(self.job_id, self.attempt_id))
        self.restored = restored
        self.flushes = max(self.flushes, restored.last_batch)
        last_write = restored.last_write
        beat = heartbeat.read(self.store.root, self.job_id, self.attempt_id)
        if beat is not None:  # the dead recorder's last heartbeat is fresher than its rows
            last_write = max(last_write or 0.0, beat["heartbeat"] / 1e6)
        gap = None if last_write is None else max(0.0, now - last_write)
        self._fold.stats["recorder_restarts"] += 1
        self._fold.record_event(
            now,
            "recorder_restarted",
            reason
            if reason is not None
            else "the recorder's process died and was restarted; events it had not yet "
            f"written may be missing (last write {gap:.1f} s before the restart)"
            if gap is not None
            else "the recorder's process died and was restarted",
            None if gap is None else round(gap * 1000.0, 3),
            {"last_batch": restored.last_batch, "rows_kept": restored.rows},
        )

    # ------------------------------------------------------------------ ingest
    def ingest(self, messages: Any) -> dict[str, int]:
        """Check and fold envelopes; return this call's counts.

        Parameters
        ----------
        messages
            One envelope (dict, or JSON text / bytes — several lines are several
            envelopes) or an iterable of them (a list, a generator, an open file).
            Order does not matter. Bad envelopes are counted and stored in ``rejects``;
            they never stop the good ones around them.

        Returns
        -------
        dict
            ``accepted``, ``duplicates`` and ``rejected`` for this call.
        """
        if self._closed:
            raise RecorderClosed(f"recording {self.job_id}/{self.attempt_id} is finished")
        before = self._counts()
        final = False
        with self._lock:
            # the common well-formed shapes are checked and folded in one loop; anything
            # else goes through _ingest_one, the general path, untouched
            final = fastpath.ingest(
                self._fold,
                self.job_id,
                _items(messages),
                self._ingest_one,
                self._reject,
                _UNFORESEEN,
            )
        if final:
            self.flush()
        elif time.monotonic() - self._last_flush >= self.flush_interval:
            self._wakeup.set()
        after = self._counts()
        return {k: after[k] - before[k] for k in after}

    def _ingest_one(self, item: Any) -> bool:
        itype = type(item)
        if (itype is bytes or itype is str) and len(item) < 4 and not item.strip():
            return False  # blank lines
        try:
            env = validate(item, self.job_id)
            return self._fold.apply(env)
        except InvalidMessage as exc:
            self._reject(item, exc.reason, exc.detail)
        except _UNFORESEEN as exc:
            # a shape the checks did not foresee: reject it, keep the recorder alive
            self._reject(item, "unfoldable", f"{type(exc).__name__}: {exc}")
        return False

    def _reject(self, item: Any, reason: str, detail: str) -> None:
        self._fold.reject(reason)
        ts = None
        if type(item) is dict and type(item.get("timestamp")) in (int, float):
            stamp = item["timestamp"]
            # an absurd time (or an int too big for a float): when it came instead
            if MIN_TIMESTAMP <= stamp < MAX_TIMESTAMP:
                ts = float(stamp)
        if isinstance(item, (bytes, bytearray)):
            raw = bytes(item[: MAX_REJECT_RAW_CHARS * 4]).decode("utf-8", "replace")
        elif isinstance(item, str):
            raw = item
        else:
            try:
                raw = repr(item)[: MAX_REJECT_RAW_CHARS * 4]
            except Exception:  # noqa: BLE001 - a hostile __repr__ must not stop the recorder
                raw = f"<unprintable {type(item).__name__}>"
        self._rejects.append(
            (
                ts if ts is not None else time.time(),
                reason,
                _text(detail[:1000]),
                _text(cap(raw, MAX_REJECT_RAW_CHARS)[0]),
            )
        )

    def _counts(self) -> dict[str, int]:
        stats = self._fold.stats
        return {
            "accepted": stats["accepted"],
            "duplicates": stats["duplicates"],
            "rejected": sum(self._fold.rejected.values()),
        }

    @property
    def stats(self) -> dict[str, Any]:
        """accepted, duplicates, rejected (by reason), truncated, late reports, splits
        processed again (counted once), flushes."""
        with self._lock:
            stats = dict(self._fold.stats)
            rejected = dict(self._fold.rejected)
        return {
            "accepted": stats.get("accepted", 0),
            "duplicates": stats.get("duplicates", 0),
            "rejected": rejected,
            "rejected_total": sum(rejected.values()),
            "truncated": stats.get("truncated", 0),
            "late_reports": stats.get("late_reports", 0),
            "duplicate_splits": stats.get("duplicate_splits", 0),
            "logs_capped": stats.get("logs_capped", 0),
            "flushes": self.flushes,
            "write_errors": self._backlog.errors,  # also those of a flush still running
            "write_retries": self.write_retries,
            "rows_waiting": self._backlog.rows,
            "rows_dropped": self._backlog.dropped,
            "restarts": stats.get("recorder_restarts", 0),
        }

    @property
    def status(self) -> str:
        return self._fold.status

    def job(self) -> Job:
        """This attempt as a reader sees it."""
        return self.store.attempt(self.job_id, self.attempt_id)

    # ------------------------------------------------------------------ writing
    def _writer(self, table: str) -> DatasetWriter:
        w = self._writers.get(table)
        if w is None:
            if table == "catalog":
                w = self._writers[table] = CatalogWriter(
                    layout.catalog_uri(self.store.root),
                    key=f"{self.job_id}/{self.attempt_id}",
                    schedule=self._compactor.submit,
                )
                return w
            uri = layout.table_uri(self.store.root, self.job_id, self.attempt_id, table)
            w = self._writers[table] = DatasetWriter(
                uri,
                SCHEMAS[table],
                compact_every=self._compact_every,
                schedule=self._compactor.submit,
            )
        return w

    def flush(self) -> int:
        """Write every table with new rows (one append each) and the heartbeat with the
        current counts; return the number of rows written."""
        return self._flush(catalog_always=True)

    def _flush(self, *, catalog_always: bool) -> int:
        # flushes keep a fixed period: the next one is due an interval after this one
        # *started* (from its end, every flush came late by its own duration)
        started = time.monotonic()
        with self._write_lock:
            with self._lock:
                self._fold.close_windows()
                batches = self._fold.drain()
                if self._rejects:
                    batches["rejects"], self._rejects = self._rejects, []
                catalog = self._catalog_values(time.time())
            written = 0
            failing = self._failures > 0
            if self._backlog.rows:
                self.write_retries += 1
            unreachable: list[BaseException] = []
            tables = dict.fromkeys([*self._backlog.pending, *batches])
            tables.pop("rejects", None)  # last: rows this flush cannot write join them
            for table in [*tables, "rejects"]:
                rows = batches.get(table)
                if table == "rejects" and not rows and table not in self._backlog.pending:
                    continue
                batch = None
                if rows:  # a row the schema cannot hold is rejected alone, never the flush
                    batch, bad = to_arrow_checked(
                        table, rows, self.job_id, self.attempt_id, self.flushes + 1
                    )
                    with self._lock:
                        for row, reason in bad:
                            self._reject(row, "unwritable", f"{table}: {reason}")
                        if bad:  # stored with this flush (rejects come last)
                            batches.setdefault("rejects", []).extend(self._rejects)
                            self._rejects = []
                # once the store does not answer, the other tables wait for the next try
                # (each would take the full timeouts to fail the same way)
                append = _unreachable if unreachable else self._writer(table).append
                written += self._backlog.write(table, batch, _noting(append, unreachable))
            self.write_errors = self._backlog.errors
            self._failures = self._failures + 1 if self._backlog.rows else 0
            # back from an outage: the heartbeat at once (readers derive LOST from its age)
            recovered = failing and not self._failures
            due = recovered or time.monotonic() - self._last_heartbeat >= self.heartbeat_interval
            if catalog_always or due or catalog[1] != self._catalog_status:
                self._write_catalog(catalog)
            self._last_flush = started
            self.flushes += 1
            return written

    def _catalog_values(self, now: float) -> tuple:
        f = self._fold
        s = f.summary()
        start = f.start_time if f.start_time is not None else self.created
        return (
            now,
            f.status,
            start,
            f.end_time,
            now,
            self.heartbeat_interval,
            s["stages"],
            s["workers"],
            s["records_in"],
            s["records_out"],
            s["exceptions"],
        )

    def _catalog_row(self, now: float) -> None:
        with self._lock:
            values = self._catalog_values(now)
        with self._write_lock:
            self._write_catalog(values)

    def _write_catalog(self, values: tuple) -> None:
        """The heartbeat file, and a catalog row when the status changed since the last
        row written (the file first: a reader sees a final status even if the row fails).
        """
        ok = True
        if values[1] in FINAL_STATUSES and self._backlog.rows and not self._giving_up:
            # not final while rows wait for the store: a reader that sees the final status
            # stops reading (LiveJob), so it must come after every row
            values = (values[0], "RUNNING", values[2], None, *values[4:])
        # the catalog's columns after ts, in order, are the heartbeat's fields
        beat = dict(zip(heartbeat.FIELDS, values[1:]))
        try:
            heartbeat.write(self.store.root, self.job_id, self.attempt_id, beat)
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat must not stop the job
            ok = False  # not kept: the next heartbeat replaces it
            self._backlog.failed("heartbeat", exc)
        # what a listing shows of an ended attempt is its last row: when messages arrive
        # after the final status (late reports), that row is rewritten with their counts
        shown = (values[2], values[3], *values[6:])
        final_moved = values[1] in FINAL_STATUSES and shown != self._catalog_shown
        if values[1] != self._catalog_status or final_moved:
            row = to_arrow("catalog", [values], self.job_id, self.attempt_id, self.flushes + 1)
            try:
                self._writer("catalog").append(row)
            except Exception as exc:  # noqa: BLE001 - the recorder must not stop the job
                ok = False  # the status still differs: the next heartbeat writes the row
                self._backlog.failed("catalog", exc)
            else:
                self._catalog_status = values[1]
                self._catalog_shown = shown
        # also after a failure: retried once per interval, not in a busy loop; while
        # the store fails, as often as the flushes' backoff allows (a heartbeat is small,
        # and the sooner one lands after an outage, the less readers see it as LOST)
        self._last_heartbeat = time.monotonic()
        if not ok:
            self._last_heartbeat -= max(0.0, self.heartbeat_interval - self._retry_delay())
        if ok:
            self._backlog.recovered()
        self.write_errors = self._backlog.errors

    def _run(self) -> None:
        # Sleep until the next flush or heartbeat is due, not in fixed ticks: rows wait
        # at most one flush interval, and rows arriving after a quiet spell are written
        # at once (ingest wakes the thread) — still at most one append per interval.
        while not self._stop.is_set():
            now = time.monotonic()
            flush_due = self._last_flush + self._retry_delay()
            beat_due = self._last_heartbeat + self.heartbeat_interval
            if now >= flush_due and self._pending():
                self._flush(catalog_always=False)
                continue
            if now >= beat_due:
                self._catalog_row(time.time())
                continue
            wake = beat_due if now >= flush_due else min(flush_due, beat_due)
            self._wakeup.wait(max(wake - now, 0.001))
            self._wakeup.clear()

    def _retry_delay(self) -> float:
        """The flush period: ``flush_interval``, doubled for each flush in a row that
        left rows waiting (the store refused them), up to :data:`RETRY_MAX_S`."""
        if not self._failures:
            return self.flush_interval
        return min(self.flush_interval * 2.0 ** min(self._failures, 16), RETRY_MAX_S)

    def _unwritten(self) -> bool:
        """Rows the store has not taken, or a final status its catalog lacks."""
        final = self._fold.status in FINAL_STATUSES and self._catalog_status != self._fold.status
        return bool(self._backlog.rows) or final

    def _outage_may_end(self) -> bool:
        """False when the store refuses for a reason waiting does not cure (a missing
        bucket, refused credentials)."""
        return not fs.lasting(self._backlog.outage or "")

    def _pending(self) -> bool:
        with self._lock:
            f = self._fold
            dirty = any(s.dirty for s in f.stages.values())
            return bool(f.rows or self._rejects or dirty or self._backlog.rows)

    # ------------------------------------------------------------------ ending
    def finish(self, status: str = "COMPLETED", *, error: str | None = None) -> None:
        """End the attempt with ``status`` (unless a message already gave a final one),
        flush everything, compact, and stop the background thread. Idempotent."""
        status = status.upper()
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {sorted(FINAL_STATUSES)}, not {status!r}")
        if self._closed:
            return
        with self._lock:
            self._fold.finish(status, max(time.time(), self._fold.last_ts or 0.0), error)
        self._close()

    def close(self) -> None:
        """Stop writing without a final status: readers will see the attempt as LOST once
        its heartbeat is stale (an interrupted stream is not a completed job)."""
        if not self._closed:
            self._close()

    def _close(self) -> None:
        _OPEN.discard(self)
        self._closed = True
        self._stop.set()
        self._wakeup.set()
        self._thread.join()
        self.flush()
        # a store down for a moment (an object store restarting) gets a minute, with
        # backoff, before what it has not taken is given up (and logged)
        deadline = time.monotonic() + FINISH_RETRY_S
        while self._unwritten() and self._outage_may_end() and time.monotonic() < deadline:
            time.sleep(min(self._retry_delay(), max(deadline - time.monotonic(), 0.0)))
            self.flush()
        refused = self._unwritten()
        if refused:
            log.error(
                "%s/%s: finished with %d rows the store did not take",
                self.job_id,
                self.attempt_id,
                self._backlog.rows,
            )
            self._giving_up = True
            self.flush()  # the final status, at least
        self._compactor.close()
        if refused:
            return  # compacting and indexing would fail the same way, each after timeouts
        for table, writer in self._writers.items():
            writer.finalize(INDEXED.get(table, ()))


#: errors of a message the checks let through but the fold cannot use: counted as
#: ``unfoldable``, never raised into the producer
_UNFORESEEN = (
    TypeError,
    ValueError,
    LookupError,
    AttributeError,
    ArithmeticError,
    RecursionError,
)


def _unreachable(table: Any) -> None:
    """A write not tried: an earlier one of the same flush found the store unusable."""
    raise OSError("the store refused an earlier write; tried again at the next flush")


def _noting(append: Any, unreachable: list[BaseException]) -> Any:
    """``append``, noting in ``unreachable`` an error that every table's write would meet
    (the store does not answer, refuses the credentials, has no such bucket)."""

    def run(table: Any) -> None:
        try:
            append(table)
        except Exception as exc:
            text = str(exc)
            if append is not _unreachable and ("cannot reach" in text or fs.lasting(text)):
                unreachable.append(exc)
            raise

    return run


def _text(text: str) -> str:
    """``text`` as storable Unicode: a lone surrogate is written as its escape."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _items(messages: Any) -> Iterable[Any]:
    # a plain function, not a generator: a list is iterated as it is, without a generator
    # frame resumed per envelope
    if isinstance(messages, dict):
        return (messages,)
    if isinstance(messages, str):
        return messages.split("\n") if "\n" in messages else (messages,)
    if isinstance(messages, (bytes, bytearray)):
        return bytes(messages).split(b"\n") if b"\n" in messages else (messages,)
    try:
        return iter(messages)
    except TypeError:
        return (messages,)  # validate() rejects it with a reason


#: recordings whose thread still runs; stopped when the interpreter exits
_OPEN: weakref.WeakSet[Recording] = weakref.WeakSet()


@atexit.register
def _stop_open_recordings() -> None:
    """At exit, write what open recordings hold and stop their threads (no final status:
    an attempt nobody finished reads as LOST). A daemon thread left inside Lance's
    native code while the interpreter finalises can abort the process."""
    for rec in list(_OPEN):
        try:
            rec._stop.set()
            rec._wakeup.set()
            rec._thread.join(timeout=5)
            rec.flush()
            rec._compactor.close()
        except Exception:  # exiting: log, never raise
            log.exception("stopping recording %s at exit failed", rec)
