"""Store benchmark (issue 2): ingest speed, and opening worker_metrics vs a JSON-lines log.

Not a test: it prints figures and never fails on a number. Run it with

    .venv/bin/python bench/store_bench.py [--n 1000000] [--repeat 3]

What it measures, in one run, alternating A and B:

1. ingest: N worker_metrics envelopes (200 workers, cumulative counters) as JSON lines
   through ``Recording.ingest`` (parse, check, dedupe, fold, buffered Lance appends, with
   the real 1 s flush thread), single process; also from ready-made dicts.
2. open: load the attempt's worker_metrics into pandas from the store, against the
   baseline of appending the same envelopes to a JSON-lines file and re-parsing that
   file (with orjson, the fastest parser here) into the same DataFrame.
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

import lance
import orjson
import pandas as pd

import solstice_inspect as si
from solstice_inspect.store import layout

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


def ingest(store: si.Store, items: list) -> tuple[float, float, si.Job]:
    """(seconds in ingest(), seconds to finish: final flush + compaction, the job)."""
    rec = store.record("bench")
    t = time.perf_counter()
    rec.ingest(items)
    t_ingest = time.perf_counter() - t
    rec.finish("COMPLETED")
    return t_ingest, time.perf_counter() - t - t_ingest, rec.job()


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
    ap.add_argument("--skip-hour", action="store_true")
    args = ap.parse_args()
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.node()} nproc={os.cpu_count()} "
        f"python={platform.python_version()} pylance={lance.__version__} "
        f"pandas={pd.__version__} N={args.n:,}"
    )
    msgs = envelopes(args.n)
    lines = [orjson.dumps(m) for m in msgs]
    res: dict[str, list[float]] = {
        k: [] for k in ("ingest_json", "finish", "ingest_dict", "open", "jsonl_write", "jsonl_read")
    }
    for r in range(args.repeat):
        tmp = Path(tempfile.mkdtemp(prefix="si_bench_"))
        try:
            # alternate A (store) and B (JSON lines) within each repetition
            dt, fin, job = ingest(si.connect(tmp / f"s{r}"), lines)
            res["ingest_json"].append(dt)
            res["finish"].append(fin)
            res["jsonl_write"].append(jsonl_write(lines, tmp / "log.jsonl"))
            dt, n = open_store(job)
            res["open"].append(dt)
            dt, n2 = jsonl_read(tmp / "log.jsonl")
            res["jsonl_read"].append(dt)
            assert n == n2 == len(msgs), (n, n2)
            dt, _, _ = ingest(si.connect(tmp / f"d{r}"), msgs)
            res["ingest_dict"].append(dt)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    n = len(msgs)
    print(
        f"ingest JSON lines : {n / med['ingest_json']:>10,.0f} envelopes/s  "
        f"(median {med['ingest_json']:.2f} s of {res['ingest_json']})"
    )
    print(f"ingest dicts      : {n / med['ingest_dict']:>10,.0f} envelopes/s")
    print(f"finish (final flush + compaction): {med['finish']:.2f} s")
    print(f"JSONL append      : {n / med['jsonl_write']:>10,.0f} lines/s (baseline write)")
    print(
        f"open worker_metrics from store: {med['open']:.3f} s; JSONL re-parse: "
        f"{med['jsonl_read']:.3f} s; ratio {med['jsonl_read'] / med['open']:.1f}x faster"
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
