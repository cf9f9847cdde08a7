"""``job_monitor``: one widget showing a running or archived job — header, stage DAG with
click-through stage detail, charts, and Workers / Exceptions / Configuration tabs — live
from :class:`~solstice_inspect.live.LiveJob` while the attempt runs.
"""

from __future__ import annotations

import contextlib
import html
import logging
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from solstice_inspect.analysis.downsample import MAX_POINTS
from solstice_inspect.widgets import html as H
from solstice_inspect.widgets.dag import dag_svg, dag_widget, update_dag
from solstice_inspect.widgets.state import TABLES, JobState
from solstice_inspect.widgets.views import ChartsView, HeaderView

if TYPE_CHECKING:
    from solstice_inspect.live import LiveJob
    from solstice_inspect.store.reader import Job, Store

log = logging.getLogger("solstice_inspect.widgets")

#: points per series in the static (SVG) fallback
STATIC_POINTS = 150


class JobMonitor(W.VBox):
    """The job dashboard; build it with :func:`job_monitor`.

    Attributes
    ----------
    state : JobState
        The figures shown.
    live : LiveJob or None
        The poller while the attempt runs.
    updates : int
        Live updates applied (for tests and benchmarks).
    """

    def __init__(self, job: Job, *, refresh: float = 1.0, max_points: int = MAX_POINTS) -> None:
        self.job = job
        self.refresh = refresh
        self.updates = 0
        self.selected: str | None = None
        self._lock = threading.RLock()
        self._unsubscribe: Any = None
        self.live: LiveJob | None = None
        rows = None
        catalog = job._catalog_row()
        if catalog["status"] == "RUNNING":
            from solstice_inspect.live import LiveJob

            self.live = LiveJob(job, refresh=refresh, tables=list(TABLES))
            rows = {
                name: table.select([c for c in cols if c in table.column_names])
                if (cols := TABLES[name]) is not None
                else table
                for name, table in self.live.poll().items()
            }
        self.state = JobState(job, rows, catalog=catalog if rows is None else None)
        summary = self.state.summary()
        head, spark = self.state.header()
        self.header = HeaderView(header=head, spark=spark)
        self.dag = dag_widget(summary, self.state.dag.edges)
        self.dag.on("node", "click", self._on_node_click)
        self.detail = W.HTML("<i>Click a stage to see its detail.</i>")
        self.charts = ChartsView(list(summary["stage_id"]), max_points=max_points)
        self.charts.set_points(self.state.stage_metrics)
        self.workers_tab = W.HTML(H.workers_html(self.state.worker_table()))
        self.exceptions_tab = W.HTML(H.exceptions_html(self.state.exception_groups()))
        self.config_tab = W.HTML(H.config_html(self.state.config))
        self.tabs = W.Tab(children=[self.workers_tab, self.exceptions_tab, self.config_tab])
        for i, title in enumerate(("Workers", "Exceptions", "Configuration")):
            self.tabs.set_title(i, title)
        self.errors = W.HTML("")
        super().__init__(
            children=[self.header, self.dag, self.detail, self.charts, self.tabs, self.errors]
        )
        self.add_class("si-monitor")
        if self.live is not None and not self.live.done:
            self._unsubscribe = self.live.subscribe(self.update)
            self.live.start()

    # ------------------------------------------------------------------ interaction
    def _on_node_click(self, node: dict[str, Any]) -> None:
        """ipycytoscape's click callback: ``node`` is the clicked element's JSON."""
        stage_id = (node.get("data") or {}).get("id")
        if not stage_id:
            return
        with self._guard("showing the stage"), self._lock:
            self.selected = str(stage_id)
            self.detail.value = self._detail_html()

    def _detail_html(self) -> str:
        if self.selected is None:
            return self.detail.value
        return H.stage_detail_html(
            self.selected,
            self.state.summary(),
            self.state.dag.stages,
            self.state.stage_partitions(self.selected),
            self.state.worker_table(),
        )

    # ------------------------------------------------------------------ live
    def update(self, rows: dict[str, Any]) -> None:
        """Apply one live poll's new rows (LiveJob's subscriber); called at most once per
        ``refresh``. Sends only what changed, all trait changes in one ``hold_sync``."""
        with self._guard("updating"), self._lock:
            new_sm = rows.get("stage_metrics")
            changed = self.state.add(rows)
            live_status = self.live.status if self.live is not None else ""
            if live_status and live_status != "RUNNING":
                self.state.refresh_catalog()  # final: end time, heartbeat (LOST's reason)
            elif live_status:
                # LiveJob read the status this poll; the counts come from the rows
                self.state.catalog["status"] = live_status
            head, spark = self.state.header()
            summary = self.state.summary() if "stage_metrics" in changed else None
            workers = None
            if changed & {"worker_metrics", "workers", "worker_resources"}:
                workers = H.workers_html(self.state.worker_table())
            exc = (
                H.exceptions_html(self.state.exception_groups())
                if "exceptions" in changed
                else None
            )
            config = H.config_html(self.state.config) if "job" in changed else None
            held = [self.header, self.charts, self.detail, *self.tabs.children]
            held += list(self.dag.graph.nodes) + list(self.dag.graph.edges)
            with contextlib.ExitStack() as stack:
                for w in held:
                    stack.enter_context(w.hold_sync())
                self.header.header = head
                self.header.spark = spark
                if summary is not None:
                    update_dag(self.dag, summary)
                    if new_sm is not None:
                        self.charts.append(new_sm.to_pandas(), self.state.stage_metrics)
                if workers is not None:
                    self.workers_tab.value = workers
                if exc is not None:
                    self.exceptions_tab.value = exc
                if config is not None:
                    self.config_tab.value = config
                if self.selected is not None and changed:
                    self.detail.value = self._detail_html()
            self.updates += 1
        if self.live is not None and self.live.done:
            self._stop_live()

    def _stop_live(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.live is not None:
            self.live.stop()

    def close(self) -> None:
        """Stop following the job and close every child widget."""
        self._stop_live()
        for w in (self.header, self.dag, self.detail, self.charts, self.tabs, self.errors):
            w.close()
        super().close()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Any:
        # callback errors in a kernel thread are invisible: show them under the view
        try:
            yield
        except Exception as exc:
            log.exception("job monitor failed while %s", what)
            tb = "".join(traceback.format_exception(exc))
            self.errors.value = (
                f"<details style='color:#b00'><summary>Error while {html.escape(what)}: "
                f"{html.escape(repr(exc))}</summary><pre>{html.escape(tb)}</pre></details>"
            )

    # ------------------------------------------------------------------ static
    def static_html(self, *, charts: bool = True) -> str:
        """The dashboard as static, escaped HTML: header, stage table, DAG and charts as
        SVG, exceptions. Shown when there is no kernel (saved notebook, nbconvert)."""
        from solstice_inspect.report.summary import table_html

        with self._lock:
            head, _ = self.state.header()
            summary = self.state.summary()
            parts = [
                "<div class='si-monitor-static'>",
                H.header_html(head),
                dag_svg(summary, self.state.dag.edges),
                H.STYLE,
                table_html(summary),
            ]
            if charts and not self.state.stage_metrics.empty:
                parts.append(self._charts_svg())
            parts.append(H.exceptions_html(self.state.exception_groups()))
            parts.append("</div>")
        return "".join(parts)

    def _charts_svg(self) -> str:
        # the widget's own specs with inline rows, drawn in one vl-convert call
        import vl_convert as vlc

        from solstice_inspect import charts as C
        from solstice_inspect.analysis.downsample import downsample

        panels = []
        for name in C.CHARTS:
            pts = downsample(
                C.series(self.state.stage_metrics, name),
                "t",
                "v",
                by="stage",
                max_points=STATIC_POINTS,
            ).dropna(subset=["v"])
            spec = {k: v for k, v in self.charts.specs[name].items() if k != "$schema"}
            spec.pop("autosize", None)
            spec["data"] = {
                "values": [
                    {"t": t, "stage": s, "v": v}
                    for t, s, v in zip(
                        (pts["t"].astype("datetime64[us, UTC]").astype("int64") // 1000).tolist(),
                        pts["stage"].tolist(),
                        pts["v"].round(3).tolist(),
                    )
                ]
            }
            panels.append(spec)
        spec = {"$schema": self.charts.specs["throughput"]["$schema"], "concat": panels,
                "columns": 2}  # fmt: skip
        try:
            return vlc.vegalite_to_svg(spec)
        except Exception as exc:  # noqa: BLE001 - a fallback must not break display
            return f"<p>charts unavailable: {html.escape(str(exc))}</p>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        try:
            bundle["text/html"] = self.static_html()
        except Exception as exc:
            log.exception("static fallback failed")
            bundle["text/html"] = f"<pre>{html.escape(repr(exc))}</pre>"
        return bundle


def job_monitor(
    job_or_id: Job | str,
    *,
    store: Store | str | None = None,
    refresh: float = 1.0,
) -> JobMonitor:
    """The live dashboard of a job: ``display(si.job_monitor("etl_001"))``.

    Parameters
    ----------
    job_or_id
        A :class:`~solstice_inspect.store.reader.Job` or a job id (its latest attempt).
    store
        A :class:`Store` or path; the default store when None (ignored for a ``Job``).
    refresh
        Seconds between live updates (at most one update per interval).

    Returns
    -------
    JobMonitor
        An ipywidgets ``VBox``; it follows the attempt while it runs and stops by itself
        when the attempt ends or the widget is closed.

    Examples
    --------
    >>> import solstice_inspect as si                       # doctest: +SKIP
    >>> display(si.job_monitor("etl_001", refresh=2))       # doctest: +SKIP
    """
    from solstice_inspect.store.reader import Job

    if not isinstance(job_or_id, Job):
        from solstice_inspect import job as get_job

        job_or_id = get_job(str(job_or_id), store=store)
    if not refresh > 0:
        raise ValueError(f"refresh must be > 0 seconds, not {refresh!r}")
    started = time.perf_counter()
    monitor = JobMonitor(job_or_id, refresh=refresh)
    log.debug("job monitor built in %.3f s", time.perf_counter() - started)
    return monitor
