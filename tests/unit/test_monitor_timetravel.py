"""Time travel and the Timeline tab, played from the front end: a ``travel`` message in,
the header, the stage graph and ``travel`` out — against totals worked out by hand from
the crafted stream; then "back to now". And the stage detail's lines and evidence.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from widget_jobs import LiveFeed

import solstice_inspect as si

T0 = 1_764_331_200.0
E = si.envelope


def crafted(store: si.Store, job_id: str = "j") -> si.Job:
    """a (source: a_w0, a_w1) → b (sink: b_w0). Cumulative counters, by hand:

    - a_w0 reports output 100·k at T0+k (k = 1..4), a_w1 10·k at T0+k+0.2 (k = 1, 2);
    - b_w0 reports input 90·k at T0+k+0.4, output 0 (a sink: what it wrote is its input);
    - a_w1 stops at T0+2.7; exceptions at T0+1.5 and T0+3.5; completed at T0+5.
    """
    msgs = [
        E("job_started", job_id, job_id, T0, {"dag_edges": {"a": ["b"]}}),
    ]
    for w, st in (("a_w0", "a"), ("a_w1", "a"), ("b_w0", "b")):
        msgs.append(E("worker_started", job_id, w, T0 + 0.5, {"stage_id": st}))
    for k in range(1, 5):
        msgs += [
            E("worker_metrics", job_id, "a_w0", T0 + k,
              {"stage_id": "a", "input_records": 0, "output_records": 100 * k}),
            E("worker_metrics", job_id, "b_w0", T0 + k + 0.4,
              {"stage_id": "b", "input_records": 90 * k, "output_records": 0}),
        ]  # fmt: skip
        if k <= 2:
            msgs.append(
                E(
                    "worker_metrics",
                    job_id,
                    "a_w1",
                    T0 + k + 0.2,
                    {"stage_id": "a", "input_records": 0, "output_records": 10 * k},
                )
            )
    msgs += [
        E("exception", job_id, "a_w1", T0 + 1.5, {"stage_id": "a", "worker_id": "a_w1",
          "exception_type": "ValueError", "message": "x"}),
        E("worker_stopped", job_id, "a_w1", T0 + 2.7, {"stage_id": "a", "reason": "done"}),
        E("exception", job_id, "b_w0", T0 + 3.5, {"stage_id": "b", "worker_id": "b_w0",
          "exception_type": "KeyError", "message": "y"}),
        E("job_completed", job_id, job_id, T0 + 5, {"status": "COMPLETED"}),
    ]  # fmt: skip
    with store.record(job_id) as rec:
        rec.ingest(msgs)
    return store.job(job_id)


@pytest.fixture
def monitor(tmp_path):
    m = si.job_monitor(crafted(si.connect(tmp_path / "store")))
    yield m
    m.close()


def travel(m, t):
    m.tabs._on_msg(m.tabs, {"type": "travel", "t": t}, [])


def node_labels(m) -> dict[str, str]:
    return {n.data["id"]: n.data["label"] for n in m.dag.graph.nodes}


# (t - T0, records in, records out, workers alive, exceptions), by hand from the stream.
# The recorder folds the reports of about a second into one stage window stamped with its
# last report (a: T0+k+0.2, holding a_w0's and a_w1's k-th reports; b: T0+k+0.4): the
# moments are taken between windows, where every report up to t is in a window up to t.
AS_OF = [
    (1.3, 100 + 10, 0, 3, 0),  # b started (0.5) but has not reported yet
    (2.3, 200 + 20, 90, 3, 1),
    (3.3, 300 + 20, 180, 2, 1),  # a_w1 stopped at 2.7
    (4.45, 400 + 20, 360, 2, 2),
]


@pytest.mark.parametrize(("dt", "records_in", "records_out", "workers", "exceptions"), AS_OF)
def test_header_as_of_t(monitor, dt, records_in, records_out, workers, exceptions):
    m = monitor
    final = dict(m.header.header)
    assert final["status"] == "COMPLETED"
    travel(m, T0 + dt)
    head = m.header.header
    assert head["as_of"] == T0 + dt
    assert head["status"] == "RUNNING"  # it was running then
    assert (head["records_in"], head["records_out"]) == (records_in, records_out)
    assert head["workers"] == workers
    assert head["exceptions"] == (exceptions or None)  # none yet: unknown, not 0 from the end
    assert head["elapsed_s"] == pytest.approx(dt, abs=0.1)
    states = {s["stage_id"]: s for s in m.tabs.travel["stages"]}
    assert states["a"]["records_out"] == records_in
    assert states["a"]["status"] == "RUNNING"
    assert states["b"]["records_in"] == records_out
    assert states["b"]["status"] == "RUNNING"
    assert states["b"]["workers"] == 1
    a_workers = workers - 1
    assert f"{a_workers}/" in node_labels(m)["a"].splitlines()[1]
    assert m.tabs.tabs[[t["id"] for t in m.tabs.tabs].index("timeline")]["badge"] == "as of"

    travel(m, None)  # back to now
    now = m.header.header
    assert "as_of" not in now
    for key in ("records_in", "records_out", "workers", "exceptions", "elapsed_s"):
        assert now[key] == final[key], key
    assert m.header.header["status"] == "COMPLETED"
    assert m.tabs.travel == {}


def test_after_the_end_the_final_figures(monitor):
    m = monitor
    travel(m, T0 + 60)
    head = m.header.header
    assert head["status"] == "COMPLETED"
    assert (head["records_in"], head["records_out"], head["exceptions"]) == (420, 360, 2)


def test_a_live_update_does_not_overwrite_the_past(monitor):
    m = monitor
    travel(m, T0 + 2.3)
    m.update({})  # a live poll with nothing new still re-sends the header when live
    assert m.header.header["as_of"] == T0 + 2.3
    assert m.header.header["records_in"] == 220


def test_bad_travel_time_is_shown_not_raised(monitor):
    m = monitor
    travel(m, "noon")
    assert "noon" in m.tabs.error
    assert m.header.header["status"] == "COMPLETED"  # nothing else changed


def test_timeline_state_is_bounded(tmp_path):
    store = si.connect(tmp_path / "store")
    job_id = "many"
    msgs = [E("job_started", job_id, job_id, T0, {"dag_edges": {"a": ["b"]}})]
    for i in range(1500):
        st = "a" if i % 2 else "b"
        msgs.append(E("worker_started", job_id, f"{st}_w{i}_abcdef", T0 + i * 0.01,
                      {"stage_id": st}))  # fmt: skip
        msgs.append(E("worker_stopped", job_id, f"{st}_w{i}_abcdef", T0 + 20 + i * 0.01,
                      {"stage_id": st, "reason": "done"}))  # fmt: skip
    msgs.append(E("job_completed", job_id, job_id, T0 + 40, {"status": "COMPLETED"}))
    with store.record(job_id) as rec:
        rec.ingest(msgs)
    m = si.job_monitor(store.job(job_id))
    try:
        m.tabs.selected = "timeline"
        tl = m.tabs.timeline
        assert tl["total_workers"] == 1500
        assert len(tl["spans"]["lane"]) == 200
        assert len(json.dumps(tl)) < 1_000_000
        assert tl["t0"] == T0
        assert min(tl["spans"]["s"]) >= 0
        travel(m, T0 + 10)
        # started at T0 + i/100 (i ≤ 1000 by T0+10), none stopped before T0+20
        assert m.header.header["workers"] == 1001
        states = {s["stage_id"]: s["workers"] for s in m.tabs.travel["stages"]}
        assert states == {"a": 500, "b": 501}
        assert len(json.dumps(m.tabs.travel)) < 1_000_000
    finally:
        m.close()


def test_stage_detail_lines_and_evidence(tmp_path):
    """A stage whose partition 2 lags 5x the others, backpressured from T0+3 on."""
    store = si.connect(tmp_path / "store")
    job_id = "bp"
    msgs = [E("job_started", job_id, job_id, T0, {"dag_edges": {"read": ["map"]}})]
    for k in range(10):
        on = k >= 3
        msgs.append(E("stage_metrics", job_id, "map", T0 + k, {
            "worker_count": 2, "input_records": 100 * k, "output_records": 90 * k,
            "queue_lag": 1000 * k, "backpressure_active": on,
            "partition_metrics": {str(p): {"latest_offset": 50 * k, "committed_offset": 0,
                                           "lag": (500 if p == 2 else 100) * k}
                                  for p in range(4)},
        }))  # fmt: skip
    with store.record(job_id) as rec:
        rec.ingest(msgs)
    m = si.job_monitor(store.job(job_id))
    try:
        m.select_stage("map")
        facts = {f[0]: f[1] for f in m.tabs.stage["facts"]}
        assert facts["input queue"] == "read → map"
        assert facts["input queue lag peak"] == 9000
        assert facts["first backpressured"] == pytest.approx(T0 + 3)
        assert facts["backpressured since"] == pytest.approx(T0 + 3)
        assert facts["flagged partitions (lag > 2x mean)"].startswith("1 of 4: 2 ")
        series = m.tabs.stage_series
        lines = series["lag"]
        assert lines[0]["partition"] == "2"
        assert lines[0]["flagged"]
        assert [f["flagged"] for f in lines[1:]] == [False, False, False]
        # partition 2's lag over time, by hand: 500·k at T0+k (seconds since the first window)
        assert lines[0]["points"] == [[float(k), 500.0 * k] for k in range(10)]
        assert series["backpressure"]["active"] == [[float(k), float(k >= 3)] for k in range(10)]
        assert series["backpressure"]["queue_lag"][-1] == [9.0, 9000.0]
        assert len(json.dumps(m.tabs.stage_series)) < 1_000_000
    finally:
        m.close()


def test_a_running_job_travels_and_queries_the_same(tmp_path):
    """While the job runs: travel, new rows arrive (the header stays in the past), back
    to now (the header catches up); the Splits tab re-runs its query on new splits."""
    store = si.connect(tmp_path / "store")
    feed = LiveFeed(store, "live", duration_s=60, xss=False)
    t0 = feed.msgs[0]["timestamp"]
    feed.feed_until(10)
    m = si.job_monitor(store.job("live"), refresh=0.1)
    try:
        m.live.stop()  # the updates are driven by hand
        assert m.header.header["status"] == "RUNNING"
        m.tabs.selected = "splits"
        first = m.tabs.splits["rows"]
        lineage = store.job("live").table("lineage", columns=["split_id"]).num_rows
        assert first >= lineage > 0  # every processed split (+ failures, if any)

        travel(m, t0 + 5)
        past = dict(m.header.header)
        sm = store.job("live").table("stage_metrics").to_pandas()
        upto = sm[sm["ts"] <= pd.Timestamp(t0 + 5, unit="s", tz="UTC")]
        source = upto[upto["stage_id"] == "source"].sort_values("ts")
        assert past["records_in"] == source["output_records"].iloc[-1]  # by the rows
        assert past["status"] == "RUNNING"

        feed.feed_until(10)  # ten more simulated seconds
        m._deep_read.clear()  # the re-read is due
        m.update(m.live.poll())
        assert m.header.header["as_of"] == t0 + 5
        assert m.header.header["records_in"] == past["records_in"]
        assert m.tabs.splits["rows"] > first  # the query ran again on the new splits

        travel(m, None)
        assert m.header.header["records_in"] > past["records_in"]
        assert "as_of" not in m.header.header
    finally:
        m.close()
        feed.stop()
