"""Straggler detection inside a worker's own process (the ``incident`` message).

A split that runs longer than ``mean + 4σ`` of its stage's finished splits (at least 10
of them) is a straggler. Each process that runs splits through
:meth:`Telemetry.split <solstice_inspect.recorder.client.Telemetry.split>` (or
``split_started``) has one daemon :class:`Detector` thread. It wakes every
``detect_interval`` seconds, compares each running split's elapsed time with its stage's
threshold and, the first time a split is over it, takes the stack of the thread running
the split (``sys._current_frames``) and the worker's last log lines, and sends one
``incident`` (its id fixed per split, so nothing is reported twice).

Why in the worker and not from outside: asking Ray's State API about every task is what
made Ray switch off its own hang detector (it slowed pipelines). Here the hot path costs
two dict operations per split; the statistics come for free, with the reply of each
telemetry batch (:meth:`JobRecorder.report`), which carries the recorder's per-stage
``(n, mean, std)`` of every worker's finished splits; the splits this process finished
are the fallback while that is unknown or smaller.

A stage whose splits all take the same few milliseconds has σ ≈ 0: any hiccup would be a
"straggler". The threshold therefore never goes below ``MIN_THRESHOLD_S`` (one default
detection interval: a split shorter than that cannot be seen reliably anyway).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("solstice_inspect.recorder.stragglers")
log.addHandler(logging.NullHandler())

#: a split is a straggler above mean + SIGMA standard deviations ...
SIGMA = 4.0
#: ... of at least this many finished splits of its stage
MIN_FINISHED = 10
#: ... and never below this many seconds
MIN_THRESHOLD_S = 1.0
#: seconds between two checks of the running splits (per process)
DETECT_INTERVAL = 1.0
#: log lines of a worker kept for the incident's log tail
LOG_TAIL_LINES = 50
#: characters of one log line in the tail
LOG_TAIL_LINE_CHARS = 500
#: splits watched at once per process: beyond it the oldest is forgotten (a caller of
#: ``split_started`` that never reports its failed splits must not grow memory)
MAX_RUNNING = 10_000


class DurationStats:
    """Count, mean and (population) standard deviation of durations, updated one at a
    time (Welford): O(1) per split, no list of durations kept."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DurationStats):
            return NotImplemented
        return (self.n, self.mean, self.m2) == (other.n, other.mean, other.m2)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"DurationStats(n={self.n}, mean={self.mean:.6g}, std={self.std:.6g})"

    def add(self, seconds: float) -> None:
        self.n += 1
        delta = seconds - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (seconds - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.n > 1 and self.m2 > 0 else 0.0

    def figures(self) -> tuple[int, float, float]:
        """``(n, mean, std)``."""
        return self.n, self.mean, self.std


def threshold(
    n: int,
    mean: float,
    std: float,
    *,
    sigma: float = SIGMA,
    min_finished: int = MIN_FINISHED,
    floor: float = MIN_THRESHOLD_S,
) -> float | None:
    """Seconds after which a running split is a straggler; None below ``min_finished``
    finished splits (too few to judge)."""
    if n < min_finished:
        return None
    return max(mean + sigma * std, floor)


class Running:
    """One split being processed in this process."""

    __slots__ = ("reported", "split_id", "started", "started_at", "tel", "thread_id")

    def __init__(self, tel: Any, split_id: str) -> None:
        self.tel = tel
        self.split_id = split_id
        self.thread_id = threading.get_ident()
        self.started = time.monotonic()
        self.started_at = time.time()
        self.reported = False


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


class Detector:
    """The running splits of one process and the thread that watches them.

    ``check(now)`` is the whole rule (the thread calls it with ``time.monotonic()``;
    tests may call it with any clock value).
    """

    def __init__(self, interval: float = DETECT_INTERVAL) -> None:
        self.interval = interval
        self.pid = os.getpid()
        #: (source_id, split_id) → Running; written by the hot path, read by the thread
        self.running: dict[tuple[str, str], Running] = {}
        #: (job_id, stage_id) → this process's finished splits
        self.local: dict[tuple[str, str], DurationStats] = {}
        #: source_id → its last log lines
        self.tails: dict[str, deque[str]] = {}
        self.incidents = 0
        self.checks = 0
        self.errors = 0
        self._lock = threading.Lock()  # only around a DurationStats update
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ the hot path
    def start(self, tel: Any, split_id: str) -> None:
        running = self.running
        running[(tel.source_id, split_id)] = Running(tel, split_id)
        if len(running) > MAX_RUNNING:
            running.pop(next(iter(running)), None)
        if self._thread is None:
            self._start_thread()

    def end(self, source_id: str, split_id: str) -> Running | None:
        try:
            return self.running.pop((source_id, split_id), None)
        except TypeError:  # an unhashable id was never watched
            return None

    def finished(self, job_id: str, stage_id: str | None, seconds: float) -> None:
        key = (job_id, stage_id or "")
        with self._lock:
            stats = self.local.get(key)
            if stats is None:
                stats = self.local[key] = DurationStats()
            stats.add(seconds)

    def log_line(self, source_id: str, level: str, message: str) -> None:
        tail = self.tails.get(source_id)
        if tail is None:
            tail = self.tails[source_id] = deque(maxlen=LOG_TAIL_LINES)
        tail.append(f"{_stamp(time.time())} {level} {message[:LOG_TAIL_LINE_CHARS]}")

    # ------------------------------------------------------------ the thread
    def want_interval(self, interval: float) -> None:
        """The thread checks as often as the most demanding producer asked."""
        if interval < self.interval:
            self.interval = interval
            self._wake.set()

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="solstice-straggler-detector", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.check(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - the detector must survive anything
                self.errors += 1
                if self.errors == 1:
                    log.warning("straggler detector error: %r", exc)

    def stats_for(self, tel: Any) -> tuple[int, float, float]:
        """``(n, mean, std)`` of the finished splits of ``tel``'s stage: the recorder's
        (every worker's), or this process's own when it has seen more."""
        stage = tel.stage_id or ""
        local = self.local.get((tel.job_id, stage))
        figures = local.figures() if local is not None else (0, 0.0, 0.0)
        remote = tel._stage_stats(stage)
        if remote is not None and remote[0] >= figures[0]:
            return remote
        return figures

    def check(self, now: float) -> list[dict[str, Any]]:
        """Send an incident for each running split newly over its threshold; return
        their payloads."""
        self.checks += 1
        sent = []
        for run in list(self.running.copy().values()):
            if run.reported:
                continue
            elapsed = now - run.started
            if elapsed <= MIN_THRESHOLD_S:
                continue  # below any threshold: no statistics needed
            n, mean, std = self.stats_for(run.tel)
            limit = threshold(n, mean, std)
            if limit is None or elapsed <= limit:
                continue
            run.reported = True
            payload = self.incident(run, elapsed, limit, n, mean, std)
            run.tel._incident(payload)
            self.incidents += 1
            sent.append(payload)
        return sent

    def incident(
        self, run: Running, elapsed: float, limit: float, n: int, mean: float, std: float
    ) -> dict[str, Any]:
        tel = run.tel
        frame = sys._current_frames().get(run.thread_id)
        if frame is None:
            stack = "(the thread running the split has ended)"
        else:
            name = next(
                (t.name for t in threading.enumerate() if t.ident == run.thread_id), "thread"
            )
            stack = f'Thread "{name}" ({run.thread_id}):\n' + "".join(traceback.format_stack(frame))
            del frame
        tail = self.tails.get(tel.source_id)
        key = f"{tel.job_id}|{tel.source_id}|{run.split_id}|{run.started_at:.6f}"
        return {
            "kind": "straggler",
            "incident_id": "straggler-" + hashlib.sha1(key.encode()).hexdigest()[:16],
            "stage_id": tel.stage_id,
            "worker_id": tel.worker_id,
            "split_id": run.split_id,
            "started_at": run.started_at,
            "elapsed_s": round(elapsed, 3),
            "threshold_s": round(limit, 3),
            "mean_s": round(mean, 6),
            "std_s": round(std, 6),
            "finished_splits": n,
            "description": (
                f"split {run.split_id} has run {elapsed:.1f} s; its stage's {n} finished "
                f"splits took {mean:.3f} ± {std:.3f} s (threshold {limit:.1f} s)"
            ),
            "stack": stack,
            "log_tail": "\n".join(tail) if tail else "",
        }


_detector: Detector | None = None
_detector_lock = threading.Lock()


def detector() -> Detector:
    """This process's detector (a forked child gets its own)."""
    global _detector
    det = _detector
    if det is None or det.pid != os.getpid():
        with _detector_lock:
            det = _detector
            if det is None or det.pid != os.getpid():
                det = _detector = Detector()
    return det


class SplitScope:
    """What :meth:`Telemetry.split` returns: times one split and reports it at the end.

    Set ``input_records`` / ``output_records`` on it inside the block; they go into the
    ``split_processed`` report sent when the block ends without an exception (with the
    measured ``processing_time``). A block that raises reports nothing (the exception is
    the caller's to report) and the exception propagates unchanged.
    """

    __slots__ = (
        "_started",
        "input_records",
        "output_records",
        "parent_split_ids",
        "report",
        "split_id",
        "tel",
    )

    def __init__(
        self, tel: Any, split_id: str, parent_split_ids: Any, *, report: bool = True
    ) -> None:
        self.tel = tel
        self.split_id = split_id
        self.parent_split_ids = parent_split_ids
        self.report = report
        self.input_records: int | None = None
        self.output_records: int | None = None
        self._started = 0.0

    def __enter__(self) -> SplitScope:
        self._started = time.monotonic()
        self.tel.split_started(self.split_id)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        tel = self.tel
        try:
            det = tel._detector
            if det is not None:
                det.end(tel.source_id, self.split_id)
            if exc_type is not None:
                return
            seconds = time.monotonic() - self._started
            if self.report:
                tel.split_processed(
                    self.split_id,
                    self.parent_split_ids or (),
                    input_records=self.input_records,
                    output_records=self.output_records,
                    processing_time=round(seconds, 6),
                )
            elif det is not None:
                det.finished(tel.job_id, tel.stage_id, seconds)
        except Exception as err:  # noqa: BLE001 - telemetry never raises into user code
            tel._failures += 1
            log.debug("split scope failed: %r", err)


class LogHandler(logging.Handler):
    """A :class:`logging.Handler` that records each log record through a Telemetry
    (the ``logs`` table, and the log tail of incidents). Our own loggers are skipped, so
    a telemetry warning can never loop back into telemetry."""

    def __init__(self, tel: Any, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.tel = tel

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("solstice_inspect.recorder"):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
        except Exception:  # noqa: BLE001 - a hostile argument must not escape logging
            message = str(record.msg)
        self.tel.log(record.levelname, message)


class SplitWatch:
    """The straggler part of :class:`~solstice_inspect.recorder.client.Telemetry`."""

    job_id: str
    stage_id: str | None
    worker_id: str | None
    source_id: str
    detect_stragglers: bool
    detect_interval: float
    _detector: Detector | None
    _sender: Any
    _failures: int

    def _emit(self, message_type: str, payload: dict[str, Any], *, latest: bool = False) -> None:
        raise NotImplementedError

    def _watch(self) -> Detector | None:
        """This process's detector (None when detection is off)."""
        if not self.detect_stragglers:
            return None
        det = self._detector
        if det is None or det.pid != os.getpid():
            det = self._detector = detector()
            det.want_interval(self.detect_interval)
        return det

    def split(
        self,
        split_id: str,
        parent_split_ids: Iterable[str] | None = None,
        *,
        report: bool = True,
    ) -> SplitScope:
        """Process one split inside ``with tel.split(split_id):``; the straggler detector
        watches it while it runs.

        When the block ends normally a ``split_processed`` is sent with the measured
        ``processing_time`` (and the ``input_records`` / ``output_records`` set on the
        returned object); pass ``report=False`` when a stage master reports the split on
        commit instead. A block that raises sends nothing; the exception propagates.

        Examples
        --------
        >>> from solstice_inspect.recorder.client import Telemetry
        >>> batches = []
        >>> tel = Telemetry("etl_001", batches.append, stage_id="parse", worker_id="parse_w0")
        >>> with tel.split("parse_src_split_0", ["src_split_0"]) as s:
        ...     s.input_records, s.output_records = 50, 49
        >>> tel.flush(timeout=5)
        True
        >>> [e["payload"]["output_records"] for b in batches for e in b]
        [49]
        """
        return SplitScope(self, split_id, parent_split_ids, report=report)

    def split_started(self, split_id: str) -> None:
        """``split_id`` starts in this thread: it is watched until ``split_processed``
        (it finished) or ``exception(..., split_id=split_id)`` (it failed) names the same
        id. :meth:`split` does this for a block."""
        try:
            det = self._watch()
            if det is not None:
                det.start(self, split_id)
        except Exception as exc:  # noqa: BLE001 - telemetry never raises into user code
            self._failures += 1
            log.debug("straggler bookkeeping failed: %r", exc)

    def log_handler(self, level: int = logging.INFO) -> logging.Handler:
        """A :class:`logging.Handler` that records log records as this producer's
        ``log`` lines (and so in the log tail of its incidents).

        Examples
        --------
        >>> import logging
        >>> from solstice_inspect.recorder.client import Telemetry
        >>> tel = Telemetry("etl_001", [].append, stage_id="parse", worker_id="parse_w0")
        >>> logging.getLogger("my_udf").addHandler(tel.log_handler())
        """
        return LogHandler(self, level)

    def _stage_stats(self, stage_id: str) -> tuple[int, float, float] | None:
        sender = self._sender
        return None if sender is None else sender.stage_stats(stage_id)

    def _incident(self, payload: dict[str, Any]) -> None:
        self._emit("incident", payload)
        sender = self._sender
        if sender is not None:
            sender.hurry()
