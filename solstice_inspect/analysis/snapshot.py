"""The job model every view renders: :class:`JobSnapshot`.

Pure: rows in (Arrow tables, as a store scan returns them), figures out; no I/O, no
clock (``now`` is an argument). It is updated incrementally: :meth:`JobSnapshot.add`
costs what the new rows cost, not what the job's history costs, so a one-hour job updates
as fast as a one-minute one. An archived job is one ``add`` of every row; a live job is
the same ``add`` for each poll's new rows — and the figures are the same either way.

The header, the stage summary, the workers table, the exception groups, the partitions
and progress / ETA all come from here; the widget, ``Job._repr_html_``,
``solstice-inspect show`` and the static fallback all render it.

Examples
--------
>>> import solstice_inspect as si, tempfile
>>> store = si.connect(tempfile.mkdtemp())
>>> with store.record("etl") as rec:
...     _ = rec.ingest([
...         si.envelope("job_started", "etl", "etl", 1e9, {"dag_edges": {"read": ["write"]}}),
...         si.envelope("worker_metrics", "etl", "read_w0", 1e9 + 1,
...                     {"stage_id": "read", "input_records": 0, "output_records": 10}),
...         si.envelope("worker_metrics", "etl", "write_w0", 1e9 + 2,
...                     {"stage_id": "write", "input_records": 10, "output_records": 0}),
...     ])
>>> snap = store.job("etl").snapshot()
>>> head = snap.header(now=1e9 + 3)
>>> head["records_in"], head["records_out"]     # a sink's output is what it wrote
(10, 10)
"""

from __future__ import annotations

import json
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as _pc

from solstice_inspect.analysis.exceptions import ExceptionGroups
from solstice_inspect.analysis.stages import (
    SKEW_THRESHOLD,
    SPARK_POINTS,
    SUMMARY_COLUMNS,
    StageWindows,
    bottleneck,
    finite,
)
from solstice_inspect.schema import FINAL_STATUSES, json_map
from solstice_inspect.semantics import job_records, sink_written, sources_and_sinks
from solstice_inspect.store.reader import Dag

#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

__all__ = ["SNAPSHOT_COLUMNS", "JobSnapshot"]

#: the tables the model reads (and follows live), with the columns it needs (None: all)
SNAPSHOT_COLUMNS: dict[str, list[str] | None] = {
    "job": None,
    "stages": None,
    "stage_metrics": None,
    "worker_metrics": [
        "ts", "worker_id", "stage_id", "input_records", "output_records",
        "processed_count", "input_rate", "output_rate", "batch",
    ],
    "workers": [
        "ts", "worker_id", "stage_id", "event", "reason", "node_id", "processed_count",
        "error_count", "batch",
    ],
    "worker_resources": [
        "ts", "worker_id", "stage_id", "cpu_percent", "memory_mb", "gpu_utilization",
        "gpu_memory_mb", "batch",
    ],
    "partition_metrics": None,
    "exceptions": None,
}  # fmt: skip

WORKER_COLUMNS = [
    "worker_id", "stage_id", "status", "input_records", "output_records",
    "processed_count", "output_rate", "cpu_percent", "memory_mb", "gpu_utilization",
    "node_id", "reason", "last_seen", "stale",
]  # fmt: skip
_STOPPED = ("STOPPED", "FAILED", "KILLED")


def epoch_seconds(value: Any) -> float | None:
    """A catalog time (timestamp, datetime, None or NaT) as epoch seconds, or None."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(ts) else float(cast(pd.Timestamp, ts).timestamp())


def _latest_per_key(table: pa.Table, keys: list[str]) -> pd.DataFrame:
    """The newest row (by ``ts``; later rows win ties) per key, as pandas."""
    if table.num_rows >= 10_000:  # reduce in Arrow first: 1M rows in ~50 ms
        newest = table.group_by(keys).aggregate([("ts", "max")]).rename_columns([*keys, "ts"])
        table = table.join(newest, keys=[*keys, "ts"], join_type="inner")
        order = pc.sort_indices(table, [("batch", "ascending")]) if "batch" in table else None
        if order is not None:
            table = table.take(order)
    df = table.to_pandas()
    df = df.sort_values("ts", kind="stable")
    return df.drop_duplicates(keys, keep="last")


class JobSnapshot:
    """Every figure of one attempt, kept up to date by :meth:`add`; see the module doc.

    Parameters
    ----------
    job_id, attempt_id
        The attempt the rows belong to.
    """

    def __init__(self, job_id: str, attempt_id: str) -> None:
        self.job_id = job_id
        self.attempt_id = attempt_id
        self.catalog: dict[str, Any] = {}
        self.config: dict[str, Any] = {}
        self.dag_edges: dict[str, list[str]] = {}
        self.error: str | None = None
        self.final_metrics: dict[str, Any] | None = None
        self.job_status: str | None = None
        self._job_key: tuple[int, int] | None = None
        self._stage_ids: list[str] = []  # in order of first appearance
        self._spec_order: list[str] = []  # as the latest job row declares them
        self._specs: dict[str, dict[str, Any]] = {}
        self._spec_keys: dict[str, tuple[int, int]] = {}
        self._acc: dict[str, StageWindows] = {}
        self._sm_chunks: list[pa.Table] = []
        self._sm_frame: pd.DataFrame | None = None
        self._workers: dict[str, dict[str, Any]] = {}
        self._events: dict[str, dict[str, Any]] = {}
        self._resources: dict[str, dict[str, Any]] = {}
        self._partitions: dict[tuple[str, str], dict[str, Any]] = {}
        self._exc_chunks: list[pa.Table] = []
        self._exc_table: pa.Table | None = None
        self._groups = ExceptionGroups()
        self._summary: pd.DataFrame | None = None
        self._dag: Dag | None = None
        self._worker_table: pa.Table | None = None
        self._order = 0  # rows seen, for "which came first" among equal timestamps

    def __repr__(self) -> str:
        return (
            f"JobSnapshot({self.job_id!r}, attempt={self.attempt_id!r}, "
            f"stages={len(self._stage_ids)}, workers={len(self._worker_ids())}, "
            f"exceptions={self._groups.seen})"
        )

    # ------------------------------------------------------------------ folding
    def add(self, rows: dict[str, pa.Table]) -> set[str]:
        """Fold new rows in (per table, as scanned); return the tables that brought any."""
        changed: set[str] = set()
        for name in SNAPSHOT_COLUMNS:
            table = rows.get(name)
            if table is None or table.num_rows == 0:
                continue
            if not isinstance(table, pa.Table):
                raise TypeError(f"rows[{name!r}] must be a pyarrow.Table, not {type(table)}")
            getattr(self, "_add_" + name)(table)
            self._order += table.num_rows
            changed.add(name)
        if changed & {"job", "stages", "stage_metrics", "worker_metrics", "workers"}:
            self._summary = None
            self._dag = None
        if changed & {"worker_metrics", "workers", "worker_resources"}:
            self._worker_table = None
        return changed

    def set_catalog(self, row: dict[str, Any]) -> None:
        """The attempt's catalog row (status with LOST derived, times, heartbeat)."""
        self.catalog = dict(row)

    def _see_stage(self, stage_id: Any) -> None:
        if isinstance(stage_id, str) and stage_id and stage_id not in self._specs:
            self._specs[stage_id] = {}
            self._stage_ids.append(stage_id)

    def _add_job(self, table: pa.Table) -> None:
        df = table.to_pandas()
        for i, row in enumerate(df.to_dict("records")):
            key = (int(row["ts"].value), self._order + i)
            if self._job_key is not None and key < self._job_key:
                continue
            self._job_key = key
            self.job_status = row.get("status")
            if isinstance(row.get("config"), str) and row["config"]:
                self.config = json_map(row["config"])
            if isinstance(row.get("dag_edges"), str) and row["dag_edges"]:
                self.dag_edges = {
                    str(k): [str(d) for d in v] for k, v in json.loads(row["dag_edges"]).items()
                }
            if isinstance(row.get("stage_specs"), str) and row["stage_specs"]:
                specs = json.loads(row["stage_specs"])
                self._spec_order = [str(x.get("stage_id")) for x in specs if x.get("stage_id")]
                for spec in specs:
                    sid = spec.get("stage_id")
                    self._see_stage(sid)
                    if sid in self._specs:
                        merged = {k: v for k, v in spec.items() if v is not None}
                        self._specs[sid] = {**self._specs[sid], **merged}
            error = row.get("error")
            self.error = error if isinstance(error, str) else None
            final = row.get("final_metrics")
            self.final_metrics = json_map(final) if isinstance(final, str) else None
        for up, downs in self.dag_edges.items():
            for sid in (up, *downs):
                self._see_stage(sid)

    def _add_stages(self, table: pa.Table) -> None:
        df = table.to_pandas()
        for i, row in enumerate(df.to_dict("records")):
            sid = row["stage_id"]
            self._see_stage(sid)
            key = (int(row["ts"].value), self._order + i)
            if key < self._spec_keys.get(sid, (-1, -1)):
                continue
            self._spec_keys[sid] = key
            spec = self._specs[sid]
            if row.get("operator_type"):
                spec["operator_type"] = row["operator_type"]
            for col in ("min_parallelism", "max_parallelism"):
                if row.get(col) is not None and not pd.isna(row[col]):
                    spec[col] = int(row[col])
            spec["status"] = row.get("status")

    def _add_stage_metrics(self, table: pa.Table) -> None:
        self._sm_chunks.append(table)
        self._sm_frame = None
        df = table.to_pandas()
        df["_us"] = df["ts"].astype("datetime64[us, UTC]").astype("int64")
        for key, g in df.groupby("stage_id", sort=False):
            sid = str(key)
            self._see_stage(sid)
            acc = self._acc.get(sid)
            g = g.sort_values("_us", kind="stable")
            if acc is not None and acc.last_ts is not None and g["_us"].iloc[0] < acc.last_ts:
                # a late window of this stage: refold it from its whole (kept) history
                acc = None
                g = self._stage_history(sid)
            if acc is None:
                acc = self._acc[sid] = StageWindows()
            acc.fold(g)

    def _stage_history(self, stage_id: str) -> pd.DataFrame:
        frame = self.stage_metrics
        g = frame[frame["stage_id"] == stage_id].copy()
        g["_us"] = g["ts"].astype("datetime64[us, UTC]").astype("int64")
        return g.sort_values("_us", kind="stable")

    def _add_worker_metrics(self, table: pa.Table) -> None:
        self._merge_latest(self._workers, _latest_per_key(table, ["worker_id"]), ["worker_id"])

    def _add_workers(self, table: pa.Table) -> None:
        self._merge_latest(self._events, _latest_per_key(table, ["worker_id"]), ["worker_id"])

    def _add_worker_resources(self, table: pa.Table) -> None:
        latest = _latest_per_key(table, ["worker_id"])
        self._merge_latest(self._resources, latest, ["worker_id"])

    def _add_partition_metrics(self, table: pa.Table) -> None:
        keys = ["stage_id", "partition_id"]
        self._merge_latest(self._partitions, _latest_per_key(table, keys), keys)

    def _merge_latest(self, into: dict, latest: pd.DataFrame, keys: list[str]) -> None:
        for row in latest.to_dict("records"):
            key = row[keys[0]] if len(keys) == 1 else tuple(row[k] for k in keys)
            old = into.get(key)
            if old is None or row["ts"] >= old["ts"]:
                into[key] = row
            stage = row.get("stage_id")
            self._see_stage(stage)

    def _add_exceptions(self, table: pa.Table) -> None:
        self._exc_chunks.append(table)
        self._exc_table = None
        self._groups.add(table)

    # ------------------------------------------------------------------ figures
    @property
    def status(self) -> str:
        """The attempt's status (catalog, LOST derived), else its last job row's."""
        return str(self.catalog.get("status") or self.job_status or "RUNNING")

    @property
    def running(self) -> bool:
        """Whether the attempt is RUNNING."""
        return self.status == "RUNNING"

    @property
    def stage_ids(self) -> list[str]:
        """Every stage seen so far, in an order that does not depend on the rows' order.

        The declared ones in declaration order, then those that only reported, by name.
        """
        declared = [s for s in self._declared() if s in self._specs]
        return declared + sorted(s for s in self._stage_ids if s not in set(declared))

    def _declared(self) -> list[str]:
        order = list(self._spec_order)
        for up, downs in self.dag_edges.items():
            order.extend((up, *downs))
        return list(dict.fromkeys(order))

    @property
    def dag(self) -> Dag:
        """The stage graph: declared stages and edges, plus stages that only reported."""
        if self._dag is None:
            cols = ["stage_id", "operator_type", "min_parallelism", "max_parallelism", "status"]
            frame = pd.DataFrame(
                [{"stage_id": s, **self._specs.get(s, {})} for s in self.stage_ids],
                columns=cols,
            )
            edges = [(u, d) for u, downs in self.dag_edges.items() for d in downs]
            self._dag = Dag(frame, edges)
        return self._dag

    def sources_and_sinks(self) -> tuple[list[str] | None, list[str] | None]:
        """Source and sink stages (``semantics.sources_and_sinks``)."""
        return sources_and_sinks(self.stage_ids, self.dag_edges)

    def stage_totals(self) -> dict[str, tuple[int, int]]:
        """(input, output) records of each stage that reported, as of its last window."""
        out = {}
        for sid, acc in self._acc.items():
            if acc.last is not None:
                out[sid] = (int(acc.last["input_records"]), int(acc.last["output_records"]))
        return out

    def stage_summary(self) -> pd.DataFrame:
        """One row per stage, in DAG order.

        Totals, mean and current rates, workers alive, queue lag, backpressure ratio
        (time-weighted), seconds backpressured (its numerator) and level, skew.
        """
        if self._summary is not None:
            return self._summary
        dag = self.dag
        order = dag.topological_order()
        rows = []
        for sid in order:
            spec = self._specs.get(sid, {})
            acc = self._acc.get(sid)
            base = {
                "stage_id": sid,
                "operator_type": spec.get("operator_type"),
                "max_parallelism": spec.get("max_parallelism"),
            }
            rows.append({**base, **(acc.summary() if acc is not None else StageWindows.EMPTY)})
        summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
        # the same dtypes whatever the rows held (a null in one batch must not turn a
        # column to float in one model and not in another)
        for col in ("workers_alive", "max_parallelism", "input_records", "output_records",
                    "queue_lag"):  # fmt: skip
            summary[col] = pd.array(
                [None if v is None or pd.isna(v) else int(v) for v in summary[col]], "Int64"
            )
        for col in ("selectivity", "input_rate", "output_rate", "output_rate_now",
                    "backpressure_ratio", "backpressured_s", "skew_ratio"):  # fmt: skip
            summary[col] = summary[col].astype("float64")
        # what a DAG node shows: the rate now while running, the job's mean after
        summary["display_rate"] = summary["output_rate_now" if self.running else "output_rate"]
        self._summary = summary
        return summary

    def _written_rate(self, sid: str, *, now: bool) -> float | None:
        """A stage's output rate; for a sink reporting no output, its input rate."""
        acc = self._acc.get(sid)
        if acc is None or acc.last is None:
            return None
        sink_reports_nothing = not acc.last["output_records"]
        if now:
            return acc.rate_in_now if sink_reports_nothing else acc.rate_out_now
        row = self.stage_summary().set_index("stage_id").loc[sid]
        value = row["input_rate"] if sink_reports_nothing else row["output_rate"]
        return finite(value)

    def _sum_rates(self, stages: list[str] | None, *, now: bool, sinks: bool) -> float | None:
        if not stages:
            return None
        values = []
        for sid in stages:
            if sinks:
                v = self._written_rate(sid, now=now)
            else:
                acc = self._acc.get(sid)
                if acc is None:
                    continue
                v = (
                    acc.rate_out_now
                    if now
                    else finite(self.stage_summary().set_index("stage_id").loc[sid, "output_rate"])
                )
            if v is not None:
                values.append(v)
        return float(sum(values)) if values else None

    def spark(self) -> list[float]:
        """The sinks' written rate over the last windows (≤ 60 points), for a sparkline."""
        _, sinks = self.sources_and_sinks()
        by_ts: dict[int, float] = {}
        for sid in sinks or ():
            acc = self._acc.get(sid)
            if acc is None or acc.last is None:
                continue
            use_input = not acc.last["output_records"]
            for us, out_rate, in_rate in acc.recent:
                v = in_rate if use_input else out_rate
                if v is not None:
                    by_ts[us] = by_ts.get(us, 0.0) + v
        return [round(by_ts[k], 2) for k in sorted(by_ts)][-SPARK_POINTS:]

    def header(self, *, now: float) -> dict[str, Any]:
        """The header's figures (a small dict; see ``docs/widget-protocol.md``)."""
        cat = self.catalog
        status = self.status
        start = epoch_seconds(cat.get("start_time"))
        end = epoch_seconds(cat.get("end_time"))
        if status == "RUNNING" and start is not None:
            elapsed = now - start
        elif start is not None and end is not None:
            elapsed = end - start
        else:
            elapsed = finite(cat.get("duration_s"))
        reason = ""
        if status == "LOST":
            hb = epoch_seconds(cat.get("heartbeat"))
            every = finite(cat.get("heartbeat_interval_s"))
            reason = (
                f"no heartbeat for {now - hb:.0f} s"
                + (f" (expected every {every:g} s)" if every else "")
                + ": the recorder is gone"
                if hb is not None
                else "no heartbeat: the recorder is gone"
            )
        elif status == "FAILED" and self.error:
            reason = self.error.splitlines()[0][:200] if self.error else ""
        sources, sinks = self.sources_and_sinks()
        totals = self.stage_totals()
        records_in, records_out = job_records(totals, sources, sinks) if totals else (None, None)
        if records_in is None:
            records_in = finite(cat.get("records_in"))
        if records_out is None:
            records_out = finite(cat.get("records_out"))
        if self._acc:
            workers = float(sum(int(a.last["workers_alive"]) for a in self._acc.values() if a.last))
        else:
            workers = finite(cat.get("workers"))
        exceptions = (
            float(self._groups.seen) if self._groups.seen else finite(cat.get("exceptions"))
        )
        running = status == "RUNNING"
        rate_in = self._sum_rates(sources, now=running, sinks=False)
        rate_out = self._sum_rates(sinks, now=running, sinks=True)
        total = finite(self.config.get("total_records"))
        progress = eta = None
        if total and records_in is not None:
            progress = min(1.0, records_in / total)
            if status in FINAL_STATUSES:
                eta = 0.0
            elif rate_in:
                eta = max(0.0, (total - records_in) / rate_in)
        summary = self.stage_summary()
        return {
            "job_id": self.job_id,
            "attempt_id": self.attempt_id,
            "status": status,
            "status_reason": reason,
            "running": running,
            "start": start,
            "elapsed_s": None if elapsed is None else round(elapsed, 1),
            "progress": None if progress is None else round(progress, 4),
            "eta_s": None if eta is None else round(eta),
            "records_in": records_in,
            "records_out": records_out,
            "rate_in": None if rate_in is None else round(rate_in, 1),
            "rate_out": None if rate_out is None else round(rate_out, 1),
            # a LOST attempt's recorder is gone: how many workers live now is unknown
            "workers": None if status == "LOST" else workers,
            "exceptions": exceptions,
            "bottleneck": bottleneck(summary) if running else None,
        }

    @property
    def worker_count(self) -> int:
        """Workers seen (lifecycle, metrics or resources), without building the table."""
        return len(self._worker_ids())

    def _worker_ids(self) -> list[str]:
        return list(dict.fromkeys([*self._events, *self._workers, *self._resources]))

    def workers(self) -> pa.Table:
        """One row per worker: status, counters, rate, resources, last seen, ``stale``.

        ``processed_count`` (splits) comes from the worker_stopped message when it is newer
        than the worker's last metrics — real Solstice workers send no final report, so
        their last counters can be behind — and such a worker is marked ``stale`` when
        its metrics miss splits (or the stop message does not say how many).
        """
        if self._worker_table is not None:
            return self._worker_table
        rows = []
        for wid in self._worker_ids():
            m = self._workers.get(wid) or {}
            e = self._events.get(wid) or {}
            r = self._resources.get(wid) or {}
            event = e.get("event")
            status = "RUNNING" if event == "STARTED" else event
            processed = m.get("processed_count")
            stale = False
            if event in _STOPPED and m and e["ts"] > m["ts"]:
                stopped_count = e.get("processed_count")
                if stopped_count is None or pd.isna(stopped_count):
                    stale = True
                elif processed is None or pd.isna(processed) or stopped_count > processed:
                    stale = True
                    processed = stopped_count
            elif event in _STOPPED and not m:
                processed = e.get("processed_count")
            seen = [x["ts"] for x in (m, e, r) if x]
            rows.append(
                {
                    "worker_id": wid,
                    "stage_id": m.get("stage_id") or e.get("stage_id") or r.get("stage_id"),
                    "status": status,
                    "input_records": m.get("input_records"),
                    "output_records": m.get("output_records"),
                    "processed_count": processed,
                    "output_rate": m.get("output_rate"),
                    "cpu_percent": r.get("cpu_percent"),
                    "memory_mb": r.get("memory_mb"),
                    "gpu_utilization": r.get("gpu_utilization"),
                    "node_id": e.get("node_id"),
                    "reason": e.get("reason") if event in _STOPPED else None,
                    "last_seen": max(seen) if seen else None,
                    "stale": stale,
                }
            )
        df = pd.DataFrame(rows, columns=WORKER_COLUMNS)
        df = df.sort_values(["stage_id", "worker_id"], kind="stable").reset_index(drop=True)
        for col in ("input_records", "output_records", "processed_count"):
            df[col] = df[col].astype("Int64")
        for col in ("output_rate", "cpu_percent", "memory_mb", "gpu_utilization"):
            df[col] = df[col].astype("float64")
        df["last_seen"] = pd.to_datetime(df["last_seen"], utc=True).astype("datetime64[us, UTC]")
        df["stale"] = df["stale"].astype(bool)
        self._worker_table = pa.Table.from_pandas(df, preserve_index=False)
        return self._worker_table

    @property
    def exceptions(self) -> pa.Table:
        """Every exception occurrence seen, in the order it was stored."""
        if self._exc_table is None:
            if self._exc_chunks:
                self._exc_table = pa.concat_tables(self._exc_chunks)
                self._exc_chunks = [self._exc_table]
            else:
                from solstice_inspect.schema import SCHEMAS

                self._exc_table = SCHEMAS["exceptions"].empty_table()
        return self._exc_table

    def exception_groups(self) -> pd.DataFrame:
        """One row per fingerprint, most frequent first (:class:`ExceptionGroups`)."""
        return self._groups.table()

    def partitions(self, stage_id: str | None = None) -> pd.DataFrame:
        """Latest offsets and lag per partition (of one stage, or all)."""
        cols = ["stage_id", "partition_id", "latest_offset", "committed_offset", "lag",
                "worker_id", "ts"]  # fmt: skip
        rows = [
            {c: row.get(c) for c in cols}
            for key, row in self._partitions.items()
            if stage_id is None or key[0] == stage_id
        ]
        df = pd.DataFrame(rows, columns=cols)
        df = df.sort_values(["stage_id", "partition_id"], kind="stable").reset_index(drop=True)
        # skew per partition: its lag over its stage's mean lag; > 2 is flagged (DESIGN §5)
        lag = pd.Series(pd.to_numeric(df["lag"], errors="coerce"), dtype=float)
        stage = pd.Series(df["stage_id"])
        mean = pd.Series(lag.groupby(stage).transform("mean"), dtype=float)
        ratio = (lag / mean).where(mean > 0)
        count = pd.Series(stage.map(stage.value_counts()), dtype=float)
        df["lag_vs_mean"] = ratio.round(2)
        df["flagged"] = (ratio > SKEW_THRESHOLD) & (count >= 2)
        return df

    @property
    def stage_metrics(self) -> pd.DataFrame:
        """The whole ``stage_metrics`` history seen (for charts), sorted by time."""
        frame = self._sm_frame
        if frame is None:
            if self._sm_chunks:
                table = pa.concat_tables(self._sm_chunks)
                self._sm_chunks = [table]
                frame = table.to_pandas().sort_values("ts", kind="stable").reset_index(drop=True)
            else:
                frame = pd.DataFrame()
            self._sm_frame = frame
        return frame

    def _evidence(self, stage_id: str, summary: pd.DataFrame) -> list[list[Any]]:
        """Why a stage looks slow.

        Its flagged partitions, since when it has been backpressured, and whether it is
        the job's bottleneck.
        """
        out: list[list[Any]] = []
        parts = self.partitions(stage_id)
        flagged: pd.DataFrame = parts.loc[parts["flagged"].astype(bool)]
        if len(parts) >= 2:
            shown = ", ".join(
                f"{p.partition_id} (lag {int(p.lag):,}, {p.lag_vs_mean:.1f}x mean)"
                for p in flagged.sort_values("lag", ascending=False).head(5).itertuples()
            )
            more = f" +{len(flagged) - 5} more" if len(flagged) > 5 else ""
            text = f"{len(flagged)} of {len(parts)}" + (f": {shown}{more}" if shown else "")
            out.append(["flagged partitions (lag > 2x mean)", text, "string"])
        sm = self.stage_metrics
        if not sm.empty and "backpressure_active" in sm:
            mine = sm.loc[sm["stage_id"] == stage_id, ["ts", "backpressure_active"]]
            active = mine["backpressure_active"].fillna(False).astype(bool).to_numpy()
            if len(active) and active[-1]:
                # the start of the current run of backpressured windows
                calm = (~active).nonzero()[0]
                first = int(calm[-1]) + 1 if len(calm) else 0
                out.append(["backpressured since", mine["ts"].iloc[first].timestamp(), "time"])
        neck = bottleneck(summary)
        if neck is not None:
            if neck == stage_id:
                s = summary[summary["stage_id"] == stage_id].iloc[0]
                why = (
                    f"yes: most downstream backpressured stage ({s['backpressure_level']})"
                    if s["backpressure_level"] in ("LOW", "HIGH")
                    else "yes: largest input queue lag, nothing backpressured"
                )
            else:
                why = f"no: {neck} is"
            out.append(["bottleneck", why, "string"])
        return out

    def stage_facts(self, stage_id: str) -> list[list[Any]]:
        """The selected stage's figures as ``[label, value, type]`` rows (stage detail)."""
        summary = self.stage_summary()
        row = summary[summary["stage_id"] == stage_id]
        if row.empty:
            return [["stage", stage_id, "string"], ["status", "not seen yet", "string"]]
        s = row.iloc[0].to_dict()
        spec = self._specs.get(stage_id, {})
        _, sinks = self.sources_and_sinks()
        facts = [
            ["operator", s.get("operator_type"), "string"],
            ["status", spec.get("status"), "string"],
            ["records in", s.get("input_records"), "int"],
            ["records out", s.get("output_records"), "int"],
        ]
        if sinks and stage_id in sinks:
            written = sink_written(s.get("input_records"), s.get("output_records"))
            facts.append(["records written (sink)", written, "int"])
        facts += [
            ["selectivity", s.get("selectivity"), "float"],
            ["mean rate in (rec/s)", s.get("input_rate"), "float"],
            ["mean rate out (rec/s)", s.get("output_rate"), "float"],
            ["rate out now (rec/s)", s.get("output_rate_now"), "float"],
            ["parallelism min", spec.get("min_parallelism"), "int"],
            ["parallelism max", spec.get("max_parallelism"), "int"],
            ["workers alive", s.get("workers_alive"), "int"],
            ["queue lag", s.get("queue_lag"), "int"],
            ["backpressure", f"{s.get('backpressure_level')}", "string"],
            ["backpressure ratio", s.get("backpressure_ratio"), "float"],
            ["skew ratio", s.get("skew_ratio"), "float"],
        ]
        facts += self._evidence(stage_id, summary)
        clean = []
        for label, value, kind in facts:
            v = finite(value) if kind in ("int", "float") else value
            clean.append([label, v, kind])
        return clean
