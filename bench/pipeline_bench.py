"""Pipeline throughput with telemetry vs. telemetry off (alternating runs, same Ray).

Throughput = records the sink wrote / seconds the source produced plus drain time (the
driver loop), so actor start-up is not counted. Two settings: the demo's simulated work
(``--cost-scale 1``: enrich sleeps 2 ms per record, as a real stage would work) and no
simulated work (``--cost-scale 0``: the pipeline runs as fast as Ray moves splits, the
worst case for telemetry overhead).

With ``--live``, every telemetry-on run is followed by a ``LiveJob`` in the driver (its
usual ``refresh=1.0``): live latency = the time its subscriber gets a ``worker_metrics``
row minus the row's ``ts`` (set in the worker's ``tel.metrics()``), so a live update
includes its poll. The watcher runs inside the measured runs (its cost is counted
against telemetry).

    .venv/bin/python bench/pipeline_bench.py --runs 7 --duration 10 --cost-scale 1 0 --live

With ``--ab detection`` both runs of a pair record telemetry and only the workers'
straggler detection differs (on / off): its own overhead.

    .venv/bin/python bench/pipeline_bench.py --ab detection --runs 7 --duration 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from typing import Any

import pyarrow.compute as pc
import ray

import solstice_inspect as si
from solstice_inspect.demo.pipeline import run_pipeline


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def watch(job_id: str, store: str, out: list[float], stop: threading.Event) -> None:
    """Follow ``job_id``'s attempt as it starts; note each worker_metrics row's latency."""

    def on_rows(rows: Any) -> None:
        now = time.time()
        wm = rows.get("worker_metrics")
        if wm is not None and wm.num_rows:
            out.extend(now - t / 1e6 for t in pc.cast(wm.column("ts"), "int64").to_pylist())

    try:
        live = si.LiveJob(
            job_id,
            store=store,
            wait=60,
            tables=["worker_metrics", "job"],
            columns={"worker_metrics": ["ts"]},
        )
    except Exception as exc:  # a bench: say it and go on without latency
        print(f"live watcher failed: {exc!r}", flush=True)
        return
    live.subscribe(on_rows)
    live.start()
    stop.wait()
    live.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--cost-scale", type=float, nargs="+", default=[1.0, 0.0])
    ap.add_argument("--live", action="store_true", help="measure live latency (telemetry on)")
    ap.add_argument(
        "--ab",
        choices=["telemetry", "detection"],
        default="telemetry",
        help="what differs between the two runs of a pair (detection: telemetry on in both)",
    )
    args = ap.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store = tempfile.mkdtemp(prefix="pipeline_bench_")
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S %Z')} load {os.getloadavg()}", flush=True)
    for scale in args.cost_scale:
        rates: dict[bool, list[float]] = {True: [], False: []}
        pairs: list[float] = []
        latency: list[float] = []
        for i in range(args.runs):
            got: dict[bool, float] = {}
            for telemetry in (True, False) if i % 2 == 0 else (False, True):
                job_id = f"bench_{int(scale * 10)}_{i}"
                lat: list[float] = []
                stop = threading.Event()
                watcher = None
                if telemetry and args.live:
                    watcher = threading.Thread(target=watch, args=(job_id, store, lat, stop))
                    watcher.start()
                la = os.getloadavg()[0]
                detection = args.ab == "detection"
                r = run_pipeline(
                    job_id=job_id,
                    duration=args.duration,
                    store=store,
                    telemetry=telemetry or detection,
                    detect_stragglers=telemetry or not detection,
                    cost_scale=scale,
                )
                if watcher is not None:
                    time.sleep(2.5)  # the final rows reach the watcher
                    stop.set()
                    watcher.join()
                latency.extend(lat)
                rate = r.sink_rows / r.elapsed_s
                rates[telemetry].append(rate)
                got[telemetry] = rate
                live = f" live p95 {pct(lat, 0.95):.3f}s (n={len(lat)})" if lat else ""
                print(
                    f"cost_scale={scale:g} run={i} {args.ab}={telemetry!s:5} "
                    f"sink_rows={r.sink_rows} elapsed={r.elapsed_s:.2f}s rate={rate:.0f} rec/s"
                    f" dropped={r.telemetry_dropped} load1={la:.1f}{live}",
                    flush=True,
                )
            pairs.append(got[True] / got[False])
        on, off = statistics.median(rates[True]), statistics.median(rates[False])
        print(
            f"RESULT cost_scale={scale:g}: {args.ab} on {on:.0f} rec/s "
            f"(min {min(rates[True]):.0f}, max {max(rates[True]):.0f}), off {off:.0f} rec/s "
            f"(min {min(rates[False]):.0f}, max {max(rates[False]):.0f}) (medians of "
            f"{args.runs}); ratio of medians on/off = {on / off:.3f}; per-pair ratios "
            f"{' '.join(f'{p:.2f}' for p in pairs)} (median {statistics.median(pairs):.3f})",
            flush=True,
        )
        if latency:
            print(
                f"RESULT cost_scale={scale:g}: live latency tel.metrics() → LiveJob "
                f"(refresh 1 s) p50 {pct(latency, 0.5):.3f}s p95 {pct(latency, 0.95):.3f}s "
                f"max {max(latency):.3f}s (n={len(latency)})",
                flush=True,
            )
    print(time.strftime("%Y-%m-%d %H:%M:%S %Z"), f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
