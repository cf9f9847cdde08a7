"""Recorder ingest under load: N simulated workers reporting at 2 Hz, for D seconds.

The recorder is the real Ray actor (``JobRecorder``); the workers are Telemetry clients
hosted in a few producer actors. Every 2 s per worker: a metrics report per 0.5 s
(cumulative counters) and a processed split per second. The recorder actor's process
is sampled with psutil every 5 s: CPU % and RSS. Baseline, same run: the same recorder
idle (no producers) for the first ``--idle`` seconds.

    .venv/bin/python bench/recorder_bench.py --workers 200 --duration 300
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

import psutil
import ray

import solstice_inspect as si


@ray.remote(num_cpus=0)
class Producers:
    """Hosts ``n`` simulated workers, each reporting at ``hz``."""

    def __init__(self, rec, first: int, n: int, hz: float) -> None:
        self.tels = [
            rec.telemetry(stage_id=f"stage{i % 5}", worker_id=f"stage{i % 5}_w{i}_{i:06x}")
            for i in range(first, first + n)
        ]
        self.hz = hz
        self.stop = threading.Event()
        self.sent = 0

    def run(self, duration: float) -> dict:
        for t in self.tels:
            t.started(assigned_partitions=[0])
        n = 0
        started = time.monotonic()
        while time.monotonic() - started < duration:
            n += 1
            for k, t in enumerate(self.tels):
                t.metrics(input_records=n * 10, output_records=n * 9, processed_count=n)
                if n % 2 == 0:
                    t.split_processed(
                        f"{t.stage_id}_split_{k}_{n}",
                        [],
                        input_records=10,
                        output_records=9,
                        processing_time=0.01,
                    )
            self.sent += len(self.tels)
            time.sleep(max(0.0, started + n / self.hz - time.monotonic()))
        for t in self.tels:
            t.stopped("completed")
        self.tels[0].flush(10)
        return self.tels[0].stats()


def sample(proc: psutil.Process, seconds: float, every: float = 5.0) -> list[tuple[float, float]]:
    out = []
    proc.cpu_percent(None)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(every, max(0.0, end - time.monotonic())))
        out.append((proc.cpu_percent(None), proc.memory_info().rss / 2**20))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--idle", type=float, default=20.0)
    ap.add_argument("--hz", type=float, default=2.0)
    ap.add_argument("--producers", type=int, default=4)
    args = ap.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store = tempfile.mkdtemp(prefix="recorder_bench_")
    rec = si.JobRecorder.start("recorder_bench", store=store)
    proc = psutil.Process(ray.get(rec.actor.info.remote())["pid"])
    idle = sample(proc, args.idle)
    per = args.workers // args.producers
    producers = [Producers.remote(rec, i * per, per, args.hz) for i in range(args.producers)]
    runs = [p.run.remote(args.duration) for p in producers]
    load = sample(proc, args.duration)
    stats = ray.get(runs)
    result = rec.finish("COMPLETED")
    job = rec.job
    cpu_idle = statistics.mean(c for c, _ in idle)
    cpu_load = statistics.mean(c for c, _ in load)
    first_min = [r for _, r in load[: max(1, len(load) // 5)]]
    last = [r for _, r in load[-max(1, len(load) // 5) :]]
    print(f"workers={args.workers} hz={args.hz} duration={args.duration:g}s")
    print(
        f"recorder CPU %: idle {cpu_idle:.1f}, under load mean {cpu_load:.1f}, "
        f"max {max(c for c, _ in load):.1f}"
    )
    print(
        f"recorder RSS MB: idle {idle[-1][1]:.0f}, first fifth of load "
        f"{statistics.mean(first_min):.0f}, last fifth {statistics.mean(last):.0f}, "
        f"max {max(r for _, r in load):.0f}; growth last/first = "
        f"{statistics.mean(last) / statistics.mean(first_min):.3f}"
    )
    print("RSS series (MB):", " ".join(f"{r:.0f}" for _, r in load))
    print(
        f"recorder accepted={result['accepted']} duplicates={result['duplicates']} "
        f"rejected={result['rejected_total']} flushes={result['flushes']} "
        f"write_errors={result['write_errors']}"
    )
    print(
        f"stored worker_metrics rows={job.table('worker_metrics').num_rows} "
        f"lineage rows={job.table('lineage').num_rows}"
    )
    print("producer telemetry drops:", sum(s["dropped"] for s in stats))
    print(time.strftime("%Y-%m-%d %H:%M:%S %Z"))


if __name__ == "__main__":
    main()
