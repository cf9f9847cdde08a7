"""Catalog benchmark (issue 8): a store that has lived a year, listed while 200 recorders
write to it at once.

Not a test: it prints figures and never fails on a number. Run it with

    .venv/bin/python bench/catalog_bench.py [--attempts 100000] [--recorders 200]
        [--processes 4] [--seconds 30] [--heartbeat 1.0] [--report-every 5] [--root DIR]

What it does, in one run:

1. history: a catalog of ``--attempts`` archived attempts (2,000 jobs), written as a year
   of compacted history would be (a start row and a final row per attempt, appended in
   65,536-row fragments); ``--lost`` of them (1 %) stay RUNNING in the catalog for ever,
   with a heartbeat file a day old: they read as LOST, and every listing reads their
   files.
2. baseline: ``si.connect(root).jobs()`` on that store with no writer, timed ``--repeat``
   times; also the same listing without the heartbeat overlay (the catalog alone), and
   reading the heartbeat files alone, to show what the overlay costs.
3. load: ``--recorders`` real ``Store.record`` sessions (threads in ``--processes``
   processes) start at once, report a worker's counters every ``--report-every`` s (each
   report is a flush: Lance appends to the attempt's own tables), heartbeat every
   ``--heartbeat`` s, and finish after ``--seconds`` with COMPLETED / FAILED / CANCELLED;
   meanwhile the parent lists ``jobs()`` again and again (median, max) and checks that
   the running attempts show live counts.
4. after: every recorder's attempt is listed with its final status, and the catalog holds
   a row for each start and each final status (no lost commit); rows added vs the
   attempts, and vs what a row per heartbeat would have added.
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
import threading
import time
from pathlib import Path

import lance
import numpy as np
import pandas as pd
import pyarrow as pa

import solstice_inspect as si
from solstice_inspect.schema import SCHEMAS
from solstice_inspect.store import heartbeat, layout
from solstice_inspect.store.catalog import CATALOG_ROWS_PER_FRAGMENT, latest_attempts

JOBS = 2_000
YEAR_S = 365 * 86_400
STATUSES = ["COMPLETED", "FAILED", "CANCELLED"]
TS = pa.timestamp("us", tz="UTC")


# ---------------------------------------------------------------------- history
def build_history(root: str, attempts: int, lost: int) -> tuple[int, int]:
    """Write the catalog of a year of attempts; return (catalog rows, fragments)."""
    now = time.time()
    rng = np.random.default_rng(8)
    start = np.sort(now - YEAR_S + rng.uniform(0, YEAR_S - 86_400, attempts))
    duration = rng.uniform(60, 7_200, attempts)
    job_ids = np.array([f"job{i % JOBS:04d}" for i in range(attempts)], dtype=object)
    attempt_ids = np.array(
        [layout.new_attempt_id(s).rsplit("-", 1)[0] + f"-{i:05x}" for i, s in enumerate(start)],
        dtype=object,
    )
    is_lost = np.zeros(attempts, dtype=bool)
    is_lost[rng.choice(attempts, lost, replace=False)] = True
    final = np.array([STATUSES[i % 3] for i in range(attempts)], dtype=object)
    counts = rng.integers(0, 10_000_000, attempts)

    def rows(mask: np.ndarray, status: np.ndarray | str, ts: np.ndarray, end) -> pa.Table:
        n = int(mask.sum())
        us = lambda a: pa.array((a[mask] * 1e6).astype("int64"), TS)  # noqa: E731
        return pa.table(
            {
                "job_id": pa.array(job_ids[mask], pa.string()),
                "attempt_id": pa.array(attempt_ids[mask], pa.string()),
                "ts": us(ts),
                "status": pa.array(
                    [status] * n if isinstance(status, str) else status[mask], pa.string()
                ),
                "start_time": us(start),
                "end_time": us(end) if end is not None else pa.nulls(n, TS),
                "heartbeat": us(ts),
                "heartbeat_interval_s": pa.array(np.full(n, 5.0)),
                "stages": pa.array(np.full(n, 5)),
                "workers": pa.array(np.full(n, 8)),
                "records_in": pa.array(counts[mask]),
                "records_out": pa.array(counts[mask]),
                "exceptions": pa.array(np.zeros(n, dtype="int64")),
                "batch": pa.array(np.ones(n, dtype="int64")),
            },
            schema=SCHEMAS["catalog"],
        )  # fmt: skip

    everyone = np.ones(attempts, dtype=bool)
    table = pa.concat_tables(
        [
            rows(everyone, "RUNNING", start, None),
            rows(~is_lost, final, start + duration, start + duration),
        ]
    ).sort_by("ts")
    uri = layout.catalog_uri(root)
    for i in range(0, table.num_rows, CATALOG_ROWS_PER_FRAGMENT):
        chunk = table.slice(i, CATALOG_ROWS_PER_FRAGMENT)
        lance.write_dataset(
            chunk, uri, schema=SCHEMAS["catalog"], mode="create" if i == 0 else "append"
        )
    # the LOST ones: a heartbeat file from their last day, never updated again
    for j in np.flatnonzero(is_lost):
        heartbeat.write(
            root,
            job_ids[j],
            attempt_ids[j],
            {
                "status": "RUNNING", "start_time": start[j], "end_time": None,
                "heartbeat": start[j] + duration[j], "heartbeat_interval_s": 5.0, "stages": 5,
                "workers": 8, "records_in": int(counts[j]), "records_out": int(counts[j]),
                "exceptions": 0,
            },
        )  # fmt: skip
    ds = lance.dataset(uri)
    return ds.count_rows(), len(ds.get_fragments())


def timed(fn, repeat: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of ``repeat`` calls; CPU counts every thread of this process
    (the machine is shared: wall clock includes waiting for a core)."""
    out = []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        out.append((time.perf_counter() - t, time.process_time() - c))
    return out


def fmt(times: list[tuple[float, float]]) -> str:
    wall, cpu = [w for w, _ in times], [c for _, c in times]
    return (
        f"wall median {statistics.median(wall):.3f} s, max {max(wall):.3f} s; "
        f"CPU median {statistics.median(cpu):.3f} s, max {max(cpu):.3f} s (n={len(times)})"
    )


# ---------------------------------------------------------------------- load
def worker(root: str, proc: int, recorders: int, hb: float, every: float, control: str) -> None:
    """One process: ``recorders`` recordings (threads) until the stop file appears."""
    store = si.connect(root)
    stop = Path(control, "stop")
    results: list[dict] = []
    lock = threading.Lock()
    started = threading.Barrier(recorders + 1)

    def one(i: int) -> None:
        job_id = f"live{proc:02d}_{i:03d}"
        status = STATUSES[(proc + i) % 3]
        failed_start = None
        try:
            rec = store.record(job_id, heartbeat_interval=hb, flush_interval=1.0)
        except Exception as exc:  # a failed start is a finding, not a crash
            failed_start = f"{type(exc).__name__}: {exc}"
            started.wait()
            with lock:
                results.append({"job_id": job_id, "error": failed_start})
            return
        started.wait()
        seq, t0 = 0, time.time()
        rec.ingest(si.envelope("job_started", job_id, job_id, t0, {"dag_edges": {"a": []}}, 0))
        while not stop.exists():
            seq += 1
            payload = {"stage_id": "a", "input_records": seq * 100, "output_records": seq * 100}
            rec.ingest(si.envelope("worker_metrics", job_id, "a_w0", time.time(), payload, seq))
            time.sleep(every)
        rec.finish(status)
        catalog = rec._writers.get("catalog")
        with lock:
            results.append(
                {
                    "job_id": job_id,
                    "attempt_id": rec.attempt_id,
                    "status": status,
                    "records_out": seq * 100,
                    "write_errors": rec.stats["write_errors"],
                    "commit_retries": getattr(catalog, "retries", 0),
                }
            )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(recorders)]
    for t in threads:
        t.start()
    started.wait()
    Path(control, f"ready{proc}").touch()
    for t in threads:
        t.join()
    Path(control, f"result{proc}.json").write_text(json.dumps(results))


def run_load(root: str, args: argparse.Namespace) -> dict:
    control = tempfile.mkdtemp(prefix="catalog-bench-")
    per = [args.recorders // args.processes + (p < args.recorders % args.processes)
           for p in range(args.processes)]  # fmt: skip
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                str(p),
                str(n),
                root,
                str(args.heartbeat),
                str(args.report_every),
                control,
            ]
        )
        for p, n in enumerate(per)
    ]
    t_start = time.perf_counter()
    while not all(Path(control, f"ready{p}").exists() for p in range(args.processes)):
        if any(p.poll() not in (None, 0) for p in procs):
            raise SystemExit("a worker process failed")
        time.sleep(0.1)
    startup = time.perf_counter() - t_start
    times, live_seen = [], []
    store = si.connect(root)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        t, c = time.perf_counter(), time.process_time()
        df = store.jobs()
        times.append((time.perf_counter() - t, time.process_time() - c))
        live = df[df["job_id"].str.startswith("live")]
        beats = pd.to_datetime(live["heartbeat"], utc=True)
        age = (pd.Timestamp.now(tz="UTC") - beats).dt.total_seconds()
        live_seen.append(
            (
                int((live["status"] == "RUNNING").sum()),
                int((live["records_out"] > 0).sum()),
                float(age.max()),
            )
        )
    Path(control, "stop").touch()
    for p in procs:
        p.wait(timeout=600)
    results = []
    for p in range(args.processes):
        results += json.loads(Path(control, f"result{p}.json").read_text())
    shutil.rmtree(control, ignore_errors=True)
    return {"times": times, "live_seen": live_seen, "results": results, "startup_s": startup}


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--lost", type=float, default=0.01, help="share of attempts LOST")
    parser.add_argument("--recorders", type=int, default=200)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument(
        "--report-every", type=float, default=5.0, help="s between a recorder's reports"
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--root", default=None, help="default: a temporary folder")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        p, n, root, hb, every, control = args.worker
        worker(root, int(p), int(n), float(hb), float(every), control)
        return

    tmp = None
    if args.root is None:
        tmp = tempfile.mkdtemp(prefix="catalog-bench-store-")
    root = layout.resolve_root(args.root or os.path.join(tmp or "", "store"))
    print(f"python {platform.python_version()}, pylance {lance.__version__}, "
          f"pyarrow {pa.__version__}, pandas {pd.__version__}, nproc {os.cpu_count()}")  # fmt: skip
    print(f"store: {root}")

    t = time.perf_counter()
    lost = round(args.attempts * args.lost)
    rows_before, fragments = build_history(root, args.attempts, lost)
    print(f"history: {args.attempts:,} attempts ({lost:,} LOST), {rows_before:,} catalog rows, "
          f"{fragments} fragments, built in {time.perf_counter() - t:.1f} s")  # fmt: skip

    store = si.connect(root)
    listing = store.jobs(all_attempts=True)
    print(f"listed: {len(listing):,} attempts, {(listing['status'] == 'LOST').sum():,} LOST")
    base = timed(store.jobs, args.repeat)
    print(f"baseline, no writer: jobs()                          {fmt(base)}")
    print(f"baseline, no writer: jobs(all_attempts=True)         "
          f"{fmt(timed(lambda: store.jobs(all_attempts=True), args.repeat))}")  # fmt: skip
    catalog_only = timed(lambda: latest_attempts(store.catalog()), args.repeat)
    print(f"baseline, no writer: catalog alone, no overlay       {fmt(catalog_only)}")
    running = listing[listing["status"].isin(["RUNNING", "LOST"])]
    keys = list(zip(running["job_id"], running["attempt_id"]))
    files = timed(lambda: heartbeat.read_many(root, keys), args.repeat)
    print(f"baseline, no writer: read {len(keys):,} heartbeat files       {fmt(files)}")

    print(f"load: {args.recorders} recorders in {args.processes} processes, heartbeat "
          f"{args.heartbeat} s, a report each {args.report_every} s, "
          f"{args.seconds:.0f} s ...")  # fmt: skip
    load = run_load(root, args)
    results = load["results"]
    print(f"load: all recorders started in {load['startup_s']:.1f} s (processes included)")
    print(f"load: jobs() while they write                        {fmt(load['times'])}")
    seen = load["live_seen"]
    running = sorted(s[0] for s in seen)
    print(f"load: of {args.recorders} running attempts, listed RUNNING: median "
          f"{statistics.median(running):.0f}, min {running[0]} (the rest LOST: heartbeat older "
          f"than 3 intervals); oldest heartbeat in a listing: median "
          f"{statistics.median(s[2] for s in seen):.1f} s, max {max(s[2] for s in seen):.1f} s; "
          f"with live counts in the last listing: {seen[-1][1]}")  # fmt: skip
    failed_starts = [r for r in results if "error" in r]
    write_errors = sum(r.get("write_errors", 0) for r in results)
    retries = sum(r.get("commit_retries", 0) for r in results)
    print(f"load: failed starts {len(failed_starts)}, write errors {write_errors}, catalog "
          f"commits retried after a concurrent commit {retries}")  # fmt: skip

    after = si.connect(root)
    catalog = after.catalog().to_pandas()
    listing = after.jobs(all_attempts=True).set_index(["job_id", "attempt_id"])
    wrong, missing_rows = [], 0
    for r in results:
        if "error" in r:
            continue
        key = (r["job_id"], r["attempt_id"])
        got = listing.loc[key] if key in listing.index else None
        if got is None or got["status"] != r["status"] or got["records_out"] != r["records_out"]:
            wrong.append((key, None if got is None else got["status"]))
        mine = catalog[(catalog["job_id"] == key[0]) & (catalog["attempt_id"] == key[1])]
        missing_rows += int(sorted(mine["status"]) != sorted(["RUNNING", r["status"]]))
    rows_after = len(catalog)
    print(f"after: {len(results) - len(failed_starts) - len(wrong)} of {args.recorders} attempts "
          f"listed with their final status and counts; wrong or missing: {wrong[:5]}")  # fmt: skip
    print(f"after: attempts whose catalog rows are not exactly start + final: {missing_rows}")
    per_hb = round(args.recorders * args.seconds / args.heartbeat)
    print(f"after: catalog rows {rows_before:,} -> {rows_after:,} (+{rows_after - rows_before} "
          f"for {args.recorders} attempts; a row per heartbeat: ~{per_hb:,})")  # fmt: skip
    ds = lance.dataset(layout.catalog_uri(root))
    print(f"after: catalog fragments {len(ds.get_fragments())}")
    final = timed(after.jobs, args.repeat)
    print(f"after: jobs(), writers gone                          {fmt(final)}")
    ratio = statistics.median(w for w, _ in load["times"]) / statistics.median(w for w, _ in base)
    print(f"ratio: jobs() under load / no writer (wall medians)  {ratio:.2f}")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
