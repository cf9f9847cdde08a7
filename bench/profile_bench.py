"""Worker profiling costs (issue 9, Workers): what py-spy sampling takes from the profiled
worker, and how long ``si.worker_view`` takes to build for a big worker.

1. ``overhead``: a worker actor runs a known CPU loop and counts its iterations per
   window; windows without profiling (A) alternate with windows while ``job.profile``
   samples it (B: py-spy's default, pausing the process per sample; C: ``nonblocking``).
   Printed: the median iterations/s of each and the ratio to A, same run.
2. ``view``: a worker with 10,000 log lines and 100,000 worker_metrics rows; the view's
   build time (median of 5) against the baseline of reading the same rows
   (``job.to_pandas`` of the four tables, filtered on the worker), and its state size.

Usage: ``.venv/bin/python bench/profile_bench.py [overhead|view|all] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time

import numpy as np
import pyarrow as pa

import solstice_inspect as si

STAGE, WID = "parse", "parse_w0_bench00"


def overhead(rounds: int, seconds: int, rate: int) -> None:
    import ray

    from solstice_inspect.recorder.actor import NAMESPACE

    ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False)

    class Spin:
        def __init__(self, tel):
            tel.started(assigned_partitions=[0])
            tel.flush(5.0)

        def iterations_per_s(self, seconds: float) -> tuple[float, float]:
            """Loop iterations per wall second and per CPU second of this thread."""
            end, n = time.perf_counter() + seconds, 0
            start, cpu = time.perf_counter(), time.thread_time()
            while time.perf_counter() < end:
                sum(i * i for i in range(200))
                n += 1
            return n / (time.perf_counter() - start), n / (time.thread_time() - cpu)

    store = tempfile.mkdtemp()
    rec = si.JobRecorder.start("profile_bench", dag={STAGE: []}, store=store, flush_interval=0.5)
    actor = (
        ray.remote(num_cpus=0)(Spin)
        .options(name=f"{STAGE}:{WID}", namespace=NAMESPACE)
        .remote(rec.telemetry(stage_id=STAGE, worker_id=WID))
    )
    job = rec.job
    while job.workers().empty:
        time.sleep(0.1)
    ray.get(actor.iterations_per_s.remote(1.0))  # warm up
    got: dict[str, list[tuple[float, float]]] = {"A": [], "B": [], "C": []}
    for _ in range(rounds):
        for mode in ("A", "B", "C"):
            # the window starts after py-spy attached: the profile runs 1 s longer
            ref = None
            if mode != "A":
                err: list[BaseException] = []

                def run(nb: bool = mode == "C", errs: list[BaseException] = err) -> None:
                    try:
                        job.profile(WID, seconds=seconds + 1, rate=rate, nonblocking=nb)
                    except Exception as exc:  # reported below
                        errs.append(exc)

                t = threading.Thread(target=run)
                t.start()
                time.sleep(0.5)
                ref = actor.iterations_per_s.remote(seconds)
                got[mode].append(ray.get(ref))
                t.join()
                if err:
                    raise err[0]
            else:
                got[mode].append(ray.get(actor.iterations_per_s.remote(seconds)))
    base = statistics.median(w for w, _ in got["A"])
    base_cpu = statistics.median(c for _, c in got["A"])
    print(f"windows of {seconds} s, {rounds} rounds (A, B, C alternating), py-spy at {rate} Hz")
    for mode, label in (("A", "no profiling"), ("B", "py-spy (default: pauses per sample)"),
                        ("C", "py-spy --nonblocking")):  # fmt: skip
        wall = statistics.median(w for w, _ in got[mode])
        cpu = statistics.median(c for _, c in got[mode])
        runs = ", ".join(f"{w:,.0f}" for w, _ in got[mode])
        print(
            f"  {label:38s} {wall:9,.0f} it/s (x{wall / base:.3f})  {cpu:9,.0f} it/CPU-s "
            f"(x{cpu / base_cpu:.3f})  wall runs: {runs}"
        )
    profiles = job.profiles()
    print(f"  profiles stored: {profiles['profile_id'].nunique()}, rows {len(profiles)}")
    rec.finish("COMPLETED")
    ray.shutdown()


def big_worker(root: str) -> si.Job:
    from solstice_inspect.schema import SCHEMAS
    from solstice_inspect.store import layout
    from solstice_inspect.store.dataset import DatasetWriter

    store = si.connect(root)
    t0 = 1_764_331_200.0
    with store.record("view_bench") as rec:
        rec.ingest([
            si.envelope("worker_started", "view_bench", WID, t0, {"stage_id": STAGE}),
            si.envelope("worker_stopped", "view_bench", WID, t0 + 2000, {"stage_id": STAGE}),
        ])  # fmt: skip
    job = store.job("view_bench")
    start_us = int((t0 + 1) * 1e6)

    def append(table: str, cols: dict, n: int) -> None:
        cols = {"job_id": [job.job_id] * n, "attempt_id": [job.attempt_id] * n,
                "batch": np.full(n, 10_000, dtype=np.int64), **cols}  # fmt: skip
        schema = SCHEMAS[table]
        arrays = [pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type)
                  for f in schema]  # fmt: skip
        uri = layout.table_uri(store.root, job.job_id, job.attempt_id, table)
        DatasetWriter(uri, schema, compact_every=0).append(
            pa.Table.from_arrays(arrays, schema=schema)
        )

    n_logs, n_metrics = 10_000, 100_000
    ts = pa.timestamp("us", tz="UTC")
    lines = [f"line {i} " + "x" * 120 for i in range(n_logs)]
    append("logs", {"ts": pa.array(start_us + np.arange(n_logs) * 100_000, ts),
                    "worker_id": [WID] * n_logs, "stage_id": [STAGE] * n_logs,
                    "level": ["INFO"] * n_logs, "message": lines}, n_logs)  # fmt: skip
    k = np.arange(n_metrics)
    append("worker_metrics", {"ts": pa.array(start_us + k * 10_000, ts),
                              "worker_id": [WID] * n_metrics, "stage_id": [STAGE] * n_metrics,
                              "input_records": k * 3, "output_records": k * 2,
                              "input_rate": np.sin(k) + 5, "output_rate": np.cos(k) + 5},
           n_metrics)  # fmt: skip
    return job


def view(rounds: int) -> None:
    job = big_worker(tempfile.mkdtemp())
    where = f"worker_id = '{WID}'"
    base, built = [], []
    size = 0
    for _ in range(rounds):
        t = time.perf_counter()
        for name in ("workers", "worker_metrics", "worker_resources", "logs"):
            job.to_pandas(name, where=where)
        base.append(time.perf_counter() - t)
        t = time.perf_counter()
        v = si.worker_view(job, WID)
        built.append(time.perf_counter() - t)
        state = v.panel.get_state()
        size = len(json.dumps({k: s for k, s in state.items() if k not in ("_esm", "_css")}))
        v.close()
    b, w = statistics.median(base), statistics.median(built)
    print("worker with 10,000 log lines and 100,000 worker_metrics rows")
    print(f"  baseline (read the worker's rows)  median {b * 1000:8.1f} ms")
    print(f"  si.worker_view build               median {w * 1000:8.1f} ms  ratio {w / b:.2f}")
    print(f"  runs: {', '.join(f'{x * 1000:.0f}' for x in built)} ms; state {size:,} bytes")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("what", nargs="?", default="all", choices=["overhead", "view", "all"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rate", type=int, default=100)
    args = ap.parse_args(argv)
    if args.what in ("view", "all"):
        view(max(args.rounds, 5))
    if args.what in ("overhead", "all"):
        overhead(args.rounds, args.seconds, args.rate)


if __name__ == "__main__":
    main(sys.argv[1:])
