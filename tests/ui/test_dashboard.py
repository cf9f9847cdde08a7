"""The dashboard in a real JupyterLab + headless Chromium: quickstart.ipynb runs, the
header / DAG / charts render, the header updates while no cell runs, a DAG click shows
the stage detail, and a hostile exception message stays text."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lab import CY_NODES_JS, no_cell_running, run_all, write_notebook

REPO = Path(__file__).resolve().parents[2]
STAGES = 5  # the demo pipeline's and the simulation's


def monitor_locator(page, i: int):
    return page.locator(".si-monitor").nth(i)


def records_in(page, i: int = 0) -> float:
    text = monitor_locator(page, i).locator(".si-records-in").text_content() or ""
    return parse_count(text)


def parse_count(text: str) -> float:
    text = text.strip().replace(",", "")
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:], 1)
    return float(text.rstrip("kMG") or 0) * scale


def test_quickstart_runs_live_and_renders(lab, page, artifacts):
    nb = json.loads((REPO / "notebooks" / "quickstart.ipynb").read_text())
    nb["cells"].append(
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": 'print("DONE-MARKER")'}
    )  # fmt: skip
    (lab.nbdir / "quickstart.ipynb").write_text(json.dumps(nb))
    run_all(page, lab, "quickstart.ipynb", timeout_s=240)
    live = monitor_locator(page, 0)
    live.locator(".si-header").wait_for(timeout=30_000)

    # the header: status badge, job id, counts
    header = live.locator(".si-header")
    assert "quickstart_live" in header.text_content()
    assert live.locator(".si-badge").text_content() in ("RUNNING", "COMPLETED")

    # the header's record count grows while no cell runs (live updates from the kernel)
    assert no_cell_running(page)
    first = records_in(page)
    deadline = time.monotonic() + 30
    while records_in(page) <= first and time.monotonic() < deadline:
        time.sleep(0.5)
    assert no_cell_running(page), "no cell was running"
    assert records_in(page) > first, "the record count did not increase"
    header.screenshot(path=str(artifacts / "live_header.png"))

    # the DAG: one node per stage (cytoscape's own model, read from the page)
    first_monitor = "document.querySelectorAll('.si-monitor')[0]"
    page.wait_for_function(
        f"() => {{ const n = ({CY_NODES_JS})({first_monitor});"
        f" return n && n.length === {STAGES}; }}",
        timeout=30_000,
    )
    # the charts: vega drew line marks in SVG, not just the container
    for m in range(2):
        charts = monitor_locator(page, m).locator(".si-charts")
        charts.locator(".si-chart").first.wait_for(timeout=30_000)
        page.wait_for_function(
            "(el) => el.parentElement.dataset.rendered === '1'", arg=charts.element_handle()
        )
        assert charts.locator(".si-chart").count() == 3
        assert charts.locator("svg g.mark-line path").count() >= 3 * 2, "lines for the stages"
    assert monitor_locator(page, 1).locator(".si-badge").text_content() == "COMPLETED"

    # click a DAG node: the stage's detail appears below
    archived = monitor_locator(page, 1)
    archived.evaluate(
        "(root) => [...root.querySelectorAll('div')].find(d => d._cyreg)"
        ".scrollIntoView({block: 'center'})"
    )
    page.wait_for_timeout(500)
    nodes = archived.evaluate(CY_NODES_JS)
    assert len(nodes) == STAGES
    target = next(n for n in nodes if n["id"] != nodes[0]["id"])
    page.mouse.click(target["x"], target["y"])
    detail = archived.locator(f".si-stage-detail[data-stage='{target['id']}']")
    detail.wait_for(timeout=15_000)
    assert f"Stage {target['id']}" in detail.text_content()
    assert "records out" in detail.text_content()
    archived.screenshot(path=str(artifacts / "archived_monitor_after_click.png"))

    cells = page.locator(".jp-CodeCell")
    for i in range(cells.count()):
        if cells.nth(i).locator(".si-monitor").count():
            cells.nth(i).scroll_into_view_if_needed()
            cells.nth(i).screenshot(path=str(artifacts / f"quickstart_cell{i}.png"))
    assert page.dialogs == []


def test_hostile_exception_message_is_text(lab, page, artifacts):
    write_notebook(
        lab.nbdir / "xss.ipynb",
        [
            f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r})",
            "import tempfile, solstice_inspect as si\n"
            "from widget_jobs import archived_job\n"
            "job = archived_job(si.connect(tempfile.mkdtemp()), 'etl_xss', duration_s=10)\n"
            "m = si.job_monitor(job); m.tabs.selected_index = 1; m",
            'print("DONE-MARKER")',
        ],
    )
    run_all(page, lab, "xss.ipynb", timeout_s=120)
    mon = monitor_locator(page, 0)
    mon.locator(".si-exc").first.wait_for(state="attached", timeout=30_000)
    messages = [m.text_content() for m in mon.locator(".si-exc-message").all()]
    assert "<img src=x onerror=alert(1)>" in messages
    mon.locator(".si-exc summary", has_text="<img src=x").first.click()
    page.wait_for_timeout(500)
    assert page.locator("img[src='x']").count() == 0, "the message became an element"
    assert page.dialogs == [], "script ran"
    page.locator(".jp-CodeCell").nth(1).screenshot(path=str(artifacts / "xss_cell.png"))
