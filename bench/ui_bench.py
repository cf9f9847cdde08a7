"""Dashboard benchmark (issue 4).

1. Browser: from ``display(si.job_monitor(job))`` (kernel clock at the call) to the fully
   rendered dashboard (header, 5 DAG nodes laid out, 3 charts drawn: page clock; same
   machine) for an archived job with 1M worker_metrics rows, in JupyterLab + headless
   Chromium. Three displays in one kernel (imports warm), median reported; the first
   display in a fresh kernel (cold imports) is reported separately.
2. Kernel: the cost of one live update (``JobMonitor.update``) of a 100-worker job, and
   the bytes it sends; baseline: rebuilding the whole monitor, as a naive refresh would.

Usage: ``.venv/bin/python bench/ui_bench.py`` (prints figures; never fails on a number).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import ipywidgets as W

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ui")]

from lab import Lab, launch_browser, run_all, write_notebook  # noqa: E402
from widget_jobs import LiveFeed  # noqa: E402

import solstice_inspect as si  # noqa: E402
from solstice_inspect.widgets.monitor import JobMonitor  # noqa: E402

REPEATS = 3

WATCH_JS = """() => {
  window.__rendered = {};
  const cyOk = (m) => {
    const d = [...m.querySelectorAll('div')].find(e => e._cyreg && e._cyreg.cy);
    const nodes = d && d._cyreg.cy.nodes();
    return nodes && nodes.length === 5 && nodes[0].renderedPosition().x > 0;
  };
  setInterval(() => {
    document.querySelectorAll('.si-monitor').forEach((m, i) => {
      if (window.__rendered[i]) return;
      const charts = m.querySelector('.si-charts');
      if (m.querySelector('.si-header .si-records-in') && charts &&
          charts.parentElement.dataset.rendered === '1' &&
          m.querySelectorAll('.si-chart svg g.mark-line path').length >= 3 && cyOk(m))
        window.__rendered[i] = Date.now() / 1000;
    });
  }, 10);
}"""


def browser_bench() -> dict:
    cells = [
        f"import sys, time, tempfile; sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "t_import = time.time()\n"
        "import solstice_inspect as si, solstice_inspect.widgets\n"
        "from widget_jobs import big_job\n"
        "job = big_job(si.connect(tempfile.mkdtemp()))\n"
        "print('ROWS', job.table('worker_metrics', columns=['ts']).num_rows)",
    ]
    for i in range(REPEATS):
        cells.append(
            f"T0_{i} = time.time()\ndisplay(si.job_monitor(job))\n"
            f"print('T0 {i}', T0_{i}, 'KERNEL', time.time() - T0_{i}); time.sleep(6)"
        )
    cells.append('print("DONE-MARKER")')
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(Path(tmp))
        try:
            write_notebook(lab.nbdir / "bench.ipynb", cells)
            with sync_playwright() as p:
                ctx = launch_browser(p, Path(tmp) / "chromium")
                page = ctx.new_page()
                page.add_init_script(f"({WATCH_JS})()")
                run_all(page, lab, "bench.ipynb", timeout_s=300)
                page.wait_for_timeout(1000)
                rendered = page.evaluate("() => window.__rendered")
                text = page.evaluate(
                    "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                    ".map(o => o.textContent).join('\\n')"
                )
                ctx.close()
        finally:
            lab.kill_sessions()
            lab.stop()
    t0 = {}
    kernel = {}
    for line in text.splitlines():
        if line.startswith("T0 "):
            _, i, t, _, k = line.split()
            t0[int(i)], kernel[int(i)] = float(t), float(k)
    rows = next(int(x.split()[1]) for x in text.splitlines() if x.startswith("ROWS"))
    totals = [rendered[str(i)] - t0[i] for i in sorted(t0) if str(i) in rendered]
    return {"rows": rows, "totals": totals, "kernel": [kernel[i] for i in sorted(kernel)]}


def live_bench(updates: int = 20) -> dict:
    sent: list = []
    orig = W.Widget._send
    W.Widget._send = lambda self, msg, buffers=None: sent.append(msg)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = si.connect(tmp)
            feed = LiveFeed(store, "bench_live", duration_s=120, workers_per_stage=20, xss=False)
            feed.feed_until(30)
            job = store.job("bench_live")
            workers = job.workers()["worker_id"].nunique()
            m = JobMonitor(job, refresh=3600)
            m.live.stop()
            m.update(m.live.poll())
            upd, poll, nbytes = [], [], []
            for k in range(updates):
                feed.feed_until(1)  # one more simulated second: ~1 refresh of new rows
                t = time.perf_counter()
                rows = m.live.poll()
                poll.append(time.perf_counter() - t)
                sent.clear()
                t = time.perf_counter()
                m.update(rows)
                upd.append(time.perf_counter() - t)
                import json

                nbytes.append(len(json.dumps(sent, default=str)))
                assert m.errors.value == "", m.errors.value
                _ = k
            rebuild = []
            for _ in range(3):
                t = time.perf_counter()
                JobMonitor(job, refresh=3600).close()
                rebuild.append(time.perf_counter() - t)
            m.close()
            feed.stop()
    finally:
        W.Widget._send = orig
    return {"workers": workers, "update": upd, "poll": poll, "bytes": nbytes, "rebuild": rebuild}


def main() -> None:
    import platform

    import altair
    import anywidget
    import ipycytoscape
    import jupyterlab

    ms = lambda xs: f"{statistics.median(xs) * 1000:.1f} ms"  # noqa: E731
    print(
        f"python {platform.python_version()} · anywidget {anywidget.__version__} · "
        f"ipycytoscape {ipycytoscape.__version__} · altair {altair.__version__} · "
        f"jupyterlab {jupyterlab.__version__}"
    )
    live = live_bench()
    print(
        f"live update, {live['workers']} workers: median {ms(live['update'])} "
        f"(p90 {sorted(live['update'])[int(0.9 * len(live['update']))] * 1000:.1f} ms), "
        f"LiveJob.poll median {ms(live['poll'])}, sent median "
        f"{statistics.median(live['bytes']) / 1000:.1f} kB per update"
    )
    print(
        f"baseline (rebuild the monitor): median {ms(live['rebuild'])}; ratio "
        f"{statistics.median(live['rebuild']) / statistics.median(live['update']):.0f}× "
        "slower than an update"
    )
    br = browser_bench()
    print(
        f"browser, archived job with {br['rows']:,} worker_metrics rows: display → rendered "
        f"{', '.join(f'{t:.2f} s' for t in br['totals'])} (first = cold kernel-side caches); "
        f"median {statistics.median(br['totals']):.2f} s; kernel part "
        f"{', '.join(f'{k:.2f} s' for k in br['kernel'])}"
    )


if __name__ == "__main__":
    main()
