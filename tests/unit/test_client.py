"""The telemetry client without Ray: a plain ``send(batch)`` function as the transport."""

from __future__ import annotations

import pickle
import threading
import time

import solstice_inspect as si
from solstice_inspect.recorder.client import Telemetry

JOB = "client_001"


class Collect:
    """A transport that keeps what it receives, optionally failing or stalling."""

    def __init__(self, *, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.batches: list[list[dict]] = []
        self.fail = fail
        self.gate = gate

    def __call__(self, batch: list[dict]) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise ConnectionError("recorder unreachable")
        self.batches.append(batch)

    @property
    def envelopes(self) -> list[dict]:
        return [e for b in self.batches for e in b]


def test_metrics_are_coalesced_to_two_per_second_latest_wins():
    sink = Collect()
    tel = Telemetry(JOB, sink, stage_id="parse", worker_id="parse_w0_aaaaaa")
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 2.0:
        n += 1
        tel.metrics(input_records=n, output_records=n, processed_count=n)
        time.sleep(0.001)
    assert tel.flush(timeout=5)
    reports = [e for e in sink.envelopes if e["message_type"] == "worker_metrics"]
    assert n > 500  # the caller was never slowed down
    assert 2 <= len(reports) <= 6  # ≤ 2/s over 2 s, plus the final flush
    assert reports[-1]["payload"]["output_records"] == n
    values = [r["payload"]["output_records"] for r in reports]
    assert values == sorted(values)
    assert tel.stats()["coalesced"] >= n - len(reports)


def test_sequence_is_per_producer_and_increasing():
    sink = Collect()
    a = Telemetry(JOB, sink, stage_id="parse", worker_id="parse_w0_aaaaaa")
    b = Telemetry(JOB, sink, stage_id="parse", worker_id="parse_w1_bbbbbb")
    for i in range(5):
        a.log("INFO", f"a{i}")
        b.log("INFO", f"b{i}")
    assert a.flush(timeout=5)
    by_source: dict[str, list[int]] = {}
    for e in sink.envelopes:
        by_source.setdefault(e["source_id"], []).append(e["sequence"])
    assert by_source == {"parse_w0_aaaaaa": [0, 1, 2, 3, 4], "parse_w1_bbbbbb": [0, 1, 2, 3, 4]}


def test_stage_level_reports_carry_no_sequence():
    # a stage id may report from several processes: numbering it would make the
    # recorder drop one process's reports as duplicates of the other's
    sink = Collect()
    stage = Telemetry(JOB, sink, stage_id="enrich")
    stage.stage_metrics(worker_count=2, queue_lag=7)
    stage.event("rescale", description="enrich: 2 -> 3 workers")
    assert stage.flush(timeout=5)
    got = sorted((e["message_type"], e["source_id"], e["sequence"]) for e in sink.envelopes)
    assert got == [("event", "enrich", None), ("stage_metrics", "enrich", None)]


def test_full_buffer_drops_counts_and_reports_the_drops():
    gate = threading.Event()
    sink = Collect(gate=gate)
    tel = Telemetry(JOB, sink, stage_id="parse", worker_id="parse_w0_aaaaaa", max_buffer=50)
    started = time.monotonic()
    for i in range(500):
        tel.log("INFO", f"line {i}")
    assert time.monotonic() - started < 1.0  # never blocked on the stalled transport
    gate.set()
    assert tel.flush(timeout=5)
    tel.log("INFO", "after")  # the next batch carries the drop report
    assert tel.flush(timeout=5)
    stats = tel.stats()
    logs = [e for e in sink.envelopes if e["message_type"] == "log"]
    assert stats["dropped"] == 500 - len(logs) + 1
    assert stats["dropped"] >= 400
    reports = [e for e in sink.envelopes if e["message_type"] == "event"]
    assert sum(r["payload"]["metadata"]["dropped"] for r in reports) == stats["dropped"]
    assert reports[0]["payload"]["event_type"] == "telemetry_dropped"


def test_failing_transport_never_raises_and_counts_lost_batches():
    sink = Collect(fail=True)
    tel = Telemetry(JOB, sink, stage_id="parse", worker_id="parse_w0_aaaaaa")

    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    tel.started()
    tel.exception(Hostile())
    tel.split_processed("parse_source_split_0", ["source_split_0"], input_records=1)
    tel.stopped("completed")
    assert tel.flush(timeout=5)
    assert tel.stats()["dropped"] >= 3
    assert tel.stats()["dropped_by_type"]["send_failed"] >= 3


RECEIVED: list[dict] = []


def module_sink(batch: list[dict]) -> None:
    RECEIVED.extend(batch)


def test_telemetry_pickles_without_its_sender():
    tel = Telemetry(JOB, module_sink, stage_id="parse", worker_id="parse_w0_aaaaaa")
    tel.log("INFO", "before pickling")  # creates this process's sender thread
    copy = pickle.loads(pickle.dumps(tel))
    copy.log("INFO", "from the copy")
    assert copy.flush(timeout=5)
    messages = [e["payload"]["message"] for e in RECEIVED]
    assert messages == ["before pickling", "from the copy"]


def test_telemetry_reaches_a_real_recording(tmp_path):
    store = si.connect(tmp_path)
    rec = store.record(JOB, dag_edges={"source": ["parse"]}, flush_interval=0.1)
    tel = Telemetry(JOB, rec.ingest, stage_id="parse", worker_id="parse_w0_aaaaaa")
    tel.started(assigned_partitions=[0, 1])
    try:
        raise ValueError("bad json in record 17")
    except ValueError as exc:
        tel.exception(exc, split_id="parse_source_split_3")
    tel.split_processed(
        "parse_source_split_3",
        ["source_split_3"],
        input_records=8,
        output_records=7,
        processing_time=0.01,
    )
    tel.metrics(input_records=8, output_records=7, processed_count=1)
    tel.resources()
    tel.stopped("completed", processed_count=1, error_count=1)
    assert tel.flush(timeout=5)
    rec.finish("COMPLETED")
    job = store.job(JOB)
    exc = job.exceptions().iloc[0]
    assert (exc.exception_type, exc.worker_id, exc.split_id) == (
        "ValueError",
        "parse_w0_aaaaaa",
        "parse_source_split_3",
    )
    assert "raise ValueError" in exc.stacktrace
    assert list(job.lineage()["parent_split_ids"].iloc[0]) == ["source_split_3"]
    assert list(job.workers()["event"]) == ["STARTED", "STOPPED"]
    assert job.worker_metrics()["output_records"].iloc[-1] == 7
    res = job.worker_resources().iloc[0]
    assert res.memory_mb > 10
    assert job.info["status"] == "COMPLETED"
