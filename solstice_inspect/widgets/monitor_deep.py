"""The job monitor's deeper views, as a mixin of :class:`~solstice_inspect.widgets.monitor.
JobMonitor`: the Splits tab (a query builder over ``job.splits``), the Timeline tab and
time travel (the header and DAG as of a moment), a worker's detail, the stage's lines
over time, and the lineage view opened from a split (under the tabs).

Every read goes through the monitor's :class:`~solstice_inspect.Job`; running and
archived jobs are read the same way.
"""

from __future__ import annotations

import html
import importlib.util
import logging
import time
from typing import Any

import ipywidgets as W
import pyarrow as pa
import pyarrow.compute as _pc

from solstice_inspect.analysis.lineage import SPLIT_SCHEMA
from solstice_inspect.widgets.dag import update_dag
from solstice_inspect.widgets.monitor_tabs import TabsView, api_job
from solstice_inspect.widgets.splits_tab import QUERY_ERRORS, SplitsQuery, splits_rows
from solstice_inspect.widgets.stage_detail import queue_evidence, stage_series
from solstice_inspect.widgets.timetravel import (
    snapshot_at,
    stage_states,
    timeline_state,
    travel_header,
    travel_summary,
)

log = logging.getLogger("solstice_inspect.widgets")
#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

__all__ = ["DeepViews"]

#: a live job's splits, timeline and stage lines are re-read at most this often (seconds)
DEEP_REFRESH_S = 5.0
#: a worker's log lines shown in its detail (all of them: ``job.logs(worker=…)``)
WORKER_LOG_LINES = 1_000
SPLIT_LABELS = {
    "split_id": "split", "stage_id": "stage", "worker_id": "worker",
    "parent_split_ids": "parents", "start_time": "start", "end_time": "end",
    "duration_s": "duration s", "input_records": "records in",
    "output_records": "records out", "exception_fingerprint": "exception",
}  # fmt: skip


_EMPTY_LOGS = pa.table(
    {
        "ts": pa.array([], pa.timestamp("us", tz="UTC")),
        "level": pa.array([], pa.string()),
        "message": pa.array([], pa.string()),
    }
)


def _empty_splits() -> pa.Table:
    return splits_rows(SPLIT_SCHEMA.empty_table().to_pandas())


class DeepViews:
    """Mixin: the monitor's Splits, Timeline, worker and lineage views (see the module)."""

    # provided by JobMonitor
    live: Any
    refresh: float
    snapshot: Any
    header: Any
    dag: Any
    errors: Any
    selected: str | None
    _lock: Any
    _guard: Any
    _header: Any
    _tab_list: Any

    tabs: TabsView
    detail: W.VBox
    travel_t: float | None
    selected_worker: str | None

    def _init_deep(self) -> None:
        self.travel_t = None
        self.selected_worker = None
        self.lineage: Any = None
        self._splits = SplitsQuery(lambda: self.live.job)
        self._splits_ran = False
        self._splits_versions: tuple[Any, Any] = (None, None)
        self._deep_read: dict[str, float] = {}
        self._stage_evidence: list[list[Any]] = []
        self.detail = W.VBox()
        self.detail.add_class("si-monitor-detail")

    def _new_tabs(self) -> TabsView:
        tabs = TabsView({"splits": self._on_splits, "travel": self._on_travel})
        tabs.observe(self._on_tab_selected, names="selected")
        return tabs

    def _add_deep_tables(self, labels: dict[str, str]) -> None:
        t = self.tabs
        t.add_table("splits", _empty_splits(), title="Splits (click one: its lineage below)",
                    labels=SPLIT_LABELS, on_click=self._on_split_row, send=False)  # fmt: skip
        t.add_table("worker_splits", _empty_splits(),
                    title="Splits of the worker (click one: its lineage below)",
                    labels=SPLIT_LABELS, on_click=self._on_split_row, send=False)  # fmt: skip
        t.add_table("worker_logs", self._worker_logs, title="Log lines of the worker",
                    labels=labels, send=False)  # fmt: skip
        t.splits = self._splits.state(self.snapshot.stage_ids)

    def _deep_tabs(self) -> list[dict[str, Any]]:
        tabs: list[dict[str, Any]] = [
            {"id": "splits", "title": "Splits", "kind": "splits", "tables": ["splits"]},
            {"id": "timeline", "title": "Timeline", "kind": "timeline",
             "badge": "as of" if self.travel_t is not None else None},
        ]  # fmt: skip
        if self.selected_worker is not None:
            tabs.append(
                {"id": "worker", "title": f"Worker {self.selected_worker}",
                 "kind": "worker", "tables": ["worker_splits", "worker_logs"]}
            )  # fmt: skip
        return tabs

    # ------------------------------------------------------------------ splits
    def _on_splits(self, message: dict[str, Any]) -> None:
        query = message.get("query")
        self.run_splits(query if isinstance(query, dict) else {})

    def run_splits(self, query: dict[str, Any]) -> None:
        """Run a Splits-tab query (fields as typed: see :func:`splits_tab.query_kwargs`).

        A query that cannot run leaves the previous rows and shows why in the tab.
        """
        with self._lock:
            q = self._splits
            job = self.live.job
            versions = (job.version("lineage"), job.version("exceptions"))
            rows = q.run(query)
            if rows is not None:
                self._splits_versions = versions
                self._splits_ran = True
                self._deep_read["splits"] = time.monotonic()
                self.tabs.refresh_table("splits", rows)
            with self.tabs.hold_sync():
                self.tabs.splits = q.state(self.snapshot.stage_ids)
                self.tabs.sync_tables()

    def _on_split_row(self, row: dict[str, Any]) -> None:
        split_id = row.get("split_id")
        if split_id:
            self.open_lineage(str(split_id))

    def _on_exception_row(self, row: dict[str, Any]) -> None:
        split_id = row.get("split_id")
        if split_id:
            self.open_lineage(str(split_id))

    # ------------------------------------------------------------------ lineage
    def open_lineage(self, split_id: str, depth: int = 2) -> None:
        """Show ``si.lineage_view(job, split_id, depth)`` under the tabs."""
        from solstice_inspect.widgets.lineage import lineage_view

        with self._guard(f"opening the lineage of {split_id}"):
            try:
                view = lineage_view(self.live.job, split_id, depth=depth)
            except QUERY_ERRORS as exc:  # an unknown split: say so where the view would be
                self._show_detail(W.HTML(
                    f"<div class='si-detail-error'>No lineage for split "
                    f"{html.escape(split_id)}: {html.escape(str(exc))}</div>"
                ))  # fmt: skip
                return
            self._show_detail(view, title=f"Lineage of split {split_id}")
            self.lineage = view

    def _show_detail(self, view: Any, *, title: str | None = None) -> None:
        close = W.Button(description="close", layout=W.Layout(width="70px"))
        close.on_click(lambda _b: self.close_detail())
        bar = W.HBox([W.HTML(f"<b>{html.escape(title or '')}</b>"), close])
        old = self.detail.children
        self.detail.children = [bar, view]
        self.lineage = None
        for child in old:  # a worker view follows its worker: stop it
            child.close()

    def close_detail(self) -> None:
        """Close the lineage (or worker) view under the tabs."""
        for child in self.detail.children:
            child.close()
        self.detail.children = []
        self.lineage = None

    # ------------------------------------------------------------------ worker
    def _on_worker_row(self, row: dict[str, Any]) -> None:
        worker_id = row.get("worker_id")
        if worker_id:
            self.select_worker(str(worker_id))

    def select_worker(self, worker_id: str) -> None:
        """Show one worker's detail: its figures, its splits and its log lines (a Worker
        tab), and ``si.worker_view`` under the tabs where that view exists."""
        with self._guard(f"showing worker {worker_id}"), self._lock:
            self.selected_worker = worker_id
            t = self.tabs
            try:
                splits = splits_rows(api_job(self.live.job).splits(worker=worker_id))
            except QUERY_ERRORS as exc:  # e.g. a worker with no splits recorded
                log.debug("no splits for worker %s: %s", worker_id, exc)
                splits = _empty_splits()
            t.refresh_table("worker_splits", splits)
            t.refresh_table("worker_logs")
            with t.hold_sync():
                t.worker = {"worker_id": worker_id, "facts": self._worker_facts(worker_id)}
                t.tabs = self._tab_list()
                t.selected = "worker"
                t.sync_tables()
            if importlib.util.find_spec("solstice_inspect.widgets.worker") is not None:
                from solstice_inspect.widgets import worker as _worker

                make = getattr(_worker, "worker_view", None)
                if make is not None:
                    try:
                        view = make(self.live.job, worker_id, refresh=self.refresh)
                    except QUERY_ERRORS as exc:  # e.g. a worker only named by a row
                        log.info("no worker view of %s: %s", worker_id, exc)
                    else:
                        self._show_detail(view, title=f"Worker {worker_id}")

    def _worker_facts(self, worker_id: str) -> list[list[Any]]:
        workers = self.snapshot.workers()
        rows = workers.filter(pc.equal(workers["worker_id"], worker_id)).to_pylist()
        if not rows:
            return [["worker", worker_id, "string"], ["status", "not seen", "string"]]
        w = rows[0]
        seen = w.get("last_seen")
        return [
            ["worker", worker_id, "string"],
            ["stage", w.get("stage_id"), "string"],
            ["status", w.get("status"), "string"],
            ["records in", w.get("input_records"), "int"],
            ["records out", w.get("output_records"), "int"],
            ["splits processed", w.get("processed_count"), "int"],
            ["out/s (last report)", w.get("output_rate"), "float"],
            ["CPU %", w.get("cpu_percent"), "float"],
            ["memory MB", w.get("memory_mb"), "float"],
            ["node", w.get("node_id"), "string"],
            ["stopped because", w.get("reason"), "string"],
            ["last seen", seen.timestamp() if seen is not None else None, "time"],
        ]

    def _worker_logs(self) -> Any:
        job = api_job(self.live.job)
        if self.selected_worker is None or job.version("logs") is None:
            return _EMPTY_LOGS
        logs = job.logs(worker=self.selected_worker, limit=WORKER_LOG_LINES)
        return logs.loc[:, ["ts", "level", "message"]].reset_index(drop=True)

    # ------------------------------------------------------------------ timeline, travel
    def _on_tab_selected(self, change: dict[str, Any]) -> None:
        with self._guard("opening the tab"), self._lock:
            if change["new"] == "splits" and not self._splits_ran:
                self.run_splits({})
            elif change["new"] == "timeline" and "timeline" not in self._deep_read:
                self.refresh_timeline()

    def refresh_timeline(self) -> None:
        """Re-read the Timeline tab's rows (worker lifetimes, backpressure, marks)."""
        self._deep_read["timeline"] = time.monotonic()
        self.tabs.timeline = timeline_state(self.live.job)

    def _on_travel(self, message: dict[str, Any]) -> None:
        t = message.get("t")
        if t is None:
            self.back_to_live()
        else:
            self.travel_to(float(t))

    def travel_to(self, t: float) -> None:
        """Show the header and the DAG as they were at ``t`` (epoch seconds): every figure
        from the stored rows with ``ts <= t``. Live updates keep folding in the
        background and show again on :meth:`back_to_live`."""
        with self._guard("travelling in time"), self._lock:
            started = time.perf_counter()
            snap = snapshot_at(self.live.job, t, self.live.catalog)
            head = travel_header(snap, t)
            self.travel_t = t
            with self.header.hold_sync(), self.tabs.hold_sync(), self.dag.hold_sync():
                self.header.header = head
                update_dag(self.dag, travel_summary(snap))
                self.tabs.travel = {
                    "t": t,
                    "stages": stage_states(snap),
                    "took_s": round(time.perf_counter() - started, 3),
                }
                self.tabs.tabs = self._tab_list()

    def back_to_live(self) -> None:
        """Leave time travel: the header and DAG show the job now again."""
        with self._guard("going back to now"), self._lock:
            self.travel_t = None
            with self.header.hold_sync(), self.tabs.hold_sync(), self.dag.hold_sync():
                self.header.header = self._header()
                update_dag(self.dag, self.snapshot.stage_summary())
                self.tabs.travel = {}
                self.tabs.tabs = self._tab_list()

    # ------------------------------------------------------------------ stage, live
    def _stage_extra(self, stage_id: str) -> tuple[list[list[Any]], dict[str, Any]]:
        """The stage detail's queue evidence and lines over time."""
        self._deep_read["stage"] = time.monotonic()
        return queue_evidence(self.snapshot, stage_id), stage_series(
            self.live.job, self.snapshot, stage_id
        )

    def _due(self, what: str) -> bool:
        return time.monotonic() - self._deep_read.get(what, 0.0) >= DEEP_REFRESH_S

    def _refresh_deep(self) -> None:
        """After a live update: re-read what is shown of the deeper tabs, at most every
        :data:`DEEP_REFRESH_S` seconds (the splits query and timeline read the store)."""
        shown = self.tabs.selected
        if shown == "splits" and self._splits_ran and self._due("splits"):
            job = self.live.job
            versions = (job.version("lineage"), job.version("exceptions"))
            if versions != self._splits_versions:  # new splits or exceptions: re-run
                self.run_splits(dict(self._splits.query))
        elif shown == "timeline" and self._due("timeline"):
            self.refresh_timeline()
        elif shown == "worker" and self.selected_worker is not None and self._due("worker"):
            self._deep_read["worker"] = time.monotonic()
            self.tabs.worker = {
                "worker_id": self.selected_worker,
                "facts": self._worker_facts(self.selected_worker),
            }
            self.tabs.refresh_table("worker_logs")
