"""The monitor's deep views in a real JupyterLab + headless Chromium.

One archived job (the simulation, 5 stages, with faults) plus crafted rows: an exception
naming a split, a log line to search for, and hostile strings in log lines, a stack trace
and a split id. Each test clicks what a user clicks and checks that the right thing
opened — the clicked stage's, worker's or split's id in what is shown — and that markup in
the data stays text (no element created, no dialog).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lab import new_page, run_all, wait_until, write_notebook

import solstice_inspect as si
from solstice_inspect.demo.stream import simulate

pytestmark = pytest.mark.ui

JOB = "deep_views"
HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert(2)</script>"
QUOTES = "it's a \"quoted\" 'value'"
BAD_SPLIT = f"parse_{HOSTILE}"
NEEDLE = "needle-4711 found in the haystack"
PROBE = "deep-view probe"
PROBE_SPLIT = "parse_source_split_3"

# every cytoscape graph in a root: its nodes' ids, labels and centres on the page
CY_JS = """(root) => [...root.querySelectorAll('div')].filter(d => d._cyreg && d._cyreg.cy)
  .map(el => { const cy = el._cyreg.cy, box = el.getBoundingClientRect();
    return cy.nodes().map(n => { const b = n.renderedBoundingBox({includeLabels: false});
      return {id: n.id(), split: n.data('split_id') || null, label: n.data('label'),
              x: box.left + (b.x1 + b.x2) / 2, y: box.top + (b.y1 + b.y2) / 2,
              inside: b.x1 >= -1 && b.y1 >= -1 && b.x2 <= cy.width() + 1
                      && b.y2 <= cy.height() + 1}; }); })"""


def crafted_store(root: Path) -> None:
    msgs = list(simulate(JOB, duration_s=20))
    at = msgs[len(msgs) // 2]["timestamp"]
    E = si.envelope
    worker = "parse_w0_269e0d"
    msgs[len(msgs) // 2 : len(msgs) // 2] = [
        E("exception", JOB, worker, at, {
            "stage_id": "parse", "worker_id": worker, "exception_type": "ValueError",
            "message": PROBE, "split_id": PROBE_SPLIT,
            "stacktrace": "Traceback (most recent call last):\n  File 'x.py'\nValueError",
        }),
        E("split_processed", JOB, worker, at + 0.01, {
            "stage_id": "parse", "split_id": BAD_SPLIT, "parent_split_ids": ["source_split_1"],
            "input_records": 5, "output_records": 5, "processing_time": 0.2,
        }),
        E("exception", JOB, worker, at + 0.02, {
            "stage_id": "parse", "worker_id": worker, "exception_type": "ValueError",
            "message": f"bad row {HOSTILE} {QUOTES}", "split_id": BAD_SPLIT,
            "stacktrace": f"Traceback (most recent call last):\n  {SCRIPT}\n{HOSTILE}",
        }),
        E("log", JOB, worker, at + 0.03, {"stage_id": "parse", "level": "ERROR",
                                          "message": f"{HOSTILE} {SCRIPT} {QUOTES}"}),
        E("log", JOB, worker, at + 0.04, {"stage_id": "parse", "level": "INFO",
                                          "message": NEEDLE}),
        E("incident", JOB, worker, at + 0.05, {
            "kind": "straggler", "stage_id": "parse", "worker_id": worker,
            "split_id": BAD_SPLIT, "started_at": at - 4.0, "elapsed_s": 4.2,
            "threshold_s": 1.5, "stack": f"  File 'w.py', in lookup\n    time.sleep(30)  {HOSTILE}",
            "log_tail": f"INFO {SCRIPT}",
        }),
    ]  # fmt: skip
    with si.connect(root).record(JOB) as rec:
        rec.ingest(msgs)


@pytest.fixture(scope="module")
def deep(lab, browser, tmp_path_factory):
    root = tmp_path_factory.mktemp("deep") / "store"
    crafted_store(root)
    write_notebook(
        lab.nbdir / "deep.ipynb",
        [
            "import solstice_inspect as si\n"
            f"job = si.connect({str(root)!r}).job({JOB!r})\n"
            "m = si.job_monitor(job)\nm",
            'print("DONE-MARKER")',
        ],
    )
    page = new_page(browser)
    run_all(page, lab, "deep.ipynb", timeout_s=240)
    mon = page.locator(".si-monitor").first
    mon.locator(".si-tabs-view .si-tab").first.wait_for(timeout=60_000)
    yield page, mon
    page.close()


def open_tab(mon: Any, tab: str) -> None:
    mon.locator(f'.si-tabs-view button[data-tab="{tab}"]').click()
    mon.locator(f'.si-tabs-view .si-tab-selected[data-tab="{tab}"]').wait_for(timeout=15_000)


def clear_filters(mon: Any, table: str) -> Any:
    """Empty the column filters an earlier test typed into a table; the table."""
    view = mon.locator(f'.si-table-view[data-table="{table}"]')
    for box in view.locator("input.si-filter.si-active").element_handles():
        box.fill("")
        box.press("Enter")
    return view


def open_splits(mon: Any) -> Any:
    """The Splits tab, once its first query (no filters) has answered; its form."""
    open_tab(mon, "splits")
    form = mon.locator(".si-splits-form")
    status = form.locator(".si-splits-status")
    wait_until(lambda: "splits in" in (status.text_content() or ""), timeout_s=30,
               what="the first splits query")  # fmt: skip
    return form


def filter_table(mon: Any, table: str, column: str, text: str) -> Any:
    """Type a column filter and wait until every shown row matches it; the table."""
    view = clear_filters(mon, table)
    box = view.locator(f'input.si-filter[data-column="{column}"]')
    box.fill(text)
    box.press("Enter")
    needle = text.lstrip("=")
    try:
        wait_until(
            lambda: (
                (cells := view.locator(f'tbody td[data-column="{column}"]').all_text_contents())
                and all(needle in c for c in cells)
            ),
            timeout_s=20,
            what=f"{table} rows filtered by {column} = {text!r}",
        )
    except AssertionError as exc:  # say what the table shows instead
        status = view.locator(".si-table-status").text_content()
        error = view.locator(".si-table-error").text_content()
        shot = Path(__file__).parent / "artifacts" / f"deep_{table}_filter_failed.png"
        mon.screenshot(path=str(shot))
        raise AssertionError(f"{exc}; the table shows {status!r}, error {error!r}") from None
    return view


def graph_nodes(page: Any, mon: Any, index: int) -> list[dict]:
    """The nodes of the index-th graph of the monitor, once scrolled into view and still."""
    mon.evaluate(
        f"(root) => [...root.querySelectorAll('div')].filter(d => d._cyreg)[{index}]"
        ".scrollIntoView({block: 'center'})"
    )
    last: list[Any] = [None]

    def still() -> Any:
        graphs = mon.evaluate(CY_JS)
        now = graphs[index] if len(graphs) > index else None
        same = bool(now) and now == last[0] and all(n["inside"] for n in now)
        last[0] = now
        return same and now

    return wait_until(still, timeout_s=30, what=f"graph {index} drawn and still", every_s=0.4)


def assert_no_markup(page: Any, mon: Any) -> None:
    assert page.dialogs == []
    assert mon.locator("img").count() == 0, "a hostile <img> became an element"
    assert page.evaluate("() => document.querySelectorAll('img[src=x]').length") == 0
    scripts = page.evaluate(
        "() => [...document.scripts].filter(s => s.textContent.includes('alert(2)')).length"
    )
    assert scripts == 0


def test_dag_node_click_opens_that_stage(deep, artifacts):
    page, mon = deep
    nodes = graph_nodes(page, mon, 0)
    target = next(n for n in nodes if n["id"] == "enrich")
    page.mouse.click(target["x"], target["y"])
    detail = mon.locator('.si-stage-detail[data-stage="enrich"]')
    detail.wait_for(timeout=20_000)
    assert mon.locator(".si-tab-selected").get_attribute("data-tab") == "stage"
    assert "Stage enrich" in detail.text_content()
    # the lines over time and the queue evidence
    mon.locator(".si-chart-lag").wait_for(timeout=10_000)
    assert "Partition lag over time" in mon.locator(".si-chart-lag").text_content()
    assert mon.locator(".si-chart-backpressure polyline").count() >= 1
    queue = detail.locator('td[data-fact="input queue"]').text_content()
    assert queue == "filter → enrich"
    mon.locator(".si-tabs-view").screenshot(path=str(artifacts / "deep_stage_detail.png"))


def test_worker_row_opens_that_worker(deep):
    _page, mon = deep
    open_tab(mon, "workers")
    wid = "enrich_w1_d23f08"
    view = filter_table(mon, "workers", "worker_id", f"={wid}")
    view.locator("tbody tr[data-row]").first.click()
    detail = mon.locator(f'.si-worker-detail[data-worker="{wid}"]')
    detail.wait_for(timeout=20_000)
    assert mon.locator(".si-tab-selected").get_attribute("data-tab") == "worker"
    assert f"Worker {wid}" in detail.text_content()
    # its splits, and only its
    splits = mon.locator('.si-table-view[data-table="worker_splits"]')
    splits.locator("tbody tr[data-row]").first.wait_for(timeout=20_000)
    workers = set(splits.locator('tbody td[data-column="worker_id"]').all_text_contents())
    assert workers == {wid}
    # the worker view (widgets/worker.py) opens under the tabs, on this worker
    below = mon.locator(".si-monitor-detail")
    wait_until(
        lambda: f"Worker {wid}" in (below.text_content() or ""),
        timeout_s=30,
        what="the worker view under the tabs",
    )


def test_exception_split_opens_the_lineage_and_a_node_its_detail(deep):
    page, mon = deep
    open_tab(mon, "exceptions")
    view = filter_table(mon, "exceptions", "message", PROBE)
    view.locator("tbody tr[data-row]").first.click()
    lineage = mon.locator(".si-lineage")
    lineage.wait_for(timeout=30_000)
    assert f"Lineage of {PROBE_SPLIT}" in lineage.text_content()
    assert f"Split {PROBE_SPLIT}" in lineage.locator(".si-split-detail h4").text_content()

    # a click on another split of the graph shows that split's detail
    nodes = graph_nodes(page, mon, 1)
    by_split = {n["split"]: n for n in nodes if n["split"]}
    assert PROBE_SPLIT in by_split
    other = next(s for s in by_split if s != PROBE_SPLIT)
    page.mouse.click(by_split[other]["x"], by_split[other]["y"])
    wait_until(
        lambda: lineage.locator(".si-split-detail h4").text_content() == f"Split {other}",
        timeout_s=20,
        what=f"the detail of {other}",
    )
    assert_no_markup(page, mon)


def test_logs_tab_search_finds_the_line(deep):
    _page, mon = deep
    open_tab(mon, "logs")
    view = filter_table(mon, "logs", "message", "needle-4711")
    messages = view.locator('tbody td[data-column="message"]').all_text_contents()
    assert messages == [NEEDLE]
    assert "rows 1–1 of 1" in view.locator(".si-table-status").text_content()


def test_hostile_strings_stay_text(deep):
    page, mon = deep
    open_tab(mon, "logs")
    view = filter_table(mon, "logs", "message", "onerror")
    assert view.locator('tbody td[data-column="message"]').all_text_contents() == [
        f"{HOSTILE} {SCRIPT} {QUOTES}"
    ]
    open_tab(mon, "exceptions")
    view = filter_table(mon, "exceptions", "split_id", "onerror")
    row = view.locator("tbody tr[data-row]").first
    assert row.locator('td[data-column="split_id"]').text_content() == BAD_SPLIT
    row.click()  # its detail (the full stack trace) and its split's lineage
    stack = view.locator('.si-detail-value[data-column="stacktrace"]').text_content()
    assert SCRIPT in stack
    assert HOSTILE in stack
    lineage = mon.locator(".si-lineage")
    wait_until(
        lambda: f"Lineage of {BAD_SPLIT}" in (lineage.text_content() or ""),
        timeout_s=30,
        what="the lineage of the hostile split",
    )
    open_splits(mon)
    splits = filter_table(mon, "splits", "split_id", "onerror")
    assert splits.locator('tbody td[data-column="split_id"]').all_text_contents() == [BAD_SPLIT]
    assert_no_markup(page, mon)


def test_splits_query_builder_and_time_travel(deep, artifacts):
    page, mon = deep
    form = open_splits(mon)
    clear_filters(mon, "splits")
    form.locator('input[data-arg="stage"]').fill("parse")
    form.locator('input[data-arg="where"]').fill(f"split_id = '{PROBE_SPLIT}'")
    form.locator(".si-splits-run").click()
    call = form.locator(".si-splits-call")
    wait_until(lambda: "stage='parse'" in call.text_content(), timeout_s=20, what="the call")
    assert f"where=\"split_id = '{PROBE_SPLIT}'\"" in call.text_content()
    table = mon.locator('.si-table-view[data-table="splits"]')
    wait_until(
        lambda: (
            table.locator('tbody td[data-column="split_id"]').all_text_contents() == [PROBE_SPLIT]
        ),
        timeout_s=20,
        what="the one split of the query",
    )
    # a bad where: said in the tab, the rows stay
    form.locator('input[data-arg="where"]').fill("output_records >")
    form.locator(".si-splits-run").click()
    error = form.locator(".si-splits-error")
    wait_until(lambda: "output_records >" in error.text_content(), timeout_s=20, what="error")
    assert table.locator('tbody td[data-column="split_id"]').all_text_contents() == [PROBE_SPLIT]
    mon.locator(".si-tabs-view").screenshot(path=str(artifacts / "deep_splits_tab.png"))

    # time travel: the slider to 5 s after the start; the header says "as of", then now
    open_tab(mon, "timeline")
    mon.locator(".si-timeline-svg .si-worker-span").first.wait_for(timeout=30_000)
    slider = mon.locator(".si-travel-slider")
    slider.evaluate("(el) => { el.value = '5'; el.dispatchEvent(new Event('change')); }")
    asof = mon.locator(".si-header .si-asof")
    asof.wait_for(timeout=20_000)
    assert "as of" in asof.text_content()
    assert mon.locator(".si-badge").text_content() == "RUNNING"
    assert mon.locator(".si-travel-table tbody tr").count() == 5
    mon.screenshot(path=str(artifacts / "deep_time_travel.png"))
    mon.locator(".si-travel-live").click()
    wait_until(lambda: mon.locator(".si-header .si-asof").count() == 0, timeout_s=20,
               what="back to now")  # fmt: skip
    assert mon.locator(".si-badge").text_content() == "COMPLETED"
    assert_no_markup(page, mon)


def test_an_incident_is_a_header_card_and_its_row_opens_the_split(deep, artifacts):
    page, mon = deep
    card = mon.locator('.si-header .si-card[data-kind="incident"]')
    card.wait_for(timeout=30_000)
    mon.locator(".si-header").screenshot(path=str(artifacts / "deep_incident_card.png"))
    text = card.locator(".si-card-text").text_content()
    assert text.startswith(f"split {BAD_SPLIT} on parse_w0_269e0d (parse): 4.2 s when seen")
    assert card.get_attribute("data-split") == BAD_SPLIT  # an attribute value, not markup
    open_tab(mon, "incidents")
    view = mon.locator('.si-table-view[data-table="incidents"]')
    row = view.locator("tbody tr[data-row]").first
    row.wait_for(timeout=20_000)
    assert row.locator('td[data-column="split_id"]').text_content() == BAD_SPLIT
    row.click()
    stack = view.locator('.si-detail-value[data-column="stack"]').text_content()
    assert "time.sleep(30)" in stack
    assert HOSTILE in stack
    lineage = mon.locator(".si-lineage")
    wait_until(
        lambda: f"Lineage of {BAD_SPLIT}" in (lineage.text_content() or ""),
        timeout_s=30,
        what="the lineage of the incident's split",
    )
    assert_no_markup(page, mon)
