"""The telemetry client: what workers call to report to a job's recorder.

Rules (DESIGN §2, principle 3): a call never raises into the caller and never waits on
the recorder. Each call builds an envelope and puts it in a bounded, per-process buffer;
one background thread per process (per recorder) sends the buffer in batches with a
fire-and-forget ``recorder.report.remote(batch)``;
its reply says when the recorder flushes next, and a sender holds what it has until
shortly before that (fewer recorder calls, rows no later). Cumulative reports
(``worker_metrics``, ``stage_metrics``) are coalesced: at most one per producer every
``min_interval`` seconds (2 per second by default), the latest values winning. When the
buffer is full new messages are dropped and counted; drops (and batches the recorder
failed to take) are reported to the recorder as an ``event`` of type
``telemetry_dropped`` as soon as a batch gets through, and are always readable from
:meth:`Telemetry.stats`.

``sequence`` is assigned per worker (``source_id``) and per process, from 0: a worker id
is used in one process (Solstice's worker ids are unique per actor). Stage- and job-level
producers may report from several processes, so their envelopes carry no sequence.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

from solstice_inspect.recorder import samples as _samples
from solstice_inspect.recorder import stragglers as _stragglers

log = logging.getLogger("solstice_inspect.recorder.client")
log.addHandler(logging.NullHandler())

#: envelopes one process may hold for one recorder before it drops new ones
MAX_BUFFER = 10_000
#: at most this many envelopes in one ``ingest`` call
MAX_BATCH = 2_000
#: seconds between two cumulative reports of one producer (≤ 2 per second)
MIN_INTERVAL = 0.5
#: how often the sender wakes up
TICK = 0.05
#: batches handed to the recorder and not yet acknowledged before sending pauses
MAX_IN_FLIGHT = 8
#: a Ray recorder tells each batch when its next flush is due; until this long before
#: it, a sender keeps what it has instead of sending every tick (rows wait for the flush
#: anyway, so holding them costs no latency, and each recorder call costs the recorder
#: far more than an envelope does: bench/scale_bench.py, 1,000 workers in 50 processes)
FLUSH_LEAD = 0.15
#: ... but never holds an envelope longer than this
MAX_HOLD = 1.0

_COALESCED = ("worker_metrics", "stage_metrics")


class _RaySink:
    """Send a batch to a recorder actor without waiting; learn later which failed."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.pending: list[tuple[Any, int, float]] = []  # (ref, envelopes, sent at)
        #: the recorder's next flush (this process's monotonic clock), as last heard
        self.flush_due: float | None = None
        #: per stage ``(n, mean, std)`` of every worker's finished splits, as last heard
        self.stage_stats: dict[str, tuple[int, float, float]] = {}

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        self.pending.append((self.actor.report.remote(batch), len(batch), time.monotonic()))

    def in_flight(self) -> int:
        return len(self.pending)

    def hold_until(self) -> float | None:
        """Until when a sender may keep its envelopes: shortly before the recorder's next
        flush; None when that is unknown or already near (then send every tick)."""
        due = self.flush_due
        return None if due is None else due - FLUSH_LEAD

    def failed(self) -> int:
        """Envelopes in batches that came back with an error (recorder gone)."""
        if not self.pending:
            return 0
        import ray

        refs = [ref for ref, _, _ in self.pending]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
        if not ready:
            return 0
        done = set(ready)
        lost = 0
        keep = []
        for ref, n, sent_at in self.pending:
            if ref not in done:
                keep.append((ref, n, sent_at))
                continue
            try:
                due_in = ray.get(ref, timeout=0)
            except Exception as exc:  # noqa: BLE001 - any failure of the recorder is a drop
                lost += n
                _warn_once("send", "telemetry batch of %d lost: %s", n, exc)
            else:
                if type(due_in) is dict:  # {"flush_in": s, "split_stats": {stage: ...}}
                    self.stage_stats = due_in.get("split_stats") or self.stage_stats
                    due_in = due_in.get("flush_in")
                # the recorder took the batch after it was sent: counting from the send
                # puts the flush no later than it is
                if type(due_in) is float:
                    self.flush_due = sent_at + due_in
        self.pending = keep
        return lost


_warned: set[str] = set()


def _warn_once(key: str, msg: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


class _Sender:
    """One per process and recorder: the bounded buffer and its sending thread."""

    def __init__(
        self,
        send: Callable[[list[dict[str, Any]]], Any],
        *,
        max_buffer: int = MAX_BUFFER,
        min_interval: float = MIN_INTERVAL,
        job_id: str = "",
    ) -> None:
        self.send = send
        self.job_id = job_id
        self.max_buffer = max_buffer
        self.min_interval = min_interval
        self.buffer: deque[dict[str, Any]] = deque()
        self.latest: dict[tuple[str, str], dict[str, Any]] = {}  # coalesced, not yet sent
        self.last_sent: dict[tuple[str, str], float] = {}
        self.seq: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        #: send what is buffered at the next tick, without holding it (flush, last words)
        self.urgent = False
        self.held_since: float | None = None  # when the oldest held envelope was buffered
        self.idle = threading.Event()
        self.idle.set()
        self.sent = 0
        self.batches = 0
        self.coalesced = 0
        self.dropped: Counter[str] = Counter()
        self.dropped_total = 0
        self.reported = 0
        self.errors = 0
        self.pid = os.getpid()
        #: per stage ``(n, mean, std)`` of finished splits from a send callable's reply
        self.reply_stats: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, name="solstice-telemetry", daemon=True)
        self.thread.start()

    # -------------------------------------------------------------- producers
    def _next_seq(self, source: str) -> int:
        n = self.seq[source]
        self.seq[source] = n + 1
        return n

    def put(self, env: dict[str, Any]) -> None:
        with self.lock:
            if len(self.buffer) >= self.max_buffer:
                self.dropped[env["message_type"]] += 1
                self.dropped_total += 1
                _warn_once("full", "telemetry buffer full (%d): dropping", self.max_buffer)
                return
            if env.pop("_sequenced", True):
                env["sequence"] = self._next_seq(env["source_id"])
            self.buffer.append(env)
            self.idle.clear()

    def put_latest(self, env: dict[str, Any]) -> None:
        key = (env["source_id"], env["message_type"])
        with self.lock:
            if key in self.latest:
                self.coalesced += 1
            self.latest[key] = env
            self.idle.clear()

    def release(self, source: str) -> None:
        """Send the coalesced reports of ``source`` with the next batch (its last word)."""
        with self.lock:
            for key in [k for k in self.latest if k[0] == source]:
                self._move(key, time.monotonic())
            self.urgent = True
        self.wake.set()

    def _move(self, key: tuple[str, str], now: float) -> None:  # lock held
        env = self.latest.pop(key)
        if len(self.buffer) >= self.max_buffer:
            self.dropped[env["message_type"]] += 1
            self.dropped_total += 1
            return
        if env.pop("_sequenced", True):
            env["sequence"] = self._next_seq(key[0])
        self.buffer.append(env)
        self.last_sent[key] = now

    # -------------------------------------------------------------- sending
    def _run(self) -> None:
        while True:
            self.wake.wait(TICK)
            self.wake.clear()
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - the sender thread must survive anything
                self.errors += 1
                _warn_once("step", "telemetry sender error: %r", exc)

    def _step(self) -> None:
        failed = getattr(self.send, "failed", None)
        if failed is not None:
            lost = failed()
            if lost:
                with self.lock:
                    self.dropped["send_failed"] += lost
                    self.dropped_total += lost
        in_flight = getattr(self.send, "in_flight", None)
        if in_flight is not None and in_flight() >= MAX_IN_FLIGHT:
            return  # the recorder is behind: let the buffer absorb (and drop) instead
        now = time.monotonic()
        with self.lock:
            for key in list(self.latest):
                if now - self.last_sent.get(key, -1e9) >= self.min_interval:
                    self._move(key, now)
            if not self.buffer:
                self.held_since = None
                if not self.latest:
                    self.idle.set()
                return
            if self._hold(now):
                return
            self.held_since = None
            batch = [self.buffer.popleft() for _ in range(min(len(self.buffer), MAX_BATCH))]
            if not self.buffer:
                self.urgent = False
            unreported = self.dropped_total - self.reported
            if unreported and self.job_id:
                batch.append(self._drop_event(unreported))
        try:
            reply = self.send(batch)
        except Exception as exc:  # noqa: BLE001 - a failed send is a drop, never an error
            with self.lock:
                self.dropped["send_failed"] += len(batch)
                self.dropped_total += len(batch)
            _warn_once("send", "telemetry batch of %d lost: %r", len(batch), exc)
            return
        if type(reply) is dict and type(reply.get("split_stats")) is dict:
            self.reply_stats = reply["split_stats"]
        with self.lock:
            self.sent += len(batch)
            self.batches += 1
            if unreported and self.job_id:
                self.reported += unreported
            if self.buffer or self.latest:
                self.wake.set()

    def _hold(self, now: float) -> bool:  # lock held
        """Keep the buffer for a later tick: the recorder will not flush before then."""
        hold_until = getattr(self.send, "hold_until", None)
        if hold_until is None or self.urgent or len(self.buffer) >= MAX_BATCH:
            return False
        until = hold_until()
        if until is None or now >= until:
            return False
        if self.held_since is None:
            self.held_since = now
        return now - self.held_since < MAX_HOLD

    def stage_stats(self, stage_id: str) -> tuple[int, float, float] | None:
        """The recorder's ``(n, mean, std)`` of ``stage_id``'s finished splits, if heard."""
        stats = getattr(self.send, "stage_stats", None) or self.reply_stats
        found = stats.get(stage_id)
        return None if found is None else (int(found[0]), float(found[1]), float(found[2]))

    def hurry(self) -> None:
        """Send what is buffered at the next tick (an incident must not wait)."""
        with self.lock:
            self.urgent = True
        self.wake.set()

    def _drop_event(self, unreported: int) -> dict[str, Any]:  # lock held
        source = f"telemetry_{os.getpid()}"
        return {
            "message_type": "event",
            "job_id": self.job_id,
            "source_id": source,
            "timestamp": time.time(),
            "sequence": self._next_seq(source),
            "payload": {
                "event_type": "telemetry_dropped",
                "description": f"{unreported} telemetry messages dropped in pid {os.getpid()}",
                "metadata": {
                    "dropped": unreported,
                    "dropped_total": self.dropped_total,
                    "by_type": dict(self.dropped),
                    "pid": os.getpid(),
                },
            },
        }

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until everything buffered was handed to the recorder."""
        with self.lock:
            now = time.monotonic()
            for key in list(self.latest):
                self._move(key, now)
            self.urgent = True
        self.wake.set()
        return self.idle.wait(timeout)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "sent": self.sent,
                "batches": self.batches,
                "buffered": len(self.buffer) + len(self.latest),
                "coalesced": self.coalesced,
                "dropped": self.dropped_total,
                "dropped_by_type": dict(self.dropped),
                "drops_reported": self.reported,
                "sender_errors": self.errors,
            }


_senders: dict[Any, _Sender] = {}
_senders_lock = threading.Lock()


def _target_key(target: Any) -> Any:
    actor_id = getattr(target, "_actor_id", None)
    return actor_id.hex() if actor_id is not None else id(target)


def _sender_for(target: Any, job_id: str, options: dict[str, Any]) -> _Sender:
    key = _target_key(target)
    with _senders_lock:
        sender = _senders.get(key)
        if sender is None or sender.pid != os.getpid():  # a forked child needs its own
            send = _RaySink(target) if hasattr(target, "ingest") else target
            sender = _senders[key] = _Sender(send, job_id=job_id, **options)
        return sender


_process_info: dict[str, Any] = {}


def _node_id() -> str | None:
    if "node_id" not in _process_info:
        node = None
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            try:
                node = ray.get_runtime_context().get_node_id()
            except Exception as exc:  # noqa: BLE001 - an id is nice to have, never required
                _warn_once("node", "no Ray node id: %r", exc)
        _process_info["node_id"] = node
    return _process_info["node_id"]


def _gpu() -> tuple[float | None, float | None]:
    nvml = _process_info.get("nvml", ...)
    if nvml is ...:
        try:
            # optional and not a dependency of ours (nvidia-ml-py brings it where GPUs are)
            import pynvml  # pyright: ignore[reportMissingImports]

            pynvml.nvmlInit()
            nvml = pynvml if pynvml.nvmlDeviceGetCount() > 0 else None
        except Exception:  # noqa: BLE001 - no NVML, no GPU, no driver: all mean "no GPU figures"
            nvml = None
        _process_info["nvml"] = nvml
    if nvml is None:
        return None, None
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
        util = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        mem = nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
        return util, round(mem, 1)
    except Exception as exc:  # noqa: BLE001 - a GPU that vanished: report no figures
        _warn_once("nvml", "NVML read failed: %r", exc)
        return None, None


class Telemetry(_stragglers.SplitWatch):
    """Report one producer's state (a worker, or a stage master) to a job's recorder.

    Get one from :meth:`JobRecorder.telemetry`. It is small and picklable: pass it to
    Ray actors and tasks. Every method returns immediately and never raises.

    Parameters
    ----------
    job_id
        The job being recorded.
    target
        The recorder actor handle, or any ``send(batch)`` callable (tests, other
        transports).
    stage_id, worker_id
        Who is reporting. Without ``worker_id`` the producer is the stage itself.
    max_buffer, min_interval
        Buffer bound (envelopes per process) and the coalescing interval in seconds.
    detect_stragglers, detect_interval
        Watch the splits run through :meth:`split` / :meth:`split_started` and report
        an ``incident`` for one that runs past mean + 4σ of its stage's finished splits
        (at least 10; :mod:`~solstice_inspect.recorder.stragglers`), checking every
        ``detect_interval`` seconds (one thread per process).

    Examples
    --------
    >>> batches = []
    >>> tel = Telemetry("etl_001", batches.append, stage_id="parse", worker_id="parse_w0_1a2b3c")
    >>> tel.started(assigned_partitions=[0])
    >>> for n in range(1, 101):
    ...     tel.metrics(input_records=n, output_records=n)
    >>> tel.flush(timeout=5)
    True
    >>> sent = [e for b in batches for e in b]
    >>> sent[0]["message_type"], sent[-1]["payload"]["output_records"]
    ('worker_started', 100)
    """

    def __init__(
        self,
        job_id: str,
        target: Any,
        *,
        stage_id: str | None = None,
        worker_id: str | None = None,
        max_buffer: int = MAX_BUFFER,
        min_interval: float = MIN_INTERVAL,
        detect_stragglers: bool = True,
        detect_interval: float = _stragglers.DETECT_INTERVAL,
    ) -> None:
        self.job_id = job_id
        self.target = target
        self.stage_id = stage_id
        self.worker_id = worker_id
        self.source_id = worker_id or stage_id or job_id
        # A worker id is used by one process, so its numbering is safe to dedupe on; a
        # stage or job id may report from several processes (stage masters, the driver),
        # whose independent numberings would collide: those reports carry no sequence.
        self.sequenced = worker_id is not None
        self._options = {"max_buffer": max_buffer, "min_interval": min_interval}
        self._sender: _Sender | None = None
        self._failures = 0
        self.detect_stragglers = detect_stragglers
        self.detect_interval = float(detect_interval)
        if not self.detect_interval > 0:
            raise ValueError(
                f"detect_interval must be > 0 seconds (e.g. 1.0), not {detect_interval!r}"
            )
        self._detector: _stragglers.Detector | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_sender"] = None  # the sender (a thread) belongs to one process
        state["_detector"] = None  # so does the straggler detector
        return state

    def __repr__(self) -> str:
        return f"Telemetry({self.job_id!r}, source={self.source_id!r})"

    # -------------------------------------------------------------- plumbing
    def _emit(self, message_type: str, payload: dict[str, Any], *, latest: bool = False) -> None:
        try:
            sender = self._sender
            if sender is None or sender.pid != os.getpid():
                sender = self._sender = _sender_for(self.target, self.job_id, self._options)
            env = {
                "message_type": message_type,
                "job_id": self.job_id,
                "source_id": self.source_id,
                "timestamp": time.time(),
                "sequence": None,
                "payload": {k: v for k, v in payload.items() if v is not None},
                "_sequenced": self.sequenced,
            }
            if latest:
                sender.put_latest(env)
            else:
                sender.put(env)
        except Exception as exc:  # noqa: BLE001 - telemetry never raises into user code
            self._failures += 1
            _warn_once("emit", "telemetry %s failed: %r", message_type, exc)

    def send(self, message_type: str, payload: dict[str, Any] | None = None) -> None:
        """Send any protocol message as this producer (cumulative types are coalesced)."""
        self._emit(message_type, dict(payload or {}), latest=message_type in _COALESCED)

    # -------------------------------------------------------------- worker API
    def started(self, *, assigned_partitions: Iterable[Any] | None = None) -> None:
        """The worker started (``worker_started``), with its partitions, node and pid."""
        self._emit(
            "worker_started",
            {
                "stage_id": self.stage_id,
                "assigned_partitions": list(assigned_partitions or ()),
                "node_id": _node_id(),
                "pid": os.getpid(),
            },
        )

    def metrics(
        self,
        *,
        input_records: int | None = None,
        output_records: int | None = None,
        processing_time: float | None = None,
        processed_count: int | None = None,
        assigned_partitions: Iterable[Any] | None = None,
        is_running: bool | None = True,
    ) -> None:
        """Cumulative counters of this worker; coalesced, the latest values win."""
        self._emit(
            "worker_metrics",
            {
                "stage_id": self.stage_id,
                "input_records": input_records,
                "output_records": output_records,
                "processing_time": processing_time,
                "processed_count": processed_count,
                "assigned_partitions": (
                    None if assigned_partitions is None else list(assigned_partitions)
                ),
                "is_running": is_running,
            },
            latest=True,
        )

    def stage_metrics(self, **payload: Any) -> None:
        """A stage master's report (``stage_metrics`` fields); coalesced like metrics."""
        self._emit("stage_metrics", payload, latest=True)

    def split_processed(
        self,
        split_id: str,
        parent_split_ids: Iterable[str] = (),
        *,
        input_records: int | None = None,
        output_records: int | None = None,
        processing_time: float | None = None,
        worker_id: str | None = None,
    ) -> None:
        """One split done, with its parents (lineage).

        A stage master that commits splits reports each one here on behalf of the worker
        that processed it (``worker_id``): unlike the worker's own buffered reports,
        that report survives the worker crashing right after the split.
        """
        payload: dict[str, Any] = {
            "stage_id": self.stage_id,
            "split_id": split_id,
            "parent_split_ids": list(parent_split_ids),
            "input_records": input_records,
            "output_records": output_records,
            "processing_time": processing_time,
        }
        if worker_id is not None:
            payload["worker_id"] = worker_id
        det = self._watch()
        if det is not None:
            try:
                run = det.end(self.source_id, split_id)
                if processing_time is None and run is not None:
                    processing_time = payload["processing_time"] = round(
                        time.monotonic() - run.started, 6
                    )
                if processing_time is not None:
                    det.finished(self.job_id, self.stage_id, float(processing_time))
            except Exception as exc:  # noqa: BLE001 - telemetry never raises into user code
                self._failures += 1
                _warn_once("split_end", "straggler bookkeeping failed: %r", exc)
        self._emit("split_processed", payload)

    def exception(self, exc: BaseException, *, split_id: str | None = None) -> None:
        """An exception: type, message and formatted stack taken from ``exc`` (a split
        started with ``split_started`` is no longer watched: it failed)."""
        det = self._detector
        if det is not None and split_id is not None:
            det.end(self.source_id, split_id)
        try:
            stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            message = str(exc)
        except Exception as err:  # noqa: BLE001 - a hostile __str__ must not escape
            stack, message = "", f"<unprintable: {err!r}>"
        self._emit(
            "exception",
            {
                "stage_id": self.stage_id,
                "worker_id": self.worker_id,
                "exception_type": type(exc).__name__,
                "message": message,
                "stacktrace": stack,
                "split_id": split_id,
            },
        )

    def resources(self) -> None:
        """Sample this process: CPU %, RSS MB (psutil), GPU use via NVML when present."""
        try:
            import psutil

            proc = _process_info.get("psutil")
            if proc is None or _process_info.get("pid") != os.getpid():
                proc = _process_info["psutil"] = psutil.Process()
                _process_info["pid"] = os.getpid()
                proc.cpu_percent(None)  # the first reading is always 0: prime it
            cpu = proc.cpu_percent(None)
            rss = proc.memory_info().rss / 2**20
            util, gpu_mem = _gpu()
        except Exception as exc:  # noqa: BLE001 - no figures is better than an error
            self._failures += 1
            _warn_once("resources", "resource sample failed: %r", exc)
            return
        self._emit(
            "worker_resources",
            {
                "stage_id": self.stage_id,
                "cpu_percent": cpu,
                "memory_mb": round(rss, 1),
                "gpu_utilization": util,
                "gpu_memory_mb": gpu_mem,
                "node_id": _node_id(),
                "pid": os.getpid(),
            },
        )

    def log(self, level: str, message: str) -> None:
        """A log line (stored capped per worker; the last ones go into incidents)."""
        det = self._watch()
        if det is not None:
            try:
                det.log_line(self.source_id, str(level).upper(), str(message))
            except Exception as exc:  # noqa: BLE001 - telemetry never raises into user code
                self._failures += 1
                _warn_once("tail", "log tail failed: %r", exc)
        self._emit(
            "log",
            {
                "stage_id": self.stage_id,
                "worker_id": self.worker_id,
                "level": str(level).upper(),
                "message": str(message),
            },
        )

    def event(
        self,
        event_type: str,
        *,
        description: str | None = None,
        duration_ms: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """A timeline event of this producer."""
        self._emit(
            "event",
            {
                "event_type": event_type,
                "stage_id": self.stage_id,
                "worker_id": self.worker_id,
                "description": description,
                "duration_ms": duration_ms,
                "metadata": metadata,
            },
        )

    def stopped(
        self,
        reason: str = "completed",
        *,
        processed_count: int | None = None,
        error_count: int | None = None,
    ) -> None:
        """The worker stopped; its latest metrics are sent first (its last word)."""
        self._emit(
            "worker_stopped",
            {
                "stage_id": self.stage_id,
                "reason": reason,
                "processed_count": processed_count,
                "error_count": error_count,
                "node_id": _node_id(),
                "pid": os.getpid(),
            },
        )
        sender = self._sender
        if sender is not None:
            sender.release(self.source_id)

    def sample(self, split_id: str, rows: Any) -> None:
        """A few output rows of a split (opt-in data peek), shown in the split's detail.

        At most 5 rows per split are sent, converted to JSON-safe values (times as ISO
        text, bytes as a short hex preview, numpy scalars as numbers, long text and lists
        cut) and capped at 16,384 characters in all. A producer sends at most 10 samples
        at once, then one a second: a call in a hot loop costs little and floods nothing
        (:mod:`~solstice_inspect.recorder.samples`). Never raises.

        Parameters
        ----------
        split_id
            The split the rows came out of (the id its lineage row has).
        rows
            A list of dicts (or of any values), a pandas DataFrame or a pyarrow Table or
            RecordBatch; only the first rows are read.

        Examples
        --------
        >>> batches = []
        >>> tel = Telemetry("etl_001", batches.append, stage_id="parse", worker_id="parse_w0")
        >>> tel.sample("parse_src_split_0", [{"user": "ann", "n": n} for n in range(7)])
        >>> tel.flush(timeout=5)
        True
        >>> sent = [e for b in batches for e in b if e["message_type"] == "sample"]
        >>> len(sent[0]["payload"]["rows"])
        5
        """
        try:
            if split_id is None:
                raise ValueError("a sample needs the id of the split its rows came from")
            state = self.__dict__.get("_sampling")
            if state is None:
                state = self.__dict__["_sampling"] = _samples.Sampling()
            room = state.admit(str(split_id), time.monotonic())
            if room <= 0:
                return
            picked = _samples.json_rows(_samples.first_rows(rows, room))
            if not picked:
                return
            state.taken(str(split_id), len(picked))
        except Exception as exc:  # noqa: BLE001 - telemetry never raises into user code
            self._failures += 1
            _warn_once("sample", "telemetry sample failed: %r", exc)
            return
        self._emit(
            "sample",
            {
                "split_id": _samples.safe_text(str(split_id), 256),
                "rows": picked,
                "stage_id": self.stage_id,
                "worker_id": self.worker_id,
            },
        )

    # -------------------------------------------------------------- control
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (at most ``timeout`` s) until this process's buffer is handed over.

        The one call that may wait; use it before a process exits. Returns True when
        everything was handed over (not necessarily stored: sending is fire-and-forget).
        """
        try:
            sender = self._sender or _sender_for(self.target, self.job_id, self._options)
            return sender.flush(timeout)
        except Exception as exc:  # noqa: BLE001
            _warn_once("flush", "telemetry flush failed: %r", exc)
            return False

    def stats(self) -> dict[str, Any]:
        """This process's telemetry counters: sent, batches, buffered, coalesced, dropped,
        dropped_by_type, drops_reported, sender_errors (and this producer's failures)."""
        sender = self._sender
        out = sender.stats() if sender is not None else {"sent": 0, "dropped": 0}
        out["failures"] = self._failures
        return out
