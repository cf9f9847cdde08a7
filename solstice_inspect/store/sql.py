"""SQL across every job of a store: DuckDB over the Lance datasets.

For the questions no view answers ("which stage of which job threw the most
TimeoutErrors last week?"). Each job table named in the query is a view over that table
of every attempt (``UNION ALL BY NAME``: an attempt written by an older version with
fewer columns still reads), carrying its ``job_id`` and ``attempt_id`` columns; ``jobs``
is the listing of :meth:`Store.jobs` (one row per attempt, LOST derived). Only the
tables the query names are opened, and DuckDB pushes filters and projections down into
each Lance scan.

DuckDB is an optional dependency (``pip install 'solstice_inspect[sql]'``): it is the
engine the field uses for SQL over Arrow and Lance, and nothing else here needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

from solstice_inspect.errors import InspectError, JobNotFound
from solstice_inspect.schema import JOB_TABLES, SCHEMAS
from solstice_inspect.store import layout
from solstice_inspect.store.dataset import open_dataset
from solstice_inspect.store.reader import Store

__all__ = ["TABLES", "sql"]

#: what a query can name: every job table, and ``jobs`` (the listing)
TABLES = ["jobs", *JOB_TABLES]
_NAMES = re.compile(r"\b(" + "|".join(TABLES) + r")\b", re.IGNORECASE)


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:
        raise ImportError(
            "si.sql needs duckdb: pip install 'solstice_inspect[sql]' (or duckdb)"
        ) from exc
    return duckdb


def sql(
    query: str,
    *,
    store: Store | str | None = None,
    jobs: Iterable[str] | None = None,
    latest: bool = False,
) -> pd.DataFrame:
    """Run a DuckDB SQL query over the tables of every job in a store.

    Parameters
    ----------
    query
        SQL naming any of the job tables (``worker_metrics``, ``exceptions``, …; see
        ``docs/schema.md``) and ``jobs`` (one row per attempt: status, times, counts).
    store
        A store or its URI; default: the default store.
    jobs
        Only these job ids (each must exist).
    latest
        Only the latest attempt of each job (default: every attempt).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InspectError
        The query failed; the message names the tables available.
    JobNotFound
        A job id in ``jobs`` is not in the store.

    Examples
    --------
    >>> import solstice_inspect as si
    >>> si.sql('''
    ...     select job_id, stage_id, count(*) as n from exceptions
    ...     group by all order by n desc limit 5''')           # doctest: +SKIP
    """
    duckdb = _duckdb()
    st = (
        store
        if isinstance(store, Store)
        else Store(layout.default_root() if store is None else store)
    )
    listing = st.jobs(all_attempts=True)
    if latest and not listing.empty:
        listing = listing.drop_duplicates("job_id", keep="first")  # newest first
    if jobs is not None:
        wanted = [jobs] if isinstance(jobs, str) else list(jobs)
        known = sorted(set(listing["job_id"]))
        for job_id in wanted:
            if job_id not in known:
                raise JobNotFound(job_id, st.root, known)
        listing = listing[listing["job_id"].isin(wanted)]
    used = {m.lower() for m in _NAMES.findall(query)}
    con = duckdb.connect()
    try:
        if "jobs" in used:
            con.register("jobs", listing.reset_index(drop=True))
        for table in sorted(used - {"jobs"}):
            parts = []
            for i, (job_id, attempt_id) in enumerate(zip(listing["job_id"], listing["attempt_id"])):
                ds = open_dataset(layout.table_uri(st.root, job_id, attempt_id, table))
                if ds is None:
                    continue
                name = f"__{table}_{i}"
                con.register(name, ds)
                parts.append(f"select * from {name}")
            if parts:
                con.execute(f"create view {table} as " + " union all by name ".join(parts))
            else:  # no attempt wrote it: an empty table with its columns
                con.register(table, SCHEMAS[table].empty_table())
        try:
            return con.execute(query).df()
        except duckdb.Error as exc:
            raise InspectError(
                f"SQL failed: {exc}\ntables: {', '.join(TABLES)} (see docs/schema.md)"
            ) from None
    finally:
        con.close()
