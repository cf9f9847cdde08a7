"""How many workers each stage should have, and why: :func:`recommend`.

Pure: the rows of one run (its ``stage_metrics`` windows and ``worker_metrics`` reports)
and the same figures of earlier runs of the job in, one row per stage out. Every figure
comes from stored rows:

busy fraction
    Of one worker: the growth of its cumulative ``processing_time`` between its first and
    last report that carry one, over the wall time between those two reports. Of a
    stage: the sum of its workers' processing-time growth over the sum of their wall
    times (so a worker that lived longer weighs more), at most 1. ``idle = 1 − busy``.
backpressure share
    The fraction of time the stage's input queue was backpressured, time-weighted over
    its windows (the monitor's stage table ``backpressure ratio``).
bottleneck share
    Each stage's ``backpressure_active`` holds from one of its windows to its next. At
    each moment the bottleneck is the most downstream backpressured stage (the rule of
    :func:`~solstice_inspect.analysis.stages.bottleneck`: Solstice throttles the stages
    upstream of a slow one, so the root cause is the last one backpressured). The share
    is the time a stage was the bottleneck over the run's span (first to last window of
    any stage).
workers
    The most workers of the stage alive at once in its windows (else: how many reported).
output rate
    The mean output rate from its first to its last window; a sink that reports no
    output is given its input rate (what it wrote), as in
    :func:`~solstice_inspect.analysis.history.stage_figures`.

Rules: a stage that was the bottleneck at least ``BOTTLENECK_ABOVE`` of the run and whose
workers were busy at least ``SATURATED`` gets more workers — enough to bring them to
``TARGET_BUSY``, or the count with which earlier runs ran at least ``SAME_RATE`` faster —
never above its ``max_parallelism``. A bottleneck whose workers were *not* busy, or that
earlier runs show did not get faster with more workers, is to be investigated, not
grown. A stage idle more than ``1 − IDLE_BELOW_BUSY`` of the time gets fewer workers (enough
to be ``TARGET_BUSY``), never below its ``min_parallelism`` (or 1), and never fewer than
earlier runs show it needs to keep its rate. Less than ``MIN_SPAN_S`` seconds of worker
reports, or no ``processing_time`` at all: no recommendation, and ``note`` says why.

Examples
--------
>>> ev = pd.DataFrame({"stage_id": ["read", "enrich"], "workers": [2, 4],
...     "busy_fraction": [0.1, 0.97], "busy_s": [4.0, 77.6], "worker_s": [40.0, 80.0],
...     "span_s": [20.0, 20.0], "backpressure_share": [0.0, 0.75],
...     "bottleneck_share": [0.0, 0.75], "backpressured_from": [None, 1764331205.0],
...     "backpressured_until": [None, None], "output_rate": [20.0, 40.0]})
>>> recommend(ev, parallelism={"enrich": (1, 8)})[["stage_id", "action", "suggested_workers"]]
  stage_id          action  suggested_workers
0     read  remove workers                  1
1   enrich     add workers                  6
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from solstice_inspect.analysis.history import stage_figures

__all__ = [
    "EVIDENCE_COLUMNS",
    "RECOMMENDATION_COLUMNS",
    "WINDOW_COLUMNS",
    "WORKER_COLUMNS",
    "bottleneck_shares",
    "history_table",
    "recommend",
    "run_evidence",
    "worker_busy",
]

#: workers are sized to be this busy
TARGET_BUSY = 0.7
#: a stage busier than this is saturated: more workers help only such a bottleneck
SATURATED = 0.6
#: a stage less busy than this (idle more than 80 % of the time) can give workers back
IDLE_BELOW_BUSY = 0.2
#: a stage that was the bottleneck at least this share of the run is *the* bottleneck
BOTTLENECK_ABOVE = 0.2
#: earlier runs whose rate is within this (relative) of this run's ran "as fast"
SAME_RATE = 0.10
#: seconds of worker reports a stage needs before anything is recommended for it
MIN_SPAN_S = 10.0
#: earlier runs read for the history (the latest ones)
MAX_HISTORY_RUNS = 20

#: what the evidence needs of ``worker_metrics`` and ``stage_metrics``
WORKER_COLUMNS = ["ts", "worker_id", "stage_id", "processing_time"]
WINDOW_COLUMNS = [
    "ts", "stage_id", "workers_alive", "input_records", "output_records",
    "backpressure_active", "backpressure_ratio", "skew_ratio",
]  # fmt: skip
EVIDENCE_COLUMNS = [
    "stage_id", "workers", "busy_fraction", "busy_s", "worker_s", "span_s",
    "backpressure_share", "bottleneck_share", "backpressured_from", "backpressured_until",
    "output_rate",
]  # fmt: skip
RECOMMENDATION_COLUMNS = [
    "stage_id", "action", "current_workers", "suggested_workers", "reason",
    "busy_fraction", "idle_fraction", "backpressure_share", "bottleneck_share",
    "output_rate", "history_runs", "history", "note",
]  # fmt: skip
_BUSY_COLUMNS = ["stage_id", "workers_reporting", "busy_s", "worker_s", "span_s", "busy_fraction"]
_NECK_COLUMNS = ["stage_id", "bottleneck_share", "backpressured_from", "backpressured_until"]


# ------------------------------------------------------------------ evidence of one run
def _frame(rows: pa.Table | pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    if rows is None:
        return pd.DataFrame(columns=columns)
    df = rows.to_pandas() if isinstance(rows, pa.Table) else rows
    return df.loc[:, [c for c in columns if c in df.columns]]


def _floats(column: Any) -> np.ndarray:
    """A column as float64, NaN for nulls and anything not a number."""
    return np.asarray(pd.to_numeric(column, errors="coerce"), dtype=float)


def _epoch(ts: pd.Series) -> np.ndarray:
    """Timestamps as epoch seconds (float)."""
    us = pd.to_datetime(ts, utc=True).astype("datetime64[us, UTC]").astype("int64")
    return us.to_numpy(dtype=float) / 1e6


def worker_busy(worker_metrics: pa.Table | pd.DataFrame | None) -> pd.DataFrame:
    """Per stage: workers that reported a processing time, their processing seconds
    (``busy_s``), their wall seconds (``worker_s``), the span of their reports and the
    busy fraction ``busy_s / worker_s`` (at most 1; NaN without two reports of a worker,
    or when every report's processing_time is 0: the recorder stores a missing one as 0).

    Examples
    --------
    >>> ts = pd.to_datetime([0, 10, 0, 10], unit="s", utc=True)
    >>> wm = pd.DataFrame({"ts": ts, "worker_id": ["a", "a", "b", "b"],
    ...     "stage_id": ["s"] * 4, "processing_time": [1.0, 9.0, 0.0, 2.0]})
    >>> worker_busy(wm)[["stage_id", "busy_s", "worker_s", "busy_fraction"]]
      stage_id  busy_s  worker_s  busy_fraction
    0        s    10.0      20.0            0.5
    """
    df = _frame(worker_metrics, WORKER_COLUMNS)
    if df.empty or len(df.columns) < len(WORKER_COLUMNS):
        return pd.DataFrame(columns=_BUSY_COLUMNS)
    df = df.dropna(subset=WORKER_COLUMNS)
    if df.empty:
        return pd.DataFrame(columns=_BUSY_COLUMNS)
    df = df.assign(_t=_epoch(df["ts"]), processing_time=df["processing_time"].astype(float))
    df = df.sort_values(["worker_id", "_t"], kind="stable")
    g = df.groupby("worker_id", sort=False)
    per = pd.DataFrame(
        {
            "stage_id": g["stage_id"].last(),  # a worker's last stage
            "t0": g["_t"].first(),
            "t1": g["_t"].last(),
            # cumulative: growth between the first and last report (a reset counts 0)
            "busy": (g["processing_time"].last() - g["processing_time"].first()).clip(lower=0),
            "top": g["processing_time"].max(),
        }
    )
    per["wall"] = per["t1"] - per["t0"]
    out = (
        per.groupby("stage_id", sort=False)
        .agg(
            workers_reporting=("busy", "size"),
            busy_s=("busy", "sum"),
            worker_s=("wall", "sum"),
            t0=("t0", "min"),
            t1=("t1", "max"),
            top=("top", "max"),
        )
        .reset_index()
    )
    out["span_s"] = out["t1"].to_numpy(dtype=float) - out["t0"].to_numpy(dtype=float)
    busy, wall = out["busy_s"].to_numpy(dtype=float), out["worker_s"].to_numpy(dtype=float)
    # the recorder stores a missing processing_time as 0: a stage whose counters never
    # left 0 did not report one (a stage that processed anything spent time on it)
    reported = out["top"].to_numpy(dtype=float) > 0
    ratio = np.divide(busy, wall, out=np.full(len(out), np.nan), where=(wall > 0) & reported)
    out["busy_fraction"] = np.minimum(ratio, 1.0)
    return out.loc[:, _BUSY_COLUMNS]


def _last_stretch(times: np.ndarray, active: np.ndarray) -> tuple[float | None, float | None]:
    """(start, end) of the last run of True in ``active``; end None: still at the end."""
    on = np.flatnonzero(active)
    if on.size == 0:
        return None, None
    last = int(on[-1])
    off = np.flatnonzero(~active[: last + 1])
    first = int(off[-1]) + 1 if off.size else 0
    end = None if last == len(active) - 1 else float(times[last + 1])
    return float(times[first]), end


def bottleneck_shares(
    stage_metrics: pa.Table | pd.DataFrame | None, order: list[str]
) -> pd.DataFrame:
    """Per stage: the share of the run it was the bottleneck, and its last stretch of
    backpressure (epoch seconds; ``backpressured_until`` NaN: still at the last window).

    ``order``: stages upstream first (the most downstream backpressured stage is the
    bottleneck); stages not in it count as the most upstream.

    Examples
    --------
    >>> ts = pd.to_datetime([0, 0, 5, 5, 10, 10], unit="s", utc=True)
    >>> sm = pd.DataFrame({"ts": ts, "stage_id": ["a", "b"] * 3,
    ...     "backpressure_active": [True, False, True, True, True, True]})
    >>> bottleneck_shares(sm, ["a", "b"])[["stage_id", "bottleneck_share"]]
      stage_id  bottleneck_share
    0        a               0.5
    1        b               0.5
    """
    df = _frame(stage_metrics, ["ts", "stage_id", "backpressure_active"])
    if df.empty or "backpressure_active" not in df:
        return pd.DataFrame(columns=_NECK_COLUMNS)
    df = df.dropna(subset=["ts", "stage_id"]).assign(_t=lambda d: _epoch(d["ts"]))
    df["backpressure_active"] = df["backpressure_active"].astype("boolean").fillna(False)
    df = df.sort_values("_t", kind="stable")
    wide = df.groupby(["_t", "stage_id"], sort=True)["backpressure_active"].last().unstack()
    seen = list(wide.columns)
    cols = [s for s in seen if s not in order] + [s for s in order if s in seen]
    state = wide.loc[:, cols].ffill().fillna(False).astype(bool).to_numpy()
    times = wide.index.to_numpy(dtype=float)
    dt = np.diff(times, append=times[-1])  # a state holds until the next window
    span = float(times[-1] - times[0])
    k = len(cols)
    anyone = state.any(axis=1)
    neck = k - 1 - np.argmax(state[:, ::-1], axis=1)  # the last backpressured column
    held = np.bincount(neck[anyone], weights=dt[anyone], minlength=k)
    rows = []
    for j, sid in enumerate(cols):
        start, end = _last_stretch(times, state[:, j])
        rows.append(
            {
                "stage_id": str(sid),
                "bottleneck_share": float(held[j] / span) if span > 0 else 0.0,
                "backpressured_from": np.nan if start is None else start,
                "backpressured_until": np.nan if end is None else end,
            }
        )
    return pd.DataFrame(rows, columns=_NECK_COLUMNS)


def run_evidence(
    stage_metrics: pa.Table | pd.DataFrame | None,
    worker_metrics: pa.Table | pd.DataFrame | None,
    *,
    order: list[str],
    sinks: list[str] | None = None,
) -> pd.DataFrame:
    """The figures :func:`recommend` weighs, one row per stage (``EVIDENCE_COLUMNS``).

    Parameters
    ----------
    stage_metrics
        The run's ``stage_metrics`` rows (at least ``WINDOW_COLUMNS``).
    worker_metrics
        Its ``worker_metrics`` rows (at least ``WORKER_COLUMNS``).
    order
        Its stages, upstream first (the rows' order when it is shorter).
    sinks
        Sink stages (their rate is what they wrote).
    """
    sm = _frame(stage_metrics, WINDOW_COLUMNS)
    has_windows = not sm.empty and len(sm.columns) == len(WINDOW_COLUMNS)
    figs = stage_figures(sm, sinks=sinks) if has_windows else pd.DataFrame(columns=["stage_id"])
    busy = worker_busy(worker_metrics)
    necks = bottleneck_shares(sm, order) if has_windows else pd.DataFrame(columns=_NECK_COLUMNS)
    alive: dict[str, float] = {}
    if has_windows:
        ids, counts = sm["stage_id"].astype(str), _floats(sm["workers_alive"])
        for sid, n in zip(ids, counts):
            if n > alive.get(sid, -1.0):  # the most at once (NaN counts for nothing)
                alive[sid] = n
    ids = list(dict.fromkeys([*order, *figs["stage_id"], *busy["stage_id"]]))
    out = pd.DataFrame({"stage_id": pd.Series(ids, dtype=object)})
    out = out.merge(busy, on="stage_id", how="left").merge(necks, on="stage_id", how="left")
    out = out.merge(
        figs.loc[:, [c for c in ("stage_id", "backpressure_ratio", "output_rate") if c in figs]],
        on="stage_id",
        how="left",
    )
    most = np.array([alive.get(str(s), np.nan) for s in out["stage_id"]], dtype=float)
    reporting = _floats(out["workers_reporting"])
    out["workers"] = np.where(most > 0, most, reporting)
    out = out.rename(columns={"backpressure_ratio": "backpressure_share"})
    out = out.reindex(columns=EVIDENCE_COLUMNS)
    for col in EVIDENCE_COLUMNS[1:]:
        out[col] = _floats(out[col])
    out["bottleneck_share"] = out["bottleneck_share"].fillna(0.0)
    return out


def history_table(runs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Earlier runs' evidence (``{attempt_id: run_evidence(...)}``) as one frame:
    attempt_id, stage_id, workers, output_rate (rows without both dropped)."""
    parts = [
        ev.loc[:, ["stage_id", "workers", "output_rate"]].assign(attempt_id=aid)
        for aid, ev in runs.items()
        if not ev.empty
    ]
    cols = ["attempt_id", "stage_id", "workers", "output_rate"]
    if not parts:
        return pd.DataFrame(columns=cols)
    df = pd.concat(parts, ignore_index=True).loc[:, cols]
    ok = (df["workers"] > 0) & np.isfinite(df["output_rate"].astype(float))
    return df.loc[ok].reset_index(drop=True)


# ------------------------------------------------------------------ wording
def _pct(x: float) -> str:
    return f"{round(x * 100):d} %"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _clock(epoch: float) -> str:
    return pd.Timestamp(epoch, unit="s", tz="UTC").strftime("%H:%M:%S")


def _backpressure_text(e: Mapping[str, Any]) -> str:
    start, end = e.get("backpressured_from"), e.get("backpressured_until")
    if start is None or not np.isfinite(start):
        return "its input queue was never backpressured"
    if end is None or not np.isfinite(end):
        return f"backpressure on its input queue since {_clock(start)} UTC"
    return f"backpressure on its input queue from {_clock(start)} to {_clock(end)} UTC"


def _ceil(x: float) -> int:
    return math.ceil(round(x, 6))  # 4 × 0.7 / 0.7 is 4, not 5


# ------------------------------------------------------------------ the rules
def _history_groups(history: pd.DataFrame | None, stage_id: str) -> pd.DataFrame:
    """Earlier runs of one stage by worker count: workers, runs, rate (median)."""
    if history is None or history.empty:
        return pd.DataFrame(columns=["workers", "runs", "rate"])
    mine = history.loc[history["stage_id"] == stage_id]
    g = mine.groupby(mine["workers"].astype(int))["output_rate"]
    out = pd.DataFrame({"runs": g.size(), "rate": g.median()}).reset_index()
    return out.sort_values("workers", ascending=False, kind="stable").reset_index(drop=True)


def _history_text(groups: pd.DataFrame) -> str:
    return "; ".join(
        f"{_n(int(k), 'worker')}: {rate:,.1f} rec/s ({_n(int(n), 'run')})"
        for k, rate, n in zip(groups["workers"], groups["rate"], groups["runs"])
    )


def _earlier(r: Any, verb: str) -> str:
    runs = "1 earlier run" if int(r.runs) == 1 else f"{int(r.runs)} earlier runs"
    return f"in {runs} with {_n(int(r.workers), 'worker')} it {verb}"


def _grow(
    sid: str, e: Mapping[str, Any], c: int, hi: int | None, groups: pd.DataFrame
) -> tuple[str, int, str]:
    """The bottleneck's (action, suggested workers, reason)."""
    busy, rate = float(e["busy_fraction"]), float(e["output_rate"])
    head = (
        f"{sid} was the bottleneck {_pct(e['bottleneck_share'])} of the run "
        f"({_backpressure_text(e)}); its {_n(c, 'worker')} "
        f"{'was' if c == 1 else 'were'} busy {_pct(busy)} of the time"
    )
    if busy < SATURATED:
        return (
            "investigate", c,
            f"{head}: more workers would mostly wait. Look at its partition skew, its "
            "per-split cost and what it writes to.",
        )  # fmt: skip
    want = max(c + 1, _ceil(c * busy / TARGET_BUSY))
    basis = f"{want} would be ~{_pct(c * busy / want)} busy"
    bigger = groups.loc[groups["workers"] > c]
    if len(bigger) and math.isfinite(rate) and rate > 0:
        best = bigger.loc[bigger["rate"].idxmax()]
        gain = float(best["rate"]) / rate - 1
        if gain >= SAME_RATE:
            want = int(best["workers"])
            basis = _earlier(best, f"ran {_pct(gain)} faster")
        else:
            said = _earlier(best, f"was not faster ({gain * 100:+.0f} %)")
            return (
                "investigate", c,
                f"{head}; but {said}: more workers did not help before. Look at its "
                "partition skew, its per-split cost and what it writes to.",
            )  # fmt: skip
    if hi is not None and want > hi:
        if c >= hi:
            return (
                "at max_parallelism", c,
                f"{head}; {basis}, but it already runs its max_parallelism of {hi}: raise "
                "max_parallelism or make its splits cheaper.",
            )  # fmt: skip
        return (
            "add workers", hi,
            f"{head}; {basis}: give it {hi} workers, capped at its max_parallelism of {hi}.",
        )  # fmt: skip
    return "add workers", want, f"{head}; {basis}: give it {_n(want, 'worker')}."


def _shrink(
    sid: str, e: Mapping[str, Any], c: int, lo: int, groups: pd.DataFrame, downstream: str | None
) -> tuple[str, int, str]:
    """An idle stage's (action, suggested workers, reason)."""
    busy, rate = float(e["busy_fraction"]), float(e["output_rate"])
    head = (
        f"{sid}'s {_n(c, 'worker')} {'was' if c == 1 else 'were'} idle {_pct(1 - busy)} "
        f"of the time (busy {_pct(busy)})"
    )
    want = max(lo, _ceil(c * busy / TARGET_BUSY))
    floor = f" (its min_parallelism is {lo})" if want == lo and lo > 1 else ""
    said = ""
    smaller = groups.loc[groups["workers"] < c]
    if len(smaller) and math.isfinite(rate) and rate > 0:
        slower = smaller.loc[smaller["rate"] < rate * (1 - SAME_RATE)]
        if len(slower):
            worst = slower.loc[slower["workers"].idxmax()]
            need = int(worst["workers"]) + 1
            if need > want:
                want, floor = need, ""
            said = _earlier(worst, f"ran {_pct(1 - float(worst['rate']) / rate)} slower")
        else:
            fewest = smaller.loc[smaller["workers"].idxmin()]
            change = float(fewest["rate"]) / rate * 100 - 100
            said = _earlier(fewest, f"ran as fast ({change:+.0f} %)")
    if want >= c:
        if said:
            why = said
        elif lo > 1:
            why = f"{lo} is its min_parallelism"
        else:
            why = "it runs a single worker"
        return "keep", c, f"{head}, but {why}: keep {c}."
    later = (
        f"; it may get busier once {downstream} (downstream, the bottleneck) keeps up"
        if downstream
        else ""
    )
    evidence = f"; {said}" if said else ""
    return (
        "remove workers", want,
        f"{head}; {_n(want, 'worker')} would be ~{_pct(c * busy / want)} busy{floor}"
        f"{evidence}{later}: give it {_n(want, 'worker')}.",
    )  # fmt: skip


def _below(edges: list[tuple[str, str]], stage_id: str) -> set[str]:
    """Stages downstream of ``stage_id``."""
    out: set[str] = set()
    todo = [stage_id]
    while todo:
        s = todo.pop()
        for up, down in edges:
            if up == s and down not in out:
                out.add(down)
                todo.append(down)
    return out


def _thin(workers: int | None, busy: float, span: float) -> str:
    """Why the evidence is too thin to recommend anything ("" when it is not)."""
    if not workers:
        return "none of its workers was seen alive or reporting"
    if not math.isfinite(busy):
        return (
            "its workers reported no processing_time (or only 0) over two reports or "
            "more: how busy they were is unknown"
        )
    if not span >= MIN_SPAN_S:
        return (
            f"only {span:.1f} s of its workers' reports; at least {MIN_SPAN_S:g} s are "
            "needed to tell busy from idle"
        )
    return ""


def _int(value: Any) -> int | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return int(v) if math.isfinite(v) else None


def recommend(
    evidence: pd.DataFrame,
    *,
    parallelism: Mapping[str, tuple[Any, Any]] | None = None,
    history: pd.DataFrame | None = None,
    edges: list[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """One row per stage of ``evidence``: what to do with its workers, and why.

    Parameters
    ----------
    evidence
        :func:`run_evidence` of the run.
    parallelism
        ``{stage_id: (min_parallelism, max_parallelism)}`` (None or NaN: not declared).
    history
        :func:`history_table` of earlier runs of the job.
    edges
        The DAG (upstream, downstream): an idle stage upstream of the bottleneck is told
        it may get busier once the bottleneck keeps up.

    Returns
    -------
    pandas.DataFrame
        ``RECOMMENDATION_COLUMNS``: ``action`` is *add workers*, *remove workers*,
        *keep*, *investigate* (a bottleneck more workers would not help),
        *at max_parallelism* or *no recommendation* (``note`` says why);
        ``suggested_workers`` is never above max_parallelism nor below
        min_parallelism (or 1); ``reason`` is a sentence with the figures.
    """
    parallelism = parallelism or {}
    edges = edges or []
    necks = evidence.loc[evidence["bottleneck_share"] >= BOTTLENECK_ABOVE, "stage_id"].tolist()
    rows = []
    for e in evidence.to_dict("records"):
        sid = str(e["stage_id"])
        groups = _history_groups(history, sid)
        c = _int(e["workers"])
        busy = float(e["busy_fraction"])
        lo_raw, hi_raw = parallelism.get(sid, (None, None))
        lo, hi = max(1, _int(lo_raw) or 1), _int(hi_raw)
        row = {
            "stage_id": sid, "action": "no recommendation", "current_workers": c,
            "suggested_workers": None, "reason": "", "busy_fraction": busy,
            "idle_fraction": 1 - busy, "backpressure_share": e["backpressure_share"],
            "bottleneck_share": e["bottleneck_share"], "output_rate": e["output_rate"],
            "history_runs": int(groups["runs"].sum()) if len(groups) else 0,
            "history": _history_text(groups) if len(groups) else "no earlier runs",
            "note": "",
        }  # fmt: skip
        note = _thin(c, busy, float(e["span_s"]))
        if note or not c:
            row.update(note=note, reason=f"No recommendation for {sid}: {note}.")
            rows.append(row)
            continue
        if sid in necks:
            action, want, reason = _grow(sid, e, c, hi, groups)
        elif busy < IDLE_BELOW_BUSY:
            below = [n for n in necks if n in _below(edges, sid)]
            action, want, reason = _shrink(sid, e, c, lo, groups, below[0] if below else None)
        else:
            neck = e["bottleneck_share"]
            was = f"the bottleneck only {_pct(neck)} of the run" if neck > 0 else "not a bottleneck"
            action, want, reason = (
                "keep", c,
                f"{sid}'s {_n(c, 'worker')} {'was' if c == 1 else 'were'} busy {_pct(busy)} "
                f"of the time and it was {was}: keep {c}.",
            )  # fmt: skip
        row.update(action=action, suggested_workers=want, reason=reason)
        rows.append(row)
    df = pd.DataFrame(rows, columns=RECOMMENDATION_COLUMNS)
    for col in ("current_workers", "suggested_workers", "history_runs"):
        df[col] = df[col].astype("Int64")
    for col in ("busy_fraction", "idle_fraction", "backpressure_share", "bottleneck_share"):
        df[col] = df[col].astype(float)
    df["output_rate"] = df["output_rate"].astype(float)
    return df
