"""What became of each split (ok, failed, retried) and the filters of ``Job.splits``.

Pure: Arrow tables of the stored lineage and exception rows in, DataFrames out.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from solstice_inspect.analysis.lineage import (
    _TS,
    DUPLICATE,
    SPLIT_SCHEMA,
    SPLIT_STATUSES,
    LineageGraph,
    _take,
    _take_rows,
    pc,
)
from solstice_inspect.analysis.query import id_list, in_window, sql_in


# ------------------------------------------------------------------ split status
def split_status(
    rows: pa.Table,
    exceptions: pa.Table,
    *,
    siblings: pa.Table | None = None,
    failed: bool = True,
) -> pd.DataFrame:
    """One row per processed split, with what became of it.

    Parameters
    ----------
    rows
        The lineage rows to describe (the columns of :data:`TRACE_COLUMNS`).
    exceptions
        Exception rows (``ts``, ``stage_id``, ``worker_id``, ``split_id``,
        ``fingerprint``) that may name these splits.
    siblings
        Every lineage row of the same stages (same columns), when ``rows`` is a filtered
        part of them: whether a split was retried depends on its other processings.
        Default: ``rows``.
    failed
        Add a row for each split that an exception names and no processing completed.

    Returns
    -------
    pandas.DataFrame
        :data:`SPLIT_COLUMNS`, by end time (ties in storage order). ``start_time`` =
        ``end_time`` (the row's ``ts``) − ``duration_s`` (its ``processing_time``).

    Notes
    -----
    An exception *names* the processing of split ``X`` by stage ``S`` when its
    ``split_id`` is ``X`` or one of ``X``'s parents (Solstice workers report either the
    split they make or the one they read) and its ``stage_id`` is ``S`` (an exception
    without a stage names ``X`` only by its own id).

    ``status`` is

    - **retried** — the split was processed before by the same stage: this is not the
      first of its processings in time order (ties: a ``DUPLICATE`` row after the
      other, then by worker id). The recorder stores a redelivered split as
      ``DUPLICATE`` by arrival order, so a ``DUPLICATE`` row is a retry unless it is
      in fact the earliest processing (it arrived late: the later one is the retry).
      Or: an exception from *another* worker (or from none) named it at or before
      this processing ended — a worker failed on it and this one redid it;
    - **failed** — an exception names the split and no processing of it completed: the
      row is the failure (``end_time`` = the last exception's time, worker = its
      worker; start, duration, parents and records unknown);
    - **ok** — otherwise (an exception from the same worker that then completed the
      split, e.g. a skipped bad record, leaves it ok, with its fingerprint).

    ``exception_fingerprint``: of the last exception naming the split at or before this
    processing ended, else of the first after; None when none names it.

    Only the rows that share a split id with a retry or an exception are compared in
    pandas; the passes over every row are vectorised Arrow kernels.

    Examples
    --------
    >>> import pyarrow as pa
    >>> ts = pa.array([10, 20], pa.timestamp("s", tz="UTC"))
    >>> rows = pa.table({"ts": ts, "split_id": ["m_a", "m_a"],
    ...     "parent_split_ids": [["a"], ["a"]], "stage_id": ["m", "m"],
    ...     "worker_id": ["w1", "w2"], "input_records": [5, 5], "output_records": [5, 5],
    ...     "processing_time": [1.0, 1.0], "status": ["PROCESSED", "DUPLICATE"]})
    >>> exc = pa.table({"ts": pa.array([5, 30], pa.timestamp("s", tz="UTC")),
    ...     "stage_id": ["m", "m"], "worker_id": ["w0", "w9"], "split_id": ["a", "b"],
    ...     "fingerprint": ["f1", "f2"]})
    >>> split_status(rows, exc)[["split_id", "worker_id", "status"]].values.tolist()
    [['m_a', 'w1', 'retried'], ['m_a', 'w2', 'retried'], ['b', 'w9', 'failed']]
    """
    sib = rows if siblings is None else siblings
    exc_t = exceptions.filter(pc.is_valid(exceptions.column("split_id")))
    # (typed Any: pandas' stubs cannot follow these frames through merges)
    exc: Any = exc_t.to_pandas()
    exc["ts"] = _micros(exc_t.column("ts"))
    # a DUPLICATE row is a retry, unless it is the earliest processing of its split: it
    # arrived late, and the recorder marked it by arrival; time order decides then
    retried = np.asarray(pc.equal(rows.column("status"), DUPLICATE).fill_null(False)).copy()

    # processed before by the same stage: only splits with two rows or more are compared
    # (one hash pass over the split ids; the stage is matched on the few repeated ones)
    counts = pc.value_counts(sib.column("split_id"))
    multi = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(multi):
        first = _frame(sib, _where_in(sib.column("split_id"), multi))
        first["dup"] = first["status"] == DUPLICATE
        first["worker_id"] = first["worker_id"].fillna("")
        first = first.sort_values(["ts", "dup", "worker_id"], kind="stable")
        first = first.drop_duplicates(["stage_id", "split_id"])
        at = _where_in(rows.column("split_id"), multi)
        mine = _frame(rows, at)
        mine["dup"] = mine["status"] == DUPLICATE
        mine["worker_id"] = mine["worker_id"].fillna("")
        both = mine.reset_index(names="i").merge(
            first, on=["stage_id", "split_id"], how="inner", suffixes=("", "_1")
        )
        later = (
            (both["ts"] != both["ts_1"])
            | (both["dup"] != both["dup_1"])
            | (both["worker_id"] != both["worker_id_1"])
        ).to_numpy()
        pos = at[both["i"].to_numpy()]
        retried[pos] = later

    fingerprint = np.full(rows.num_rows, None, dtype=object)
    lone = exc
    if len(exc):
        # the processings (of sib) each exception names, then every row of their splits
        ids = pa.array(exc["split_id"].unique(), pa.string())
        graph = LineageGraph(sib)
        by_parent = graph.edge_row[_where_in(graph.parent, ids)]
        near = np.union1d(_where_in(sib.column("split_id"), ids), by_parent)
        sub: Any = _take_rows(sib, near, ["stage_id", "split_id", "parent_split_ids"]).to_pandas()
        pairs = _named(sub, exc)
        lone = exc.drop(index=pairs["exc"].unique())
        named = pairs.merge(sub[["stage_id", "split_id"]].reset_index(names="sib"), on="sib")
        named = named.drop(columns="sib").drop_duplicates(["stage_id", "split_id", "exc"])
        about = exc[["ts", "worker_id", "fingerprint"]].reset_index(names="exc")
        about = about.rename(columns={"ts": "ts_exc", "worker_id": "worker_exc"})
        named = named.merge(about, on="exc")
        at = _where_in(rows.column("split_id"), pa.array(named["split_id"].unique(), pa.string()))
        mine = _frame(rows, at).reset_index(names="i")
        joined = mine[["i", "stage_id", "split_id", "ts", "worker_id"]].merge(
            named, on=["stage_id", "split_id"]
        )
        if len(joined):
            before = (joined["ts_exc"] <= joined["ts"]).to_numpy()
            other = joined["worker_exc"].isna() | (joined["worker_exc"] != joined["worker_id"])
            retried[at[joined.loc[before & other.to_numpy(), "i"].unique()]] = True
            joined["_after"] = ~before
            # the latest exception before the processing ended, else the first after
            joined["_k"] = np.where(before, -joined["ts_exc"], joined["ts_exc"])
            pick = joined.sort_values(["i", "_after", "_k"], kind="stable").drop_duplicates("i")
            fingerprint[at[pick["i"].to_numpy()]] = pick["fingerprint"].to_numpy()

    end = _micros(rows.column("ts"))
    duration = pc.cast(rows.column("processing_time"), pa.float64())
    took = np.round(np.asarray(duration.fill_null(0.0)) * 1e6).astype(np.int64)
    start = pa.array(end - took, mask=np.asarray(duration.is_null())).cast(_TS)
    out = pa.table(
        {
            "split_id": rows.column("split_id"),
            "stage_id": rows.column("stage_id"),
            "worker_id": rows.column("worker_id"),
            "parent_split_ids": rows.column("parent_split_ids"),
            "start_time": start,
            "end_time": pa.array(end).cast(_TS),
            "duration_s": duration,
            "input_records": rows.column("input_records"),
            "output_records": rows.column("output_records"),
            "status": pa.array(np.where(retried, "retried", "ok"), pa.string()),
            "exception_fingerprint": pa.array(fingerprint, pa.string()),
        },
        schema=SPLIT_SCHEMA,
    )
    if failed and len(lone):
        out = pa.concat_tables([out, _failed(lone)])
    # by end time (ties in storage order); rows read in time order need no reordering
    ends = _micros(out.column("end_time"))
    if len(ends) > 1 and not bool((ends[1:] >= ends[:-1]).all()):
        out = out.take(pa.array(np.argsort(ends, kind="stable"), pa.int64()))
    # nullable integers stay integers (a failed split has no record counts)
    return out.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def _micros(column: Any) -> np.ndarray:
    """Timestamps as int64 microseconds (comparisons without datetime objects)."""
    return np.asarray(pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64()))


def _where_in(column: Any, values: Any) -> np.ndarray:
    """Positions of ``column`` whose value is in ``values`` (one vectorised pass)."""
    return np.flatnonzero(np.asarray(pc.is_in(column, value_set=values).fill_null(False)))


def _frame(table: pa.Table, at: np.ndarray) -> Any:
    """These rows' keys as pandas: stage_id, split_id, ts (µs), worker_id, status."""
    df = _take_rows(table, at, ["stage_id", "split_id", "worker_id", "status"]).to_pandas()
    df["ts"] = _micros(_take(table.column("ts"), at))
    return df


def _named(sib: Any, exc: Any) -> Any:
    """Pairs (exc, sib): exception ``exc`` names processing ``sib`` (see
    :func:`split_status`)."""
    empty = pd.DataFrame({"exc": pd.Series([], dtype="int64"), "sib": pd.Series([], dtype="int64")})
    if exc.empty or sib.empty:
        return empty
    own = pd.DataFrame(
        {"sib": np.arange(len(sib)), "stage_id": sib["stage_id"], "key": sib["split_id"]}
    )
    # explode takes the stored arrays as they are (None and [] give no row): no Python
    # function per split (100,000 splits: ~0.7 s less)
    par = sib["parent_split_ids"]
    exploded = pd.DataFrame({"sib": np.arange(len(sib)), "stage_id": sib["stage_id"], "key": par})
    exploded = exploded.explode("key").dropna(subset=["key"])
    keys = pd.concat([own, exploded], ignore_index=True)
    e = pd.DataFrame(
        {"exc": np.arange(len(exc)), "stage_id": exc["stage_id"], "key": exc["split_id"]}
    )
    staged = e[e["stage_id"].notna()].merge(keys, on=["stage_id", "key"])
    bare = e[e["stage_id"].isna()].drop(columns="stage_id")
    bare = bare.merge(own.drop(columns="stage_id"), on="key")
    found = pd.concat([staged[["exc", "sib"]], bare[["exc", "sib"]]], ignore_index=True)
    return found.drop_duplicates() if len(found) else empty


def _failed(lone: Any) -> pa.Table:
    """One row per (stage, split) that exceptions name and no processing completed."""
    last = lone.sort_values("ts", kind="stable").drop_duplicates(
        ["stage_id", "split_id"], keep="last"
    )
    n = len(last)

    def strings(name: str) -> pa.Array:
        values = last[name].astype(object)
        return pa.array(values.where(values.notna(), None).tolist(), pa.string())

    return pa.table(
        {
            "split_id": strings("split_id"),
            "stage_id": strings("stage_id"),
            "worker_id": strings("worker_id"),
            "parent_split_ids": pa.nulls(n, pa.list_(pa.string())),
            "start_time": pa.nulls(n, _TS),
            "end_time": pa.array(last["ts"].to_numpy(dtype=np.int64)).cast(_TS),
            "duration_s": pa.nulls(n, pa.float64()),
            "input_records": pa.nulls(n, pa.int64()),
            "output_records": pa.nulls(n, pa.int64()),
            "status": pa.array(["failed"] * n, pa.string()),
            "exception_fingerprint": strings("fingerprint"),
        },
        schema=SPLIT_SCHEMA,
    )


def lineage_filter(
    stages: list[str] | None,
    workers: list[str] | None,
    min_duration_s: float | None,
    where: str | None,
) -> tuple[str | None, str | None]:
    """The SQL filters of a splits query: (all of them, the stage part alone).

    Examples
    --------
    >>> cond, by_stage = lineage_filter(["parse"], None, 1.5, "output_records = 0")
    >>> cond
    "stage_id IN ('parse') AND processing_time >= 1.5 AND (output_records = 0)"
    >>> by_stage
    "stage_id IN ('parse')"
    """
    if min_duration_s is not None and (
        isinstance(min_duration_s, bool) or not isinstance(min_duration_s, (int, float))
    ):
        raise TypeError(f"min_duration_s must be a number of seconds, not {min_duration_s!r}")
    by_stage = sql_in("stage_id", stages) if stages else None
    parts = [by_stage, sql_in("worker_id", workers) if workers else None]
    if min_duration_s is not None:
        parts.append(f"processing_time >= {float(min_duration_s)!r}")
    parts.append(f"({where})" if where else None)
    return " AND ".join(p for p in parts if p) or None, by_stage


def filter_splits(
    splits: pd.DataFrame,
    *,
    stages: list[str] | None = None,
    workers: list[str] | None = None,
    statuses: list[str] | None = None,
    min_duration_s: float | None = None,
    since: Any = None,
    until: Any = None,
    failures: set[tuple[Any, Any]] | None = None,
) -> pd.DataFrame:
    """The rows of :func:`split_status` a splits query keeps.

    Processed splits were filtered when they were read (the same filters, pushed down);
    failed splits have no lineage row, so they are filtered here: by stage, worker and
    end time; left out by ``min_duration_s`` (no duration); and, when the query had a
    ``where``, kept only if their (stage, split) is in ``failures`` (the exceptions that
    pass it). Then ``statuses``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"stage_id": ["a", "b"], "split_id": ["x", "y"],
    ...     "worker_id": ["w0", "w1"], "status": ["ok", "failed"],
    ...     "end_time": pd.to_datetime([1, 2], unit="s", utc=True)})
    >>> filter_splits(df, workers=["w0"])["split_id"].tolist()
    ['x']
    >>> filter_splits(df, failures={("b", "y")}, statuses=["failed"])["split_id"].tolist()
    ['y']
    """
    df: Any = splits
    failed = df["status"] == "failed"
    keep = ~failed | (min_duration_s is None)
    if stages:
        keep &= df["stage_id"].isin(stages)
    if workers:
        keep &= df["worker_id"].isin(workers)
    keep &= ~failed | in_window(df["end_time"], since, until)
    if failures is not None:
        named = [k in failures for k in zip(df["stage_id"], df["split_id"])]
        keep &= ~failed | pd.Series(named, index=df.index, dtype=bool)
    if statuses:
        keep &= df["status"].isin(statuses)
    return df[keep].reset_index(drop=True)


def check_statuses(value: str | Iterable[str] | None) -> list[str] | None:
    """Split statuses asked for, checked against :data:`SPLIT_STATUSES`.

    Examples
    --------
    >>> check_statuses("failed")
    ['failed']
    >>> check_statuses("retry")
    Traceback (most recent call last):
    ...
    ValueError: no split status 'retry'; statuses: ok, failed, retried (did you mean 'retried'?)
    """
    values = id_list(value, "status")
    for v in values or ():
        if v not in SPLIT_STATUSES:
            close = difflib.get_close_matches(v, SPLIT_STATUSES, n=1, cutoff=0.0)
            raise ValueError(
                f"no split status {v!r}; statuses: {', '.join(SPLIT_STATUSES)}"
                + (f" (did you mean {close[0]!r}?)" if close else "")
            )
    return values
