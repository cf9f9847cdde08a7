"""The dashboard in a real JupyterLab + headless Chromium.

- A job whose recorder was SIGKILLed reads LOST, with the reason, whether it died before
  the dashboard opened or while it was showing.
- quickstart.ipynb runs; the header updates while no cell runs; the charts draw; the
  stage graph is in view and a click on a stage opens its detail in the tabs.

(A live job measured, and the screenshots: test_dashboard_live.py; 100,000 exceptions:
test_dashboard_scale.py.)
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lab import CY_NODES_JS, new_page, no_cell_running, run_all, wait_until, write_notebook

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


# ---------------------------------------------------------------- LOST

RECORDER = """
import sys, time
import solstice_inspect as si
from solstice_inspect.demo.stream import simulate

root, job_id = sys.argv[1], sys.argv[2]
rec = si.connect(root).record(job_id, heartbeat_interval=0.5, flush_interval=0.2)
rec.ingest(list(simulate(job_id, duration_s=5, start=time.time() - 5))[:60])
rec.flush()
print("READY", flush=True)
time.sleep(600)
"""


def start_recorder(root: Path, job_id: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(root), job_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


def wait_ready(proc: subprocess.Popen, *, timeout_s: float = 60) -> None:
    """Wait for the recorder's READY line (its rows and first heartbeat are stored)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    seen = []
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.strip() == "READY":
                return
    raise AssertionError(f"the recorder did not get ready: {''.join(seen)[-2000:]}")


REASON = re.compile(r"no heartbeat for \d+ s \(expected every 0\.5 s\): the recorder is gone")


def test_lost_job_shows_lost_and_why(lab, page, artifacts, tmp_path):
    root = tmp_path / "store"
    procs = {job: start_recorder(root, job) for job in ("etl_gone", "etl_dies")}
    try:
        for proc in procs.values():
            wait_ready(proc)
        procs["etl_gone"].send_signal(signal.SIGKILL)  # dead before the dashboard opens
        procs["etl_gone"].wait(timeout=10)
        write_notebook(
            lab.nbdir / "lost.ipynb",
            [
                "import solstice_inspect as si\n"
                f"store = si.connect({str(root)!r})\n"
                "si.job_monitor('etl_gone', store=store, refresh=0.5)",
                "si.job_monitor('etl_dies', store=store, refresh=0.5)",
                'print("DONE-MARKER")',
            ],
        )
        run_all(page, lab, "lost.ipynb")
        gone, dies = monitor_locator(page, 0), monitor_locator(page, 1)
        for mon in (gone, dies):
            mon.locator(".si-badge").wait_for(timeout=30_000)

        page.wait_for_function(
            "(root) => root.querySelector('.si-badge').textContent === 'LOST'",
            arg=gone.element_handle(),
            timeout=15_000,
        )
        assert gone.locator(".si-badge").get_attribute("data-status") == "LOST"
        assert REASON.search(gone.locator(".si-reason").text_content()), gone.locator(
            ".si-header"
        ).text_content()

        # the other one is alive: RUNNING, then LOST within a few heartbeats of its death
        page.wait_for_function(
            "(root) => root.querySelector('.si-badge').textContent === 'RUNNING'",
            arg=dies.element_handle(),
            timeout=15_000,
        )
        procs["etl_dies"].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        page.wait_for_function(
            "(root) => root.querySelector('.si-badge').textContent === 'LOST'",
            arg=dies.element_handle(),
            timeout=15_000,
        )
        print(f"LOST shown {time.monotonic() - killed:.1f} s after the SIGKILL")
        assert REASON.search(dies.locator(".si-reason").text_content()), dies.locator(
            ".si-header"
        ).text_content()
        assert no_cell_running(page)
        for name, mon in (("gone", gone), ("dies", dies)):
            mon.locator(".si-header").screenshot(path=str(artifacts / f"lost_header_{name}.png"))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
    assert page.dialogs == []


# ---------------------------------------------------------------- quickstart.ipynb


@pytest.fixture(scope="module")
def quickstart(lab, browser):
    """quickstart.ipynb, run once: monitor 0 follows the live job, monitor 1 is archived.
    Its job is the simulation (the notebook's switch): these tests are about the dashboard,
    and Ray's start-up would take a minute of this machine's two cores."""
    nb = json.loads((REPO / "notebooks" / "quickstart.ipynb").read_text())
    nb["cells"].insert(
        0,
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": 'import os; os.environ["SOLSTICE_QUICKSTART_SIMULATE"] = "1"'},
    )  # fmt: skip
    nb["cells"].append(
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": 'print("DONE-MARKER")'}
    )  # fmt: skip
    (lab.nbdir / "quickstart.ipynb").write_text(json.dumps(nb))
    page = new_page(browser)
    run_all(page, lab, "quickstart.ipynb", timeout_s=240)
    yield page
    assert page.dialogs == []
    page.close()


def test_quickstart_header_updates_while_no_cell_runs(quickstart, artifacts):
    page = quickstart
    live = monitor_locator(page, 0)
    header = live.locator(".si-header")
    header.wait_for(timeout=30_000)
    assert "quickstart_live" in header.text_content()
    assert live.locator(".si-badge").text_content() in ("RUNNING", "COMPLETED")

    # the record count grows while no cell runs (live updates from the kernel)
    assert no_cell_running(page)
    first = records_in(page)
    wait_until(lambda: records_in(page) > first, timeout_s=30, what="the record count to grow")
    assert no_cell_running(page), "no cell was running"
    header.screenshot(path=str(artifacts / "live_header.png"))


def test_quickstart_charts_draw(quickstart):
    page = quickstart
    for m in range(2):
        charts = monitor_locator(page, m).locator(".si-charts")
        charts.locator(".si-chart").first.wait_for(timeout=30_000)
        page.wait_for_function(
            "(el) => el.parentElement.dataset.rendered === '1'", arg=charts.element_handle()
        )
        assert charts.locator(".si-chart").count() == 3
        assert charts.locator("svg g.mark-line path").count() >= 3 * 2, "lines for the stages"
    assert monitor_locator(page, 1).locator(".si-badge").text_content() == "COMPLETED"


# Each node's box as drawn, in the page and relative to the graph's own canvas.
CY_BOXES_JS = """(root) => {
  const el = [...root.querySelectorAll('div')].find(d => d._cyreg && d._cyreg.cy);
  if (!el) return null;
  const cy = el._cyreg.cy, box = el.getBoundingClientRect();
  return {width: cy.width(), height: cy.height(), nodes: cy.nodes().map(n => {
    const b = n.renderedBoundingBox({includeLabels: false});
    return {id: n.id(), x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2,
            x: box.left + (b.x1 + b.x2) / 2, y: box.top + (b.y1 + b.y2) / 2};
  })};
}"""


def test_stage_graph_in_view_and_a_click_opens_the_stage(quickstart, artifacts):
    page = quickstart
    archived = monitor_locator(page, 1)
    page.wait_for_function(
        f"(root) => {{ const n = ({CY_NODES_JS})(root); return n && n.length === {STAGES}; }}",
        arg=archived.element_handle(),
        timeout=30_000,
    )
    archived.evaluate(
        "(root) => [...root.querySelectorAll('div')].find(d => d._cyreg)"
        ".scrollIntoView({block: 'center'})"
    )
    # wait until the scroll (and any layout) is over: the same positions twice
    last: list[Any] = [None]

    def still() -> Any:
        now = archived.evaluate(CY_BOXES_JS)
        same = now == last[0]
        last[0] = now
        return same and now

    graph = wait_until(still, timeout_s=10, what="the stage graph to stop moving", every_s=0.3)
    archived.screenshot(path=str(artifacts / "archived_monitor.png"))
    outside = [
        n["id"]
        for n in graph["nodes"]
        if n["x1"] < -1 or n["y1"] < -1
        or n["x2"] > graph["width"] + 1 or n["y2"] > graph["height"] + 1
    ]  # fmt: skip
    assert not outside, (
        f"stages drawn outside the {graph['width']}x{graph['height']} px graph (invisible, "
        f"not clickable): {outside}; boxes: {graph['nodes']}"
    )

    target = graph["nodes"][1]
    # a real mouse click, at the node's place inside the graph's box: playwright finds the
    # box right before it clicks (the live dashboard above this one changes height)
    archived.locator(".custom-widget").first.click(
        position={"x": (target["x1"] + target["x2"]) / 2, "y": (target["y1"] + target["y2"]) / 2}
    )
    tabs = archived.locator(".si-tabs-view")
    detail = tabs.locator(f".si-stage-detail[data-stage='{target['id']}']")
    detail.wait_for(timeout=15_000)
    assert tabs.locator(".si-tab-selected").get_attribute("data-tab") == "stage"
    assert f"Stage {target['id']}" in detail.text_content()
    assert "records out" in detail.text_content()
    # the stage's workers, and only them
    workers = tabs.locator('.si-table-view[data-table="stage_workers"]')
    workers.locator("tbody tr[data-row]").first.wait_for(timeout=15_000)
    stages = workers.locator('tbody td[data-column="stage_id"]').all_text_contents()
    assert stages, "the stage has workers"
    assert set(stages) == {target["id"]}
    archived.screenshot(path=str(artifacts / "archived_monitor_after_click.png"))
