"""A store that cannot be written for a while (a full disk): the job keeps running, the
error is logged once, the rows wait in memory and are all written when space returns."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time

import solstice_inspect as si

T0 = 1_764_331_200.0


@contextlib.contextmanager
def small_disk(path):
    """A 1 MiB tmpfs at ``path``; ``grow()`` gives it room again (root, like CI, can
    mount here)."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], check=True)

    def grow():
        subprocess.run(["mount", "-o", "remount,size=256m", str(path)], check=True)

    try:
        yield grow
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _reports(i, job_id="full"):
    wid = f"w{i % 20}"
    payload = {"stage_id": "s", "input_records": i, "output_records": i, "processed_count": i,
               "processing_time": i * 0.5}  # fmt: skip
    text = "x" * 2000  # fills the disk fast
    log = {"stage_id": "s", "worker_id": wid, "message": f"{i} {text}"}
    return [
        si.envelope("worker_metrics", job_id, wid, T0 + i, payload, i),
        si.envelope("log", job_id, wid, T0 + i, log, i + 1_000_000),
    ]


def test_a_full_disk_delays_rows_and_loses_none(tmp_path, caplog):
    with small_disk(tmp_path / "disk") as grow:
        store = si.connect(tmp_path / "disk" / "store")
        rec = store.record("full", flush_interval=0.05, heartbeat_interval=0.2)
        sent = 0
        with caplog.at_level(logging.ERROR, logger="solstice_inspect"):
            for i in range(400):  # ~800 KB of logs a flush after another: the disk fills
                counts = rec.ingest(_reports(i))
                assert counts["accepted"] == 2, "ingest goes on"
                sent += 1
                rec.flush()
                if rec.stats["rows_waiting"]:
                    break
            assert rec.stats["rows_waiting"] > 0, "the disk filled up"
            for i in range(sent, sent + 50):  # the job keeps running on a full disk
                rec.ingest(_reports(i))
                rec.flush()
            sent += 50
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "cannot write" in errors[0].getMessage()
        assert rec.stats["write_errors"] > 1
        grow()  # space returns
        deadline = time.monotonic() + 30
        while rec.stats["rows_waiting"] and time.monotonic() < deadline:
            rec.flush()
            time.sleep(0.05)
        assert rec.stats["rows_waiting"] == 0
        assert rec.stats["rows_dropped"] == 0
        rec.finish("COMPLETED")
        job = store.job("full")
        assert job.status == "COMPLETED"
        wm = job.table("worker_metrics", columns=["input_records"])
        assert sorted(wm.column("input_records").to_pylist()) == list(range(sent))
        assert job.table("logs", columns=["ts"]).num_rows == sent
        batches = job.table("worker_metrics", columns=["batch"]).column("batch").to_pylist()
        assert len(batches) == sent


def test_an_unwritable_store_never_raises_into_the_job(tmp_path, monkeypatch):
    """The same path without a real disk: every append fails, nothing escapes ingest."""
    store = si.connect(tmp_path / "store")
    rec = store.record("ro", flush_interval=0.05)

    def refuse(self, table):
        raise OSError(30, "Read-only file system")

    from solstice_inspect.store.dataset import DatasetWriter

    monkeypatch.setattr(DatasetWriter, "append", refuse)
    for i in range(20):
        assert rec.ingest(_reports(i, "ro"))["accepted"] == 2
    rec.flush()
    assert rec.stats["rows_waiting"] > 0
    monkeypatch.undo()
    rec.finish("COMPLETED")
    assert store.job("ro").table("worker_metrics").num_rows == 20
    assert rec.stats["rows_waiting"] == 0
