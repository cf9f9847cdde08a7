"""The exporter's stage figures, folded from ``stage_metrics`` rows for every stage at once.

:class:`StageFold` gives, per stage, the figures the exporter's stage families send —
those of :meth:`JobSnapshot.stage_summary
<solstice_inspect.analysis.snapshot.JobSnapshot.stage_summary>`, folded by the same rules
as the model's ``StageWindows`` — without the model's per-stage pandas work: one batch of
rows is converted and sorted once, then each stage costs a few scalar operations
(measured: ``docs/benchmarks.md``, "Prometheus exporter scrape"). ``tests/unit/
test_exporter.py`` checks the figures equal the model's, late windows included.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as _pc

from solstice_inspect.analysis.snapshot import epoch_seconds
from solstice_inspect.analysis.stages import ExactSum, finite

#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

__all__ = ["COLUMNS", "FIGURES", "NO_WINDOWS", "StageFold", "elapsed_s"]

#: the ``stage_metrics`` columns the fold reads
COLUMNS = [
    "ts", "stage_id", "workers_alive", "input_records", "output_records", "output_rate",
    "queue_lag", "backpressure_active", "backpressure_ratio",
]  # fmt: skip
#: the figures of a stage (``JobSnapshot.stage_summary`` columns)
FIGURES = (
    "input_records", "output_records", "display_rate", "queue_lag", "backpressure_ratio",
    "backpressured_s", "workers_alive",
)  # fmt: skip
#: the figures of a stage that has not reported a window (``StageWindows.EMPTY``)
NO_WINDOWS: dict[str, Any] = {
    "input_records": 0, "output_records": 0, "backpressured_s": 0.0, "workers_alive": 0,
}  # fmt: skip
#: the latest row's values a stage's figures need
_LAST = ("workers_alive", "input_records", "output_records", "queue_lag", "backpressure_active")


class _Windows:
    """One stage's windows, folded as ``StageWindows.fold`` folds them (what a sample needs)."""

    __slots__ = ("bp_den", "bp_num", "first", "last", "last_us", "rate_out_now")

    def __init__(self) -> None:
        self.first: tuple[int, Any] | None = None  # (µs, output_records) of the earliest row
        self.last: dict[str, Any] = {}  # the latest row's values (its ``_us`` too)
        self.last_us: int | None = None
        self.bp_num = ExactSum()  # Σ ratio × dt (µs), rows with a ratio and dt > 0
        self.bp_den = 0
        self.rate_out_now: float | None = None


class StageFold:
    """The stage figures of one attempt from its ``stage_metrics`` rows, as they come.

    The same figures as :meth:`JobSnapshot.stage_summary
    <solstice_inspect.analysis.snapshot.JobSnapshot.stage_summary>` (input and output
    records, workers alive and queue lag of the latest window; the output rate of the
    latest window that has one, or the mean over the run; the time-weighted backpressure
    ratio and its numerator, the seconds backpressured), folded the same way: rows of a
    stage in time order (arrival order on ties), a late window (older than the stage's
    latest) refolds that stage from its kept history. Each :meth:`add` converts its rows
    once and sorts them once for every stage together; per stage only a few scalar
    operations remain.

    Examples
    --------
    >>> import pyarrow as pa
    >>> ts = pa.array([0, 10_000_000], pa.timestamp("us", tz="UTC"))
    >>> fold = StageFold()
    >>> fold.add(pa.table({"ts": ts, "stage_id": ["parse", "parse"], "workers_alive": [2, 2],
    ...     "input_records": [0, 1000], "output_records": [0, 800], "output_rate": [None, 80.0],
    ...     "queue_lag": [5, 0], "backpressure_active": [True, False],
    ...     "backpressure_ratio": [None, 0.25]}))
    >>> parse = fold.figures(running=False)["parse"]
    >>> parse["display_rate"], parse["backpressure_ratio"], parse["queue_lag"]
    (80.0, 0.25, 0)
    >>> parse["backpressured_s"]  # a quarter of the 10 s between the two windows
    2.5
    """

    def __init__(self) -> None:
        self.stages: dict[str, _Windows] = {}
        self._chunks: list[pa.Table] = []  # every row seen, numbered in arrival order
        self._rows = 0

    def add(self, table: pa.Table) -> None:
        """Fold new ``stage_metrics`` rows (any order, any stages)."""
        n = table.num_rows
        if n == 0:
            return
        seq = pa.array(np.arange(self._rows, self._rows + n, dtype=np.int64))
        rows = table.select(COLUMNS).append_column("_seq", seq)
        self._rows += n
        self._chunks.append(rows)
        batch = _Batch(rows)
        for sid, idx in batch.stages():
            win = self.stages.get(sid)
            if win is not None and win.last_us is not None and batch.us[idx[0]] < win.last_us:
                # a late window of this stage: refold it from its whole (kept) history
                history = _Batch(self._history(sid))
                self.stages[sid] = win = _Windows()
                history.fold(win, history.order)
                continue
            if win is None:
                win = self.stages[sid] = _Windows()
            batch.fold(win, idx)

    def _history(self, stage_id: str) -> pa.Table:
        table = pa.concat_tables(self._chunks)
        self._chunks = [table]
        return table.filter(pc.equal(table["stage_id"], stage_id))

    def figures(self, *, running: bool) -> dict[str, dict[str, Any]]:
        """Per stage that reported: the figures of ``FIGURES`` (None: missing).

        ``display_rate`` is the rate of the latest window while ``running``, else the mean
        output rate over the run (``JobSnapshot.stage_summary``'s ``display_rate``).
        """
        out = {}
        for sid, win in self.stages.items():
            last, first = win.last, win.first
            if first is None or not last:
                continue
            if running:
                rate = win.rate_out_now
            else:
                span = (last["_us"] - first[0]) / 1e6
                d_out = _number(last["output_records"]) - _number(first[1])
                rate = max(d_out / span, 0.0) if span > 0 else None
            if win.bp_den > 0:
                ratio = win.bp_num.value() / win.bp_den
            else:
                ratio = 1.0 if bool(last["backpressure_active"]) else 0.0
            out[sid] = {
                "input_records": last["input_records"],
                "output_records": last["output_records"],
                "display_rate": rate,
                "queue_lag": last["queue_lag"],
                "backpressure_ratio": ratio,
                "backpressured_s": win.bp_num.value() / 1e6,
                "workers_alive": last["workers_alive"],
            }
        return out


def _number(value: Any) -> float:
    return math.nan if value is None else value


class _Batch:
    """``stage_metrics`` rows (with ``_seq``) as arrays, sorted by stage, time, arrival."""

    def __init__(self, rows: pa.Table) -> None:
        ts = rows["ts"]
        if ts.null_count:
            raise ValueError("stage_metrics rows without a ts")
        self.us = ts.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
        seq = rows["_seq"].to_numpy()
        ids = rows["stage_id"].to_numpy(zero_copy_only=False)
        self.codes, self.names = pd.factorize(ids)  # None: -1
        self.order = np.lexsort((seq, self.us, self.codes))
        self.ratio = _floats(rows, "backpressure_ratio")
        self.out_rate = _floats(rows, "output_rate")
        self.rows = rows

    def stages(self) -> Iterator[tuple[str, np.ndarray]]:
        """(stage id, its rows' positions in order) per stage, null and "" ids left out."""
        codes = self.codes[self.order]
        cuts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        for idx in np.split(self.order, cuts):
            code = self.codes[idx[0]]
            if code >= 0 and self.names[code]:
                yield str(self.names[code]), idx

    def fold(self, win: _Windows, idx: np.ndarray) -> None:
        """``StageWindows.fold`` of these rows (in order) into ``win``."""
        us = self.us[idx]
        ratio = self.ratio[idx]
        prev = np.empty(len(us), dtype="int64")
        prev[1:] = us[:-1]
        has_prev = np.ones(len(us), dtype=bool)
        if win.last_us is None:
            has_prev[0], prev[0] = False, 0
        else:
            prev[0] = win.last_us
        dt = us - prev
        ok = has_prev & (dt > 0) & ~np.isnan(ratio)
        for term in (ratio[ok] * dt[ok].astype(float)).tolist():
            win.bp_num.add(term)
        win.bp_den += int(dt[ok].sum())
        out_rate = self.out_rate[idx]
        finite_out = np.flatnonzero(np.isfinite(out_rate))
        if len(finite_out):
            win.rate_out_now = float(out_rate[finite_out[-1]])
        if win.first is None:
            win.first = (int(us[0]), self.rows["output_records"][int(idx[0])].as_py())
        z = int(idx[-1])
        win.last = {c: self.rows[c][z].as_py() for c in _LAST}
        win.last["_us"] = win.last_us = int(us[-1])


def _floats(rows: pa.Table, column: str) -> np.ndarray:
    """A column as float64, NaN for nulls."""
    return rows[column].cast(pa.float64()).to_numpy(zero_copy_only=False)


def elapsed_s(catalog: dict[str, Any], status: str, *, now: float) -> float | None:
    """``JobSnapshot.header``'s ``elapsed_s``: since the start while running, else the
    start to the end (else the catalog's duration), to 0.1 s.

    Examples
    --------
    >>> row = {"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:01:30.04Z"}
    >>> elapsed_s(row, "COMPLETED", now=0.0)
    90.0
    """
    start, end = epoch_seconds(catalog.get("start_time")), epoch_seconds(catalog.get("end_time"))
    if status == "RUNNING" and start is not None:
        elapsed = now - start
    elif start is not None and end is not None:
        elapsed = end - start
    else:
        elapsed = finite(catalog.get("duration_s"))
    return None if elapsed is None else round(elapsed, 1)
