"""Saved reports: one self-contained file, every string escaped, nothing loaded from
anywhere; the CLI writes the same file."""

from __future__ import annotations

import re

import solstice_inspect as si
from solstice_inspect.cli import main
from tests.conftest import T0, metrics, started

HOSTILE = "<img src=x onerror=alert(1)>"
CONFIG_HOSTILE = "</pre><script>alert('config')</script>"


def _job(store, msg):
    msgs = [
        started(msg),
        msg("worker_started", "mid_w0_aaaaaa", T0 + 1, {"stage_id": "mid"}),
        metrics(msg, "mid_w0_aaaaaa", "mid", T0 + 2, 40, 30),
        msg(
            "exception",
            "mid_w0_aaaaaa",
            T0 + 3,
            {
                "stage_id": "mid",
                "exception_type": "ValueError",
                "message": HOSTILE,
                "stacktrace": f"Traceback:\n  {HOSTILE}",
            },
        ),
        msg(
            "worker_stopped",
            "mid_w0_aaaaaa",
            T0 + 4,
            {"stage_id": "mid", "reason": f"failed: {HOSTILE}"},
        ),
        msg("checkpoint", "src", T0 + 5, {"checkpoint_id": "chk_<1>", "status": "COMPLETED"}),
        msg("job_completed", "j1", T0 + 6, {"status": "COMPLETED"}),
    ]
    with store.record("j1", config={"sink": {"path": CONFIG_HOSTILE}, "batch": 64}) as rec:
        rec.ingest(msgs)
    return store.job("j1")


def test_a_report_holds_every_section_escaped_and_loads_nothing(store, msg, tmp_path):
    job = _job(store, msg)
    path = si.report(job).save(tmp_path / "r.html")
    doc = path.read_text(encoding="utf-8")
    for section in ("Timeline", "Checkpoints", "Failures and incidents", "Configuration"):
        assert f"<h2>{section}</h2>" in doc
    # the hostile strings are there as text, never as markup
    assert HOSTILE not in doc
    assert "<script" not in doc
    assert "&lt;img src=x onerror=alert(1)&gt;" in doc
    assert "&lt;/pre&gt;&lt;script&gt;" in doc
    assert "chk_&lt;1&gt;" in doc
    # nothing to load: no scripts, links, images or URLs but the SVG namespace
    assert not re.search(r"<(script|link|img|iframe|object)\b", doc)
    urls = set(re.findall(r"https?://[^\s'\"<>]+", doc))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert "default-src 'none'" in doc  # and the browser is told so
    # the figures are the job's: mid's 40 in / 30 out, its exception, the failed worker
    assert re.search(r"<tr><td>mid</td>(<td>[^<]*</td>)*?<td>40</td><td>30</td>", doc)
    assert "ValueError" in doc
    assert re.search(r"<td>mid_w0_aaaaaa</td><td>mid</td><td>FAILED</td>", doc)
    assert doc.count("class='mark-bar'") == 1  # one worker bar on the timeline


def test_the_cli_writes_the_report(store, msg, tmp_path, capsys):
    _job(store, msg)
    out = tmp_path / "cli.html"
    assert main(["report", "j1", "--store", str(store.root), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert "&lt;img src=x" in out.read_text(encoding="utf-8")
    assert main(["report", "j2", "--store", str(store.root), "-o", str(out)]) == 2
    assert "j1" in capsys.readouterr().err  # the unknown job's error names the known one


def test_a_comparison_report_and_the_cli_compare(store, msg, tmp_path, capsys):
    _job(store, msg)
    _job(store, msg)  # a second attempt of j1
    first, second = store.attempts("j1")["attempt_id"]
    comparison = si.compare(("j1", first), ("j1", second), store=store)
    doc = si.report(comparison).save(tmp_path / "cmp.html").read_text(encoding="utf-8")
    assert "<h1>comparison of j1 #1, j1 #2</h1>" in doc
    assert "<script" not in doc
    assert not re.search(r"<(link|img|iframe)\b", doc)
    out = tmp_path / "cli_cmp.html"
    assert (
        main(["report", "j1", "--store", str(store.root), "-o", str(out), "--compare", "j1"]) == 0
    )
    assert "comparison of j1" in out.read_text(encoding="utf-8")
