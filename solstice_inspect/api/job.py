"""The public :class:`Store` and :class:`Job` (re-exported by :mod:`solstice_inspect.api`).

What is derived: the job model, stage summary, exception groups, HTML, live worker
debugging.

They live above the analysis layer, so that the store itself stays data-only and imports
go one way (DESIGN §6): ``store`` knows nothing of ``analysis``, ``report`` or Ray.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from solstice_inspect.analysis import checkpoints as _checkpoints
from solstice_inspect.analysis import exceptions as _exceptions
from solstice_inspect.analysis import lineage as _lineage
from solstice_inspect.analysis import query as _query
from solstice_inspect.analysis import splits as _splits
from solstice_inspect.analysis.snapshot import SNAPSHOT_COLUMNS, JobSnapshot
from solstice_inspect.api.advice import AdviceViews
from solstice_inspect.api.incidents import IncidentViews
from solstice_inspect.api.profiles import ProfileViews
from solstice_inspect.errors import NotFound
from solstice_inspect.live import LiveJob
from solstice_inspect.recorder.session import Recording
from solstice_inspect.store import fs, layout
from solstice_inspect.store import reader as _reader

__all__ = ["Job", "Store", "connect", "read_snapshot"]

_EXCEPTION_GROUP_COLUMNS = [
    "ts", "fingerprint", "exception_type", "stage_id", "worker_id", "split_id", "message",
    "stacktrace",
]  # fmt: skip


def read_snapshot(job: _reader.Job) -> JobSnapshot:
    """The model of an attempt from one scan of its tables (the archived read).

    It is the same scan a live reader makes from its cursor, through :class:`LiveJob`.
    """
    live = LiveJob(
        job,
        tables=list(SNAPSHOT_COLUMNS),
        columns={k: v for k, v in SNAPSHOT_COLUMNS.items() if v is not None},
    )
    rows = live.poll()
    snap = JobSnapshot(job.job_id, job.attempt_id)
    snap.add(rows)
    snap.set_catalog(live.catalog)
    return snap


class Job(IncidentViews, ProfileViews, AdviceViews, _reader.Job):
    """One attempt of one job, read from the store (running or archived alike).

    Get one with :func:`solstice_inspect.job` or :meth:`Store.job`. Every table is a
    method returning pandas (``job.worker_metrics()``) or, through :meth:`table`, Arrow.

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> store = si.connect(tempfile.mkdtemp())
    >>> with store.record("etl_001") as rec:
    ...     _ = rec.ingest(si.envelope("job_started", "etl_001", "etl_001", 1764331200.0,
    ...                                {"dag_edges": {"read": ["write"]}}))
    >>> job = store.job("etl_001")
    >>> job.status, list(job.stage_summary()["stage_id"])
    ('COMPLETED', ['read', 'write'])
    """

    def snapshot(self) -> JobSnapshot:
        """Every figure of this attempt as of now (:class:`JobSnapshot`).

        Header, stage summary, workers, exception groups, partitions.
        """
        return read_snapshot(self)

    def exception_groups(self) -> pd.DataFrame:
        """Exceptions grouped by fingerprint, most frequent first, with a root-cause hint."""
        # the groups of the monitor's model, from the one table they need (not a snapshot)
        groups = _exceptions.ExceptionGroups()
        groups.add(self.table("exceptions", columns=_EXCEPTION_GROUP_COLUMNS))
        return groups.table()

    def stage_summary(self) -> pd.DataFrame:
        """Per stage: totals, mean rates, workers alive, backpressure level, skew."""
        return self.snapshot().stage_summary()

    # ------------------------------------------------------------------ splits, lineage
    @_query.checked_keywords
    def splits(
        self,
        *,
        stage: str | list[str] | None = None,
        worker: str | list[str] | None = None,
        status: str | list[str] | None = None,
        min_duration_s: float | None = None,
        since: Any = None,
        until: Any = None,
        where: str | None = None,
    ) -> pd.DataFrame:
        """One row per processed split, with its times, records and what became of it.

        Parameters
        ----------
        stage, worker
            Only splits of these stages / processed by these workers (an id or a list).
        status
            Only ``"ok"``, ``"failed"`` or ``"retried"`` splits (or a list of them).
        min_duration_s
            Only splits that took at least this long (failed ones have no duration).
        since, until
            Only splits that ended in ``[since, until)`` (datetimes or epoch seconds).
        where
            A SQL filter on the lineage columns, pushed down to Lance, e.g.
            ``"output_records = 0"``. Failed splits have no lineage row: they are kept
            when their exception rows pass it (it names only ``split_id``, ``stage_id``,
            ``worker_id`` or ``ts``), else left out.

        Returns
        -------
        pandas.DataFrame
            split_id, stage_id, worker_id, parent_split_ids, start_time, end_time,
            duration_s, input_records, output_records, status, exception_fingerprint;
            by end time. ``status`` is *retried* when the stage had processed the split
            before, or an exception from another worker named it before this processing
            ended (a worker died on it and this one redid it); *failed* when exceptions
            name the split and no processing of it completed (the row is the failure:
            its last exception's time and worker); else *ok*. The full rule is in
            :func:`solstice_inspect.analysis.splits.split_status`.

        Raises
        ------
        NotFound
            A stage or worker this job never had, naming the closest known ids.
        ValueError
            An unknown status, or a ``where`` Lance cannot run.

        Examples
        --------
        >>> import solstice_inspect as si, tempfile
        >>> store = si.connect(tempfile.mkdtemp())
        >>> with store.record("etl_001") as rec:
        ...     _ = rec.ingest([si.envelope("split_processed", "etl_001", "src_w0_a1b2c3",
        ...         1764331200.5, {"stage_id": "src", "split_id": "src_split_0",
        ...                        "processing_time": 0.5, "output_records": 64})])
        >>> store.job("etl_001").splits(stage="src")[["split_id", "duration_s", "status"]]
              split_id  duration_s status
        0  src_split_0         0.5     ok
        """
        lin = _splits
        stages, workers = _query.id_list(stage, "stage"), _query.id_list(worker, "worker")
        statuses = lin.check_statuses(status)
        cond, by_stage = lin.lineage_filter(stages, workers, min_duration_s, where)
        cols = list(_lineage.TRACE_COLUMNS)
        rows = self.table("lineage", columns=cols, where=cond, since=since, until=until)
        narrowed = cond != by_stage or since is not None or until is not None
        # whether a split was retried depends on its other processings: read them too
        siblings = self.table("lineage", columns=cols, where=by_stage) if narrowed else None
        exc = self.table(
            "exceptions", columns=["ts", "stage_id", "worker_id", "split_id", "fingerprint"],
            where="split_id IS NOT NULL" + (f" AND {by_stage}" if by_stage else ""),
        )  # fmt: skip
        df = lin.filter_splits(
            lin.split_status(rows, exc, siblings=siblings),
            stages=stages, workers=workers, statuses=statuses, min_duration_s=min_duration_s,
            since=since, until=until, failures=self._failures_where(where) if where else None,
        )  # fmt: skip
        self._require_known({"stage": stages, "worker": workers}, df, "lineage")
        return df

    def _failures_where(self, where: str) -> set[tuple[Any, Any]]:
        """(stage, split) of the exceptions that pass the ``where`` :meth:`splits` got."""
        cond = f"split_id IS NOT NULL AND ({where})"
        try:
            t = self.table("exceptions", columns=["stage_id", "split_id"], where=cond)
        except ValueError:  # ``where`` names lineage columns the exceptions lack
            return set()
        return set(zip(t.column("stage_id").to_pylist(), t.column("split_id").to_pylist()))

    @_query.checked_keywords
    def trace(
        self, split_id: str, *, direction: str = "up", depth: int | None = None
    ) -> pd.DataFrame:
        """The lineage around one split: a DataFrame of edges (child split → parent).

        Parameters
        ----------
        split_id
            The split to start from.
        direction
            ``"up"``: where it came from (parents, their parents…); ``"down"``: what was
            made from it; ``"both"``. A split with several parents (fan-in) is followed
            up every branch.
        depth
            At most this many hops (None: all the way).

        Returns
        -------
        pandas.DataFrame
            One row per edge: split_id, parent_split_id, stage_id, worker_id,
            start_time, end_time, duration_s, input_records, output_records (of the
            child's processing), direction, depth (hops from ``split_id``).

        Raises
        ------
        NotFound
            No split ``split_id``, naming the closest known split ids.

        Examples
        --------
        >>> import solstice_inspect as si, tempfile
        >>> store = si.connect(tempfile.mkdtemp())
        >>> with store.record("etl_001") as rec:
        ...     _ = rec.ingest([si.envelope("split_processed", "etl_001", w, 1764331200 + i,
        ...         {"stage_id": s, "split_id": sid, "parent_split_ids": parents})
        ...         for i, (w, s, sid, parents) in enumerate([
        ...             ("src_w0_a1b2c3", "src", "src_split_0", []),
        ...             ("map_w0_d4e5f6", "map", "map_src_split_0", ["src_split_0"])])])
        >>> store.job("etl_001").trace("map_src_split_0")[["split_id", "parent_split_id"]]
                  split_id parent_split_id
        0  map_src_split_0     src_split_0
        """
        _lineage.check_direction(direction)
        _lineage.check_depth(depth)
        graph = _lineage.LineageGraph(self.table("lineage", columns=_lineage.TRACE_COLUMNS))
        try:
            return _lineage.trace_edges(graph, split_id, direction=direction, depth=depth)
        except KeyError:
            known = graph.known_ids()
            close = _query.closest_ids(split_id, known)
            count = _lineage.pc.count_distinct(known).as_py()
            raise NotFound("split", split_id, self._where(), close, count) from None

    # ------------------------------------------------------------------ checkpoints
    def checkpoints(
        self,
        *,
        stage: str | list[str] | None = None,
        status: str | list[str] | None = None,
        since: Any = None,
        until: Any = None,
    ) -> pd.DataFrame:
        """Checkpoints, one row per checkpoint × stage, with their committed offsets.

        Parameters
        ----------
        stage, status
            Only these stages / statuses (IN_PROGRESS, COMPLETED, FAILED; any case).
        since, until
            Only checkpoints triggered in ``[since, until)`` (datetimes or epoch seconds).

        Returns
        -------
        pandas.DataFrame
            The stored columns (``offsets``: a list of {partition_id, topic,
            consumer_group, committed_offset, latest_offset}), plus ``interval_s`` (since
            the stage's previous checkpoint), ``partitions`` and ``lag`` (Σ latest −
            committed). Several reports of one checkpoint by one stage are merged (see
            :func:`~solstice_inspect.analysis.checkpoints.checkpoint_rows`).

        Raises
        ------
        NotFound
            A stage this job never had, naming the closest known stages.

        Examples
        --------
        >>> job.checkpoints(stage="parse", status="failed")  # doctest: +SKIP
        """
        stages = _query.id_list(stage, "stage")
        where = _query.sql_in("stage_id", stages) if stages else None
        rows = _checkpoints.checkpoint_rows(self.table("checkpoints", where=where))
        self._require_known({"stage": stages}, rows, "checkpoints")
        keep = _query.in_window(rows["trigger_time"].fillna(rows["ts"]), since, until)
        statuses = _checkpoints.check_statuses(status, rows["status"])
        if statuses:
            keep &= rows["status"].isin(statuses)
        return rows.loc[keep].reset_index(drop=True)

    def checkpoint_history(self, *, since: Any = None, until: Any = None) -> pd.DataFrame:
        """One row per checkpoint: status, duration, size, interval, failed stages.

        What a checkpoint history chart draws; see
        :func:`~solstice_inspect.analysis.checkpoints.checkpoint_history` for each
        column. ``since`` / ``until`` keep checkpoints triggered in ``[since, until)``
        (intervals are still measured from the checkpoint before).

        Examples
        --------
        >>> job.checkpoint_history()[["checkpoint_id", "status", "duration_ms"]]  # doctest: +SKIP
        """
        history = _checkpoints.checkpoint_history(self.checkpoints())
        keep = _query.in_window(history["trigger_time"], since, until)
        return history.loc[keep].reset_index(drop=True)

    def checkpoint_diff(self, a: str, b: str) -> pd.DataFrame:
        """Per partition: the committed offsets at checkpoints ``a`` and ``b``, and the delta.

        Returns
        -------
        pandas.DataFrame
            One row per (stage_id, topic, consumer_group, partition_id) in either
            checkpoint: committed_a, committed_b, committed_delta (b − a), latest_a,
            latest_b, latest_delta, lag_a, lag_b. NA where a partition is in only one.

        Raises
        ------
        NotFound
            A checkpoint id this job does not have, naming the closest known ones.

        Examples
        --------
        >>> job.checkpoint_diff("chk_3", "chk_4")["committed_delta"].sum()  # doctest: +SKIP
        """
        rows = self.checkpoints()
        known = rows["checkpoint_id"].dropna().astype(str)
        for cid in (a, b):
            if cid not in set(known):
                close = _query.closest_ids(str(cid), sorted(set(known)))
                raise NotFound("checkpoint", str(cid), self._where(), close, known.nunique())
        return _checkpoints.checkpoint_diff(rows, a, b)

    # ------------------------------------------------------------------ logs, exceptions
    def logs(
        self,
        *,
        worker: str | list[str] | None = None,
        stage: str | list[str] | None = None,
        level: str | int | None = None,
        search: str | None = None,
        since: Any = None,
        until: Any = None,
        limit: int | None = None,
        where: str | None = None,
    ) -> pd.DataFrame:
        """Log lines recorded from the workers (capped per worker), oldest first.

        Every filter is pushed down to Lance.

        Parameters
        ----------
        worker, stage
            Only lines of these workers / stages (one id or a list).
        level
            This level and above (DEBUG < INFO < WARNING < ERROR < CRITICAL; WARN and
            FATAL count as WARNING and CRITICAL; a :mod:`logging` number works too).
            Lines with any other level are left out when ``level`` is given.
        search
            Lines whose message contains this text, ignoring case (a plain substring:
            ``%``, ``_`` and quotes match themselves).
        since, until
            Only lines in ``[since, until)`` (datetimes or epoch seconds).
        limit
            Only the last ``limit`` lines that match.
        where
            A further SQL filter, e.g. ``"message LIKE 'retry%'"``.

        Raises
        ------
        NotFound
            A worker or stage this job never had, naming the closest known ones.

        Examples
        --------
        >>> import solstice_inspect as si, tempfile
        >>> store = si.connect(tempfile.mkdtemp())
        >>> with store.record("etl_001") as rec:
        ...     _ = rec.ingest([si.envelope("log", "etl_001", "src_w0_a1b2c3", 1764331200 + i,
        ...         {"stage_id": "src", "level": lvl, "message": text})
        ...         for i, (lvl, text) in enumerate([("INFO", "started"),
        ...             ("WARNING", "Retrying 50% of split 7"), ("ERROR", "gave up")])])
        >>> store.job("etl_001").logs(level="warning", search="retrying")["message"].tolist()
        ['Retrying 50% of split 7']
        """
        workers, stages = _query.id_list(worker, "worker"), _query.id_list(stage, "stage")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise TypeError(f"limit must be an int, not {limit!r}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        cond = _exceptions.query_filter(
            search=search, search_in=("message",), level=level, where=where,
            worker_id=workers, stage_id=stages,
        )  # fmt: skip
        df = self.to_pandas("logs", where=cond, since=since, until=until)
        self._require_known({"worker": workers, "stage": stages}, df, "logs")
        if limit is not None:
            df = df.iloc[len(df) - limit :].reset_index(drop=True)
        return df

    def exceptions(
        self,
        *,
        search: str | None = None,
        stage: str | list[str] | None = None,
        worker: str | list[str] | None = None,
        fingerprint: str | list[str] | None = None,
        since: Any = None,
        until: Any = None,
        where: str | None = None,
    ) -> pd.DataFrame:
        """Exception occurrences, oldest first, each with its fingerprint (its group).

        Every filter is pushed down to Lance. Each row names its ``split_id`` (open it
        with :meth:`trace`), ``worker_id`` and time (the worker's lines around it:
        :meth:`logs`).

        Parameters
        ----------
        search
            Occurrences whose message, stack trace or exception type contains this text,
            ignoring case (a plain substring: ``%``, ``_`` and quotes match themselves).
        stage, worker, fingerprint
            Only these stages / workers / exception groups (one id or a list).
        since, until
            Only occurrences in ``[since, until)`` (datetimes or epoch seconds).
        where
            A further SQL filter, e.g. ``"exception_type = 'KeyError'"``.

        Raises
        ------
        NotFound
            A stage, worker or fingerprint this job never had, naming the closest ones.

        Examples
        --------
        >>> import solstice_inspect as si, tempfile
        >>> store = si.connect(tempfile.mkdtemp())
        >>> with store.record("etl_001") as rec:
        ...     _ = rec.ingest(si.envelope("exception", "etl_001", "src_w0_a1b2c3", 1764331200,
        ...         {"stage_id": "src", "exception_type": "KeyError", "message": "'uri'",
        ...          "stacktrace": 'File "decode.py", line 7, in decode_frame'}))
        >>> store.job("etl_001").exceptions(search="DECODE_FRAME")["exception_type"].tolist()
        ['KeyError']
        """
        return self._exception_rows(None, search, stage, worker, fingerprint, since, until, where)

    def exception_occurrences(
        self,
        fingerprint: str | list[str] | None = None,
        *,
        freq: str = "1min",
        search: str | None = None,
        stage: str | list[str] | None = None,
        worker: str | list[str] | None = None,
        since: Any = None,
        until: Any = None,
    ) -> pd.DataFrame:
        """Occurrences of each exception group per ``freq``, with first and last seen.

        The filters are those of :meth:`exceptions`. One row per (fingerprint, time
        bucket) with occurrences: fingerprint, exception_type, time, count, first_seen,
        last_seen (see :func:`~solstice_inspect.analysis.exceptions.occurrences`).

        Examples
        --------
        >>> job.exception_occurrences(freq="10s", stage="decode")  # doctest: +SKIP
        """
        columns = ["ts", "fingerprint", "exception_type", "stage_id", "worker_id"]
        rows = self._exception_rows(columns, search, stage, worker, fingerprint, since, until)
        return _exceptions.occurrences(rows, freq)

    def _exception_rows(
        self,
        columns: list[str] | None,
        search: str | None,
        stage: Any,
        worker: Any,
        fingerprint: Any,
        since: Any,
        until: Any,
        where: str | None = None,
    ) -> pd.DataFrame:
        asked = {
            "stage": _query.id_list(stage, "stage"),
            "worker": _query.id_list(worker, "worker"),
            "fingerprint": _query.id_list(fingerprint, "fingerprint"),
        }
        cond = _exceptions.query_filter(
            search=search, search_in=("message", "stacktrace", "exception_type"), where=where,
            stage_id=asked["stage"], worker_id=asked["worker"], fingerprint=asked["fingerprint"],
        )  # fmt: skip
        df = self.to_pandas("exceptions", columns=columns, where=cond, since=since, until=until)
        self._require_known(asked, df, "exceptions")
        return df

    def _where(self) -> str:
        return f"job {self.job_id!r} (attempt {self.attempt_id})"

    def _require_known(
        self, asked: dict[str, list[str] | None], found: pd.DataFrame, table: str
    ) -> None:
        """Raise NotFound for an id asked for (``{"stage": [ids]}``…) but unknown.

        Known: in ``found``, anywhere in ``table``, the DAG's stages, the workers table.
        """
        for what, values in asked.items():
            column = what if what == "fingerprint" else f"{what}_id"
            present = set(found[column].dropna().unique()) if values else set()
            missing = [v for v in values or () if v not in present]
            if not missing:
                continue
            known = set(self.table(table, columns=[column]).column(0).drop_null().to_pylist())
            if what == "stage":
                known.update(self.dag.stages["stage_id"].dropna())
            elif what == "worker":
                known.update(self.table("workers", columns=["worker_id"]).column(0).to_pylist())
            known.discard(None)
            for value in missing:
                if value not in known:
                    close = _query.closest_ids(value, sorted(known))
                    raise NotFound(what, value, self._where(), close, len(known))

    # ------------------------------------------------------------------ live (Ray)
    def worker_logs(self, worker_id: str, tail: int = 200) -> str:
        """Last ``tail`` (≤ 5000) log lines of a live worker, through Ray.

        See :func:`solstice_inspect.ray_tools.worker_logs`.
        """
        from solstice_inspect.ray_tools import worker_logs

        return worker_logs(self, worker_id, tail=tail)

    def worker_stack(self, worker_id: str) -> str:
        """A py-spy dump of a live worker; see :func:`solstice_inspect.ray_tools.worker_stack`."""
        from solstice_inspect.ray_tools import worker_stack

        return worker_stack(self, worker_id)

    def worker_process(self, worker_id: str) -> dict[str, Any]:
        """pid, node, CPU %, RSS of a live worker; see :func:`ray_tools.worker_process`."""
        from solstice_inspect.ray_tools import worker_process

        return worker_process(self, worker_id)

    def _repr_html_(self) -> str:
        from solstice_inspect.report.summary import job_summary_html

        return job_summary_html(self.snapshot())


_reader.register_job_class(Job)


class Store(_reader.Store):
    """A job store: a directory (or object-store URI) of Lance datasets.

    Use :func:`solstice_inspect.connect` to get one.

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> store = si.connect(tempfile.mkdtemp())
    >>> store.jobs().empty
    True
    """

    def job(self, job_id: str, *, attempt: str | int | None = None) -> Job:
        """One attempt of a job: the latest, or ``attempt`` (an id, or 1-based number).

        Raises
        ------
        JobNotFound
            Listing the known jobs (or attempts) and the closest match.
        """
        job = super().job(job_id, attempt=attempt)
        assert isinstance(job, Job)
        return job

    def record(self, job_id: str, **options: Any) -> Recording:
        """Start a new attempt of ``job_id`` and return its (only) writer.

        Keyword options: ``config``, ``dag_edges``, ``stages``, ``flush_interval`` (1.0 s),
        ``heartbeat_interval`` (5.0 s), ``window_s`` (1.0 s), ``attempt_id``.

        Examples
        --------
        >>> import solstice_inspect as si, tempfile
        >>> store = si.connect(tempfile.mkdtemp())
        >>> with store.record("etl_001", config={"batch": 64}) as rec:
        ...     _ = rec.ingest({"message_type": "job_started", "job_id": "etl_001",
        ...                     "source_id": "etl_001", "timestamp": 1764331200.0,
        ...                     "payload": {"dag_edges": {"read": ["write"]}}})
        >>> store.job("etl_001").status
        'COMPLETED'
        """
        return Recording(self, job_id, **options)


def connect(uri: Any = None, *, storage_options: dict[str, Any] | None = None) -> Store:
    """Open a store: a local directory or an ``s3://`` / ``gs://`` / ``az://`` URI.

    Parameters
    ----------
    uri
        Default: ``$SOLSTICE_INSPECT_STORE``, else ``./.solstice_inspect``. Nothing is
        created until a recording writes.
    storage_options
        For object stores: Lance's options (``aws_access_key_id``,
        ``aws_secret_access_key``, ``aws_session_token``, ``aws_endpoint``,
        ``aws_region``, ``allow_http``, …), over the ``AWS_*`` environment variables
        (README, "Object storage"). An ``s3://`` store is checked at once: a missing
        bucket, refused credentials or an unreachable endpoint raise ``StoreError``
        naming the URI (never a secret), in seconds.

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> si.connect(tempfile.mkdtemp()).jobs().columns[:3].tolist()
    ['job_id', 'attempt_id', 'status']
    """
    store = Store(layout.default_root() if uri is None else uri, storage_options=storage_options)
    fs.check(store.root)
    return store
