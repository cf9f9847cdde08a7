"""``job_monitor``: one widget showing a running or archived job.

Header, stage DAG, charts, and tabs of paged tables (stages, workers, exceptions,
partitions, splits, checkpoints, logs, timeline, configuration, the clicked stage or
worker) — live from :class:`~solstice_inspect.live.LiveJob` while it runs. The deeper
views (splits query, time travel, lineage, worker) are in
:mod:`~solstice_inspect.widgets.monitor_deep`.

Everything shown comes from one :class:`~solstice_inspect.analysis.snapshot.JobSnapshot`,
fed by one scan of the store: from the start for an archived job, from the live cursor
for each poll of a running one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pyarrow as pa
import pyarrow.compute as _pc

from solstice_inspect.analysis.downsample import MAX_POINTS
from solstice_inspect.analysis.snapshot import SNAPSHOT_COLUMNS, JobSnapshot
from solstice_inspect.live import LiveJob, first_attempt
from solstice_inspect.report import static
from solstice_inspect.widgets.dag import add_stages, dag_widget, update_dag
from solstice_inspect.widgets.guarded import GuardedView
from solstice_inspect.widgets.monitor_advice import AdviceViews
from solstice_inspect.widgets.monitor_deep import DeepViews
from solstice_inspect.widgets.views import ChartsView, HeaderView

#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Job, Store

log = logging.getLogger("solstice_inspect.widgets")

#: tabs read from the store when shown (not kept in the live model), and their tables
SIDE_TABLES = ("checkpoints", "logs", "incidents")
#: the last log lines the Logs tab serves (all of them stay in the store: ``job.logs()``)
MAX_LOG_LINES = 5_000

EXCEPTION_COLUMNS = [
    "ts", "exception_type", "stage_id", "worker_id", "split_id", "message", "fingerprint",
    "stacktrace", "exception_id", "truncated",
]  # fmt: skip
STAGE_COLUMNS = [
    "stage_id", "operator_type", "workers_alive", "max_parallelism", "input_records",
    "output_records", "selectivity", "input_rate", "output_rate", "output_rate_now",
    "queue_lag", "backpressure_ratio", "backpressure_level", "skew_ratio",
]  # fmt: skip
GROUP_COLUMNS = [
    "exception_type", "count", "first_seen", "last_seen", "stages", "message", "hint",
    "fingerprint", "stacktrace",
]  # fmt: skip
LABELS = {
    "stage_id": "stage", "operator_type": "operator", "workers_alive": "workers",
    "max_parallelism": "max par.", "input_records": "records in",
    "output_records": "records out", "input_rate": "mean in/s", "output_rate": "mean out/s",
    "output_rate_now": "out/s now", "queue_lag": "queue lag",
    "backpressure_ratio": "backpressure", "backpressure_level": "level",
    "skew_ratio": "skew", "processed_count": "splits", "cpu_percent": "CPU %",
    "memory_mb": "memory MB", "gpu_utilization": "GPU %", "last_seen": "last seen",
    "exception_type": "type", "worker_id": "worker", "split_id": "split",
    "first_seen": "first seen", "node_id": "node",
    "partition_id": "partition", "latest_offset": "latest offset",
    "committed_offset": "committed", "ts": "time",
}  # fmt: skip


class JobMonitor(DeepViews, AdviceViews, GuardedView, W.VBox):
    """The job dashboard; build it with :func:`job_monitor`.

    Attributes
    ----------
    snapshot : JobSnapshot
        The figures shown.
    live : LiveJob
        The reader (polling in the background while the attempt runs).
    updates : int
        Live updates applied (for tests and benchmarks).
    """

    view_name = "job monitor"

    def __init__(
        self,
        job: Job,
        *,
        refresh: float = 1.0,
        max_points: int = MAX_POINTS,
        follow: bool = False,
        clock: Any = time.time,
    ) -> None:
        self.job = job
        self.refresh = refresh
        self.clock = clock
        self.updates = 0
        self.selected: str | None = None
        self._lock = threading.RLock()
        self._unsubscribe: Any = None
        self.live = LiveJob(
            job,
            refresh=refresh,
            tables=list(SNAPSHOT_COLUMNS),
            columns={k: v for k, v in SNAPSHOT_COLUMNS.items() if v is not None},
            follow=follow,
        )
        # archived: one scan from the start; live: the same scan, then from the cursor
        rows = self.live.poll()
        self.snapshot = self._new_snapshot(rows)
        summary = self.snapshot.stage_summary()
        self._init_advice()
        self.header = HeaderView(header=self._header(), spark=self.snapshot.spark())
        self.dag = dag_widget(summary, self.snapshot.dag.edges)
        self.dag.on("node", "click", self._on_node_click)
        self.charts = ChartsView(list(summary["stage_id"]), max_points=max_points)
        self.charts.set_points(self.snapshot.stage_metrics)
        # (the header's front end keeps the graph fitted to its box: js/lib/dagfit.js)
        self._init_deep()
        self.tabs = self._new_tabs()
        self._add_tables()
        self.errors = W.HTML("")
        super().__init__(
            children=[self.header, self.dag, self.charts, self.tabs, self.detail, self.errors]
        )
        self.add_class("si-monitor")
        self.refresh_advice()  # regressions and recommendations, off the kernel's way
        if follow or not self.live.done:
            self._unsubscribe = self.live.subscribe(self.update)
            self.live.start()

    def _new_snapshot(self, rows: dict[str, pa.Table]) -> JobSnapshot:
        snap = JobSnapshot(self.live.job.job_id, self.live.job.attempt_id)
        snap.add(rows)
        snap.set_catalog(self.live.catalog)
        return snap

    def _header(self) -> dict[str, Any]:
        now = self.clock()
        head = self.snapshot.header(now=now)
        seen = self.live.last_rows_at
        head["updated_age_s"] = (
            round(max(0.0, now - seen), 1) if head["running"] and seen is not None else None
        )
        head["stale_after_s"] = 3 * self.refresh
        head["cards"] = self.header_cards()
        return head

    # ------------------------------------------------------------------ tables
    def _add_tables(self) -> None:
        snap = self.snapshot
        t = self.tabs
        t.add_table("stages", lambda: snap.stage_summary()[STAGE_COLUMNS], title="Stages",
                    labels=LABELS, send=False)  # fmt: skip
        t.add_table("workers", lambda: snap.workers(),
                    title="Workers (click one: its detail)",
                    labels={**LABELS, "output_rate": "out/s (last report)"},
                    on_click=self._on_worker_row, send=False)  # fmt: skip
        t.add_table(
            "exception_groups",
            lambda: snap.exception_groups()[GROUP_COLUMNS],
            title="Exception groups (click one to list its occurrences)",
            labels=LABELS,
            page_size=10,
            link={"column": "fingerprint", "table": "exceptions", "filter": "fingerprint"},
            send=False,
        )
        t.add_table("exceptions", lambda: snap.exceptions.select(EXCEPTION_COLUMNS),
                    title="Exceptions (click one: its split's lineage below)", labels=LABELS,
                    on_click=self._on_exception_row, send=False)  # fmt: skip
        t.add_table("partitions", lambda: snap.partitions(), title="Partitions",
                    labels=LABELS, send=False)  # fmt: skip
        t.add_table("stage_workers", self._stage_workers, title="Workers of the stage",
                    labels=LABELS, on_click=self._on_worker_row, send=False)  # fmt: skip
        t.add_table("stage_partitions", self._stage_partitions,
                    title="Partitions of the stage", labels=LABELS, send=False)  # fmt: skip
        # read from the store when shown, re-read when their tables' versions move
        t.add_table("checkpoints", lambda: self._side("checkpoints"),
                    title="Checkpoints (newest last)", labels=LABELS, send=False)  # fmt: skip
        t.add_table("logs", lambda: self._side("logs"),
                    title=f"Log lines (the last {MAX_LOG_LINES:,}; filter a column to search)",
                    labels=LABELS, send=False)  # fmt: skip
        self._add_deep_tables(LABELS)
        self._add_advice_tables(LABELS)
        self._side_versions = {n: self.live.job.version(n) for n in SIDE_TABLES}
        with t.hold_sync():
            t.tabs = self._tab_list()
            t.selected = "stages"
            t.sync_tables()

    def _side(self, name: str) -> Any:
        """A tab read from the store rather than the live model: checkpoints, logs."""
        job = self.live.job
        if name == "incidents":
            return self._incident_rows()
        if name == "checkpoints":
            history = getattr(job, "checkpoint_history", None)
            return history() if history is not None else job.checkpoints()
        logs = job.logs(limit=MAX_LOG_LINES) if hasattr(job, "checkpoint_history") else None
        if logs is None:
            logs = job.logs().tail(MAX_LOG_LINES)
        cols = [c for c in ("ts", "level", "worker_id", "stage_id", "message") if c in logs]
        return logs.loc[:, cols].reset_index(drop=True)

    def _side_changes(self) -> set[str]:
        """The side tables whose datasets moved since they were last read."""
        moved = set()
        for name in SIDE_TABLES:
            version = self.live.job.version(name)
            if version != self._side_versions.get(name):
                self._side_versions[name] = version
                moved.add(name)
        return moved

    def _stage_workers(self) -> pa.Table:
        workers = self.snapshot.workers()
        if self.selected is None:
            return workers.slice(0, 0)
        return workers.filter(pc.equal(workers["stage_id"], self.selected))

    def _stage_partitions(self) -> Any:
        return self.snapshot.partitions(self.selected or "\0")

    def _tab_list(self) -> list[dict[str, Any]]:
        snap = self.snapshot
        config = (
            json.dumps(snap.config, indent=2, sort_keys=True, default=str)
            if snap.config
            else "The job sent no configuration."
        )
        n_exc = snap.exceptions.num_rows
        tabs: list[dict[str, Any]] = [
            {"id": "stages", "title": "Stages", "tables": ["stages"],
             "badge": len(snap.stage_ids)},
            {"id": "workers", "title": "Workers", "tables": ["workers"],
             "badge": snap.worker_count},
            {"id": "exceptions", "title": "Exceptions",
             "tables": ["exception_groups", "exceptions"], "badge": n_exc},
            {"id": "partitions", "title": "Partitions", "tables": ["partitions"]},
            *self._deep_tabs()[:1],
            {"id": "checkpoints", "title": "Checkpoints", "tables": ["checkpoints"]},
            {"id": "logs", "title": "Logs", "tables": ["logs"]},
            *self._deep_tabs()[1:2],
            {"id": "config", "title": "Configuration", "text": config},
            *self._advice_tabs(),
            *self._deep_tabs()[2:],
        ]  # fmt: skip
        if self.selected is not None:
            tabs.append(
                {"id": "stage", "title": f"Stage {self.selected}",
                 "tables": ["stage_workers", "stage_partitions"]}
            )  # fmt: skip
        return tabs

    # ------------------------------------------------------------------ interaction
    def _on_node_click(self, node: dict[str, Any]) -> None:
        """Ipycytoscape's click callback: ``node`` is the clicked element's JSON."""
        stage_id = (node.get("data") or {}).get("id")
        if stage_id:
            self.select_stage(str(stage_id))

    def select_stage(self, stage_id: str) -> None:
        """Show one stage's detail (figures, its workers and partitions) in the tabs."""
        with self._guard("showing the stage"), self._lock:
            self.selected = stage_id
            t = self.tabs
            t.refresh_table("stage_workers")
            t.refresh_table("stage_partitions")
            evidence, series = self._stage_extra(stage_id)
            self._stage_evidence = evidence
            with t.hold_sync():
                t.stage = {
                    "stage_id": stage_id,
                    "facts": self.snapshot.stage_facts(stage_id) + evidence,
                }
                t.stage_series = series
                t.tabs = self._tab_list()
                t.selected = "stage"
                t.sync_tables()

    # ------------------------------------------------------------------ live
    def update(self, rows: dict[str, Any]) -> None:
        """Apply one live poll's new rows (LiveJob's subscriber).

        Called at most once per ``refresh``. Sends only what changed, all trait changes
        in one ``hold_sync``.
        """
        with self._guard("updating"), self._lock:
            if self.live.job.attempt_id != self.snapshot.attempt_id:
                self._restart(rows)
                return
            snap = self.snapshot
            new_sm = rows.get("stage_metrics")
            stages_before = len(snap.stage_ids)
            changed = snap.add(rows)
            snap.set_catalog(self.live.catalog)
            head, spark = self._header(), snap.spark()
            summary = snap.stage_summary()
            held = [self.header, self.charts, self.tabs, self.dag]
            held += list(self.dag.graph.nodes) + list(self.dag.graph.edges)
            with contextlib.ExitStack() as stack:
                for w in held:
                    stack.enter_context(w.hold_sync())
                if self.travel_t is None:  # else the header and DAG show the past
                    self.header.header = head
                self.header.spark = spark
                if len(snap.stage_ids) > stages_before:
                    add_stages(self.dag, summary, snap.dag.edges)
                    self.charts.add_stages(list(summary["stage_id"]))
                if self.travel_t is None:
                    update_dag(self.dag, summary)
                if new_sm is not None and new_sm.num_rows:
                    self.charts.append(new_sm.to_pandas(), lambda: snap.stage_metrics)
                side = self._side_changes()
                self._advice_changes(side)
                self._refresh_tables(changed | side)
                self._refresh_deep()
            self.updates += 1
        if self.live.done and not self.live.follow:
            self._stop_live()

    def _refresh_tables(self, changed: set[str]) -> None:
        t = self.tabs
        touched = False
        if changed & {"job", "stages", "stage_metrics"}:
            t.refresh_table("stages")
            touched = True
        if changed & {"worker_metrics", "workers", "worker_resources"}:
            t.refresh_table("workers")
            if self.selected is not None:
                t.refresh_table("stage_workers")
            touched = True
        if "exceptions" in changed:
            t.refresh_table("exception_groups")
            t.refresh_table("exceptions")
            touched = True
        for name in SIDE_TABLES:
            if name in changed:
                t.refresh_table(name)
                touched = True
        if "partition_metrics" in changed:
            t.refresh_table("partitions")
            if self.selected is not None:
                t.refresh_table("stage_partitions")
            touched = True
        if touched:
            t.tabs = self._tab_list()
            if self.selected is not None:
                facts = self.snapshot.stage_facts(self.selected)
                if self._due("stage"):
                    evidence, t.stage_series = self._stage_extra(self.selected)
                    self._stage_evidence = evidence
                t.stage = {"stage_id": self.selected, "facts": facts + self._stage_evidence}
            t.sync_tables()

    def _restart(self, rows: dict[str, Any]) -> None:
        """A newer attempt of the job started: show it from scratch."""
        self.snapshot = self._new_snapshot(rows)
        self.selected = None
        self.selected_worker = None
        self.travel_t = None
        self._splits_ran = False
        self._deep_read.clear()
        self._init_advice()
        self.close_detail()
        summary = self.snapshot.stage_summary()
        self.header.header = self._header()
        self.header.spark = self.snapshot.spark()
        self.dag.graph.clear()
        add_stages(self.dag, summary, self.snapshot.dag.edges)
        self.charts.stages = list(summary["stage_id"])
        self.charts.t0 = 0.0
        self.charts.set_points(self.snapshot.stage_metrics)
        self.tabs.close()
        self.tabs = self._new_tabs()
        self._add_tables()
        self.children = [self.header, self.dag, self.charts, self.tabs, self.detail, self.errors]
        self.refresh_advice()

    def _stop_live(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.live.stop()

    def close(self) -> None:
        """Stop following the job and close every child widget."""
        if hasattr(self, "live"):  # not when the constructor failed half-way
            self._stop_live()
            self.close_advice()
        if hasattr(self, "detail"):
            self.close_detail()
        for name in ("header", "dag", "charts", "tabs", "detail", "errors"):
            child = getattr(self, name, None)
            if child is not None:
                child.close()
        super().close()

    # ------------------------------------------------------------------ static
    def static_html(self, *, charts: bool = True) -> str:
        """The dashboard as static, escaped HTML.

        Header, DAG and charts as SVG, stage table, exception groups: shown when there is
        no kernel (a saved notebook, nbconvert).
        """
        with self._lock:
            return static.snapshot_html(self.snapshot, self._header(), charts=charts)


def job_monitor(
    job_or_id: Job | str,
    *,
    store: Store | str | None = None,
    refresh: float = 1.0,
    wait: float = 0.0,
) -> JobMonitor:
    """The live dashboard of a job: ``display(si.job_monitor("etl_001"))``.

    Parameters
    ----------
    job_or_id
        A :class:`~solstice_inspect.Job` (that attempt), or a job id: its latest attempt,
        and the next one when a newer attempt of the job starts.
    store
        A :class:`Store` or path; the default store when None (ignored for a ``Job``).
    refresh
        Seconds between live updates (at most one update per interval).
    wait
        Given a job id with no attempt yet, wait this many seconds for its first one.

    Returns
    -------
    JobMonitor
        An ipywidgets ``VBox``; it follows the attempt while it runs and stops by itself
        when the attempt ends (given a ``Job``) or the widget is closed.

    Examples
    --------
    >>> import solstice_inspect as si                       # doctest: +SKIP
    >>> display(si.job_monitor("etl_001", refresh=2))       # doctest: +SKIP
    """
    from solstice_inspect.store import connect
    from solstice_inspect.store.reader import Job, Store

    if not refresh > 0:
        raise ValueError(f"refresh must be > 0 seconds, not {refresh!r}")
    follow = not isinstance(job_or_id, Job)
    if not isinstance(job_or_id, Job):
        st = store if isinstance(store, Store) else connect(store)
        job_or_id = first_attempt(st, str(job_or_id), wait)
    started = time.perf_counter()
    monitor = JobMonitor(job_or_id, refresh=refresh, follow=follow)
    log.debug("job monitor built in %.3f s", time.perf_counter() - started)
    return monitor
