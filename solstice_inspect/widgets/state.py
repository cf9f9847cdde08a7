"""What the monitor shows, folded from a job's rows: the initial read of an archived or
running attempt, then the new rows of each live poll. Pure data: no widget here, so the
figures can be tested without Jupyter.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from solstice_inspect.analysis.exceptions import group_exceptions
from solstice_inspect.analysis.stages import stage_summary

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Job

#: the tables the monitor reads (and follows live), with the columns it needs
TABLES: dict[str, list[str] | None] = {
    "stage_metrics": None,
    "worker_metrics": [
        "ts",
        "worker_id",
        "stage_id",
        "input_records",
        "output_records",
        "processed_count",
        "input_rate",
        "output_rate",
        "batch",
    ],
    "workers": ["ts", "worker_id", "stage_id", "event", "reason", "node_id", "batch"],
    "worker_resources": [
        "ts",
        "worker_id",
        "stage_id",
        "cpu_percent",
        "memory_mb",
        "gpu_utilization",
        "gpu_memory_mb",
        "batch",
    ],
    "partition_metrics": None,
    "exceptions": None,
    "job": None,
    "stages": None,
}
#: tables of which only the newest row per key is kept
LATEST_KEYS = {
    "worker_metrics": ["worker_id"],
    "workers": ["worker_id"],
    "worker_resources": ["worker_id"],
    "partition_metrics": ["stage_id", "partition_id"],
}
FINAL = ("COMPLETED", "FAILED", "CANCELLED")
SPARK_POINTS = 60


def _latest_rows(table: pa.Table, keys: list[str]) -> pa.Table:
    """The rows with the newest ``ts`` per key, reduced in Arrow (1M rows: ~50 ms, where
    sorting in pandas takes several times that)."""
    if table.num_rows < 10_000:
        return table
    newest = table.group_by(keys).aggregate([("ts", "max")]).rename_columns([*keys, "ts"])
    return table.join(newest, keys=[*keys, "ts"], join_type="inner")


def _latest(frame: pd.DataFrame | None, new: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    both = new if frame is None or frame.empty else pd.concat([frame, new], ignore_index=True)
    both = both.sort_values("ts", kind="stable")
    return both.drop_duplicates(keys, keep="last").reset_index(drop=True)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _epoch(value: Any) -> float | None:
    if value is None or (not isinstance(value, pd.Timestamp) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    return ts.timestamp()


class JobState:
    """Stage metrics, the latest row per worker / partition, exceptions and the catalog
    row of one attempt, kept up to date by :meth:`add`.

    Parameters
    ----------
    job
        The attempt.
    rows
        The initial rows per table (e.g. a ``LiveJob``'s first poll); read from the store
        when None.
    clock
        Returns "now" in epoch seconds (tests pass a fixed clock).
    """

    def __init__(
        self,
        job: Job,
        rows: dict[str, pa.Table] | None = None,
        *,
        catalog: dict[str, Any] | None = None,
        clock: Any = time.time,
    ) -> None:
        self.job = job
        self.clock = clock
        self.stage_metrics = pd.DataFrame()
        self.workers_latest: pd.DataFrame | None = None
        self.worker_events: pd.DataFrame | None = None
        self.resources: pd.DataFrame | None = None
        self.partitions: pd.DataFrame | None = None
        self.exceptions = pd.DataFrame()
        self.config: dict[str, Any] = {}
        self.catalog: dict[str, Any] = catalog or {}
        self._summary: pd.DataFrame | None = None
        self.dag = None
        if rows is None:
            rows = {name: job.table(name, columns=cols) for name, cols in TABLES.items()}
        self.add(rows)
        if self.dag is None:
            self.dag = job.dag
        if catalog is None:
            self.refresh_catalog()

    # ------------------------------------------------------------------ folding
    def add(self, rows: dict[str, pa.Table]) -> set[str]:
        """Fold new rows in; return the names of the tables that brought any."""
        changed = set()
        for name, table in rows.items():
            if name not in TABLES or table is None or table.num_rows == 0:
                continue
            cols = TABLES[name]
            if cols is not None:
                table = table.select([c for c in cols if c in table.column_names])
            if name in LATEST_KEYS:
                table = _latest_rows(table, LATEST_KEYS[name])
            df = table.to_pandas()
            changed.add(name)
            if name == "stage_metrics":
                old = self.stage_metrics
                if old.empty:
                    self.stage_metrics = df.sort_values("ts", kind="stable")
                else:
                    both = pd.concat([old, df], ignore_index=True)
                    in_order = (
                        df["ts"].is_monotonic_increasing and df["ts"].min() >= old["ts"].iloc[-1]
                    )
                    self.stage_metrics = both if in_order else both.sort_values("ts", kind="stable")
            elif name == "worker_metrics":
                self.workers_latest = _latest(self.workers_latest, df, ["worker_id"])
            elif name == "workers":
                self.worker_events = _latest(self.worker_events, df, ["worker_id"])
            elif name == "worker_resources":
                self.resources = _latest(self.resources, df, ["worker_id"])
            elif name == "partition_metrics":
                self.partitions = _latest(self.partitions, df, ["stage_id", "partition_id"])
            elif name == "exceptions":
                self.exceptions = (
                    df if self.exceptions.empty else pd.concat([self.exceptions, df])
                ).reset_index(drop=True)
            elif name == "job":
                last = df.sort_values("ts").iloc[-1]
                if isinstance(last.get("config"), str) and last["config"]:
                    self.config = json.loads(last["config"])
        if changed & {"job", "stages"}:
            self.dag = self.job.dag
        if changed & {"job", "stages", "stage_metrics"}:
            self._summary = None
        return changed

    def refresh_catalog(self) -> dict[str, Any]:
        """Re-read this attempt's catalog row (status, counts, heartbeat)."""
        self.catalog = self.job._catalog_row()
        return self.catalog

    # ------------------------------------------------------------------ derived
    @property
    def status(self) -> str:
        return str(self.catalog.get("status", "?"))

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"

    def summary(self) -> pd.DataFrame:
        """Per-stage figures (``analysis.stages.stage_summary``), computed once per change
        of the rows."""
        if self._summary is None:
            summary = stage_summary(self.stage_metrics, self.dag)
            # what a DAG node shows: the rate now while running, the job's mean after
            summary["display_rate"] = summary["output_rate_now" if self.running else "output_rate"]
            self._summary = summary
        return self._summary

    def _rate(self, stages: list[str], *, now: bool = True) -> float | None:
        """Summed output rate of ``stages``: the latest window's while the job runs, the
        average over the job once it ended (its last window is the idle tail)."""
        summary = self.summary()
        column = "output_rate_now" if now else "output_rate"
        rates = summary.loc[summary["stage_id"].isin(stages), column]
        return _num(rates.sum()) if rates.notna().any() else None

    def _spark(self, stages: list[str], column: str = "output_rate") -> list[float]:
        sm = self.stage_metrics
        if sm.empty or not stages:
            return []
        # the sparkline needs the last windows only: look at the tail, not the whole job
        tail = sm.iloc[-(SPARK_POINTS + 2) * max(1, sm["stage_id"].nunique()) :]
        part = tail[tail["stage_id"].isin(stages)]
        by_ts = part.groupby("ts")[column].sum(min_count=1).dropna()
        return [round(float(v), 2) for v in by_ts.tail(SPARK_POINTS)]

    def counts(self) -> tuple[float | None, float | None, float | None, float | None]:
        """Records in (what source stages produced), records out (what sinks produced),
        workers alive and exceptions: from the rows when there are stage metrics (the same
        rule the recorder's catalog row follows, without re-reading it), else the catalog.
        """
        cat = self.catalog
        sm = self.stage_metrics
        if sm.empty:
            return (
                _num(cat.get("records_in")),
                _num(cat.get("records_out")),
                _num(cat.get("workers")),
                _num(cat.get("exceptions")),
            )
        last = self.summary().set_index("stage_id")
        sources = [s for s in self.dag.sources if s in last.index]
        sinks = [s for s in self.dag.sinks if s in last.index]
        return (
            float(last.loc[sources, "output_records"].sum()),
            float(last.loc[sinks, "output_records"].sum()),
            float(last["workers_alive"].sum()),
            float(len(self.exceptions)),
        )

    def header(self) -> tuple[dict[str, Any], list[float]]:
        """The header's figures (a small dict) and the sparkline of the output rate."""
        cat = self.catalog
        now = self.clock()
        start = _epoch(cat.get("start_time"))
        end = _epoch(cat.get("end_time"))
        status = self.status
        if status == "RUNNING" and start is not None:
            elapsed = now - start
        elif start is not None and end is not None:
            elapsed = end - start
        else:
            elapsed = _num(cat.get("duration_s"))
        reason = ""
        if status == "LOST":
            hb = _epoch(cat.get("heartbeat"))
            reason = (
                f"no heartbeat for {now - hb:.0f} s (recorder gone?)"
                if hb is not None
                else "no heartbeat"
            )
        records_in, records_out, workers, exceptions = self.counts()
        rate_in = self._rate(list(self.dag.sources), now=status == "RUNNING")
        rate_out = self._rate(list(self.dag.sinks), now=status == "RUNNING")
        spark = self._spark(list(self.dag.sinks))
        total = _num(self.config.get("total_records"))
        progress = eta = None
        if total and records_in is not None:
            progress = min(1.0, records_in / total)
            if status in FINAL:
                eta = 0.0
            elif rate_in:
                eta = max(0.0, (total - records_in) / rate_in)
        head = {
            "job_id": self.job.job_id,
            "attempt_id": self.job.attempt_id,
            "status": status,
            "status_reason": reason,
            "running": status == "RUNNING",
            "elapsed_s": None if elapsed is None else round(elapsed, 1),
            "progress": None if progress is None else round(progress, 4),
            "eta_s": None if eta is None else round(eta),
            "records_in": records_in,
            "records_out": records_out,
            "rate_in": None if rate_in is None else round(rate_in, 1),
            "rate_out": None if rate_out is None else round(rate_out, 1),
            "workers": workers,
            "exceptions": exceptions,
        }
        return head, spark

    def worker_table(self) -> pd.DataFrame:
        """One row per worker: status, stage, counts, rates, resources, last seen."""
        cols = [
            "worker_id",
            "stage_id",
            "status",
            "input_records",
            "output_records",
            "output_rate",
            "cpu_percent",
            "memory_mb",
            "gpu_utilization",
            "last_seen",
        ]
        rows: dict[str, dict[str, Any]] = {}
        # plain dicts: ~100 workers per update, where pandas joins cost tens of ms
        for frame, fields in (
            (self.workers_latest, ("input_records", "output_records", "output_rate")),
            (self.worker_events, ("event",)),
            (self.resources, ("cpu_percent", "memory_mb", "gpu_utilization")),
        ):
            if frame is None:
                continue
            for rec in frame[["worker_id", "stage_id", "ts", *fields]].to_dict("records"):
                row = rows.setdefault(rec["worker_id"], {"worker_id": rec["worker_id"]})
                row["stage_id"] = rec["stage_id"]
                for f in fields:
                    row[f] = rec[f]
                if row.get("last_seen") is None or rec["ts"] > row["last_seen"]:
                    row["last_seen"] = rec["ts"]
        for row in rows.values():
            event = row.pop("event", None)
            row["status"] = "RUNNING" if event == "STARTED" else event
        out = pd.DataFrame(list(rows.values()), columns=cols)
        return out.sort_values(["stage_id", "worker_id"], kind="stable").reset_index(drop=True)

    def exception_groups(self) -> pd.DataFrame:
        """Exceptions grouped by fingerprint (``analysis.exceptions.group_exceptions``)."""
        return group_exceptions(self.exceptions)

    def stage_partitions(self, stage_id: str) -> pd.DataFrame:
        """Latest offsets and lag of each partition of one stage."""
        cols = ["partition_id", "latest_offset", "committed_offset", "lag", "worker_id"]
        if self.partitions is None:
            return pd.DataFrame(columns=cols)
        p = self.partitions[self.partitions["stage_id"] == stage_id]
        return p.sort_values("partition_id")[cols].reset_index(drop=True)
