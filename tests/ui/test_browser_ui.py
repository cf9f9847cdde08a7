"""The job browser in a real JupyterLab + Chromium: the job list loads, a click on a row
opens that job's dashboard below it (the row click travels to the kernel and back)."""

from __future__ import annotations

from lab import run_all, write_notebook

import solstice_inspect as si

T0 = 1_764_331_200.0


def _record(store, job_id, final):
    with store.record(job_id) as rec:
        rec.ingest(
            [
                si.envelope("job_started", job_id, job_id, T0, {"dag_edges": {"a": ["b"]}}, 0),
                si.envelope(final, job_id, job_id, T0 + 3, {"status": "X"}, 1),
            ]
        )


def test_a_click_in_the_job_list_opens_the_dashboard(lab, page, artifacts, tmp_path):
    root = tmp_path / "store"
    store = si.connect(root)
    _record(store, "etl_alpha", "job_completed")
    _record(store, "etl_beta", "job_failed")
    write_notebook(
        lab.nbdir / "browser.ipynb",
        [
            f"import solstice_inspect as si\nb = si.job_browser(store={str(root)!r}, refresh=2)\nb",
            'print("DONE-MARKER")',
        ],
    )
    run_all(page, lab, "browser.ipynb")
    rows = page.locator(".si-table-part tr[data-row]")
    rows.first.wait_for(timeout=30_000)
    assert rows.count() == 2
    assert page.locator(".si-monitor").count() == 0
    rows.filter(has_text="etl_beta").click()
    monitor = page.locator(".si-monitor").first
    monitor.locator(".si-header").wait_for(timeout=30_000)
    header = monitor.locator(".si-header").text_content() or ""
    assert "etl_beta" in header
    assert monitor.locator(".si-badge").text_content() == "FAILED"
    page.locator(".jp-CodeCell").nth(0).screenshot(path=str(artifacts / "job_browser.png"))
