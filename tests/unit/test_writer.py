"""How the recorder writes: few appends, bounded fragments, safe for concurrent readers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import lance

from solstice_inspect.recorder.session import Recording
from solstice_inspect.store import layout
from tests.conftest import T0, metrics, started


def versions(store, job, table):
    uri = layout.table_uri(store.root, job.job_id, job.attempt_id, table)
    return lance.dataset(uri).version


def test_only_tables_with_new_rows_are_appended(store, msg):
    rec = store.record("j1", flush_interval=3600)
    rec.ingest([started(msg), metrics(msg, "src_w0_aaaaaa", "src", T0 + 1, 10)])
    rec.flush()
    job = rec.job()
    events_v = versions(store, job, "events")
    wm_v = versions(store, job, "worker_metrics")
    rec.ingest(metrics(msg, "src_w0_aaaaaa", "src", T0 + 2, 20))
    rec.flush()
    assert versions(store, job, "worker_metrics") == wm_v + 1
    assert versions(store, job, "events") == events_v  # nothing new: no append
    rec.finish("COMPLETED")


def test_appends_happen_at_most_once_per_flush_interval(store, msg):
    rec = store.record("j1", flush_interval=0.5)
    rec.ingest(started(msg))
    t_end = time.monotonic() + 2.0
    i = 0
    while time.monotonic() < t_end:  # a steady trickle: 200 reports a second
        i += 1
        rec.ingest(metrics(msg, "src_w0_aaaaaa", "src", T0 + i * 0.005, i))
        time.sleep(0.005)
    rec.finish("COMPLETED")
    job = store.job("j1")
    assert len(job.worker_metrics()) == i
    # 2 s at 0.5 s: at most ~5 appends (+1 for the final flush), not one per report
    assert job.worker_metrics()["batch"].nunique() <= 6
    assert rec.flushes <= 8


def test_compaction_bounds_the_number_of_fragments(store, msg):
    rec = store.record("j1", flush_interval=3600, compact_every=20)
    rec.ingest(started(msg))
    for i in range(1, 101):  # a long job in miniature: 100 flushes
        rec.ingest(metrics(msg, "src_w0_aaaaaa", "src", T0 + i, i * 10))
        rec.flush()
    job = rec.job()
    uri = layout.table_uri(store.root, job.job_id, job.attempt_id, "worker_metrics")
    # compaction runs on its own thread, beside the appends: wait (with a deadline) for
    # the one due at the 100th append; every 20 appends were merged, none left behind
    writer = rec._writers["worker_metrics"]
    deadline = time.monotonic() + 60
    while writer.compactions < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.compactions == 5
    assert len(lance.dataset(uri).get_fragments()) == 1
    rec.finish("COMPLETED")
    assert len(lance.dataset(uri).get_fragments()) == 1
    assert store.job("j1").worker_metrics()["output_records"].tolist() == [
        i * 10 for i in range(1, 101)
    ]
    # cleanup keeps a grace period: recent versions are still there for old readers
    assert len(lance.dataset(uri).versions()) > 1


READER = textwrap.dedent("""
    import sys, time, lance
    uri, seconds = sys.argv[1], float(sys.argv[2])
    end, polls, errors, bad = time.time() + seconds, 0, 0, 0
    while time.time() < end:
        try:
            t = lance.dataset(uri).to_table(columns=["batch", "worker_id"])
            counts = {}
            for b in t.column("batch").to_pylist():
                counts[b] = counts.get(b, 0) + 1
            bad += sum(1 for n in counts.values() if n != 200)
            polls += 1
        except Exception as exc:  # any error is a failure of the writer's guarantees
            errors += 1
            print("ERROR", repr(exc), file=sys.stderr)
        time.sleep(0.01)
    print(polls, errors, bad)
""")


def test_a_reader_in_another_process_never_errors_nor_sees_half_a_batch(store, msg, tmp_path):
    rec = store.record("j1", flush_interval=3600, compact_every=5)
    rec.ingest(started(msg))
    rec.ingest([metrics(msg, f"src_w{w}_aaaaaa", "src", T0, 1) for w in range(200)])
    rec.flush()
    job = rec.job()
    uri = layout.table_uri(store.root, job.job_id, job.attempt_id, "worker_metrics")
    script = tmp_path / "reader.py"
    script.write_text(READER)
    reader = subprocess.Popen(
        [sys.executable, str(script), uri, "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 5
    k = 1
    while time.monotonic() < deadline:  # each flush is one batch of exactly 200 rows
        k += 1
        rec.ingest([metrics(msg, f"src_w{w}_aaaaaa", "src", T0 + k, k) for w in range(200)])
        rec.flush()  # compacts every 5 appends, cleans versions past the grace period
    out, err = reader.communicate(timeout=60)
    rec.finish("COMPLETED")
    polls, errors, bad = map(int, out.split())
    assert errors == 0, err
    assert bad == 0
    assert polls > 20
    assert k > 10


def test_compaction_runs_beside_the_flushes_not_inside_them(store, msg, monkeypatch):
    from solstice_inspect.store.dataset import DatasetWriter

    ran_in: list[str] = []
    real = DatasetWriter.compact

    def compact(self):
        ran_in.append(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(DatasetWriter, "compact", compact)
    rec = store.record("j1", compact_every=3, flush_interval=60)
    for i in range(9):
        rec.ingest(metrics(msg, "mid_w0_aaaaaa", "mid", T0 + i, 10 * (i + 1)))
        rec.flush()
    deadline = time.monotonic() + 10
    while not ran_in and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ran_in, "a compaction ran"
    assert all(name.startswith("solstice-compactor") for name in ran_in), ran_in
    rec.finish("COMPLETED")
    wm = store.job("j1").table("worker_metrics", columns=["output_records"])
    assert sorted(wm.column("output_records").to_pylist()) == [10 * (i + 1) for i in range(9)]


def test_an_ended_attempt_indexes_worker_id_and_a_resumed_one_still_finds_new_rows(store, msg):
    rec = store.record("j1")
    rec.ingest(
        [started(msg), *[metrics(msg, f"src_w{i}_aaaaaa", "src", T0 + i, i) for i in range(5)]]
    )
    rec.finish("COMPLETED")
    job = store.job("j1")
    uri = layout.table_uri(store.root, job.job_id, job.attempt_id, "worker_metrics")
    indices = lance.dataset(uri).describe_indices()
    assert [(i.field_names, i.type_url.rsplit(".", 1)[-1]) for i in indices] == [
        (["worker_id"], "BTreeIndexDetails")
    ]
    # rows the index does not cover (appended later) are found too
    more = Recording(store, "j1", attempt_id=job.attempt_id, resume=True)
    more.ingest([metrics(msg, "src_w2_aaaaaa", "src", T0 + 9, 99)])
    more.flush()
    rows = store.job("j1").table("worker_metrics", where="worker_id = 'src_w2_aaaaaa'")
    assert sorted(rows.column("output_records").to_pylist()) == [2, 99]
    more.finish("COMPLETED")
