"""The Ray recorder at scale (issue 8): many workers in many processes, and a memory soak.

Every simulated worker is its own real :class:`~solstice_inspect.recorder.client.Telemetry`
client (``rec.telemetry(stage_id=..., worker_id=...)``), hosted ``workers / procs`` to a
Ray actor process (``num_cpus=0``), so the recorder receives from ``--procs`` processes,
each with its own sender thread, as it would from a real job's workers. A worker calls
``tel.metrics()`` every ``1 / hz`` s (cumulative counters) and ``tel.split_processed()``
every other report; the workers of one process are spread evenly over the period (not
in one burst), and each process starts at a random phase.

``workers``: two phases in the same Ray session, same recorder, same host processes:

* baseline: one worker (one extra host process) reports for ``--baseline`` s while the
  other hosts stand by;
* load: every worker reports for ``--duration`` s.

Per phase: recorder CPU = the recorder actor process's CPU time (psutil ``cpu_times``
user + system, threads included) over the phase / wall time of the phase, in % of one
core; live latency = for every ``worker_metrics`` row a :class:`~solstice_inspect.LiveJob`
in the driver (``refresh=1.0``, its usual setting, polling in its own thread) receives,
the time the subscriber is called minus the row's ``ts`` (the envelope timestamp, set in
``tel.metrics()`` when the worker called it) — so a live update includes its poll; drops =
the clients' ``dropped`` counters (one sender per process) + recorder rejects, and
accepted vs. sent.

``soak``: ``--workers`` workers for ``--minutes``; the recorder process's RSS and CPU time
sampled every ``--every`` s to ``--out`` (one line per sample, flushed, so a partial run
can be summarised with ``summarise``). Growth = RSS at the end / RSS once the first
compaction cycle is over (the first sample after ``COMPACT_EVERY + 10`` flushes).

    .venv/bin/python bench/scale_bench.py workers --workers 1000 --procs 50 --duration 120
    .venv/bin/python bench/scale_bench.py soak --workers 200 --procs 10 --minutes 60 \
        --out /tmp/scale_soak.tsv
    .venv/bin/python bench/scale_bench.py summarise /tmp/scale_soak.tsv
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import psutil
import pyarrow.compute as pc
import ray

import solstice_inspect as si
from solstice_inspect.recorder import client
from solstice_inspect.recorder.rows import to_arrow
from solstice_inspect.schema import SCHEMAS
from solstice_inspect.store import dataset
from solstice_inspect.store.dataset import COMPACT_EVERY


@ray.remote(num_cpus=0)
class Host:
    """One process hosting ``n`` simulated workers, each with its own Telemetry client."""

    def __init__(self, rec: Any, first: int, n: int) -> None:
        self.tels = [
            rec.telemetry(stage_id=f"stage{i % 5}", worker_id=f"stage{i % 5}_w{i}_{i:06x}")
            for i in range(first, first + n)
        ]
        self.pid = os.getpid()

    def ready(self) -> int:
        return self.pid

    def set_hold(self, max_hold: float) -> None:
        """The client's ``MAX_HOLD`` in this process; 0 sends every tick (as before)."""
        client.MAX_HOLD = max_hold

    def run(self, duration: float, hz: float) -> dict[str, Any]:
        tels = self.tels
        n = len(tels)
        for t in tels:
            t.started(assigned_partitions=[0])
        step = 1.0 / hz / n  # the workers of this process are spread over the period
        begin = time.monotonic() + random.random() / hz
        k = 0
        reports = splits = 0
        while True:
            due = begin + k * step
            if due - begin >= duration:
                break
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            t = tels[k % n]
            r = k // n + 1
            t.metrics(input_records=r * 10, output_records=r * 9, processed_count=r)
            reports += 1
            if r % 2 == 0:
                t.split_processed(
                    f"{t.stage_id}_split_{k % n}_{r}",
                    [],
                    input_records=10,
                    output_records=9,
                    processing_time=0.01,
                )
                splits += 1
            k += 1
        for t in tels:
            t.stopped("completed")
        flushed = tels[0].flush(30)
        stats = tels[0].stats()  # the process's sender: shared by its workers
        stats["failures"] = sum(t.stats()["failures"] for t in tels)
        return {"reports": reports, "splits": splits, "flushed": flushed, **stats}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


class Latency:
    """A LiveJob in this process noting, per worker_metrics row, arrival − report time."""

    def __init__(self, job: Any, refresh: float) -> None:
        self.samples: list[tuple[float, float]] = []  # (report ts, latency)
        self.lock = threading.Lock()
        self.live = si.LiveJob(
            job,
            refresh=refresh,
            tables=["worker_metrics", "job"],
            columns={"worker_metrics": ["ts"]},
        )
        self.live.subscribe(self._on_rows)
        self.live.start()

    def _on_rows(self, rows: Any) -> None:
        now = time.time()
        wm = rows.get("worker_metrics")
        if wm is None or wm.num_rows == 0:
            return
        ts = pc.cast(wm.column("ts"), "int64").to_numpy() / 1e6
        with self.lock:
            self.samples.extend((float(t), now - float(t)) for t in ts)

    def between(self, start: float, end: float) -> list[float]:
        with self.lock:
            return [lat for t, lat in self.samples if start <= t < end]

    def stop(self) -> None:
        self.live.stop()


def start(args: argparse.Namespace, job_id: str) -> tuple[Any, psutil.Process, list[Any]]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store = tempfile.mkdtemp(prefix=f"{job_id}_")
    rec = si.JobRecorder.start(job_id, store=store, flush_interval=args.flush)
    info: dict[str, Any] = ray.get(rec.actor.info.remote())
    proc = psutil.Process(info["pid"])
    per = args.workers // args.procs
    t0 = time.monotonic()
    hosts = [Host.remote(rec, i * per, per) for i in range(args.procs)]
    pids = ray.get([h.ready.remote() for h in hosts])
    print(
        f"{len(set(pids))} host processes up ({per} Telemetry clients each) in "
        f"{time.monotonic() - t0:.1f}s; recorder pid {proc.pid}; store {store}",
        flush=True,
    )
    return rec, proc, hosts


def phase(proc: psutil.Process, seconds: float, every: float = 5.0) -> dict[str, Any]:
    """Sample the recorder for ``seconds``: CPU time delta, per-interval CPU %, RSS."""
    la0 = load()
    w0, c0 = time.monotonic(), cpu_s(proc)
    t0 = time.time()
    series = []
    last_w, last_c = w0, c0
    while (now := time.monotonic()) - w0 < seconds:
        time.sleep(min(every, seconds - (now - w0)))
        w, c = time.monotonic(), cpu_s(proc)
        series.append((100 * (c - last_c) / (w - last_w), proc.memory_info().rss / 2**20))
        last_w, last_c = w, c
    wall = time.monotonic() - w0
    return {
        "cpu_pct": 100 * (cpu_s(proc) - c0) / wall,
        "cpu_max": max(c for c, _ in series),
        "rss_end": series[-1][1],
        "wall": wall,
        "t0": t0,
        "t1": time.time(),
        "load": f"{la0} → {load()}",
    }


def cmd_workers(args: argparse.Namespace) -> None:
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S %Z')} load {load()}", flush=True)
    rec, proc, hosts = start(args, "scale_workers")
    probe = Host.remote(rec, args.workers, 1)
    ray.get(probe.ready.remote())
    lat = Latency(rec.job, args.refresh)
    # baseline: one worker
    run = probe.run.remote(args.baseline, args.hz)
    base = phase(proc, args.baseline)
    probe_stats: dict[str, Any] = ray.get(run)
    b_lat = lat.between(base["t0"], base["t1"])
    print(
        f"baseline (1 worker, {base['wall']:.0f}s): recorder CPU {base['cpu_pct']:.1f} % of a "
        f"core; latency p50 {pct(b_lat, 0.5):.3f}s p95 {pct(b_lat, 0.95):.3f}s "
        f"(n={len(b_lat)}); load avg {base['load']}",
        flush=True,
    )
    prev: list[dict[str, Any]] = [{} for _ in hosts]
    for hold in args.holds:  # load: every worker, once per client setting
        ray.get([h.set_hold.remote(hold) for h in hosts])
        s0: dict[str, Any] = ray.get(rec.actor.stats.remote())
        time.sleep(2)
        runs = [h.run.remote(args.duration, args.hz) for h in hosts]
        full = phase(proc, args.duration + 1.0)
        cumulative: list[dict[str, Any]] = ray.get(runs)
        # the senders' counters are per process, cumulative: this phase's share
        stats = [
            {
                k: v - p.get(k, 0) if type(v) is int and k not in ("reports", "splits") else v
                for k, v in c.items()
            }
            for c, p in zip(cumulative, prev)
        ]
        prev = cumulative
        s1: dict[str, Any] = ray.get(rec.actor.stats.remote())
        time.sleep(3)  # the last rows reach the LiveJob
        l_lat = lat.between(full["t0"], full["t1"])
        steady = lat.between(full["t0"] + 10, full["t1"])
        batches = sum(s["batches"] for s in stats)
        print(
            f"--- load: workers={args.workers} procs={args.procs} hz={args.hz} "
            f"duration={args.duration:g}s client MAX_HOLD={hold:g}s"
        )
        print(
            f"recorder CPU (process CPU time / wall): {full['cpu_pct']:.1f} % of a core "
            f"(max 5-s interval {full['cpu_max']:.1f} %); baseline {base['cpu_pct']:.1f} %; "
            f"ratio {full['cpu_pct'] / max(base['cpu_pct'], 1e-9):.1f}x"
        )
        print(
            f"live latency tel.metrics() → LiveJob subscriber (refresh {args.refresh:g}s): "
            f"p50 {pct(l_lat, 0.5):.3f}s p95 {pct(l_lat, 0.95):.3f}s "
            f"max {max(l_lat, default=float('nan')):.3f}s (n={len(l_lat)}); after its "
            f"first 10 s p95 {pct(steady, 0.95):.3f}s; baseline p95 {pct(b_lat, 0.95):.3f}s; "
            f"p95 ratio {pct(l_lat, 0.95) / pct(b_lat, 0.95):.2f}"
        )
        print(
            f"drops: clients dropped {sum(s['dropped'] for s in stats)}, recorder rejected "
            f"{s1['rejected_total'] - s0['rejected_total']}, backlog dropped "
            f"{s1['rows_dropped']}, write errors {s1['write_errors']}; envelopes sent "
            f"{sum(s['sent'] for s in stats)}, accepted "
            f"{s1['accepted'] - s0['accepted']}, duplicates {s1['duplicates']}; worker calls "
            f"{sum(s['reports'] + s['splits'] for s in stats)}; flushes "
            f"{s1['flushes'] - s0['flushes']}; ingest calls (senders' batches) {batches} = "
            f"{batches / full['wall']:.0f}/s; unflushed hosts "
            f"{sum(not s['flushed'] for s in stats)}"
        )
        print(f"recorder RSS end {full['rss_end']:.0f} MB; load average {full['load']}", flush=True)
    lat.stop()
    result = rec.finish("COMPLETED")
    print(
        f"recorder total: accepted {result['accepted']}, rejected {result['rejected_total']}, "
        f"duplicates {result['duplicates']}, flushes {result['flushes']}, write errors "
        f"{result['write_errors']}, probe dropped {probe_stats['dropped']}"
    )
    print(f"end {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)


def cmd_soak(args: argparse.Namespace) -> None:
    rec, proc, hosts = start(args, "scale_soak")
    with open(args.out, "w") as out:
        out.write(
            f"# {' '.join(sys.argv)}\n# start {time.strftime('%Y-%m-%d %H:%M:%S %Z')} "
            f"recorder pid {proc.pid}\n# elapsed_s\trss_mb\tcpu_s\tflushes\tload1\n"
        )
        idle = time.monotonic()
        time.sleep(10)
        out.write(
            f"# idle 10 s: rss {proc.memory_info().rss / 2**20:.1f} MB, cpu {cpu_s(proc):.2f} s\n"
        )
        runs = [h.run.remote(args.minutes * 60, args.hz) for h in hosts]
        t0 = time.monotonic()
        while True:
            el = time.monotonic() - t0
            now_stats: dict[str, Any] = ray.get(rec.actor.stats.remote())
            flushes = now_stats["flushes"]
            out.write(
                f"{el:.1f}\t{proc.memory_info().rss / 2**20:.1f}\t{cpu_s(proc):.2f}\t"
                f"{flushes}\t{os.getloadavg()[0]:.2f}\n"
            )
            out.flush()
            if el >= args.minutes * 60 + 5:
                break
            time.sleep(args.every)
        stats: list[dict[str, Any]] = ray.get(runs)
        result = rec.finish("COMPLETED")
        out.write(
            f"# end {time.strftime('%Y-%m-%d %H:%M:%S %Z')} accepted {result['accepted']} "
            f"rejected {result['rejected_total']} write_errors {result['write_errors']} "
            f"client dropped {sum(s['dropped'] for s in stats)} flushes {result['flushes']} "
            f"(idle start {time.monotonic() - idle:.0f}s ago)\n"
        )
    summarise(args.out)


def cmd_compaction(args: argparse.Namespace) -> None:
    """Appends and compactions only (no fold, no Ray), one simulated second per append:
    ``--workers`` worker_metrics rows at 2 Hz and a lineage row per worker per second,
    the recorder's own DatasetWriter and Compactor. RSS of this process every 50 s."""
    if args.target:
        dataset.TARGET_ROWS_PER_FRAGMENT = args.target
    print(
        f"target rows per fragment {dataset.TARGET_ROWS_PER_FRAGMENT}, compaction every "
        f"{COMPACT_EVERY} appends, {args.workers} workers, {args.seconds} simulated s; "
        f"load {load()}",
        flush=True,
    )
    root = tempfile.mkdtemp(prefix="scale_compaction_")
    compactor = dataset.Compactor()
    writers = {
        t: dataset.DatasetWriter(f"{root}/{t}.lance", SCHEMAS[t], schedule=compactor.submit)
        for t in ("worker_metrics", "lineage")
    }
    me = psutil.Process()
    t0 = 1764331200.0
    series = []
    started = time.monotonic()
    for s in range(args.seconds):
        wm, ln = [], []
        for w in range(args.workers):
            wid, stage = f"stage{w % 5}_w{w}_{w:06x}", f"stage{w % 5}"
            for h in (0, 1):
                n = 2 * s + h
                wm.append((t0 + s + h / 2, wid, stage, n * 10, n * 9, n, 0.01 * n, 20.0, 18.0))
            ln.append((t0 + s, f"{stage}_split_{w}_{s}", [], stage, wid, 10, 9, 0.01, "PROCESSED"))
        writers["worker_metrics"].append(to_arrow("worker_metrics", wm, "j", "a", s + 1))
        writers["lineage"].append(to_arrow("lineage", ln, "j", "a", s + 1))
        if s % 50 == 0:
            series.append((s, me.memory_info().rss / 2**20))
    compactor.close()
    after = next(r for s, r in series if s >= COMPACT_EVERY + 50)
    end = series[-1][1]
    print("RSS every 50 simulated s (MB):", " ".join(f"{r:.0f}" for _, r in series))
    print(
        f"RSS after the first compaction (s={COMPACT_EVERY + 50}) {after:.0f} MB → end "
        f"{end:.0f} MB: {end - after:+.0f} MB ({100 * (end / after - 1):+.1f} %); "
        f"{time.monotonic() - started:.0f}s wall; load {load()}"
    )


def summarise(path: str) -> None:
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                print(line.rstrip())
                continue
            el, rss, cpu, flushes, la = line.split("\t")
            rows.append((float(el), float(rss), float(cpu), int(flushes), float(la)))
    if len(rows) < 2:
        print("not enough samples")
        return
    after = next((r for r in rows if r[3] >= COMPACT_EVERY + 10), None)
    end = rows[-1]
    cpu = 100 * (end[2] - rows[0][2]) / (end[0] - rows[0][0])
    print(f"samples {len(rows)} over {end[0] / 60:.1f} min; recorder CPU {cpu:.1f} % of a core")
    print(f"RSS first sample {rows[0][1]:.0f} MB, max {max(r[1] for r in rows):.0f} MB")
    if after is not None:
        print(
            f"RSS after the first compaction cycle (t={after[0]:.0f}s, flush {after[3]}) "
            f"{after[1]:.0f} MB → end (t={end[0]:.0f}s) {end[1]:.0f} MB: growth "
            f"{100 * (end[1] / after[1] - 1):+.1f} % (target ≤ +5 %)"
        )
    per_min: dict[int, list[float]] = {}
    for r in rows:
        per_min.setdefault(int(r[0] // 60), []).append(r[1])
    print(
        "RSS per minute (MB, max):",
        " ".join(f"{max(v):.0f}" for _, v in sorted(per_min.items())),
    )
    print(
        "load average (1 min): median "
        f"{statistics.median(r[4] for r in rows):.2f}, max {max(r[4] for r in rows):.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("workers", help="N workers from P processes: CPU, latency, drops")
    w.add_argument("--duration", type=float, default=120.0)
    w.add_argument("--baseline", type=float, default=30.0)
    w.add_argument("--refresh", type=float, default=1.0)
    w.add_argument(
        "--holds",
        type=float,
        nargs="+",
        default=[client.MAX_HOLD],
        help="one load phase per client MAX_HOLD (s; 0 = send every tick), in this order",
    )
    s = sub.add_parser("soak", help="recorder RSS over a long run")
    s.add_argument("--minutes", type=float, default=60.0)
    s.add_argument("--every", type=float, default=10.0)
    s.add_argument("--out", default="/tmp/scale_soak.tsv")
    for p, workers, procs in ((w, 1000, 50), (s, 200, 10)):
        p.add_argument("--workers", type=int, default=workers)
        p.add_argument("--procs", type=int, default=procs)
        p.add_argument("--hz", type=float, default=2.0)
        p.add_argument("--flush", type=float, default=1.0)
    c = sub.add_parser("compaction", help="RSS of appends + compactions alone, in-process")
    c.add_argument("--workers", type=int, default=200)
    c.add_argument("--seconds", type=int, default=2400)
    c.add_argument("--target", type=int, default=0, help="rows per fragment (0: the store's)")
    m = sub.add_parser("summarise", help="summarise a soak's samples file")
    m.add_argument("path")
    args = ap.parse_args()
    if args.cmd == "workers":
        cmd_workers(args)
    elif args.cmd == "soak":
        cmd_soak(args)
    elif args.cmd == "compaction":
        cmd_compaction(args)
    else:
        summarise(args.path)


if __name__ == "__main__":
    main()
