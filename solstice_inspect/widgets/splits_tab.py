"""The monitor's Splits tab: a query builder over exactly the arguments of
:meth:`Job.splits <solstice_inspect.api.job.Job.splits>`.

The front end sends the query as typed (``{"type": "splits", "query": {...}}``); the
kernel checks it (:func:`query_kwargs`), runs ``job.splits(**kwargs)`` and serves the
rows as the paged ``splits`` table. ``splits`` (a small synced dict) carries the stage
list for the stage control, the query, the equivalent Python call to copy
(:func:`python_call`) and the error of a query that could not run, shown inline in the tab
while the previous rows stay.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as _pc

from solstice_inspect.analysis.query import as_utc
from solstice_inspect.errors import InspectError

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Job

#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

#: what a query can raise on bad input (shown to the user in the tab, not a crash)
QUERY_ERRORS = (InspectError, ValueError, TypeError, KeyError, OSError)

__all__ = ["SPLIT_ARGS", "SplitsQuery", "python_call", "query_kwargs", "splits_rows"]

#: the arguments of ``Job.splits``, in its order: the tab has one control per argument
SPLIT_ARGS = ("stage", "worker", "status", "min_duration_s", "since", "until", "where")
#: ``stage``, ``worker`` and ``status`` take one id or a list: comma-separated in the tab
LIST_ARGS = ("stage", "worker", "status")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def query_kwargs(query: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``job.splits`` for a query as typed in the tab.

    Empty fields are left out; ``stage``, ``worker`` and ``status`` take comma-separated
    ids (one id stays a string); ``min_duration_s`` is a number; ``since`` / ``until``
    are epoch seconds or a date-time text (kept as typed, checked here).

    Raises
    ------
    TypeError
        A field that ``Job.splits`` has no argument for, naming those it has.
    ValueError
        A field that is not what its argument takes, saying what is.

    Examples
    --------
    >>> query_kwargs({"stage": "parse, enrich", "min_duration_s": "1.5", "where": ""})
    {'stage': ['parse', 'enrich'], 'min_duration_s': 1.5}
    >>> query_kwargs({"since": "1764331200", "status": "failed"})
    {'status': 'failed', 'since': 1764331200.0}
    >>> query_kwargs({"min_duration_s": "slow"})
    Traceback (most recent call last):
    ...
    ValueError: min_duration_s: 'slow' is not a number of seconds
    """
    unknown = sorted(set(query) - set(SPLIT_ARGS))
    if unknown:
        raise TypeError(
            f"job.splits() has no argument {unknown[0]!r}; arguments: {', '.join(SPLIT_ARGS)}"
        )
    out: dict[str, Any] = {}
    for name in SPLIT_ARGS:
        text = _text(query.get(name))
        if not text:
            continue
        if name in LIST_ARGS:
            ids = list(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
            if ids:
                out[name] = ids[0] if len(ids) == 1 else ids
        elif name == "min_duration_s":
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"min_duration_s: {text!r} is not a number of seconds") from None
            if not math.isfinite(value):
                raise ValueError(f"min_duration_s: {text!r} is not a number of seconds")
            out[name] = value
        elif name in ("since", "until"):
            try:
                value = float(text)
            except ValueError:
                as_utc(text, name)  # raises, naming what a time is
                out[name] = text
            else:
                out[name] = value
        else:
            out[name] = text
    return out


def python_call(
    job_id: str, attempt_id: str, kwargs: dict[str, Any], *, store: str | None = None
) -> str:
    r"""The Python call that gives the same rows, to copy into a cell.

    Every value is written as a Python literal (``repr``): a quote or a backslash in a
    ``where`` stays inside its string. ``store``: the store's root, when it is not the
    default one.

    Examples
    --------
    >>> print(python_call("etl", "a1", {"stage": "parse", "where": "worker_id = 'w\"1'"}))
    si.job('etl', attempt='a1').splits(stage='parse', where='worker_id = \'w"1\'')
    >>> python_call("etl", "a1", {}, store="/data/store")
    "si.connect('/data/store').job('etl', attempt='a1').splits()"
    """
    args = ", ".join(f"{k}={kwargs[k]!r}" for k in SPLIT_ARGS if k in kwargs)
    opener = f"si.connect({store!r}).job" if store else "si.job"
    return f"{opener}({job_id!r}, attempt={attempt_id!r}).splits({args})"


def splits_rows(frame: Any) -> pa.Table:
    """``job.splits()`` rows as the tab serves them: parents joined into one text per row.

    (Vectorised here: the pager's own list → text conversion goes row by row in Python,
    a second on a million splits.)
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if "parent_split_ids" in table.column_names:
        i = table.column_names.index("parent_split_ids")
        col = table.column(i)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            joined = pc.binary_join(col.cast(pa.list_(pa.string())), ", ")
            table = table.set_column(i, "parent_split_ids", joined)
    return table


def _root(job: Job) -> str | None:
    """The job's store root as the user would pass it, or None for the default store."""
    from solstice_inspect.store.layout import default_root

    root = str(job.store.root)
    return None if root == default_root() else root


class SplitsQuery:
    """The Splits tab's state: the last query that ran, its rows, its call and error.

    Parameters
    ----------
    job
        A callable returning the job to query (the monitor's attempt may change).
    """

    def __init__(self, job: Any) -> None:
        self._job = job
        self.kwargs: dict[str, Any] = {}
        self.query: dict[str, str] = {}
        self.error = ""
        self.took_s: float | None = None
        self.rows: int | None = None

    def api_job(self) -> Any:
        """The job as :class:`solstice_inspect.api.job.Job` (which has ``splits``)."""
        from solstice_inspect.widgets.monitor_tabs import api_job

        return api_job(self._job())

    def run(self, query: dict[str, Any]) -> pa.Table | None:
        """Run a query from the tab (fields as typed); its rows, or None when it could not
        run: then :attr:`error` says why, and the previous query (and the call shown)
        stays, with its rows.
        """
        try:
            clean = {k: _text(query.get(k)) for k in query}
            kwargs = query_kwargs(clean)
            started = time.perf_counter()
            table = splits_rows(self.api_job().splits(**kwargs))
        except QUERY_ERRORS as exc:  # a bad where, an unknown stage: said in the tab
            self.error = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            return None
        self.took_s = round(time.perf_counter() - started, 3)
        self.rows = table.num_rows
        self.query = {k: v for k, v in clean.items() if v}
        self.kwargs = kwargs
        self.error = ""
        return table

    def state(self, stages: list[str]) -> dict[str, Any]:
        """The synced ``splits`` dict (small: ids, texts, counts)."""
        job: Job = self._job()
        return {
            "args": list(SPLIT_ARGS),
            "stages": list(stages),
            "statuses": ["ok", "failed", "retried"],
            "query": dict(self.query),
            "call": python_call(job.job_id, job.attempt_id, self.kwargs, store=_root(job)),
            "error": self.error,
            "rows": self.rows,
            "took_s": self.took_s,
        }
