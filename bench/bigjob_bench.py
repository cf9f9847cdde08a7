"""Big jobs (issue 8): a 10M-row job opened cold, one worker's rows, and reads at the
worst point between two compactions.

Not a test: it prints figures and never fails on a number.

    .venv/bin/python bench/bigjob_bench.py big [--reports 10000] [--repeat 3]
    .venv/bin/python bench/bigjob_bench.py worst [--appends 3600]

``big`` builds an archived job of 1,000 workers × ``reports`` worker_metrics rows (10M by
default) and 50,000 stage_metrics windows (``tests/widget_jobs.big_job``), finalizes it
as the recorder does when an attempt ends (last compaction, BTREE index on worker_id),
then, each in
a fresh Python process (cold: nothing cached but the OS page cache), alternating with a
baseline job of the same shape and 10,000 rows:

1. ``si.job_monitor(job)`` returned, timed from the call (imports done before), and the
   bytes of every comm message it published (JSON content + buffers, the JS bundles
   excluded: they are package files, the same for every job) — the widget's initial
   state;
2. ``job.table("worker_metrics", where="worker_id = '…'")`` for one worker, from
   ``si.connect`` to the Arrow table, against reading the whole table (the baseline a
   user without the filter would pay).

``worst`` records a one-hour job (``appends`` flushes of 200 worker_metrics rows through
the real recorder, its compaction policy and background compactor) and times a full read
of worker_metrics at the worst point — the last append before a compaction (99 appends
since the previous one) — against the same rows fully compacted, same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

import lance  # noqa: E402
import pyarrow as pa  # noqa: E402

import solstice_inspect as si  # noqa: E402
from solstice_inspect.store import dataset as _dataset  # noqa: E402
from solstice_inspect.store import layout  # noqa: E402

# run in a fresh process: job_monitor + its published bytes, and the one-worker query
COLD = r"""
import json, sys, time
import comm
import solstice_inspect as si
import solstice_inspect.widgets  # the widget modules, imported before the timing
sizes = []
def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
    state = (data or {}).get("state") or {}
    code = sum(len(str(state.get(k, ""))) for k in ("_esm", "_css"))
    size = len(json.dumps(data, default=str)) + sum(len(bytes(b)) for b in buffers or ())
    sizes.append(size - code)
comm.DummyComm.publish_msg = publish_msg
root, job_id, worker = sys.argv[1:4]
t = time.perf_counter()
m = si.job_monitor(si.connect(root).job(job_id))
monitor_s = time.perf_counter() - t
state = sum(sizes)
m.close()
t = time.perf_counter()
one = si.connect(root).job(job_id).table("worker_metrics", where=f"worker_id = '{worker}'")
where_s = time.perf_counter() - t
t = time.perf_counter()
everything = si.connect(root).job(job_id).table("worker_metrics")
full_s = time.perf_counter() - t
print(json.dumps({"monitor_s": monitor_s, "state": state, "messages": len(sizes),
                  "where_s": where_s, "where_rows": one.num_rows, "full_s": full_s,
                  "full_rows": everything.num_rows}))
"""


def header() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} nproc={os.cpu_count()} "
        f"mem={mem:.0f} GiB python={platform.python_version()} pylance={lance.__version__} "
        f"pyarrow={pa.__version__} load={os.getloadavg()[0]:.1f}"
    )


def cold(root: str, job_id: str, worker: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", COLD, root, job_id, worker],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def big(args: argparse.Namespace) -> None:
    from widget_jobs import big_job

    print(header())
    tmp = Path(tempfile.mkdtemp(prefix="si_big_"))
    try:
        store = si.connect(tmp / "store")
        t = time.perf_counter()
        job = big_job(store, "etl_big", workers=1000, reports=args.reports, windows=10_000)
        big_job(store, "etl_base", workers=1000, reports=10, windows=10_000)
        print(f"built in {time.perf_counter() - t:.1f} s")
        # what the recorder does when an attempt ends: the last compaction and indices
        from solstice_inspect.recorder.session import INDEXED
        from solstice_inspect.schema import SCHEMAS

        t = time.perf_counter()
        for name in ("etl_big", "etl_base"):
            j = store.job(name)
            for table, cols in INDEXED.items():
                u = layout.table_uri(store.root, j.job_id, j.attempt_id, table)
                if _dataset.open_dataset(u) is not None:
                    _dataset.DatasetWriter(u, SCHEMAS[table]).finalize(cols)
        print(f"finalized (compaction + indices) in {time.perf_counter() - t:.1f} s")
        uri = layout.table_uri(store.root, job.job_id, job.attempt_id, "worker_metrics")
        ds = lance.dataset(uri)
        print(f"worker_metrics: {ds.count_rows():,} rows, {len(ds.get_fragments())} fragments")
        worker = job.table("worker_metrics", columns=["worker_id"]).column(0)[12345].as_py()
        runs: dict[str, list[dict]] = {"big": [], "base": []}
        for _ in range(args.repeat):  # alternate A and B
            runs["big"].append(cold(str(store.root), "etl_big", worker))
            runs["base"].append(cold(str(store.root), "etl_base", worker))
        for name, rs in runs.items():
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            print(
                f"{name:>4}: {med['full_rows']:>12,.0f} rows | job_monitor "
                f"{med['monitor_s']:.2f} s (runs {[round(r['monitor_s'], 2) for r in rs]}), "
                f"state {med['state'] / 1e6:.3f} MB in {med['messages']:.0f} messages | "
                f"one worker ({med['where_rows']:.0f} rows) {med['where_s']:.3f} s "
                f"(runs {[round(r['where_s'], 3) for r in rs]}) vs whole table "
                f"{med['full_s']:.2f} s"
            )
        b = {k: statistics.median(r[k] for r in runs["big"]) for k in runs["big"][0]}
        s = {k: statistics.median(r[k] for r in runs["base"]) for k in runs["base"][0]}
        print(
            f"RESULT 10M-row job: job_monitor {b['monitor_s']:.2f} s "
            f"({b['monitor_s'] / s['monitor_s']:.2f}x the 10k-row job's {s['monitor_s']:.2f} s), "
            f"state {b['state'] / 1e6:.3f} MB; one worker {b['where_s']:.3f} s "
            f"({b['full_s'] / b['where_s']:.0f}x faster than reading all {b['full_s']:.2f} s)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _hour_rows(k: int, workers: int = 200) -> list[dict]:
    t0 = 1_764_331_200.0
    return [
        si.envelope(
            "worker_metrics",
            "hour",
            f"map_w{w}_{w:06x}",
            t0 + k + w * 1e-4,
            {"stage_id": f"stage{w % 5}", "input_records": k * 100, "output_records": k * 90},
            k,
        )
        for w in range(workers)
    ]


def _read(job: si.Job, repeat: int = 5) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = job.table("worker_metrics").num_rows
        times.append(time.perf_counter() - t)
    return statistics.median(times), n


def worst(args: argparse.Namespace) -> None:
    print(header())
    tmp = Path(tempfile.mkdtemp(prefix="si_worst_"))
    try:
        store = si.connect(tmp / "store")
        rec = store.record("hour", flush_interval=3600)
        every = _dataset.COMPACT_EVERY
        # stop at the worst point: the append before a compaction is due
        last = (args.appends // every) * every - 1
        for k in range(last):
            rec.ingest(_hour_rows(k))
            rec.flush()
        # the compaction due at the previous hundred runs in the background: wait for it
        writer = rec._writers["worker_metrics"]
        deadline = time.monotonic() + 300
        while writer.compactions < last // every and time.monotonic() < deadline:
            time.sleep(0.1)
        job = store.job("hour")
        uri = layout.table_uri(store.root, job.job_id, job.attempt_id, "worker_metrics")
        frags = len(lance.dataset(uri).get_fragments())
        worst_s, n = _read(job)
        rec.finish("COMPLETED")
        ds = lance.dataset(uri)
        ds.optimize.compact_files()
        compacted_s, n2 = _read(store.job("hour"))
        assert n == n2, (n, n2)
        print(
            f"RESULT worst point ({last} appends, {frags} fragments, {n:,} rows): full read "
            f"{worst_s:.3f} s; fully compacted ({len(lance.dataset(uri).get_fragments())} "
            f"fragments) {compacted_s:.3f} s; ratio {worst_s / compacted_s:.2f}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="part", required=True)
    p = sub.add_parser("big")
    p.add_argument("--reports", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    p = sub.add_parser("worst")
    p.add_argument("--appends", type=int, default=3600)
    args = ap.parse_args()
    {"big": big, "worst": worst}[args.part](args)


if __name__ == "__main__":
    main()
