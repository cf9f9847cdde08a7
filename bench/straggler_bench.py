"""Straggler detection latency: hang start → incident row readable in the store.

Each run starts a recorder (default intervals: detection 1 s, recorder flush 1 s) and a
worker actor that processes ``--fast`` splits of ~20 ms through ``tel.split`` and then
one that hangs in ``time.sleep``; the worker notes the wall time just before it sleeps.
The driver polls ``job.incidents()`` every 50 ms. Figures per run: *detected* = the
incident's ``detected_at`` − hang start (the threshold — 1 s here, the floor, as the
fast splits give mean + 4σ ≈ 0.03 s — plus up to one detection interval), *stored* =
the first poll that saw the row − hang start (adds the send and the recorder's flush).
The baseline printed with them is the threshold itself: the earliest any detector with
this rule could report.

    .venv/bin/python bench/straggler_bench.py --runs 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import ray

import solstice_inspect as si


@ray.remote(num_cpus=0, max_restarts=0, max_concurrency=2)
class Worker:
    def __init__(self, tel) -> None:
        self.tel = tel
        self.hang_at: float | None = None

    def fast(self, n: int) -> None:
        for i in range(n):
            with self.tel.split(f"s{i}"):
                time.sleep(0.02)

    def hang(self, seconds: float) -> None:
        with self.tel.split("hung"):
            self.hang_at = time.time()
            time.sleep(seconds)

    def hang_started(self) -> float | None:
        return self.hang_at


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def one_run(store: str, i: int, fast: int) -> tuple[float, float, float]:
    job_id = f"straggler_bench_{i}"
    rec = si.JobRecorder.start(job_id, store=store)
    worker = Worker.remote(rec.telemetry(stage_id="work", worker_id=f"work_w0_{i:06x}"))
    ray.get(worker.fast.remote(fast))
    worker.hang.remote(60.0)
    job = si.connect(store).job(job_id)
    hang_at = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if hang_at is None:
            hang_at = ray.get(worker.hang_started.remote())
        rows = job.incidents()
        if len(rows):
            seen = time.time()
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"run {i}: no incident in 30 s")
    assert hang_at is not None
    row = rows.iloc[0]
    ray.kill(worker)
    rec.finish()
    return row["detected_at"].timestamp() - hang_at, seen - hang_at, float(row["threshold_s"])


def hot_path(n: int = 200_000) -> None:
    """Cost of watching a split in the worker: ``with tel.split(..., report=False)``
    with detection on vs off (same loop, no Ray), per split."""
    from solstice_inspect.recorder.client import Telemetry

    for detect in (False, True, False, True):
        tel = Telemetry(
            "hot_path",
            [].append,
            stage_id="s",
            worker_id=f"s_w{int(detect)}",
            detect_stragglers=detect,
        )
        ids = [f"s_split_{i}" for i in range(n)]
        t0 = time.perf_counter()
        for split_id in ids:
            with tel.split(split_id, report=False):
                pass
        per = (time.perf_counter() - t0) / n * 1e6
        print(f"hot path: detection={detect!s:5} {per:.2f} µs per split (n={n})", flush=True)


def worker_loop(pairs: int = 7, splits: int = 2000, split_ms: float = 1.0) -> None:
    """A worker's loop in one process, no Ray: ``splits`` splits of ``split_ms`` of CPU
    work each through ``tel.split`` (telemetry on, reports to a list), detection on vs off
    in alternating runs; the ratio of wall times is detection's overhead on the worker
    (hot path plus the detector thread), without the noise of a whole pipeline."""
    from solstice_inspect.recorder.client import Telemetry

    def busy(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    times: dict[bool, list[float]] = {True: [], False: []}
    ratios = []
    for i in range(pairs):
        got = {}
        for detect in (True, False) if i % 2 == 0 else (False, True):
            tel = Telemetry(
                f"loop_{i}_{detect}",
                [].append,
                stage_id="s",
                worker_id=f"s_w{i}_{int(detect)}",
                detect_stragglers=detect,
            )
            t0 = time.perf_counter()
            for n in range(splits):
                with tel.split(f"s_{n}") as s:
                    busy(split_ms / 1000)
                    s.input_records = s.output_records = 10
            got[detect] = time.perf_counter() - t0
            times[detect].append(got[detect])
            tel.flush(5)
        ratios.append(got[True] / got[False])
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"RESULT worker loop ({splits} splits of {split_ms:g} ms CPU, {pairs} pairs): "
        f"detection on {on:.3f}s off {off:.3f}s; ratio of medians {on / off:.4f}; per-pair "
        f"{' '.join(f'{r:.3f}' for r in ratios)} (median {statistics.median(ratios):.4f})",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--fast", type=int, default=20, help="fast splits before the hang")
    ap.add_argument("--skip-ray", action="store_true", help="only the in-process figures")
    args = ap.parse_args()
    hot_path()
    worker_loop()
    if args.skip_ray:
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store = tempfile.mkdtemp(prefix="straggler_bench_")
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S %Z')} load {os.getloadavg()}", flush=True)
    detected, stored, limits = [], [], []
    for i in range(args.runs):
        d, s, t = one_run(store, i, args.fast)
        detected.append(d)
        stored.append(s)
        limits.append(t)
        print(
            f"run={i} threshold={t:.2f}s detected={d:.3f}s stored={s:.3f}s "
            f"load1={os.getloadavg()[0]:.1f}",
            flush=True,
        )
    thr = statistics.median(limits)
    print(
        f"RESULT hang start → incident detected: median {statistics.median(detected):.3f}s "
        f"p95 {pct(detected, 0.95):.3f}s max {max(detected):.3f}s; → row in the store: median "
        f"{statistics.median(stored):.3f}s p95 {pct(stored, 0.95):.3f}s max {max(stored):.3f}s "
        f"(n={args.runs}); baseline = the threshold {thr:.2f}s: detection lag past it median "
        f"{statistics.median(detected) - thr:.3f}s (≤ 2 intervals = 2.0 s: "
        f"{'yes' if max(detected) - thr <= 2.0 else 'NO'})",
        flush=True,
    )
    print(time.strftime("%Y-%m-%d %H:%M:%S %Z"), f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
