"""A JupyterLab server and a headless Chromium driving it (the recipe of TESTING.md),
shared by tests/ui and bench/ui_bench.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """``python -m jupyterlab`` on a free loopback port with a token, notebooks in
    ``root / "nb"``; :meth:`stop` sends SIGTERM (which also stops its kernels)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.nbdir = self.root / "nb"
        self.nbdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}"
        settings = self.root / "settings"
        notif = settings / "@jupyterlab" / "apputils-extension"
        notif.mkdir(parents=True, exist_ok=True)
        (notif / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env = dict(
            os.environ,
            JUPYTER_RUNTIME_DIR=str(self.root / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(self.root / "workspaces"),
        )
        self.log = open(self.root / "jupyterlab.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
                "--ip=127.0.0.1", f"--port={self.port}",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.nbdir}",
                "--LabApp.extension_manager=readonly",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            try:
                self.api("GET", "/api/status")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "JupyterLab did not start; see " + str(self.root / "jupyterlab.log")
                    ) from None
                time.sleep(0.5)

    def api(self, method: str, path: str) -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def kill_sessions(self) -> None:
        """Stop every kernel: the next notebook load must not re-attach to an old one."""
        for s in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{s['id']}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells (``#md`` first line: a markdown cell)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    for src in cells:
        if src.startswith("#md\n"):
            nb.cells.append(nbformat.v4.new_markdown_cell(src[4:]))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(src))
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))
    return path


def launch_browser(playwright: Any, profile: Path) -> Any:
    return playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        viewport={"width": 1400, "height": 1000},
        args=BROWSER_ARGS,
    )


LAST_PROMPT_RAN = """() => {
  const p = [...document.querySelectorAll('.jp-InputPrompt')];
  return p.length && /\\[(\\*|\\d+)\\]/.test(p[p.length - 1].textContent);
}"""


def run_all(page: Any, lab: Lab, name: str, *, timeout_s: float = 180) -> None:
    """Open ``name`` in a fresh kernel, Run All, wait for the DONE-MARKER output."""
    lab.kill_sessions()
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}&reset")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
    for _attempt in range(3):
        if dismiss_dialogs(page):
            page.wait_for_selector(
                '.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000
            )
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(
                LAST_PROMPT_RAN,
                timeout=10_000,
            )
            break
        except Exception:
            page.keyboard.press("Escape")
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-OutputArea-output')]
                 .some(o => o.textContent.includes('DONE-MARKER'))""",
        timeout=timeout_s * 1000,
    )


def dismiss_dialogs(page: Any) -> list[str]:
    """Accept any JupyterLab dialog (e.g. kernel selection after a restart) and return
    their texts, so that they neither block the test nor go unnoticed."""
    texts = []
    for _ in range(3):
        dialog = page.locator(".jp-Dialog")
        if not dialog.count():
            break
        texts.append(dialog.first.text_content() or "")
        accept = dialog.first.locator(".jp-mod-accept")
        if accept.count():
            accept.first.click()
        else:
            page.keyboard.press("Escape")
        # one kernel at a time: wait until the dialog is gone before looking again
        page.locator(".jp-Dialog").first.wait_for(state="detached", timeout=10_000)
    if texts:
        print("JupyterLab dialogs:", texts)
    return texts


def no_cell_running(page: Any) -> bool:
    """No cell shows the ``[*]`` prompt. (The kernel indicator is not used for this: it
    flickers busy while the kernel handles the widgets' comm messages, with no cell running.)
    """
    prompts = page.eval_on_selector_all(
        ".jp-InputPrompt", "els => els.map(e => e.textContent || '')"
    )
    return bool(prompts) and not any("*" in p for p in prompts)


CY_NODES_JS = """(root) => {
  const el = [...root.querySelectorAll('div')].find(d => d._cyreg && d._cyreg.cy);
  if (!el) return null;
  const cy = el._cyreg.cy, box = el.getBoundingClientRect();
  return cy.nodes().map(n => ({id: n.id(), x: box.left + n.renderedPosition().x,
                               y: box.top + n.renderedPosition().y,
                               label: n.data('label'), colour: n.style('background-color')}));
}"""
