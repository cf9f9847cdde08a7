"""The reference pipeline's workers and queues: one Ray actor class for every stage, and
the bounded partitioned queue (with offsets) that connects two stages."""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from solstice_inspect.demo.data import (
    SINK_SCHEMA,
    enrich_record,
    generate_split,
    keep_record,
    parse_record,
)
from solstice_inspect.recorder.client import Telemetry

OPERATORS = {
    "source": "EventLogSource",
    "parse": "JsonParse",
    "filter": "BotFilter",
    "enrich": "GeoEnrich",
    "sink": "LanceSink",
}
#: seconds of work per record: enrich is the deliberate bottleneck
COST_PER_RECORD = {"source": 0.0, "parse": 0.0002, "filter": 0.0, "enrich": 0.002, "sink": 0.0}
#: the split (counted per worker) on which a worker given ``hang_s`` hangs: late enough
#: for its stage to have finished the 10 splits the straggler rule needs
HANG_AT_SPLIT = 12


class StageWorker:
    """One worker of one stage (a Ray actor named ``{stage_id}:{worker_id}``).

    ``process`` takes a split (id, parent ids, records) and returns the derived split;
    the source's ``process`` generates split ``source_split_{i}`` instead.
    """

    def __init__(
        self,
        stage_id: str,
        worker_id: str,
        tel: Telemetry | None,
        *,
        partitions: list[int],
        options: dict[str, Any],
    ) -> None:
        self.stage_id = stage_id
        self.worker_id = worker_id
        self.tel = tel
        self.options = options
        self.slow = float(options.get("slow_factor", 1.0)) * float(options.get("cost_scale", 1.0))
        self.input_records = 0
        self.output_records = 0
        self.processed = 0
        self.errors = 0
        self.busy = 0.0
        self.last_resources = 0.0
        self._sink_uri = options.get("sink_uri")
        self._sink_created = False
        # a real log line: what ``job.worker_logs()`` shows while the worker is alive
        print(f"{worker_id} started: stage {stage_id}, partitions {partitions}", flush=True)
        if tel is not None:
            tel.started(assigned_partitions=partitions)
            tel.resources()

    def pid(self) -> int:
        return os.getpid()

    def process(self, split_id: str, parents: list[str], records: Any) -> dict[str, Any]:
        if self.tel is None:
            return self._process(split_id, records)
        source = self.stage_id == "source"
        out_id = split_id if source else f"{self.stage_id}_{split_id}"
        # watched by the straggler detector while it runs; the driver reports the split
        # when it commits it (a stage master's report survives this worker crashing)
        with self.tel.split(out_id, [] if source else [split_id], report=False):
            return self._process(split_id, records)

    def _slow_geo_lookup(self, split_id: str) -> None:
        """The injected straggler: one split waits on a "geo service" that hangs."""
        if self.tel is not None:
            self.tel.log("INFO", f"geo lookup for {split_id}: waiting on geo-service:8080")
        time.sleep(float(self.options["hang_s"]))

    def _process(self, split_id: str, records: Any) -> dict[str, Any]:
        started = time.perf_counter()
        errors: list[tuple[Exception, str]] = []
        if self.stage_id == "source":
            index = int(split_id.rsplit("_", 1)[1])
            out = generate_split(
                index,
                int(self.options.get("split_size", 50)),
                seed=int(self.options.get("seed", 7)),
                malformed_rate=float(self.options.get("malformed_rate", 0.0)),
                start=float(self.options.get("start", 0.0)),
            )
            n_in = len(out)
            out_id = split_id
        else:
            n_in = len(records)
            out_id = f"{self.stage_id}_{split_id}"
            out = self._apply(records, errors)
        cost = COST_PER_RECORD.get(self.stage_id, 0.0) * n_in * self.slow
        if cost:
            time.sleep(cost)
        if self.options.get("hang_s") and self.processed + 1 == HANG_AT_SPLIT:
            self._slow_geo_lookup(out_id)
        elapsed = time.perf_counter() - started
        self.input_records += n_in
        self.output_records += len(out)
        self.processed += 1
        self.errors += len(errors)
        self.busy += elapsed
        if self.tel is not None:
            for exc, _ in errors[:20]:  # a split full of bad lines reports a sample
                self.tel.exception(exc, split_id=split_id)
            if errors:
                self.tel.log("WARNING", f"{len(errors)} malformed line(s) skipped in {split_id}")
            if options_slow(self.options) and self.processed == 1:
                self.tel.log("WARNING", f"slow node: split {split_id} took {elapsed:.3f} s")
            if out and self.processed % 10 == 1:  # a data peek: rows of every 10th split
                self.tel.sample(out_id, out)
            self.tel.metrics(
                input_records=self.input_records,
                output_records=self.output_records,
                processing_time=round(self.busy, 6),
                processed_count=self.processed,
            )
            if time.monotonic() - self.last_resources > 2.0:
                self.last_resources = time.monotonic()
                self.tel.resources()
        # the split itself is reported by the driver when it commits it (a stage master's
        # report survives this worker crashing before its buffered telemetry is sent)
        return {
            "split_id": out_id,
            "parent_split_ids": [split_id] if self.stage_id != "source" else [],
            "records": out,
            "input_records": n_in,
            "errors": len(errors),
            "processing_time": round(elapsed, 6),
        }

    def _apply(self, records: list[dict[str, Any]], errors: list) -> list[dict[str, Any]]:
        if self.stage_id == "parse":
            out = []
            for raw in records:
                try:
                    out.append(parse_record(raw))
                except ValueError as exc:
                    errors.append((exc, raw["event_id"]))
            return out
        if self.stage_id == "filter":
            return [r for r in records if keep_record(r)]
        if self.stage_id == "enrich":
            return [enrich_record(r) for r in records]
        if self.stage_id == "sink":
            self._write(records)
            return records
        raise ValueError(f"unknown stage {self.stage_id!r}")

    def _write(self, records: list[dict[str, Any]]) -> None:
        if not records or not self._sink_uri:
            return
        import lance
        import pyarrow as pa

        table = pa.Table.from_pylist(records, schema=SINK_SCHEMA)
        mode = "append" if self._sink_created else "create"
        lance.write_dataset(table, self._sink_uri, mode=mode)
        self._sink_created = True

    def flush_telemetry(self, timeout: float = 5.0) -> bool:
        """Hand every buffered report over (before a planned kill or the end)."""
        return self.tel.flush(timeout) if self.tel is not None else True

    def finish(self, reason: str = "completed") -> dict[str, Any]:
        """Stop: the last report, then this worker's counters and telemetry stats."""
        tel_stats: dict[str, Any] = {}
        if self.tel is not None:
            self.tel.resources()
            self.tel.stopped(reason, processed_count=self.processed, error_count=self.errors)
            self.tel.flush(5.0)
            tel_stats = self.tel.stats()
        return {
            "worker_id": self.worker_id,
            "input_records": self.input_records,
            "output_records": self.output_records,
            "processed": self.processed,
            "errors": self.errors,
            "telemetry": tel_stats,
        }


@dataclass
class Message:
    """One split waiting in (or taken from) a queue partition."""

    partition: int
    offset: int
    split_id: str
    records: Any


@dataclass
class PartitionedQueue:
    """A bounded queue between two stages, in partitions with offsets.

    ``latest_offset`` counts messages put in a partition; ``committed_offset`` those the
    consumer finished. ``capacity`` bounds messages not yet committed plus those a
    producer has reserved room for: a full queue throttles its producer (backpressure).
    """

    name: str
    partitions: int
    capacity: int
    pending: dict[int, deque[Message]] = field(default_factory=dict)
    latest: dict[int, int] = field(default_factory=dict)
    committed: dict[int, int] = field(default_factory=dict)
    reserved: int = 0

    def __post_init__(self) -> None:
        for p in range(self.partitions):
            self.pending[p] = deque()
            self.latest[p] = 0
            self.committed[p] = 0

    @property
    def uncommitted(self) -> int:
        return sum(self.latest[p] - self.committed[p] for p in range(self.partitions))

    def room(self) -> int:
        return self.capacity - self.uncommitted - self.reserved

    def put(self, partition: int, split_id: str, records: Any) -> None:
        msg = Message(partition, self.latest[partition], split_id, records)
        self.latest[partition] += 1
        self.pending[partition].append(msg)

    def take(self, partitions: list[int]) -> Message | None:
        """The next message of the fullest of these partitions (it stays uncommitted)."""
        best = None
        for p in partitions:
            if self.pending[p] and (best is None or len(self.pending[p]) > len(self.pending[best])):
                best = p
        return self.pending[best].popleft() if best is not None else None

    def give_back(self, msg: Message) -> None:
        """A message whose consumer died: redeliver it first."""
        self.pending[msg.partition].appendleft(msg)

    def commit(self, msg: Message) -> None:
        self.committed[msg.partition] = max(self.committed[msg.partition], msg.offset + 1)

    def empty(self) -> bool:
        return self.uncommitted == 0 and self.reserved == 0

    def lag(self, partition: int) -> int:
        return self.latest[partition] - self.committed[partition]

    def offsets(self) -> list[dict[str, Any]]:
        return [
            {
                "partition_id": str(p),
                "topic": self.name,
                "consumer_group": self.name.split("->")[-1],
                "committed_offset": self.committed[p],
                "latest_offset": self.latest[p],
            }
            for p in range(self.partitions)
        ]


def options_slow(options: dict[str, Any]) -> bool:
    """Whether this worker runs on the simulated slow node."""
    return float(options.get("slow_factor", 1.0)) > 1.0
