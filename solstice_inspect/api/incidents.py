"""Incidents (stragglers) of an attempt: :meth:`Job.incidents`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Job as _Base
else:
    _Base = object

#: the columns of :meth:`IncidentViews.incidents`, in order
INCIDENT_COLUMNS = [
    "incident_id",
    "kind",
    "detected_at",
    "stage_id",
    "worker_id",
    "split_id",
    "started_at",
    "elapsed_s",
    "threshold_s",
    "mean_s",
    "std_s",
    "finished_splits",
    "status",
    "resolved_at",
    "duration_s",
    "resolved_by",
    "outcome",
    "description",
    "stack",
    "log_tail",
]
_LINEAGE = ["ts", "split_id", "stage_id", "worker_id", "processing_time"]
_ENDED = ("STOPPED", "FAILED", "KILLED")


def _quoted(values: Any) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


class IncidentViews(_Base):
    """Mixin of :class:`~solstice_inspect.api.Job`: the ``incidents`` table, read."""

    def incidents(self) -> pd.DataFrame:
        """One row per incident (a straggling split), with what became of its split.

        A worker's telemetry reports a split running longer than mean + 4σ of its stage's
        finished splits (at least 10) with the stack of the thread running it and the
        worker's last log lines, taken when it was detected
        (:mod:`solstice_inspect.recorder.stragglers`). Everything here is read from the
        store: it stays readable after the worker, or the whole job, is gone.

        Returns
        -------
        pandas.DataFrame
            By detection time: incident_id, kind, detected_at, stage_id, worker_id,
            split_id, started_at, elapsed_s (when detected), threshold_s, mean_s, std_s,
            finished_splits (the statistics it was judged by), status, resolved_at,
            duration_s, resolved_by, outcome, description, stack, log_tail.
            ``status`` is *finished* (the split was processed by the worker it straggled
            on: ``resolved_at`` and its total ``duration_s``), *redone* (processed by
            another worker, ``resolved_by``), *running* (not yet, the job runs) or
            *unfinished* (its worker stopped, or the job ended, first). ``outcome`` says
            it in words: "finished after 31.2 s", "still running (45.0 s so far)".
            Empty (with these columns) when there was no incident.

        Examples
        --------
        >>> import solstice_inspect as si, tempfile
        >>> store = si.connect(tempfile.mkdtemp())
        >>> with store.record("etl_001") as rec:
        ...     _ = rec.ingest([
        ...         si.envelope("incident", "etl_001", "enrich_w0_a1b2c3", 1764331240.0,
        ...             {"kind": "straggler", "incident_id": "straggler-1",
        ...              "stage_id": "enrich", "worker_id": "enrich_w0_a1b2c3",
        ...              "split_id": "enrich_s7", "started_at": 1764331230.0,
        ...              "elapsed_s": 10.0, "threshold_s": 2.5, "finished_splits": 40,
        ...              "stack": "  File \\"udf.py\\", line 9, in enrich\\n    time.sleep(30)"}),
        ...         si.envelope("split_processed", "etl_001", "enrich_w0_a1b2c3",
        ...             1764331261.2, {"stage_id": "enrich", "split_id": "enrich_s7",
        ...                            "processing_time": 31.2})])
        >>> row = store.job("etl_001").incidents().iloc[0]
        >>> row["status"], row["outcome"]
        ('finished', 'finished after 31.2 s')
        """
        raw = self.to_pandas("incidents")
        if raw.empty:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in INCIDENT_COLUMNS})
        raw = raw.sort_values(["ts", "batch"], kind="stable")
        df = raw.drop_duplicates("incident_id", keep="last").reset_index(drop=True)
        df = df.rename(columns={"ts": "detected_at"})
        splits = list(df["split_id"].dropna().unique())
        lineage = (
            self.to_pandas("lineage", columns=_LINEAGE, where=f"split_id IN ({_quoted(splits)})")
            if splits
            else pd.DataFrame(columns=_LINEAGE)
        )
        workers = self.to_pandas("workers", columns=["ts", "worker_id", "event"])
        ended = pd.DataFrame(workers.loc[workers["event"].isin(_ENDED)])
        running = self.status == "RUNNING"
        now = pd.to_datetime(time.time(), unit="s", utc=True)
        resolved = [
            _resolve(row, lineage, ended, running, now) for row in df.itertuples(index=False)
        ]
        for i, name in enumerate(("status", "resolved_at", "duration_s", "resolved_by", "outcome")):
            df[name] = [r[i] for r in resolved]
        df["resolved_at"] = pd.to_datetime(df["resolved_at"], utc=True)
        df["duration_s"] = df["duration_s"].astype("float64")
        out = pd.DataFrame(df[INCIDENT_COLUMNS])
        return out.sort_values(by=["detected_at"], kind="stable").reset_index(drop=True)


def _resolve(
    row: Any, lineage: pd.DataFrame, ended: pd.DataFrame, running: bool, now: Any
) -> tuple[str, Any, float | None, str | None, str]:
    """(status, resolved_at, duration_s, resolved_by, outcome) of one incident's split."""
    started = row.started_at if pd.notna(row.started_at) else row.detected_at
    done = pd.DataFrame(
        lineage.loc[
            (lineage["split_id"] == row.split_id)
            & (lineage["stage_id"] == row.stage_id)
            & (lineage["ts"] >= started)
        ]
    )
    if len(done):
        first = done.loc[done["ts"].idxmin()]
        by = first["worker_id"]
        took = first["processing_time"]
        if pd.isna(took) or by != row.worker_id:  # redone elsewhere: since the first start
            took = (first["ts"] - started).total_seconds()
        took = round(float(took), 3)
        if by == row.worker_id:
            return "finished", first["ts"], took, by, f"finished after {took:.1f} s"
        return "redone", first["ts"], took, by, f"redone by {by}, done {took:.1f} s after start"
    stop = pd.DataFrame(ended.loc[(ended["worker_id"] == row.worker_id) & (ended["ts"] >= started)])
    if len(stop):
        event = stop.loc[stop["ts"].idxmin()]
        what = str(event["event"]).lower()
        return "unfinished", None, None, None, f"not finished: its worker {what}"
    if running:
        so_far = (now - started).total_seconds()
        return "running", None, None, None, f"still running ({so_far:.1f} s so far)"
    return "unfinished", None, None, None, "not finished: the job ended first"
