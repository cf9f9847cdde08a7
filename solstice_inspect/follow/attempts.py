"""What a :class:`~solstice_inspect.follow.track.Track` reads and writes of an attempt
besides its recording: the job's own ``job_started`` (one per run), the producers of an
ended attempt, the heartbeat of a run that died, and an ended attempt opened again.

A run of a Solstice job is one driver: it sends one ``job_started``, with its own
sequence numbers from 0. A second ``job_started`` of another time in the same attempt is
a new run whose driver started over (the one before died without a final status); one of
the same time is the same message delivered again.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import orjson
import pandas as pd

from solstice_inspect.recorder.fold import Fold
from solstice_inspect.recorder.session import Recording
from solstice_inspect.schema import FINAL_STATUSES
from solstice_inspect.store import heartbeat
from solstice_inspect.store.reader import Store

log = logging.getLogger("solstice_inspect.follow")

#: two job_started timestamps closer than this (seconds) are the same message: the store
#: keeps microseconds
SAME_TS = 2e-6

#: seconds messages that may be a new run's are held at most (see ``Track.take``)
HOLD_S = 30.0
#: seconds of message time without any message of a running attempt after which a
#: producer it never heard of may be a new run's (one that joins a live run is its own)
QUIET_S = 10.0
#: messages held at most per partition (bounds the memory of a hold)
MAX_HELD = 50_000

#: what a resumed attempt's ``recorder_restarted`` event says, by why it was resumed: the
#: follower reads the topic again from a saved position, so nothing is missing
RESTARTED = (
    "the follower restarted and re-read the topic from its saved position; nothing is missing"
)
IDLE = (
    "the follower had closed this attempt after {:.0f} s without a message and resumed it "
    "when its topic spoke again; nothing is missing"
)
REWOUND = (
    "the store had refused rows of this attempt; the follower re-read the topic from its "
    "last saved position; nothing is missing"
)


def start_ts(value: bytes, job_id: str) -> float | None:
    """The timestamp of ``value`` when it is the job's own ``job_started``, else None.

    Examples
    --------
    >>> start_ts(b'{"message_type": "job_started", "job_id": "a", "source_id": "a", '
    ...          b'"timestamp": 5.5}', "a")
    5.5
    >>> start_ts(b'{"message_type": "worker_started", "job_id": "a"}', "a") is None
    True
    """
    if b"job_started" not in value:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("message_type") != "job_started"
        or doc.get("job_id") != job_id
        or doc.get("source_id") != job_id
    ):
        return None
    ts = doc.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return None
    return float(ts)


def stored_start(store: Store, job_id: str, attempt_id: str, batch: int) -> float | None:
    """The time of the attempt's job_started among its rows of flushes up to ``batch``
    (the others are rolled back and read again); None when there is none or it cannot be
    read."""
    try:
        events = store.attempt(job_id, attempt_id).table(
            "events",
            columns=["ts"],
            where=f"event_type = 'job_started' AND batch <= {int(batch)}",
        )
    except Exception as exc:  # noqa: BLE001 - unknown: no rerun is recognised
        log.warning("job %s attempt %s: cannot read its job_started (%s)", job_id, attempt_id, exc)
        return None
    times = [t.timestamp() for t in events.column("ts").to_pylist() if t is not None]
    return min(times) if times else None


def stored_sources(store: Store, job_id: str, attempt_id: str) -> set[str] | None:
    """The producers of an attempt as its rows name them: the job, its workers and its
    stages; None when they cannot be read."""
    found = {job_id}
    try:
        job = store.attempt(job_id, attempt_id)
        for table, column in (
            ("workers", "worker_id"),
            ("worker_metrics", "worker_id"),
            ("worker_resources", "worker_id"),
            ("stages", "stage_id"),
        ):
            found.update(x for x in job.table(table, columns=[column])[column].to_pylist() if x)
    except Exception as exc:  # noqa: BLE001 - unknown: every producer counts as known
        log.warning("job %s attempt %s: cannot read its producers (%s)", job_id, attempt_id, exc)
        return None
    return found


def mark_lost(store: Store, job_id: str, attempt_id: str, alive: float | None) -> None:
    """The run of ``attempt_id`` died (a new one started without its final status): its
    heartbeat goes back to ``alive``, when the follower last heard from it, so readers
    see it LOST 3 heartbeat intervals after that, not 3 intervals after now. The status
    stays derived: nothing claims more than was seen."""
    if alive is None:
        return
    try:
        beat = heartbeat.read(store.root, job_id, attempt_id)
        if beat is None or beat["status"] != "RUNNING":
            return
        values: dict[str, Any] = {
            k: (None if v is None else v / 1e6) if k in heartbeat.TIMES else v
            for k, v in beat.items()
            if k in heartbeat.FIELDS
        }
        values["heartbeat"] = min(values["heartbeat"], alive)
        heartbeat.write(store.root, job_id, attempt_id, values)
    except Exception as exc:  # noqa: BLE001 - it then reads LOST a little later
        log.warning("job %s attempt %s: heartbeat not set back (%s)", job_id, attempt_id, exc)


def superseded(rec: Recording, topic: str, partition: int, offset: int) -> None:
    """Say in ``rec``'s timeline (a ``run_superseded`` event) that a new run started at
    ``offset`` of ``topic`` before its run sent a final status."""
    with rec._lock:  # the fold is the recording's; its lock guards it
        rec._fold.record_event(
            time.time(),
            "run_superseded",
            f"a new run of job {rec.job_id} started (a job_started at offset {offset} of "
            f"{topic}) before this one sent job_completed or job_failed: its driver "
            "stopped without a final status (killed, out of memory?). This attempt ends "
            "here and reads as LOST.",
            None,
            {"topic": topic, "partition": partition, "offset": offset},
        )


class Reopened(Recording):
    """An ended attempt written again after the follower restarted (a late report of its
    own came): its final status, end and error come back from its last ``job`` row, so
    that it is never listed as RUNNING again."""

    def _resume(self, reason: str | None = None) -> None:
        super()._resume(reason)
        rows = self.job().to_pandas("job")
        if rows.empty:
            return
        last = rows.sort_values(["batch", "ts"], kind="stable").iloc[-1]
        status = str(last["status"])
        if status not in FINAL_STATUSES:
            return
        fold = self._fold
        fold.status = status
        fold.end_time = None if pd.isna(last["end_time"]) else last["end_time"].timestamp()
        fold.duration_ms = None if pd.isna(last["duration_ms"]) else float(last["duration_ms"])
        fold.error = None if pd.isna(last["error"]) else str(last["error"])
        metrics = last["final_metrics"]
        fold.final_metrics = orjson.loads(metrics) if isinstance(metrics, str) else None


class Hold:
    """Messages held (records and values, in order) since ``since`` (monotonic)."""

    __slots__ = ("records", "since", "values")

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.values: list[bytes] = []
        self.since = time.monotonic()

    def add(self, record: Any, value: bytes) -> None:
        self.records.append(record)
        self.values.append(value)


def _producer(value: bytes, job_id: str) -> tuple[str, Any, Any, Any] | None:
    """(source_id, sequence, message_type, timestamp) of a message of job ``job_id``."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("job_id") != job_id:
        return None
    source = doc.get("source_id")
    if not isinstance(source, str):
        return None
    return source, doc.get("sequence"), doc.get("message_type"), doc.get("timestamp")


class Heard:
    """The producers, sequence numbers and newest message time given to an attempt in
    one ``take`` (what its fold does not know yet)."""

    __slots__ = ("last_ts", "seqs")

    def __init__(self) -> None:
        self.seqs: dict[str, set[int]] = {}
        self.last_ts: float | None = None

    def note(self, source: str, seq: Any, ts: Any) -> None:
        seqs = self.seqs.get(source)
        if seqs is None:
            seqs = self.seqs[source] = set()
        if type(seq) is int:
            seqs.add(seq)
        if type(ts) in (int, float) and (self.last_ts is None or ts > self.last_ts):
            self.last_ts = float(ts)

    def hear(self, values: list[bytes], job_id: str) -> None:
        """Note the messages ``values`` (given to the attempt)."""
        for value in values:
            found = _producer(value, job_id)
            if found is not None:
                self.note(found[0], found[1], found[3])


def verdict(value: bytes, job_id: str, fold: Fold | None, heard: Heard) -> str:
    """Of a message to a running attempt (its ``fold``, and what it was given since):
    ``new`` when it may be a new run's — a producer the attempt never heard of, after
    :data:`QUIET_S` s of message time without any message (the run before went quiet),
    or a sequence number the producer had sent already (a producer that started over);
    ``known`` for a producer of the attempt that goes on; ``other`` for anything else
    (bad input, another job's, job_started). What is not ``new`` is noted in ``heard``.

    Examples
    --------
    >>> f, h = Fold("a"), Heard()
    >>> h.hear([b'{"job_id": "a", "source_id": "w1", "sequence": 0, "timestamp": 1e9}'], "a")
    >>> verdict(b'{"job_id": "a", "source_id": "w1", "sequence": 1, "timestamp": 1e9}', "a", f, h)
    'known'
    >>> verdict(b'{"job_id": "a", "source_id": "w1", "sequence": 0, "timestamp": 1e9}', "a", f, h)
    'new'
    >>> verdict(b'{"job_id": "a", "source_id": "w2", "sequence": 0, "timestamp": 1e9}', "a", f, h)
    'known'
    >>> verdict(b'{"job_id": "a", "source_id": "w3", "sequence": 0, "timestamp": 2e9}', "a", f, h)
    'new'
    """
    found = _producer(value, job_id)
    if found is None:
        return "other"
    source, seq, kind, ts = found
    mine = heard.seqs.get(source)
    seqs = fold._seqs.get(source) if fold is not None else None
    if kind != "job_started":
        repeated = type(seq) is int and (
            (mine is not None and seq in mine)
            or (seqs is not None and (seq <= seqs[0] or seq in seqs[1]))
        )
        known = mine is not None or seqs is not None or source == job_id
        if not known and fold is not None:
            known = source in fold.workers or source in fold.stages
        if repeated or (not known and _quiet_before(ts, fold, heard)):
            return "new"
    heard.note(source, seq, ts)
    return "other" if kind == "job_started" else "known"


def _quiet_before(ts: Any, fold: Fold | None, heard: Heard) -> bool:
    """The attempt had no message for :data:`QUIET_S` s of message time before ``ts``."""
    if type(ts) not in (int, float):
        return False
    last = heard.last_ts
    if fold is not None and fold.last_ts is not None and (last is None or fold.last_ts > last):
        last = fold.last_ts
    return last is not None and ts - last >= QUIET_S
