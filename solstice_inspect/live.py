"""Following a running job from the store: :class:`LiveJob` and :func:`attach`.

A live view polls the store, never the workers: every ``refresh`` seconds it reads, per
table, the rows whose ``batch`` (the recorder's flush number) is above the last one it
saw — the same :meth:`Job.scan <solstice_inspect.store.reader.Job.scan>` an archived read
makes, from a cursor. ``batch`` restarts with every attempt, so a ``LiveJob`` keeps one
cursor per table of the attempt it follows; given a job *id*, it moves on to a newer
attempt of that job when one starts (cursors reset, :attr:`LiveJob.attempt_changes` + 1).
No Ray is needed: a second process with only the store path can follow a job that a Ray
cluster is running.

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

import atexit
import html
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as _pc

from solstice_inspect.errors import InspectError, JobNotFound
from solstice_inspect.schema import FINAL_STATUSES, JOB_TABLES
from solstice_inspect.store import connect
from solstice_inspect.store.reader import Job, Store

#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

log = logging.getLogger("solstice_inspect.live")

#: statuses after which an attempt writes nothing more (LOST: its recorder is gone)
DONE_STATUSES = frozenset(FINAL_STATUSES | {"LOST"})
#: seconds between catalog checks for a newer attempt once the followed one ended
FOLLOW_POLL_S = 2.0

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
    columns
        Per table, only these columns (``batch`` is always read: it is the cursor).
    wait
        Given a job id with no attempt yet, wait this many seconds for its first one.
    follow
        Move on to a newer attempt of the job when the followed one has ended and a newer
        one starts. Default: True when given a job id, False when given a ``Job``.

    Notes
    -----
    :meth:`poll` returns, per table, the rows added since the previous poll; the
    background thread (:meth:`start`) polls every ``refresh`` seconds and hands
    non-empty results to every subscriber. Once the attempt's status is final
    (COMPLETED, FAILED, CANCELLED) or LOST, one last poll is made, subscribers are called
    one last time (possibly with an empty dict) and :attr:`done` becomes True. Without
    ``follow`` the thread then stops by itself; with it, the thread checks the catalog
    every few seconds and, when a newer attempt appears, resets its cursors and goes on
    with that one (subscribers see :attr:`job` change).

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
        columns: dict[str, list[str]] | None = None,
        wait: float = 0.0,
        follow: bool | None = None,
    ) -> None:
        if not refresh > 0:
            raise ValueError(f"refresh must be > 0 seconds, not {refresh!r}")
        self.refresh = float(refresh)
        if isinstance(job_or_id, Job):
            self.job = job_or_id
        else:
            st = store if isinstance(store, Store) else connect(store)
            self.job = first_attempt(st, str(job_or_id), wait)
        #: move on to a newer attempt of the job when one starts (default: given an id)
        self.follow = (not isinstance(job_or_id, Job)) if follow is None else bool(follow)
        names = list(JOB_TABLES) if tables is None else list(tables)
        unknown = [t for t in names if t not in JOB_TABLES]
        if unknown:
            raise ValueError(f"no table(s) {unknown}; tables: {', '.join(JOB_TABLES)}")
        self.tables = names
        self.columns = {
            name: list(dict.fromkeys([*cols, "batch"])) for name, cols in (columns or {}).items()
        }
        #: per table: the highest ``batch`` already handed out (-1: nothing yet)
        self.cursors: dict[str, int] = dict.fromkeys(names, -1)
        self._versions: dict[str, int] = {}
        #: per table: the highest fragment id already read (only newer ones are scanned)
        self._fragments: dict[str, int] = {}
        self.status = ""
        #: the attempt's newest catalog row, as of the last poll
        self.catalog: dict[str, Any] = {}
        self.done = False
        self.polls = 0
        self.rows_seen = 0
        self.errors = 0
        self.callback_errors = 0
        self.attempt_changes = 0
        #: ``time.time()`` of the last poll that brought rows (None: none yet)
        self.last_rows_at: float | None = None
        self.last_error: BaseException | None = None
        self._subscribers: list[Callback] = []
        self._poll_lock = threading.Lock()
        self._sub_lock = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._done = threading.Event()
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
            if self.done and self.follow and not self._newer_attempt():
                return {}
            # status first: the recorder writes every table before the final catalog row,
            # so a poll made after seeing a final status sees everything.
            catalog = self.job.catalog_row()
            status = str(catalog["status"])
            rows = self._read_new()
            self.catalog = catalog
            self.status = status
            self.polls += 1
            if rows:
                self.last_rows_at = time.time()
            if status in DONE_STATUSES:
                self.done = True
                self._done.set()
            return rows

    def _newer_attempt(self) -> bool:
        """Switch to the newest attempt of the job if it is not the one followed."""
        attempts = self.job.store.attempts(self.job.job_id)
        newest = str(attempts["attempt_id"].iloc[-1]) if len(attempts) else None
        if newest is None or newest == self.job.attempt_id:
            return False
        log.info("%s: following the newer attempt %s", self.job.job_id, newest)
        self.job = self.job.store.attempt(self.job.job_id, newest)
        self.cursors = dict.fromkeys(self.tables, -1)
        self._versions = {}
        self._fragments = {}
        self.done = False
        self._done.clear()
        self.attempt_changes += 1
        return True

    def _read_new(self) -> Rows:
        out: Rows = {}
        for name in self.tables:
            cursor = self.cursors[name]
            got = self.job.scan(
                name,
                columns=self.columns.get(name),
                after_batch=cursor,
                known_version=self._versions.get(name),
                after_fragment=self._fragments.get(name, -1),
            )
            if got.unchanged or got.version is None:
                continue  # nothing appended (or compacted) since the last look
            self._versions[name] = got.version
            self._fragments[name] = got.last_fragment
            table = got.table
            if table.num_rows:
                self.cursors[name] = max(cursor, int(pc.max(table["batch"]).as_py()))
                self.rows_seen += table.num_rows
                out[name] = table
        return out

    # ------------------------------------------------------------------ subscribers
    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(rows)`` after each background poll that found new rows.

        And once more when the attempt ends (``rows`` may then be empty).

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
        if self.running or (self.done and not self.follow):
            return self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"solstice-live-{self.job.job_id}", daemon=True
        )
        self._thread.start()
        _RUNNING.add(self)
        return self

    def _run(self) -> None:
        self._told_done = False
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
                if rows or (self.done and not self._told_done):
                    self._notify(rows)
                    self._told_done = self.done
                if self.done and not self.follow:
                    return
                if self.done:  # waiting for a newer attempt: the catalog, every few s
                    self._stop.wait(max(self.refresh, FOLLOW_POLL_S))
                else:
                    self._told_done = False
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
                version = self.job.version(sentinel)
            except (InspectError, OSError, ValueError, RuntimeError):
                return  # let the full poll report it
            if version is not None and version != seen:
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
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set() and not self._finished.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self._done.wait(0.1 if left is None else min(0.1, left))
        return self.done

    def __enter__(self) -> LiveJob:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: live readers whose thread may run; stopped when the interpreter exits
_RUNNING: weakref.WeakSet[LiveJob] = weakref.WeakSet()


@atexit.register
def _stop_running() -> None:
    """Stop the polling threads at exit.

    One left inside Lance's native code while the interpreter finalises can abort it.
    """
    for live in list(_RUNNING):
        live._stop.set()
    for live in list(_RUNNING):
        thread = live._thread
        if thread is not None:
            thread.join(timeout=5)


def first_attempt(store: Store, job_id: str, wait: float) -> Job:
    """The latest attempt of ``job_id``; wait up to ``wait`` s for a first one to appear."""
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            return store.job(job_id)
        except JobNotFound:
            if time.monotonic() >= deadline:
                raise
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def attach(
    job_id: str,
    *,
    store: Store | str | None = None,
    refresh: float = 1.0,
    tables: Iterable[str] | None = None,
    wait: float = 60.0,
    follow: bool = True,
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
    wait
        When the job has no attempt yet, wait this many seconds for its first one
        (then raise :class:`~solstice_inspect.errors.JobNotFound`).
    follow
        When the followed attempt ends and a newer attempt of ``job_id`` starts, follow
        that one (until :meth:`LiveJob.stop`).

    Examples
    --------
    >>> live = si.attach("etl_001", refresh=0.5, wait=120)   # doctest: +SKIP
    >>> live.subscribe(print)                                # doctest: +SKIP
    """
    return LiveJob(
        job_id, store=store, refresh=refresh, tables=tables, wait=wait, follow=follow
    ).start()
