"""The follower: read Solstice's state topics from its broker into the store.

One aiokafka consumer without a group (a group takes ~5 s to join on Tansu, and the
position lives in the store anyway): every ``refresh`` seconds the follower lists the
broker's topics, assigns itself every partition of those it follows and seeks each to
its own position. A topic per job (``<job_id>_state``), a :class:`Track` per topic.

The broker going away is noticed by the listing failing: the follower says so, drops its
assignment (so that its fetches do not re-create topics on a fresh broker), and keeps
trying. When the broker answers again, every position is checked against what the broker
holds — fewer messages than were read, or a different message at the last offset read,
means the broker lost its data (Tansu's memory storage does on a restart): the follower
says so and records what comes next as a new attempt.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from collections import deque
from typing import Any

from solstice_inspect.follow.track import Track, job_id_of
from solstice_inspect.store.reader import Store

log = logging.getLogger("solstice_inspect.follow")

#: seconds a broker request may take before the broker counts as unreachable
REQUEST_TIMEOUT_S = 5.0
#: messages taken from the consumer per poll (bounds the memory of a backlog)
MAX_RECORDS = 10_000


def _kafka() -> Any:
    try:
        import aiokafka
    except ImportError as exc:
        raise ImportError(
            "following a broker needs aiokafka: pip install 'solstice-inspect[follow]'"
        ) from exc
    return aiokafka


class Follower:
    """Follow the state topics of a broker; see the module docstring.

    Parameters
    ----------
    bootstrap
        The broker, ``HOST:PORT`` (several comma-separated).
    store
        The store written to.
    topics
        Exactly these topics; else every topic whose whole name matches ``pattern``.
    pattern
        A regular expression (default ``.*_state``).
    flush_interval
        Seconds between two writes of a job's rows (and of its position).
    linger
        Seconds a job's recording stays open after its final status for late reports.
    idle_close
        Seconds of silence after which a running job's recording is closed (resumed when
        a message comes).
    refresh
        Seconds between two listings of the broker's topics.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        store: Store,
        topics: list[str] | None = None,
        pattern: str = ".*_state",
        flush_interval: float = 1.0,
        linger: float = 60.0,
        idle_close: float = 600.0,
        refresh: float = 2.0,
        heartbeat_interval: float = 5.0,
    ) -> None:
        if not bootstrap or not isinstance(bootstrap, str):
            raise ValueError(f"bootstrap must be 'HOST:PORT', not {bootstrap!r}")
        if not flush_interval > 0 or not refresh > 0:
            raise ValueError("flush_interval and refresh must be > 0 seconds")
        self.bootstrap = bootstrap
        self.store = store
        self.topics = list(topics) if topics else None
        try:
            self.pattern = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from exc
        self.flush_interval = flush_interval
        self.linger = linger
        self.idle_close = idle_close
        self.refresh = refresh
        self.heartbeat_interval = heartbeat_interval
        self.tracks: dict[str, Track] = {}
        self.broker_up: bool | None = None  # None: not reached yet
        self.outages = 0
        self.losses = 0
        self.skipped: set[str] = set()
        self._waiting: set[str] = set()  # named topics said to be missing
        self.started = time.time()
        self._assigned: set[Any] = set()
        self._rate: deque[tuple[float, int]] = deque(maxlen=64)
        self._consumer: Any = None
        self._lag = 0
        self._check_now = False
        self._next_refresh = 0.0
        self.error: BaseException | None = None

    def __repr__(self) -> str:
        return f"Follower({self.bootstrap!r}, jobs={len(self.tracks)}, broker_up={self.broker_up})"

    # ------------------------------------------------------------------ the loop
    async def run(self, stop: asyncio.Event) -> None:
        """Follow until ``stop`` is set; then write everything and close (attempts
        without a final status stay RUNNING, to be resumed)."""
        kafka = _kafka()
        consumer = kafka.AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            # never jump silently: a position the broker does not hold is checked (lost
            # data, or retention) by the follower itself
            auto_offset_reset="none",
            client_id="solstice-inspect-follow",
            request_timeout_ms=int(REQUEST_TIMEOUT_S * 1000),
            fetch_max_wait_ms=100,
            retry_backoff_ms=200,
            metadata_max_age_ms=int(self.refresh * 1000),
        )
        self._consumer = consumer
        try:
            await self._start(consumer, stop)
            while not stop.is_set():
                try:
                    await self._step(consumer, stop)
                except Exception:  # never stop following: say it, re-check, go on
                    log.exception("following %s: unexpected error; going on", self.bootstrap)
                    self._suspect_all()
                    self._next_refresh = 0.0
                    await _wait(stop, 1.0)
        finally:
            for track in self.tracks.values():
                try:
                    track.stop()
                except Exception:  # one job's store trouble must not keep the others open
                    log.exception("stopping %s failed", track)
            try:
                await consumer.stop()
            except Exception as exc:  # noqa: BLE001 - stopping: say it, never raise
                log.debug("closing the consumer: %s", exc)

    async def _step(self, consumer: Any, stop: asyncio.Event) -> None:
        """One turn: list the topics when due, take what came, flush what is due."""
        now = time.monotonic()
        if now >= self._next_refresh or self._check_now:
            self._check_now = False
            await self._refresh(consumer)
            self._next_refresh = time.monotonic() + self.refresh
        if self._assigned:
            batch = await self._poll(consumer)
            if batch is None:
                self._next_refresh = 0.0  # a position the broker does not hold: check now
                return
        else:
            batch = {}
            await _wait(stop, 0.1)
        for tp, records in batch.items():
            track = self.tracks.get(tp.topic)
            # a suspect track is read again from its own position once checked
            if track is not None and not track.suspect:
                self._guard(track, track.take, tp.partition, records)
        now = time.monotonic()
        for track in self.tracks.values():
            if track.due(now):
                self._guard(track, track.commit)
            self._guard(track, track.upkeep, now)
        self._measure(consumer)

    async def _poll(self, consumer: Any) -> dict[Any, list[Any]] | None:
        """The next messages; None when a position is beyond what the broker holds."""
        kafka = _kafka()
        try:
            return await consumer.getmany(timeout_ms=100, max_records=MAX_RECORDS)
        except kafka.errors.OffsetOutOfRangeError as exc:
            log.warning("the broker does not hold some positions read (%s); checking", exc)
        except kafka.errors.KafkaError as exc:
            log.debug("fetching failed (%s); retrying", exc)
            return {}
        self._suspect_all()
        return None

    def _suspect_all(self) -> None:
        for track in self.tracks.values():
            track.suspect = True

    def _guard(self, track: Track, fn: Any, *args: Any) -> None:
        """Run one job's step; a failure (its store unwritable, say) is logged and the
        job is read again from its own position at the next listing, never stopping the
        other jobs."""
        try:
            fn(*args)
        except Exception:
            track.failures += 1
            if track.failures == 1 or track.failures % 100 == 0:
                log.exception(
                    "job %s: %s failed (%d times)", track.job_id, fn.__name__, track.failures
                )
            track.suspect = True

    async def _start(self, consumer: Any, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                await consumer.start()
                return
            except Exception as exc:  # noqa: BLE001 - any failure to reach it: retry
                self._down(exc)
                await _wait(stop, delay)
                delay = min(delay * 2, 5.0)

    def _down(self, exc: BaseException) -> None:
        if self.broker_up is not False:
            if self.broker_up:
                self.outages += 1
            log.warning(
                "broker %s unreachable (%s: %s); following resumes when it answers",
                self.bootstrap,
                type(exc).__name__,
                exc,
            )
        self.broker_up = False
        self._suspect_all()  # it may come back without the data read before

    def _wanted(self, topic: str) -> bool:
        if self.topics is not None:
            return topic in self.topics
        return self.pattern.fullmatch(topic) is not None and not topic.startswith("__")

    async def _refresh(self, consumer: Any) -> None:
        """List the broker's topics; follow new ones, notice gone ones and a broker that
        went away or came back; (re)assign and seek."""
        try:
            # one metadata request gives the topics and their partitions (the consumer's
            # own ``topics()`` makes the same request but keeps only the names)
            cluster = await asyncio.wait_for(
                consumer._client.fetch_all_metadata(), REQUEST_TIMEOUT_S
            )
        except Exception as exc:  # noqa: BLE001 - unreachable, timed out, refused
            self._down(exc)
            if self._assigned:
                consumer.assign([])  # fetching an unknown topic would create it again
                self._assigned = set()
            return
        if self.broker_up is False:
            log.warning("broker %s answers again; checking what it still holds", self.bootstrap)
        self.broker_up = True
        names = cluster.topics()
        for name in self.topics or ():
            if name not in names and name not in self._waiting:
                self._waiting.add(name)
                log.info("topic %s is not on the broker yet; following it when it is", name)
        for name in sorted(names):
            if name in self.tracks or name in self.skipped or not self._wanted(name):
                continue
            job_id = job_id_of(name)
            if job_id is None:
                self.skipped.add(name)
                log.warning("topic %s skipped: not a job's state topic (<job_id>_state)", name)
                continue
            self.tracks[name] = Track(
                self.store,
                name,
                job_id,
                flush_interval=self.flush_interval,
                linger=self.linger,
                idle_close=self.idle_close,
                heartbeat_interval=self.heartbeat_interval,
            )
            log.info("following topic %s (job %s)", name, job_id)
        kafka = _kafka()
        wanted = set()
        for name, track in self.tracks.items():
            if name not in names:
                if track.present:
                    log.warning("topic %s is gone from the broker", name)
                    track.present = False
                    track.suspect = True
                continue
            track.present = True
            for p in cluster.partitions_for_topic(name) or ():
                wanted.add(kafka.TopicPartition(name, p))
        suspects = [tp for tp in wanted if self.tracks[tp.topic].suspect]
        if wanted == self._assigned and not suspects:
            return
        if suspects:
            try:
                await self._check(consumer, suspects)
            except _Retry:
                return
        consumer.assign(sorted(wanted))
        for tp in wanted:
            consumer.seek(tp, self.tracks[tp.topic].next.get(tp.partition, 0))
        self._assigned = wanted

    async def _check(self, consumer: Any, tps: list[Any]) -> None:
        """Does the broker still hold what was read from ``tps``? Reset those it lost.

        The end of a partition is taken from a fetch (its high watermark), not from a
        ListOffsets request: Tansu 0.6 answers that one with the last *batch*'s base
        offset + 1, which would read as lost data.
        """
        try:
            begins = await asyncio.wait_for(consumer.beginning_offsets(tps), REQUEST_TIMEOUT_S)
            found, ends = await self._fetch_last_read(consumer, tps, begins)
        except Exception as exc:
            log.warning("checking positions failed (%s: %s); retrying", type(exc).__name__, exc)
            consumer.assign([])
            self._assigned = set()
            raise _Retry from exc
        for tp in tps:
            track = self.tracks[tp.topic]
            pos = track.next.get(tp.partition, 0)
            end, begin = ends[tp], begins[tp]
            last = track.last.get(tp.partition)
            seen = found.get(tp)
            if pos > end:
                why = f"it holds {end} messages, {pos} were read"
            elif last is not None and seen is not None and seen != last:
                why = f"its message at offset {last[0]} is not the one read there"
            else:
                why = ""
            if why:
                self.losses += 1
                track.lost(tp.partition, why, begin)
            elif pos < begin:
                log.warning(
                    "topic %s partition %d: messages %d to %d were deleted by the broker "
                    "before they were read (retention)",
                    tp.topic,
                    tp.partition,
                    pos,
                    begin - 1,
                )
                track.next[tp.partition] = begin
        for track in {self.tracks[tp.topic] for tp in tps}:
            track.suspect = False

    async def _fetch_last_read(
        self, consumer: Any, tps: list[Any], begins: dict[Any, int]
    ) -> tuple[dict[Any, tuple[int, int, int]], dict[Any, int]]:
        """Fetch each partition from its last message read: that message's (offset,
        timestamp, crc), where the broker has one, and the partition's end."""
        at = {}
        for tp in tps:
            pos = self.tracks[tp.topic].next.get(tp.partition, 0)
            at[tp] = max(pos - 1, begins[tp], 0)
        consumer.assign(sorted(at))
        for tp, offset in at.items():
            consumer.seek(tp, offset)
        found: dict[Any, tuple[int, int, int]] = {}
        deadline = time.monotonic() + REQUEST_TIMEOUT_S

        def settled(tp: Any) -> bool:
            high = consumer.highwater(tp)
            return tp in found or (high is not None and high <= at[tp])

        while not all(settled(tp) for tp in at):
            if time.monotonic() > deadline:
                raise TimeoutError("no fetch answer for " + ", ".join(map(str, at)))
            batch = await consumer.getmany(*[t for t in at if not settled(t)], timeout_ms=200)
            for tp, records in batch.items():
                if records and tp not in found:
                    r = records[0]
                    found[tp] = (r.offset, int(r.timestamp), zlib.crc32(r.value or b""))
        ends = {tp: consumer.highwater(tp) for tp in at}
        return found, ends

    # ------------------------------------------------------------------ figures
    def _measure(self, consumer: Any) -> None:
        total = sum(t.messages for t in self.tracks.values())
        now = time.monotonic()
        if not self._rate or now - self._rate[-1][0] >= 0.25:
            self._rate.append((now, total))
        lag = 0
        for tp in self._assigned:
            high = consumer.highwater(tp)
            if high is None:
                continue
            pos = self.tracks[tp.topic].next.get(tp.partition, 0)
            if high < pos:  # fewer messages than were read: a broker that lost its data
                self.tracks[tp.topic].suspect = True
                self._check_now = True
            lag += max(high - pos, 0)
        self._lag = lag

    def rate(self, window: float = 5.0) -> float:
        """Messages per second over the last ``window`` seconds."""
        if len(self._rate) < 2:
            return 0.0
        now_t, now_n = self._rate[-1]
        for t, n in self._rate:
            if now_t - t <= window:
                return (now_n - n) / (now_t - t) if now_t > t else 0.0
        return 0.0

    def jobs(self) -> list[dict[str, Any]]:
        """One dict per followed topic: job, attempt, status, counts."""
        return [t.info() for t in list(self.tracks.values())]

    def stats(self) -> dict[str, Any]:
        """Figures of the whole follower (what the status line shows)."""
        infos = self.jobs()
        return {
            "bootstrap": self.bootstrap,
            "broker_up": self.broker_up,
            "topics": len(infos),
            "jobs": sum(1 for i in infos if i["attempt_id"]),
            "running": sum(1 for i in infos if i["status"] == "RUNNING"),
            "messages": sum(i["messages"] for i in infos),
            "messages_per_s": round(self.rate(), 1),
            "lag": self._lag,
            "accepted": sum(i["accepted"] for i in infos),
            "rejected": sum(i["rejected"] for i in infos),
            "duplicates": sum(i["duplicates"] for i in infos),
            "late_dropped": sum(i["late_dropped"] for i in infos),
            "attempts": sum(i["attempts"] for i in infos),
            "broker_outages": self.outages,
            "data_losses": self.losses,
            "uptime_s": round(time.time() - self.started, 1),
        }


class _Retry(Exception):
    """A position check failed: the listing tries again."""


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
