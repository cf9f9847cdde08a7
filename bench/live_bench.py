"""Live latency: from ``tel.metrics()`` in a worker process to the row being visible to a
``LiveJob`` polling the store.

A Ray actor reports a new cumulative value every ``--every`` seconds (beyond the 0.5 s
coalescing interval, so each value is sent) and returns when it reported each one; a
LiveJob in the driver notes when each value arrives. Both clocks are the same machine's.
Baseline, same run: the same reports ingested in-process into a ``Recording`` (no Ray hop,
no telemetry client), read by the same LiveJob settings.

    .venv/bin/python bench/live_bench.py --samples 60 --flush 1.0 --refresh 1.0
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

import ray

import solstice_inspect as si
from solstice_inspect.protocol import envelope


@ray.remote(num_cpus=0)
class Reporter:
    def __init__(self, tel) -> None:
        self.tel = tel

    def run(self, samples: int, every: float) -> dict[int, float]:
        sent = {}
        for n in range(1, samples + 1):
            sent[n] = time.time()
            self.tel.metrics(input_records=n, output_records=n, processed_count=n)
            time.sleep(every)
        return sent


def follow(job, refresh: float, samples: int) -> tuple[dict[int, float], threading.Event]:
    seen: dict[int, float] = {}
    done = threading.Event()
    live = si.LiveJob(job, refresh=refresh, tables=["worker_metrics", "job"])

    def on_rows(rows) -> None:
        now = time.time()
        if "worker_metrics" in rows:
            for n in rows["worker_metrics"].column("output_records").to_pylist():
                seen.setdefault(int(n), now)
        if len(seen) >= samples or live.done:
            done.set()

    live.subscribe(on_rows)
    live.start()
    return seen, done


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def run_ray(args, store: str, i: int) -> list[float]:
    rec = si.JobRecorder.start(f"live_bench_{i}", store=store, flush_interval=args.flush)
    seen, done = follow(rec.job, args.refresh, args.samples)
    reporter = Reporter.remote(rec.telemetry(stage_id="parse", worker_id="parse_w0_000000"))
    sent = ray.get(reporter.run.remote(args.samples, args.every))
    done.wait(10)
    rec.finish("COMPLETED")
    return [seen[n] - t for n, t in sent.items() if n in seen]


def run_direct(args, store: str, i: int) -> list[float]:
    rec = si.connect(store).record(f"live_direct_{i}", flush_interval=args.flush)
    seen, done = follow(rec.job(), args.refresh, args.samples)
    sent = {}
    for n in range(1, args.samples + 1):
        sent[n] = time.time()
        payload = {"stage_id": "parse", "input_records": n, "output_records": n}
        rec.ingest(envelope("worker_metrics", rec.job_id, "parse_w0_000000", sent[n], payload, n))
        time.sleep(args.every)
    done.wait(10)
    rec.finish("COMPLETED")
    return [seen[n] - t for n, t in sent.items() if n in seen]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--every", type=float, default=0.6)
    ap.add_argument("--flush", type=float, default=1.0)
    ap.add_argument("--refresh", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store = tempfile.mkdtemp(prefix="live_bench_")
    lat: dict[str, list[float]] = {"ray": [], "direct": []}
    for i in range(args.runs):  # alternate A and B
        order = ("ray", "direct") if i % 2 == 0 else ("direct", "ray")
        for kind in order:
            got = (run_ray if kind == "ray" else run_direct)(args, store, i)
            lat[kind].extend(got)
            print(
                f"run {i} {kind}: {len(got)}/{args.samples} seen, "
                f"p50 {pct(got, 0.5):.3f}s p95 {pct(got, 0.95):.3f}s",
                flush=True,
            )
    r, d = lat["ray"], lat["direct"]
    print(
        f"RESULT flush={args.flush} refresh={args.refresh}: telemetry→LiveJob p50 "
        f"{pct(r, 0.5):.3f}s p95 {pct(r, 0.95):.3f}s max {max(r):.3f}s (n={len(r)}); "
        f"baseline in-process Recording→LiveJob p50 {pct(d, 0.5):.3f}s p95 "
        f"{pct(d, 0.95):.3f}s (n={len(d)}); p95 ratio {pct(r, 0.95) / pct(d, 0.95):.2f}; "
        f"mean {statistics.mean(r):.3f}s"
    )
    print(time.strftime("%Y-%m-%d %H:%M:%S %Z"))


if __name__ == "__main__":
    main()
