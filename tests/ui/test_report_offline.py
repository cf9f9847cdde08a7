"""A saved report opened in headless Chromium with every non-file request refused: nothing
is even attempted, the charts and timeline are drawn, hostile text stays text."""

from __future__ import annotations

import solstice_inspect as si

HOSTILE = "<img src=x onerror=alert(1)>"
T0 = 1_764_331_200.0


def _job(store):
    seq = iter(range(1000))

    def env(mtype, source, ts, payload):
        return si.envelope(mtype, "offline", source, ts, payload, next(seq))

    msgs = [env("job_started", "offline", T0, {"dag_edges": {"src": ["sink"]}})]
    for k in range(1, 30):
        for stage in ("src", "sink"):
            msgs.append(
                env(
                    "stage_metrics",
                    stage,
                    T0 + k,
                    {"worker_count": 1, "output_records": 100 * k, "queue_lag": k * 7},
                )
            )
    msgs += [
        env("worker_started", "src_w0_aaaaaa", T0 + 1, {"stage_id": "src"}),
        env("worker_started", "sink_w0_bbbbbb", T0 + 1, {"stage_id": "sink"}),
        env(
            "exception",
            "sink_w0_bbbbbb",
            T0 + 5,
            {"stage_id": "sink", "exception_type": "ValueError", "message": HOSTILE},
        ),
        env(
            "worker_stopped",
            "sink_w0_bbbbbb",
            T0 + 9,
            {"stage_id": "sink", "reason": f"failed: {HOSTILE}"},
        ),
        env("job_completed", "offline", T0 + 30, {"status": "COMPLETED"}),
    ]
    with si.connect(store).record("offline", config={"note": HOSTILE}) as rec:
        rec.ingest(msgs)
    return si.connect(store).job("offline")


def test_a_saved_report_opens_offline(tmp_path, page, artifacts):
    path = si.report(_job(tmp_path / "store")).save(tmp_path / "report.html")
    attempted: list[str] = []
    page.on("request", lambda r: attempted.append(r.url))
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort(),
    )
    page.goto(path.as_uri())
    page.wait_for_selector("h2:text('Configuration')")
    assert [u for u in attempted if not u.startswith("file:")] == []
    # the stage charts and the timeline are drawn: SVG marks present
    assert page.locator("svg.si-chart-svg polyline.mark-line").count() >= 4  # 2 stages x 2
    assert page.locator("svg.si-timeline-svg rect.mark-bar").count() == 2
    # hostile text is shown as text; no element or dialog came from it
    text = page.locator("body").text_content() or ""
    assert HOSTILE in text
    assert page.locator("img").count() == 0
    assert page.dialogs == []
    page.screenshot(path=str(artifacts / "report_offline.png"), full_page=True)
