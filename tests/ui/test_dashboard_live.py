"""A live dashboard in a real JupyterLab + headless Chromium, measured.

- The charts gain points from custom ``append`` messages only: the charts' ``data`` is
  never sent again (every comm message the kernel publishes is logged by a wrapper of
  ipykernel's ``Comm.publish_msg``); bytes per appended point and the dashboard's
  message rate are reported (artifacts/live_chart_messages.json).
- Light and dark screenshots of the live dashboard (copied to docs/images/); the dark one
  has no white panel.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lab import new_page, no_cell_running, run_all, set_theme, wait_until, write_notebook

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
DOCS_IMAGES = REPO / "docs" / "images"


SPY = """
import json, threading, time
from ipykernel.comm.comm import BaseComm as Comm  # what comm.create_comm makes here

SPY_LOG = open({log!r}, "a", buffering=1)
_spy_lock = threading.Lock()
_publish = Comm.publish_msg


def _spy(self, msg_type, data=None, metadata=None, buffers=None, **keys):
    d = data if isinstance(data, dict) else {{}}
    state = d.get("state") if isinstance(d.get("state"), dict) else {{}}
    content = d.get("content") if isinstance(d.get("content"), dict) else {{}}
    rec = {{
        "t": time.time(), "comm": self.comm_id, "msg": msg_type, "method": d.get("method"),
        "keys": sorted(state), "type": content.get("type"),
        "bytes": len(json.dumps(d, ensure_ascii=False, default=str).encode())
        + sum(memoryview(b).nbytes for b in buffers or []),
    }}
    if content.get("type") == "append":
        rec.update(seq=content["seq"], epoch=content["epoch"],
                   points=sum(len(c["t"]) for c in content["charts"].values()))
    if "specs" in state or "epoch" in state:  # the charts' (whose data is columnar)
        rec["points"] = sum(len(c["t"]) for c in (state.get("data") or {{}}).values())
    with _spy_lock:
        SPY_LOG.write(json.dumps(rec) + "\\n")
    return _publish(self, msg_type, data, metadata, buffers, **keys)


Comm.publish_msg = _spy
"""

POINTS_JS = """(root) => [...root.querySelectorAll('.si-chart')]
  .reduce((n, c) => n + (c.__siView ? c.__siView.data('series').length : 0), 0)"""


@pytest.fixture(scope="module")
def live(lab, browser, tmp_path_factory):
    """A LiveFeed job in real time (started 45 s ago, 10 minutes long) with its monitor on
    the Workers tab, every comm message the kernel publishes logged to ``log``."""
    log = tmp_path_factory.mktemp("spy") / "comm.jsonl"
    write_notebook(
        lab.nbdir / "live.ipynb",
        [
            f"import sys; sys.path.insert(0, {str(TESTS)!r})\n" + SPY.format(log=str(log)),
            "import tempfile\n"
            "import time\n"
            "import solstice_inspect as si\n"
            "from widget_jobs import LiveFeed\n"
            "store = si.connect(tempfile.mkdtemp())\n"
            "feed = LiveFeed(store, 'etl_live', duration_s=600, speed=1, start=time.time() - 45)\n"
            "feed.feed_until(45)\n"
            "feed.start()\n"
            "monitor = si.job_monitor('etl_live', store=store, refresh=1.0)\n"
            "monitor.tabs.selected = 'workers'\n"
            "ids = {k: getattr(monitor, k).comm.comm_id for k in ('header', 'charts', 'tabs')}\n"
            "SPY_LOG.write(json.dumps({'t': time.time(), 'built': ids}) + '\\n')",
            "monitor",
            'print("DONE-MARKER")',
        ],
    )
    page = new_page(browser)
    run_all(page, lab, "live.ipynb")
    mon = page.locator(".si-monitor").first
    mon.locator(".si-header").wait_for(timeout=30_000)
    yield page, mon, log
    assert page.dialogs == []
    page.close()


def read_log(log: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    built = next(x for x in lines if "built" in x)
    return built, [x for x in lines if "built" not in x]


def test_live_chart_gains_points_without_resending_data(live, artifacts):
    page, mon, log = live
    page.wait_for_function(
        "(root) => root.querySelector('.si-charts').parentElement.dataset.rendered === '1'",
        arg=mon.element_handle(),
        timeout=30_000,
    )
    assert mon.locator(".si-badge").text_content() == "RUNNING"
    points = lambda: mon.evaluate(POINTS_JS)  # noqa: E731
    wait_until(lambda: points() > 0, timeout_s=15, what="points in the charts")

    # the points in the browser grow, three times over, while no cell runs
    t0 = time.time()
    samples = [(t0, points())]

    def grew() -> bool:
        n = points()
        if n > samples[-1][1]:
            samples.append((time.time(), n))
        return len(samples) >= 4

    wait_until(grew, timeout_s=30, what="the charts' points to grow three times", every_s=0.1)
    t1 = time.time()
    assert no_cell_running(page)
    assert mon.locator(".si-badge").text_content() == "RUNNING", "measured while live"

    shown = points()  # before the log: every point shown was logged before it was sent
    built, msgs = read_log(log)
    charts = built["built"]["charts"]
    mine = [m for m in msgs if m["comm"] == charts]
    after = [m for m in mine if m["t"] > built["t"]]
    # the snapshot (`data`) went out once, before the monitor was displayed; never again
    assert any("data" in m["keys"] for m in mine if m["t"] <= built["t"])
    resent = [m for m in after if set(m["keys"]) & {"data", "epoch"}]
    assert resent == [], "the charts' data was sent again"
    appends = [m for m in after if m["type"] == "append"]
    assert appends, "live points came as append messages"
    assert all(m["method"] == "custom" for m in appends)
    in_window = [m for m in appends if t0 - 1 <= m["t"] <= t1]
    assert in_window, "appends while the points grew"
    others = [m for m in after if m["type"] not in ("append",) and m["keys"]]
    assert all(set(m["keys"]) <= {"stages"} for m in others), others

    # every point shown came from the snapshot or an append (each seq applied once)
    snapshot = max((m for m in mine if "data" in m["keys"]), key=lambda m: m["t"])["points"]
    by_seq: dict[int, int] = {}
    for m in appends:
        by_seq.setdefault(m["seq"], m["points"])
    sent_by_now = snapshot + sum(by_seq.values())
    assert samples[0][1] >= snapshot
    assert shown <= sent_by_now, (shown, sent_by_now)

    # what it costs: bytes per appended point; and the whole dashboard's message rate
    sent_bytes = sum(m["bytes"] for m in appends)
    sent_points = sum(m["points"] for m in appends)
    per_point = sent_bytes / sent_points
    window = [m for m in msgs if t0 <= m["t"] <= t1]
    rate = len(window) / (t1 - t0)
    report = {
        "browser_points": samples,
        "append_messages": len(appends),
        "appended_points": sent_points,
        "append_bytes": sent_bytes,
        "bytes_per_point": round(per_point, 1),
        "comm_messages_per_s": round(rate, 1),
        "messages_in_window_by_comm": dict(Counter(m["comm"] for m in window)),
    }
    (artifacts / "live_chart_messages.json").write_text(json.dumps(report, indent=1))
    print("live charts:", json.dumps({k: v for k, v in report.items() if k != "browser_points"}))
    assert per_point < 60, report
    assert rate <= 20, f"budget: ≤ 20 comm messages/s, got {rate:.1f}"


def near_white(path: Path) -> tuple[float, tuple[int, int] | None]:
    """The share of near-white pixels (every channel > 235) and the top-left corner of a
    40×40 px square of them, if there is one."""
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    white = (rgb > 235).all(axis=2)
    share = float(white.mean())
    k = 40
    integral = np.pad(white.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k]
    full = np.argwhere(sums == k * k)
    return share, (None if not len(full) else (int(full[0][1]), int(full[0][0])))


def save_for_docs(src: Path, name: str) -> Path:
    """Copy a screenshot to docs/images, as a palette PNG when that is needed to stay under
    400 KB."""
    from PIL import Image

    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    dest = DOCS_IMAGES / name
    shutil.copy(src, dest)
    if dest.stat().st_size > 400_000:
        Image.open(src).convert("RGB").quantize(256).save(dest, optimize=True)
    assert dest.stat().st_size < 400_000, f"{dest}: {dest.stat().st_size} bytes"
    return dest


def test_light_and_dark_screenshots_dark_has_no_white_panel(live, artifacts):
    page, mon, _ = live
    cell = page.locator(".jp-CodeCell").filter(has=page.locator(".si-monitor"))
    workers = mon.locator('.si-table-view[data-table="workers"]')
    workers.locator("tbody tr[data-row]").first.wait_for(timeout=15_000)
    assert mon.locator(".si-tab-selected").get_attribute("data-tab") == "workers"
    assert mon.locator(".si-badge").text_content() == "RUNNING", "mid-run"
    page.set_viewport_size({"width": 1400, "height": 1800})  # the whole cell in view
    shots = {}
    try:
        for theme in ("light", "dark"):
            if theme == "dark":
                set_theme(page, "dark")
            # the charts redraw in the theme's colours (read from its CSS variables)
            page.wait_for_function(
                """(root) => {
                     const t = root.querySelector('.si-chart .role-title-text text');
                     const want = getComputedStyle(document.body)
                       .getPropertyValue('--jp-ui-font-color1').replace(/\\s/g, '');
                     return t && t.getAttribute('fill').replace(/\\s/g, '') === want
                       && root.querySelector('.si-charts').parentElement.dataset.rendered === '1';
                   }""",
                arg=mon.element_handle(),
                timeout=30_000,
            )
            # and fill their cells (a redraw while JupyterLab hid its shell drew them 200 px)
            widths = mon.locator(".si-chart").evaluate_all(
                "cs => cs.map(c => [c.clientWidth,"
                " c.querySelector('svg').getBoundingClientRect().width])"
            )
            assert all(cell_w > 300 and abs(cell_w - svg_w) <= 4 for cell_w, svg_w in widths), (
                theme,
                widths,
            )
            cell.scroll_into_view_if_needed()
            shots[theme] = artifacts / f"dashboard_{theme}.png"
            cell.screenshot(path=str(shots[theme]))
    finally:
        set_theme(page, "light")
        page.set_viewport_size({"width": 1400, "height": 1000})
    share, square = near_white(shots["dark"])
    assert share < 0.005, f"{share:.2%} of the dark screenshot is near-white"
    assert square is None, f"a near-white 40×40 px panel at (x, y) = {square}"
    light_share, _ = near_white(shots["light"])
    assert light_share > 0.3, "the light screenshot is light"
    save_for_docs(shots["light"], "dashboard_light.png")
    save_for_docs(shots["dark"], "dashboard_dark.png")
