"""Old versions are really deleted while readers poll through compactions and cleanups
(DESIGN §4: compact periodically, never delete a version a reader may still hold)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

import solstice_inspect as si
from solstice_inspect.schema import SCHEMAS
from solstice_inspect.store import layout
from solstice_inspect.store.dataset import DatasetWriter

READS = 10_000


def _rows(job, i: int) -> pa.Table:
    schema = SCHEMAS["worker_metrics"]
    cols = {"job_id": [job.job_id], "attempt_id": [job.attempt_id],
            "ts": pa.array([int((1e9 + i) * 1e6)], pa.int64()).cast(schema.field("ts").type),
            "worker_id": [f"w{i % 7}"], "stage_id": ["s"], "input_records": [i],
            "output_records": [i], "batch": [i]}  # fmt: skip
    return pa.table(
        [pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(1, f.type)
         for f in schema],
        schema=schema,
    )  # fmt: skip


def _disk(path: Path) -> tuple[int, int]:
    """(manifests, bytes) of a dataset; files the writer removes meanwhile count as 0."""
    size = 0
    for p in path.rglob("*"):
        try:
            size += p.stat().st_size if p.is_file() else 0
        except FileNotFoundError:
            pass
    return len(list((path / "_versions").glob("*.manifest"))), size


def test_readers_poll_through_compactions_and_cleanups(tmp_path):
    store = si.connect(tmp_path / "store")
    with store.record("vacuum") as rec:
        rec.ingest(si.envelope("job_started", "vacuum", "vacuum", 1e9, {}))
    job = store.job("vacuum")
    uri = layout.table_uri(store.root, job.job_id, job.attempt_id, "worker_metrics")
    writer = DatasetWriter(
        uri, SCHEMAS["worker_metrics"], compact_every=10, grace=timedelta(seconds=0.3)
    )
    stop = threading.Event()
    appended: list[int] = []

    def write():
        i = 0
        while not stop.is_set():
            writer.append(_rows(job, i))
            appended.append(i)
            i += 1
            time.sleep(0.005)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    live = si.LiveJob(job, tables=["worker_metrics"])
    seen: list[int] = []
    errors: list[str] = []
    sizes: list[tuple[int, int]] = []
    try:
        for n in range(READS):
            try:
                if n % 2:
                    rows = live.poll().get("worker_metrics")
                    if rows is not None:
                        seen.extend(rows.column("input_records").to_pylist())
                else:
                    job.table("worker_metrics", columns=["input_records"], where="stage_id = 's'")
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            if n % 1000 == 999:
                sizes.append(_disk(Path(uri)))
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert writer.compactions >= 10, "compactions and cleanups ran under the readers"
    rest = live.poll().get("worker_metrics")
    if rest is not None:
        seen.extend(rest.column("input_records").to_pylist())
    assert sorted(seen) == appended, "the live reader saw every row exactly once"
    # old versions are really gone: the manifests on disk stay bounded, not one per append
    versions = [v for v, _ in sizes]
    assert len(appended) > 500
    assert max(versions) < len(appended) / 4, versions
    writer.compact()
    time.sleep(0.35)
    writer.compact()
    left, size = _disk(Path(uri))
    assert left <= 4, left
    data = np.array([b for _, b in sizes])
    assert size <= data.max(), "disk use shrinks back after the last cleanup"
