"""One followed topic: the job whose state it carries, its attempts, and its position.

A :class:`Track` turns the messages of one ``<job_id>_state`` topic into attempts of that
job, through the same :class:`~solstice_inspect.recorder.session.Recording` (and so the
same recorder rules and reject path) as ``solstice-inspect ingest``. One attempt per run:
a ``job_started`` that arrives after the attempt has a final status opens a new one, and
so does a second ``job_started`` of a running attempt (its driver died without a final
status — SIGKILL, out of memory — and the job was run again under the same id: the
crashed run's attempt is closed without one and reads as LOST). A ``job_started`` with the
timestamp of the attempt's own is the same message delivered again, never a new run.

Its position is kept with the exactly-once rule of :mod:`solstice_inspect.store.offsets`:
the track flushes its recording itself (the recording's own timer is off), and writes the
offsets file only after the rows it covers are in the store. A restarted follower deletes
the rows of flushes the file does not cover, resumes the same attempt and reads on from
the file's offsets: no duplicate row, no gap. A recording closed while the store refused
some of its rows goes back to the saved position the same way, in the same process: the
track is marked ``suspect`` and the follower reads it again from there.
"""

from __future__ import annotations

import logging
import time
import zlib
from typing import Any

import orjson

from solstice_inspect.follow import attempts
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
        #: ... but it was closed by a restart, not by ``linger``: a late report of its own
        #: opens it again (as it would have gone into it had the follower not restarted)
        self._reopenable = False
        #: what the ``recorder_restarted`` event of the next resume says
        self._why = attempts.RESTARTED
        #: the producers of the ended attempt (see ``_starts_run``)
        self._known: set[str] | None = None
        #: the timestamp of the attempt's own job_started (None: none yet, or not read)
        self._start: float | None = None
        #: the attempt came from the offsets file: its job_started is read from the store
        self._start_unread = False
        #: per partition, messages held: maybe a new run's (see ``take``)
        self._held: dict[int, attempts.Hold] = {}
        #: wall-clock time of the last message given to the attempt
        self._alive_at: float | None = None
        #: the offsets file as last written (or read): where a rewind goes back to
        self._saved: dict[str, Any] | None = None
        self.batch = 0  # the last flush covered by the offsets file
        self.next: dict[int, int] = {}  # per partition, the next offset to read
        self.last: dict[int, tuple[int, int, int]] = {}  # (offset, timestamp, crc) read last
        self.present = True  # the topic is on the broker
        self.suspect = True  # check the broker still holds what was read before reading on
        self.messages = 0
        self.attempts = 0
        self.late_dropped = 0
        self.redelivered = 0  # job_started messages of an attempt delivered again
        self.losses = 0
        self.failures = 0
        self.rewinds = 0  # recordings closed with rows the store refused, read again
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
        self._saved = doc
        self._position_from(doc)
        log.info(
            "topic %s: resuming at offsets %s (attempt %s, %s)",
            self.topic,
            dict(sorted(self.next.items())),
            self.attempt_id,
            self.status,
        )

    def _position_from(self, doc: dict[str, Any]) -> None:
        """Take position, attempt and status from an offsets file's ``doc``: what a
        restarted follower starts from, and where a rewind goes back to."""
        self.next, self.last = offsets.positions(doc)
        attempt = doc.get("attempt_id")
        if attempt != self.attempt_id:
            self._start, self._start_unread = None, bool(attempt)
        self.attempt_id = attempt
        self.batch = int(doc.get("batch") or 0)
        self.status = str(doc.get("status") or "—")
        self._resume = self._ended = self._reopenable = False
        self._known = None
        if self.attempt_id:
            self._resume = self.status not in FINAL_STATUSES
            self._ended = self._reopenable = not self._resume
            if self._ended and isinstance(doc.get("sources"), list):
                self._known = {str(x) for x in doc["sources"]}

    def _save(self) -> None:
        doc: dict[str, Any] = {
            "job_id": self.job_id,
            "attempt_id": self.attempt_id,
            "status": self.status,
            "batch": self.batch,
            "partitions": offsets.partitions(self.next, self.last),
            "updated": time.time(),
        }
        # an ended attempt's producers: after a restart, their late reports are its own
        known = self._known_sources(read=False) if self._after_final() else None
        if known is not None:
            doc["sources"] = sorted(known)
        offsets.write(self.store.root, self.topic, doc)
        self._saved = doc

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
        partition. Stops early when the track rewinds (``suspect`` is then True: the
        follower reads it again from :attr:`next`).

        In a running attempt that has its job_started, a message with a sequence number
        its producer had sent already (a producer that started over), or from a producer
        it never heard of after a quiet spell, may be the first of a new run (Solstice's
        workers start and report before job_started): it and what follows are held, not
        recorded nor counted in the position, until a message of a known producer goes
        on (they are this run's) or a new run's job_started comes (they are that run's);
        at most ``HOLD_S`` s (see :func:`~solstice_inspect.follow.attempts.verdict`).
        """
        if not records:
            return
        self._last_message = time.monotonic()
        after = self._after_final()
        if not after and self.rec is None and self._resume and self.attempt_id:
            self._open()  # its producers tell a new run's messages from its own
        hold = self._held.pop(partition, None)
        chunk: list[bytes] = []
        chunk_last: Any = None  # the record of chunk's last message
        heard = attempts.Heard()  # what this call gave the attempt (its fold knows later)
        for r in records:
            value = r.value or b""
            start = attempts.start_ts(value, self.job_id)
            if start is not None and self._same_start(start):
                # the attempt's own job_started again (a producer's retry): a duplicate,
                # also when its recording, rebuilt after a restart, lost its sequence
                self.messages += 1
                self.redelivered += 1
                continue
            if after:
                new, crashed = self._starts_run(value), False
            else:
                # a second job_started of a running attempt: the run before died
                new = crashed = start is not None and self._reruns(start)
                if not new and (hold is not None or self._started() is not None):
                    verdict = attempts.verdict(value, self.job_id, self._fold(), heard)
                    if hold is None and verdict == "new":
                        if chunk:
                            self._ingest(chunk, partition, chunk_last)
                            chunk = []
                        hold = attempts.Hold()
                    if hold is not None:
                        if verdict != "known" and len(hold.records) < attempts.MAX_HELD:
                            hold.add(r, value)
                            continue
                        heard.hear(hold.values, self.job_id)
                        chunk, chunk_last, hold = hold.values, hold.records[-1], None
            if new:
                if chunk:  # what came before is the attempt before's (late reports)
                    self._ingest(chunk, partition, chunk_last)
                    chunk = []
                first = hold.records[0].offset if hold is not None else r.offset
                if not self._next_attempt(partition, first, crashed=crashed):
                    return  # rewound: the rest is read again after what came before
                heard = attempts.Heard()
                if hold is not None:  # the new run's own, from before its job_started
                    chunk, hold = hold.values, None
                    heard.hear(chunk, self.job_id)
                after = False
            if start is not None and self._start is None and not after:
                self._start = start  # the attempt's own job_started
                heard.hear([*chunk, value], self.job_id)  # it and what came before
            chunk.append(value)
            chunk_last = r
            if not after and (b"job_completed" in value or b"job_failed" in value):
                # a final status, maybe: what follows is looked at with the new status
                self._ingest(chunk, partition, r)
                chunk = []
                after = self._after_final()
        if chunk:
            self._ingest(chunk, partition, chunk_last)
        if hold is not None:
            self._held[partition] = hold
        elif self.next.get(partition, 0) <= records[-1].offset:  # it ended with a duplicate
            self._position(partition, records[-1])
            self.dirty = True

    def _fold(self) -> Any:
        """The recording's fold (read, never changed, between ingests), or None."""
        return self.rec._fold if self.rec is not None else None

    def release(self, partition: int | None = None) -> None:
        """Record the messages held (of ``partition``, or all) in the running attempt."""
        for p in [partition] if partition is not None else list(self._held):
            hold = self._held.pop(p, None)
            if hold is not None:
                self._ingest(hold.values, p, hold.records[-1])

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

    def _reruns(self, start: float) -> bool:
        """Before a final status: is a job_started with timestamp ``start`` a new run's?
        Yes when the attempt already has a job_started of another time (the driver of the
        run before died and the job was run again; its sequence numbers start over, so
        the recorder would take this one for a duplicate)."""
        own = self._started()
        return own is not None and abs(start - own) > attempts.SAME_TS

    def _same_start(self, start: float | None) -> bool:
        """``start`` is the attempt's own job_started, delivered again."""
        own = self._started() if start is not None else None
        return own is not None and start is not None and abs(start - own) <= attempts.SAME_TS

    def _started(self) -> float | None:
        """The timestamp of the attempt's job_started; read from the store for an attempt
        named by the offsets file (only its rows the file covers: the others are rolled
        back and read again)."""
        if self._start is None and self._start_unread and self.attempt_id:
            self._start_unread = False
            args = (self.store, self.job_id, self.attempt_id, self.batch)
            self._start = attempts.stored_start(*args)
        return self._start

    def _known_sources(self, *, read: bool = True) -> set[str] | None:
        """The producers of the ended attempt: its workers, stages and the job itself
        (None when not known). After a restart, read back from the store."""
        fold = self._fold()
        if fold is not None:
            return {self.job_id, *fold.workers, *fold.stages}
        if self._known is None and read and self._ended and self.attempt_id:
            self._known = attempts.stored_sources(self.store, self.job_id, self.attempt_id)
        return self._known

    def _ingest(self, values: list[bytes], partition: int, last: Any) -> None:
        self.messages += len(values)
        if self.rec is None and self._ended and not self._reopenable:
            # the attempt ended and was closed (quiet for ``linger`` s after its final
            # status): too late for it, and not a new run
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
        if self.rec is None and self._ended:
            # ended before the follower restarted: its own late report goes into it
            self._resume = True
        rec = self.rec if self.rec is not None else self._open()
        before = rec.status
        rec.ingest(values)
        self._alive_at = time.time()
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
                "job %s: resumed attempt %s (%s) from topic %s at offsets %s%s",
                self.job_id,
                rec.attempt_id,
                rec.status,
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
        self._resume = self._ended = self._reopenable = False
        self._why = attempts.RESTARTED
        # an ended attempt opened again for a late report lingers like one just ended
        self._ended_at = time.monotonic() if rec.status in FINAL_STATUSES else None
        return rec

    def _recording(self, *, resume: bool) -> Recording:
        cls = attempts.Reopened if resume and self.status in FINAL_STATUSES else Recording
        return cls(
            self.store,
            self.job_id,
            attempt_id=self.attempt_id,
            resume=resume,
            resume_reason=self._why if resume else None,
            flush_interval=_NEVER,
            heartbeat_interval=self.heartbeat_interval,
        )

    def _next_attempt(self, partition: int, offset: int, *, crashed: bool = False) -> bool:
        """A new run of the job at ``offset``: its job_started after a final status, or
        (``crashed``) while the attempt before had none. False when closing the attempt
        before rewound the track instead (the store refused some of its rows)."""
        rec, alive = self.rec, self._alive_at
        if crashed and rec is not None:
            attempts.superseded(rec, self.topic, partition, offset)
        if not self._end():
            return False
        if crashed and rec is not None:
            attempts.mark_lost(self.store, self.job_id, rec.attempt_id, alive)
        self.next[partition] = offset  # the job_started is the new attempt's first message
        self.attempt_id = None
        self._resume = self._ended = self._reopenable = False
        self._start, self._start_unread, self._alive_at = None, False, None
        self._open()
        return True

    def _end(self, *, rewind: bool = True) -> bool:
        """Close the recording (finished if its status is final) and save the position.

        When the store refused some of its rows, the position is not saved and (with
        ``rewind``) the track goes back to the saved one: the rows of later flushes are
        rolled back when the attempt resumes, and the messages read again. Returns False
        then."""
        rec = self.rec
        if rec is None:
            return True
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
                "job %s attempt %s: the store refused %d rows; the position is not saved%s",
                self.job_id,
                rec.attempt_id,
                stats["rows_waiting"],
                "; reading the topic again from the saved position"
                if rewind
                else " (a restart reads them again)",
            )
            if rewind:
                self._rewind()
                return False
            return True
        self.batch = rec.flushes
        try:
            self._save()
        except OSError as exc:
            log.warning("topic %s: cannot save the position (%s)", self.topic, exc)
            return True
        self.dirty = False
        return True

    def _rewind(self) -> None:
        """Go back to the saved position (as a restart would): the attempt it names is
        resumed (its rows of unsaved flushes rolled back) or opened again, and the
        follower reads the topic again from there (``suspect``)."""
        self.rewinds += 1
        if self._saved is not None:
            self._position_from(self._saved)
        else:  # nothing saved yet: from the start, as a new attempt
            self.next, self.last, self.attempt_id, self.status = {}, {}, None, "—"
            self._resume = self._ended = self._reopenable = False
        self._why = attempts.REWOUND
        self._held.clear()  # read again too
        # its job_started may be among the rows rolled back: read from what is kept
        self._start, self._start_unread = None, bool(self.attempt_id)
        self._ended_at = None
        self.suspect = True
        self.dirty = False

    # ------------------------------------------------------------------ upkeep
    def due(self, now: float) -> bool:
        return self.dirty and now - self._last_commit >= self.flush_interval

    def upkeep(self, now: float) -> None:
        """Close an attempt quiet for ``linger`` s after its final status, or a running
        one whose topic has been silent for ``idle_close`` s (it reads as LOST until a
        message resumes it)."""
        for p, hold in list(self._held.items()):
            if now - hold.since >= min(attempts.HOLD_S, self.idle_close):
                self.release(p)  # no new run came: they are this run's
        if self.rec is None:
            return
        if self._ended_at is not None and now - self._ended_at >= self.linger:
            if now - self._last_message >= self.linger:
                self._end()
        elif self.rec.status not in FINAL_STATUSES and now - self._last_message >= self.idle_close:
            quiet = now - self._last_message
            log.warning(
                "job %s attempt %s: no message for %.0f s; closed without a final status "
                "(it reads as LOST; a new message resumes it)",
                self.job_id,
                self.attempt_id,
                quiet,
            )
            if self._end():
                self._why = attempts.IDLE.format(quiet)

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
        self._held.pop(partition, None)  # gone with the broker's data
        self._end(rewind=False)  # what the store refused is gone with the broker's data
        self.next[partition] = start
        self.last.pop(partition, None)
        self.attempt_id = None
        self._resume = self._ended = self._reopenable = False
        self._start, self._start_unread, self._alive_at = None, False, None
        self.status = "—"
        try:
            self._save()
        except OSError as exc:
            log.warning("topic %s: cannot save the position (%s)", self.topic, exc)

    def stop(self) -> None:
        """Flush and save; close the recording (an attempt without a final status stays
        RUNNING in the store, and a restarted follower resumes it)."""
        self._end(rewind=False)

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
            "duplicates": duplicates + stats.get("duplicates", 0) + self.redelivered,
            "attempts": self.attempts,
            "late_dropped": self.late_dropped,
        }
