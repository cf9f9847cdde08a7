"""The figures of each run of a job, side by side: what ``si.history``, ``si.regressions``
and ``si.compare`` are built on.

A run's per-stage figures come from a *narrow* read of three of its tables — the
``stage_metrics`` windows (a few rows per stage and second), the processing time of each
worker (three columns of ``worker_metrics``) and the stage of each exception (one column,
read only when the run had any) — not from a full :class:`JobSnapshot`, which also folds
every worker report, resource sample and exception text. The figures themselves are
those of the job monitor's stage table (what its ``StageWindows`` fold gives, computed
for every stage at once).

The reads go through the ``Job`` / ``Store`` objects the caller passes in (their
``table`` and ``attempts`` methods): this module opens nothing itself.

Examples
--------
>>> import pyarrow as pa
>>> ts = pa.array([0, 10_000_000], pa.timestamp("us", tz="UTC"))
>>> sm = pa.table({"ts": ts, "stage_id": ["parse", "parse"], "workers_alive": [1, 1],
...     "input_records": [0, 1000], "output_records": [0, 800], "input_rate": [None, 100.0],
...     "output_rate": [None, 80.0], "queue_lag": [0, 0], "backpressure_active": [False, False],
...     "backpressure_ratio": [None, 0.0], "skew_ratio": [None, None]})
>>> stage_figures(sm)[["stage_id", "output_rate", "selectivity"]]
  stage_id  output_rate  selectivity
0    parse         80.0          0.8
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as _pc

from solstice_inspect.analysis.layout import layers
from solstice_inspect.analysis.regressions import find_regressions
from solstice_inspect.errors import JobNotFound
from solstice_inspect.protocol import valid_job_id
from solstice_inspect.semantics import sources_and_sinks

#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

__all__ = [
    "FIGURE_COLUMNS",
    "HISTORY_METRICS",
    "RunData",
    "history",
    "history_frame",
    "read_run",
    "regressions",
    "resolve_runs",
    "stage_figures",
    "stage_order",
]

#: one row per stage of a run (:func:`stage_figures`)
FIGURE_COLUMNS = [
    "stage_id", "input_records", "output_records", "selectivity", "input_rate",
    "output_rate", "busy_s", "duration_share", "exceptions", "backpressure_ratio",
    "skew_ratio", "workers_alive",
]  # fmt: skip
#: the per-stage columns of a history, ``<prefix>:<stage>``: prefix -> figure column
HISTORY_METRICS = {
    "rate": "output_rate",
    "share": "duration_share",
    "selectivity": "selectivity",
    "exceptions": "exceptions",
}
#: the columns of a history before the per-stage ones
HISTORY_COLUMNS = [
    "attempt_id", "run", "status", "start", "duration_s", "records_in", "records_out",
    "exceptions",
]  # fmt: skip
_PROCESSING = ["worker_id", "stage_id", "processing_time"]
#: the ``stage_metrics`` columns the figures need (charts need the rates too: ``full``)
_WINDOWS = [
    "ts", "stage_id", "input_records", "output_records", "backpressure_active",
    "backpressure_ratio", "skew_ratio", "workers_alive",
]  # fmt: skip
#: runs read at once (Lance releases the GIL while it reads; on object storage each read
#: is a few round trips, which overlap)
_THREADS = 8


class _Job(Protocol):
    job_id: str
    attempt_id: str

    def table(self, name: str, *, columns: list[str] | None = None) -> pa.Table: ...


class _Store(Protocol):
    root: str

    def attempts(self, job_id: str) -> pd.DataFrame: ...

    def attempt(self, job_id: str, attempt_id: str) -> Any: ...

    def jobs(self) -> pd.DataFrame: ...

    def job(self, job_id: str, *, attempt: str | int | None = None) -> Any: ...


@dataclass
class RunData:
    """What one read of a run brought: its per-stage figures and, when asked for, its
    configuration, DAG edges and ``stage_metrics`` windows (for charts)."""

    job_id: str
    attempt_id: str
    figures: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    stage_metrics: pd.DataFrame | None = None
    stages: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ pure figures
def _busy(processing: pa.Table | None) -> dict[str, float]:
    """Seconds each stage's workers spent processing (their counters are cumulative: the
    largest value of a worker is its last)."""
    if processing is None or processing.num_rows == 0:
        return {}
    t = processing.select(_PROCESSING)
    t = t.filter(pc.and_(pc.is_valid(t["stage_id"]), pc.is_valid(t["processing_time"])))
    if t.num_rows == 0:
        return {}
    workers, wnames = pd.factorize(t["worker_id"].to_numpy(zero_copy_only=False))
    latest = np.full(len(wnames), -np.inf)
    np.maximum.at(latest, workers, t["processing_time"].to_numpy(zero_copy_only=False))
    stage_of = np.empty(len(wnames), dtype=object)
    stage_of[workers] = t["stage_id"].to_numpy(zero_copy_only=False)  # a worker's last stage
    out: dict[str, float] = {}
    for stage, value in zip(stage_of.tolist(), latest.tolist()):
        out[str(stage)] = out.get(str(stage), 0.0) + float(value)
    return out


def _exception_counts(exceptions: pa.Table | None) -> dict[str, int]:
    if exceptions is None or exceptions.num_rows == 0:
        return {}
    counts = pc.value_counts(exceptions["stage_id"]).to_pylist()
    return {str(c["values"]): int(c["counts"]) for c in counts if c["values"] is not None}


def _floats(table: pa.Table, column: str) -> np.ndarray:
    """A column as float64, NaN for nulls."""
    return table[column].cast(pa.float64()).to_numpy(zero_copy_only=False)


def _window_figures(stage_metrics: pa.Table | pd.DataFrame, sinks: list[str]) -> list[dict]:
    """Per stage, the figures :class:`StageWindows` gives the monitor's stage table,
    computed for every stage at once (a run's history row costs ~1 ms, not ~25)."""
    t = stage_metrics
    if isinstance(t, pd.DataFrame):
        t = pa.Table.from_pandas(t, preserve_index=False)
    if t.num_rows == 0:
        return []
    us = t["ts"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    by_time = np.argsort(us, kind="stable")
    ids = t["stage_id"].to_numpy(zero_copy_only=False)[by_time]
    codes, names = pd.factorize(ids)  # stages in order of first report
    idx = by_time[np.argsort(codes, kind="stable")]
    c, u = np.sort(codes, kind="stable"), us[idx]
    inr, outr = _floats(t, "input_records")[idx], _floats(t, "output_records")[idx]
    ratio, skew = _floats(t, "backpressure_ratio")[idx], _floats(t, "skew_ratio")[idx]
    active = t["backpressure_active"].fill_null(False).to_numpy(zero_copy_only=False)[idx]
    workers = _floats(t, "workers_alive")[idx]
    n, k = len(c), len(names)
    same = np.zeros(n, dtype=bool)
    same[1:] = c[1:] == c[:-1]
    first = np.flatnonzero(~same)
    last = np.r_[first[1:], n] - 1
    dt = np.zeros(n, dtype=np.int64)
    dt[1:] = u[1:] - u[:-1]
    ok = same & (dt > 0) & ~np.isnan(ratio)
    num = np.bincount(c[ok], weights=ratio[ok] * dt[ok], minlength=k)
    den = np.bincount(c[ok], weights=dt[ok].astype(float), minlength=k)
    span = (u[last] - u[first]) / 1e6
    rows = []
    for i, sid in enumerate(names):
        f, z = first[i], last[i]
        d_in, d_out = inr[z] - inr[f], outr[z] - outr[f]
        in_rate = max(d_in / span[i], 0.0) if span[i] > 0 else np.nan
        out_rate = max(d_out / span[i], 0.0) if span[i] > 0 else np.nan
        if sid in sinks and not outr[z]:  # a sink that reports no output: what it wrote
            out_rate = in_rate
        rows.append(
            {
                "stage_id": str(sid), "input_records": inr[z], "output_records": outr[z],
                "selectivity": outr[z] / inr[z] if inr[z] else np.nan,
                "input_rate": in_rate, "output_rate": out_rate,
                "backpressure_ratio": (
                    num[i] / den[i] if den[i] > 0 else (1.0 if active[z] else 0.0)
                ),
                "skew_ratio": skew[z], "workers_alive": workers[z],
            }
        )  # fmt: skip
    return rows


def stage_figures(
    stage_metrics: pa.Table | pd.DataFrame,
    processing: pa.Table | None = None,
    exceptions: pa.Table | None = None,
    *,
    sinks: list[str] | None = None,
) -> pd.DataFrame:
    """One row per stage of a run (``FIGURE_COLUMNS``), in order of first report.

    Parameters
    ----------
    stage_metrics
        The run's ``stage_metrics`` rows (every column).
    processing
        ``worker_id``, ``stage_id``, ``processing_time`` of its worker reports.
    exceptions
        The ``stage_id`` of each of its exceptions.
    sinks
        Sink stages: one that reports no output (as Solstice sinks do) is given its
        input rate as its output rate — what it wrote.

    Returns
    -------
    pandas.DataFrame
        Totals, selectivity (output / input), mean input and output rates (as the job
        monitor's stage table: first to last window), ``busy_s`` (seconds its workers
        processed), ``duration_share`` (its share of every stage's ``busy_s``; NaN when
        no worker reported a processing time), ``exceptions``, the time-weighted
        backpressure ratio, the last skew ratio and the workers alive at the end.
    """
    busy = _busy(processing)
    excs = _exception_counts(exceptions)
    rows = _window_figures(stage_metrics, sinks or [])
    ids = [r["stage_id"] for r in rows]
    seen = set(ids)
    extra = [s for s in dict.fromkeys([*busy, *excs]) if s not in seen]  # no windows
    ids += extra
    cols: dict[str, Any] = {"stage_id": ids}
    for col in FIGURE_COLUMNS[1:]:
        cols[col] = np.array([r.get(col, np.nan) for r in rows] + [np.nan] * len(extra), float)
    for col in ("input_records", "output_records"):
        cols[col][len(rows) :] = 0.0
    total = sum(busy.values())
    cols["busy_s"] = np.array([busy.get(s, 0.0) if busy else np.nan for s in ids], float)
    cols["duration_share"] = cols["busy_s"] / total if total > 0 else cols["busy_s"] * np.nan
    cols["exceptions"] = np.array([excs.get(s, 0) for s in ids], float)
    return pd.DataFrame(cols, columns=FIGURE_COLUMNS)


def stage_order(edges: list[tuple[str, str]], seen: list[str]) -> list[str]:
    """Stages in pipeline order: by depth in the DAG, then as first seen.

    Examples
    --------
    >>> stage_order([("read", "parse"), ("parse", "write")], ["write", "parse", "read", "x"])
    ['read', 'x', 'parse', 'write']
    """
    ids = list(dict.fromkeys([*seen, *(s for e in edges for s in e)]))
    depth = layers(ids, edges)
    return sorted(ids, key=lambda s: (depth[s], ids.index(s)))


def history_frame(
    attempts: pd.DataFrame, figures: dict[str, pd.DataFrame], stages: list[str]
) -> pd.DataFrame:
    """The history table from the attempts (catalog rows, oldest first) and each one's
    :func:`stage_figures`; one ``<metric>:<stage>`` column per metric and stage.

    Examples
    --------
    >>> att = pd.DataFrame({"attempt_id": ["a1"], "status": ["COMPLETED"],
    ...     "start_time": [pd.Timestamp(0, tz="UTC")], "duration_s": [10.0],
    ...     "records_in": [100], "records_out": [90], "exceptions": [0]})
    >>> fig = pd.DataFrame({"stage_id": ["s"], "output_rate": [9.0], "duration_share": [1.0],
    ...     "selectivity": [0.9], "exceptions": [0.0]})
    >>> history_frame(att, {"a1": fig}, ["s"])[["run", "rate:s", "share:s"]]
       run  rate:s  share:s
    0    1     9.0      1.0
    """
    out = pd.DataFrame(
        {
            "attempt_id": attempts["attempt_id"].astype(str).to_numpy(),
            "run": (
                attempts["run"].to_numpy() if "run" in attempts else np.arange(1, len(attempts) + 1)
            ),
            "status": attempts["status"].to_numpy(),
            "start": attempts["start_time"].to_numpy(),
            "duration_s": attempts["duration_s"].astype("float64").to_numpy(),
            "records_in": attempts["records_in"].to_numpy(),
            "records_out": attempts["records_out"].to_numpy(),
            "exceptions": attempts["exceptions"].to_numpy(),
        }
    )
    out["start"] = pd.to_datetime(out["start"], utc=True)
    row_of = {aid: i for i, aid in enumerate(out["attempt_id"])}
    col_of = {sid: j for j, sid in enumerate(stages)}
    grids = {p: np.full((len(out), len(stages)), np.nan) for p in HISTORY_METRICS}
    parts = [(row_of[a], f) for a, f in figures.items() if a in row_of and not f.empty]
    if parts:  # one concatenation, then numpy: ~10 ms for 200 runs, not ~1 s of lookups
        long = pd.concat([f for _, f in parts], ignore_index=True)
        rows = np.repeat([i for i, _ in parts], [len(f) for _, f in parts])
        cols_ = np.array([col_of.get(s, -1) for s in long["stage_id"]], dtype=int)
        keep = cols_ >= 0
        for prefix, column in HISTORY_METRICS.items():
            values = long[column].to_numpy(dtype=float)
            grids[prefix][rows[keep], cols_[keep]] = values[keep]
    cols = {
        f"{prefix}:{sid}": grids[prefix][:, j]
        for prefix in HISTORY_METRICS
        for j, sid in enumerate(stages)
    }
    return pd.concat([out, pd.DataFrame(cols, index=out.index)], axis=1)


# ------------------------------------------------------------------ reads
def _last_job_row(job: _Job) -> dict[str, Any]:
    t = job.table("job", columns=["ts", "config", "dag_edges", "stage_specs"])
    if t.num_rows == 0:
        return {}
    df = t.to_pandas().sort_values("ts", kind="stable")
    row: dict[str, Any] = {}
    for col in ("config", "dag_edges", "stage_specs"):  # the newest value of each
        values = df[col].dropna()
        if len(values):
            row[col] = values.iloc[-1]
    return row


def _edges(row: dict[str, Any]) -> list[tuple[str, str]]:
    raw = row.get("dag_edges")
    if not isinstance(raw, str) or not raw:
        return []
    return [(str(u), str(d)) for u, downs in json.loads(raw).items() for d in downs]


def read_run(
    job: _Job,
    *,
    exceptions: bool = True,
    sinks: list[str] | None = None,
    full: bool = False,
) -> RunData:
    """Read one run's figures (and with ``full``, its config, DAG and windows).

    ``exceptions=False`` skips the exceptions table (a run whose catalog counts none);
    ``sinks`` as in :func:`stage_figures` (``full`` reads the run's own DAG instead).
    """
    row = _last_job_row(job) if full else {}
    edges = _edges(row)
    sm = job.table("stage_metrics", columns=None if full else _WINDOWS)
    processing = job.table("worker_metrics", columns=_PROCESSING)
    excs = job.table("exceptions", columns=["stage_id"]) if exceptions else None
    seen = list(dict.fromkeys(sm.column("stage_id").to_pylist())) if sm.num_rows else []
    if full:
        specs = json.loads(row["stage_specs"]) if row.get("stage_specs") else []
        declared = [str(s["stage_id"]) for s in specs if isinstance(s, dict) and s.get("stage_id")]
        seen = list(dict.fromkeys([*declared, *seen]))
        sinks = _sinks(seen, edges)
    figures = stage_figures(sm, processing, excs, sinks=sinks)
    config = json.loads(row["config"]) if row.get("config") else {}
    return RunData(
        job.job_id,
        job.attempt_id,
        figures,
        config=config if isinstance(config, dict) else {"config": config},
        edges=edges,
        stage_metrics=sm.to_pandas() if full else None,
        stages=stage_order(edges, [*seen, *figures["stage_id"]]),
    )


def _sinks(stages: list[str], edges: list[tuple[str, str]]) -> list[str] | None:
    dag: dict[str, list[str]] = {}
    for up, down in edges:
        dag.setdefault(up, []).append(down)
    return sources_and_sinks(stages, dag)[1]


def _dag_of(job: _Job) -> tuple[list[tuple[str, str]], list[str]]:
    row = _last_job_row(job)
    edges = _edges(row)
    seen = list(dict.fromkeys(s for e in edges for s in e))
    return edges, seen


def attempts_of(store: _Store, job_id: str) -> pd.DataFrame:
    """Every attempt of ``job_id``, oldest first; :class:`JobNotFound` when none."""
    attempts = store.attempts(job_id)
    if attempts.empty:
        known = sorted(set(store.jobs()["job_id"]))
        raise JobNotFound(job_id, store.root, known)
    return attempts.reset_index(drop=True).assign(run=np.arange(1, len(attempts) + 1))


def read_runs(store: _Store, job_id: str, attempts: pd.DataFrame) -> dict[str, RunData]:
    """:func:`read_run` of each of ``attempts`` (catalog rows), a few at a time."""
    latest = store.attempt(job_id, str(attempts["attempt_id"].iloc[-1]))
    edges, seen = _dag_of(latest)
    sinks = _sinks(seen, edges)

    def one(row: tuple[str, Any]) -> RunData:
        aid, n_exc = row
        had = n_exc is None or pd.isna(n_exc) or int(n_exc) > 0
        return read_run(store.attempt(job_id, aid), exceptions=had, sinks=sinks)

    rows = list(zip(attempts["attempt_id"].astype(str), attempts["exceptions"]))
    with ThreadPoolExecutor(max_workers=min(_THREADS, max(len(rows), 1))) as pool:
        runs = list(pool.map(one, rows))
    for run in runs:
        run.edges = edges
    return {r.attempt_id: r for r in runs}


def history(store: _Store, job_id: str) -> pd.DataFrame:
    """One row per attempt of ``job_id``, oldest first (``si.history``); see
    :func:`history_frame` for the columns."""
    attempts = attempts_of(store, job_id)
    runs = read_runs(store, job_id, attempts)
    seen: list[str] = []
    for aid in reversed(list(attempts["attempt_id"].astype(str))):  # newest runs first
        seen.extend(s for s in runs[aid].figures["stage_id"] if s not in seen)
    edges = next(iter(runs.values())).edges if runs else []
    order = stage_order(edges, seen)
    return history_frame(attempts, {k: v.figures for k, v in runs.items()}, order)


def _is_job(run: Any) -> bool:
    return all(hasattr(run, a) for a in ("job_id", "attempt_id", "table", "store"))


def resolve_runs(
    store: _Store | None, runs: Sequence[Any]
) -> tuple[list[Any], dict[tuple[str, str], pd.DataFrame]]:
    """The attempt each run names — a ``Job`` (itself), a job id (its latest attempt) or
    a ``(job_id, attempt)`` pair (an attempt id or 1-based number) — reading the
    attempts of each job once; and those attempts (oldest first, with ``run`` numbers),
    by (store root, job id).

    Raises
    ------
    JobNotFound
        An unknown job or attempt, naming the closest known ones.
    """
    cache: dict[tuple[str, str], pd.DataFrame] = {}
    jobs = []
    for run in runs:
        if _is_job(run):
            st, job_id, attempt = run.store, run.job_id, run.attempt_id
        elif isinstance(run, str) or (isinstance(run, tuple) and len(run) == 2):
            if store is None:
                raise TypeError("a job id needs a store")
            st = store
            job_id, attempt = (run, None) if isinstance(run, str) else (str(run[0]), run[1])
            valid_job_id(job_id)
        else:
            raise TypeError(
                "a run is a Job, a job id or a (job_id, attempt) pair, not "
                f"{type(run).__name__}: {run!r}"
            )
        key = (str(st.root), job_id)
        if key not in cache:
            cache[key] = attempts_of(st, job_id)
        ids = list(cache[key]["attempt_id"].astype(str))
        if _is_job(run):
            jobs.append(run)
            continue
        if attempt is None:
            found = ids[-1]
        elif (
            isinstance(attempt, int) and not isinstance(attempt, bool) and 1 <= attempt <= len(ids)
        ):
            found = ids[attempt - 1]
        elif str(attempt) in ids and not isinstance(attempt, int):
            found = str(attempt)
        else:
            raise JobNotFound(str(attempt), f"job {job_id!r}", ids, what="attempt")
        jobs.append(st.attempt(job_id, found))
    return jobs, cache


def regressions(
    store: _Store | None,
    run: Any,
    *,
    min_runs: int = 5,
    mad_k: float = 3.0,
    min_change: float = 0.10,
) -> pd.DataFrame:
    """``si.regressions``: :func:`~solstice_inspect.analysis.regressions.find_regressions`
    of ``run`` against the earlier COMPLETED runs of its job id (read only when there
    are enough of them). ``attrs``: ``note``, ``runs``, ``job_id``, ``attempt_id``."""
    (job,), cache = resolve_runs(store, [run])
    store = job.store
    assert store is not None
    attempts = cache[(str(store.root), job.job_id)]
    ids = list(attempts["attempt_id"].astype(str))
    if job.attempt_id not in ids:
        raise JobNotFound(job.attempt_id, f"job {job.job_id!r}", ids, what="attempt")
    pos = ids.index(job.attempt_id)
    before = attempts.iloc[:pos]
    earlier = before[before["status"] == "COMPLETED"]
    opts = {"min_runs": min_runs, "mad_k": mad_k, "min_change": min_change}
    if len(earlier) < min_runs:
        df = find_regressions(pd.DataFrame(index=range(len(earlier))), {}, **opts)
    else:
        chosen = pd.concat([earlier, attempts.iloc[[pos]]])
        runs = read_runs(store, job.job_id, chosen)
        stages = list(runs[job.attempt_id].stages) or list(runs[job.attempt_id].figures["stage_id"])
        hist = history_frame(chosen, {k: v.figures for k, v in runs.items()}, stages)
        df = find_regressions(hist.iloc[:-1], hist.iloc[-1], **opts)
    df.attrs.update(job_id=job.job_id, attempt_id=job.attempt_id)
    return df
