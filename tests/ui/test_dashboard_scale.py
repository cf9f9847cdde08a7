"""100,000 exceptions in the dashboard's Exceptions tab, in real JupyterLab + Chromium.

Page 400 is reached, the rows sorted and then filtered through the UI only (the page
input, a column header, the stage filter); after each step the rows on screen are
compared with the answer pandas computes from the stored table in this process (natural
order = storage order, a stable sort, filters as docs/widget-protocol.md defines them).
A hostile message among them stays text.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest
from lab import new_page, run_all, write_notebook
from widget_jobs import XSS, exceptions_job

import solstice_inspect as si

N = 100_000
PER_PAGE = 25
SHOWN = ["exception_id", "stage_id", "worker_id"]  # the columns compared cell by cell


@pytest.fixture(scope="module")
def exc_job(tmp_path_factory):
    """The job, and its exceptions as pandas read straight from the store."""
    root = tmp_path_factory.mktemp("store")
    job = exceptions_job(si.connect(root), n=N)
    rows = job.table("exceptions").to_pandas()
    assert len(rows) > N, "the simulated job's own exceptions, then the 100,000"
    assert rows["exception_id"].is_unique
    return root, job.job_id, rows


@pytest.fixture(scope="module")
def exc_view(lab, browser, artifacts, exc_job):
    """The monitor of that job with its Exceptions tab selected; the ``exceptions`` table."""
    root, job_id, _ = exc_job
    write_notebook(
        lab.nbdir / "exceptions_100k.ipynb",
        [
            "import solstice_inspect as si\n"
            f"job = si.connect({str(root)!r}).job({job_id!r})\n"
            "m = si.job_monitor(job)\n"
            'm.tabs.selected = "exceptions"\n'
            "m",
            'print("DONE-MARKER")',
        ],
    )
    page = new_page(browser)
    run_all(page, lab, "exceptions_100k.ipynb")
    view = page.locator('.si-monitor .si-table-view[data-table="exceptions"]')
    view.locator("tbody tr[data-row]").first.wait_for(timeout=60_000)
    yield page, view
    page.set_viewport_size({"width": 1400, "height": 1800})  # the whole tab in view
    tabs = page.locator(".si-monitor .si-tabs-view")
    tabs.scroll_into_view_if_needed()
    tabs.screenshot(path=str(artifacts / "exceptions_100k.png"))
    page.close()


def on_screen(view: Any) -> dict[str, Any]:
    """What the table shows: the page input, the status line, and the compared cells."""
    return view.evaluate(
        """(v, cols) => ({
             page: v.querySelector('.si-page-input').value,
             status: v.querySelector('.si-table-status').textContent,
             rows: Object.fromEntries(cols.map(c => [c,
               [...v.querySelectorAll(`tbody td[data-column="${c}"]`)].map(td => td.textContent)]))
           })""",
        SHOWN,
    )


def expected(rows: pd.DataFrame, page: int, *, total: int) -> dict[str, Any]:
    """The same, computed with pandas: page ``page`` (1-based) of ``rows``."""
    part = rows.iloc[(page - 1) * PER_PAGE : page * PER_PAGE]
    first, last = (page - 1) * PER_PAGE + 1, (page - 1) * PER_PAGE + len(part)
    status = f"rows {first:,}–{last:,} of {len(rows):,}"
    if len(rows) != total:
        status += f" (filtered from {total:,})"
    return {
        "page": str(page),
        "status": status,
        "rows": {c: [str(v) for v in part[c]] for c in SHOWN},
    }


def settle(view: Any, want: dict[str, Any], *, timeout_s: float = 30) -> None:
    """Wait (with a deadline) until the table shows ``want``; then compare, so that a
    mismatch fails with the difference."""
    deadline = time.monotonic() + timeout_s
    got = on_screen(view)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.1)
        got = on_screen(view)
    assert got == want


def type_into(locator: Any, text: str) -> None:
    """Replace an input's text by typing it (key by key, as a user would) and press Enter."""
    locator.click()
    locator.press("ControlOrMeta+a")
    locator.press("Backspace")
    locator.press_sequentially(text, delay=20)
    locator.press("Enter")


def test_100k_exceptions_page_sort_filter(exc_job, exc_view):
    _, _, rows = exc_job
    page, view = exc_view
    total = len(rows)
    settle(view, expected(rows, 1, total=total))
    assert (
        view.locator(".si-pager")
        .text_content()
        .replace("\xa0", " ")
        .count(f"of {-(-total // PER_PAGE):,}")
        == 1
    ), "the pager counts every page of the 100,005 rows"

    # page 400 through the page input: rows 9,976–10,000 in storage order
    page_input = view.locator(".si-page-input")
    type_into(page_input, "400")
    settle(view, expected(rows, 400, total=total))

    # sort by worker (one click on the header: ascending); the view goes back to page 1
    head = view.locator('thead th[data-column="worker_id"]')
    head.click()
    by_worker = rows.sort_values("worker_id", kind="stable")
    settle(view, expected(by_worker, 1, total=total))
    assert head.get_attribute("aria-sort") == "ascending"
    type_into(page_input, "400")
    settle(view, expected(by_worker, 400, total=total))

    # filter the stage: case-insensitive substring ("S": source, parse, sink), sorted as
    # before; a new filter shows its first page
    stage = view.locator('input.si-filter[data-column="stage_id"]')
    type_into(stage, "S")
    with_s = by_worker[by_worker["stage_id"].str.contains("s", case=False, regex=False)]
    assert set(with_s["stage_id"]) == {"source", "parse", "sink"}
    settle(view, expected(with_s, 1, total=total))
    last = -(-len(with_s) // PER_PAGE)
    type_into(page_input, "999999")  # past the end: the last page
    settle(view, expected(with_s, last, total=total))

    # "=parse": exactly that stage
    type_into(stage, "=parse")
    parse = by_worker[by_worker["stage_id"] == "parse"]
    settle(view, expected(parse, 1, total=total))
    type_into(page_input, "300")
    settle(view, expected(parse, 300, total=total))
    assert page.dialogs == []


def test_hostile_message_among_them_stays_text(exc_job, exc_view):
    _, _, rows = exc_job
    page, view = exc_view
    type_into(view.locator('input.si-filter[data-column="stage_id"]'), "")
    type_into(view.locator('input.si-filter[data-column="message"]'), "ONERROR")
    hits = rows[rows["message"].str.contains("onerror", case=False, regex=False)]
    assert list(hits["message"]) == [XSS]
    cell = view.locator('tbody td[data-column="message"]')
    page.wait_for_function(
        """(v) => v.querySelectorAll('tbody tr[data-row]').length === 1 && v
                    .querySelector('.si-table-status').textContent.startsWith('rows 1–1 of 1 ')""",
        arg=view.element_handle(),
        timeout=30_000,
    )
    assert cell.text_content() == XSS
    assert (
        view.locator('tbody td[data-column="exception_id"]').text_content()
        == (hits["exception_id"].iloc[0])
    )
    # the detail of the row: the message and its stack trace, as text
    view.locator("tbody tr[data-row]").click()
    detail = view.locator(".si-row-detail")
    detail.wait_for()
    assert XSS in detail.locator('.si-detail-value[data-column="message"]').text_content()
    assert XSS in detail.locator('.si-detail-value[data-column="stacktrace"]').text_content()
    assert page.locator("img[src='x']").count() == 0, "the message became an element"
    assert page.dialogs == [], "script ran"
