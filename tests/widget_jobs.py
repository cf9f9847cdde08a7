"""Jobs for the widget tests, UI tests and bench/ui_bench.py: a simulated archived job
with a hostile exception message, a job with 1M worker_metrics rows and one with 100,000
exceptions (both written as Arrow directly: folding that many envelopes would take
minutes), and a live job fed from a thread.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import numpy as np
import pyarrow as pa

import solstice_inspect as si
from solstice_inspect.demo.stream import simulate
from solstice_inspect.schema import SCHEMAS
from solstice_inspect.store import layout
from solstice_inspect.store.dataset import DatasetWriter

XSS = "<img src=x onerror=alert(1)>"


def xss_exception(job_id: str, ts: float) -> dict[str, Any]:
    return si.envelope(
        "exception",
        job_id,
        "parse_w0_abcdef",
        ts,
        {
            "stage_id": "parse",
            "worker_id": "parse_w0_abcdef",
            "exception_type": "ValueError",
            "message": XSS,
            "stacktrace": f'Traceback (most recent call last):\n  File "x.py", line 1\n{XSS}',
            "split_id": "source_split_1",
        },
        10_000,
    )


def archived_job(store: si.Store, job_id: str = "etl_archived", duration_s: float = 30) -> si.Job:
    """A finished simulated job (5 stages, faults, exceptions incl. :data:`XSS`)."""
    msgs = list(simulate(job_id, duration_s=duration_s))
    msgs.insert(len(msgs) // 2, xss_exception(job_id, msgs[len(msgs) // 2]["timestamp"]))
    with store.record(job_id) as rec:
        rec.ingest(msgs)
    return store.job(job_id)


def append_rows(store: si.Store, job: si.Job, table: str, columns: dict[str, Any], n: int) -> None:
    """Append ``n`` rows to one table of an attempt, as the recorder would store them
    (one fragment, ``batch`` 10,000: after every flush of the simulated job)."""
    schema = SCHEMAS[table]
    cols = {
        "job_id": pa.array([job.job_id] * n, pa.string()),
        "attempt_id": pa.array([job.attempt_id] * n, pa.string()),
        "batch": pa.array(np.full(n, 10_000, dtype=np.int64)),
        **columns,
    }
    arrays = [
        pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type) for f in schema
    ]
    uri = layout.table_uri(store.root, job.job_id, job.attempt_id, table)
    DatasetWriter(uri, schema, compact_every=0).append(pa.Table.from_arrays(arrays, schema=schema))


def big_job(
    store: si.Store,
    job_id: str = "etl_1m",
    *,
    workers: int = 1000,
    reports: int = 1000,
    windows: int = 10_000,
) -> si.Job:
    """An archived job with ``workers × reports`` worker_metrics rows (1M by default) and
    ``windows`` stage_metrics windows per stage, appended as Arrow to a simulated job."""
    job = archived_job(store, job_id, duration_s=10)
    stages = list(job.dag.stages["stage_id"])
    start = job.info["start_time"].timestamp()
    rng = np.random.default_rng(1)

    n = workers * reports
    w = np.tile(np.arange(workers), reports)
    r = np.repeat(np.arange(reports), workers)
    ts_us = ((start + 20 + r * 1.0) * 1e6).astype("int64")
    append_rows(
        store,
        job,
        "worker_metrics",
        {
            "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
            "worker_id": pa.array(
                [f"{stages[i % len(stages)]}_w{i}_big" for i in range(workers)]
            ).take(pa.array(w)),
            "stage_id": pa.array([stages[i % len(stages)] for i in range(workers)]).take(
                pa.array(w)
            ),
            "input_records": r * 10,
            "output_records": r * 9,
            "processed_count": r,
            "processing_time": r * 0.1,
            "input_rate": rng.random(n) * 10,
            "output_rate": rng.random(n) * 9,
        },
        n,
    )
    m = windows * len(stages)
    k = np.repeat(np.arange(windows), len(stages))
    append_rows(
        store,
        job,
        "stage_metrics",
        {
            "ts": pa.array(
                ((start + 20 + k * 0.1) * 1e6).astype("int64"), pa.timestamp("us", tz="UTC")
            ),
            "stage_id": pa.array(stages * windows),
            "workers_alive": np.full(m, workers // len(stages)),
            "input_records": k * 100,
            "output_records": k * 90,
            "input_rate": rng.random(m) * 1000,
            "output_rate": rng.random(m) * 900,
            "queue_lag": rng.integers(0, 8000, m),
            "backpressure_active": rng.random(m) > 0.7,
            "backpressure_ratio": rng.random(m),
            "skew_ratio": rng.random(m) * 3,
        },
        m,
    )
    return store.job(job_id)


#: the exception types of :func:`exceptions_job`, with a message template each
EXCEPTION_KINDS = [
    ("ValueError", "bad payload at offset {k} in {split}"),
    ("KeyError", "'customer_{k}' missing from {split}"),
    ("TimeoutError", "write to shard {k} timed out after 30 s ({split})"),
    ("JSONDecodeError", "Expecting value: line 1 column {k} ({split})"),
]


def exceptions_job(
    store: si.Store,
    job_id: str = "etl_100k_exc",
    *,
    n: int = 100_000,
    workers_per_stage: int = 8,
) -> si.Job:
    """An archived simulated job (with :data:`XSS` among its own exceptions) plus ``n``
    exception rows appended as Arrow: every stage, ``workers_per_stage`` distinct workers
    each, four exception types with varied messages, one fingerprint per (type, stage),
    and exception ids that are unique but not in storage order (a front end that quietly
    sorted by id would show other rows)."""
    job = archived_job(store, job_id, duration_s=10)
    stages = list(job.dag.stages["stage_id"])
    start = job.info["start_time"].timestamp()
    rng = np.random.default_rng(7)
    i = np.arange(n)
    stage = rng.integers(0, len(stages), n)
    worker = rng.integers(0, workers_per_stage, n)
    kind = rng.integers(0, len(EXCEPTION_KINDS), n)
    k = rng.integers(0, 5000, n)
    ids = rng.permutation(n)
    ts_us = ((start + 20 + i * 0.005 + rng.random(n) * 0.5) * 1e6).astype("int64")
    stage_ids = [stages[s] for s in stage]
    workers = [f"{stages[s]}_w{w}_{s * 131 + w * 17:04x}" for s, w in zip(stage, worker)]
    splits = [f"{stages[s]}_split_{x % 977}" for s, x in zip(stage, k)]
    types = [EXCEPTION_KINDS[x][0] for x in kind]
    messages = [EXCEPTION_KINDS[x][1].format(k=v, split=sp) for x, v, sp in zip(kind, k, splits)]
    append_rows(
        store,
        job,
        "exceptions",
        {
            "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
            "exception_id": [f"exc-{v:06d}" for v in ids],
            "fingerprint": [f"{t}@{s}" for t, s in zip(types, stage_ids)],
            "exception_type": types,
            "message": messages,
            "stacktrace": [
                f'Traceback (most recent call last):\n  File "/app/{s}.py", line {40 + x}, '
                f"in process\n{t}: {m}"
                for s, x, t, m in zip(stage_ids, kind, types, messages)
            ],
            "stage_id": stage_ids,
            "worker_id": workers,
            "split_id": splits,
            "truncated": np.zeros(n, dtype=bool),
        },
        n,
    )
    return store.job(job_id)


class LiveFeed:
    """Record a simulated job gradually from a thread, as a running job would.

    ``speed`` simulated seconds pass per real second; the attempt finishes COMPLETED at
    the end of the stream unless :meth:`stop` is called first. ``start``: the simulated
    job's first timestamp (epoch s; the simulation's fixed date when None).
    """

    def __init__(
        self,
        store: si.Store,
        job_id: str = "etl_live",
        *,
        duration_s: float = 60,
        speed: float = 4.0,
        workers_per_stage: int | None = None,
        flush_interval: float = 0.5,
        xss: bool = True,
        start: float | None = None,
    ) -> None:
        when = {} if start is None else {"start": start}
        self.msgs = list(
            simulate(job_id, duration_s=duration_s, workers_per_stage=workers_per_stage, **when)
        )
        if xss:
            self.msgs.insert(5, xss_exception(job_id, self.msgs[5]["timestamp"]))
        self.speed = speed
        self.rec = store.record(job_id, flush_interval=flush_interval)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="live-feed")

    def feed_until(self, sim_s: float) -> None:
        """Ingest (synchronously) the messages of the first ``sim_s`` simulated seconds."""
        t0 = self.msgs[0]["timestamp"]
        upto = next(
            (i for i, m in enumerate(self.msgs) if m["timestamp"] - t0 > sim_s), len(self.msgs)
        )
        self.rec.ingest(self.msgs[:upto])
        self.msgs = self.msgs[upto:]
        self.rec.flush()

    def start(self) -> LiveFeed:
        self.thread.start()
        return self

    def _run(self) -> None:
        if not self.msgs:
            return
        t_sim0, t_real0 = self.msgs[0]["timestamp"], time.monotonic()
        i = 0
        while i < len(self.msgs) and not self._stop.is_set():
            due = t_sim0 + (time.monotonic() - t_real0) * self.speed
            j = i
            while j < len(self.msgs) and self.msgs[j]["timestamp"] <= due:
                j += 1
            if j > i:
                self.rec.ingest(self.msgs[i:j])
                i = j
            time.sleep(0.05)
        if not self._stop.is_set():
            self.rec.finish("COMPLETED")

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        if self.rec.status == "RUNNING":
            self.rec.finish("CANCELLED")


#: the start of crafted run ``i`` (:func:`crafted_run`): runs an hour apart, oldest first
CRAFT_START = 1764331200.0


def crafted_run(
    store: si.Store,
    job_id: str,
    *,
    rates: dict[str, float],
    run: int = 0,
    duration_s: int = 10,
    edges: dict[str, list[str]] | None = None,
    selectivity: dict[str, float] | None = None,
    busy_s: dict[str, float] | None = None,
    exceptions: dict[str, int] | None = None,
    backpressured: tuple[str, ...] = (),
    partition_lags: dict[str, list[int]] | None = None,
    config: dict[str, Any] | None = None,
    status: str = "COMPLETED",
) -> si.Job:
    """A finished attempt of ``job_id`` with known figures, recorded from envelopes.

    One worker per stage reports once a second for ``duration_s`` seconds, from 0 to
    ``rates[s] * duration_s`` output records (so its mean output rate is exactly
    ``rates[s]``), ``output / selectivity[s]`` input records (default: input = output)
    and, at the end, ``busy_s[s]`` seconds of processing time (default 1.0). Stages in
    ``backpressured`` are backpressured the whole run (ratio 1.0); ``partition_lags``
    sets a stage's partition lags once (skew = max / mean); ``exceptions[s]`` exceptions
    are raised in stage ``s``. ``edges`` default to a chain of ``rates``' stages. The run
    starts ``run`` hours after :data:`CRAFT_START`.
    """
    stages = list(rates)
    if edges is None:
        edges = {u: [d] for u, d in itertools.pairwise(stages)}
    sel = selectivity or {}
    busy = busy_s or {}
    start = CRAFT_START + run * 3600.0
    msgs = [
        si.envelope(
            "job_started", job_id, job_id, start, {"dag_edges": edges, "config": config or {}}
        )
    ]
    for s, lags in (partition_lags or {}).items():
        parts = {f"p{i}": {"lag": lag} for i, lag in enumerate(lags)}
        msgs.append(si.envelope("stage_metrics", job_id, s, start, {"partition_metrics": parts}))
    for s in backpressured:
        msgs.append(si.envelope("backpressure", job_id, s, start, {"active": True}))
    for t in range(duration_s + 1):
        for s in stages:
            out = round(rates[s] * t)
            msgs.append(
                si.envelope(
                    "worker_metrics",
                    job_id,
                    f"{s}_w0_c0ffee",
                    start + t,
                    {
                        "stage_id": s,
                        "input_records": round(out / sel.get(s, 1.0)),
                        "output_records": out,
                        "processed_count": t,
                        "processing_time": busy.get(s, 1.0) * t / duration_s,
                    },
                    t,
                )
            )
    for s, n in (exceptions or {}).items():
        for k in range(n):
            msgs.append(
                si.envelope(
                    "exception",
                    job_id,
                    f"{s}_w0_c0ffee",
                    start + duration_s * (k + 0.5) / n,
                    {"stage_id": s, "exception_type": "ValueError", "message": f"bad row {k}"},
                )
            )
    msgs.sort(key=lambda m: m["timestamp"])
    end = start + duration_s
    final = "job_completed" if status == "COMPLETED" else "job_failed"
    msgs.append(
        si.envelope(
            final, job_id, job_id, end, {"status": status, "duration_ms": duration_s * 1000.0}
        )
    )
    with store.record(job_id) as rec:
        rec.ingest(msgs)
    return store.job(job_id)
