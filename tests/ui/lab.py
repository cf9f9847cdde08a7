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
                # window.jupyterapp: the tests run commands (e.g. the theme) through it
                "--LabApp.expose_app_in_browser=True",
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

    def api(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"token {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(f"{self.url}{path}", data, headers, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def kill_sessions(self) -> None:
        """Stop every kernel: the next notebook load must not re-attach to an old one."""
        for s in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{s['id']}")

    def start_kernel(self, notebook: str) -> None:
        """A fresh kernel for ``notebook``, started before the page opens it: the page
        attaches to it (JupyterLab never has to ask which kernel, as it may while its
        kernel specs are still loading on a busy machine)."""
        self.api(
            "POST",
            "/api/sessions",
            {"path": notebook, "name": notebook, "type": "notebook", "kernel": {"name": "python3"}},
        )

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


def new_page(browser: Any) -> Any:
    """A tab that records (and dismisses) every alert/confirm/prompt in ``page.dialogs``:
    none may appear."""
    page = browser.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    return page


LAST_PROMPT_RAN = """() => {
  const p = [...document.querySelectorAll('.jp-InputPrompt')];
  return p.length && /\\[(\\*|\\d+)\\]/.test(p[p.length - 1].textContent);
}"""


KERNEL_READY = """(name) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = w && w.sessionContext && w.sessionContext.session
    && w.sessionContext.session.kernel;
  return !!(kernel && w.context.path === name && kernel.connectionStatus === 'connected'
            && kernel.status === 'idle');
}"""


def run_all(page: Any, lab: Lab, name: str, *, timeout_s: float = 180) -> None:
    """Open ``name`` in a fresh kernel, Run All, wait for the DONE-MARKER output."""
    lab.kill_sessions()
    lab.start_kernel(name)
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}&reset")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    # Run All only once the page is connected to the idle kernel: earlier, JupyterLab may
    # ask which kernel to use (seen on a busy machine; accepted if it does)
    for _attempt in range(3):
        ready = page.wait_for_function(
            f"(name) => ({KERNEL_READY})(name) ? 'ready' : !!document.querySelector('.jp-Dialog')",
            arg=name,
            timeout=90_000,
        ).json_value()
        if ready == "ready":
            break
        dismiss_dialogs(page)
    for _attempt in range(3):
        dismiss_dialogs(page)
        # (not awaited: the command's promise settles when every cell has run)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        try:
            page.wait_for_function(LAST_PROMPT_RAN, timeout=10_000)
            break
        except Exception:
            page.keyboard.press("Escape")
    try:
        # done, or a cell failed (the cells after it never run: no point in waiting)
        outcome = page.wait_for_function(
            """() => {
                 const outs = [...document.querySelectorAll('.jp-OutputArea-output')];
                 if (outs.some(o => o.textContent.includes('DONE-MARKER'))) return 'done';
                 // an error output (not a traceback shown as data, e.g. in a table)
                 return outs.some(o => o.dataset.mimeType === 'application/vnd.jupyter.stderr'
                   && o.textContent.includes('Traceback (most recent call last)')) && 'failed';
               }""",
            timeout=timeout_s * 1000,
        ).json_value()
    except Exception:
        outcome = f"no DONE-MARKER in {timeout_s} s"
    if outcome != "done":
        shot = lab.root / f"{name}.failed.png"
        page.screenshot(path=str(shot))
        errors = page.eval_on_selector_all(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
            "els => els.map(e => e.textContent)",
        )
        prompts = page.eval_on_selector_all(".jp-InputPrompt", "els => els.map(e => e.textContent)")
        raise AssertionError(
            f"{name}: {outcome}; prompts {prompts}; screenshot {shot}; errors:\n"
            + "\n".join(e[-3000:] for e in errors)
        )


def dismiss_dialogs(page: Any) -> list[str]:
    """Accept any JupyterLab dialog (e.g. kernel selection after a restart) and return
    their texts, so that they neither block the test nor go unnoticed."""
    texts = []
    for _ in range(3):
        dialog = page.locator(".jp-Dialog")
        if not dialog.count():
            break
        handle = dialog.first.element_handle()
        texts.append(handle.text_content() or "")
        accept = dialog.first.locator(".jp-mod-accept")
        if accept.count():
            accept.first.click()
        else:
            page.keyboard.press("Escape")
        # one at a time: wait until this dialog is gone before looking again (another
        # may have opened meanwhile)
        page.wait_for_function("el => !el.isConnected", arg=handle, timeout=10_000)
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


def wait_until(predicate: Any, *, timeout_s: float, what: str, every_s: float = 0.2) -> Any:
    """Poll ``predicate()`` until it returns a truthy value (returned) or fail after
    ``timeout_s`` seconds saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


def set_theme(page: Any, theme: str, *, timeout_s: float = 30) -> None:
    """Switch JupyterLab's theme (``light`` / ``dark``) as the Settings menu does, and wait
    until its stylesheet applies. The choice is saved in the server's settings: switch
    back when done."""
    name = THEMES[theme]
    page.evaluate(
        "t => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", name
    )
    page.wait_for_function(
        """([name, dark]) => {
             if (document.body.dataset.jpThemeName !== name) return false;
             const bg = getComputedStyle(document.body).getPropertyValue('--jp-layout-color0');
             const c = document.createElement('canvas').getContext('2d');
             c.fillStyle = bg.trim() || '#fff';
             const v = parseInt(c.fillStyle.slice(1, 3), 16);
             return dark ? v < 100 : v > 200;
           }""",
        arg=[name, theme == "dark"],
        timeout=timeout_s * 1000,
    )


CY_NODES_JS = """(root) => {
  const el = [...root.querySelectorAll('div')].find(d => d._cyreg && d._cyreg.cy);
  if (!el) return null;
  const cy = el._cyreg.cy, box = el.getBoundingClientRect();
  return cy.nodes().map(n => ({id: n.id(), x: box.left + n.renderedPosition().x,
                               y: box.top + n.renderedPosition().y,
                               label: n.data('label'), colour: n.style('background-color')}));
}"""
