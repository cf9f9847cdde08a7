"""job_monitor played from the front end's side: set what the JS would set, send the
messages it sends, and check what the kernel answers — against answers computed here
independently from the store's raw tables with pandas."""

from __future__ import annotations

import json
import time

import ipywidgets as W
import pandas as pd
import pyarrow as pa
import pytest
from widget_jobs import XSS, LiveFeed, archived_job, big_job

import solstice_inspect as si
from solstice_inspect.widgets.monitor import JobMonitor

#: these tests count what each action sends (see tests/conftest.py)
pytestmark = pytest.mark.usefixtures("advice_in_the_kernel_thread")


@pytest.fixture
def sent(monkeypatch):
    """Every comm message the widgets send: (widget, msg, buffers) triples."""
    out: list[tuple[W.Widget, dict, list]] = []

    def record(self, msg, buffers=None):
        out.append((self, msg, list(buffers or [])))

    monkeypatch.setattr(W.Widget, "_send", record)
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


def page(monitor, table, **request):
    """Ask the kernel for a page like the front end does; return (reply, rows as pandas)."""
    reply, buffers = monitor.tabs.answer({"type": "page", "id": 1, "table": table, **request})
    if reply["type"] != "page":
        return reply, None
    rows = pa.ipc.open_stream(buffers[0]).read_all().to_pandas()
    return reply, rows


# ---------------------------------------------------------------- archived job
def test_header_shows_the_jobs_figures(monitor, archived):
    head = monitor.header.header
    sm = archived.stage_metrics()
    last = sm.sort_values("ts", kind="stable").groupby("stage_id").tail(1).set_index("stage_id")
    assert head["status"] == "COMPLETED"
    assert head["running"] is False
    assert head["records_in"] == last.loc["source", "output_records"]
    assert head["records_out"] == last.loc["sink", "output_records"]
    assert head["exceptions"] == len(archived.exceptions()) > 0
    cat = archived.catalog_row()
    assert head["elapsed_s"] == pytest.approx(
        (cat["end_time"] - cat["start_time"]).total_seconds(), abs=0.1
    )
    assert head["start"] == pytest.approx(cat["start_time"].timestamp())
    assert head["rate_out"] > 0
    assert head["updated_age_s"] is None, "a finished job shows no 'updated N s ago'"
    assert 2 <= len(monitor.header.spark) <= 60


def test_dag_has_one_node_per_stage_sized_to_the_graph(monitor, archived):
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
    # a chain of 5 stages is one row of nodes: the canvas is one node tall, no empty band
    assert monitor.dag.layout.height == "90px"
    assert monitor.dag.max_zoom == 1.0, "never zoomed past 100 %: labels stay readable"
    style = {s["selector"]: s["style"] for s in monitor.dag.cytoscape_style}
    assert style["node"]["font-size"] >= 12
    assert "text-background-color" not in style["edge"], "no white boxes in the dark theme"


def test_a_click_on_a_stage_shows_its_detail_and_workers(monitor, archived, sent):
    # the message ipycytoscape's JS sends on a node click
    monitor.dag._handle_interaction(
        monitor.dag, {"widget": "node", "event": "click", "data": {"data": {"id": "enrich"}}}, []
    )
    tabs = monitor.tabs
    assert tabs.selected == "stage"
    assert tabs.stage["stage_id"] == "enrich"
    facts = {label: value for label, value, _ in tabs.stage["facts"]}
    assert facts["operator"] == "GeoEnrich"
    sm = archived.stage_metrics()
    enrich = sm[sm["stage_id"] == "enrich"].sort_values("ts", kind="stable")
    assert facts["records out"] == enrich["output_records"].iloc[-1]
    assert facts["parallelism max"] == 3
    _, rows = page(monitor, "stage_workers", offset=0, limit=100)
    workers = archived.workers()
    expected = sorted(workers[workers["stage_id"] == "enrich"]["worker_id"].unique())
    assert sorted(rows["worker_id"]) == expected
    assert any(t["id"] == "stage" and "enrich" in t["title"] for t in tabs.tabs)
    # the selection, facts and tab list went out in one message
    msgs = [m for w, m, _ in sent if w is tabs and m.get("method") == "update"]
    assert len(msgs) == 1
    assert {"stage", "tabs", "selected"} <= set(msgs[0]["state"])


def test_workers_table_equals_the_stores_latest_rows(monitor, archived):
    _, rows = page(monitor, "workers", offset=0, limit=500)
    wm = archived.worker_metrics().sort_values("ts", kind="stable")
    last = wm.groupby("worker_id").tail(1).set_index("worker_id")
    events = archived.workers().sort_values("ts", kind="stable").groupby("worker_id").tail(1)
    status = {
        r.worker_id: ("RUNNING" if r.event == "STARTED" else r.event) for r in events.itertuples()
    }
    rows = rows.set_index("worker_id")
    assert set(rows.index) == set(last.index) | set(status)
    for wid, row in last.iterrows():
        assert rows.loc[wid, "output_records"] == row["output_records"], wid
        assert rows.loc[wid, "stage_id"] == row["stage_id"]
    for wid, st in status.items():
        assert rows.loc[wid, "status"] == st
    assert (rows["status"] == "FAILED").any(), "the simulation's failed worker shows"


def test_exceptions_page_sort_and_filter_equal_pandas(monitor, archived):
    exc = archived.table("exceptions").to_pandas()  # storage order, as the tab's natural order
    reply, rows = page(monitor, "exceptions", offset=0, limit=3)
    assert reply["total"] == len(exc)
    assert reply["filtered"] == len(exc)
    assert list(rows["exception_id"]) == list(exc["exception_id"][:3])
    reply, rows = page(
        monitor, "exceptions", offset=2, limit=3,
        sort={"column": "worker_id", "desc": True}, filters={"stage_id": "=parse"},
    )  # fmt: skip
    want = exc[exc["stage_id"] == "parse"].sort_values("worker_id", ascending=False, kind="stable")
    assert reply["filtered"] == len(want)
    assert list(rows["exception_id"]) == list(want["exception_id"][2:5])
    assert rows["ts"].dtype == "float64", "times travel as epoch seconds"
    assert rows["ts"].iloc[0] == pytest.approx(want["ts"].iloc[2].timestamp())
    # a hostile message travels as data, untouched (the front end writes it as text)
    _, everything = page(monitor, "exceptions", offset=0, limit=500)
    assert XSS in set(everything["message"])
    # a bad filter is an error answer, not an exception in the kernel
    reply, _ = page(monitor, "exceptions", offset=0, limit=5, filters={"ts": ">soon"})
    assert reply["type"] == "error"
    assert "soon" in reply["message"]
    reply, _ = page(monitor, "nope", offset=0, limit=5)
    assert reply["type"] == "error"
    assert "exceptions" in reply["message"]


def test_exception_groups_link_to_their_occurrences(monitor, archived):
    meta = monitor.tabs.tables["exception_groups"]
    assert meta["link"] == {"column": "fingerprint", "table": "exceptions", "filter": "fingerprint"}
    _, groups = page(monitor, "exception_groups", offset=0, limit=100)
    exc = archived.exceptions()
    counts = exc.groupby("fingerprint").size()
    assert dict(zip(groups["fingerprint"], groups["count"])) == counts.to_dict()
    assert list(groups["count"]) == sorted(groups["count"], reverse=True)
    top = groups["fingerprint"].iloc[0]
    reply, _ = page(monitor, "exceptions", offset=0, limit=5, filters={"fingerprint": f"={top}"})
    assert reply["filtered"] == counts[top]


def test_charts_get_specs_and_bounded_points(monitor):
    charts = monitor.charts
    assert set(charts.specs) == {"throughput", "queue_lag", "backpressure"}
    for name, spec in charts.specs.items():
        assert spec["data"] == {"name": "series"}, name
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v6")
        cols = charts.data[name]
        assert len(cols["t"]) == len(cols["s"]) == len(cols["v"]) > 0
        assert set(cols["s"]) <= set(range(len(charts.stages)))
    assert charts.stages == list(monitor.snapshot.stage_summary()["stage_id"])
    assert charts.stages == ["source", "parse", "filter", "enrich", "sink"], "pipeline order"
    for spec in charts.specs.values():
        assert spec["encoding"]["color"]["scale"]["domain"] == charts.stages, "legend order"


def test_static_fallback_has_summary_dag_and_chart_svgs(monitor):
    bundle = monitor._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    page_html = bundle["text/html"]
    assert "etl_archived" in page_html
    assert "COMPLETED" in page_html
    assert page_html.count("<svg") == 4  # the DAG and the three charts
    stages = monitor.snapshot.stage_metrics["stage_id"].nunique()
    assert page_html.count("class='mark-line'") == 3 * stages, "a line per stage per chart"
    assert "Backpressure ratio per stage" in page_html
    assert ">100%</text>" in page_html, "the ratio reads as a percentage"
    assert "class='si-dag-svg'" in page_html
    assert XSS not in page_html
    assert "&lt;img src=x onerror=alert(1)&gt;" in page_html
    assert "<script" not in page_html
    assert "http" not in page_html.replace("http://www.w3.org", "")  # nothing from a URL


def test_job_repr_html_renders_the_same_model(archived):
    html = archived._repr_html_()
    assert "etl_archived" in html
    assert "COMPLETED" in html
    assert XSS not in html


def test_user_charts_are_altair_and_bounded(archived):
    import altair as alt

    for make in (si.charts.throughput, si.charts.queue_lag, si.charts.backpressure):
        chart = make(archived, max_points=50)
        assert isinstance(chart, alt.Chart)
        assert chart.data.groupby("stage").size().max() <= 50


def test_errors_show_inline(monitor):
    monitor.update({"stage_metrics": "not a table"})
    assert "Error while updating" in monitor.errors.value
    monitor.errors.value = ""


def test_unknown_job_names_known_ones(archived):
    with pytest.raises(si.JobNotFound, match="etl_archived"):
        si.job_monitor("etl_archive", store=archived.store)


def test_a_table_of_the_users_own_rows_pages_in_the_kernel():
    df = pd.DataFrame({"stage": ["a", "b", "a", "c"] * 250, "n": range(1000)})
    table = si.widgets.Table(df, title="mine", page_size=50)
    assert table.tables["mine"]["total"] == 1000
    assert {c["name"]: c["type"] for c in table.tables["mine"]["columns"]} == {
        "stage": "string", "n": "int",
    }  # fmt: skip
    reply, buffers = table.answer(
        {"type": "page", "id": 7, "table": "mine", "offset": 100, "limit": 50,
         "sort": {"column": "n", "desc": True}, "filters": {"stage": "a"}}
    )  # fmt: skip
    rows = pa.ipc.open_stream(buffers[0]).read_all().to_pandas()
    want = df[df["stage"] == "a"].sort_values("n", ascending=False)
    assert reply["id"] == 7
    assert reply["filtered"] == len(want) == 500
    assert list(rows["n"]) == list(want["n"][100:150])
    version = table.tables["mine"]["version"]
    table.refresh(df.head(10))
    assert table.tables["mine"]["total"] == 10
    assert table.tables["mine"]["version"] > version, "the view re-asks for its page"


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
        workers = next(t for t in m.tabs.tabs if t["id"] == "workers")
        assert workers["badge"] == job.worker_metrics(columns=["worker_id"])["worker_id"].nunique()
        # any row is reachable: the last page of the 1,000+ workers
        reply, rows = page(m, "workers", offset=10**9, limit=25)
        assert reply["offset"] == (reply["filtered"] - 1) // 25 * 25
        assert len(rows) == reply["filtered"] - reply["offset"] > 0
    finally:
        m.close()


# ---------------------------------------------------------------- live
def test_a_live_update_sends_only_what_changed(tmp_path, sent):
    store = si.connect(tmp_path / "store")
    feed = LiveFeed(store, "etl_live_unit", duration_s=30)
    feed.feed_until(10)
    m = JobMonitor(store.job("etl_live_unit"), refresh=60, clock=lambda: 1_764_331_300.0)
    try:
        m.live.stop()  # drive the updates by hand
        assert m.header.header["status"] == "RUNNING"
        assert m.advice_ready.wait(30)  # the run's advice arrives once, off the kernel's way
        m.update(m.live.poll())  # settle
        sent.clear()
        m.update(m.live.poll())
        assert sent == [], "nothing new: nothing sent"

        feed.feed_until(5)  # five more simulated seconds
        rows = m.live.poll()
        new_windows = rows["stage_metrics"].num_rows
        before = m.header.header["records_in"]
        m.update(rows)
        by_widget: dict[str, list[dict]] = {}
        for w, msg, _ in sent:
            by_widget.setdefault(type(w).__name__, []).append(msg)
        charts = by_widget["ChartsView"]
        assert len(charts) == 1, "one message for all charts"
        assert charts[0]["method"] == "custom", "no chart redraw"
        appended = charts[0]["content"]["charts"]
        assert set(appended) == {"throughput", "queue_lag", "backpressure"}
        assert max(len(c["t"]) for c in appended.values()) <= new_windows
        assert len(by_widget["HeaderView"]) == 1, "one update message for the header"
        tabs = by_widget["TabsView"]
        assert len(tabs) == 1, "tables: one message with the new versions, no rows"
        assert "tables" in tabs[0]["state"]
        assert m.header.header["records_in"] > before
        assert all("_esm" not in msg.get("state", {}) for _, msg, _ in sent)
        assert len(json.dumps([msg for _, msg, _ in sent], default=str)) < 100_000
        # a view that renders now asks for the points since the snapshot
        sent.clear()
        m.charts._handle_msg(m.charts, {"type": "hello"}, [])
        assert [msg["content"] for w, msg, _ in sent if w is m.charts] == m.charts._tail
        assert {c["epoch"] for c in m.charts._tail} == {m.charts.epoch}
    finally:
        m.close()
        feed.stop()


def test_a_stage_that_reports_late_joins_the_dag_and_charts(tmp_path):
    store = si.connect(tmp_path / "store")
    t0 = 1_764_331_200.0
    rec = store.record("late", flush_interval=0.05)
    env = si.envelope
    rec.ingest(env("job_started", "late", "late", t0, {"dag_edges": {"read": ["parse"]}}))
    rec.ingest(env("worker_metrics", "late", "read_w0", t0 + 1,
                   {"stage_id": "read", "input_records": 0, "output_records": 5}))  # fmt: skip
    rec.flush()
    m = JobMonitor(store.job("late"), refresh=60)
    try:
        m.live.stop()
        assert {n.data["id"] for n in m.dag.graph.nodes} == {"read", "parse"}
        rec.ingest(env("worker_metrics", "late", "audit_w0", t0 + 2,
                       {"stage_id": "audit", "input_records": 5, "output_records": 5}))  # fmt: skip
        rec.flush()
        m.update(m.live.poll())
        assert {n.data["id"] for n in m.dag.graph.nodes} == {"read", "parse", "audit"}
        assert "audit" in m.charts.stages
        assert m.errors.value == ""
    finally:
        m.close()
        rec.finish("COMPLETED")


def test_live_monitor_follows_the_job_and_stops_when_it_ends(tmp_path):
    store = si.connect(tmp_path / "store")
    feed = LiveFeed(store, "etl_live_thread", duration_s=12, speed=12.0, flush_interval=0.2)
    feed.feed_until(1)
    m = JobMonitor(store.job("etl_live_thread"), refresh=0.2)
    try:
        first = m.header.header["records_in"] or 0
        assert m.header.header["updated_age_s"] is not None
        assert m.header.header["stale_after_s"] == pytest.approx(0.6)
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


def test_a_monitor_of_a_job_id_moves_to_its_next_attempt(tmp_path):
    store = si.connect(tmp_path / "store")
    t0 = 1_764_331_200.0
    with store.record("again") as rec:
        rec.ingest(si.envelope("job_started", "again", "again", t0, {"dag_edges": {"a": ["b"]}}))
    m = si.job_monitor("again", store=store, refresh=0.1)
    try:
        first = m.snapshot.attempt_id
        assert m.live.running, "watching for a newer attempt"
        with store.record("again") as rec:
            rec.ingest(si.envelope("job_started", "again", "again", t0 + 60,
                                   {"dag_edges": {"x": ["y"]}}))  # fmt: skip
            second = rec.attempt_id
        deadline = time.monotonic() + 15
        while m.header.header["attempt_id"] != second and time.monotonic() < deadline:
            time.sleep(0.1)
        assert m.snapshot.attempt_id == second != first, (m.live, m.errors.value)
        assert m.header.header["attempt_id"] == second
        assert {n.data["id"] for n in m.dag.graph.nodes} == {"x", "y"}
        assert m.errors.value == ""
    finally:
        m.close()


def test_the_widgets_chart_specs_are_valid_altair_charts():
    import altair as alt

    from solstice_inspect.charts import CHARTS, vega_lite_spec

    for name in CHARTS:
        spec = vega_lite_spec(name)
        chart = alt.Chart.from_dict(spec)  # validates against Vega-Lite's schema
        assert chart.to_dict()["encoding"]["y"]["title"] == CHARTS[name][2]
        assert spec["data"] == {"name": "series"}


def test_checkpoints_and_logs_tabs_read_the_store_and_follow_it(tmp_path):
    store = si.connect(tmp_path / "store")
    t0 = 1_764_331_200.0
    seq = iter(range(10_000))

    def env(mtype, source, ts, payload):
        return si.envelope(mtype, "tabs_job", source, ts, payload, next(seq))

    rec = store.record("tabs_job", flush_interval=3600)
    msgs = [env("job_started", "tabs_job", t0, {"dag_edges": {"src": ["sink"]}})]
    for k in range(3):
        msgs.append(
            env(
                "checkpoint",
                "src",
                t0 + 10 * k + 1,
                {
                    "checkpoint_id": f"chk_{k}",
                    "status": "COMPLETED",
                    "trigger_time": t0 + 10 * k,
                    "completion_time": t0 + 10 * k + 1,
                },
            )
        )
    lines = [("INFO", "started"), ("WARNING", "slow <b>disk</b>"), ("ERROR", "disk full")]
    for k, (level, text) in enumerate(lines):
        msgs.append(
            env(
                "log", "src_w0_aaaaaa", t0 + k, {"stage_id": "src", "level": level, "message": text}
            )
        )
    msgs.append(
        env("worker_metrics", "src_w0_aaaaaa", t0 + 5, {"stage_id": "src", "output_records": 10})
    )
    rec.ingest(msgs)
    rec.flush()
    m = JobMonitor(store.job("tabs_job"), refresh=60)
    try:
        m.live.stop()  # drive the updates by hand
        assert {"checkpoints", "logs"} <= {tab["id"] for tab in m.tabs.tabs}
        reply, rows = page(m, "checkpoints", offset=0, limit=25)
        assert reply["total"] == 3
        assert list(rows["checkpoint_id"]) == ["chk_0", "chk_1", "chk_2"]
        reply, rows = page(m, "logs", offset=0, limit=25, filters={"message": "disk"})
        assert (reply["total"], reply["filtered"]) == (3, 2)
        assert sorted(rows["message"]) == ["disk full", "slow <b>disk</b>"]  # text, kept as is
        # the job goes on: a new log line shows after the next update
        rec.ingest(
            [
                env("log", "src_w0_aaaaaa", t0 + 7, {"level": "ERROR", "message": "again"}),
                env(
                    "worker_metrics",
                    "src_w0_aaaaaa",
                    t0 + 8,
                    {"stage_id": "src", "output_records": 20},
                ),
            ]
        )
        rec.flush()
        m.update(m.live.poll())
        reply, rows = page(m, "logs", offset=0, limit=25)
        assert reply["total"] == 4
        assert rows["message"].iloc[-1] == "again"
    finally:
        m.close()
        rec.finish("COMPLETED")
