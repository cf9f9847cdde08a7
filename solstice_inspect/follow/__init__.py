"""Follow unmodified Solstice jobs: record their state topics from Solstice's broker.

Solstice's runtime sends its state messages to a topic ``<job_id>_state`` on its Tansu
broker (Kafka protocol). :func:`follow` (and ``solstice-inspect follow``) reads those
topics into the store through the same recorder rules as every other way in.
"""

from __future__ import annotations

import asyncio
import atexit
import html
import logging
import threading
import weakref
from typing import Any

import pandas as pd

from solstice_inspect.follow.follower import Follower
from solstice_inspect.store import connect
from solstice_inspect.store.reader import Store

log = logging.getLogger("solstice_inspect.follow")

__all__ = ["Follower", "Following", "follow"]

_JOB_COLUMNS = [
    "topic",
    "job_id",
    "attempt_id",
    "status",
    "messages",
    "accepted",
    "rejected",
    "duplicates",
    "attempts",
    "late_dropped",
]


class Following:
    """A follower running in a background thread; returned by :func:`follow`.

    ``jobs`` and ``stats`` can be read at any time; :meth:`stop` writes what was read,
    saves the position and returns (running attempts stay RUNNING, to be resumed by the
    next follower of the same store). Also a context manager that stops on exit.
    """

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._main, name=f"solstice-follow-{follower.bootstrap}", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        _OPEN.add(self)

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self.follower.run(self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:
            self.follower.error = exc
            log.exception("the follower of %s stopped", self.follower.bootstrap)
        finally:
            self._ready.set()

    @property
    def running(self) -> bool:
        """True until :meth:`stop` (or a fatal error) ends the follower."""
        return self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """What stopped the follower, if it was not :meth:`stop`."""
        return self.follower.error

    @property
    def jobs(self) -> pd.DataFrame:
        """One row per followed topic: job_id, attempt_id, status, messages, accepted,
        rejected, duplicates, attempts, late_dropped."""
        return pd.DataFrame(self.follower.jobs(), columns=_JOB_COLUMNS)

    @property
    def stats(self) -> dict[str, Any]:
        """broker_up, topics, jobs, running, messages, messages_per_s, lag, accepted,
        rejected, duplicates, late_dropped, attempts, broker_outages, data_losses."""
        return self.follower.stats()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop following: write everything read, save the position, close. Idempotent."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # the loop already ended
        self._thread.join(timeout)
        _OPEN.discard(self)

    def __enter__(self) -> Following:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        s = self.follower.stats()
        state = "running" if self.running else "stopped"
        return (
            f"Following({self.follower.bootstrap!r}, {state}, jobs={s['jobs']}, "
            f"messages={s['messages']}, rejected={s['rejected']})"
        )

    def _repr_html_(self) -> str:
        return f"<code>{html.escape(repr(self))}</code>"


def follow(
    bootstrap: str,
    pattern: str = ".*_state",
    store: Store | str | None = None,
    *,
    topics: list[str] | None = None,
    flush_interval: float = 1.0,
    linger: float = 60.0,
    idle_close: float = 600.0,
) -> Following:
    """Record every Solstice job on a broker into the store, in the background.

    Each topic whose name matches ``pattern`` (Solstice names them ``<job_id>_state``) is
    a job: its messages go through the same recorder rules as ``solstice-inspect
    ingest``, one attempt per run (a ``job_started`` after a final status starts a new
    one, and so does a second ``job_started`` of a running attempt: the job was run
    again after its driver died without a final status, and the dead run's attempt reads
    as LOST). Bad messages are counted as rejects and never stop the follower. The position
    is kept in the store (``<store>/follow/<topic>.json``), so a follower started again
    on the same store resumes without a gap or a duplicate. It rides out the broker going
    away; if the broker comes back without its data, it says so and goes on.

    Parameters
    ----------
    bootstrap
        The broker, ``HOST:PORT``.
    pattern
        Follow the topics whose whole name matches this regular expression.
    store
        A store or its path/URI (default: ``$SOLSTICE_INSPECT_STORE`` or
        ``./.solstice_inspect``).
    topics
        Exactly these topics instead of ``pattern``.
    flush_interval
        Seconds between two writes of a job's rows: how live views lag the broker.
    linger
        Seconds a finished job's attempt stays open for late reports (after a restart of
        the follower, a late report of a known worker opens it again).
    idle_close
        Seconds of silence after which a running job's attempt is closed (it reads as
        LOST; its next message resumes it).

    Returns
    -------
    Following
        ``.jobs`` (DataFrame), ``.stats`` (dict), ``.stop()``.

    Raises
    ------
    ImportError
        Without aiokafka: install ``solstice-inspect[follow]``.

    Examples
    --------
    >>> import solstice_inspect as si
    >>> f = si.follow("127.0.0.1:9092", store="/data/solstice")   # doctest: +SKIP
    >>> f.stats["jobs"], f.stats["messages_per_s"]                  # doctest: +SKIP
    (3, 412.0)
    >>> si.job_monitor("etl_001", store="/data/solstice")          # doctest: +SKIP
    >>> f.stop()                                                    # doctest: +SKIP
    """
    from solstice_inspect.follow.follower import _kafka

    _kafka()  # fail here, not in the background thread, when aiokafka is missing
    st = store if isinstance(store, Store) else connect(store)
    follower = Follower(
        bootstrap,
        store=st,
        topics=topics,
        pattern=pattern,
        flush_interval=flush_interval,
        linger=linger,
        idle_close=idle_close,
    )
    return Following(follower)


#: followers still running; stopped (position saved) when the interpreter exits
_OPEN: weakref.WeakSet[Following] = weakref.WeakSet()


@atexit.register
def _stop_open_followers() -> None:
    for following in list(_OPEN):
        try:
            following.stop(timeout=30)
        except Exception:  # exiting: log, never raise
            log.exception("stopping %r at exit failed", following)
