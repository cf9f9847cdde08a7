"""Notebooks that export: a notebook with a live dashboard, executed by nbclient with its
widget state saved, exported by ``jupyter nbconvert --template solstice_inspect`` and
opened in headless Chromium with every non-file request refused, shows the dashboard
itself (header, stage graph, Vega charts); the default export shows the static fallback;
re-running the monitor cell does not pile dashboards' state up in the saved notebook."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from lab import KERNEL_READY, run_all, wait_until, write_notebook
from nbclient import NotebookClient

import solstice_inspect as si

T0 = 1_764_331_200.0
JOB = "export_job"
EDGES = {"read_x": ["parse_x"], "parse_x": ["write_x"]}
STAGES = ["read_x", "parse_x", "write_x"]
MONITOR = f"si.job_monitor(store.job({JOB!r}))"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: schemes that are no network request
LOCAL = ("file", "data", "blob")


def _record(root: Path) -> None:
    seq = iter(range(10_000))
    msgs = [si.envelope("job_started", JOB, JOB, T0, {"dag_edges": EDGES}, next(seq))]
    for k in range(1, 21):
        for i, stage in enumerate(STAGES):
            msgs.append(
                si.envelope(
                    "stage_metrics",
                    JOB,
                    stage,
                    T0 + k,
                    {"worker_count": 1, "output_records": (10 + i) * k, "queue_lag": k * i},
                    next(seq),
                )
            )
            msgs.append(
                si.envelope(
                    "worker_metrics",
                    JOB,
                    f"{stage}_w0_aaaaaa",
                    T0 + k,
                    {"stage_id": stage, "input_records": 10 * k, "output_records": 10 * k},
                    next(seq),
                )
            )
    msgs.append(si.envelope("job_completed", JOB, JOB, T0 + 21, {"status": "COMPLETED"}, next(seq)))
    with si.connect(root).record(JOB) as rec:
        rec.ingest(msgs)


@pytest.fixture(scope="module")
def store_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export") / "store"
    _record(root)
    return root


def _notebook(path: Path, root: Path) -> Path:
    return write_notebook(
        path,
        [
            f"import solstice_inspect as si\nstore = si.connect({str(root)!r})",
            MONITOR,
            'print("DONE-MARKER")',
        ],
    )


def _execute(path: Path) -> None:
    """Run the notebook with nbclient and save it with its widget state."""
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=180,
        store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    nbformat.write(nb, str(path))


def _export(path: Path, *template: str) -> Path:
    subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", *template, str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return path.with_suffix(".html")


def _open_offline(page, html: Path) -> list[str]:
    attempted: list[str] = []
    page.on("request", lambda r: attempted.append(r.url))
    page.route(
        "**/*",
        lambda route: (
            route.continue_() if urlparse(route.request.url).scheme in LOCAL else route.abort()
        ),
    )
    page.goto(html.as_uri())
    return attempted


def test_the_exported_dashboard_renders_offline(tmp_path, store_root, page, artifacts):
    nb = _notebook(tmp_path / "exported.ipynb", store_root)
    _execute(nb)
    html = _export(nb, "--template", "solstice_inspect")
    attempted = _open_offline(page, html)

    monitor = page.locator(".si-monitor")
    monitor.locator(".si-header").wait_for(timeout=60_000)
    assert monitor.count() == 1
    assert JOB in (monitor.locator(".si-header").text_content() or "")
    assert monitor.locator(".si-badge").text_content() == "COMPLETED"
    # the Vega charts are drawn from the saved state: a line per stage, legends name them
    charts = monitor.locator(".si-charts")
    # (attached: a flat line has an empty box, which Playwright calls hidden)
    charts.locator("svg g.mark-line path").first.wait_for(state="attached", timeout=60_000)
    assert charts.locator("svg g.mark-line path").count() >= len(STAGES)
    legend = " ".join(charts.locator("svg .role-legend text").all_text_contents())
    for stage in STAGES:
        assert stage in legend
    # the stage graph (ipycytoscape, a canvas) rendered too
    monitor.locator(".custom-widget canvas").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "export_offline.png"), full_page=True)

    assert [u for u in attempted if urlparse(u).scheme not in LOCAL] == []
    assert page.dialogs == []


def test_the_default_export_shows_the_static_fallback(tmp_path, store_root):
    """No template, as most people export a notebook saved without widget state
    (JupyterLab's default): the dashboard's static HTML is there. (With saved state,
    nbconvert's default template draws the widgets from a CDN instead: online only.)"""
    nb = _notebook(tmp_path / "plain.ipynb", store_root)
    nbformat.write(
        NotebookClient(
            nbformat.read(str(nb), as_version=4),
            kernel_name="python3",
            timeout=180,
            store_widget_state=False,
            resources={"metadata": {"path": str(tmp_path)}},
        ).execute(),
        str(nb),
    )
    text = _export(nb).read_text()
    assert JOB in text
    assert "COMPLETED" in text
    for stage in STAGES:
        assert f">{stage}<" in text, f"stage {stage} in the static stage table"
    assert "<svg" in text, "the static charts / DAG"


SAVE_STATE = "/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin"

RERUN_MONITOR_CELL = """async () => {
  const app = window.jupyterapp;
  app.shell.currentWidget.content.activeCellIndex = 1;
  await app.commands.execute('notebook:run-cell');
}"""


@pytest.fixture
def save_widget_state(lab):
    """JupyterLab's "Save Widget State Automatically", on for this test only."""
    before = lab.api("GET", SAVE_STATE).get("raw") or "{}"
    lab.api("PUT", SAVE_STATE, {"raw": json.dumps({"saveState": True})})
    yield
    lab.api("PUT", SAVE_STATE, {"raw": before})


def _run_in_lab(page, lab, name: str, monitor_runs: int) -> dict:
    run_all(page, lab, name)
    for _ in range(monitor_runs - 1):
        page.evaluate(RERUN_MONITOR_CELL)
    # the last run's dashboard is the only one shown, and the kernel is done
    page.wait_for_function(
        "() => document.querySelectorAll('.si-monitor .si-header .si-badge').length === 1",
        timeout=60_000,
    )
    page.wait_for_function(f"(name) => ({KERNEL_READY})(name)", arg=name, timeout=60_000)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    path = lab.nbdir / name
    deadline = time.monotonic() + 30
    while True:  # saved once the file has the widget state
        saved = json.loads(path.read_text())
        if WIDGET_STATE in saved["metadata"].get("widgets", {}):
            return saved
        assert time.monotonic() < deadline, f"{name} was not saved with its widget state"
        time.sleep(0.2)


def _model_names(nb: dict) -> Counter:
    """How many saved models of each kind (an anywidget by its Python class)."""
    return Counter(
        m["state"].get("_anywidget_id", m["model_name"]).replace("solstice_inspect.widgets.", "")
        for m in nb["metadata"]["widgets"][WIDGET_STATE]["state"].values()
    )


def test_rerunning_a_monitor_cell_does_not_pile_up_widget_state(
    lab, page, store_root, save_widget_state
):
    """A monitor cell run 10 times in JupyterLab, saved with widget state: the notebook
    holds one dashboard's state, as after one run (the earlier dashboards are closed)."""
    _notebook(lab.nbdir / "once.ipynb", store_root)
    _notebook(lab.nbdir / "tenfold.ipynb", store_root)
    once = _run_in_lab(page, lab, "once.ipynb", 1)
    tenfold = _run_in_lab(page, lab, "tenfold.ipynb", 10)
    one_state = len(json.dumps(once["metadata"]["widgets"]))
    once_size = (lab.nbdir / "once.ipynb").stat().st_size
    tenfold_size = (lab.nbdir / "tenfold.ipynb").stat().st_size
    # cells 1-3 ran once ([1]-[3]), then the monitor cell 9 more times ([4]-[12])
    assert tenfold["cells"][1]["execution_count"] == 12, "the monitor cell ran 10 times"
    models = {k: _model_names(v) for k, v in (("once", once), ("tenfold", tenfold))}
    assert tenfold_size - once_size <= min(one_state, 1_000_000), (
        f"10 runs saved {tenfold_size:,} bytes, 1 run {once_size:,}; widget models {models}"
    )
    # no replaced dashboard is left: one of each of our views, as after one run
    for view in ("views.HeaderView", "views.ChartsView", "CytoscapeModel"):
        assert models["tenfold"][view] == models["once"][view] == 1, (view, models)


QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_the_quickstart_exported_offline_shows_its_dashboards(
    tmp_path, page, artifacts, monkeypatch
):
    """notebooks/quickstart.ipynb as a user runs and exports it (its live job played by
    the simulation: Ray's demo would outlive the run), opened with no network: both its
    dashboards — the live job's and the archived one's — are drawn from the saved state."""
    monkeypatch.setenv("SOLSTICE_QUICKSTART_SIMULATE", "1")  # the kernel inherits it
    nb = tmp_path / "quickstart.ipynb"
    nb.write_text(QUICKSTART.read_text())
    _execute(nb)
    html = _export(nb, "--template", "solstice_inspect")
    attempted = _open_offline(page, html)

    monitors = page.locator(".si-monitor")
    wait_until(lambda: monitors.count() == 2, timeout_s=60, what="both dashboards")
    heads = [monitors.nth(i).locator(".si-header") for i in range(2)]
    for head in heads:
        head.wait_for(timeout=60_000)
    jobs = [h.locator(".si-job").text_content() for h in heads]
    assert jobs == ["quickstart_live", "quickstart_archived"]
    assert heads[1].locator(".si-badge").text_content() == "COMPLETED"
    archived = monitors.nth(1)
    archived.locator(".si-charts svg g.mark-line path").first.wait_for(
        state="attached", timeout=60_000
    )
    legend = " ".join(archived.locator(".si-charts svg .role-legend text").all_text_contents())
    for stage in ("source", "parse", "filter", "enrich", "sink"):
        assert stage in legend
    archived.locator(".custom-widget canvas").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "export_quickstart_offline.png"), full_page=True)
    assert [u for u in attempted if urlparse(u).scheme not in LOCAL] == []
    assert page.dialogs == []
