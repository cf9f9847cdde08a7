"""The job browser, played from the front end's side: filters, a row click opens the
monitor below, picked runs open side by side, the listing follows the store live."""

from __future__ import annotations

import time

import pytest

import solstice_inspect as si
from solstice_inspect.widgets.browser import job_browser
from tests.conftest import T0


def _record(store, job_id, status="COMPLETED", *, finish=True):
    rec = store.record(job_id)
    rec.ingest([si.envelope("job_started", job_id, job_id, T0, {"dag_edges": {"a": ["b"]}}, 0)])
    if finish:
        final = "job_completed" if status == "COMPLETED" else "job_failed"
        rec.ingest([si.envelope(final, job_id, job_id, T0 + 5, {"status": status}, 1)])
        rec.close()
    return rec


def _page(browser):
    reply, _ = browser.table.answer(
        {"type": "page", "id": 1, "table": "Jobs", "offset": 0, "limit": 50}
    )
    return reply


@pytest.fixture
def three(store):
    _record(store, "etl_daily")
    _record(store, "etl_daily", "FAILED")
    _record(store, "ml_train")
    return store


def test_filters_narrow_the_listing(three):
    b = job_browser(three, refresh=60)
    try:
        assert _page(b)["total"] == 3
        b.status.value = "FAILED"
        assert b.table.tables["Jobs"]["total"] == 1
        b.status.value = "any"
        b.text.value = "ML_"
        assert b.table.tables["Jobs"]["total"] == 1
        b.text.value = "nothing-like-it"
        assert b.table.tables["Jobs"]["total"] == 0
    finally:
        b.close()


def test_a_row_click_opens_that_attempts_monitor_below(three):
    b = job_browser(three, refresh=60)
    try:
        attempts = three.attempts("etl_daily")
        first = attempts["attempt_id"].iloc[0]
        b.table.clicked(
            {"type": "row", "table": "Jobs", "row": {"job_id": "etl_daily", "attempt_id": first}}
        )
        (monitor,) = b.detail.children
        assert (monitor.job.job_id, monitor.job.attempt_id) == ("etl_daily", first)
        assert b.table.error == ""
        # a click on a row of a job that vanished shows its error in place
        b.table.clicked(
            {"type": "row", "table": "Jobs", "row": {"job_id": "etl_daily", "attempt_id": "nope"}}
        )
        assert "nope" in b.table.error
    finally:
        b.close()


def test_picked_runs_open_side_by_side(three):
    b = job_browser(three, refresh=60)
    try:
        b.click_mode.value = "add to comparison"
        listing = three.jobs(all_attempts=True)
        for row in listing.itertuples():
            b.table.clicked(
                {
                    "type": "row",
                    "table": "Jobs",
                    "row": {"job_id": row.job_id, "attempt_id": row.attempt_id},
                }
            )
        assert len(b.picked.value) == 3
        assert b.detail.children == ()  # clicks in this mode open nothing
        assert not b.compare_button.disabled
        comparison = b.open_comparison()
        assert b.detail.children == (comparison,)
    finally:
        b.close()


def test_the_listing_follows_the_store_live(store):
    running = _record(store, "live_job", finish=False)
    b = job_browser(store, refresh=0.2)
    try:
        assert _page(b)["total"] == 1
        _record(store, "another")
        running.finish("COMPLETED")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = b.table.to_arrow().to_pylist()
            statuses = {r["job_id"]: r["status"] for r in rows}
            if statuses == {"live_job": "COMPLETED", "another": "COMPLETED"}:
                break
            time.sleep(0.05)
        assert statuses == {"live_job": "COMPLETED", "another": "COMPLETED"}
    finally:
        b.close()
        running.close()
