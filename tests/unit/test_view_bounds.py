"""Issue 9's bounds: with 100,000 lineage rows, 10,000 checkpoints, 5,000 workers and
50,000 exceptions (``tests/bounds_job.py``), every panel's synced state stays ≤ 1 MB.

A panel's state is counted where Jupyter counts it: every comm message its widgets
publish while it is built or acts (the state of each widget it opens, each trait update),
plus the first page of each of its tables (the page answer and its Arrow bytes) — less
the JS bundles, which are package files, the same for every job. How long each view takes
to build is a speed target measured by bench/bounds_bench.py, not asserted here.
"""

from __future__ import annotations

import json

import comm
import pytest
from bounds_job import CHECKPOINTS, EXCEPTIONS, SOURCE_SPLIT, WORKERS, bounds_job

import solstice_inspect as si
from solstice_inspect.widgets.advice import recommendations_html

MB = 1_000_000


class Published(list):
    """Bytes of every comm message published, less the JS code it carries."""

    def since(self, start: int) -> int:
        return sum(self[start:])


@pytest.fixture
def published(monkeypatch) -> Published:
    out = Published()

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        size = len(json.dumps(data, default=str)) + sum(len(bytes(b)) for b in buffers or ())
        state = (data or {}).get("state") or {}
        code = sum(len(str(state.get(k, ""))) for k in ("_esm", "_css"))
        out.append(size - code)

    monkeypatch.setattr(comm.DummyComm, "publish_msg", publish_msg)
    return out


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> si.Job:
    return bounds_job(si.connect(tmp_path_factory.mktemp("bounds") / "store"))


def first_pages(widget, published: Published) -> dict[str, tuple[int, dict]]:
    """Ask each table of a paged-tables widget for its first page, as the front end does:
    {table: (bytes sent, reply)}."""
    out = {}
    for name, meta in widget.tables.items():
        start = len(published)
        reply, _ = widget.answer(
            {"type": "page", "id": 1, "table": name, "offset": 0, "limit": meta["page_size"]}
        )
        out[name] = (published.since(start), reply)
    return out


def test_the_monitor_and_each_of_its_tabs_stay_under_1_mb(job, published):
    start = len(published)
    m = si.job_monitor(job)
    try:
        built = published.since(start)
        assert len(published) - start > 10, "the widgets opened their comms"
        assert built <= MB, built
        pages = first_pages(m.tabs, published)
        for name, (size, reply) in pages.items():
            assert reply["type"] == "page", (name, reply)
            assert size <= MB, (name, size)
        # the tables hold every row (paged), not a cut of them
        assert pages["exceptions"][1]["total"] == EXCEPTIONS + 5  # + the simulated job's
        assert pages["workers"][1]["total"] >= WORKERS
        assert pages["logs"][1]["total"] == 5_000  # the tab serves the last 5,000 lines
        assert pages["checkpoints"][1]["total"] >= CHECKPOINTS

        # each deeper tab, opened as the front end opens it
        worker = "enrich_w3_bnd00003"
        actions = {
            "splits query": lambda: m.run_splits({}),
            "splits query by stage": lambda: m.run_splits({"stage": "enrich"}),
            "timeline": m.refresh_timeline,
            "worker": lambda: m.select_worker(worker),
            "stage": lambda: m.select_stage("enrich"),
            "time travel": lambda: m.travel_to(job.info["start_time"].timestamp() + 5),
            "lineage": lambda: m.open_lineage(SOURCE_SPLIT),
        }
        for what, act in actions.items():
            start = len(published)
            act()
            assert not m.errors.value, (what, m.errors.value)
            assert not m.tabs.error, (what, m.tabs.error)
            size = published.since(start)
            pages = first_pages(m.tabs, published)  # the tabs it opened ask for a page
            size += sum(pages[n][0] for n in ("splits", "worker_splits", "worker_logs"))
            assert size <= MB, (what, size)
        assert m.tabs.tables["splits"]["total"] > 0
    finally:
        m.close()


def test_the_lineage_view_of_a_split_with_50000_children_stays_under_1_mb(job, published):
    start = len(published)
    view = si.lineage_view(job, SOURCE_SPLIT, depth=2)
    assert published.since(start) <= MB
    assert len(view.cyto.graph.nodes) <= 300
    assert "49,980 more folded" in view.title.value
    start = len(published)
    key = next(iter(view.hood.more))
    view._on_click({"data": {"id": key}})  # a "+N more" node, clicked
    child = next(n for n in view.cyto.graph.nodes if n.data.get("split_id", "").startswith("big_"))
    view._on_click({"data": dict(child.data)})  # a split, clicked: its detail
    assert not view.errors.value
    assert published.since(start) <= MB


def test_the_worker_view_stays_under_1_mb(job, published):
    start = len(published)
    view = si.worker_view(job, "enrich_w3_bnd00003")
    try:
        assert published.since(start) <= MB
    finally:
        view.close()


#: each data function of issue 9, as a user would put it in a Table
QUERIES = {
    "checkpoint_history": lambda j: j.checkpoint_history(),
    "checkpoints": lambda j: j.checkpoints(),
    "checkpoint_diff": lambda j: j.checkpoint_diff("chk_1", f"chk_{CHECKPOINTS - 1}"),
    "exceptions_search": lambda j: j.exceptions(search="decode_7"),
    "exception_groups": lambda j: j.exception_groups(),
    "splits": lambda j: j.splits(stage="enrich"),
    "trace": lambda j: j.trace("big_explode_7", direction="both"),
    "logs_search": lambda j: j.logs(search="big_explode_1"),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_each_data_function_shown_as_a_table_stays_under_1_mb(job, published, name):
    df = QUERIES[name](job)
    assert len(df) > 0
    start = len(published)
    table = si.widgets.Table(df, title="rows")
    try:
        pages = first_pages(table, published)
        assert pages["rows"][1]["total"] == len(df)
        assert published.since(start) <= MB
    finally:
        table.close()


def test_the_timeline_chart_and_the_recommendations_panel_stay_under_1_mb(job):
    spec = si.charts.timeline(job).to_json()
    assert len(spec) <= MB
    assert json.loads(spec)["layer"]
    panel = recommendations_html(job.recommendations())
    assert len(panel) <= MB
    assert "enrich" in panel
