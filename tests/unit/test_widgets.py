"""job_monitor's state, played from the front end's side: set what the JS would set,
call the handlers its messages reach, and check what the Python side sends back."""

from __future__ import annotations

import json
import time

import ipywidgets as W
import pandas as pd
import pytest
from widget_jobs import XSS, LiveFeed, archived_job, big_job

import solstice_inspect as si
from solstice_inspect.widgets.monitor import JobMonitor

pytest.importorskip("anywidget")


@pytest.fixture
def sent(monkeypatch):
    """Every comm message the widgets send: (widget, msg) pairs."""
    out: list[tuple[W.Widget, dict]] = []
    monkeypatch.setattr(W.Widget, "_send", lambda self, msg, buffers=None: out.append((self, msg)))
    return out


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    store = si.connect(tmp_path_factory.mktemp("store"))
    return archived_job(store)


@pytest.fixture(scope="module")
def monitor(archived):
    m = si.job_monitor(archived)
    yield m
    m.close()


def widget_tree(root: W.Widget) -> list[W.Widget]:
    """The widget and every widget its state references (children, graph, nodes…)."""
    seen: dict[str, W.Widget] = {}
    todo = [root]
    while todo:
        w = todo.pop()
        if w.model_id in seen:
            continue
        seen[w.model_id] = w
        for name in w.keys:
            value = getattr(w, name)
            items = value if isinstance(value, (list, tuple)) else [value]
            todo.extend(v for v in items if isinstance(v, W.Widget))
    return list(seen.values())


def state_bytes(root: W.Widget) -> int:
    """Bytes of the JSON state of every widget of the tree, without JS bundles."""
    total = 0
    for w in widget_tree(root):
        state = {k: v for k, v in w.get_state().items() if k not in ("_esm", "_css")}
        total += len(json.dumps(state, default=str))
    return total


# ---------------------------------------------------------------- archived job
def test_header_shows_the_jobs_figures(monitor, archived):
    head = monitor.header.header
    info = archived.info
    assert head["status"] == "COMPLETED"
    assert head["running"] is False
    assert head["records_in"] == info["records_in"]
    assert head["records_out"] == info["records_out"]
    assert head["exceptions"] == info["exceptions"] > 0
    assert head["elapsed_s"] == pytest.approx(info["duration_s"], abs=1)
    assert head["rate_out"] > 0
    assert 2 <= len(monitor.header.spark) <= 60


def test_dag_has_one_node_per_stage_coloured_by_backpressure(monitor, archived):
    summary = archived.stage_summary()
    nodes = {n.data["id"]: n for n in monitor.dag.graph.nodes}
    assert sorted(nodes) == sorted(archived.dag.stages["stage_id"])
    for row in summary.itertuples():
        assert nodes[row.stage_id].classes == row.backpressure_level.lower()
        assert row.operator_type in nodes[row.stage_id].data["label"]
    assert {n.classes for n in nodes.values()} & {"low", "high"}, "the slow stage shows"
    edges = {(e.data["source"], e.data["target"]): e.data["label"] for e in monitor.dag.graph.edges}
    assert set(edges) == set(archived.dag.edges)
    assert all(label.startswith("lag ") for label in edges.values())
    assert monitor.dag.cytoscape_layout["name"] == "dagre"
    assert monitor.dag.cytoscape_layout["rankDir"] == "LR"


def test_a_click_on_a_stage_shows_its_detail(monitor, archived, sent):
    # the message ipycytoscape's JS sends on a node click
    monitor.dag._handle_interaction(
        monitor.dag, {"widget": "node", "event": "click", "data": {"data": {"id": "enrich"}}}, []
    )
    detail = monitor.detail.value
    assert "Stage enrich" in detail
    assert "GeoEnrich" in detail
    assert "Partitions" in detail
    workers = archived.workers()
    for wid in workers[workers["stage_id"] == "enrich"]["worker_id"].unique():
        assert wid in detail
    assert [msg["state"] for w, msg in sent if w is monitor.detail] == [{"value": detail}]


def test_exception_messages_are_text_not_markup(monitor):
    tab = monitor.exceptions_tab.value
    assert XSS not in tab
    assert "&lt;img src=x onerror=alert(1)&gt;" in tab
    assert "<details" in tab
    assert "<pre>" in tab  # the stacktrace, on expand
    static = monitor._repr_mimebundle_()["text/html"]
    assert XSS not in static
    assert "<script" not in static


def test_charts_get_specs_and_bounded_points(monitor):
    charts = monitor.charts
    assert set(charts.specs) == {"throughput", "queue_lag", "backpressure"}
    for name, spec in charts.specs.items():
        assert spec["data"] == {"name": "series"}, name
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v6")
        cols = charts.data[name]
        assert len(cols["t"]) == len(cols["s"]) == len(cols["v"]) > 0
        assert set(cols["s"]) <= set(range(len(charts.stages)))
    assert charts.stages == list(monitor.state.summary()["stage_id"])


def test_static_fallback_has_summary_dag_and_chart_svgs(monitor):
    bundle = monitor._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    page = bundle["text/html"]
    assert "etl_archived" in page
    assert "COMPLETED" in page
    assert page.count("<svg") >= 2  # the DAG, and the three charts in one SVG
    assert page.count('class="mark-line') >= 3, "line marks drawn in the chart SVG"
    assert "class='si-dag-svg'" in page
    assert "http" not in page.replace("http://www.w3.org", "")  # nothing from a URL


def test_user_charts_are_altair_and_bounded(archived):
    import altair as alt

    for make in (si.charts.throughput, si.charts.queue_lag, si.charts.backpressure):
        chart = make(archived, max_points=50)
        assert isinstance(chart, alt.Chart)
        assert chart.data.groupby("stage").size().max() <= 50


def test_errors_show_inline(monitor):
    m = monitor
    m.update({"stage_metrics": "not a table"})
    assert "Error while updating" in m.errors.value
    m.errors.value = ""


def test_unknown_job_names_known_ones(archived):
    with pytest.raises(si.JobNotFound, match="etl_archived"):
        si.job_monitor("etl_archive", store=archived.store)


# ---------------------------------------------------------------- payload bounds
def test_1m_rows_initial_state_is_bounded(tmp_path):
    job = big_job(si.connect(tmp_path / "store"))
    assert job.table("worker_metrics", columns=["ts"]).num_rows >= 1_000_000
    m = si.job_monitor(job)
    try:
        for name, cols in m.charts.data.items():
            per_series = {s: cols["s"].count(s) for s in set(cols["s"])}
            assert max(per_series.values()) <= 2000, name
            assert min(per_series.values()) >= 1000, name  # downsampled, not starved
        size = state_bytes(m)
        assert size <= 1_000_000, size
        assert "1,000 workers" in m.workers_tab.value or "1,0" in m.workers_tab.value
    finally:
        m.close()


# ---------------------------------------------------------------- live
def test_a_live_update_sends_only_what_changed(tmp_path, sent):
    store = si.connect(tmp_path / "store")
    feed = LiveFeed(store, "etl_live_unit", duration_s=30)
    feed.feed_until(10)
    m = si.job_monitor(store.job("etl_live_unit"), refresh=60)
    try:
        m.live.stop()  # drive the updates by hand
        m.state.clock = lambda: 1_764_331_300.0
        assert m.header.header["status"] == "RUNNING"
        m.update(m.live.poll())  # settle: clock fixed from here
        sent.clear()
        m.update(m.live.poll())
        assert sent == [], "nothing new: nothing sent"

        feed.feed_until(5)  # five more simulated seconds
        rows = m.live.poll()
        new_windows = rows["stage_metrics"].num_rows
        before = m.header.header["records_in"]
        m.update(rows)
        by_widget: dict[str, list[dict]] = {}
        for w, msg in sent:
            by_widget.setdefault(type(w).__name__, []).append(msg)
        charts = by_widget["ChartsView"]
        assert all(msg["method"] == "custom" for msg in charts), "no chart redraw"
        appended = [msg["content"] for msg in charts]
        assert {c["chart"] for c in appended} == {"throughput", "queue_lag", "backpressure"}
        assert max(len(c["t"]) for c in appended) <= new_windows
        header = by_widget["HeaderView"]
        assert len(header) == 1, "one update message for the header (hold_sync)"
        assert m.header.header["records_in"] > before
        assert all("_esm" not in msg.get("state", {}) for _, msg in sent)
        assert len(json.dumps([msg for _, msg in sent], default=str)) < 100_000
        # a view that renders now asks for the points since the snapshot
        sent.clear()
        m.charts._handle_msg(m.charts, {"type": "hello"}, [])
        assert [msg["content"] for _, msg in sent] == m.charts._tail
        assert {c["epoch"] for c in m.charts._tail} == {m.charts.epoch}
    finally:
        m.close()
        feed.stop()


def test_live_monitor_follows_the_job_and_stops_when_it_ends(tmp_path):
    store = si.connect(tmp_path / "store")
    feed = LiveFeed(store, "etl_live_thread", duration_s=12, speed=12.0, flush_interval=0.2)
    feed.feed_until(1)
    m = JobMonitor(store.job("etl_live_thread"), refresh=0.2)
    try:
        first = m.header.header["records_in"] or 0
        feed.start()
        deadline = time.monotonic() + 20
        while m.live.running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not m.live.running, "polling stops when the job ends"
        assert m.live.done
        assert m.header.header["status"] == "COMPLETED"
        assert m.header.header["records_in"] > first
        assert 1 <= m.updates <= 12 / 12 / 0.2 + 15  # at most one update per refresh
        assert m.errors.value == ""
    finally:
        m.close()
        feed.stop()


def test_closing_the_widget_stops_polling(tmp_path):
    store = si.connect(tmp_path / "store")
    feed = LiveFeed(store, "etl_live_close", duration_s=60)
    feed.feed_until(2)
    m = si.job_monitor(store.job("etl_live_close"), refresh=0.1)
    assert m.live.running
    m.close()
    assert not m.live.running
    feed.stop()


def test_header_shows_lost_with_its_reason_and_progress_with_eta(archived):
    from solstice_inspect.widgets.state import JobState

    state = JobState(archived, clock=lambda: 1_764_400_000.0)
    records_in = state.header()[0]["records_in"]
    state.catalog = {**state.catalog, "status": "LOST"}
    state.catalog["heartbeat"] = pd.Timestamp(1_764_400_000 - 42, unit="s", tz="UTC")
    head, _ = state.header()
    assert head["status"] == "LOST"
    assert "no heartbeat for 42 s" in head["status_reason"]
    state.config = {**state.config, "total_records": records_in * 4}
    state.catalog["status"] = "RUNNING"
    # the archived job's source has stopped; pretend it still reads 100 records/s
    state._rate = lambda stages, now=True: 100.0
    head, _ = state.header()
    assert head["progress"] == pytest.approx(0.25)
    assert head["rate_in"] == 100.0
    assert head["eta_s"] == pytest.approx(records_in * 3 / 100.0, abs=1)


def test_the_widgets_chart_specs_are_valid_altair_charts():
    import altair as alt

    from solstice_inspect.charts import CHARTS, vega_lite_spec

    for name in CHARTS:
        spec = vega_lite_spec(name)
        chart = alt.Chart.from_dict(spec)  # validates against Vega-Lite's schema
        assert chart.to_dict()["encoding"]["y"]["title"] == CHARTS[name][2]
        assert spec["data"] == {"name": "series"}
