"""The job's timeline as rows: worker lifetimes, failures, restarts, checkpoints and
backpressure spans. Pure: tables in, DataFrames out, no clock (``end`` is given).

:func:`worker_spans` gives one bar per worker (how it ended colours it);
:func:`marks` gives the points and spans drawn over them. ``si.charts.timeline`` draws
both; a user can query them directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["ENDINGS", "Lanes", "backpressure_spans", "lanes", "marks", "worker_spans"]

#: how a worker's bar ends, in legend order
ENDINGS = ["RUNNING", "STOPPED", "FAILED", "KILLED", "LOST"]
_ENDED = ("STOPPED", "FAILED", "KILLED")
#: events drawn as restart marks
_RESTARTS = ("recorder_restarted", "worker_replaced", "worker_restarted")


def _utc(value: object) -> pd.Timestamp:
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def worker_spans(
    workers: pd.DataFrame,
    worker_metrics: pd.DataFrame | None = None,
    *,
    end: object,
    running: bool,
) -> pd.DataFrame:
    """One row per worker: ``worker_id, stage_id, start, end, ended, reason``.

    A worker starts at its first lifecycle row (or first report) and ends at its last
    STOPPED / FAILED / KILLED row. A worker with no such row runs to ``end`` (the job's
    end, or now): ``ended`` is RUNNING while the job runs and LOST once it is over —
    its process went away without a word.

    Parameters
    ----------
    workers
        The ``workers`` table (``ts, worker_id, stage_id, event, reason``).
    worker_metrics
        Optional ``ts, worker_id, stage_id`` of reports: workers that never sent a
        lifecycle message still get a bar, from their first report to their last.
    end
        Where open bars end (a timestamp).
    running
        Whether the job is still running.

    Examples
    --------
    >>> w = pd.DataFrame({"ts": pd.to_datetime([0, 5, 1], unit="s", utc=True),
    ...     "worker_id": ["a", "a", "b"], "stage_id": ["s", "s", "s"],
    ...     "event": ["STARTED", "FAILED", "STARTED"], "reason": [None, "oom", None]})
    >>> spans = worker_spans(w, end=pd.Timestamp(9, unit="s", tz="UTC"), running=False)
    >>> spans[["worker_id", "ended"]].values.tolist()
    [['a', 'FAILED'], ['b', 'LOST']]
    """
    end_ts = _utc(end)
    frames = []
    if len(workers):
        w = workers.sort_values("ts", kind="stable")
        first = w.groupby("worker_id", sort=False).agg(
            stage_id=("stage_id", "first"), start=("ts", "min")
        )
        stops = w[w["event"].isin(_ENDED)].groupby("worker_id", sort=False).tail(1)
        stops = stops.set_index("worker_id")[["ts", "event", "reason"]]
        first = first.join(stops, how="left")
        frames.append(first)
    if worker_metrics is not None and len(worker_metrics):
        seen = worker_metrics.groupby("worker_id", sort=False).agg(
            stage_id=("stage_id", "first"), start=("ts", "min"), last=("ts", "max")
        )
        known = frames[0].index if frames else pd.Index([])
        extra = seen[~seen.index.isin(known)]
        if len(extra):
            frames.append(extra)
    if not frames:
        cols = ["worker_id", "stage_id", "start", "end", "ended", "reason"]
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    df = pd.concat(frames)
    for col in ("ts", "event", "reason", "last"):
        if col not in df:
            df[col] = None
    stopped = df["event"].notna()
    df["end"] = df["ts"].where(stopped, end_ts)
    df["ended"] = df["event"].where(stopped, "RUNNING" if running else "LOST")
    df["end"] = pd.to_datetime(df["end"], utc=True)
    df["start"] = pd.to_datetime(df["start"], utc=True)
    df = df.reset_index(names="worker_id")
    df = df.sort_values(["stage_id", "start", "worker_id"], kind="stable")
    out: pd.DataFrame = df.loc[:, ["worker_id", "stage_id", "start", "end", "ended", "reason"]]
    return out.reset_index(drop=True)


def backpressure_spans(events: pd.DataFrame, *, end: object) -> pd.DataFrame:
    """Spans ``stage_id, start, end`` during which a stage was backpressured.

    From the recorder's ``backpressure_started`` / ``backpressure_cleared`` events; a span
    still open runs to ``end``.

    Examples
    --------
    >>> e = pd.DataFrame({"ts": pd.to_datetime([1, 4, 6], unit="s", utc=True),
    ...     "event_type": ["backpressure_started", "backpressure_cleared",
    ...                    "backpressure_started"], "stage_id": ["s", "s", "s"]})
    >>> spans = backpressure_spans(e, end=pd.Timestamp(9, unit="s", tz="UTC"))
    >>> [(r.start.second, r.end.second) for r in spans.itertuples()]
    [(1, 4), (6, 9)]
    """
    end_ts = _utc(end)
    rows: list[tuple[str, pd.Timestamp, pd.Timestamp]] = []
    if len(events):
        kinds = ["backpressure_started", "backpressure_cleared"]
        bp: pd.DataFrame = events.loc[events["event_type"].isin(kinds)]
        for stage, g in bp.sort_values("ts", kind="stable").groupby("stage_id", sort=True):
            since = None
            for ts, kind in zip(g["ts"], g["event_type"]):
                if kind == "backpressure_started" and since is None:
                    since = ts
                elif kind == "backpressure_cleared" and since is not None:
                    rows.append((str(stage), since, ts))
                    since = None
            if since is not None:
                rows.append((str(stage), since, end_ts))
    out = pd.DataFrame(rows, columns=["stage_id", "start", "end"])
    for col in ("start", "end"):
        out[col] = pd.to_datetime(out[col], utc=True)
    return out


def marks(workers: pd.DataFrame, events: pd.DataFrame, checkpoints: pd.DataFrame) -> pd.DataFrame:
    """Points on the timeline: ``ts, kind, stage_id, worker_id, label``.

    Kinds: ``failure`` (a worker FAILED or KILLED), ``restart`` (the recorder restarted,
    a worker replaced), ``checkpoint`` (completed) and ``checkpoint_failed``.

    Examples
    --------
    >>> none = pd.DataFrame(columns=["ts", "event", "event_type", "status"])
    >>> marks(none, none, none).empty
    True
    """
    parts = []
    if len(workers):
        bad: pd.DataFrame = workers.loc[workers["event"].isin(["FAILED", "KILLED"])]
        event: pd.Series = bad["event"].astype(str)
        reason: pd.Series = bad["reason"].fillna("").astype(str)
        parts.append(
            pd.DataFrame(
                {
                    "ts": bad["ts"],
                    "kind": "failure",
                    "stage_id": bad["stage_id"],
                    "worker_id": bad["worker_id"],
                    "label": event.str.lower() + ": " + reason,
                }
            )
        )
    if len(events):
        again: pd.DataFrame = events.loc[events["event_type"].isin(_RESTARTS)]
        described: pd.Series = again["description"].fillna(again["event_type"])
        parts.append(
            pd.DataFrame(
                {
                    "ts": again["ts"],
                    "kind": "restart",
                    "stage_id": again["stage_id"],
                    "worker_id": again["worker_id"],
                    "label": described,
                }
            )
        )
    if len(checkpoints):
        # one mark per checkpoint: its last stage to finish
        c = checkpoints.sort_values("ts", kind="stable").groupby("checkpoint_id").tail(1)
        failed = c["status"].astype(str).str.upper().eq("FAILED")
        parts.append(
            pd.DataFrame(
                {
                    "ts": c["completion_time"].fillna(c["ts"]),
                    "kind": failed.map({True: "checkpoint_failed", False: "checkpoint"}),
                    "stage_id": None,
                    "worker_id": None,
                    "label": c["checkpoint_id"].astype(str) + " " + c["status"].fillna(""),
                }
            )
        )
    parts = [p for p in parts if len(p)]
    if not parts:
        cols = ["ts", "kind", "stage_id", "worker_id", "label"]
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    out = pd.concat(parts, ignore_index=True)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out.sort_values("ts", kind="stable").reset_index(drop=True)


@dataclass
class Lanes:
    """What a timeline draws: worker bars, backpressure bands and marks, each with its
    ``lane`` label, the lanes in drawing order, and how many workers there were."""

    spans: pd.DataFrame
    backpressure: pd.DataFrame
    marks: pd.DataFrame
    order: list[str]
    total_workers: int


def lanes(
    spans: pd.DataFrame,
    bp: pd.DataFrame,
    points: pd.DataFrame,
    *,
    stage_order: list[str],
    max_workers: int = 200,
) -> Lanes:
    """Lay the rows out in lanes: stages in ``stage_order`` (then any others by name),
    each stage's backpressure lane above its workers; at most ``max_workers`` worker
    lanes — failed and killed first, then lost, then the longest-lived.

    Examples
    --------
    >>> t = pd.to_datetime([0, 5], unit="s", utc=True)
    >>> spans = pd.DataFrame({"worker_id": ["w0", "w1"], "stage_id": ["b", "a"],
    ...     "start": t, "end": t, "ended": ["STOPPED", "FAILED"], "reason": [None, None]})
    >>> none = pd.DataFrame(columns=["stage_id", "start", "end"])
    >>> pts = pd.DataFrame(columns=["ts", "kind", "stage_id", "worker_id", "label"])
    >>> lanes(spans, none, pts, stage_order=["a", "b"]).order
    ['a · w1', 'b · w0']
    """
    total = len(spans)
    if total > max_workers:
        rank = spans["ended"].map({"FAILED": 0, "KILLED": 0, "LOST": 1}).fillna(2)
        ranked = spans.assign(_rank=rank, _len=spans["start"] - spans["end"])
        keep = ranked.sort_values(["_rank", "_len"], kind="stable").head(max_workers).index
        spans = spans.loc[sorted(keep)]
    spans = spans.assign(lane=spans["stage_id"].fillna("?") + " · " + spans["worker_id"])
    bp = bp.assign(lane=bp["stage_id"].astype(str) + " · backpressure")
    seen = set(spans["stage_id"].fillna("?")) | set(bp["stage_id"])
    stages = [s for s in stage_order if s in seen] + sorted(seen - set(stage_order))
    worker_lanes = list(spans["lane"])
    bp_lanes = set(bp["lane"])
    order: list[str] = []
    for stage in stages:
        if f"{stage} · backpressure" in bp_lanes:
            order.append(f"{stage} · backpressure")
        order += [x for x in worker_lanes if x.startswith(f"{stage} · ")]
    points = points.assign(
        lane=points["stage_id"].fillna("?") + " · " + points["worker_id"].fillna("")
    )
    return Lanes(spans, bp, points, order, total)
