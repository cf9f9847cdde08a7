"""Dashboard in the real browser: ``display(si.job_monitor(...))`` → fully rendered, cold.

Each measurement is the first display in a **new kernel** (JupyterLab + headless
Chromium, tests/ui/lab.py): the notebook's one cell imports solstice_inspect, then the
clock starts (kernel ``time.time()``) just before ``display(si.job_monitor(job_id,
store=...))``; it stops (page ``Date.now()``, same machine clock) when, in the page, all
of these are true for the dashboard (``.si-monitor``):

* the header is drawn (``.si-header .si-records-in``);
* the tab strip is drawn (≥ 5 ``.si-tab``) and the Stages table shows its first page
  (``.si-table-view[data-table=stages]``: status no longer "loading…", one row per stage);
* the charts are drawn with their data (``data-rendered="1"`` on the ``.si-charts``
  view; for a job with data, ≥ 3 line marks);
* the DAG has its nodes, laid out (cytoscape node count = stages, positions set).

The time each part first became true is reported too (which part is last). Jobs are
written before JupyterLab starts (not timed): an archived job with 1,000,000
worker_metrics rows and 50,000 stage_metrics windows (``tests/widget_jobs.big_job``);
baselines in the same run: the same job without the 1M rows (a 10-s simulated job, the one
``big_job`` starts from: same 5 stages) and an empty job (no rows, no stages). The three
alternate, ``--repeats`` times each, every one in a fresh kernel.

Usage: ``.venv/bin/python bench/ui_bench.py [--repeats 3]`` (prints figures; never fails
on a number). The kernel part of a live update is in bench/dashboard_bench.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ui")]

from lab import Lab, launch_browser, run_all, write_notebook  # noqa: E402
from widget_jobs import archived_job, big_job  # noqa: E402

import solstice_inspect as si  # noqa: E402

# window.__parts[name] = page time (s) each part of the first dashboard was first seen
WATCH_JS = """() => {
  window.__parts = {};
  window.__long = []; // [start, duration] (s, epoch) of the page's long tasks (> 50 ms)
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        window.__long.push([(performance.timeOrigin + e.startTime) / 1000, e.duration / 1000]);
    }).observe({ type: "longtask", buffered: true });
  } catch (e) {}
  const want = () => window.__expect || {stages: -1};
  const cyNodes = (m) => {
    const d = [...m.querySelectorAll('div')].find(e => e._cyreg && e._cyreg.cy);
    if (!d) return null;
    const nodes = d._cyreg.cy.nodes();
    return nodes.length === 0 || nodes[0].renderedPosition().x > 0 ? nodes.length : -1;
  };
  const parts = {
    header: (m) => !!m.querySelector('.si-header .si-records-in'),
    tabs: (m) => m.querySelectorAll('.si-tab').length >= 5,
    table: (m) => {
      const v = m.querySelector('.si-table-view[data-table="stages"]');
      const s = v && v.querySelector('.si-table-status');
      return !!s && s.textContent !== 'loading…' &&
        v.querySelectorAll('tbody tr[data-row]').length === want().stages;
    },
    charts: (m) => {
      const c = m.querySelector('.si-charts');
      return !!c && c.parentElement.dataset.rendered === '1' &&
        (want().stages === 0 || m.querySelectorAll('.si-chart svg g.mark-line path').length >= 3);
    },
    dag: (m) => cyNodes(m) === want().stages,
  };
  const tick = () => {
    const m = document.querySelector('.si-monitor');
    if (m) {
      const now = Date.now() / 1000;
      for (const [k, f] of Object.entries(parts)) {
        if (window.__parts[k] == null) { try { if (f(m)) window.__parts[k] = now; } catch (e) {} }
      }
    }
  };
  setInterval(tick, 5);
}"""


def make_jobs(root: str) -> dict[str, tuple[str, int, int]]:
    """job name -> (job id, stages, worker_metrics rows)."""
    store = si.connect(root)
    t = time.perf_counter()
    big = big_job(store, "etl_1m")
    small = archived_job(store, "etl_small", duration_s=10)
    with store.record("etl_empty"):
        pass
    print(f"jobs written in {time.perf_counter() - t:.1f} s (not timed below)", flush=True)
    out = {}
    for name, job in (("1M rows", big), ("small", small), ("empty", store.job("etl_empty"))):
        rows = job.table("worker_metrics", columns=["ts"]).num_rows
        stages = len(job.snapshot().stage_ids)
        out[name] = (job.job_id, stages, rows)
    return out


def cell(store: str, job_id: str) -> str:
    return (
        "import time\nT_CELL = time.time()\n"
        "import solstice_inspect as si\n"
        "T0 = time.time()\n"
        f"m = si.job_monitor({job_id!r}, store={store!r})\n"
        "T_BUILT = time.time()\n"
        "display(m)\n"
        "T1 = time.time()\n"
        "print('TIMES', T_CELL, T0, T_BUILT, T1)"
    )


def one(page, lab: Lab, store: str, name: str, job_id: str, stages: int) -> dict:
    nb = f"bench_{job_id}.ipynb"
    write_notebook(lab.nbdir / nb, [cell(store, job_id), 'print("DONE-MARKER")'])
    page.add_init_script(f"window.__expect = {json.dumps({'stages': stages})};")
    run_all(page, lab, nb, timeout_s=300)
    page.wait_for_function(
        "() => window.__parts && Object.keys(window.__parts).length === 5", timeout=60_000
    )
    parts = page.evaluate("() => window.__parts")
    long_tasks = page.evaluate("() => window.__long")
    text = page.evaluate(
        "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
        ".map(o => o.textContent).join('\\n')"
    )
    line = next(x for x in text.splitlines() if x.startswith("TIMES"))
    t_cell, t0, t_built, t1 = (float(x) for x in line.split()[1:])
    done = max(parts.values())
    busy = [(a, d) for a, d in long_tasks if a + d > t0 and a < done]
    return {
        "busy": sum(min(a + d, done) - max(a, t0) for a, d in busy),
        "longest": max((d for _, d in busy), default=0.0),
        "job": name,
        "total": done - t0,
        "import": t0 - t_cell,
        "build": t_built - t0,
        "kernel": t1 - t0,
        "parts": {k: v - t0 for k, v in sorted(parts.items(), key=lambda kv: kv[1])},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import platform

    import anywidget
    import ipycytoscape
    import ipywidgets
    import jupyterlab
    import lance
    import pandas
    import pyarrow

    print(time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    print(
        f"python {platform.python_version()} · pyarrow {pyarrow.__version__} · pylance "
        f"{lance.__version__} · pandas {pandas.__version__} · anywidget "
        f"{anywidget.__version__} · ipywidgets {ipywidgets.__version__} · ipycytoscape "
        f"{ipycytoscape.__version__} · jupyterlab {jupyterlab.__version__}"
    )
    from playwright.sync_api import sync_playwright

    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "store")
        jobs = make_jobs(store)
        for name, (job_id, stages, rows) in jobs.items():
            print(f"  {name}: {job_id}, {stages} stages, {rows:,} worker_metrics rows")
        lab = Lab(Path(tmp) / "lab")
        try:
            with sync_playwright() as p:
                ctx = launch_browser(p, Path(tmp) / "chromium")
                page = ctx.new_page()
                page.add_init_script(f"({WATCH_JS})()")
                names = list(jobs)
                for k in range(args.repeats):
                    order = names[k % len(names) :] + names[: k % len(names)]  # rotate A/B/C
                    for name in order:
                        job_id, stages, _ = jobs[name]
                        r = one(page, lab, store, name, job_id, stages)
                        results.append(r)
                        print(
                            f"  run {k} {name}: display → rendered {r['total']:.2f} s "
                            f"(kernel: job_monitor {r['build']:.2f} s, display returned at "
                            f"{r['kernel']:.2f} s; import solstice_inspect before the clock "
                            f"{r['import']:.2f} s); page main thread busy (long tasks) "
                            f"{r['busy']:.2f} s "
                            f"of it (longest task "
                            f"{r['longest']:.2f} s); parts at "
                            + ", ".join(f"{a} {b:.2f}" for a, b in r["parts"].items()),
                            flush=True,
                        )
                ctx.close()
        finally:
            lab.kill_sessions()
            lab.stop()
    print()
    med = {}
    for name in jobs:
        rs = [r for r in results if r["job"] == name]
        each = ", ".join(f"{r['total']:.2f}" for r in rs)
        med[name] = statistics.median(r["total"] for r in rs)
        print(
            f"RESULT {name}: cold display → rendered median {med[name]:.2f} s "
            f"({each}); kernel job_monitor median "
            f"{statistics.median(r['build'] for r in rs):.2f} s, display returned "
            f"{statistics.median(r['kernel'] for r in rs):.2f} s"
        )
    print(
        f"RESULT 1M rows − empty job: {med['1M rows'] - med['empty']:.2f} s; "
        f"1M / small {med['1M rows'] / med['small']:.2f}×"
    )


if __name__ == "__main__":
    main()
