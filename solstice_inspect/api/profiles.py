"""Sampling profiles of live workers: :meth:`Job.profile` and the ``profiles`` table."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pandas as pd

from solstice_inspect.analysis import query as _query
from solstice_inspect.errors import InspectError, NotFound

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Job as _Base
else:
    _Base = object

#: columns of :meth:`ProfileViews.profiles`, in order
PROFILE_COLUMNS = [
    "ts", "profile_id", "worker_id", "stage_id", "duration_s", "rate_hz", "stack", "samples",
]  # fmt: skip


def with_frames(rows: pd.DataFrame) -> pd.DataFrame:
    """Profile rows, most sampled stack first per profile, with ``frames`` (the stack
    split at ``;``, outermost first) and ``share`` (of the profile's samples).

    Examples
    --------
    >>> import pandas as pd
    >>> df = with_frames(pd.DataFrame({"profile_id": ["p", "p"], "stack": ["a;b", "a"],
    ...                                "samples": [1, 3]}))
    >>> df[["stack", "samples", "share"]].values.tolist(), df["frames"][1]
    ([['a', 3, 0.75], ['a;b', 1, 0.25]], ['a', 'b'])
    """
    if rows.empty:
        return rows.assign(frames=pd.Series([], dtype=object), share=pd.Series([], dtype=float))
    rows = rows.sort_values(["profile_id", "samples"], ascending=[True, False], kind="stable")
    total = rows.groupby("profile_id")["samples"].transform("sum").astype(float)
    out = rows.assign(
        frames=rows["stack"].str.split(";"),
        share=(rows["samples"] / total.replace(0.0, float("nan"))).round(6),
    )
    return out.reset_index(drop=True)


class ProfileViews(_Base):
    """Mixin of :class:`~solstice_inspect.api.Job`: profile a worker, read profiles."""

    @_query.checked_keywords
    def profile(
        self,
        worker_id: str,
        *,
        seconds: float = 10.0,
        rate: int = 100,
        idle: bool = False,
        nonblocking: bool = False,
        timeout: float = 60.0,
    ) -> pd.DataFrame:
        """Sample a live worker with py-spy for ``seconds`` and store the profile.

        py-spy runs on the worker's node (a small Ray task pinned there, as root or with
        CAP_SYS_PTRACE); its folded stacks go to the job's recorder, which stores them
        in the ``profiles`` table: the profile stays readable (:meth:`profiles`) after the
        worker and the job are gone. Draw it with :func:`solstice_inspect.charts.icicle`.

        Parameters
        ----------
        worker_id
            A live worker of this (running) attempt.
        seconds
            How long to sample (py-spy counts whole seconds).
        rate
            Samples per second.
        idle
            Also sample idle threads (by default a worker waiting for work has none).
        nonblocking
            Do not pause the worker while reading its stack (less overhead, some
            samples may be inconsistent).
        timeout
            Seconds to wait, after sampling, for the recorder to store the profile.

        Returns
        -------
        pandas.DataFrame
            The stored rows of this profile (:meth:`profiles`): one per folded stack,
            most sampled first, with ``frames`` and ``share``.

        Raises
        ------
        WorkerGone
            The job is finished, or the worker is gone (naming the live workers of its
            stage); stored profiles stay readable with :meth:`profiles`.
        InspectError
            py-spy may not attach (the message says how to allow it), or the profile was
            not stored within ``timeout``.

        Examples
        --------
        >>> prof = job.profile("parse_w0_269e0d", seconds=10)        # doctest: +SKIP
        >>> prof[["stack", "samples", "share"]].head()               # doctest: +SKIP
        >>> si.charts.icicle(prof)                                   # doctest: +SKIP
        """
        from solstice_inspect.ray_tools import profile_worker

        sent = profile_worker(
            self, worker_id, seconds=seconds, rate=rate, idle=idle, nonblocking=nonblocking
        )
        pid = sent["profile_id"]
        deadline = time.monotonic() + timeout
        while True:
            rows = self._profile_rows(where=f"profile_id = {_query.sql_literal(pid)}")
            if not rows.empty:
                return rows
            if time.monotonic() > deadline:
                raise InspectError(
                    f"the recorder of {self.job_id!r} took the profile {pid} but did not store"
                    f" it within {timeout:g} s; look again later with job.profiles()"
                )
            time.sleep(0.1)

    @_query.checked_keywords
    def profiles(self, *, worker: str | list[str] | None = None) -> pd.DataFrame:
        """Stored sampling profiles (:meth:`profile`), one row per folded stack.

        Parameters
        ----------
        worker
            Only profiles of these workers (an id or a list).

        Returns
        -------
        pandas.DataFrame
            ts, profile_id, worker_id, stage_id, duration_s, rate_hz, stack (``outer;
            inner;leaf``), samples, frames (the stack as a list), share (of its
            profile's samples); oldest profile first, most sampled stack first.

        Raises
        ------
        NotFound
            A worker this job never had, naming the closest known ones.

        Examples
        --------
        >>> import solstice_inspect as si, tempfile
        >>> store = si.connect(tempfile.mkdtemp())
        >>> with store.record("etl_001") as rec:
        ...     _ = rec.ingest(si.envelope("profile", "etl_001", "profiler", 1764331200.0,
        ...         {"worker_id": "parse_w0_a1b2c3", "profile_id": "p1",
        ...          "stacks": [["main (w.py:1);parse (w.py:9)", 30], ["main (w.py:1)", 10]]}))
        >>> store.job("etl_001").profiles()[["stack", "samples", "share"]]
                                  stack  samples  share
        0  main (w.py:1);parse (w.py:9)       30   0.75
        1                 main (w.py:1)       10   0.25
        """
        workers = _query.id_list(worker, "worker")
        where = _query.sql_in("worker_id", workers) if workers else None
        rows = self._profile_rows(where=where)
        for wid in workers or ():
            if wid not in set(rows["worker_id"]):
                known = set(self.table("workers", columns=["worker_id"]).column(0).to_pylist())
                known |= set(self.table("profiles", columns=["worker_id"]).column(0).to_pylist())
                known.discard(None)
                if wid not in known:
                    where_ = f"job {self.job_id!r} (attempt {self.attempt_id})"
                    close = _query.closest_ids(wid, sorted(known))
                    raise NotFound("worker", wid, where_, close, len(known))
        return rows

    def _profile_rows(self, *, where: str | None) -> pd.DataFrame:
        rows = self.to_pandas("profiles", columns=PROFILE_COLUMNS, where=where)
        if rows.empty:
            return with_frames(rows)
        order = rows.groupby("profile_id")["ts"].transform("min")
        rows = rows.assign(_order=order).sort_values(["_order", "profile_id"], kind="stable")
        groups = rows.drop(columns="_order").groupby("profile_id", sort=False)
        return pd.concat([with_frames(g) for _, g in groups], ignore_index=True)
