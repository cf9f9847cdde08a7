"""The monitor's header cards, Incidents tab and Advice tab, played as the front end would
(traits and messages), on crafted runs whose figures are known by hand."""

from __future__ import annotations

import pytest
from widget_jobs import XSS, crafted_run

import solstice_inspect as si
from solstice_inspect.widgets.monitor import JobMonitor

RATES = [97.0, 103.0, 100.0, 98.0, 102.0, 101.0]  # parse, runs 1-6: 100 rec/s ± 3 %


def _run(store, run, parse_rate):
    return crafted_run(
        store, "steady", rates={"read": 200.0, "parse": parse_rate, "write": 100.0}, run=run
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = si.connect(tmp_path_factory.mktemp("advice") / "store")
    for run, rate in enumerate(RATES):
        _run(store, run, rate)
    _run(store, 6, 60.0)  # parse 40 % slower than the median of 6 runs
    return store


def _page(monitor, table):
    reply, _buffers = monitor.tabs.answer({"id": 1, "table": table, "offset": 0, "limit": 50})
    return reply


def test_the_header_flags_a_regression_of_this_run(store):
    monitor = JobMonitor(store.job("steady"))
    assert monitor.advice_ready.wait(30), "regressions were never computed"
    cards = monitor.header.header["cards"]
    assert [c["kind"] for c in cards] == ["regression"]
    assert cards[0]["text"] == "parse 40 % slower than the median of 6 runs (60 vs 100 rec/s)"
    tabs = {t["id"]: t for t in monitor.tabs.tabs}
    assert tabs["advice"]["badge"] >= 1
    assert "6 earlier runs" in tabs["advice"]["text"]
    assert _page(monitor, "regressions")["total"] == 1
    # recommendations read the run's worker metrics: only once the Advice tab is shown
    assert monitor._recommendations is None
    monitor.tabs.selected = "advice"
    expected = store.job("steady").recommendations()
    assert _page(monitor, "recommendations")["total"] == len(expected)
    monitor.close()


def test_a_run_without_enough_history_has_no_flag_and_says_why(store):
    monitor = JobMonitor(store.job("steady", attempt=3))  # 2 earlier runs
    assert monitor.advice_ready.wait(30)
    assert monitor.header.header["cards"] == []
    note = {t["id"]: t for t in monitor.tabs.tabs}["advice"]["text"]
    assert "fewer than 5" in note or "2 earlier" in note, note
    monitor.close()


def test_incidents_are_cards_and_a_tab_whose_rows_open_the_lineage(tmp_path):
    store = si.connect(tmp_path)
    t0 = 1_764_331_200.0
    split = f"enrich_split_{XSS}"
    with store.record("inc") as rec:
        rec.ingest(
            [
                si.envelope("job_started", "inc", "inc", t0, {"dag_edges": {"enrich": []}}),
                si.envelope(
                    "incident",
                    "inc",
                    "enrich_w1",
                    t0 + 40,
                    {
                        "kind": "straggler",
                        "stage_id": "enrich",
                        "split_id": split,
                        "started_at": t0 + 36.1,
                        "elapsed_s": 3.9,
                        "threshold_s": 1.2,
                        "stack": f"time.sleep(30)  # {XSS}",
                    },
                ),
            ]
        )
    monitor = JobMonitor(store.job("inc"))
    (card,) = monitor.header.header["cards"]
    assert card["kind"] == "incident"
    assert card["text"].startswith(
        f"split {split} on enrich_w1 (enrich): 3.9 s when seen, over 1.2 s"
    )
    assert card["split_id"] == split  # sent as data: the front end makes text nodes of it
    tabs = {t["id"]: t for t in monitor.tabs.tabs}
    assert tabs["incidents"]["badge"] == 1
    reply = _page(monitor, "incidents")
    assert reply["total"] == 1
    opened = []
    monitor.open_lineage = lambda split_id, depth=2: opened.append(split_id)
    monitor.tabs.clicked({"type": "row", "table": "incidents", "row": {"split_id": split}})
    assert opened == [split]
    monitor.close()
