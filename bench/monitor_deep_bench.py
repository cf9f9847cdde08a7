"""The monitor's deep views on big jobs (issue 9): how long each blocks the kernel.

Not a test: it prints figures and never fails on a number. Run it with

    .venv/bin/python bench/monitor_deep_bench.py [--sources 250000] [--repeat 3]

1. The Splits tab's first query (``job.splits()`` of every split, served as the paged
   ``splits`` table: the message handler's whole time, first page included) on a job with
   ``4 × sources`` lineage rows (1M by default), and a filtered query; baseline: the same
   ``job.splits()`` call alone (what a user runs in a cell), and the pager's own list → text
   conversion of the rows (what the tab would cost without the vectorised join).
2. Time travel (``travel_to(t)``: every snapshot table read up to ``t`` and folded, the
   header and DAG set) on a job with 1M worker_metrics rows and 50,000 stage windows, at
   a quarter, half and the end of the job; baseline: the monitor's own build (one scan
   of the same tables).
3. The Timeline tab's state on that job: build time and size.

Medians of ``--repeat`` runs after one warm-up, wall seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

import pyarrow as pa  # noqa: E402
from lineage_bench import big_job as lineage_big_job  # noqa: E402
from widget_jobs import big_job  # noqa: E402

import solstice_inspect as si  # noqa: E402
from solstice_inspect.widgets.paging import to_wire  # noqa: E402


def timed(fn, repeat: int) -> float:
    """Median wall seconds of ``repeat`` runs after a warm-up; the median CPU seconds of
    this process go to :data:`CPU` (on a shared machine, CPU time is what a quiet
    machine's wall time would be for this single-threaded work)."""
    fn()  # warm-up
    runs, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        runs.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    CPU.append(statistics.median(cpu))
    return statistics.median(runs)


def cpu() -> str:
    return f"(CPU {CPU[-1]:.2f} s)"


CPU: list[float] = []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=250_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    store = si.connect(tempfile.mkdtemp())

    job = lineage_big_job(store, args.sources)
    n = job.table("lineage", columns=["split_id"]).num_rows
    m = si.job_monitor(job)
    page = {"type": "page", "id": 1, "table": "splits", "offset": 0, "limit": 25}

    def first_query() -> None:
        m.run_splits({})
        m.tabs.answer(page)

    def filtered() -> None:
        m.run_splits({"stage": "enrich", "where": "output_records >= 500"})
        m.tabs.answer(page)

    tab = timed(first_query, args.repeat)
    narrow = timed(filtered, args.repeat)
    alone = timed(lambda: job.splits(), args.repeat)
    rows = job.splits()
    wire = timed(lambda: to_wire(pa.Table.from_pandas(rows, preserve_index=False)), 1)
    print(f"lineage rows: {n:,}")
    c_tab, c_narrow, c_alone, c_wire = CPU[-4:]
    print(f"splits tab, first query (all splits) + first page: {tab:.2f} s (CPU {c_tab:.2f})")
    print(f"splits tab, stage + where query + first page: {narrow:.2f} s (CPU {c_narrow:.2f})")
    print(f"baseline job.splits() alone: {alone:.2f} s (CPU {c_alone:.2f})")
    print(f"ratio tab / job.splits() alone: {tab / alone:.2f}")
    print(f"baseline pager's own list->text of the rows: {wire:.2f} s (CPU {c_wire:.2f})")
    m.close()

    big = big_job(store, "etl_big")
    t0 = big.info["start_time"].timestamp()
    end = big.table("worker_metrics", columns=["ts"]).column(0)
    t1 = max(end.to_pylist()[-1].timestamp(), t0 + 1)
    build = timed(lambda: si.job_monitor(big).close(), 1)
    c_build = CPU[-1]
    mon = si.job_monitor(big)
    for share in (0.25, 0.5, 1.0):
        t = t0 + (t1 - t0) * share
        took = timed(lambda t=t: mon.travel_to(t), args.repeat)
        records = mon.header.header["records_in"]
        print(f"travel to {share:.0%}: {took:.2f} s {cpu()}, records in then: {records}")
    print(
        f"baseline: the monitor's build (one scan of the same tables): {build:.2f} s "
        f"(CPU {c_build:.2f})"
    )
    tl = timed(mon.refresh_timeline, 1)
    size = len(json.dumps(mon.tabs.timeline))
    print(f"timeline state: {tl:.2f} s {cpu()}, {size:,} bytes")
    mon.close()


if __name__ == "__main__":
    main()
