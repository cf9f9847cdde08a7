"""The reference pipeline: a real Ray job that behaves like Solstice, recorded live.

source → parse → filter → enrich → sink. Each stage is a pool of Ray actors named
``{stage_id}:{worker_id}`` (Solstice ids ``{stage}_w{n}_{hex6}``); the driver plays the
stage masters: it moves splits through bounded, partitioned queues with offsets, throttles
a producer whose output queue is full (enrich is deliberately slow, so backpressure
builds), commits offsets and checkpoints them every few seconds. The sink writes a real
Lance table of the processed events.

Faults on request: parse raises on malformed JSON lines, a parse worker is killed
mid-run (``ray.kill``) and replaced, and one enrich worker runs on a "slow node". With
``hang_s`` one enrich split hangs that long in a ``time.sleep`` (a straggler: its
worker's telemetry raises an incident with the sleeping stack; ``solstice-inspect demo
--faults`` and :func:`run_demo` with faults hang it for ``DEMO_HANG_S``).

Examples
--------
>>> from solstice_inspect.demo.pipeline import run_demo
>>> job = run_demo(job_id="demo_etl", duration=10, faults=True)   # doctest: +SKIP
>>> job.stage_summary()                                           # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from solstice_inspect.api import Job, Store, connect
from solstice_inspect.demo.workers import OPERATORS, PartitionedQueue, StageWorker
from solstice_inspect.protocol import envelope
from solstice_inspect.recorder.actor import NAMESPACE, JobRecorder

log = logging.getLogger("solstice_inspect.demo")

STAGES = ["source", "parse", "filter", "enrich", "sink"]
EDGES = {"source": ["parse"], "parse": ["filter"], "filter": ["enrich"], "enrich": ["sink"]}
PARALLELISM = {"source": 1, "parse": 2, "filter": 1, "enrich": 2, "sink": 1}
#: seconds the straggler split of the demo with faults hangs
DEMO_HANG_S = 30.0

_RemoteWorker = ray.remote(num_cpus=0, max_restarts=0)(StageWorker)


def new_worker_id(stage_id: str, n: int) -> str:
    """A Solstice worker id: ``{stage_id}_w{n}_{hex6}``."""
    return f"{stage_id}_w{n}_{secrets.token_hex(3)}"


@dataclass
class Slot:
    """One worker of a stage as the driver sees it."""

    stage_id: str
    worker_id: str
    handle: Any
    partitions: list[int]
    busy: Any = None  # the ObjectRef of the split being processed
    draining: bool = False
    alive: bool = True


@dataclass
class DemoResult:
    """What a run did, as the pipeline itself counted it (the ground truth for tests)."""

    job: Job | None
    truth: dict[str, dict[str, int]]
    sink_uri: str
    sink_rows: int
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)
    replacements: list[str] = field(default_factory=list)
    checkpoints: int = 0
    exceptions: list[tuple[str, str, str]] = field(default_factory=list)  # stage, worker, split
    recorder_killed: bool = False
    #: killed for good (ray.kill), not restarted by Ray
    recorder_gone: bool = False
    crashed: str | None = None
    flushed_before_kill: dict[str, tuple[int, int]] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def telemetry_dropped(self) -> int:
        """Messages the workers' telemetry clients dropped (summed over workers)."""
        return sum(int(w.get("telemetry", {}).get("dropped", 0)) for w in self.workers.values())


def _ensure_ray() -> None:
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)


class _Driver:
    """The stage masters of one run (single-threaded event loop over ObjectRefs)."""

    def __init__(self, rec: JobRecorder | None, job_id: str, opts: dict[str, Any]) -> None:
        self.rec = rec
        self.job_id = job_id
        self.opts = opts
        cap, parts = int(opts["queue_capacity"]), int(opts["partitions"])
        self.queues = {
            down: PartitionedQueue(f"{up}->{down}", parts, cap)
            for up, downs in EDGES.items()
            for down in downs
        }
        self.slots: dict[str, list[Slot]] = {s: [] for s in STAGES}
        self.counts = dict.fromkeys(STAGES, 0)  # workers ever started per stage
        self.inflight: dict[Any, tuple[Slot, Any]] = {}
        self.truth = {
            s: {"input_records": 0, "output_records": 0, "splits": 0, "errors": 0} for s in STAGES
        }
        self.stage_tel = {s: rec.telemetry(stage_id=s) for s in STAGES} if rec else {}
        self.next_split = 0
        self.checkpoint_n = 0
        self.blocked = dict.fromkeys(STAGES, False)  # backpressure state per stage
        self.finished_workers: dict[str, dict[str, Any]] = {}
        self.result_extra: dict[str, Any] = {"killed": [], "replacements": [], "exceptions": []}

    # -------------------------------------------------------------- workers
    def start_worker(self, stage_id: str, partitions: list[int]) -> Slot:
        n = self.counts[stage_id]
        self.counts[stage_id] += 1
        worker_id = new_worker_id(stage_id, n)
        options = dict(self.opts["worker_options"])
        if stage_id == "enrich" and self.opts["faults"] and n == 1:
            options["slow_factor"] = 3.0  # the "slow node"
        if stage_id == "enrich" and n == 0 and self.opts.get("hang_s"):
            options["hang_s"] = self.opts["hang_s"]  # one split of it hangs (a straggler)
        tel = None
        if self.rec is not None:
            tel = self.rec.telemetry(
                stage_id=stage_id,
                worker_id=worker_id,
                detect_stragglers=self.opts.get("detect_stragglers", True),
            )
        handle = _RemoteWorker.options(name=f"{stage_id}:{worker_id}", namespace=NAMESPACE).remote(
            stage_id, worker_id, tel, partitions=partitions, options=options
        )
        slot = Slot(stage_id, worker_id, handle, partitions)
        self.slots[stage_id].append(slot)
        return slot

    def start_all(self) -> None:
        parts = int(self.opts["partitions"])
        for stage_id in STAGES:
            n = PARALLELISM[stage_id]
            for i in range(n):
                self.start_worker(stage_id, [p for p in range(parts) if p % n == i])
        # every actor up before the clock starts (startup is slow on small machines)
        ray.get([s.handle.pid.remote() for slots in self.slots.values() for s in slots])
        for stage_id in STAGES:
            self._stage_message("stage_started", stage_id)

    def _stage_message(self, mtype: str, stage_id: str) -> None:
        if self.rec is None:
            return
        payload = {
            "operator_type": OPERATORS[stage_id],
            "min_parallelism": PARALLELISM[stage_id],
            "max_parallelism": PARALLELISM[stage_id],
        }
        self.rec.ingest([envelope(mtype, self.job_id, stage_id, time.time(), payload)])

    def kill_worker(self, slot: Slot) -> None:
        """Kill an idle worker (after its reports were handed over) and replace it."""
        try:
            ray.get(slot.handle.flush_telemetry.remote(), timeout=10)
        except RayError as exc:
            log.warning("flush before kill failed: %s", exc)
        ray.kill(slot.handle, no_restart=True)
        self.result_extra["killed"].append(slot.worker_id)
        if self.rec is not None:
            self.rec.event(
                "fault_injected",
                stage_id=slot.stage_id,
                worker_id=slot.worker_id,
                description=f"ray.kill({slot.stage_id}:{slot.worker_id})",
            )
        self.replace(slot, "killed: fault injection")

    def replace(self, slot: Slot, reason: str) -> None:
        """Record a dead worker's end and start another on its partitions."""
        slot.alive = False
        if slot in self.slots[slot.stage_id]:
            self.slots[slot.stage_id].remove(slot)
        if self.rec is not None:
            # the worker cannot say it died: its stage master does (no sequence: another
            # producer's numbering must not collide with the dead worker's own)
            payload = {"stage_id": slot.stage_id, "reason": reason}
            self.rec.ingest(
                [envelope("worker_stopped", self.job_id, slot.worker_id, time.time(), payload)]
            )
        new = self.start_worker(slot.stage_id, slot.partitions)
        ray.get(new.handle.pid.remote())
        self.result_extra["replacements"].append(new.worker_id)

    # -------------------------------------------------------------- scheduling
    def _downstream(self, stage_id: str) -> PartitionedQueue | None:
        downs = EDGES.get(stage_id)
        return self.queues[downs[0]] if downs else None

    def _partition_for(self, split_index: int) -> int:
        parts = int(self.opts["partitions"])
        if not self.opts["skew"] or parts == 1:
            return split_index % parts
        if split_index % 3 != 2:
            return 0  # two splits in three land in partition 0: a hot partition
        return 1 + (split_index // 3) % (parts - 1)  # the rest spread over the others

    def schedule(self, generating: bool) -> None:
        for stage_id in STAGES:
            out = self._downstream(stage_id)
            for slot in self.slots[stage_id]:
                if slot.busy is not None or slot.draining or not slot.alive:
                    continue
                if out is not None and out.room() <= 0:
                    break  # the output queue is full: this producer waits (backpressure)
                if stage_id == "source":
                    if not generating:
                        break
                    split_id = f"source_split_{self.next_split}"
                    self.next_split += 1
                    ref = slot.handle.process.remote(split_id, [], None)
                    msg: Any = split_id
                else:
                    msg = self.queues[stage_id].take(slot.partitions)
                    if msg is None:
                        continue
                    ref = slot.handle.process.remote(msg.split_id, [msg.split_id], msg.records)
                if out is not None:
                    out.reserved += 1
                slot.busy = ref
                self.inflight[ref] = (slot, msg)

    def complete(self, ref: Any) -> None:
        slot, msg = self.inflight.pop(ref)
        slot.busy = None
        out = self._downstream(slot.stage_id)
        if out is not None:
            out.reserved -= 1
        try:
            result: dict[str, Any] = ray.get(ref)  # StageWorker.process's answer
        except RayActorError as exc:
            log.warning("worker %s died: %s", slot.worker_id, exc)
            if slot.stage_id != "source":
                self.queues[slot.stage_id].give_back(msg)  # redelivered to the replacement
            self.replace(slot, f"failed: actor died ({type(exc).__name__})")
            return
        if slot.stage_id != "source":
            self.queues[slot.stage_id].commit(msg)
        tel = self.stage_tel.get(slot.stage_id)
        if tel is not None:  # committed: reported by the stage master, on behalf of the worker
            tel.split_processed(
                result["split_id"],
                result["parent_split_ids"],
                input_records=result["input_records"],
                output_records=len(result["records"]),
                processing_time=result["processing_time"],
                worker_id=slot.worker_id,
            )
        t = self.truth[slot.stage_id]
        t["input_records"] += result["input_records"]
        t["output_records"] += len(result["records"])
        t["splits"] += 1
        t["errors"] += result["errors"]
        if result["errors"]:
            self.result_extra["exceptions"].append(
                (slot.stage_id, slot.worker_id, msg.split_id if msg is not None else "")
            )
        if out is not None:
            index = int(result["split_id"].rsplit("_", 1)[1])
            out.put(self._partition_for(index), result["split_id"], result["records"])

    # -------------------------------------------------------------- reporting
    def report(self) -> None:
        if self.rec is None:
            return
        for stage_id in STAGES:
            alive = [s for s in self.slots[stage_id] if s.alive]
            payload: dict[str, Any] = {"worker_count": len(alive)}
            q = self.queues.get(stage_id)
            if q is not None:
                # Solstice's rule, scaled to our small queues: a stage is backpressured
                # while its *input* lags (full queue), cleared below 70 % of capacity
                lag = q.uncommitted + q.reserved
                if lag >= q.capacity:
                    self.blocked[stage_id] = True
                elif lag < 0.7 * q.capacity:
                    self.blocked[stage_id] = False
                payload["backpressure_active"] = self.blocked[stage_id]
                owner = {p: s.worker_id for s in alive for p in s.partitions}
                payload["queue_lag"] = q.uncommitted
                payload["partition_metrics"] = {
                    str(p): {
                        "latest_offset": q.latest[p],
                        "committed_offset": q.committed[p],
                        "lag": q.lag(p),
                        "worker_id": owner.get(p),
                    }
                    for p in range(q.partitions)
                }
            self.stage_tel[stage_id].stage_metrics(**payload)

    def checkpoint(self) -> None:
        self.checkpoint_n += 1
        if self.rec is None:
            return
        for stage_id, q in self.queues.items():
            trigger = time.time()
            offsets = q.offsets()
            self.rec.checkpoint(
                f"chk_{self.checkpoint_n:04d}",
                stage_id=stage_id,
                status="COMPLETED",
                trigger_time=trigger,
                completion_time=time.time(),
                state_size_bytes=len(repr(offsets)),
                offsets=offsets,
            )

    def idle(self) -> bool:
        return not self.inflight and all(q.empty() for q in self.queues.values())

    def finish_workers(self) -> None:
        refs = {}
        for slots in self.slots.values():
            for slot in slots:
                refs[slot.worker_id] = slot.handle.finish.remote("completed")
        for worker_id, ref in refs.items():
            try:
                self.finished_workers[worker_id] = ray.get(ref, timeout=30)
            except RayError as exc:
                log.warning("worker %s did not finish cleanly: %s", worker_id, exc)
        for stage_id in STAGES:
            self._stage_message("stage_completed", stage_id)
        for slots in self.slots.values():
            for slot in slots:
                ray.kill(slot.handle, no_restart=True)


def run_pipeline(
    *,
    job_id: str = "demo_etl",
    duration: float = 20.0,
    faults: bool = False,
    store: Store | str | None = None,
    telemetry: bool = True,
    skew: bool = True,
    split_size: int = 50,
    partitions: int = 4,
    queue_capacity: int = 6,
    checkpoint_every: float = 3.0,
    flush_interval: float = 1.0,
    heartbeat_interval: float = 5.0,
    kill_recorder_at: float | None = None,
    kill_recorder_with: str = "sigkill",
    seed: int = 7,
    cost_scale: float = 1.0,
    crash_worker_at: float | None = None,
    hang_s: float = 0.0,
    detect_stragglers: bool = True,
) -> DemoResult:
    """Run the reference pipeline once and return what it did.

    Parameters
    ----------
    job_id
        The job id; running it again records a new attempt.
    duration
        Seconds the source produces; the pipeline then drains and finishes.
    faults
        Malformed JSON lines (parse exceptions), a parse worker killed at 40 % of
        ``duration`` and replaced, and a slow enrich worker.
    telemetry
        False runs the same pipeline with no recorder (the benchmark baseline).
    kill_recorder_at
        Fraction of ``duration`` at which the recorder's process is killed
        (``kill_recorder_with``: "sigkill" = ``kill -9`` of its pid, or "ray" = ``ray.kill``).
        The pipeline must still complete; the attempt then reads as LOST.
    cost_scale
        Multiplies the simulated per-record work (0: as fast as Ray moves the splits).
    crash_worker_at
        Fraction of ``duration`` at which a *busy* parse worker is killed without warning
        (a crash mid-split): its split is redelivered to a replacement.
    hang_s
        Seconds one split of the first enrich worker (its 12th) hangs in a
        ``time.sleep``: a straggler, reported as an incident (``job.incidents()``).
    detect_stragglers
        False switches the workers' straggler detection off (the benchmark baseline).
    """
    _ensure_ray()
    root = (store if isinstance(store, Store) else connect(store)).root
    stages = [
        {
            "stage_id": s,
            "operator_type": OPERATORS[s],
            "min_parallelism": PARALLELISM[s],
            "max_parallelism": PARALLELISM[s],
        }
        for s in STAGES
    ]
    config = {
        "duration_s": duration,
        "faults": faults,
        "skew": skew,
        "split_size": split_size,
        "partitions": partitions,
        "queue_capacity": queue_capacity,
        "parallelism": PARALLELISM,
    }
    rec = None
    if telemetry:
        rec = JobRecorder.start(
            job_id,
            dag=EDGES,
            stages=stages,
            config=config,
            store=root,
            flush_interval=flush_interval,
            heartbeat_interval=heartbeat_interval,
        )
    attempt = rec.attempt_id if rec else f"notelemetry-{secrets.token_hex(3)}"
    sink_uri = os.path.join(root, "demo_output", job_id, f"{attempt}.lance")
    opts = {
        "faults": faults,
        "skew": skew,
        "partitions": partitions,
        "queue_capacity": queue_capacity,
        "crash_worker_at": crash_worker_at,
        "hang_s": hang_s,
        "detect_stragglers": detect_stragglers,
        "worker_options": {
            "split_size": split_size,
            "seed": seed,
            "malformed_rate": 0.03 if faults else 0.0,
            "start": time.time(),
            "sink_uri": sink_uri,
            "cost_scale": cost_scale,
        },
    }
    driver = _Driver(rec, job_id, opts)
    result = DemoResult(job=None, truth=driver.truth, sink_uri=sink_uri, sink_rows=0)
    try:
        driver.start_all()
        _loop(driver, rec, result, duration, checkpoint_every, kill_recorder_at, kill_recorder_with)
        driver.finish_workers()
    except BaseException as exc:
        if rec is not None and not result.recorder_gone:
            _safe_finish(rec, "FAILED", f"{type(exc).__name__}: {exc}")
        raise
    result.workers = driver.finished_workers
    result.killed = driver.result_extra["killed"]
    result.replacements = driver.result_extra["replacements"]
    result.exceptions = driver.result_extra["exceptions"]
    result.checkpoints = driver.checkpoint_n
    result.crashed = driver.result_extra.get("crashed")
    result.sink_rows = _count_rows(sink_uri)
    if rec is not None:
        if not result.recorder_gone:
            _safe_finish(rec, "COMPLETED", None)
        result.job = Store(root).job(job_id, attempt=rec.attempt_id)
    return result


def _loop(
    driver: _Driver,
    rec: JobRecorder | None,
    result: DemoResult,
    duration: float,
    checkpoint_every: float,
    kill_recorder_at: float | None,
    kill_recorder_with: str,
) -> None:
    started = time.monotonic()
    end = started + duration
    kill_at = started + 0.4 * duration if driver.opts["faults"] else None
    rec_kill_at = started + kill_recorder_at * duration if kill_recorder_at is not None else None
    next_report = next_checkpoint = started
    victim: Slot | None = None
    crash = driver.opts.get("crash_worker_at")
    crash_at = started + crash * duration if crash is not None else None
    while True:
        now = time.monotonic()
        generating = now < end
        if kill_at is not None and now >= kill_at and victim is None:
            victim = driver.slots["parse"][-1]
            victim.draining = True  # no new split; killed once its current one is done
        if victim is not None and victim.alive and victim.busy is None:
            driver.kill_worker(victim)
            kill_at = None
        if crash_at is not None and now >= crash_at:
            busy = [s for s in driver.slots["parse"] if s.busy is not None and not s.draining]
            if busy:
                crash_at = None
                driver.result_extra["crashed"] = busy[0].worker_id
                ray.kill(busy[0].handle, no_restart=True)  # mid-split, reports unflushed
        if rec is not None and rec_kill_at is not None and now >= rec_kill_at:
            rec_kill_at = None
            _kill_recorder(rec, result, kill_recorder_with)
        driver.schedule(generating)
        if now >= next_report:
            driver.report()
            next_report = now + 0.5
        if now >= next_checkpoint:
            driver.checkpoint()
            next_checkpoint = now + checkpoint_every
        if not generating and driver.idle() and (victim is None or not victim.alive):
            break
        if driver.inflight:
            ready, _ = ray.wait(list(driver.inflight), num_returns=1, timeout=0.05)
            for ref in ready:
                driver.complete(ref)
        else:
            time.sleep(0.01)
    driver.report()
    driver.checkpoint()
    result.elapsed_s = time.monotonic() - started


def _kill_recorder(rec: JobRecorder, result: DemoResult, how: str) -> None:
    rec.flush()
    job = Store(rec.store).job(rec.job_id, attempt=rec.attempt_id)
    for name in ("worker_metrics", "lineage", "workers", "stage_metrics"):
        batches = job.table(name, columns=["batch"]).column("batch").to_pylist()
        # rows, and the last flush they came from: those rows must survive the kill
        result.flushed_before_kill[name] = (len(batches), max(batches, default=-1))
    if how == "ray":
        ray.kill(rec.actor, no_restart=True)  # for good: the attempt ends LOST
        result.recorder_gone = True
    else:  # the process dies: Ray restarts the recorder, which resumes the attempt
        info: dict[str, Any] = ray.get(rec.actor.info.remote())
        pid = info["pid"]
        os.kill(pid, signal.SIGKILL)
    result.recorder_killed = True


def _safe_finish(rec: JobRecorder, status: str, error: str | None) -> None:
    try:
        rec.finish(status, error=error)
    except RayError as exc:
        log.error("recorder of %s could not finish: %s", rec.job_id, exc)


def _count_rows(uri: str) -> int:
    import lance

    try:
        return lance.dataset(uri).count_rows()
    except (FileNotFoundError, ValueError, OSError):
        return 0


def run_demo(
    *,
    job_id: str = "demo_etl",
    duration: float = 20.0,
    faults: bool = False,
    store: Store | str | None = None,
    hang_s: float | None = None,
) -> Job:
    """Run the reference pipeline on the local (or connected) Ray and return the job.

    With ``faults``, one enrich split hangs ``hang_s`` seconds (default
    ``DEMO_HANG_S``, 30 s): its incident is in ``job.incidents()``.

    Examples
    --------
    >>> job = run_demo(job_id="demo_etl", duration=10, faults=True)   # doctest: +SKIP
    >>> job.status                                                   # doctest: +SKIP
    'COMPLETED'
    """
    if hang_s is None:
        hang_s = DEMO_HANG_S if faults else 0.0
    result = run_pipeline(
        job_id=job_id, duration=duration, faults=faults, store=store, hang_s=hang_s
    )
    assert result.job is not None
    return result.job
