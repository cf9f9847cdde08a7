"""Following a running job from the store: :class:`LiveJob` and :func:`attach`.

A live view polls the store, never the workers: every ``refresh`` seconds it reads, per
table, the rows whose ``batch`` (the recorder's flush number) is above the last one it
saw. ``batch`` restarts with every attempt, so a ``LiveJob`` follows exactly one attempt
and keeps one cursor per table of it. No Ray is needed: a second process with only the
store path can follow a job that a Ray cluster is running.

Examples
--------
>>> import solstice_inspect as si                      # doctest: +SKIP
>>> live = si.attach("etl_001")                         # doctest: +SKIP
>>> unsubscribe = live.subscribe(lambda rows: print({t: len(r) for t, r in rows.items()}))
...                                                     # doctest: +SKIP
>>> live.wait(); live.done                              # doctest: +SKIP
True
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from solstice_inspect.errors import InspectError
from solstice_inspect.schema import FINAL_STATUSES, JOB_TABLES
from solstice_inspect.store.dataset import open_dataset
from solstice_inspect.store.reader import Job, Store

log = logging.getLogger("solstice_inspect.live")

#: statuses after which an attempt writes nothing more (LOST: its recorder is gone)
DONE_STATUSES = frozenset(FINAL_STATUSES | {"LOST"})

Rows = dict[str, pa.Table]
Callback = Callable[[Rows], Any]


class LiveJob:
    """Follow one attempt of a job as it runs, by polling the store.

    Parameters
    ----------
    job_or_id
        A :class:`~solstice_inspect.store.reader.Job`, or a job id (its latest attempt in
        ``store`` is followed).
    store
        A :class:`Store` or a path/URI; the default store when None. Ignored when a
        ``Job`` is given.
    refresh
        Seconds between two polls of the background thread (:meth:`start`).
    tables
        The tables to follow (default: every job table).

    Notes
    -----
    :meth:`poll` returns, per table, the rows added since the previous poll; the
    background thread (:meth:`start`) polls every ``refresh`` seconds and hands
    non-empty results to every subscriber. Once the attempt's status is final
    (COMPLETED, FAILED, CANCELLED) or LOST, one last poll is made, subscribers are called
    one last time (possibly with an empty dict), :attr:`done` becomes True and the
    thread stops by itself.

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> store = si.connect(tempfile.mkdtemp())
    >>> with store.record("etl_001") as rec:
    ...     _ = rec.ingest(si.envelope("log", "etl_001", "w0", 1764331200.0, {"message": "hi"}))
    ...     live = si.LiveJob("etl_001", store=store)
    >>> rows = live.poll()
    >>> rows["logs"].column("message").to_pylist(), live.done
    (['hi'], True)
    """

    def __init__(
        self,
        job_or_id: Job | str,
        *,
        store: Store | str | None = None,
        refresh: float = 1.0,
        tables: Iterable[str] | None = None,
    ) -> None:
        if isinstance(job_or_id, Job):
            self.job = job_or_id
        else:
            from solstice_inspect.store import connect

            st = store if isinstance(store, Store) else connect(store)
            self.job = st.job(job_or_id)
        if not refresh > 0:
            raise ValueError(f"refresh must be > 0 seconds, not {refresh!r}")
        self.refresh = float(refresh)
        names = list(JOB_TABLES) if tables is None else list(tables)
        unknown = [t for t in names if t not in JOB_TABLES]
        if unknown:
            raise ValueError(f"no table(s) {unknown}; tables: {', '.join(JOB_TABLES)}")
        self.tables = names
        #: per table: the highest ``batch`` already handed out (-1: nothing yet)
        self.cursors: dict[str, int] = dict.fromkeys(names, -1)
        self._versions: dict[str, int] = {}
        self.status = ""
        self.done = False
        self.polls = 0
        self.rows_seen = 0
        self.errors = 0
        self.callback_errors = 0
        self.last_error: BaseException | None = None
        self._subscribers: list[Callback] = []
        self._poll_lock = threading.Lock()
        self._sub_lock = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        state = "done" if self.done else ("polling" if self.running else "idle")
        return (
            f"LiveJob({self.job.job_id!r}, attempt={self.job.attempt_id!r}, "
            f"status={self.status or '?'}, {state}, rows_seen={self.rows_seen})"
        )

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(repr(self))}</pre>"

    # ------------------------------------------------------------------ polling
    @property
    def running(self) -> bool:
        """Whether the background thread is polling."""
        return self._thread is not None and self._thread.is_alive()

    def poll(self) -> Rows:
        """Read the rows added since the last poll.

        Returns
        -------
        dict[str, pyarrow.Table]
            Only tables with new rows, each holding just those rows. Once the attempt
            is final or LOST, this poll is the last one that can return rows and
            :attr:`done` becomes True.

        Raises
        ------
        StoreError
            When the store cannot be read (the background thread counts and retries).
        """
        with self._poll_lock:
            # status first: the recorder writes every table before the final catalog row,
            # so a poll made after seeing a final status sees everything.
            status = self.job.status
            rows = self._read_new()
            self.status = status
            self.polls += 1
            if status in DONE_STATUSES:
                self.done = True
            return rows

    def _read_new(self) -> Rows:
        out: Rows = {}
        for name in self.tables:
            uri = self.job._uri(name)
            ds = open_dataset(uri)
            if ds is None:
                continue
            version = ds.version
            if self._versions.get(name) == version:
                continue  # nothing appended (or compacted) since the last look
            cursor = self.cursors[name]
            table = ds.to_table(filter=f"batch > {cursor}" if cursor >= 0 else None)
            self._versions[name] = version
            if table.num_rows:
                self.cursors[name] = max(cursor, int(pc.max(table["batch"]).as_py()))
                self.rows_seen += table.num_rows
                out[name] = table
        return out

    # ------------------------------------------------------------------ subscribers
    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(rows)`` after each background poll that found new rows, and
        once more when the attempt ends (``rows`` may then be empty).

        Callbacks run in the polling thread. An exception in one is counted in
        :attr:`callback_errors` and logged once; it never stops the polling.

        Returns
        -------
        callable
            Call it to unsubscribe.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._sub_lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._sub_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, rows: Rows) -> None:
        with self._sub_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(rows)
            except Exception as exc:  # noqa: BLE001 - a view's bug must not stop the poller
                self.callback_errors += 1
                self._warn_once("callback", "live callback %r failed: %r", callback, exc)

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    # ------------------------------------------------------------------ thread
    def start(self) -> LiveJob:
        """Poll in a background thread every ``refresh`` seconds; return ``self``."""
        if self.running or self.done:
            return self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"solstice-live-{self.job.job_id}", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    rows = self.poll()
                except (InspectError, OSError, ValueError, RuntimeError) as exc:
                    self.errors += 1
                    self.last_error = exc
                    self._warn_once("poll", "polling %s failed (will retry): %s", self.job, exc)
                    rows = {}
                if rows or self.done:
                    self._notify(rows)
                if self.done:
                    return
                self._wait_for_news(started)
        finally:
            self._finished.set()

    def _wait_for_news(self, last_poll: float) -> None:
        """Sleep until the next poll is both allowed and worth it.

        Polls stay at most one per ``refresh``. Once one is allowed, a cheap check of one
        table's version every ``refresh / 8`` starts the poll as soon as the recorder has
        flushed, so polls fall into step just behind the recorder's flushes instead of up
        to a whole ``refresh`` after them (measured: bench/live_bench.py). A full poll
        still happens every ``2 * refresh`` whatever the check says (status, quiet tables).
        """
        self._stop.wait(max(0.0, self.refresh - (time.monotonic() - last_poll)))
        sentinel = "stage_metrics" if "stage_metrics" in self.tables else self.tables[0]
        seen = self._versions.get(sentinel)
        while not self._stop.is_set() and time.monotonic() - last_poll < 2 * self.refresh:
            try:
                ds = open_dataset(self.job._uri(sentinel))
            except (InspectError, OSError, ValueError, RuntimeError):
                return  # let the full poll report it
            if ds is not None and ds.version != seen:
                return
            self._stop.wait(self.refresh / 8)

    def stop(self) -> None:
        """Stop the background thread (the cursors are kept: :meth:`start` resumes)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the attempt is done (or ``timeout`` s pass); return :attr:`done`."""
        if self._thread is None:
            raise InspectError("this LiveJob is not polling: call start() first")
        self._finished.wait(timeout)
        return self.done

    def __enter__(self) -> LiveJob:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def attach(
    job_id: str,
    *,
    store: Store | str | None = None,
    refresh: float = 1.0,
    tables: Iterable[str] | None = None,
) -> LiveJob:
    """Follow the latest attempt of ``job_id``: a started :class:`LiveJob`.

    Parameters
    ----------
    job_id
        The job to follow.
    store
        A :class:`Store` or path/URI (default store when None).
    refresh
        Seconds between polls.
    tables
        Tables to follow (default: all).

    Examples
    --------
    >>> live = si.attach("etl_001", refresh=0.5)   # doctest: +SKIP
    >>> live.subscribe(print)                      # doctest: +SKIP
    """
    return LiveJob(job_id, store=store, refresh=refresh, tables=tables).start()
