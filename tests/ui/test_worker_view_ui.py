"""si.worker_view in a real JupyterLab + Chromium: the worker's figures, charts and log
render, the log search finds a line, and hostile log lines and stacks stay text."""

from __future__ import annotations

from lab import run_all, wait_until, write_notebook

import solstice_inspect as si

T0 = 1_764_331_200.0
JOB, W = "wv_job", "parse_w0_d4d4d4"
XSS = "<img src=x onerror=alert(1)>"


def _job(store) -> None:
    def env(mtype, t, payload):
        return si.envelope(mtype, JOB, W, T0 + t, {"stage_id": "parse", **payload})

    msgs = [si.envelope("job_started", JOB, JOB, T0, {"dag_edges": {"parse": []}})]
    msgs.append(env("worker_started", 1, {"node_id": "node-a", "pid": 31337}))
    for k in range(1, 30):
        msgs.append(
            env("worker_metrics", 1 + k, {"input_records": 10 * k, "output_records": 9 * k})
        )
        msgs.append(env("worker_resources", 1 + k, {"cpu_percent": 40.0 + k, "memory_mb": 200.0}))
        msgs.append(env("log", 1 + k, {"level": "INFO", "message": f"processed split {k}"}))
    msgs.append(env("log", 31, {"level": "ERROR", "message": XSS}))
    msgs.append(env("log", 32, {"level": "WARNING", "message": "the needle line"}))
    trace = f'File "p.py", line 9, in parse\n{XSS}'
    msgs.append(env("exception", 33, {"exception_type": "KeyError", "stacktrace": trace}))
    stacks = [["main (w.py:1);parse (p.py:9)", 60], ["main (w.py:1);write (p.py:30)", 40]]
    msgs.append(env("profile", 20, {"worker_id": W, "profile_id": "prof-1", "stacks": stacks}))
    msgs.append(env("worker_stopped", 34, {"reason": "failed: KeyError"}))
    with store.record(JOB) as rec:
        rec.ingest(msgs)


def test_a_worker_view_renders_searches_and_keeps_hostile_text(lab, page, artifacts, tmp_path):
    root = tmp_path / "store"
    _job(si.connect(root))
    write_notebook(
        lab.nbdir / "worker.ipynb",
        [
            "import solstice_inspect as si\n"
            f"job = si.connect({str(root)!r}).job({JOB!r})\n"
            f"si.worker_view(job, {W!r})",
            'print("DONE-MARKER")',
        ],
    )
    run_all(page, lab, "worker.ipynb")
    view = page.locator(".si-worker-root").first
    view.wait_for(timeout=30_000)
    title = view.locator(".si-w-title")
    assert W in title.text_content()
    assert "FAILED" in title.text_content()
    facts = view.locator(".si-w-facts").text_content()
    assert "node-a" in facts
    assert "31337" in facts
    # the four charts (records, rates, CPU, memory) draw their lines
    view.locator(".si-w-chart svg g.mark-line path").first.wait_for(
        state="attached", timeout=30_000
    )
    assert view.locator(".si-w-chart").count() == 4
    lines = view.locator(".si-w-log .si-w-line")
    assert lines.count() == 31
    # the hostile line is text: no <img> was made of it, no alert ran
    assert any(XSS in t for t in lines.all_text_contents())
    assert view.locator(".si-w-log img").count() == 0

    view.locator("input.si-w-search").fill("NEEDLE")
    view.locator("input.si-w-search").press("Enter")
    wait_until(lambda: lines.count() == 1, timeout_s=30, what="the search answer")
    assert "the needle line" in lines.first.text_content()
    assert "1 line(s) match" in view.locator(".si-w-log-note").text_content()

    # the worker is gone: the stack button shows its last stored stack, as text
    view.locator("button.si-w-stack-btn").click()
    stack = view.locator("pre.si-w-stack")
    wait_until(lambda: XSS in (stack.text_content() or ""), timeout_s=30, what="the stack")
    assert "the last exception" in view.locator(".si-w-stack-note").text_content()
    assert view.locator("pre.si-w-stack img").count() == 0
    assert view.locator("button.si-w-profile-btn").is_disabled()
    # the profile stored while it ran: main over parse (60 %) and write (40 %)
    view.locator("button.si-w-stored-btn").click()
    rects = view.locator(".si-w-icicle svg g.mark-rect path")
    wait_until(lambda: rects.count() == 3, timeout_s=30, what="the icicle's 3 frames")
    assert "prof-1: 100 samples, 2 stacks" in view.locator(".si-w-profile-note").text_content()
    labels = view.locator(".si-w-icicle svg g.mark-text text").all_text_contents()
    assert {"main", "parse", "write"} <= set(labels)
    assert page.dialogs == []
    page.locator(".jp-CodeCell").nth(0).screenshot(path=str(artifacts / "worker_view.png"))
    view.locator(".si-w-icicle").screenshot(path=str(artifacts / "worker_icicle.png"))
