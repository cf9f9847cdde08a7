"""Store benchmark (issues 2 and 8): ingest end to end, and opening worker_metrics vs a
JSON-lines log.

Not a test: it prints figures and never fails on a number. Run it with

    .venv/bin/python bench/store_bench.py [--n 1000000] [--repeat 3] [--chunk 10000]

What it measures, in one run, alternating A and B:

1. ingest, end to end: N worker_metrics envelopes (200 workers, cumulative counters) as
   JSON lines fed to ``Recording.ingest`` ``--chunk`` at a time, as a stream arrives, so
   that the recorder's own 1 s flush thread appends to Lance inside the timing; the
   clock stops after ``finish()`` (final flush + compaction). Reported per second of wall
   clock and per CPU second of the whole process (every thread: the flush thread, the
   compactor, Lance's own), since the machine this runs on is shared; also from
   ready-made dicts.
2. open: load the attempt's worker_metrics into pandas from the store, against two
   baselines over a JSON-lines file of the same envelopes: ``pyarrow.json`` (read, filter
   to the type, flatten, to_pandas: the fastest reader here) and an orjson loop.
3. a one-hour job at 1 s flushes (3,600 appends) read back, compacted on the way by the
   recorder's own policy, against the same rows read from a fully compacted dataset.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lance
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as _pc
import pyarrow.json as pj

import solstice_inspect as si
from solstice_inspect.store import layout

#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

WORKERS = 200
COLUMNS = [
    "ts",
    "worker_id",
    "stage_id",
    "input_records",
    "output_records",
    "processed_count",
    "processing_time",
]


def envelopes(n: int) -> list[dict]:
    out = []
    t0 = 1_764_331_200.0
    for i in range(n // WORKERS):
        for w in range(WORKERS):
            out.append(
                si.envelope(
                    "worker_metrics",
                    "bench",
                    f"map_w{w}_{w:06x}",
                    t0 + i * 0.5 + w * 1e-4,
                    {
                        "stage_id": f"stage{w % 5}",
                        "input_records": i * 100,
                        "output_records": i * 90,
                        "processing_time": i * 0.1,
                        "processed_count": i,
                        "assigned_partitions": [w],
                        "is_running": True,
                    },
                    i,
                )
            )
    return out


def ingest(store: si.Store, items: list, chunk: int) -> dict:
    """Feed ``items`` ``chunk`` at a time, then finish; wall and process CPU seconds of
    the feeding alone and of the whole (finish included), the flushes made while feeding,
    and the job."""
    rec = store.record("bench")
    flushes0 = rec.flushes
    w0, c0 = time.perf_counter(), time.process_time()
    for k in range(0, len(items), chunk):
        rec.ingest(items[k : k + chunk])
    w1, c1 = time.perf_counter(), time.process_time()
    flushes = rec.flushes - flushes0
    rec.finish("COMPLETED")
    w2, c2 = time.perf_counter(), time.process_time()
    assert rec.stats["accepted"] == len(items), rec.stats
    return {
        "wall_feed": w1 - w0,
        "cpu_feed": c1 - c0,
        "wall": w2 - w0,
        "cpu": c2 - c0,
        "flushes": flushes,
        "job": rec.job(),
    }


def open_store(job: si.Job) -> tuple[float, int]:
    t = time.perf_counter()
    df = si.connect(job.store.root).job("bench").worker_metrics(columns=COLUMNS)
    return time.perf_counter() - t, len(df)


def jsonl_write(lines: list[bytes], path: Path) -> float:
    t = time.perf_counter()
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(line + b"\n")
    return time.perf_counter() - t


def jsonl_read(path: Path) -> tuple[float, int]:
    """The same DataFrame through an orjson loop over the lines."""
    t = time.perf_counter()
    rows = []
    with open(path, "rb") as fh:
        for line in fh:
            m = orjson.loads(line)
            if m["message_type"] == "worker_metrics":
                p = m["payload"]
                rows.append(
                    (
                        m["timestamp"],
                        m["source_id"],
                        p["stage_id"],
                        p["input_records"],
                        p["output_records"],
                        p["processed_count"],
                        p["processing_time"],
                    )
                )
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["ts"] = pd.to_datetime(df["ts"], unit="s", utc=True)
    df = df.sort_values("ts", kind="stable").reset_index(drop=True)
    return time.perf_counter() - t, len(df)


def jsonl_read_arrow(path: Path) -> tuple[float, int]:
    """The same DataFrame through pyarrow.json: read, filter to the type, flatten,
    to_pandas (timestamps converted as the store stores them)."""
    t = time.perf_counter()
    table = pj.read_json(path)
    table = table.filter(pc.equal(table["message_type"], "worker_metrics")).flatten()
    micros = pc.round(pc.multiply(table["timestamp"], 1_000_000.0)).cast(pa.int64())
    df = pa.table(
        {
            "ts": micros.cast(pa.timestamp("us", tz="UTC")),
            "worker_id": table["source_id"],
            **{c: table[f"payload.{c}"] for c in COLUMNS[2:]},
        }
    ).to_pandas()
    return time.perf_counter() - t, len(df)


def one_hour(tmp: Path) -> tuple[float, float, int, int]:
    """3,600 appends of 200 rows (1 s flushes for an hour), then read back."""
    store = si.connect(tmp / "hour")
    rec = store.record("bench", flush_interval=3600)
    msgs = envelopes(200 * 3600)
    for k in range(3600):
        rec.ingest(msgs[k * 200 : (k + 1) * 200])
        rec.flush()
    job = rec.job()
    uri = layout.table_uri(store.root, job.job_id, job.attempt_id, "worker_metrics")
    fragments_live = len(lance.dataset(uri).get_fragments())
    t = time.perf_counter()
    n = job.table("worker_metrics").num_rows
    live = time.perf_counter() - t
    rec.finish("COMPLETED")
    ds = lance.dataset(uri)
    ds.optimize.compact_files()
    t = time.perf_counter()
    assert lance.dataset(uri).to_table().num_rows == n
    compacted = time.perf_counter() - t
    return live, compacted, fragments_live, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=10_000, help="envelopes per ingest() call")
    ap.add_argument("--skip-hour", action="store_true")
    args = ap.parse_args()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {platform.node()} nproc={os.cpu_count()} "
        f"load={os.getloadavg()[0]:.1f} python={platform.python_version()} "
        f"pylance={lance.__version__} pyarrow={pa.__version__} pandas={pd.__version__} "
        f"orjson={orjson.__version__} N={args.n:,} chunk={args.chunk:,} "
        f"solstice_inspect={Path(si.__file__).parent}"
    )
    msgs = envelopes(args.n)
    lines = [orjson.dumps(m) for m in msgs]
    runs: dict[str, list[dict]] = {"json": [], "dict": []}
    res: dict[str, list[float]] = {k: [] for k in ("open", "jsonl_write", "orjson", "pa_json")}
    for r in range(args.repeat):
        tmp = Path(tempfile.mkdtemp(prefix="si_bench_"))
        try:
            # alternate A (store) and B (JSON lines) within each repetition
            run = ingest(si.connect(tmp / f"s{r}"), lines, args.chunk)
            runs["json"].append(run)
            res["jsonl_write"].append(jsonl_write(lines, tmp / "log.jsonl"))
            dt, n = open_store(run["job"])
            res["open"].append(dt)
            dt, n2 = jsonl_read(tmp / "log.jsonl")
            res["orjson"].append(dt)
            dt, n3 = jsonl_read_arrow(tmp / "log.jsonl")
            res["pa_json"].append(dt)
            assert n == n2 == n3 == len(msgs), (n, n2, n3)
            runs["dict"].append(ingest(si.connect(tmp / f"d{r}"), msgs, args.chunk))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    n = len(msgs)
    for kind, label in (("json", "JSON lines"), ("dict", "dicts     ")):
        got = runs[kind]

        def median(key: str, got: list[dict] = got) -> float:
            return statistics.median(x[key] for x in got)

        print(
            f"ingest {label} end to end: {n / median('wall'):>9,.0f} envelopes/s wall, "
            f"{n / median('cpu'):>9,.0f} per CPU-s (median {median('wall'):.2f} s wall / "
            f"{median('cpu'):.2f} CPU-s; runs wall {[round(x['wall'], 2) for x in got]}, "
            f"CPU {[round(x['cpu'], 2) for x in got]})"
        )
        print(
            f"  of which feeding ingest(): {n / median('wall_feed'):>9,.0f}/s wall, "
            f"{n / median('cpu_feed'):>9,.0f} per CPU-s, flushes while feeding "
            f"{[x['flushes'] for x in got]}; "
            f"finish() {median('wall') - median('wall_feed'):.2f} s wall"
        )
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"JSONL append      : {n / med['jsonl_write']:>10,.0f} lines/s (baseline write)")
    print(
        f"open worker_metrics from store: {med['open']:.3f} s (runs "
        f"{[round(x, 3) for x in res['open']]}); pyarrow.json: {med['pa_json']:.3f} s, "
        f"ratio {med['pa_json'] / med['open']:.1f}x; orjson loop: {med['orjson']:.3f} s, "
        f"ratio {med['orjson'] / med['open']:.1f}x"
    )
    if not args.skip_hour:
        tmp = Path(tempfile.mkdtemp(prefix="si_bench_hour_"))
        try:
            live, compacted, frags, rows = one_hour(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(
            f"one-hour job (3,600 appends, {rows:,} rows): read while running "
            f"{live:.3f} s with {frags} fragments; fully compacted {compacted:.3f} s; "
            f"ratio {live / compacted:.2f}"
        )


if __name__ == "__main__":
    main()
