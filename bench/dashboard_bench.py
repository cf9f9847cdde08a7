"""Live dashboard benchmarks: what a running job's dashboard costs the kernel and the wire.

``live`` — one live update of a 100-worker job, poll included: what the user waits for
after the recorder has flushed, ``rows = m.live.poll(); m.update(rows)`` on a real
``JobMonitor`` (``si.job_monitor(job)``, its polling thread not started: the bench polls),
every comm message built and JSON-encoded as the kernel would (bench/commtap.py). Two
jobs recorded in the same run from the same simulated stream (5 stages × 20 workers,
``demo.stream.simulate``), one flush per simulated second through a real ``Recording``
(the store's own compaction every 100 appends, a catalog heartbeat every 5 simulated s):
one with 1 minute of history, one with 60 minutes. Their updates alternate (A/B); each
update ingests and flushes the next simulated second first (not timed: that is the
recorder's side, reported separately). The updates after a flush that compacted, the
one just before worker_metrics is compacted (most small fragments), and the ones at which
the charts re-snapshot (forced at updates N/4, N/2, 3N/4 by setting one series' point
count to ``max_points``) are reported apart from the rest. ``--profile``: cProfile the
long job's updates (it slows them: do not quote the ratio of such a run). Baseline, same
run: rebuilding the monitor from the store (``si.job_monitor(job)``), what a dashboard
without an incremental model would do.

``wide`` — a 1,000-worker job (5 stages × 200 workers) recorded live at real speed by a
``Recording`` in another process (flush 1 s), shown by ``si.job_monitor(job_id,
refresh=1)`` with its own polling thread: comm messages and bytes per second over 30 s
with the Stages tab shown, then 30 s with the Workers tab shown (a simulated front end
asks for the visible tables' first page whenever their version changes, as
js/lib/table.js does). Baseline, same run: the same with a 100-worker job.

    .venv/bin/python bench/dashboard_bench.py live --updates 120
    .venv/bin/python bench/dashboard_bench.py wide --seconds 30

Prints figures and baselines; never fails on a number.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import os
import pstats
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import lance

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]

from commtap import CommTap, Sent  # noqa: E402

import solstice_inspect as si  # noqa: E402
from solstice_inspect.demo.stream import simulate  # noqa: E402
from solstice_inspect.live import LiveJob  # noqa: E402
from solstice_inspect.store import layout  # noqa: E402
from solstice_inspect.store.dataset import DatasetWriter  # noqa: E402

#: (start, end, uri) of every compaction, on whichever thread ran it (perf_counter)
COMPACTIONS: list[tuple[float, float, str]] = []


def _timed_compact(orig: Any) -> Any:
    def compact(self: DatasetWriter) -> None:
        t = time.perf_counter()
        try:
            orig(self)
        finally:
            COMPACTIONS.append((t, time.perf_counter(), self.uri))

    return compact


def overlaps(a: float, b: float, uri: str | None = None) -> list[tuple[float, float, str]]:
    """Compactions running at some point in [a, b] (all of them known so far)."""
    return [c for c in COMPACTIONS if c[0] < b and c[1] > a and (uri is None or c[2] == uri)]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def versions() -> str:
    import anywidget
    import ipywidgets
    import pandas
    import pyarrow

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"python {sys.version.split()[0]} · pyarrow {pyarrow.__version__} · pylance "
        f"{lance.__version__} · pandas {pandas.__version__} · anywidget "
        f"{anywidget.__version__} · ipywidgets {ipywidgets.__version__} · nproc "
        f"{os.cpu_count()} · mem {mem:.1f} GiB"
    )


# ---------------------------------------------------------------------------- live
class SimJob:
    """A simulated job recorded one simulated second (= one flush) at a time."""

    def __init__(self, store: si.Store, job_id: str, total_s: float, workers_per_stage: int):
        msgs = list(simulate(job_id, duration_s=total_s, workers_per_stage=workers_per_stage))
        t0 = msgs[0]["timestamp"]
        by_sec: dict[int, list] = collections.defaultdict(list)
        for m in msgs:
            by_sec[int(m["timestamp"] - t0)].append(m)
        self.seconds = [by_sec[k] for k in range(max(by_sec) + 1)]
        self.pos = 0
        # flushes are made by step(); heartbeats by step() too (every 5 simulated s)
        self.rec = store.record(job_id, flush_interval=1e6, heartbeat_interval=1e6)
        self.job_id = job_id
        self.uri = layout.table_uri(store.root, job_id, self.rec.attempt_id, "worker_metrics")

    def step(self) -> tuple[float, int]:
        """Ingest and flush the next simulated second; (flush seconds, compactions).

        Compactions run on the recorder's own thread (store.dataset.Compactor) since
        commit a01f20e: the count is of those that finished during the flush; which
        updates a compaction ran beside is worked out afterwards from COMPACTIONS.
        """
        self.rec.ingest(self.seconds[self.pos])
        self.flush_start = time.perf_counter()
        wm = self.rec._writers.get("worker_metrics")
        self.wm_compactions = wm.compactions if wm is not None else 0
        before = sum(w.compactions for w in self.rec._writers.values())
        t = time.perf_counter()
        # the real recorder writes a catalog row only with a heartbeat (every 5 s) or a
        # status change; Recording.flush() writes one every time
        self.rec._flush(catalog_always=self.pos % 5 == 0)
        dt = time.perf_counter() - t
        self.pos += 1
        wm = self.rec._writers.get("worker_metrics")
        # this flush handed worker_metrics to the compactor
        self.wm_scheduled = bool(
            wm is not None and wm.compact_every and wm.appends % wm.compact_every == 0
        )
        return dt, sum(w.compactions for w in self.rec._writers.values()) - before

    def run_until(self, sim_s: int) -> float:
        t = time.perf_counter()
        while self.pos < sim_s:
            self.step()
        return time.perf_counter() - t

    def fragments(self) -> int:
        return len(lance.dataset(self.uri).get_fragments())


def monitor(job: si.Job) -> Any:
    """``si.job_monitor(job)`` without its polling thread (the bench polls)."""
    with mock.patch.object(LiveJob, "start", lambda self: self):
        return si.job_monitor(job, refresh=1.0)


def live_part(args: argparse.Namespace) -> None:
    print(versions())
    DatasetWriter.compact = _timed_compact(DatasetWriter.compact)  # type: ignore[method-assign]
    root = tempfile.mkdtemp(prefix="dash_bench_")
    jobs = {}
    for minutes in (1, args.long):
        store = si.connect(f"{root}/{minutes}min")
        t = time.perf_counter()
        sim = SimJob(store, f"live_{minutes}min", minutes * 60 + args.updates + 30, 20)
        gen = time.perf_counter() - t
        took = sim.run_until(minutes * 60)
        jobs[minutes] = sim
        print(
            f"history {minutes} min: {sim.pos} flushes in {took:.1f} s (+{gen:.1f} s to "
            f"simulate), worker_metrics fragments {sim.fragments()}",
            flush=True,
        )
    long = args.long
    res: dict[int, list[dict[str, Any]]] = {1: [], long: []}
    rebuild: dict[int, list[float]] = {1: [], long: []}
    with CommTap() as tap:
        mons = {}
        for minutes, sim in jobs.items():
            t = time.perf_counter()
            mons[minutes] = monitor(sim.rec.job())
            print(f"monitor of the {minutes}-min job built in {ms(time.perf_counter() - t)}")
        profiler = cProfile.Profile() if args.profile else None
        force_at = {args.updates * k // 4 for k in (1, 2, 3)}
        for minutes, m in mons.items():
            counts = m.charts._counts
            largest = max(max(c.values()) for c in counts.values())
            print(
                f"charts of the {minutes}-min job: {len(m.charts.data['throughput']['t'])} "
                f"throughput points sent, largest series {largest}"
                f" (re-snapshot above {m.charts.max_points}); re-snapshots forced at updates "
                f"{sorted(force_at)}"
            )
        for i in range(args.updates):
            order = (1, long) if i % 2 == 0 else (long, 1)
            for minutes in order:
                sim, m = jobs[minutes], mons[minutes]
                flush_s, compactions = sim.step()
                epoch = m.charts.epoch
                forced = i in force_at
                if forced:
                    # make this update's append pass max_points in one series, as a job
                    # does every ~1,000 s (2,000 s the first time): ChartsView.append then
                    # re-snapshots the charts from the whole stage_metrics history
                    counts = m.charts._counts["throughput"]
                    counts[next(iter(counts))] = m.charts.max_points
                tap.clear()
                if profiler is not None and minutes == long:
                    profiler.enable()
                t0 = time.perf_counter()
                rows = m.live.poll()
                t1 = time.perf_counter()
                m.update(rows)
                t2 = time.perf_counter()
                if profiler is not None:
                    profiler.disable()
                sent = tap.take()
                if m.errors.value:
                    raise SystemExit(f"monitor error: {m.errors.value[:2000]}")
                res[minutes].append(
                    {
                        "flush_start": sim.flush_start,
                        "t0": t0,
                        "t2": t2,
                        "wm_uri": sim.uri,
                        "wm_scheduled": sim.wm_scheduled,
                        "total": t2 - t0,
                        "poll": t1 - t0,
                        "update": t2 - t1,
                        "encode": tap.encode_s,
                        "flush": flush_s,
                        "compacted": compactions > 0,
                        "wm_compacted": sim.rec._writers["worker_metrics"].compactions
                        > sim.wm_compactions,
                        "resnapshot": m.charts.epoch != epoch,
                        "forced": forced,
                        "fragments": sim.fragments(),
                        "msgs": len(sent),
                        "bytes": sum(s.nbytes for s in sent),
                        "rows": sum(t.num_rows for t in rows.values()),
                    }
                )
        for m in mons.values():
            m.close()
        # baseline: rebuild the monitor (read everything, build every widget), alternating
        for k in range(args.rebuilds):
            for minutes in (1, long) if k % 2 == 0 else (long, 1):
                job = jobs[minutes].rec.job()
                t = time.perf_counter()
                m = monitor(job)
                rebuild[minutes].append(time.perf_counter() - t)
                m.close()
    for sim in jobs.values():
        sim.rec.close()
    shutil.rmtree(root, ignore_errors=True)
    # tag afterwards: a compaction started by one flush may end several updates later
    for rs in res.values():
        for r in rs:
            # a compaction ran beside this flush or this poll + update (same 2 cores)
            r["compacted"] = bool(overlaps(r["flush_start"], r["t2"]))
            r["compacting_update"] = bool(overlaps(r["t0"], r["t2"]))
    for minutes, sim in jobs.items():
        took = [c[1] - c[0] for c in COMPACTIONS if c[2].startswith(sim.uri.rsplit("/", 1)[0])]
        wm = [c[1] - c[0] for c in COMPACTIONS if c[2] == sim.uri]
        if took:
            print(
                f"compactions of the {minutes}-min job (background thread, incl. history "
                f"and close): {len(took)}, median {ms(statistics.median(took))}, max "
                f"{ms(max(took))}; worker_metrics: {', '.join(ms(x) for x in wm)}"
            )
    report_live(res, rebuild, args.updates)
    if profiler is not None:
        print("\ncProfile, the 60-min job's updates (poll + update), top 25 by cumulative time:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def report_live(
    res: dict[int, list[dict[str, Any]]], rebuild: dict[int, list[float]], n: int
) -> None:
    med = {}
    for minutes, rs in res.items():
        steady = [r for r in rs if not r["compacted"] and not r["resnapshot"]]
        tot = [r["total"] for r in steady]
        med[minutes] = statistics.median(tot)
        print(
            f"\n{minutes:>2}-min history, {n} updates ({len(steady)} steady, "
            f"{sum(r['compacted'] for r in rs)} beside a compaction, "
            f"{sum(r['resnapshot'] for r in rs)} chart re-snapshots):"
        )
        allt = [r["total"] for r in rs]
        print(
            f"   poll + update, all: median {ms(statistics.median(allt))}, p90 "
            f"{ms(pct(allt, 0.9))}, max {ms(max(allt))}"
        )
        print(
            f"   poll + update, steady: median {ms(med[minutes])}, p90 {ms(pct(tot, 0.9))}; "
            f"of which poll {ms(statistics.median(r['poll'] for r in steady))}, update "
            f"{ms(statistics.median(r['update'] for r in steady))} (JSON encoding "
            f"{ms(statistics.median(r['encode'] for r in steady))}); "
            f"{statistics.median(r['msgs'] for r in steady):.0f} msgs, "
            f"{statistics.median(r['bytes'] for r in steady) / 1000:.1f} kB, "
            f"{statistics.median(r['rows'] for r in steady):.0f} new rows per update; "
            f"recorder flush {ms(statistics.median(r['flush'] for r in steady))}"
        )
        for i, r in enumerate(rs):
            tags = []
            if r["compacted"]:
                tags.append(
                    "beside a compaction"
                    + (" (during poll + update)" if r["compacting_update"] else " (flush only)")
                )
            if r["wm_scheduled"]:
                tags.append("its flush scheduled worker_metrics' compaction")
            if i + 1 < len(rs) and rs[i + 1]["wm_scheduled"]:
                tags.append("just before worker_metrics is compacted")
            if r["resnapshot"]:
                tags.append("chart re-snapshot" + (" (forced)" if r["forced"] else ""))
            if tags:
                print(
                    f"   update #{i}: {', '.join(tags)}: poll + update {ms(r['total'])} (poll "
                    f"{ms(r['poll'])}, update {ms(r['update'])}), {r['msgs']} msgs, "
                    f"{r['bytes'] / 1000:.1f} kB, worker_metrics fragments {r['fragments']}; "
                    f"recorder flush {ms(r['flush'])}"
                )
        for what, sel in (
            ("beside a compaction (flush or update)", [r for r in rs if r["compacted"]]),
            (
                "just before worker_metrics is compacted (most fragments)",
                [r for i, r in enumerate(rs[:-1]) if rs[i + 1]["wm_scheduled"]],
            ),
            (
                "the flush that scheduled worker_metrics' compaction",
                [r for r in rs if r["wm_scheduled"]],
            ),
            ("chart re-snapshot", [r for r in rs if r["resnapshot"]]),
        ):
            if sel:
                tot = [r["total"] for r in sel]
                print(
                    f"   WORST {what}: poll + update median {ms(statistics.median(tot))}"
                    f", max {ms(max(r['total'] for r in sel))} (n={len(sel)}); sent median "
                    f"{statistics.median(r['bytes'] for r in sel) / 1000:.1f} kB, max "
                    f"{max(r['bytes'] for r in sel) / 1000:.1f} kB; recorder flush median "
                    f"{ms(statistics.median(r['flush'] for r in sel))}"
                )
        frag = sorted({r["fragments"] for r in steady})
        by_frag = [
            (f, statistics.median(r["total"] for r in steady if r["fragments"] == f))
            for f in (frag[0], frag[-1])
        ]
        print(
            "   by fragments of worker_metrics: "
            + ", ".join(f"{f} fragments → {ms(t)}" for f, t in by_frag)
        )
        rb = statistics.median(rebuild[minutes])
        print(
            f"   baseline, rebuild the monitor: median {ms(rb)} "
            f"({', '.join(ms(x) for x in rebuild[minutes])}); {rb / med[minutes]:.1f}× an update"
        )
    long = max(res)
    print(
        f"\nRESULT live: steady median 1-min {ms(med[1])}, {long}-min {ms(med[long])}, "
        f"ratio {long}/1 = {med[long] / med[1]:.2f}"
    )


# ---------------------------------------------------------------------------- wide
def feed_main(root: str, job_id: str, duration: float, wps: int) -> None:
    """Child process: record a simulated job live at real speed (flush 1 s)."""
    from widget_jobs import LiveFeed

    feed = LiveFeed(
        si.connect(root), job_id, duration_s=duration, speed=1.0, workers_per_stage=wps,
        flush_interval=1.0, xss=False,
    )  # fmt: skip
    print("FEED READY", flush=True)
    feed.start()
    feed.thread.join()


class FrontEnd:
    """Stand-in for js/lib/table.js: when a visible table's ``version`` changes, ask for
    its first page (answered in the main thread, as the kernel's shell handler would)."""

    def __init__(self, m: Any) -> None:
        self.m = m
        self.q: queue.Queue = queue.Queue()
        self.seen: dict[str, int] = {}
        self.pages = 0
        m.tabs.observe(lambda _c: self.q.put("tables"), names=["tables"])

    def visible(self) -> list[str]:
        tabs = self.m.tabs
        tab = next((t for t in tabs.tabs if t["id"] == tabs.selected), None)
        return list(tab.get("tables", [])) if tab else []

    def select(self, tab: str) -> None:
        self.m.tabs.selected = tab
        self.q.put("tables")

    def serve(self, until: float) -> None:
        while time.monotonic() < until:
            try:
                self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            tables = self.m.tabs.tables
            for name in self.visible():
                meta = tables.get(name, {})
                if self.seen.get(name) != meta.get("version"):
                    self.seen[name] = meta.get("version")
                    self.m.tabs.answer(
                        {"type": "page", "id": self.pages, "table": name, "offset": 0,
                         "limit": meta.get("page_size", 25), "sort": None, "filters": {}}
                    )  # fmt: skip
                    self.pages += 1


def summarise(sent: list[Sent], seconds: float) -> dict[str, Any]:
    by: dict[str, list[int]] = collections.defaultdict(list)
    for s in sent:
        key = f"{s.widget}:{s.method or s.msg_type}:{s.kind}"
        by[key].append(s.nbytes)
    return {
        "msgs_s": len(sent) / seconds,
        "bytes_s": sum(s.nbytes for s in sent) / seconds,
        "max": max((s.nbytes for s in sent), default=0),
        "by": sorted(((k, len(v), sum(v)) for k, v in by.items()), key=lambda x: -x[2]),
    }


def wide_one(workers_per_stage: int, seconds: float) -> dict[str, Any]:
    root = tempfile.mkdtemp(prefix="dash_wide_")
    job_id = f"wide_{workers_per_stage * 5}"
    duration = 2 * seconds + 40
    child = subprocess.Popen(
        [sys.executable, __file__, "_feed", root, job_id, str(duration), str(workers_per_stage)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        child.stdout.readline()  # FEED READY (the stream is simulated before this)
        time.sleep(8)  # some history, and the first flushes
        updates: list[float] = []
        with CommTap() as tap:
            t = time.perf_counter()
            m = si.job_monitor(job_id, store=root, refresh=1.0, wait=30)
            build = time.perf_counter() - t
            opened = tap.take()
            orig = m.update

            def timed(rows: Any) -> None:
                t0 = time.perf_counter()
                orig(rows)
                updates.append(time.perf_counter() - t0)

            m._unsubscribe()  # re-subscribe the timed update
            m._unsubscribe = m.live.subscribe(timed)
            fe = FrontEnd(m)
            fe.select("stages")
            fe.serve(time.monotonic() + 1.0)
            tap.clear()
            out: dict[str, Any] = {"build": build, "open": summarise(opened, 1.0)}
            for tab in ("stages", "workers"):
                fe.select(tab)
                n0 = len(updates)
                t0 = time.monotonic()
                fe.serve(t0 + seconds)
                sent = tap.take()
                out[tab] = summarise(sent, time.monotonic() - t0)
                out[tab]["updates"] = updates[n0:]
            out["errors"] = m.errors.value
            out["n_workers"] = m.snapshot.workers().num_rows
            m.close()
    finally:
        child.terminate()
        child.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    return out


def wide_part(args: argparse.Namespace) -> None:
    print(versions())
    results = {}
    for wps in (200, 20):  # 1,000 workers, then the 100-worker baseline
        results[wps] = r = wide_one(wps, args.seconds)
        print(
            f"\n{r['n_workers']} workers: monitor built in {ms(r['build'])}; on display it "
            f"opened {r['open']['msgs_s']:.0f} comms, {r['open']['bytes_s'] / 1e6:.2f} MB "
            f"(largest {r['open']['max'] / 1e6:.2f} MB)"
            + (f"; ERRORS: {r['errors'][:300]}" if r["errors"] else "")
        )
        for tab in ("stages", "workers"):
            s = r[tab]
            up = s["updates"]
            print(
                f"   {tab} tab shown, {args.seconds:.0f} s: {s['msgs_s']:.1f} msgs/s, "
                f"{s['bytes_s'] / 1000:.1f} kB/s, largest message {s['max'] / 1000:.1f} kB; "
                f"{len(up)} updates, update median {ms(statistics.median(up)) if up else '-'}"
                f", max {ms(max(up)) if up else '-'}"
            )
            for key, count, nbytes in s["by"][:8]:
                print(f"      {key:<55} {count:>4} msgs {nbytes / 1000:>9.1f} kB")
    big, small = results[200], results[20]
    for tab in ("stages", "workers"):
        print(
            f"RESULT wide, {tab} tab: 1,000 workers {big[tab]['msgs_s']:.1f} msgs/s, "
            f"{big[tab]['bytes_s'] / 1000:.1f} kB/s, max msg {big[tab]['max'] / 1000:.1f} kB; "
            f"baseline 100 workers {small[tab]['msgs_s']:.1f} msgs/s, "
            f"{small[tab]['bytes_s'] / 1000:.1f} kB/s; bytes ratio "
            f"{big[tab]['bytes_s'] / max(small[tab]['bytes_s'], 1):.1f}×"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_feed":
        feed_main(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="part", required=True)
    p = sub.add_parser("live")
    p.add_argument("--updates", type=int, default=120)
    p.add_argument("--rebuilds", type=int, default=4)
    p.add_argument("--long", type=int, default=60, help="minutes of history of the long job")
    p.add_argument("--profile", action="store_true", help="cProfile the 60-min updates")
    p = sub.add_parser("wide")
    p.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    print(time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    {"live": live_part, "wide": wide_part}[args.part](args)
    with contextlib.suppress(Exception):
        print(time.strftime("%Y-%m-%d %H:%M:%S %Z"))


if __name__ == "__main__":
    main()
