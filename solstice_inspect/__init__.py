"""solstice_inspect: look inside Solstice jobs from a notebook.

Examples
--------
>>> import solstice_inspect as si
>>> si.jobs()              # doctest: +SKIP
>>> si.job("etl_001").table("worker_metrics")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from solstice_inspect.api import Job, Store, connect
from solstice_inspect.errors import InspectError, InvalidMessage, JobNotFound, StoreError
from solstice_inspect.live import LiveJob, attach
from solstice_inspect.protocol import envelope
from solstice_inspect.recorder.session import Recording
from solstice_inspect.store import Dag

__version__ = "0.1.0"

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from solstice_inspect import charts, widgets
    from solstice_inspect.analysis.snapshot import JobSnapshot
    from solstice_inspect.archives import import_solstice
    from solstice_inspect.ray_tools import running_jobs
    from solstice_inspect.raydata import trace_ray_data
    from solstice_inspect.recorder.actor import JobRecorder
    from solstice_inspect.recorder.client import Telemetry
    from solstice_inspect.widgets import job_browser, job_monitor
    from solstice_inspect.widgets.compare import Comparison, compare
    from solstice_inspect.widgets.lineage import lineage_view
    from solstice_inspect.widgets.worker import worker_view

logging.getLogger("solstice_inspect").addHandler(logging.NullHandler())

__all__ = [
    "Comparison",
    "Dag",
    "InspectError",
    "InvalidMessage",
    "Job",
    "JobNotFound",
    "JobRecorder",
    "JobSnapshot",
    "LiveJob",
    "Recording",
    "Store",
    "StoreError",
    "Telemetry",
    "__version__",
    "attach",
    "charts",
    "compare",
    "connect",
    "envelope",
    "follow",
    "history",
    "import_solstice",
    "job",
    "job_browser",
    "job_monitor",
    "jobs",
    "lineage_view",
    "regressions",
    "report",
    "running_jobs",
    "sql",
    "trace_ray_data",
    "widgets",
    "worker_view",
]

# Ray is imported only when one of these is first used (``import solstice_inspect`` must
# stay fast and work where Ray is not installed).
_LAZY = {
    "JobRecorder": "solstice_inspect.recorder.actor",
    "Telemetry": "solstice_inspect.recorder.client",
    "running_jobs": "solstice_inspect.ray_tools",
    # the widgets load on first use too (importing anywidget/ipywidgets takes ~0.5 s)
    "job_monitor": "solstice_inspect.widgets",
    "job_browser": "solstice_inspect.widgets",
    "lineage_view": "solstice_inspect.widgets.lineage",
    "worker_view": "solstice_inspect.widgets.worker",
    "widgets": "solstice_inspect.widgets",
    "charts": "solstice_inspect.charts",
    "JobSnapshot": "solstice_inspect.analysis.snapshot",
    "compare": "solstice_inspect.widgets",
    "Comparison": "solstice_inspect.widgets",
    "import_solstice": "solstice_inspect.archives",
    "trace_ray_data": "solstice_inspect.raydata",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'solstice_inspect' has no attribute {name!r}")
    import importlib

    imported = importlib.import_module(module)
    value = imported if module.endswith(f".{name}") else getattr(imported, name)
    globals()[name] = value
    return value


# The package solstice_inspect.report is imported here, before the function ``report``
# below is defined: importing a submodule sets it as an attribute of its parent package
# the first time only, so the function keeps the name ``si.report`` for good.
import solstice_inspect.report  # noqa: E402, F401

# the same for ``si.follow``: a function of the package solstice_inspect.follow (which
# imports no Kafka client until it runs), bound after its package was imported
from solstice_inspect.follow import follow  # noqa: E402


def report(
    job: Job | str | Comparison,
    *,
    attempt: str | int | None = None,
    store: Store | str | None = None,
    timeline: bool = True,
) -> Any:
    """A self-contained, offline HTML report of a job or a comparison: ``.save(path)``.

    It is also shown inline when it is a cell's value.

    Header, DAG, stage table, charts, timeline, exception groups, checkpoints, failures
    and configuration, in one file that loads nothing from anywhere.

    Parameters
    ----------
    job
        A :class:`Job`, a job id (its latest attempt, or ``attempt``), or a
        :class:`Comparison`.
    timeline
        Draw the worker timeline (an SVG of up to 200 worker lanes).

    Examples
    --------
    >>> si.report("etl_001").save("etl_001.html")  # doctest: +SKIP
    PosixPath('etl_001.html')
    """
    from solstice_inspect.report.document import report as _report

    if isinstance(job, str):
        job = _store(store).job(job, attempt=attempt)
    return _report(job, timeline=timeline)


def sql(
    query: str,
    *,
    store: Store | str | None = None,
    jobs: Any = None,
    latest: bool = False,
) -> Any:
    """A DuckDB SQL query over every job's tables (``job_id``/``attempt_id`` columns).

    See :func:`solstice_inspect.store.sql.sql`; needs ``pip install
    'solstice_inspect[sql]'``.

    Examples
    --------
    >>> si.sql("select job_id, count(*) from exceptions group by job_id")  # doctest: +SKIP
    """
    from solstice_inspect.store.sql import sql as _sql

    return _sql(query, store=_store(store), jobs=jobs, latest=latest)


def jobs(*, all_attempts: bool = False, store: Store | str | None = None) -> Any:
    """Every job in the (default) store, latest attempt first; see :meth:`Store.jobs`.

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> si.jobs(store=tempfile.mkdtemp()).empty
    True
    """
    return _store(store).jobs(all_attempts=all_attempts)


def job(job_id: str, *, attempt: str | int | None = None, store: Store | str | None = None) -> Job:
    """One job's latest attempt (or ``attempt``) in the (default) store; see :meth:`Store.job`."""
    return _store(store).job(job_id, attempt=attempt)


def history(job_id: str, *, store: Store | str | None = None) -> Any:
    """One row per run (attempt) of ``job_id``, oldest first: a pandas DataFrame.

    Columns: attempt_id, run (1, 2, …), status, start, duration_s, records_in,
    records_out, exceptions, then per stage ``rate:<stage>`` (mean output rate, rec/s; a
    sink that reports no output: what it wrote), ``share:<stage>`` (its share of the
    processing time of all stages), ``selectivity:<stage>`` (records out / in) and
    ``exceptions:<stage>``; NaN where a run lacks the stage.

    Raises
    ------
    JobNotFound
        No job ``job_id``, naming the closest known one.

    Examples
    --------
    >>> import solstice_inspect as si
    >>> si.history("etl_001")[["run", "status", "rate:parse"]]  # doctest: +SKIP
       run     status  rate:parse
    0    1  COMPLETED       101.2
    1    2     FAILED        64.0
    """
    from solstice_inspect.analysis.history import history as _history

    return _history(_store(store), job_id)


def regressions(
    job: Job | str | tuple[str, str | int],
    *,
    store: Store | str | None = None,
    min_runs: int = 5,
    mad_k: float = 3.0,
    min_change: float = 0.10,
) -> Any:
    """What is unusual about one run, against the earlier completed runs of its job id.

    A row per stage figure (output rate, share of processing time, selectivity,
    exceptions) outside median ± ``mad_k`` × MAD of at least ``min_runs`` earlier runs
    that also moved ``min_change`` (10 %) or more from their median, with a sentence
    (``message``); ``df.attrs["note"]`` says what was compared — or, with fewer earlier
    runs, why nothing is flagged. See
    :func:`solstice_inspect.analysis.regressions.find_regressions`.

    Parameters
    ----------
    job
        A :class:`Job`, a job id (its latest attempt) or ``(job_id, attempt)``.

    Examples
    --------
    >>> import solstice_inspect as si
    >>> si.regressions("etl_001")["message"].tolist()  # doctest: +SKIP
    ['parse 40 % slower than the median of 6 runs (60 vs 100 rec/s)']
    """
    from solstice_inspect.analysis.history import regressions as _regressions

    st = None if isinstance(job, Job) else _store(store)
    return _regressions(st, job, min_runs=min_runs, mad_k=mad_k, min_change=min_change)


def _store(store: Store | str | None) -> Store:
    return store if isinstance(store, Store) else connect(store)
