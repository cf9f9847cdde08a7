"""The job of issue 9's bounds, for tests/unit/test_view_bounds.py and
bench/bounds_bench.py: 100,000 lineage rows (one source split with 49,999 children, each
with one grandchild), 10,000 checkpoint rows (2,000 checkpoints × 5 stages, 4 partitions
each), 5,000 workers (lifecycle, two metrics reports and a resource sample each) and
50,000 exceptions (200 groups, hostile text in some), plus 20,000 log lines.

It starts from a finished simulated job (the 5 stages of the demo) and appends the rows
as Arrow, as the recorder stores them (``widget_jobs.append_rows``): folding ~300,000
envelopes would take minutes, the views read the same tables either way.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from widget_jobs import XSS, append_rows, archived_job

import solstice_inspect as si
from solstice_inspect.schema import OFFSET

TS = pa.timestamp("us", tz="UTC")
LINEAGE_ROWS = 100_000
CHECKPOINTS = 2_000  # × 5 stages = 10,000 rows
WORKERS = 5_000
EXCEPTIONS = 50_000
LOG_LINES = 20_000
GROUPS = 200
#: the split with 49,999 children
SOURCE_SPLIT = "big_src_0"


def _ts(start: float, seconds: np.ndarray) -> pa.Array:
    return pa.array(((start + seconds) * 1e6).astype("int64"), TS)


def bounds_job(store: si.Store, job_id: str = "bounds") -> si.Job:
    """Write the job (about 10 s on one core) and return it."""
    job = archived_job(store, job_id, duration_s=10)
    stages = [str(s) for s in job.dag.stages["stage_id"]]
    start = job.info["start_time"].timestamp()
    rng = np.random.default_rng(9)

    # ---------------------------------------------------------------- workers
    w_stage = [stages[i % len(stages)] for i in range(WORKERS)]
    w_ids = [f"{s}_w{i}_bnd{i:05x}" for i, s in enumerate(w_stage)]
    events = ["STARTED"] * WORKERS + [
        "FAILED" if i % 50 == 0 else "STOPPED" for i in range(WORKERS // 2)
    ]
    n = len(events)
    append_rows(store, job, "workers", {
        "ts": _ts(start, np.r_[np.full(WORKERS, 1.0), np.full(n - WORKERS, 9.0)]),
        "worker_id": (w_ids + w_ids[: n - WORKERS]),
        "stage_id": (w_stage + w_stage[: n - WORKERS]),
        "event": events,
        "reason": [None] * WORKERS + [
            f"worker died: {XSS}" if e == "FAILED" else "completed" for e in events[WORKERS:]
        ],
        "node_id": [f"node-{i % 40}" for i in range(n)],
        "processed_count": np.arange(n, dtype=np.int64) % 100,
    }, n)  # fmt: skip
    reps = np.repeat([2.0, 8.0], WORKERS)
    append_rows(store, job, "worker_metrics", {
        "ts": _ts(start, reps),
        "worker_id": w_ids * 2,
        "stage_id": w_stage * 2,
        "input_records": (reps * 10).astype(np.int64),
        "output_records": (reps * 9).astype(np.int64),
        "processed_count": reps.astype(np.int64),
        "processing_time": reps * 0.5,
        "output_rate": rng.random(2 * WORKERS) * 9,
    }, 2 * WORKERS)  # fmt: skip
    append_rows(store, job, "worker_resources", {
        "ts": _ts(start, np.full(WORKERS, 5.0)),
        "worker_id": w_ids,
        "stage_id": w_stage,
        "cpu_percent": rng.random(WORKERS) * 100,
        "memory_mb": rng.random(WORKERS) * 4000,
    }, WORKERS)  # fmt: skip

    # ---------------------------------------------------------------- lineage
    kids = [f"big_explode_{i}" for i in range(LINEAGE_ROWS // 2 - 1)]
    ids = [SOURCE_SPLIT, *kids, *[f"big_sink_{k}" for k in kids], "big_sink_extra"]
    parents = [[], *[[SOURCE_SPLIT]] * len(kids), *[[k] for k in kids], [SOURCE_SPLIT]]
    lin_stage = ["source"] + ["enrich"] * len(kids) + ["sink"] * (len(kids) + 1)
    n = len(ids)
    assert n == LINEAGE_ROWS
    append_rows(store, job, "lineage", {
        "ts": _ts(start, 1.0 + np.arange(n) * 8.0 / n),
        "split_id": ids,
        "parent_split_ids": parents,
        "stage_id": lin_stage,
        "worker_id": [w_ids[i % WORKERS] for i in range(n)],
        "input_records": np.ones(n, dtype=np.int64),
        "output_records": np.ones(n, dtype=np.int64),
        "processing_time": rng.random(n) * 0.05,
        "status": ["PROCESSED"] * n,
    }, n)  # fmt: skip

    # ---------------------------------------------------------------- checkpoints
    n = CHECKPOINTS * len(stages)
    k = np.repeat(np.arange(CHECKPOINTS), len(stages))
    trigger = 0.5 + k * 9.0 / CHECKPOINTS
    offsets = pa.array(
        [
            [
                {"partition_id": str(p), "topic": f"{stages[i % len(stages)]}_in",
                 "consumer_group": "g", "committed_offset": int(k[i] * 10 + p),
                 "latest_offset": int(k[i] * 10 + p + 5)}
                for p in range(4)
            ]
            for i in range(n)
        ],
        pa.list_(OFFSET),
    )  # fmt: skip
    append_rows(store, job, "checkpoints", {
        "ts": _ts(start, trigger + 0.002),
        "checkpoint_id": [f"chk_{int(i)}" for i in k],
        "stage_id": [stages[i % len(stages)] for i in range(n)],
        "status": ["FAILED" if i % 97 == 0 else "COMPLETED" for i in k],
        "trigger_time": _ts(start, trigger),
        "completion_time": _ts(start, trigger + 0.002),
        "duration_ms": np.full(n, 2.0),
        "state_size_bytes": (k * 1000).astype(np.int64),
        "offsets": offsets,
    }, n)  # fmt: skip

    # ---------------------------------------------------------------- exceptions
    n = EXCEPTIONS
    g = np.arange(n) % GROUPS
    frame = '  File "/app/stage.py", line {}, in decode_{}\n    value = decode(record)\n'
    stacks = [
        "Traceback (most recent call last):\n" + "".join(frame.format(j, i) for j in range(12))
        + f"ValueError: bad record {i} {XSS if i % 10 == 0 else ''}"
        for i in range(GROUPS)
    ]  # fmt: skip
    append_rows(store, job, "exceptions", {
        "ts": _ts(start, 1.0 + np.arange(n) * 8.0 / n),
        "exception_id": [f"exc_{i}" for i in range(n)],
        "fingerprint": [f"fp{i:04d}" for i in g],
        "exception_type": ["ValueError"] * n,
        "message": [f"bad record {i} in split big_explode_{i % 49_999} {XSS}" for i in range(n)],
        "stacktrace": [stacks[i] for i in g],
        "stage_id": [stages[i % len(stages)] for i in g],
        "worker_id": [w_ids[i % WORKERS] for i in range(n)],
        "split_id": [f"big_explode_{i % 49_999}" for i in range(n)],
        "truncated": np.zeros(n, dtype=bool),
    }, n)  # fmt: skip

    # ---------------------------------------------------------------- logs
    n = LOG_LINES
    append_rows(store, job, "logs", {
        "ts": _ts(start, 1.0 + np.arange(n) * 8.0 / n),
        "worker_id": [w_ids[i % WORKERS] for i in range(n)],
        "stage_id": [w_stage[i % WORKERS] for i in range(n)],
        "level": ["WARNING" if i % 7 == 0 else "INFO" for i in range(n)],
        "message": [f"line {i}: processed split big_explode_{i} {XSS}" for i in range(n)],
        "truncated": np.zeros(n, dtype=bool),
    }, n)  # fmt: skip
    return store.job(job_id)
