"""The public :class:`Store` and :class:`Job`: the store's readers plus derived views.

What is derived: the job model, stage summary, exception groups, HTML, live worker
debugging.

They live above the analysis layer, so that the store itself stays data-only and imports
go one way (DESIGN §6): ``store`` knows nothing of ``analysis``, ``report`` or Ray.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from solstice_inspect.analysis.snapshot import SNAPSHOT_COLUMNS, JobSnapshot
from solstice_inspect.live import LiveJob
from solstice_inspect.recorder.session import Recording
from solstice_inspect.store import layout
from solstice_inspect.store import reader as _reader

__all__ = ["Job", "Store", "connect", "read_snapshot"]


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


class Job(_reader.Job):
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
        return self.snapshot().exception_groups()

    def stage_summary(self) -> pd.DataFrame:
        """Per stage: totals, mean rates, workers alive, backpressure level, skew."""
        return self.snapshot().stage_summary()

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


def connect(uri: Any = None) -> Store:
    """Open a store: a local directory or an ``s3://`` / ``gs://`` / ``az://`` URI.

    Parameters
    ----------
    uri
        Default: ``$SOLSTICE_INSPECT_STORE``, else ``./.solstice_inspect``. Nothing is
        created until a recording writes.

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> si.connect(tempfile.mkdtemp()).jobs().columns[:3].tolist()
    ['job_id', 'attempt_id', 'status']
    """
    return Store(layout.default_root() if uri is None else uri)
