"""Stragglers: the rule (mean + 4σ of ≥ 10 finished splits), the detector thread on a
really sleeping split, the recorder's stage-wide statistics, and ``job.incidents()``."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pandas as pd
import pytest
from waiting import wait_until as _wait

import solstice_inspect as si
from solstice_inspect.recorder.actor import RecorderActor
from solstice_inspect.recorder.client import Telemetry
from solstice_inspect.recorder.stragglers import Detector

T0 = 1764331200.0


class Collect:
    """A transport that keeps what it receives, or fails like a recorder that is gone."""

    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[list[dict]] = []
        self.fail = fail

    def __call__(self, batch: list[dict]) -> None:
        if self.fail:
            raise ConnectionError("recorder gone")
        self.batches.append(batch)

    def of_type(self, mtype: str) -> list[dict]:
        return [e for b in self.batches for e in b if e["message_type"] == mtype]


def _job_id() -> str:
    return f"strag_{uuid.uuid4().hex[:8]}"  # the detector's statistics are per process


def _tel(sink, *, stage="enrich", worker="enrich_w0_aaaaaa", **options) -> Telemetry:
    return Telemetry(_job_id(), sink, stage_id=stage, worker_id=worker, **options)


def test_the_rule_is_mean_plus_four_sigma_of_at_least_ten_finished_splits():
    sink = Collect()
    tel = _tel(sink)
    det = tel._detector = Detector(interval=60)  # checked by hand, on a chosen clock
    # five splits of 10 s and four of 12 s: nine finished, too few to judge
    for i, seconds in enumerate([10, 10, 10, 10, 10, 12, 12, 12, 12]):
        tel.split_processed(f"enrich_s{i}", processing_time=seconds)
    tel.split_started("enrich_hung")
    start = det.running[(tel.source_id, "enrich_hung")].started
    assert det.check(start + 1000.0) == []  # 9 finished: no judgement, however long
    # the tenth (12 s): mean 11 s, population σ = 1 s, threshold 11 + 4 = 15 s
    tel.split_processed("enrich_s9", processing_time=12)
    assert det.check(start + 14.0) == []  # mean + 3σ: not a straggler
    [incident] = det.check(start + 16.0)  # mean + 5σ: one incident
    assert incident["split_id"] == "enrich_hung"
    assert incident["finished_splits"] == 10
    assert incident["mean_s"] == pytest.approx(11.0)
    assert incident["std_s"] == pytest.approx(1.0)
    assert incident["threshold_s"] == pytest.approx(15.0)
    assert incident["elapsed_s"] == pytest.approx(16.0)
    assert det.check(start + 30.0) == []  # reported once per split
    assert tel.flush(5)
    [sent] = sink.of_type("incident")
    assert sent["payload"]["incident_id"] == incident["incident_id"]
    assert sent["payload"]["worker_id"] == "enrich_w0_aaaaaa"
    assert sent["payload"]["stage_id"] == "enrich"


def test_a_split_that_ends_before_its_check_is_never_an_incident():
    tel = _tel(Collect())
    det = tel._detector = Detector(interval=60)
    for i in range(10):
        tel.split_processed(f"enrich_s{i}", processing_time=2.0)  # σ = 0: threshold 2 s
    with tel.split("enrich_quick", report=False):
        start = det.running[(tel.source_id, "enrich_quick")].started
    assert det.check(start + 100.0) == []
    assert det.running == {}


def test_the_detector_thread_catches_a_sleeping_split_with_its_stack_and_log_tail():
    sink = Collect()
    interval = 0.2
    tel = _tel(sink, detect_interval=interval)
    for i in range(10):
        with tel.split(f"enrich_s{i}", [f"filter_s{i}"]) as s:
            time.sleep(0.01)
            s.input_records = s.output_records = 5
    logger = logging.getLogger(f"udf.{tel.job_id}")
    logger.setLevel(logging.INFO)
    logger.addHandler(tel.log_handler())
    tel.log("INFO", "loading geo table v7")
    logger.warning("geo lookup slow for host %s", "db-3")
    hang_started = []

    def sleepy_geo_lookup():
        time.sleep(3.0)

    def worker():
        with tel.split("enrich_hung", ["filter_hung"]):
            hang_started.append(time.time())
            sleepy_geo_lookup()

    thread = threading.Thread(target=worker, name="udf-thread")
    thread.start()
    try:
        [env] = _wait(lambda: sink.of_type("incident"), 10, "an incident")
    finally:
        thread.join()
    p = env["payload"]
    # the ten fast splits set the floor: a 1 s threshold, seen within two intervals
    assert p["threshold_s"] == pytest.approx(1.0)
    latency = env["timestamp"] - hang_started[0]
    assert 1.0 <= latency <= 1.0 + 2 * interval + 0.3, latency
    assert "in sleepy_geo_lookup" in p["stack"]
    assert "time.sleep(3.0)" in p["stack"]
    assert 'Thread "udf-thread"' in p["stack"]
    tail = p["log_tail"].splitlines()
    assert tail[-2].endswith("INFO loading geo table v7")
    assert tail[-1].endswith("WARNING geo lookup slow for host db-3")
    # the eleven splits were reported with their measured times; the hung one ~3 s
    assert tel.flush(5)
    done = {e["payload"]["split_id"]: e["payload"] for e in sink.of_type("split_processed")}
    assert len(done) == 11
    assert 3.0 <= done["enrich_hung"]["processing_time"] < 4.0
    assert done["enrich_s0"]["output_records"] == 5


def test_nothing_escapes_into_user_code_when_the_recorder_is_gone():
    sink = Collect(fail=True)
    tel = _tel(sink, detect_interval=0.1)
    det = tel._watch()
    assert det is not None
    before = det.incidents
    for i in range(10):
        with tel.split(f"enrich_s{i}"):
            pass
    with tel.split("enrich_hung"):
        _wait(lambda: det.incidents > before, 10, "the detector to see the hang")
    # the user's own exception goes through unchanged, and the split is not reported
    with pytest.raises(KeyError, match="user bug"), tel.split("enrich_bad"):
        raise KeyError("user bug")
    assert (tel.source_id, "enrich_bad") not in det.running
    tel.flush(2)
    assert tel.stats()["dropped"] >= 12  # every envelope counted as lost, none raised


def test_stage_statistics_come_from_the_recorder_and_incidents_read_back(tmp_path):
    job_id = _job_id()
    store = si.connect(tmp_path / "store")
    actor = RecorderActor(
        store.root, job_id, {"attempt_id": "a1", "flush_interval": 0.2, "heartbeat_interval": 5}
    )
    # other workers' splits, straight to the recorder: 2, 3, 4, ... (by hand: mean 2.5,
    # σ 0.5 over five 2 s and five 3 s splits → threshold max(2.5 + 2, 1) = 4.5 s)
    other = [
        si.envelope(
            "split_processed",
            job_id,
            "enrich_w1_bbbbbb",
            T0 + i,
            {"stage_id": "enrich", "split_id": f"enrich_o{i}", "processing_time": 2.0 + i % 2},
        )
        for i in range(10)
    ]
    reply = actor.report(other)
    assert reply["split_stats"]["enrich"] == pytest.approx((10, 2.5, 0.5))
    tel = Telemetry(job_id, actor.report, stage_id="enrich", worker_id="enrich_w0_aaaaaa")
    det = tel._detector = Detector(interval=60)  # checked by hand, on a chosen clock
    tel.log("INFO", "hello")  # the first batch brings the recorder's figures back
    assert tel.flush(5)
    assert tel._stage_stats("enrich") == pytest.approx((10, 2.5, 0.5))
    tel.split_started("enrich_hung")
    start = det.running[(tel.source_id, "enrich_hung")].started
    assert det.check(start + 4.0) == []  # this process finished none: the recorder's rule
    [incident] = det.check(start + 5.0)
    assert incident["threshold_s"] == pytest.approx(4.5)
    assert tel.flush(5)
    actor.flush()
    job = store.job(job_id)
    rows = job.incidents()
    assert list(rows["split_id"]) == ["enrich_hung"]
    assert rows.loc[0, "status"] == "running"
    assert rows.loc[0, "outcome"].startswith("still running (")
    # the split ends 31.2 s after it started (reported by its worker)
    tel.split_processed("enrich_hung", processing_time=31.2)
    assert tel.flush(5)
    actor.finish("COMPLETED")
    row = store.job(job_id).incidents().iloc[0]
    assert (row["status"], row["duration_s"], row["resolved_by"]) == (
        "finished",
        31.2,
        "enrich_w0_aaaaaa",
    )
    assert row["outcome"] == "finished after 31.2 s"
    assert row["log_tail"].endswith("INFO hello")


def _incident(iid, worker, split, started, detected, elapsed):
    return si.envelope(
        "incident",
        "inc_job",
        worker,
        detected,
        {
            "kind": "straggler",
            "incident_id": iid,
            "stage_id": "enrich",
            "worker_id": worker,
            "split_id": split,
            "started_at": started,
            "elapsed_s": elapsed,
            "threshold_s": 4.0,
            "stack": f"stack of {split}",
        },
    )


def test_incidents_say_what_became_of_each_split(tmp_path):
    store = si.connect(tmp_path / "store")
    w0, w1, w2 = "enrich_w0_aaaaaa", "enrich_w1_bbbbbb", "enrich_w2_cccccc"
    with store.record("inc_job") as rec:
        assert store.job("inc_job").incidents().empty  # no table yet: an empty frame
        rec.ingest(
            [
                # s1 straggles on w0 and finishes there after 20 s
                _incident("i1", w0, "enrich_s1", T0, T0 + 5, 5.0),
                si.envelope(
                    "split_processed",
                    "inc_job",
                    w0,
                    T0 + 20,
                    {"stage_id": "enrich", "split_id": "enrich_s1", "processing_time": 20.0},
                ),
                # s2 straggles on w1, which dies; w2 redoes it, done 42 s after the start
                _incident("i2", w1, "enrich_s2", T0 + 10, T0 + 16, 6.0),
                si.envelope(
                    "worker_stopped",
                    "inc_job",
                    w1,
                    T0 + 30,
                    {"stage_id": "enrich", "reason": "failed: actor died"},
                ),
                si.envelope(
                    "split_processed",
                    "inc_job",
                    w2,
                    T0 + 52,
                    {"stage_id": "enrich", "split_id": "enrich_s2", "processing_time": 3.0},
                ),
                # s3 straggles on w2 and the job ends first; sent twice: one row
                _incident("i3", w2, "enrich_s3", T0 + 60, T0 + 65, 5.0),
                _incident("i3", w2, "enrich_s3", T0 + 60, T0 + 66, 6.0),
            ]
        )
    rows = store.job("inc_job").incidents().set_index("incident_id")
    assert list(rows.index) == ["i1", "i2", "i3"]
    assert rows.loc["i1", "status"] == "finished"
    assert rows.loc["i1", "duration_s"] == 20.0
    assert rows.loc["i1", "resolved_at"] == pd.Timestamp(T0 + 20, unit="s", tz="UTC")
    assert rows.loc["i2", "status"] == "redone"
    assert rows.loc["i2", "resolved_by"] == w2
    assert rows.loc["i2", "duration_s"] == 42.0
    assert rows.loc["i3", "status"] == "unfinished"
    assert rows.loc["i3", "outcome"] == "not finished: the job ended first"
    assert rows.loc["i3", "elapsed_s"] == 6.0  # the latest report of an incident wins
    assert rows.loc["i3", "stack"] == "stack of enrich_s3"


def test_a_detection_interval_that_would_spin_is_refused_up_front():
    with pytest.raises(ValueError, match=r"detect_interval must be > 0 seconds \(e.g. 1.0\)"):
        _tel(Collect(), detect_interval=0)
