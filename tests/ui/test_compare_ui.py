"""si.compare in a real JupyterLab + Chromium: the delta table, the rate charts and the
stage graph of two runs render."""

from __future__ import annotations

from lab import CY_NODES_JS, run_all, write_notebook

import solstice_inspect as si

T0 = 1_764_331_200.0


def _run(store, rate):
    seq = iter(range(10_000))
    with store.record("cmp_job", config={"batch": rate}) as rec:
        msgs = [
            si.envelope(
                "job_started", "cmp_job", "cmp_job", T0, {"dag_edges": {"src": ["sink"]}}, next(seq)
            )
        ]
        for k in range(1, 20):
            for stage in ("src", "sink"):
                msgs.append(
                    si.envelope(
                        "worker_metrics",
                        "cmp_job",
                        f"{stage}_w0_aaaaaa",
                        T0 + k,
                        {
                            "stage_id": stage,
                            "input_records": rate * k,
                            "output_records": rate * k,
                            "processing_time": 0.5 * k,
                        },
                        next(seq),
                    )
                )
        msgs.append(
            si.envelope(
                "job_completed", "cmp_job", "cmp_job", T0 + 20, {"status": "COMPLETED"}, next(seq)
            )
        )
        rec.ingest(msgs)


def test_a_comparison_renders(lab, page, artifacts, tmp_path):
    root = tmp_path / "store"
    store = si.connect(root)
    _run(store, 100)
    _run(store, 60)
    write_notebook(
        lab.nbdir / "compare.ipynb",
        [
            "import solstice_inspect as si\n"
            f"store = si.connect({str(root)!r})\n"
            "si.compare(('cmp_job', 1), ('cmp_job', 2), store=store)",
            'print("DONE-MARKER")',
        ],
    )
    run_all(page, lab, "compare.ipynb")
    view = page.locator(".si-compare").first
    view.wait_for(timeout=30_000)
    # the per-stage delta table pages in, one row per stage and run
    rows = view.locator(".si-table-part tr[data-row]")
    rows.first.wait_for(timeout=30_000)
    assert rows.count() >= 4
    # the overlaid rate charts draw one line per run
    # (a constant rate draws a flat line: zero height, so "attached", not "visible")
    view.locator(".si-charts svg g.mark-line path").first.wait_for(state="attached", timeout=30_000)
    assert view.locator(".si-charts svg g.mark-line path").count() >= 2
    # the stage graph: both stages drawn, coloured by their change (both 40 % slower)
    page.wait_for_function(
        f"(root) => {{ const n = ({CY_NODES_JS})(root); return n && n.length === 2; }}",
        arg=view.element_handle(),
        timeout=30_000,
    )
    nodes = page.evaluate(CY_NODES_JS, view.element_handle())
    assert sorted(n["id"] for n in nodes) == ["sink", "src"]
    assert len({n["colour"] for n in nodes}) == 1  # the same change, the same colour
    assert page.dialogs == []
    page.locator(".jp-CodeCell").nth(0).screenshot(path=str(artifacts / "compare.png"))
