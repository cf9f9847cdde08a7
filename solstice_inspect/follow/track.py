"""One followed topic: the job whose state it carries, its attempts, and its position.

A :class:`Track` turns the messages of one ``<job_id>_state`` topic into attempts of that
job, through the same :class:`~solstice_inspect.recorder.session.Recording` (and so the
same recorder rules and reject path) as ``solstice-inspect ingest``. One attempt per run:
a ``job_started`` that arrives after the attempt has a final status opens a new one.

Its position is kept with the exactly-once rule of :mod:`solstice_inspect.store.offsets`:
the track flushes its recording itself (the recording's own timer is off), and writes the
offsets file only after the rows it covers are in the store. A restarted follower deletes
the rows of flushes the file does not cover, resumes the same attempt and reads on from
the file's offsets: no duplicate row, no gap.
"""

from __future__ import annotations

import logging
import time
import zlib
from typing import Any

import orjson

from solstice_inspect.protocol import valid_job_id
from solstice_inspect.recorder.session import Recording
from solstice_inspect.schema import FINAL_STATUSES
from solstice_inspect.store import layout, offsets
from solstice_inspect.store.reader import Store

log = logging.getLogger("solstice_inspect.follow")

#: the recording's own flush timer, effectively off: the track decides when rows are
#: written, so that it knows which offsets they cover
_NEVER = 1e9
_SUFFIX = "_state"


def job_id_of(topic: str) -> str | None:
    """The job whose state ``topic`` carries (``<job_id>_state``), or None.

    Examples
    --------
    >>> job_id_of("etl_001_state"), job_id_of("etl_001"), job_id_of("_state")
    ('etl_001', None, None)
    """
    if not topic.endswith(_SUFFIX):
        return None
    try:
        return valid_job_id(topic[: -len(_SUFFIX)])
    except ValueError:
        return None


def _is_start(value: bytes, job_id: str) -> bool:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(doc, dict)
        and doc.get("message_type") == "job_started"
        and doc.get("job_id") == job_id
    )


class Track:
    """The follower's state for one topic; see the module docstring."""

    def __init__(
        self,
        store: Store,
        topic: str,
        job_id: str,
        *,
        flush_interval: float = 1.0,
        linger: float = 60.0,
        idle_close: float = 600.0,
        heartbeat_interval: float = 5.0,
    ) -> None:
        self.store = store
        self.topic = topic
        self.job_id = job_id
        self.flush_interval = flush_interval
        self.linger = linger
        self.idle_close = idle_close
        self.heartbeat_interval = heartbeat_interval
        self.rec: Recording | None = None
        self.attempt_id: str | None = None
        self.status = "—"
        #: the attempt named by the offsets file is to be resumed (it had not ended)
        self._resume = False
        #: the attempt ended and its recording is closed: only the next run opens another
        self._ended = False
        #: the producers of the ended attempt (see ``_starts_run``)
        self._known: set[str] | None = None
        self.batch = 0  # the last flush covered by the offsets file
        self.next: dict[int, int] = {}  # per partition, the next offset to read
        self.last: dict[int, tuple[int, int, int]] = {}  # (offset, timestamp, crc) read last
        self.present = True  # the topic is on the broker
        self.suspect = True  # check the broker still holds what was read before reading on
        self.messages = 0
        self.attempts = 0
        self.late_dropped = 0
        self.losses = 0
        self.failures = 0
        #: accepted, rejected, duplicates of the recordings closed so far
        self._counted = (0, 0, 0)
        self.dirty = False
        self._last_commit = time.monotonic()
        self._last_message = time.monotonic()
        self._ended_at: float | None = None
        self._load()

    def __repr__(self) -> str:
        return f"Track({self.topic!r}, attempt={self.attempt_id!r}, status={self.status!r})"

    # ------------------------------------------------------------------ position
    def _load(self) -> None:
        doc = offsets.read(self.store.root, self.topic)
        if doc is None or doc.get("job_id") != self.job_id:
            return
        for key, part in (doc.get("partitions") or {}).items():
            self.next[int(key)] = int(part["next"])
            if part.get("offset") is not None:
                self.last[int(key)] = (int(part["offset"]), int(part["ts"]), int(part["crc"]))
        self.attempt_id = doc.get("attempt_id")
        self.batch = int(doc.get("batch") or 0)
        self.status = str(doc.get("status") or "—")
        if self.attempt_id:
            self._resume = self.status not in FINAL_STATUSES
            self._ended = not self._resume
            if self._ended and isinstance(doc.get("sources"), list):
                self._known = {str(x) for x in doc["sources"]}
        log.info(
            "topic %s: resuming at offsets %s (attempt %s, %s)",
            self.topic,
            dict(sorted(self.next.items())),
            self.attempt_id,
            self.status,
        )

    def _save(self) -> None:
        parts = {}
        for p, nxt in sorted(self.next.items()):
            last = self.last.get(p)
            parts[str(p)] = {
                "next": nxt,
                "offset": last[0] if last else None,
                "ts": last[1] if last else None,
                "crc": last[2] if last else None,
            }
        doc = {
            "job_id": self.job_id,
            "attempt_id": self.attempt_id,
            "status": self.status,
            "batch": self.batch,
            "partitions": parts,
            "updated": time.time(),
        }
        if self._ended and self._known is not None:
            doc["sources"] = sorted(self._known)
        offsets.write(self.store.root, self.topic, doc)

    def commit(self) -> bool:
        """Flush the recording, then (only if every row is written) save the position.

        Returns True when the position was saved.
        """
        self._last_commit = time.monotonic()
        rec = self.rec
        if rec is not None:
            rec.flush()
            if rec.stats["rows_waiting"]:
                return False  # the store refused rows: keep the old position
            self.batch = rec.flushes
            self.status = rec.status
        try:
            self._save()
        except OSError as exc:
            log.warning("topic %s: cannot save the position (%s); retrying", self.topic, exc)
            return False
        self.dirty = False
        return True

    # ------------------------------------------------------------------ messages
    def take(self, partition: int, records: list[Any]) -> None:
        """Record ``records`` (aiokafka ``ConsumerRecord``s, in offset order) of one
        partition."""
        if not records:
            return
        self._last_message = time.monotonic()
        chunk: list[bytes] = []
        after = self._after_final()
        for i, r in enumerate(records):
            value = r.value or b""
            if after and self._starts_run(value):
                if chunk:  # what came before is the attempt before's (late reports)
                    self._ingest(chunk, partition, records[i - 1])
                    chunk = []
                self._next_attempt(partition, r.offset)
                after = False
            chunk.append(value)
            if not after and (b"job_completed" in value or b"job_failed" in value):
                # a final status, maybe: what follows is looked at with the new status
                self._ingest(chunk, partition, r)
                chunk = []
                after = self._after_final()
        if chunk:
            self._ingest(chunk, partition, records[-1])

    def _after_final(self) -> bool:
        return self._ended or (self.rec is not None and self.rec.status in FINAL_STATUSES)

    def _starts_run(self, value: bytes) -> bool:
        """After a final status: is this message the next run's? Its job_started, or
        (Solstice's workers start and report before job_started) a message from a
        producer the ended attempt never heard of. Late reports of the attempt's own
        workers (a worker_stopped after job_failed) are not."""
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(doc, dict) or doc.get("job_id") != self.job_id:
            return False
        if doc.get("message_type") == "job_started":
            return True
        source = doc.get("source_id")
        known = self._known_sources()
        return isinstance(source, str) and known is not None and source not in known

    def _known_sources(self) -> set[str] | None:
        """The producers of the ended attempt: its workers, stages and the job itself
        (None when not known: an offsets file of an older follower)."""
        rec = self.rec
        if rec is None:
            return self._known
        # the fold is the recording's own state; read (never changed) between ingests
        fold = rec._fold
        return {self.job_id, *fold.workers, *fold.stages}

    def _ingest(self, values: list[bytes], partition: int, last: Any) -> None:
        self.messages += len(values)
        if self.rec is None and self._ended:
            # the attempt ended and was closed (quiet for ``linger`` s after its final
            # status, or before a restart): too late for it, and not a new run
            if not self.late_dropped:
                log.warning(
                    "job %s: %d message(s) after attempt %s had ended and was closed; "
                    "counted as late_dropped",
                    self.job_id,
                    len(values),
                    self.attempt_id,
                )
            self.late_dropped += len(values)
            self._position(partition, last)
            self.dirty = True
            return
        rec = self.rec if self.rec is not None else self._open()
        before = rec.status
        rec.ingest(values)
        self._position(partition, last)
        self.dirty = True
        if rec.status != before and rec.status in FINAL_STATUSES:
            self._ended_at = time.monotonic()
            self.commit()  # the recording flushed the final status: save the position now
            stats = rec.stats
            log.info(
                "job %s attempt %s: %s (%d accepted, %d rejected, %d duplicates)",
                self.job_id,
                rec.attempt_id,
                rec.status,
                stats["accepted"],
                stats["rejected_total"],
                stats["duplicates"],
            )

    def _position(self, partition: int, record: Any) -> None:
        self.next[partition] = record.offset + 1
        crc = zlib.crc32(record.value or b"")
        self.last[partition] = (record.offset, int(record.timestamp), crc)

    def _open(self) -> Recording:
        if self._resume and self.attempt_id:
            # rows of flushes the offsets file does not cover are read again: drop them
            removed = offsets.rollback(self.store.root, self.job_id, self.attempt_id, self.batch)
            rec = self._recording(resume=True)
            log.info(
                "job %s: resumed attempt %s from topic %s at offsets %s%s",
                self.job_id,
                rec.attempt_id,
                self.topic,
                dict(sorted(self.next.items())),
                f" ({removed} rows of an unsaved flush removed, to be read again)"
                if removed
                else "",
            )
        else:
            # name the attempt before it writes anything: a crash from here resumes it
            self.attempt_id = layout.new_attempt_id()
            self.status, self.batch = "RUNNING", 0
            try:
                self._save()
            except OSError as exc:
                log.warning("topic %s: cannot save the position (%s)", self.topic, exc)
            rec = self._recording(resume=False)
            self.attempts += 1
            log.info(
                "job %s: started attempt %s (topic %s)", self.job_id, rec.attempt_id, self.topic
            )
        self.rec = rec
        self.attempt_id = rec.attempt_id
        self.status = rec.status
        self.batch = rec.flushes
        self._resume = self._ended = False
        self._ended_at = None
        return rec

    def _recording(self, *, resume: bool) -> Recording:
        return Recording(
            self.store,
            self.job_id,
            attempt_id=self.attempt_id,
            resume=resume,
            flush_interval=_NEVER,
            heartbeat_interval=self.heartbeat_interval,
        )

    def _next_attempt(self, partition: int, offset: int) -> None:
        """A new run of the job (a job_started after a final status) at ``offset``."""
        self._end()
        self.next[partition] = offset  # the job_started is the new attempt's first message
        self._resume = self._ended = False
        self._open()

    def _end(self) -> None:
        """Close the recording (finished if its status is final) and save the position."""
        rec = self.rec
        if rec is None:
            return
        final = rec.status in FINAL_STATUSES
        if final:
            rec.finish(rec.status)
        else:
            rec.close()  # no final status: resumable, and LOST to readers if nobody does
        self._known = self._known_sources() if final else None
        self.rec = None
        self._ended, self._resume = final, not final
        self.status = rec.status
        stats = rec.stats
        a, r, d = self._counted
        self._counted = (
            a + stats["accepted"],
            r + stats["rejected_total"],
            d + stats["duplicates"],
        )
        if stats["rows_waiting"]:
            log.error(
                "job %s attempt %s: the store refused %d rows; the position is not saved "
                "(a restart reads them again)",
                self.job_id,
                rec.attempt_id,
                stats["rows_waiting"],
            )
            return
        self.batch = rec.flushes
        try:
            self._save()
        except OSError as exc:
            log.warning("topic %s: cannot save the position (%s)", self.topic, exc)
            return
        self.dirty = False

    # ------------------------------------------------------------------ upkeep
    def due(self, now: float) -> bool:
        return self.dirty and now - self._last_commit >= self.flush_interval

    def upkeep(self, now: float) -> None:
        """Close an attempt quiet for ``linger`` s after its final status, or a running
        one whose topic has been silent for ``idle_close`` s (it reads as LOST until a
        message resumes it)."""
        if self.rec is None:
            return
        if self._ended_at is not None and now - self._ended_at >= self.linger:
            if now - self._last_message >= self.linger:
                self._end()
        elif self.rec.status not in FINAL_STATUSES and now - self._last_message >= self.idle_close:
            log.warning(
                "job %s attempt %s: no message for %.0f s; closed without a final status "
                "(it reads as LOST; a new message resumes it)",
                self.job_id,
                self.attempt_id,
                now - self._last_message,
            )
            self._end()

    def lost(self, partition: int, why: str, start: int) -> None:
        """The broker no longer holds what was read from ``partition`` (``why``); read
        it again from ``start``, as a new attempt."""
        self.losses += 1
        log.warning(
            "topic %s partition %d: the broker lost the messages the follower had read "
            "(%s; a restarted broker with memory storage?); attempt %s keeps what was "
            "recorded, the topic's messages from offset %d are a new attempt",
            self.topic,
            partition,
            why,
            self.attempt_id,
            start,
        )
        self._end()
        self.next[partition] = start
        self.last.pop(partition, None)
        self.attempt_id = None
        self._resume = self._ended = False
        self.status = "—"
        try:
            self._save()
        except OSError as exc:
            log.warning("topic %s: cannot save the position (%s)", self.topic, exc)

    def stop(self) -> None:
        """Flush and save; close the recording (an attempt without a final status stays
        RUNNING in the store, and a restarted follower resumes it)."""
        self._end()

    def info(self) -> dict[str, Any]:
        rec = self.rec
        stats = rec.stats if rec is not None else {}
        accepted, rejected, duplicates = self._counted
        return {
            "topic": self.topic,
            "job_id": self.job_id,
            "attempt_id": self.attempt_id,
            "status": rec.status if rec is not None else self.status,
            "messages": self.messages,
            "accepted": accepted + stats.get("accepted", 0),
            "rejected": rejected + stats.get("rejected_total", 0),
            "duplicates": duplicates + stats.get("duplicates", 0),
            "attempts": self.attempts,
            "late_dropped": self.late_dropped,
        }
