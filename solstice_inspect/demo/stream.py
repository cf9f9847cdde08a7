"""A deterministic Solstice-shaped message stream, for the shipped sample, tests and
benchmarks. It is what a five-stage job would send (no Ray needed): every message type,
cumulative counters, a slow stage that builds backpressure, a failing worker, exceptions,
checkpoints with offsets and lineage ids in Solstice's format.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from solstice_inspect.protocol import envelope

STAGES = [
    ("source", "LanceSource", 2),
    ("parse", "JsonParse", 2),
    ("filter", "Filter", 2),
    ("enrich", "GeoEnrich", 3),
    ("sink", "LanceSink", 1),
]
EDGES = {"source": ["parse"], "parse": ["filter"], "filter": ["enrich"], "enrich": ["sink"]}
SELECTIVITY = {"source": 1.0, "parse": 1.0, "filter": 0.7, "enrich": 1.0, "sink": 1.0}
#: records per second the source emits (halved while enrich is backpressured)
SOURCE_RATE = 800.0
#: records per second one worker of each stage can process: enrich is the slow one
CAPACITY = {"parse": 700.0, "filter": 700.0, "enrich": 100.0, "sink": 2000.0}
SAMPLE_PATH = Path(__file__).with_name("sample.jsonl.gz")


def simulate(
    job_id: str = "sample_etl",
    *,
    duration_s: float = 60.0,
    start: float = 1764331200.0,
    report_hz: float = 2.0,
    workers_per_stage: int | None = None,
    splits_per_second: float = 4.0,
    faults: bool = True,
    seed: int = 7,
    capacity: dict[str, float] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield envelopes of one simulated job attempt in time order.

    Parameters
    ----------
    workers_per_stage
        Override every stage's parallelism (benchmarks use it for many workers).
    faults
        One enrich worker fails half way (and is replaced), parse raises on bad JSON.
    capacity
        Records per second one worker of a stage can process, for the stages given
        (default :data:`CAPACITY`): ``{"parse": 300}`` slows parse down, as a regression
        would.

    Examples
    --------
    >>> msgs = list(simulate(duration_s=5))
    >>> msgs[0]["message_type"], msgs[-1]["message_type"]
    ('job_started', 'job_completed')
    """
    unknown = sorted(set(capacity or {}) - set(CAPACITY))
    if unknown:
        raise ValueError(
            f"no stage {unknown[0]!r} to set a capacity for; stages: {', '.join(CAPACITY)}"
        )
    cap = {**CAPACITY, **(capacity or {})}
    rnd = random.Random(seed)
    seqs: dict[str, int] = {}

    def msg(mtype: str, source: str, ts: float, payload: dict[str, Any]) -> dict[str, Any]:
        seqs[source] = seqs.get(source, -1) + 1
        return envelope(mtype, job_id, source, round(ts, 6), payload, seqs[source])

    stages = [(s, op, workers_per_stage or n) for s, op, n in STAGES]
    yield msg(
        "job_started",
        job_id,
        start,
        {
            "dag_edges": EDGES,
            "stages": [
                {"stage_id": s, "operator_type": op, "min_parallelism": 1, "max_parallelism": n}
                for s, op, n in stages
            ],
            "config": {"source": "s3://events/2026-11-28/", "batch_size": 512, "seed": seed},
        },
    )
    workers: dict[str, list[dict[str, Any]]] = {}
    for s, op, n in stages:
        yield msg(
            "stage_started",
            s,
            start + 0.05,
            {"operator_type": op, "min_parallelism": 1, "max_parallelism": n},
        )
        workers[s] = []
        for i in range(n):
            wid = f"{s}_w{i}_{rnd.getrandbits(24):06x}"
            workers[s].append({"id": wid, "in": 0, "out": 0, "n": 0, "t": 0.0, "alive": True})
            yield msg(
                "worker_started",
                wid,
                start + 0.1,
                {
                    "stage_id": s,
                    "assigned_partitions": [i],
                    "node_id": f"node-{i % 2}",
                    "pid": 4000 + len(seqs),
                },
            )
    step = 1.0 / report_hz
    ticks = int(duration_s * report_hz)
    split_no = 0
    queue_lag = {s: 0 for s, _, _ in stages}
    bp = {s: False for s, _, _ in stages}
    failed_worker = None
    pending = dict.fromkeys(queue_lag, 0)  # records waiting in each stage's input queue
    downstream = {up: downs[0] for up, downs in EDGES.items()}
    k = 0
    # the source reads for ``duration_s``; then the job drains its queues, as a batch job does
    while k < ticks or (any(pending.values()) and k < 4 * ticks):
        k += 1
        ts = start + 0.2 + k * step
        throttled = bp["enrich"]  # Solstice slows the source while enrich is backpressured
        for s, _, _n in stages:
            alive = [w for w in workers[s] if w["alive"]]
            if not alive:
                continue
            if s == "source":
                budget = SOURCE_RATE * step * (0.5 if throttled else 1.0) if k <= ticks else 0
            else:
                budget = min(pending[s], cap[s] * step * len(alive))
            for i, w in enumerate(alive):
                share = budget / len(alive) * rnd.uniform(0.9, 1.1)
                got = int(min(share, budget)) if i < len(alive) - 1 else int(budget)
                budget -= got
                out = int(got * SELECTIVITY[s])
                if s != "source":
                    pending[s] -= got
                if s in downstream:
                    pending[downstream[s]] += out
                w["in"] += got
                w["out"] += out
                w["n"] += 1
                w["t"] += step * rnd.uniform(0.3, 0.9)
                yield msg(
                    "worker_metrics",
                    w["id"],
                    ts + rnd.uniform(0, 0.05),
                    {
                        "stage_id": s,
                        "input_records": w["in"],
                        "output_records": w["out"],
                        "processing_time": round(w["t"], 3),
                        "processed_count": w["n"],
                        "assigned_partitions": [0],
                        "is_running": True,
                    },
                )
            queue_lag[s] = pending[s]
        # splits with Solstice lineage ids
        for _ in range(int(splits_per_second * step) if k <= ticks else 0):
            src = f"source_split_{split_no}"
            split_no += 1
            parent = src
            for s, _, _ in stages:
                sid = src if s == "source" else f"{s}_{parent}"
                w = workers[s][split_no % len(workers[s])]
                yield msg(
                    "split_processed",
                    w["id"],
                    ts + 0.01,
                    {
                        "stage_id": s,
                        "split_id": sid,
                        "parent_split_ids": [] if s == "source" else [parent],
                        "input_records": 512,
                        "output_records": int(512 * SELECTIVITY[s]),
                        "processing_time": round(rnd.uniform(0.01, 0.2), 4),
                    },
                )
                parent = sid
        if k % int(report_hz) == 0:
            for s, _, n in stages:
                lag = queue_lag[s]
                if (lag > 5000 and not bp[s]) or (lag < 3500 and bp[s]):  # Solstice's hysteresis
                    bp[s] = not bp[s]
                    yield msg(
                        "backpressure",
                        s,
                        ts + 0.01,
                        {"active": bp[s], "queue_lag": lag, "slow_down_factor": 0.5},
                    )
                weights = [3 if i == 0 else 1 for i in range(n)]  # partition 0 is skewed
                parts = {}
                for i in range(n):
                    part_lag = lag * weights[i] // sum(weights)
                    committed = k * 40 + i
                    parts[str(i)] = {
                        "latest_offset": committed + part_lag,
                        "committed_offset": committed,
                        "lag": part_lag,
                    }
                alive = sum(1 for w in workers[s] if w["alive"])
                yield msg(
                    "stage_metrics",
                    s,
                    ts + 0.02,
                    {
                        "worker_count": alive,
                        "queue_lag": lag,
                        "backpressure_active": bp[s],
                        "partition_metrics": parts,
                    },
                )
            for w in workers["parse"]:
                yield msg(
                    "worker_resources",
                    w["id"],
                    ts + 0.04,
                    {
                        "stage_id": "parse",
                        "cpu_percent": round(rnd.uniform(40, 95), 1),
                        "memory_mb": round(rnd.uniform(300, 600), 1),
                        "node_id": "node-0",
                        "pid": 4242,
                    },
                )
        if faults and k % int(5 * report_hz) == 0:
            w = workers["parse"][0]
            line = rnd.randint(1, 90000)
            yield msg(
                "exception",
                w["id"],
                ts + 0.05,
                {
                    "stage_id": "parse",
                    "worker_id": w["id"],
                    "exception_type": "JSONDecodeError",
                    "message": f"Expecting ',' delimiter: line 1 column {line} (char {line - 1})",
                    "stacktrace": 'Traceback (most recent call last):\n  File "/app/stages.py",'
                    " line 88, in process_split\n    rec = json.loads(raw)\n"
                    "json.decoder.JSONDecodeError: Expecting ',' delimiter",
                    "split_id": f"parse_source_split_{split_no}",
                },
            )
            yield msg(
                "log",
                w["id"],
                ts + 0.05,
                {"level": "WARNING", "message": f"skipped malformed record {line}"},
            )
        if faults and failed_worker is None and k == ticks // 2:
            failed_worker = workers["enrich"][0]
            failed_worker["alive"] = False
            yield msg(
                "exception",
                failed_worker["id"],
                ts + 0.06,
                {
                    "stage_id": "enrich",
                    "exception_type": "RayActorError",
                    "message": "The actor died unexpectedly before finishing this task.",
                },
            )
            yield msg(
                "worker_stopped",
                failed_worker["id"],
                ts + 0.07,
                {
                    "stage_id": "enrich",
                    "reason": "failed: actor died",
                    "processed_count": failed_worker["n"],
                    "error_count": 1,
                },
            )
            new = {
                "id": f"enrich_w{len(workers['enrich'])}_{rnd.getrandbits(24):06x}",
                "in": 0,
                "out": 0,
                "n": 0,
                "t": 0.0,
                "alive": True,
            }
            workers["enrich"].append(new)
            yield msg(
                "worker_started",
                new["id"],
                ts + 0.5,
                {"stage_id": "enrich", "assigned_partitions": [0], "node_id": "node-1"},
            )
            yield msg(
                "event",
                job_id,
                ts + 0.5,
                {
                    "event_type": "worker_replaced",
                    "stage_id": "enrich",
                    "worker_id": new["id"],
                    "description": "replacement for the failed worker",
                },
            )
        if k % int(4 * report_hz) == 0:
            cid = f"chk_{k // int(4 * report_hz)}"
            for s, _, n in stages:
                yield msg(
                    "checkpoint",
                    s,
                    ts + 0.3,
                    {
                        "checkpoint_id": cid,
                        "status": "COMPLETED",
                        "trigger_time": ts,
                        "completion_time": ts + rnd.uniform(0.05, 0.3),
                        "state_size_bytes": 1024 * (k + 1),
                        "offsets": [
                            {
                                "partition_id": str(i),
                                "topic": f"{s}-in",
                                "consumer_group": s,
                                "committed_offset": k * 10,
                                "latest_offset": k * 10 + 3,
                            }
                            for i in range(n)
                        ],
                    },
                )
            yield msg(
                "custom_metric",
                "enrich",
                ts,
                {
                    "name": "geo_cache_hit_ratio",
                    "value": round(rnd.uniform(0.6, 0.9), 3),
                    "labels": {"cache": "lru"},
                },
            )
    end = start + 0.2 + k * step + 0.5
    for s, _, _ in stages:
        for w in workers[s]:
            if w["alive"]:
                yield msg(
                    "worker_stopped",
                    w["id"],
                    end - 0.2,
                    {
                        "stage_id": s,
                        "reason": "completed",
                        "processed_count": w["n"],
                        "error_count": 0,
                    },
                )
        yield msg("stage_completed", s, end - 0.1, {})
    totals = {s: sum(w["out"] for w in workers[s]) for s, _, _ in stages}
    yield msg(
        "job_completed",
        job_id,
        end,
        {
            "status": "COMPLETED",
            "duration_ms": round((end - start) * 1000, 3),
            "final_metrics": {"records_out": totals["sink"]},
        },
    )


def write_sample(path: Path = SAMPLE_PATH, **options: Any) -> Path:
    """Write the shipped sample stream (gzip'd JSON lines)."""
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for m in simulate(**options):
            fh.write(json.dumps(m, separators=(",", ":")) + "\n")
    return path
