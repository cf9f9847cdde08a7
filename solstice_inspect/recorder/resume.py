"""Resuming an attempt from the store after the recorder's process died (DESIGN §7).

Ray restarts the recorder actor; the new one calls :func:`restore` to rebuild its fold
from what the old one had flushed, and goes on writing the same attempt. Because worker
and stage counters are cumulative, the first report of each worker after the restart
brings the totals back to the truth: what can be missing is what was folded but not yet
flushed when the process died — at most one flush interval of *events* (exceptions,
lineage, logs). :func:`restore` measures that gap and the recorder records it as a
``recorder_restarted`` event, so it is counted and shown, never silent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow.compute as _pc

from solstice_inspect.recorder.fold import SPLIT_WINDOW, Fold
from solstice_inspect.schema import JOB_TABLES, SCHEMAS
from solstice_inspect.store import layout
from solstice_inspect.store.reader import Job
from solstice_inspect.store.scan import scan

log = logging.getLogger("solstice_inspect.recorder")
#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

__all__ = ["Restored", "restore"]


@dataclass(frozen=True)
class Restored:
    """What a resumed recorder found.

    The last flush number, the newest row's message time, the rows kept, and when the
    dead recorder last wrote (its last catalog heartbeat, wall clock).
    """

    last_batch: int
    last_ts: float | None
    rows: int
    last_write: float | None


def _frame(job: Job, table: str) -> pd.DataFrame:
    return job.table(table).to_pandas()


def _latest(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if df.empty:
        return df
    return df.sort_values(["batch", "ts"], kind="stable").drop_duplicates(keys, keep="last")


def _num(value: Any) -> Any:
    return None if value is None or pd.isna(value) else value


def restore(fold: Fold, job: Job) -> Restored:
    """Rebuild ``fold`` (a fresh one) from the attempt's stored rows; see the module doc."""
    last_batch = -1
    last_ts: float | None = None
    rows = 0
    frames: dict[str, pd.DataFrame] = {}
    for name in JOB_TABLES:
        df = _frame(job, name)
        frames[name] = df
        rows += len(df)
        if len(df):
            last_batch = max(last_batch, int(df["batch"].max()))
            ts = df["ts"].max().timestamp()
            last_ts = ts if last_ts is None else max(last_ts, ts)
    catalog = scan(
        layout.catalog_uri(job.store.root),
        SCHEMAS["catalog"],
        where=f"job_id = '{job.job_id}' AND attempt_id = '{job.attempt_id}'",
    ).table
    last_write = None
    if catalog.num_rows:
        last_batch = max(last_batch, int(pc.max(catalog["batch"]).as_py()))
        beat = pc.max(catalog["heartbeat"]).as_py()
        last_write = None if beat is None else beat.timestamp()  # a datetime

    job_rows = frames["job"]
    if len(job_rows):
        last = job_rows.sort_values(["batch", "ts"], kind="stable").iloc[-1]
        if isinstance(last["config"], str) and last["config"]:
            fold.config = json.loads(last["config"])
        edges = json.loads(last["dag_edges"]) if isinstance(last["dag_edges"], str) else {}
        specs = json.loads(last["stage_specs"]) if isinstance(last["stage_specs"], str) else []
        fold.set_dag(edges, [s for s in specs if isinstance(s, dict) and s.get("stage_id")])
        if pd.notna(last["start_time"]):
            fold.start_time = last["start_time"].timestamp()
    if catalog.num_rows:
        starts = catalog.column("start_time").to_pylist()
        first = min((s for s in starts if s is not None), default=None)
        if first is not None:
            ts = first.timestamp()  # a datetime
            fold.start_time = ts if fold.start_time is None else min(fold.start_time, ts)
    for row in _latest(frames["stages"], ["stage_id"]).to_dict("records"):
        st = fold._stage(row["stage_id"])
        st.operator_type = _num(row["operator_type"]) or st.operator_type
        st.min_p = _num(row["min_parallelism"])
        st.max_p = _num(row["max_parallelism"])
        st.status = _num(row["status"]) or st.status

    # workers: lifecycle first (alive or not), then their newest cumulative counters
    for row in _latest(frames["workers"], ["worker_id"]).to_dict("records"):
        w = fold._worker(row["worker_id"], row["stage_id"], row["ts"].timestamp())
        w.alive = row["event"] == "STARTED"
        w.node_id = _num(row["node_id"]) or w.node_id  # a column of nulls reads as NaN
        w.pid = _num(row["pid"])
    metrics = frames["worker_metrics"]
    if len(metrics):
        newest = metrics.sort_values(["ts", "batch"], kind="stable")
        for row in newest.drop_duplicates(["worker_id"], keep="last").to_dict("records"):
            ts = row["ts"].timestamp()
            w = fold._worker(row["worker_id"], row["stage_id"], ts)
            # the largest value seen is what the stage total holds (counters never fall)
            g = metrics[metrics["worker_id"] == row["worker_id"]]
            w.input = int(g["input_records"].max() or 0)
            w.output = int(g["output_records"].max() or 0)
            w.processed = int(g["processed_count"].max() or 0)
            w.ptime = float(g["processing_time"].max() or 0.0)
            w.key = (ts, -1)  # a resent report of the same instant changes nothing
            st = fold.stages[w.stage_id]
            st.input += w.input
            st.output += w.output

    # splits a stage master reported committed: their per-stage sums; and the recent ids
    # of every split (one redelivered after the restart is still counted once)
    lineage = frames["lineage"]
    if len(lineage):
        done: pd.DataFrame = lineage.loc[lineage["status"] != "DUPLICATE"]
        done = done.sort_values(["batch", "ts"])
        for stage_id, g in done.groupby("stage_id", sort=False):
            st = fold._stage(str(stage_id))
            counted: pd.DataFrame = g.loc[g["status"] == "COMMITTED"]
            st.split_input = int(counted["input_records"].fillna(0).sum())
            st.split_output = int(counted["output_records"].fillna(0).sum())
            recent = g["split_id"].tail(SPLIT_WINDOW).tolist()
            st.splits_window.extend(recent)
            st.splits_seen.update(recent)

    # stages: where their last window left the rates, lag and backpressure
    for row in _latest(frames["stage_metrics"], ["stage_id"]).to_dict("records"):
        st = fold._stage(row["stage_id"])
        ts = row["ts"].timestamp()
        st.emit_ts, st.window_ts, st.bp_mark = ts, ts, ts
        st.emit_input = int(row["input_records"] or 0)
        st.emit_output = int(row["output_records"] or 0)
        st.queue_lag = _num(row["queue_lag"])
        st.bp_active = bool(row["backpressure_active"])
        st.window = int(ts // fold.window_s)
        if not st.workers:
            st.msg_input, st.msg_output = st.emit_input, st.emit_output
            st.msg_workers = _num(row["workers_alive"])
    for row in _latest(frames["partition_metrics"], ["stage_id", "partition_id"]).to_dict(
        "records"
    ):
        if _num(row["lag"]) is not None:
            fold._stage(row["stage_id"]).partitions[row["partition_id"]] = int(row["lag"])

    fold.exceptions = len(frames["exceptions"])
    logs = frames["logs"]
    if len(logs):
        keys = logs["worker_id"].fillna("")
        for key, n in keys.value_counts().items():
            fold._log_counts[str(key)] = int(n)
    if last_ts is not None:
        fold.last_ts = last_ts
    log.info(
        "resumed %s/%s from the store: %d rows, last flush %d",
        job.job_id,
        job.attempt_id,
        rows,
        last_batch,
    )
    return Restored(last_batch=last_batch, last_ts=last_ts, rows=rows, last_write=last_write)
