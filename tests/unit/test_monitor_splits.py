"""The monitor's Splits tab, played from the front end: a query message in, the paged
rows and the ``splits`` state out — checked against pandas filtering of the stored
lineage rows (read independently), and a bad query shown inline with nothing lost.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import solstice_inspect as si
from solstice_inspect.widgets.paging import MAX_PAGE_ROWS

T0 = 1_764_331_200.0
E = si.envelope
STAGES = {"src": ["src_w0", "src_w1"], "map": ["map_w0", "map_w1", "map_w2"]}


def crafted_job(store: si.Store) -> si.Job:
    """120 splits: src splits (two workers), each read by one map split (three workers);
    durations, records and one exception vary by index so that every filter bites."""
    msgs = [E("job_started", "j", "j", T0, {"dag_edges": {"src": ["map"]}})]
    for stage, workers in STAGES.items():
        msgs += [E("worker_started", "j", w, T0 + 0.5, {"stage_id": stage}) for w in workers]
    for i in range(60):
        w = STAGES["src"][i % 2]
        msgs.append(E("split_processed", "j", w, T0 + 1 + i * 0.5, {
            "stage_id": "src", "split_id": f"src_split_{i}", "parent_split_ids": [],
            "input_records": 0, "output_records": 10 + i, "processing_time": 0.1 * (i % 7),
        }))  # fmt: skip
        w = STAGES["map"][i % 3]
        msgs.append(E("split_processed", "j", w, T0 + 1.2 + i * 0.5, {
            "stage_id": "map", "split_id": f"map_src_split_{i}",
            "parent_split_ids": [f"src_split_{i}"], "input_records": 10 + i,
            "output_records": 0 if i % 5 == 0 else 10 + i, "processing_time": 0.25 * (i % 9),
        }))  # fmt: skip
    msgs.append(E("exception", "j", "map_w1", T0 + 40, {
        "stage_id": "map", "worker_id": "map_w1", "split_id": "src_split_77",
        "exception_type": "ValueError", "message": "bad <img src=x onerror=alert(1)> row",
    }))  # fmt: skip
    msgs.append(E("job_completed", "j", "j", T0 + 50, {"status": "COMPLETED"}))
    with store.record("j") as rec:
        rec.ingest(msgs)
    return store.job("j")


@pytest.fixture
def monitor(tmp_path):
    store = si.connect(tmp_path / "store")
    job = crafted_job(store)
    m = si.job_monitor(job)
    yield m, job
    m.close()


def all_rows(tabs, name: str) -> pd.DataFrame:
    """Every row of a paged table, page by page, as the front end would ask for them."""
    frames, offset = [], 0
    while True:
        reply, buffers = tabs.answer(
            {"type": "page", "id": offset, "table": name, "offset": offset, "limit": MAX_PAGE_ROWS}
        )
        assert reply["type"] == "page", reply
        frames.append(pa.ipc.open_stream(buffers[0]).read_all().to_pandas())
        offset += MAX_PAGE_ROWS
        if offset >= reply["filtered"]:
            return pd.concat(frames, ignore_index=True)


def lineage(job: si.Job) -> pd.DataFrame:
    """The stored lineage rows, read directly (not through ``job.splits``)."""
    return job.table("lineage").to_pandas()


def test_query_with_filters_gives_the_rows_pandas_gives(monitor):
    m, job = monitor
    m.tabs._on_msg(m.tabs, {"type": "splits", "query": {
        "stage": "map", "worker": "map_w0, map_w2", "min_duration_s": "0.5",
        "where": "output_records > 0",
    }}, [])  # fmt: skip
    state = m.tabs.splits
    assert state["error"] == ""
    got = all_rows(m.tabs, "splits")

    df: Any = lineage(job)
    want = df[
        (df["stage_id"] == "map")
        & df["worker_id"].isin(["map_w0", "map_w2"])
        & (df["processing_time"] >= 0.5)
        & (df["output_records"] > 0)
    ].sort_values("ts", kind="stable")
    assert len(want) > 10  # the filters leave a real answer, not everything or nothing
    assert got["split_id"].tolist() == want["split_id"].tolist()
    assert got["duration_s"].tolist() == pytest.approx(want["processing_time"].tolist())
    assert got["worker_id"].tolist() == want["worker_id"].tolist()
    assert state["rows"] == len(want)
    # the parents travel as text
    assert got["parent_split_ids"].tolist() == [p[0] for p in want["parent_split_ids"]]

    # the call shown gives the same rows when run in a cell
    call = state["call"]
    assert call.startswith(f"si.connect({str(job.store.root)!r}).job('j', attempt=")
    assert "stage='map'" in call
    assert "worker=['map_w0', 'map_w2']" in call
    assert "min_duration_s=0.5" in call
    assert "where='output_records > 0'" in call
    ran = eval(call, {"si": si})  # the user's copy-paste
    assert ran["split_id"].tolist() == want["split_id"].tolist()


def test_time_window_and_status(monitor):
    m, job = monitor
    since, until = T0 + 10, T0 + 20.5
    m.run_splits({"since": str(since), "until": "2025-11-28 12:00:20.5", "status": "ok"})
    got = all_rows(m.tabs, "splits")
    df: Any = lineage(job)
    t = df["ts"].astype("datetime64[us, UTC]").astype("int64") / 1e6
    want = df[(t >= since) & (t < until)].sort_values("ts", kind="stable")
    assert 30 < len(want) < 50
    assert got["split_id"].tolist() == want["split_id"].tolist()
    assert set(got["status"]) == {"ok"}


def test_bad_where_shows_inline_and_keeps_the_rows(monitor):
    m, _ = monitor
    m.run_splits({"stage": "src"})
    before = all_rows(m.tabs, "splits")
    assert len(before) == 60
    assert m.tabs.splits["rows"] == 60
    call = m.tabs.splits["call"]

    m.run_splits({"stage": "src", "where": "output_records >"})
    state = m.tabs.splits
    assert "output_records >" in state["error"]
    assert m.tabs.error == ""
    assert m.errors.value == ""
    assert state["call"] == call  # the call of the rows still shown
    assert all_rows(m.tabs, "splits")["split_id"].tolist() == before["split_id"].tolist()

    m.run_splits({"min_duration_s": "slow"})
    assert m.tabs.splits["error"] == "min_duration_s: 'slow' is not a number of seconds"

    m.run_splits({"stage": "mapp"})
    err = m.tabs.splits["error"]
    assert "mapp" in err
    assert "map" in err.replace("'mapp'", "")

    # a good query after that clears the error
    m.run_splits({"stage": "map"})
    assert m.tabs.splits["error"] == ""
    # 60 processed + the failure the exception names (src_split_77, never processed)
    assert len(all_rows(m.tabs, "splits")) == 61


def test_first_visit_runs_the_unfiltered_query(monitor):
    m, job = monitor
    assert m.tabs.splits["rows"] is None  # nothing read before the tab is opened
    m.tabs.selected = "splits"
    assert m.tabs.splits["rows"] == len(lineage(job)) + 1  # + the failed split of src_split_77
    failed = all_rows(m.tabs, "splits").query("status == 'failed'")
    assert failed["split_id"].tolist() == ["src_split_77"]


def test_split_and_exception_rows_open_the_lineage(monitor):
    m, _ = monitor
    m.tabs.clicked({"type": "row", "table": "splits", "row": {"split_id": "map_src_split_3"}})
    assert m.lineage is not None
    assert m.lineage.hood.origin == "map_src_split_3"
    assert set(m.lineage.hood.nodes) == {"map_src_split_3", "src_split_3"}
    assert m.lineage in m.detail.children

    m.tabs.clicked({"type": "row", "table": "exceptions", "row": {"split_id": "src_split_5"}})
    assert m.lineage.hood.origin == "src_split_5"
    # a split the lineage never saw: said where the view would be, escaped
    m.tabs.clicked({"type": "row", "table": "exceptions", "row": {"split_id": "<b>nope</b>"}})
    shown = m.detail.children[-1].value
    assert "&lt;b&gt;nope&lt;/b&gt;" in shown
    assert "<b>nope" not in shown
    m.close_detail()
    assert m.detail.children == ()
    assert m.lineage is None


def test_worker_row_opens_its_detail(monitor):
    m, job = monitor
    m.tabs.clicked({"type": "row", "table": "workers", "row": {"worker_id": "map_w1"}})
    assert m.tabs.error == ""
    assert m.tabs.selected == "worker"
    assert m.tabs.worker["worker_id"] == "map_w1"
    assert any(t["id"] == "worker" and t["title"] == "Worker map_w1" for t in m.tabs.tabs)
    got = all_rows(m.tabs, "worker_splits")
    df: Any = lineage(job)
    want = df[df["worker_id"] == "map_w1"].sort_values("ts", kind="stable")
    # its 20 processed splits, plus the failure its exception names
    assert got["split_id"].tolist() == [*want["split_id"], "src_split_77"]
    # the worker view of widgets/worker.py opens under the tabs, on that worker
    views = [c for c in m.detail.children if hasattr(c, "worker_id")]
    assert [v.worker_id for v in views] == ["map_w1"]
