"""Time travel: the job as it was at a past moment, and the Timeline tab's rows.

:func:`snapshot_at` builds a :class:`~solstice_inspect.analysis.snapshot.JobSnapshot`
from the stored rows with ``ts <= t`` (the same scan as the monitor's, with an upper
bound pushed down to Lance) and a catalog row rewritten for ``t``: the attempt was
running then unless it had already ended, and the catalog's final totals are not used.
Its header and stage summary are "the job as of t".

:func:`timeline_state` is the Timeline tab's synced state: worker lifetimes, backpressure
spans and marks (the rows of :func:`solstice_inspect.charts.timeline`), as compact
columns of seconds since the job's start, bounded whatever the job's size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from solstice_inspect.analysis.snapshot import SNAPSHOT_COLUMNS, JobSnapshot

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Job

__all__ = ["MAX_LANES", "MAX_MARKS", "snapshot_at", "timeline_state", "travel_catalog"]

#: worker lanes the Timeline tab draws (failed first, then lost, then the longest-lived)
MAX_LANES = 200
#: marks drawn (failures and restarts first, then checkpoints, evenly thinned)
MAX_MARKS = 1_000
#: catalog totals that are the attempt's *final* figures: not true of an earlier moment
_FINAL_TOTALS = ("records_in", "records_out", "workers", "exceptions", "duration_s")


def _epoch(value: Any) -> float | None:
    """Epoch seconds of a time value (None for a missing one)."""
    if value is None:
        return None
    stamp: Any = pd.Timestamp(value)
    return None if pd.isna(stamp) else float(stamp.timestamp())


def travel_catalog(catalog: dict[str, Any], t: float) -> dict[str, Any]:
    """The catalog row as it read at ``t`` (epoch seconds).

    Examples
    --------
    >>> cat = {"status": "COMPLETED", "start_time": pd.Timestamp(100, unit="s", tz="UTC"),
    ...        "end_time": pd.Timestamp(200, unit="s", tz="UTC"), "records_in": 9}
    >>> at = travel_catalog(cat, 150.0)
    >>> at["status"], at["end_time"], "records_in" in at
    ('RUNNING', None, False)
    >>> travel_catalog(cat, 250.0)["status"]
    'COMPLETED'
    """
    out = dict(catalog)
    end = _epoch(catalog.get("end_time"))
    if end is not None and t >= end:
        return out
    out["status"] = "RUNNING"
    out["end_time"] = None
    for key in _FINAL_TOTALS:
        out.pop(key, None)
    return out


def _read_until(job: Job, t: float) -> dict[str, Any]:
    """Every snapshot table's rows with ``ts <= t`` (``until`` is exclusive: + 1 µs)."""
    until = pd.Timestamp(round(t * 1e6) + 1, unit="us", tz="UTC")
    rows = {}
    for name, columns in SNAPSHOT_COLUMNS.items():
        if job.version(name) is None:
            continue  # never written
        rows[name] = job.table(name, columns=columns, until=until)
    return rows


def snapshot_at(job: Job, t: float, catalog: dict[str, Any]) -> JobSnapshot:
    """The attempt as of ``t`` (epoch seconds): the stored rows with ``ts <= t`` folded
    into a fresh :class:`JobSnapshot`, with the catalog row as of ``t``.

    ``snapshot_at(job, t, catalog).header(now=t)`` is the header a monitor open at ``t``
    would have shown: records, workers alive, exceptions, stage status and bottleneck.
    """
    snap = JobSnapshot(job.job_id, job.attempt_id)
    snap.add(_read_until(job, t))
    snap.set_catalog(travel_catalog(catalog, t))
    return snap


def alive_by_stage(snap: JobSnapshot) -> dict[str, int] | None:
    """Workers alive per stage from the lifecycle rows folded in (last event STARTED), or
    None when there are none (workers that only report: the stage windows' count holds).

    Exact at any moment, where a stage window's count can lag a stop that arrived late.
    """
    workers = snap.workers().to_pandas()
    if workers.empty or workers["status"].isna().all():
        return None
    alive = workers[workers["status"] == "RUNNING"]
    counts = alive.groupby("stage_id").size()
    return {sid: int(counts.get(sid, 0)) for sid in snap.stage_ids}


def travel_summary(snap: JobSnapshot) -> Any:
    """The stage summary as of the snapshot, with workers alive from the lifecycle."""
    summary = snap.stage_summary().copy()
    alive = alive_by_stage(snap)
    if alive is not None:
        summary["workers_alive"] = pd.array(
            [alive.get(s, 0) for s in summary["stage_id"]], dtype="Int64"
        )
    return summary


def travel_header(snap: JobSnapshot, t: float) -> dict[str, Any]:
    """The header as of ``t``: :meth:`JobSnapshot.header` at ``now = t``, workers alive
    from the lifecycle rows, and ``as_of``."""
    head = snap.header(now=t)
    alive = alive_by_stage(snap)
    if alive is not None and head.get("status") != "LOST":
        head["workers"] = float(sum(alive.values()))
    head.update(as_of=t, updated_age_s=None, stale_after_s=None)
    return head


def stage_states(snap: JobSnapshot) -> list[dict[str, Any]]:
    """Per stage, as the snapshot has it: status, workers alive, records in / out."""
    summary = travel_summary(snap)
    stages = snap.dag.stages
    statuses = dict(zip(stages["stage_id"], stages["status"]))
    out = []
    for row in summary.to_dict("records"):
        sid = row["stage_id"]
        status = statuses.get(sid)
        workers = _int(row.get("workers_alive"))
        if not isinstance(status, str) or status in ("", "PENDING"):
            # real Solstice sends no stage lifecycle: say what the figures show
            started = _int(row.get("input_records")) or _int(row.get("output_records"))
            status = "RUNNING" if workers else "IDLE" if started else "NOT STARTED"
        out.append(
            {
                "stage_id": sid,
                "status": status,
                "workers": workers,
                "records_in": _int(row.get("input_records")),
                "records_out": _int(row.get("output_records")),
                "backpressure": row.get("backpressure_level"),
            }
        )
    return out


def _int(value: Any) -> int | None:
    if value is None or pd.isna(value):
        return None
    return int(value)


def _secs(values: Any, t0: float) -> list[float]:
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    micros = stamps.astype("datetime64[us, UTC]").astype("int64").to_numpy()
    return [round(float(x), 3) for x in micros / 1e6 - t0]


def timeline_state(job: Job, *, max_lanes: int = MAX_LANES, max_marks: int = MAX_MARKS) -> dict:
    """The Timeline tab's rows as compact columns (seconds since ``t0``).

    ``{t0, t1, lanes, total_workers, spans: {lane, s, e, ended}, bp: {lane, s, e},
    marks: {lane, t, kind, label}}``: ``lane`` indexes ``lanes`` (-1: a rule across every
    lane, e.g. a checkpoint). At most ``max_lanes`` worker lanes and ``max_marks`` marks.
    """
    from solstice_inspect.charts import timeline_lanes
    from solstice_inspect.widgets.monitor_tabs import api_job

    laid = timeline_lanes(api_job(job), max_workers=max_lanes)
    order = list(laid.order)
    index = {lane: i for i, lane in enumerate(order)}
    spans, bp, marks = laid.spans, laid.backpressure, laid.marks
    times = [*spans.get("start", []), *spans.get("end", []), *marks.get("ts", [])]
    stamps = pd.to_datetime(pd.Series(times, dtype=object), utc=True).dropna()
    info_start = _epoch(job.info.get("start_time")) if hasattr(job, "info") else None
    t0 = (
        info_start
        if info_start is not None
        else (float(stamps.min().timestamp()) if len(stamps) else 0.0)
    )
    t1 = float(stamps.max().timestamp()) if len(stamps) else t0
    if len(marks) > max_marks:
        urgent = marks[marks["kind"].isin(["failure", "restart"])].head(max_marks)
        rest = marks.drop(index=urgent.index)
        room = max_marks - len(urgent)
        step = max(1, math.ceil(len(rest) / max(room, 1)))
        marks = pd.concat([urgent, rest.iloc[::step].head(room)]).sort_values("ts")
    return {
        "t0": t0,
        "t1": max(t1, t0),
        "lanes": order,
        "total_workers": int(laid.total_workers),
        "spans": {
            "lane": [index.get(x, -1) for x in spans["lane"]],
            "s": _secs(spans["start"], t0),
            "e": _secs(spans["end"], t0),
            "ended": [str(x) for x in spans["ended"]],
            "worker": [str(x) for x in spans["worker_id"]],
        },
        "bp": {
            "lane": [index.get(x, -1) for x in bp["lane"]],
            "s": _secs(bp["start"], t0),
            "e": _secs(bp["end"], t0),
        },
        "marks": {
            "lane": [index.get(x, -1) for x in marks["lane"]],
            "t": _secs(marks["ts"], t0),
            "kind": [str(x) for x in marks["kind"]],
            "label": [str(x)[:120] for x in marks["label"].fillna("")],
        },
    }
