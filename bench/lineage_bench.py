"""Lineage benchmark (issue 9): a neighbourhood query on 1M lineage rows, and the lineage
view of a source split with 50,000 children.

Not a test: it prints figures and never fails on a number. Run it with

    .venv/bin/python bench/lineage_bench.py [--sources 250000] [--children 50000]
        [--repeat 5] [--base-repeat 3]

What it measures, in one run, alternating A and B:

1. ``job.trace(split, direction=…)`` on an archived job with ``4 × sources`` lineage rows
   (1M by default: source → parse → enrich → sink, where every enrich split reads two
   parse splits, a fan-in), for an up, a down and a both-ways walk; against the
   baseline of a plain pandas walk over the same columns read the same way (explode the
   parent lists, then one ``merge`` per hop), whose answer is checked to be the same
   edges. Both include reading the columns from the store. The read alone is printed too.
2. ``si.lineage_view(job, "src_split_0")`` on a job whose source split has ``children``
   children, each with one child: build time (read, graph, ≤ 300 nodes, ipycytoscape
   widgets, the clicked split's detail) and one "+N more" click, with the node count;
   against the same job's full ``trace(direction="down")`` (what an unbounded view
   would have to draw).
3. ``job.splits()`` on the 1M-row job (every row with its status), for scale.

Figures are medians of ``--repeat`` runs after one warm-up run (the pandas baseline:
``--base-repeat`` runs, alternating with ours), wall time and this process's CPU time.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from widget_jobs import append_rows  # noqa: E402

import solstice_inspect as si  # noqa: E402
from solstice_inspect.analysis.lineage import TRACE_COLUMNS  # noqa: E402

T0 = 1_764_331_200.0
TS = pa.timestamp("us", tz="UTC")


def lineage_job(store: si.Store, job_id: str, split_ids, parents, stages) -> si.Job:
    with store.record(job_id) as rec:
        rec.ingest([si.envelope("job_started", job_id, job_id, T0, {})])
    job = store.job(job_id)
    n = len(split_ids)
    append_rows(
        store,
        job,
        "lineage",
        {
            "ts": pa.array(((T0 + np.arange(n) * 1e-3) * 1e6).astype("int64"), TS),
            "split_id": split_ids,
            "parent_split_ids": parents,
            "stage_id": stages,
            "worker_id": [f"{s}_w{i % 50}_abcdef" for i, s in enumerate(stages)],
            "input_records": np.full(n, 512),
            "output_records": np.full(n, 500),
            "processing_time": np.full(n, 0.05),
            "status": ["PROCESSED"] * n,
        },
        n,
    )
    return store.job(job_id)


def big_job(store: si.Store, sources: int) -> si.Job:
    """source → parse → enrich (fan-in: parse_i and parse_{i+1}) → sink."""
    src = [f"source_split_{i}" for i in range(sources)]
    parse = [f"parse_{s}" for s in src]
    enrich = [f"enrich_{p}" for p in parse]
    sink = [f"sink_{e}" for e in enrich]
    parents = (
        [[] for _ in src]
        + [[s] for s in src]
        + [[p, parse[(i + 1) % sources]] for i, p in enumerate(parse)]
        + [[e] for e in enrich]
    )
    stages = ["source"] * sources + ["parse"] * sources + ["enrich"] * sources
    stages += ["sink"] * sources
    return lineage_job(store, "lineage_1m", src + parse + enrich + sink, parents, stages)


def fan_job(store: si.Store, children: int) -> si.Job:
    kids = [f"explode_{i}" for i in range(children)]
    ids = ["src_split_0", *kids, *[f"sink_{k}" for k in kids]]
    parents = [[], *[["src_split_0"] for _ in kids], *[[k] for k in kids]]
    stages = ["src"] + ["explode"] * children + ["sink"] * children
    return lineage_job(store, "lineage_fan", ids, parents, stages)


def pandas_walk(job: si.Job, split_id: str, direction: str) -> set[tuple[str, str]]:
    """The baseline: the same columns read the same way, then a merge per hop."""
    df = job.table("lineage", columns=TRACE_COLUMNS).to_pandas()
    edges = df[["split_id", "parent_split_ids"]].explode("parent_split_ids").dropna()
    edges = edges.rename(columns={"parent_split_ids": "parent"})
    found: set[tuple[str, str]] = set()
    ways = ["up", "down"] if direction == "both" else [direction]
    for way in ways:
        seen = {split_id}
        frontier = pd.DataFrame({"node": [split_id]})
        while len(frontier):
            key, other = ("split_id", "parent") if way == "up" else ("parent", "split_id")
            hop = frontier.merge(edges, left_on="node", right_on=key)
            found.update(zip(hop["split_id"], hop["parent"]))
            nxt = [x for x in pd.unique(hop[other]) if x not in seen]
            seen.update(nxt)
            frontier = pd.DataFrame({"node": nxt})
    return found


class Clock:
    """Wall and CPU seconds of this process (CPU time is what a quiet machine's wall time
    would be, for single-threaded work: the figures stay comparable when the machine is
    shared)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def run(self, fn) -> Any:
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        self.wall.append(time.perf_counter() - w)
        self.cpu.append(time.process_time() - c)
        return out

    def __str__(self) -> str:
        wall, cpu = statistics.median(self.wall), statistics.median(self.cpu)
        return f"{wall:.3f} s (CPU {cpu:.3f} s, n={len(self.wall)})"

    @property
    def median(self) -> float:
        return statistics.median(self.wall)


def timed(fn, repeat: int) -> tuple[Clock, Any]:
    fn()  # warm-up, not counted
    clock = Clock()
    out = None
    for _ in range(repeat):
        out = clock.run(fn)
    return clock, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=250_000)
    ap.add_argument("--children", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--base-repeat", type=int, default=3, help="runs of the slow baseline")
    args = ap.parse_args()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {mem:.0f} GiB, "
        f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}, pyarrow "
        f"{pa.__version__}, pandas {pd.__version__}, numpy {np.__version__}"
    )
    root = tempfile.mkdtemp(prefix="lineage_bench_")
    store = si.connect(root)
    start = time.perf_counter()
    job = big_job(store, args.sources)
    rows = job.table("lineage", columns=["split_id"]).num_rows
    print(f"\n1. trace on {rows:,} lineage rows (written in {time.perf_counter() - start:.1f} s)")
    mid = args.sources // 2
    cases = [
        ("up", f"sink_enrich_parse_source_split_{mid}"),
        ("down", f"source_split_{mid}"),
        ("both", f"enrich_parse_source_split_{mid}"),
    ]
    read, _ = timed(lambda: job.table("lineage", columns=TRACE_COLUMNS), args.repeat)
    print(f"   read of the {len(TRACE_COLUMNS)} columns alone: {read}")
    for direction, split in cases:
        job.trace(split, direction=direction)  # warm-up, not counted
        ours_clock, base_clock = Clock(), Clock()
        ours, base = None, None
        for _ in range(args.base_repeat):  # alternate A and B
            ours = ours_clock.run(lambda: job.trace(split, direction=direction))  # noqa: B023
            base = base_clock.run(lambda: pandas_walk(job, split, direction))  # noqa: B023
        for _ in range(args.repeat - args.base_repeat):  # more of A alone
            ours_clock.run(lambda: job.trace(split, direction=direction))  # noqa: B023
        assert isinstance(ours, pd.DataFrame)
        same = set(zip(ours["split_id"], ours["parent_split_id"])) == base
        ratio = base_clock.median / ours_clock.median
        print(
            f"   {direction:>4} from {split}: trace {ours_clock}, {len(ours)} edges · "
            f"pandas merge walk {base_clock} · ×{ratio:.1f} · same edges: {same}"
        )

    fan = fan_job(store, args.children)
    print(f"\n2. lineage_view of a source split with {args.children:,} children")
    build, view = timed(lambda: si.lineage_view(fan, "src_split_0", depth=2), args.repeat)
    nodes = len(view.cyto.graph.nodes)
    more = [n.data["label"] for n in view.cyto.graph.nodes if "more" in n.classes]
    key = next(iter(view.hood.more))
    click = Clock()
    click.run(lambda: view._on_click({"data": {"id": key}}))
    full, down = timed(lambda: fan.trace("src_split_0", direction="down", depth=2), 2)
    assert isinstance(down, pd.DataFrame)
    print(
        f"   build {build} ({nodes} nodes, {more}) · one '+N more' click {click} "
        f"({len(view.cyto.graph.nodes)} nodes) · unbounded: trace(down, depth=2) {full}, "
        f"{len(down):,} edges to draw"
    )

    print(f"\n3. splits() on {rows:,} rows")
    took, splits = timed(job.splits, max(args.repeat // 2, 1))
    assert isinstance(splits, pd.DataFrame)
    counts = splits["status"].value_counts().to_dict()
    print(f"   {took}, {len(splits):,} rows, statuses {counts}")
    print(f"\nload at the end: {os.getloadavg()[0]:.1f}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
