"""``solstice-inspect portal`` for real: Voilà on a free loopback port over a store of two
recorded jobs, opened in headless Chromium with every request off 127.0.0.1 refused. The
job list shows both jobs, a click opens that job's dashboard with its own stages, nothing
is fetched from anywhere else, and stopping the portal leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest
from lab import free_port

import solstice_inspect as si

T0 = 1_764_331_200.0
#: two jobs with disjoint stage names: the dashboard that opens must show the clicked one's
JOBS = {
    "etl_alpha": {"read_alpha": ["sink_alpha"]},
    "etl_beta": {"load_beta": ["score_beta"], "score_beta": ["save_beta"]},
}
CLI = [sys.executable, "-c", "import sys; from solstice_inspect.cli import main; sys.exit(main())"]


def _record(store, job_id, edges):
    stages = sorted({*edges, *(d for ds in edges.values() for d in ds)})
    seq = iter(range(10_000))
    msgs = [si.envelope("job_started", job_id, job_id, T0, {"dag_edges": edges}, next(seq))]
    for k in range(1, 6):
        for stage in stages:
            msgs.append(
                si.envelope(
                    "worker_metrics",
                    job_id,
                    f"{stage}_w0_aaaaaa",
                    T0 + k,
                    {"stage_id": stage, "input_records": 10 * k, "output_records": 10 * k},
                    next(seq),
                )
            )
    msgs.append(
        si.envelope("job_completed", job_id, job_id, T0 + 6, {"status": "COMPLETED"}, next(seq))
    )
    with store.record(job_id) as rec:
        rec.ingest(msgs)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    env.pop("SOLSTICE_INSPECT_STORE", None)  # the portal must pass --store on, not this
    return env


def _wait_listening(proc: subprocess.Popen, port: int, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the portal did not start:\n{log.read_text()}") from None
            time.sleep(0.2)


@pytest.fixture
def portal(tmp_path):
    root = tmp_path / "store"
    store = si.connect(root)
    for job_id, edges in JOBS.items():
        _record(store, job_id, edges)
    port = free_port()
    log = tmp_path / "portal.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*CLI, "portal", "--store", str(root), "--port", str(port)],
            cwd=tmp_path,
            env=_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(proc, port, log)
        yield proc, port, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_the_portal_lists_jobs_and_a_click_opens_a_dashboard(portal, page, artifacts):
    proc, port, _log = portal
    attempted: list[str] = []
    page.on("request", lambda r: attempted.append(r.url))

    def only_loopback(route):
        url = urlparse(route.request.url)
        if url.scheme in ("data", "blob") or url.hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    page.route("**/*", only_loopback)
    page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
    rows = page.locator(".si-table-part tr[data-row]")
    rows.first.wait_for(timeout=120_000)
    listed = " ".join(rows.all_text_contents())
    assert rows.count() == 2
    assert "etl_alpha" in listed
    assert "etl_beta" in listed
    assert page.locator(".si-monitor").count() == 0

    rows.filter(has_text="etl_beta").click()
    monitor = page.locator(".si-monitor").first
    monitor.locator(".si-header").wait_for(timeout=60_000)
    assert "etl_beta" in (monitor.locator(".si-header").text_content() or "")
    assert monitor.locator(".si-badge").text_content() == "COMPLETED"
    cells = monitor.locator('.si-table-view[data-table="stages"] td[data-column="stage_id"]')
    cells.first.wait_for(timeout=60_000)
    assert sorted(cells.all_text_contents()) == ["load_beta", "save_beta", "score_beta"]
    # the stage graph (ipycytoscape) rendered: its canvas is there
    monitor.locator(".custom-widget canvas").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "portal.png"), full_page=True)

    elsewhere = [u for u in attempted if urlparse(u).hostname not in (None, "", "127.0.0.1")]
    assert elsewhere == [], "requests off this machine (CDN?)"

    # stopping the portal stops the kernel it started for the page: no orphan process
    spawned = psutil.Process(proc.pid).children(recursive=True)
    assert spawned, "the page's kernel runs under the portal"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    _gone, alive = psutil.wait_procs(spawned, timeout=15)
    assert alive == [], f"left running: {[p.cmdline() for p in alive]}"


def test_a_taken_port_and_a_missing_store_are_clear_errors(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [*CLI, "portal", "--store", str(store), "--port", str(port)],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr
    assert "--port" in out.stderr

    missing = tmp_path / "nowhere"
    out = subprocess.run(
        [*CLI, "portal", "--store", str(missing), "--port", str(free_port())],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert f"no job store at {missing}" in out.stderr
    assert not missing.exists(), "nothing is created for a mistyped store"
