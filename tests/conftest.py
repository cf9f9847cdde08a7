"""Shared fixtures: a real Lance store on tmp_path and an envelope builder."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

import solstice_inspect as si


@pytest.fixture
def store(tmp_path) -> si.Store:
    return si.connect(tmp_path / "store")


@pytest.fixture
def msg() -> Callable[..., dict[str, Any]]:
    """Build envelopes of job ``j1``; sequence numbers count per source unless given."""
    counters: dict[str, itertools.count] = {}

    def make(
        mtype: str,
        source: str,
        ts: float,
        payload: dict | None = None,
        seq: int | str | None = "auto",
        job_id: str = "j1",
    ) -> dict[str, Any]:
        if seq == "auto":
            seq = next(counters.setdefault(source, itertools.count()))
        return si.envelope(mtype, job_id, source, ts, payload or {}, seq)

    return make


T0 = 1_764_331_200.0  # 2025-11-28 12:00:00 UTC


def started(msg, edges=None, stages=None, ts: float = T0) -> dict:
    edges = edges if edges is not None else {"src": ["mid"], "mid": ["sink"]}
    ids = stages or sorted({s for k, v in edges.items() for s in [k, *v]})
    return msg(
        "job_started",
        "j1",
        ts,
        {
            "dag_edges": edges,
            "stages": [
                {
                    "stage_id": s,
                    "operator_type": s.title(),
                    "min_parallelism": 1,
                    "max_parallelism": 2,
                }
                for s in ids
            ],
            "config": {"batch": 64},
        },
    )


def metrics(
    msg, worker: str, stage: str, ts: float, inp: int, out: int | None = None, seq="auto"
) -> dict:
    return msg(
        "worker_metrics",
        worker,
        ts,
        {
            "stage_id": stage,
            "input_records": inp,
            "output_records": inp if out is None else out,
            "processing_time": 0.5,
            "processed_count": 1,
        },
        seq=seq,
    )


@pytest.fixture(scope="module")
def advice_in_the_kernel_thread():
    """For tests that count what each action of a monitor sends: the run's advice
    (regressions), which a monitor in use computes in a background thread, is computed
    while the monitor is built, so that it never lands inside a measured action."""
    from solstice_inspect.widgets.monitor import JobMonitor

    patch = pytest.MonkeyPatch()
    original = JobMonitor.refresh_advice
    patch.setattr(JobMonitor, "refresh_advice", lambda self, wait=False: original(self, wait=True))
    yield
    patch.undo()
