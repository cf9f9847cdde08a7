"""Pipeline throughput with telemetry vs. telemetry off (alternating runs, same Ray).

Throughput = records the sink wrote / seconds the source produced plus drain time (the
driver loop), so actor start-up is not counted. Two settings: the demo's simulated work
(``--cost-scale 1``: enrich sleeps 2 ms per record, as a real stage would work) and no
simulated work (``--cost-scale 0``: the pipeline runs as fast as Ray moves splits, the
worst case for telemetry overhead).

    .venv/bin/python bench/pipeline_bench.py --runs 3 --duration 10 --cost-scale 1 0
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import ray

from solstice_inspect.demo.pipeline import run_pipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--cost-scale", type=float, nargs="+", default=[1.0, 0.0])
    args = ap.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store = tempfile.mkdtemp(prefix="pipeline_bench_")
    for scale in args.cost_scale:
        rates: dict[bool, list[float]] = {True: [], False: []}
        for i in range(args.runs):
            for telemetry in (True, False) if i % 2 == 0 else (False, True):
                r = run_pipeline(
                    job_id=f"bench_{int(scale * 10)}_{i}",
                    duration=args.duration,
                    store=store,
                    telemetry=telemetry,
                    cost_scale=scale,
                )
                rate = r.sink_rows / r.elapsed_s
                rates[telemetry].append(rate)
                print(
                    f"cost_scale={scale:g} run={i} telemetry={telemetry!s:5} "
                    f"sink_rows={r.sink_rows} elapsed={r.elapsed_s:.2f}s rate={rate:.0f} rec/s"
                    f" dropped={r.telemetry_dropped}",
                    flush=True,
                )
        on, off = statistics.median(rates[True]), statistics.median(rates[False])
        print(
            f"RESULT cost_scale={scale:g}: telemetry on {on:.0f} rec/s, off {off:.0f} rec/s"
            f" (medians of {args.runs}); ratio on/off = {on / off:.3f}",
            flush=True,
        )
    print(time.strftime("%Y-%m-%d %H:%M:%S %Z"))


if __name__ == "__main__":
    main()
