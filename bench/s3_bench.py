"""Recording throughput and live latency on an S3-compatible server vs the local disk.

A ``moto_server`` on a free loopback port (TESTING.md) holds ``s3://bench/...``; the
local store is a temp directory. Rounds alternate local and S3, the same work each:

- **throughput**: the deterministic demo stream (``demo.stream.simulate``) ingested in
  chunks, one flush per chunk (one append per table): envelopes per second from the first
  ingest to the last flush; then the seconds ``finish`` takes (the last compaction and
  the indices of every table).
- **live latency**: a recording flushing every ``--flush`` s and a ``LiveJob`` polling
  every ``--refresh`` s in a background thread; one worker report every 0.1 s, each with
  a new ``input_records`` value: the time from ``ingest`` to the subscriber seeing it.

Medians over rounds; the S3 figures with their ratio to the local ones, same run.

    .venv/bin/python bench/s3_bench.py --rounds 3 --seconds 40 --samples 60
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3

import solstice_inspect as si
from solstice_inspect.demo.stream import simulate
from solstice_inspect.protocol import envelope


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server():
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        options = {
            "aws_endpoint": f"http://127.0.0.1:{port}",
            "aws_region": "us-east-1",
            "aws_access_key_id": "bench",
            "aws_secret_access_key": "bench-secret",
        }
        boto3.client(
            "s3",
            endpoint_url=options["aws_endpoint"],
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        ).create_bucket(Bucket="bench")
        yield options
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def throughput(store, job_id: str, messages: list[dict], chunk: int) -> tuple[float, float]:
    """Envelopes/s from the first ingest to the last flush; seconds ``finish`` took."""
    started = time.perf_counter()
    rec = store.record(job_id, flush_interval=3600)
    for i in range(0, len(messages), chunk):
        rec.ingest(messages[i : i + chunk])
        rec.flush()
    flushed = time.perf_counter()
    rec.finish("COMPLETED")
    return len(messages) / (flushed - started), time.perf_counter() - flushed


def latency(store, job_id: str, samples: int, flush: float, refresh: float) -> list[float]:
    rec = store.record(job_id, flush_interval=flush)
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    lock = threading.Lock()

    def on_rows(rows):
        now = time.time()
        if "worker_metrics" in rows:
            with lock:
                for n in rows["worker_metrics"].column("input_records").to_pylist():
                    seen.setdefault(n, now)

    live = si.LiveJob(job_id, store=store, refresh=refresh, tables=["worker_metrics"])
    live.subscribe(on_rows)
    live.start()
    for n in range(1, samples + 1):
        payload = {"stage_id": "s", "input_records": n, "output_records": n}
        sent[n] = time.time()
        rec.ingest(envelope("worker_metrics", job_id, "s_w0_aaaaaa", sent[n], payload, n))
        time.sleep(0.1)
    rec.finish("COMPLETED")
    live.wait(timeout=60)
    live.stop()
    return [seen[n] - sent[n] for n in sent if n in seen]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=40.0, help="simulated job length")
    ap.add_argument("--chunk", type=int, default=500, help="envelopes per flush")
    ap.add_argument("--samples", type=int, default=60, help="live reports per round")
    ap.add_argument("--flush", type=float, default=0.2)
    ap.add_argument("--refresh", type=float, default=0.2)
    args = ap.parse_args()
    messages = list(simulate("bench_s3", duration_s=args.seconds))
    rates: dict[str, list[float]] = {"local": [], "s3": []}
    finishes: dict[str, list[float]] = {"local": [], "s3": []}
    lat: dict[str, list[float]] = {"local": [], "s3": []}
    with moto_server() as options, tempfile.TemporaryDirectory() as tmp:
        stores = {
            "local": si.connect(tmp),
            "s3": si.connect("s3://bench/store", storage_options=options),
        }
        for r in range(args.rounds):
            for kind in ("local", "s3") if r % 2 == 0 else ("s3", "local"):
                store = stores[kind]
                rate, finish = throughput(store, "bench_s3", messages, args.chunk)
                rates[kind].append(rate)
                finishes[kind].append(finish)
                got = latency(store, f"live_{r}", args.samples, args.flush, args.refresh)
                lat[kind].extend(got)
                print(
                    f"round {r + 1} {kind:5}: {rate:8.0f} envelopes/s, finish {finish:.2f} s, "
                    f"live p50 {statistics.median(got) * 1000:.0f} ms "
                    f"({len(got)}/{args.samples} seen)",
                    flush=True,
                )
    print(f"\n{len(messages)} envelopes per throughput round, {args.chunk} per flush")
    print(f"live: flush {args.flush} s, refresh {args.refresh} s, {args.samples} reports/round")
    local_rate, s3_rate = statistics.median(rates["local"]), statistics.median(rates["s3"])
    print(f"{'':22}{'local':>10}{'s3 (moto)':>12}{'s3/local':>10}")
    ratio = s3_rate / local_rate
    print(f"{'envelopes/s (median)':22}{local_rate:10.0f}{s3_rate:12.0f}{ratio:10.2f}")
    a, b = statistics.median(finishes["local"]), statistics.median(finishes["s3"])
    print(f"{'finish s (median)':22}{a:10.2f}{b:12.2f}{b / a:10.2f}")
    for name, q in (("live p50 ms", 0.5), ("live p95 ms", 0.95)):
        a, b = _pct(lat["local"], q) * 1000, _pct(lat["s3"], q) * 1000
        print(f"{name:22}{a:10.0f}{b:12.0f}{b / a:10.2f}")


if __name__ == "__main__":
    main()
