"""Reading a store: :class:`Store` (all jobs) and :class:`Job` (one attempt).

No Ray, no Jupyter: everything here is Lance → Arrow → pandas, through the one read
primitive :func:`~solstice_inspect.store.scan.scan`. Running and archived jobs are read
by this same code. What is *derived* from the rows (stage summary, exception groups,
HTML) is added by the public classes in :mod:`solstice_inspect.api`, which sit above the
analysis layer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pyarrow as pa

from solstice_inspect.errors import JobNotFound
from solstice_inspect.protocol import valid_job_id
from solstice_inspect.schema import JOB_TABLES, SCHEMAS, json_map
from solstice_inspect.store import fs, heartbeat, layout
from solstice_inspect.store.catalog import latest_attempts, overlay_row, still_alive
from solstice_inspect.store.scan import Scan, dataset_version, scan


def _ts_literal(value: Any, name: str) -> str:
    """A Lance SQL timestamp literal (UTC) from a datetime, pandas Timestamp, epoch or text."""
    try:
        if isinstance(value, (int, float)):
            stamp = pd.Timestamp(value, unit="s", tz="UTC")
        else:
            stamp = pd.Timestamp(value)
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{name}={value!r} is not a time: pass a datetime or epoch seconds"
        ) from exc
    return f"TIMESTAMP '{stamp.strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def _last_valid(series: pd.Series) -> Any:
    valid = series.dropna()
    return valid.iloc[-1] if len(valid) else None


class Store:
    """The data side of a job store: the catalog, and the attempts of each job.

    Users get :class:`solstice_inspect.api.Store` (:func:`solstice_inspect.connect`),
    which adds recording; this class is what the layers below the API use.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = layout.resolve_root(root)
        # kept per root in this process (never on this object: its repr stays secret-free)
        fs.configure(self.root, storage_options)

    #: the class of the attempts this store hands out: :class:`Job`, or the richer class
    #: a higher layer registered with :func:`register_job_class` (``api.Job``, with the
    #: derived views), so that every store — the recorder's too — hands out the same one
    @property
    def _job_class(self) -> type[Job]:
        return _JOB_CLASS[0]

    def __repr__(self) -> str:
        return f"Store({fs.display(self.root)!r})"

    # ------------------------------------------------------------------ catalog
    def catalog(self, *, job_id: str | None = None) -> pa.Table:
        """Every catalog row, of one job or of all, as stored.

        A row per attempt start and status change (stores written before heartbeat files
        also hold a row per heartbeat). The live values of running attempts are in their
        heartbeat files: :meth:`jobs` and :meth:`attempts` overlay them.
        """
        where = None if job_id is None else f"job_id = '{valid_job_id(job_id)}'"
        return scan(layout.catalog_uri(self.root), SCHEMAS["catalog"], where=where).table

    def jobs(self, *, all_attempts: bool = False) -> pd.DataFrame:
        """One row per job (its latest attempt), or per attempt with ``all_attempts``.

        Columns: job_id, attempt_id, status, start_time, end_time, duration_s, stages,
        workers, records_in, records_out, exceptions, heartbeat (and ``attempts``, the
        number of attempts of the job, when listing latest attempts).
        """
        df = latest_attempts(self.catalog(), root=self.root)
        if all_attempts or df.empty:
            return df
        counts = df.groupby("job_id")["attempt_id"].transform("size")
        df = df.assign(attempts=counts)
        return df.drop_duplicates("job_id", keep="first").reset_index(drop=True)

    def job(self, job_id: str, *, attempt: str | int | None = None) -> Job:
        """One attempt of a job: the latest, or ``attempt`` (an id, or 1-based number).

        Raises
        ------
        JobNotFound
            Listing the known jobs (or attempts) and the closest match.
        """
        valid_job_id(job_id)
        attempts = self.attempts(job_id)
        if attempts.empty:
            known = sorted(set(self.jobs()["job_id"]))
            raise JobNotFound(job_id, fs.display(self.root), known)
        ids = list(attempts["attempt_id"])  # oldest first
        if attempt is None:
            return self.attempt(job_id, ids[-1])
        if isinstance(attempt, int) and not isinstance(attempt, bool):
            if 1 <= attempt <= len(ids):
                return self.attempt(job_id, ids[attempt - 1])
        elif attempt in ids:
            return self.attempt(job_id, str(attempt))
        raise JobNotFound(str(attempt), f"job {job_id!r}", ids, what="attempt")

    def attempts(self, job_id: str) -> pd.DataFrame:
        """Every attempt of ``job_id``, oldest first, with its latest status."""
        df = latest_attempts(self.catalog(job_id=job_id), root=self.root)
        df = df.sort_values(["start_time", "attempt_id"], kind="stable")
        return df.reset_index(drop=True)

    # ------------------------------------------------------------------ jobs
    def attempt(self, job_id: str, attempt_id: str) -> Job:
        """The attempt ``attempt_id`` of ``job_id`` as this store's job class, unchecked."""
        return self._job_class(self, job_id, attempt_id)


class Dag:
    """The stage graph of a job: stages (with operator and parallelism) and edges."""

    def __init__(self, stages: pd.DataFrame, edges: list[tuple[str, str]]) -> None:
        self.stages = stages
        self.edges = edges
        downstream = {u for u, _ in edges}
        upstream = {d for _, d in edges}
        ids = list(stages["stage_id"]) if not stages.empty else []
        self.sources = [s for s in ids if s not in upstream]
        self.sinks = [s for s in ids if s not in downstream]

    def __repr__(self) -> str:
        arrows = ", ".join(f"{u}→{d}" for u, d in self.edges)
        return f"Dag({len(self.stages)} stages: {arrows or ', '.join(self.stages['stage_id'])})"

    def topological_order(self) -> list[str]:
        """Stage ids, every stage after its upstream stages (declaration order on ties)."""
        ids = list(self.stages["stage_id"])
        indeg = dict.fromkeys(ids, 0)
        for _, d in self.edges:
            indeg[d] = indeg.get(d, 0) + 1
        order, ready = [], [s for s in ids if indeg.get(s, 0) == 0]
        while ready:
            s = ready.pop(0)
            order.append(s)
            for u, d in self.edges:
                if u == s:
                    indeg[d] -= 1
                    if indeg[d] == 0:
                        ready.append(d)
        return order + [s for s in ids if s not in order]


class Job:
    """One attempt of one job, read from the store (running or archived alike).

    Get one with :meth:`Store.job` or :func:`solstice_inspect.job`.
    """

    def __init__(self, store: Store, job_id: str, attempt_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self.attempt_id = attempt_id

    def __repr__(self) -> str:  # cheap: never reads the store
        return f"Job({self.job_id!r}, attempt={self.attempt_id!r})"

    # ------------------------------------------------------------------ tables
    def _uri(self, table: str) -> str:
        return layout.table_uri(self.store.root, self.job_id, self.attempt_id, table)

    def scan(
        self,
        name: str,
        *,
        columns: list[str] | None = None,
        where: str | None = None,
        since: Any = None,
        until: Any = None,
        after_batch: int | None = None,
        known_version: int | None = None,
        after_fragment: int | None = None,
    ) -> Scan:
        """Read one table: the rows and the dataset version they came from.

        The one read every view uses: archived reads scan from the start, a live reader
        the same scan from its cursor (``after_batch``). See :meth:`table` for the
        arguments; ``known_version`` skips the read when the table has not changed, and
        ``after_fragment`` reads only fragments written since (see
        :func:`~solstice_inspect.store.scan.scan`).
        """
        if name not in SCHEMAS or name == "catalog":
            raise ValueError(f"no table {name!r}; tables: {', '.join(JOB_TABLES)}")
        schema = SCHEMAS[name]
        if columns is not None:
            unknown = [c for c in columns if c not in schema.names]
            if unknown:
                raise ValueError(
                    f"{name} has no column(s) {unknown}; columns: {', '.join(schema.names)}"
                )
        filters = [f"({where})"] if where else []
        if since is not None:
            filters.append(f"ts >= {_ts_literal(since, 'since')}")
        if until is not None:
            filters.append(f"ts < {_ts_literal(until, 'until')}")
        return scan(
            self._uri(name),
            schema,
            columns=columns,
            where=" AND ".join(filters) or None,
            after_batch=after_batch,
            known_version=known_version,
            after_fragment=after_fragment,
        )

    def version(self, name: str) -> int | None:
        """The latest version of one table's dataset (None: not written yet).

        Cheap: a live reader's "anything new?" check.
        """
        return dataset_version(self._uri(name))

    def table(
        self,
        name: str,
        *,
        columns: list[str] | None = None,
        where: str | None = None,
        since: Any = None,
        until: Any = None,
    ) -> pa.Table:
        """Read one table of this attempt as a ``pyarrow.Table``.

        Parameters
        ----------
        name
            One of the job tables (``docs/schema.md``).
        columns
            Only these columns.
        where
            A SQL filter pushed down to Lance, e.g. ``"stage_id = 'parse'"``.
        since, until
            Keep rows with ``since <= ts < until`` (datetimes or epoch seconds).

        Examples
        --------
        >>> job.table("worker_metrics", columns=["ts", "worker_id", "output_records"],
        ...           where="stage_id = 'parse'")  # doctest: +SKIP
        """
        return self.scan(name, columns=columns, where=where, since=since, until=until).table

    def to_pandas(self, name: str, **options: Any) -> pd.DataFrame:
        """:meth:`table` as pandas, sorted by time."""
        df = self.table(name, **options).to_pandas()
        # the recorder writes in time order: sort (a quarter of opening 1M rows) only when
        # late rows or a compaction left them out of order
        if "ts" in df and not df["ts"].is_monotonic_increasing:
            df = df.sort_values("ts", kind="stable").reset_index(drop=True)
        return df

    def worker_metrics(self, **options: Any) -> pd.DataFrame:
        """Cumulative counters and rates, one row per worker report."""
        return self.to_pandas("worker_metrics", **options)

    def stage_metrics(self, **options: Any) -> pd.DataFrame:
        """Per-stage totals, rates, lag and backpressure, one row per stage × window."""
        return self.to_pandas("stage_metrics", **options)

    def partition_metrics(self, **options: Any) -> pd.DataFrame:
        """Queue offsets and lag per partition."""
        return self.to_pandas("partition_metrics", **options)

    def workers(self, **options: Any) -> pd.DataFrame:
        """Worker lifecycle events: STARTED, STOPPED, FAILED, KILLED."""
        return self.to_pandas("workers", **options)

    def worker_resources(self, **options: Any) -> pd.DataFrame:
        """CPU / memory / GPU samples per worker."""
        return self.to_pandas("worker_resources", **options)

    def exceptions(self, **options: Any) -> pd.DataFrame:
        """Every exception occurrence, with its fingerprint."""
        return self.to_pandas("exceptions", **options)

    def lineage(self, **options: Any) -> pd.DataFrame:
        """One row per processed split with its parent split ids."""
        return self.to_pandas("lineage", **options)

    def checkpoints(self, **options: Any) -> pd.DataFrame:
        """Checkpoints per stage with their committed offsets."""
        return self.to_pandas("checkpoints", **options)

    def events(self, **options: Any) -> pd.DataFrame:
        """Timeline events (job status, backpressure changes, worker failures, custom)."""
        return self.to_pandas("events", **options)

    def logs(self, **options: Any) -> pd.DataFrame:
        """Log lines sent through telemetry (capped per worker)."""
        return self.to_pandas("logs", **options)

    def custom_metrics(self, **options: Any) -> pd.DataFrame:
        """User-defined metric samples."""
        return self.to_pandas("custom_metrics", **options)

    def rejects(self, **options: Any) -> pd.DataFrame:
        """Envelopes the recorder rejected, with the reason."""
        return self.to_pandas("rejects", **options)

    # ------------------------------------------------------------------ state
    def catalog_row(self) -> dict[str, Any]:
        """The newest catalog row of this attempt, with its latest heartbeat.

        Status with LOST derived, times, counts, ``heartbeat`` and
        ``heartbeat_interval_s``; a running attempt's come from its heartbeat file.
        """
        return self._catalog_row()

    def _catalog_row(self) -> dict[str, Any]:
        # a live view asks every poll: re-read the catalog only when it has a new version
        # (a start or a status change); heartbeats are in the attempt's small file
        version = dataset_version(layout.catalog_uri(self.store.root))
        cached = getattr(self, "_catalog_cache", None)
        if cached is not None and version is not None and cached[0] == version:
            row = dict(cached[1])
            if row.get("status") in ("RUNNING", "LOST"):
                beat = heartbeat.read(self.store.root, self.job_id, self.attempt_id)
                row = overlay_row(row, beat)
            return still_alive(row)
        df = self.store.attempts(self.job_id)
        row = df[df["attempt_id"] == self.attempt_id]
        if row.empty:
            raise JobNotFound(
                self.attempt_id, f"job {self.job_id!r}", list(df["attempt_id"]), what="attempt"
            )
        found = row.iloc[0].to_dict()
        self._catalog_cache = (version, found)
        return dict(found)

    def attempts(self) -> pd.DataFrame:
        """Every attempt of this job, oldest first."""
        return self.store.attempts(self.job_id)

    @property
    def status(self) -> str:
        """RUNNING, COMPLETED, FAILED, CANCELLED or LOST (re-read on every access)."""
        return str(self._catalog_row()["status"])

    def _job_rows(self) -> pd.DataFrame:
        return self.to_pandas("job")

    @property
    def info(self) -> dict[str, Any]:
        """Status, times, config, DAG and counts of this attempt."""
        row = self._catalog_row()
        job = self._job_rows()
        last = job.iloc[-1] if not job.empty else None
        config = json_map(last["config"]) if last is not None and last["config"] else {}
        error = last["error"] if last is not None and isinstance(last["error"], str) else None
        final = (
            json_map(last["final_metrics"])
            if last is not None and isinstance(last["final_metrics"], str)
            else None
        )
        duration_ms = last["duration_ms"] if last is not None else None
        return {
            "job_id": self.job_id,
            "attempt_id": self.attempt_id,
            "status": row["status"],
            "start_time": row["start_time"],
            "end_time": row["end_time"],
            "duration_s": row["duration_s"],
            "duration_ms": None if duration_ms is None or pd.isna(duration_ms) else duration_ms,
            "heartbeat": row["heartbeat"],
            "stages": row["stages"],
            "workers": row["workers"],
            "records_in": row["records_in"],
            "records_out": row["records_out"],
            "exceptions": row["exceptions"],
            "config": config,
            "dag": self.dag,
            "error": error,
            "final_metrics": final,
        }

    @property
    def dag(self) -> Dag:
        """Stages (operator type, parallelism, latest status) and upstream→downstream edges."""
        stages = self.to_pandas("stages")
        job = self._job_rows()
        edges: list[tuple[str, str]] = []
        if not job.empty and isinstance(job.iloc[-1]["dag_edges"], str):
            for up, downs in json.loads(job.iloc[-1]["dag_edges"]).items():
                edges.extend((up, d) for d in downs)
        cols = ["stage_id", "operator_type", "min_parallelism", "max_parallelism", "status"]
        if stages.empty:
            ids = list(dict.fromkeys([s for e in edges for s in e]))
            frame = pd.DataFrame({"stage_id": ids}).reindex(columns=cols)
        else:
            frame = (
                stages.groupby("stage_id", sort=False)
                .agg(
                    operator_type=("operator_type", _last_valid),
                    min_parallelism=("min_parallelism", "last"),
                    max_parallelism=("max_parallelism", "last"),
                    status=("status", "last"),
                )
                .reset_index()[cols]
            )
        return Dag(pd.DataFrame(frame), edges)


_JOB_CLASS: list[type[Job]] = [Job]


def register_job_class(cls: type[Job]) -> None:
    """Make every :class:`Store` hand out ``cls`` (a subclass of :class:`Job`).

    The public ``solstice_inspect.api`` registers its ``Job`` (with the derived views:
    stage summary, exception groups, HTML) when it is imported, so the store layer never
    imports the layers above it.
    """
    if not (isinstance(cls, type) and issubclass(cls, Job)):
        raise TypeError(f"{cls!r} is not a subclass of Job")
    _JOB_CLASS[0] = cls
