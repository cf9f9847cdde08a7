"""LiveJob against a real Recording on tmp_path: same process and a second process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import solstice_inspect as si
from solstice_inspect.protocol import envelope

JOB = "live_001"


def _metrics(worker: str, n: int, seq: int) -> dict:
    return envelope(
        "worker_metrics",
        JOB,
        worker,
        time.time(),
        {"stage_id": "parse", "input_records": n, "output_records": n, "processed_count": n},
        sequence=seq,
    )


def test_poll_returns_only_new_rows_then_done(tmp_path):
    store = si.connect(tmp_path)
    rec = store.record(JOB, dag_edges={"read": ["parse"]}, flush_interval=0.1)
    live = si.LiveJob(JOB, store=store)
    assert live.poll().get("worker_metrics") is None
    rec.ingest(_metrics("parse_w0_aaaaaa", 10, 1))
    rec.flush()
    first = live.poll()
    assert first["worker_metrics"].column("output_records").to_pylist() == [10]
    assert live.poll() == {}  # nothing new: nothing handed out twice
    rec.ingest([_metrics("parse_w0_aaaaaa", 25, 2), _metrics("parse_w1_bbbbbb", 5, 1)])
    rec.flush()
    second = live.poll()
    assert sorted(second["worker_metrics"].column("output_records").to_pylist()) == [5, 25]
    assert not live.done
    assert live.status == "RUNNING"
    rec.finish("COMPLETED")
    last = live.poll()
    assert live.done
    assert live.status == "COMPLETED"
    assert "job" in last  # the final status row arrives in the last poll


def test_cursor_is_per_attempt(tmp_path):
    store = si.connect(tmp_path)
    with store.record(JOB) as rec:
        rec.ingest(_metrics("parse_w0_aaaaaa", 10, 1))
    first = si.LiveJob(JOB, store=store)
    with store.record(JOB) as rec:
        rec.ingest(_metrics("parse_w0_cccccc", 7, 1))
    second = si.LiveJob(JOB, store=store)
    assert second.job.attempt_id != first.job.attempt_id
    assert first.poll()["worker_metrics"].column("output_records").to_pylist() == [10]
    assert second.poll()["worker_metrics"].column("output_records").to_pylist() == [7]


def test_background_thread_feeds_subscribers_and_stops_at_the_end(tmp_path):
    store = si.connect(tmp_path)
    rec = store.record(JOB, flush_interval=0.1)
    seen: list[int] = []
    bad_calls = []

    def bad(rows):
        bad_calls.append(1)
        raise RuntimeError("view bug")

    live = si.attach(JOB, store=store, refresh=0.1, tables=["worker_metrics", "job"], follow=False)

    def good(rows):
        if "worker_metrics" in rows:
            seen.extend(rows["worker_metrics"].column("output_records").to_pylist())

    live.subscribe(good)
    live.subscribe(bad)
    for i in range(1, 6):
        rec.ingest(_metrics("parse_w0_aaaaaa", i * 10, i))
        time.sleep(0.25)
    rec.finish("COMPLETED")
    assert live.wait(timeout=10)
    assert not live.running
    assert seen == [10, 20, 30, 40, 50]
    assert live.callback_errors == len(bad_calls) >= 2


def test_unsubscribe_and_unknown_table(tmp_path):
    store = si.connect(tmp_path)
    rec = store.record(JOB)
    with pytest.raises(ValueError, match="tables: job"):
        si.LiveJob(JOB, store=store, tables=["nope"])
    live = si.LiveJob(JOB, store=store, refresh=0.05)
    calls = []
    unsubscribe = live.subscribe(calls.append)
    unsubscribe()
    live.start()
    rec.finish("COMPLETED")
    assert live.wait(timeout=10)
    assert calls == []


def test_lost_attempt_ends_the_live_view(tmp_path):
    store = si.connect(tmp_path)
    rec = store.record(JOB, heartbeat_interval=0.2, flush_interval=0.1)
    rec.ingest(_metrics("parse_w0_aaaaaa", 3, 1))
    rec.close()  # no final status: the attempt goes LOST once its heartbeat is stale
    live = si.attach(JOB, store=store, refresh=0.1)
    assert live.wait(timeout=10)
    assert live.status == "LOST"


def test_second_process_sees_rows_while_running(tmp_path):
    store = si.connect(tmp_path)
    rec = store.record(JOB, flush_interval=0.1)
    rec.ingest(_metrics("parse_w0_aaaaaa", 1, 1))
    rec.flush()
    script = textwrap.dedent(
        f"""
        import json, sys, time
        import solstice_inspect as si
        assert "ray" not in sys.modules
        live = si.attach({JOB!r}, store={str(tmp_path)!r}, refresh=0.1)
        seen = []
        live.subscribe(lambda rows: seen.append(
            [time.time(), rows["worker_metrics"].column("output_records").to_pylist()]
            if "worker_metrics" in rows else [time.time(), []]))
        live.wait(timeout=60)
        print(json.dumps({{"done": live.done, "status": live.status, "seen": seen,
                          "ray": "ray" in sys.modules}}))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    done_writing = threading.Event()
    try:
        time.sleep(3)  # the reader is up and polling
        for i in range(2, 6):
            rec.ingest(_metrics("parse_w0_aaaaaa", i, i))
            time.sleep(0.4)
        finished_at = time.time()
        rec.finish("COMPLETED")
        done_writing.set()
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["done"]
    assert result["status"] == "COMPLETED"
    assert not result["ray"]
    values = [v for _, vs in result["seen"] for v in vs]
    assert values == [1, 2, 3, 4, 5]
    # rows were seen while the job ran, not only after it finished
    assert any(t < finished_at and vs for t, vs in result["seen"])


def test_attach_waits_for_the_first_attempt_then_follows_the_next(tmp_path):
    store = si.connect(tmp_path)
    with pytest.raises(si.JobNotFound, match=JOB):
        si.attach(JOB, store=store, wait=0.3)
    recs: list = []

    def start_later():
        time.sleep(0.5)
        recs.append(store.record(JOB, flush_interval=0.1))
        recs[0].ingest(_metrics("parse_w0_aaaaaa", 10, 1))

    threading.Thread(target=start_later, daemon=True).start()
    started = time.monotonic()
    live = si.attach(JOB, store=store, refresh=0.1, wait=20)
    seen: list[tuple[str, int]] = []

    def collect(rows):
        if "worker_metrics" in rows:
            values = rows["worker_metrics"].column("output_records").to_pylist()
            seen.extend((live.job.attempt_id, v) for v in values)

    live.subscribe(collect)
    try:
        assert time.monotonic() - started >= 0.4, "it waited for the attempt to appear"
        first = live.job.attempt_id
        assert first == recs[0].attempt_id
        recs[0].finish("COMPLETED")
        assert live.wait(timeout=10)
        assert live.running, "still watching for a newer attempt"
        second = store.record(JOB, flush_interval=0.1)
        second.ingest(_metrics("parse_w0_bbbbbb", 77, 1))
        second.flush()
        deadline = time.monotonic() + 15
        while (second.attempt_id, 77) not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (first, 10) in seen
        assert (second.attempt_id, 77) in seen, seen
        assert live.job.attempt_id == second.attempt_id
        assert live.attempt_changes == 1
        assert not live.done
        second.finish("COMPLETED")
    finally:
        live.stop()
    assert not live.running
