"""Run history and comparison benchmarks (issue 10).

``history`` — ``si.history(job_id)`` of a job with 200 runs (attempts), each a crafted
5-stage run of 30 s (``tests/widget_jobs.crafted_run``: one worker per stage reporting
once a second, exceptions in some runs, one run in 20 FAILED, ±3 % noise on the rates),
recorded through real ``Recording`` s into one Lance store. Median of ``--repeat``
calls, alternating with ``si.regressions`` of the latest run. Baseline, same run: the
figures the obvious way, one ``JobSnapshot`` per attempt (``job.stage_summary()`` of
every attempt: the job monitor's full read), on ``--baseline-runs`` attempts and
scaled to all of them; and the floor, the catalog read alone (``store.attempts``).

``compare`` — ``si.compare`` of the 10 latest runs: build time (median of
``--repeat``) and the widget's state as it would travel (every comm message of the
build, JSON-encoded as the kernel would: bench/commtap.py), total and largest message.
Baseline, same run (alternating): ``si.job_monitor`` of the latest run, whose budget is
≤ 1 MB of initial state.

    .venv/bin/python bench/compare_bench.py --runs 200 --repeat 5

The store is built once under ``--store`` (default: a directory in /tmp kept between
invocations) and reused when it already holds the runs. Prints figures and baselines;
never fails on a number.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]

import comm  # noqa: E402
from jupyter_client.session import json_packer  # noqa: E402
from widget_jobs import crafted_run  # noqa: E402

import solstice_inspect as si  # noqa: E402

JOB = "bench_hist"
STAGES = {"source": 1000.0, "parse": 1000.0, "filter": 700.0, "enrich": 700.0, "sink": 700.0}


def build(store: si.Store, runs: int) -> float:
    """Record ``runs`` crafted runs of :data:`JOB` (those missing); return the seconds."""
    have = len(store.attempts(JOB))
    rnd = random.Random(10)
    t0 = time.perf_counter()
    for run in range(runs):
        noise = {s: r * rnd.uniform(0.97, 1.03) for s, r in STAGES.items()}
        if run < have:
            continue
        crafted_run(
            store, JOB, rates=noise, run=run, duration_s=30,
            selectivity={"filter": 0.7}, exceptions={"parse": run % 4},
            busy_s={s: 10.0 * rnd.uniform(0.9, 1.1) for s in STAGES},
            config={"io": {"batch": 256 if run % 2 else 512, "region": "eu"}, "seed": run % 3},
            status="FAILED" if run % 20 == 19 else "COMPLETED",
        )  # fmt: skip
        if (run + 1) % 20 == 0:
            print(f"  recorded {run + 1}/{runs} runs", flush=True)
    return time.perf_counter() - t0


class Tap:
    """Bytes of every comm message published (JSON-encoded as the kernel would, buffers
    included), and of the JS bundle code (``_esm`` / ``_css``) in them: a widget's own
    state is the difference (the bundles are the same ~0.9 MB for every widget of ours,
    and JupyterLab caches nothing of them either)."""

    def __enter__(self) -> Tap:
        self.messages: list[tuple[int, int]] = []
        self._orig = comm.DummyComm.publish_msg
        tap = self

        def publish_msg(self: Any, msg_type: str, data: Any = None, metadata: Any = None,
                        buffers: Any = None, **keys: Any) -> None:  # fmt: skip
            content = dict(data={} if data is None else data, comm_id=self.comm_id, **keys)
            size = len(json_packer(content)) + sum(memoryview(b).nbytes for b in buffers or ())
            state = (data or {}).get("state") or {} if isinstance(data, dict) else {}
            code = sum(len(str(state.get(k, "")).encode()) for k in ("_esm", "_css"))
            tap.messages.append((size, code))

        comm.DummyComm.publish_msg = publish_msg  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        comm.DummyComm.publish_msg = self._orig  # type: ignore[method-assign]

    def take(self) -> tuple[int, int, int, int]:
        """(messages, bytes without bundle code, bundle code bytes, largest message)."""
        out, self.messages = self.messages, []
        total = sum(n for n, _ in out)
        code = sum(c for _, c in out)
        largest = max((n - c for n, c in out), default=0)
        return len(out), total - code, code, largest


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_history(store: si.Store, repeat: int, baseline_runs: int) -> None:
    n = len(store.attempts(JOB))
    hist_t, regr_t, cat_t = [], [], []
    for _ in range(repeat):  # A/B/C: history, regressions (which reads as much), catalog
        dt, h = timed(lambda: si.history(JOB, store=store))
        hist_t.append(dt)
        dt, r = timed(lambda: si.regressions(JOB, store=store))
        regr_t.append(dt)
        dt, _ = timed(lambda: store.attempts(JOB))  # the catalog read alone: the floor
        cat_t.append(dt)
    assert len(h) == n
    ids = list(store.attempts(JOB)["attempt_id"])[-baseline_runs:]
    t0 = time.perf_counter()
    for aid in ids:
        store.job(JOB, attempt=aid).stage_summary()
    naive = (time.perf_counter() - t0) / len(ids) * n
    med = statistics.median(hist_t)
    print(f"\nhistory of {n} runs ({len(h.columns)} columns)")
    print(f"  si.history: median {med:.3f} s (runs: {', '.join(f'{t:.3f}' for t in hist_t)})")
    print(f"  si.regressions (latest run vs {r.attrs['runs']} earlier): median "
          f"{statistics.median(regr_t):.3f} s; {len(r)} flags; {r.attrs['note']}")  # fmt: skip
    print(f"  baseline, one JobSnapshot per attempt: {naive:.3f} s for {n} runs "
          f"(measured on {len(ids)}, scaled)")  # fmt: skip
    print(f"  ratio baseline / history: {naive / med:.1f}×")
    cat = statistics.median(cat_t)
    print(f"  floor, the catalog read alone (store.attempts): median {cat:.3f} s; "
          f"history / catalog read: {med / cat:.1f}×")  # fmt: skip


def bench_compare(store: si.Store, repeat: int) -> None:
    n = len(store.attempts(JOB))
    runs = [(JOB, k) for k in range(n - 9, n + 1)]
    figures: dict[str, list[Any]] = {"compare": [], "monitor": []}
    c: Any = None
    with Tap() as tap:
        for _ in range(repeat):  # A/B: compare, then the baseline
            tap.take()
            dt, c = timed(lambda: si.compare(*runs, store=store))
            figures["compare"].append((dt, *tap.take()))
            c.close()
            tap.take()
            dt, m = timed(lambda: si.job_monitor(store.job(JOB)))
            figures["monitor"].append((dt, *tap.take()))
            m.close()
            tap.take()
    print(f"\ncompare of 10 runs ({len(c.stages)} stages; {len(c.flags())} flags)")
    med = {}
    for name, rows in figures.items():
        t = statistics.median(r[0] for r in rows)
        msgs, state, code, largest = rows[-1][1:]
        med[name] = (t, state)
        label = "si.compare" if name == "compare" else "baseline si.job_monitor of one run"
        print(
            f"  {label}: build median {t:.3f} s (runs: {', '.join(f'{r[0]:.3f}' for r in rows)});"
            f" {msgs} comm messages, state {state / 1024:.1f} KiB + JS bundles "
            f"{code / 1024:.1f} KiB, largest message without code {largest / 1024:.1f} KiB"
        )
    print(
        f"  ratio compare / monitor: time {med['compare'][0] / med['monitor'][0]:.2f}×, "
        f"state {med['compare'][1] / med['monitor'][1]:.2f}×"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline-runs", type=int, default=20)
    ap.add_argument("--store", default=os.path.join("/tmp", "si_compare_bench"))
    args = ap.parse_args()
    store = si.connect(args.store)
    built = build(store, args.runs)
    print(f"store {args.store}: {args.runs} runs of {JOB} ({built:.1f} s to record new ones)")
    bench_history(store, args.repeat, args.baseline_runs)
    bench_compare(store, args.repeat)


if __name__ == "__main__":
    main()
