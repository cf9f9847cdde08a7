"""Prometheus exporter: scrape time for many jobs, vs reading the catalog alone.

    .venv/bin/python bench/exporter_bench.py [--jobs 100] [--stages 20] [--running 10]

Records ``--jobs`` finished jobs of ``--stages`` stages (one worker each, 10 windows) in a
temporary store, then times a full scrape (collect + text exposition, as Prometheus gets
it): the cold first one, warm ones (every finished attempt cached), and warm ones with
``--running`` more jobs recording (a new window of rows for each between scrapes). The
baseline, in the same run: ``Store.jobs()`` alone, the catalog read every scrape makes.
Also shown: the collector's own part of a scrape (``solstice_exporter_scrape_seconds``:
reading the store, building the samples) and prometheus_client's text exposition of the
same families alone (the floor any collector pays for that many series).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time

from prometheus_client import CollectorRegistry, generate_latest

import solstice_inspect as si
from solstice_inspect.ops.exporter import StoreCollector


def tick(job_id: str, stages: list[str], t: float, k: int) -> list[dict]:
    return [
        si.envelope("worker_metrics", job_id, f"{s}_w0", t + k, {
            "stage_id": s, "input_records": 10 * k, "output_records": 10 * k})
        for s in stages
    ]  # fmt: skip


def start(job_id: str, stages: list[str], t: float) -> list[dict]:
    edges = {a: [b] for a, b in itertools.pairwise(stages)}
    return [si.envelope("job_started", job_id, job_id, t, {"dag_edges": edges})]


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def scrapes(
    registry: CollectorRegistry, collector: StoreCollector, n: int, own: list[float]
) -> list[float]:
    """Wall times of ``n`` scrapes; ``own`` gets the collector's part of each."""
    out = []
    for _ in range(n):
        out += timed(lambda: generate_latest(registry), 1)
        own.append(collector.last_scrape_s or 0.0)
    return out


class Frozen:
    """The families of one scrape, re-served as they are: the text exposition alone."""

    def __init__(self, families: list) -> None:  # type: ignore[type-arg]
        self.families = families

    def collect(self):  # type: ignore[no-untyped-def]
        return self.families


def exposition_only(collector: StoreCollector, n: int) -> float:
    registry = CollectorRegistry()
    registry.register(Frozen(list(collector.collect())))
    return statistics.median(timed(lambda: generate_latest(registry), n))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--stages", type=int, default=20)
    ap.add_argument("--running", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    store = si.connect(tempfile.mkdtemp(prefix="exporter_bench_"))
    stages = [f"s{i:02d}" for i in range(a.stages)]
    t0 = time.time() - 600
    built = time.perf_counter()
    for j in range(a.jobs):
        job_id = f"job_{j:03d}"
        with store.record(job_id, flush_interval=60) as rec:
            msgs = start(job_id, stages, t0)
            for k in range(1, 11):
                msgs += tick(job_id, stages, t0, k)
            rec.ingest(msgs)
    print(f"store: {a.jobs} finished jobs x {a.stages} stages in "
          f"{time.perf_counter() - built:.1f} s ({store.root})")  # fmt: skip

    registry = CollectorRegistry()
    collector = StoreCollector(store)
    registry.register(collector)
    scrape = lambda: generate_latest(registry)  # noqa: E731
    cold = timed(scrape, 1)[0]
    series = generate_latest(registry).count(b"\n") - generate_latest(registry).count(b"# ")
    warm_own: list[float] = []
    warm = scrapes(registry, collector, a.repeat, warm_own)
    base = timed(store.jobs, a.repeat)
    warm_text = exposition_only(collector, a.repeat)

    recs, k = [], 11
    now = time.time()
    for j in range(a.running):
        job_id = f"run_{j:03d}"
        rec = store.record(job_id, flush_interval=0.2)
        rec.ingest(start(job_id, stages, now) + tick(job_id, stages, now, 1))
        rec.flush()
        recs.append(rec)
    timed(scrape, 1)  # the running ones' first read
    live, live_base, live_own = [], [], []
    for _ in range(a.repeat):
        for j, rec in enumerate(recs):
            rec.ingest(tick(f"run_{j:03d}", stages, now, k))
            rec.flush()
        k += 1
        live += scrapes(registry, collector, 1, live_own)
        live_base += timed(store.jobs, 1)
    live_series = generate_latest(registry).count(b"\n") - generate_latest(registry).count(b"# ")
    live_text = exposition_only(collector, a.repeat)
    for rec in recs:
        rec.finish()

    med = statistics.median
    print(f"series per scrape: {series}")
    print(f"baseline Store.jobs():            {med(base) * 1e3:8.1f} ms (median of {a.repeat})")
    print(f"cold first scrape:                {cold * 1e3:8.1f} ms  ({cold / med(base):.1f}x)")
    print(f"warm scrape, all cached:          {med(warm) * 1e3:8.1f} ms  "
          f"({med(warm) / med(base):.1f}x)")  # fmt: skip
    print(f"  of which the collector's part:  {med(warm_own) * 1e3:8.1f} ms")
    print(f"  text exposition alone:          {warm_text * 1e3:8.1f} ms")
    print(f"baseline with {a.running} running:           {med(live_base) * 1e3:8.1f} ms")
    print(f"scrape with {a.running} running (new rows):  {med(live) * 1e3:8.1f} ms  "
          f"({med(live) / med(live_base):.1f}x), {live_series} series")  # fmt: skip
    print(f"  of which the collector's part:  {med(live_own) * 1e3:8.1f} ms")
    print(f"  text exposition alone:          {live_text * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
