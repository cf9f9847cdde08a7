"""The timeline's rows and chart, on a crafted stream with answers worked out by hand."""

from __future__ import annotations

import pandas as pd

import solstice_inspect as si
from solstice_inspect.analysis.timeline import backpressure_spans, marks, worker_spans
from tests.conftest import T0, started


def _t(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + seconds, unit="s", tz="UTC")


def _job(store, msg, *, finish=True):
    msgs = [
        started(msg),
        msg("worker_started", "mid_w0_aaaaaa", T0 + 1, {"stage_id": "mid"}),
        msg("worker_started", "mid_w1_bbbbbb", T0 + 2, {"stage_id": "mid"}),
        msg("worker_started", "src_w0_cccccc", T0 + 1, {"stage_id": "src"}),
        msg("backpressure", "mid", T0 + 3, {"active": True, "queue_lag": 6000}),
        msg(
            "worker_stopped",
            "mid_w0_aaaaaa",
            T0 + 4,
            {"stage_id": "mid", "reason": "failed: <b>oom</b>"},
        ),
        msg("backpressure", "mid", T0 + 6, {"active": False, "queue_lag": 10}),
        msg(
            "checkpoint",
            "src",
            T0 + 7,
            {"checkpoint_id": "chk_1", "status": "COMPLETED", "completion_time": T0 + 7},
        ),
        msg("backpressure", "mid", T0 + 8, {"active": True, "queue_lag": 9000}),
        msg("worker_stopped", "src_w0_cccccc", T0 + 9, {"stage_id": "src", "reason": "done"}),
        # a worker that only ever reported (no lifecycle message)
        msg("worker_metrics", "sink_w0_dddddd", T0 + 5, {"stage_id": "sink"}),
    ]
    if finish:
        msgs.append(msg("job_completed", "j1", T0 + 10, {"status": "COMPLETED"}))
    with store.record("j1") as rec:
        rec.ingest(msgs)
    return store.job("j1")


def test_worker_spans_marks_and_backpressure_by_hand(store, msg):
    job = _job(store, msg)
    end = _t(10)
    spans = worker_spans(job.workers(), job.worker_metrics(), end=end, running=False)
    got = {r.worker_id: (r.stage_id, r.start, r.end, r.ended) for r in spans.itertuples()}
    assert got == {
        "mid_w0_aaaaaa": ("mid", _t(1), _t(4), "FAILED"),
        "mid_w1_bbbbbb": ("mid", _t(2), end, "LOST"),  # never stopped, job over
        "src_w0_cccccc": ("src", _t(1), _t(9), "STOPPED"),
        "sink_w0_dddddd": ("sink", _t(5), end, "LOST"),
    }
    running = worker_spans(job.workers(), None, end=end, running=True)
    assert set(running[running["worker_id"] == "mid_w1_bbbbbb"]["ended"]) == {"RUNNING"}

    bp = backpressure_spans(job.events(), end=end)
    assert [(r.stage_id, r.start, r.end) for r in bp.itertuples()] == [
        ("mid", _t(3), _t(6)),
        ("mid", _t(8), end),  # still on at the end
    ]
    m = marks(job.workers(), job.events(), job.checkpoints())
    assert [(r.kind, r.ts) for r in m.itertuples()] == [
        ("failure", _t(4)),
        ("checkpoint", _t(7)),
    ]
    assert m["label"].iloc[0] == "failed: failed: <b>oom</b>"


def test_timeline_chart_draws_every_layer(store, msg):
    job = _job(store, msg)
    spec = si.charts.timeline(job).to_dict()
    layers = spec["layer"]
    marks_ = [layer["mark"]["type"] for layer in layers]
    assert marks_ == ["bar", "bar", "point", "rule"]
    lanes = layers[0]["encoding"]["y"]["sort"]
    # stages in pipeline order, each stage's backpressure lane above its workers
    assert lanes == [
        "src · src_w0_cccccc",
        "mid · backpressure",
        "mid · mid_w0_aaaaaa",
        "mid · mid_w1_bbbbbb",
        "sink · sink_w0_dddddd",
    ]
    bars = spec["datasets"][layers[0]["data"]["name"]]
    assert {b["worker_id"]: b["ended"] for b in bars}["mid_w0_aaaaaa"] == "FAILED"


def test_timeline_keeps_failed_workers_when_capped(store, msg):
    job = _job(store, msg)
    spec = si.charts.timeline(job, max_workers=1).to_dict()
    bars = spec["datasets"][spec["layer"][0]["data"]["name"]]
    assert [b["worker_id"] for b in bars] == ["mid_w0_aaaaaa"]  # failed beats lost, longer
    spec = si.charts.timeline(job, max_workers=2).to_dict()
    bars = spec["datasets"][spec["layer"][0]["data"]["name"]]
    # then the longest lost one (8 s) before the shorter (5 s)
    assert sorted(b["worker_id"] for b in bars) == ["mid_w0_aaaaaa", "mid_w1_bbbbbb"]
    assert "2 of 4 workers" in spec["title"]
