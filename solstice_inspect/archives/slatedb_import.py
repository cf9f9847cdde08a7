"""Jobs archived by Solstice's old web UI (its ``JobStorage`` on SlateDB), as attempts.

The old UI kept one SlateDB database per attempt, at ``<base>/<job_id>/<attempt_id>/db``,
with JSON values under these keys (docs/import-solstice.md has the full mapping):

==================================  ============================================
``job``                             the archive: status, times, stages, DAG, error
``config``                          the job's configuration
``metrics:<stage>:<epoch s>``       a stage metrics snapshot (every 30 s)
``exception:<id>``                  one exception group: first / last seen, count
``lineage:<split_id>``              one processed split, its parents and worker
``worker:<worker_id>``              a worker's life and final counters
``worker_event:<worker>:<epoch ms>`` STARTED / COMPLETED
``ray_event:<event_id>``            a Ray event export record
``lineage_by_stage:…``,             indexes of the lineage keys: derived, skipped
``lineage_by_parent:…``
==================================  ============================================

Each archive becomes the envelopes Solstice would have sent (DESIGN §3) and is recorded
through ``store.record(...).ingest(...)``, so the recorder's rules apply unchanged. The
attempt keeps the archive's attempt id: importing the same archive again finds it in the
store and skips it.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solstice_inspect.errors import InspectError
from solstice_inspect.protocol import JOB_ID_RE, envelope

if TYPE_CHECKING:
    from solstice_inspect.api import Store

__all__ = ["ArchiveImport", "find_archives", "import_archive", "read_archive", "to_envelopes"]

#: occurrences of one archived exception group replayed as rows (the archive keeps a count)
MAX_OCCURRENCES = 1_000
#: key prefixes that index other keys: nothing to import
INDEX_PREFIXES = ("lineage_by_stage:", "lineage_by_parent:")
#: where the recorder is told the envelopes come from when the archive names no source
JOB_SOURCE = "solstice_archive"


@dataclass
class ArchiveImport:
    """What importing one archive did."""

    path: str
    job_id: str
    attempt_id: str
    status: str = ""
    keys: int = 0
    envelopes: int = 0
    rejected: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    already_present: bool = False
    note: str = ""

    def as_row(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "attempt_id": self.attempt_id,
            "status": self.status,
            "keys": self.keys,
            "envelopes": self.envelopes,
            "rejected": self.rejected,
            "skipped": dict(self.skipped),
            "already_present": self.already_present,
            "note": self.note,
            "path": self.path,
        }


def find_archives(path: str | Path) -> list[tuple[Path, str, str]]:
    """Every SlateDB archive under ``path``: (database dir, job id, attempt id).

    ``path`` may be the old UI's base directory, one job's directory, one attempt's
    directory or its ``db`` directory itself.
    """
    root = Path(path)
    if not root.exists():
        raise InspectError(f"no Solstice archive at {root}: the path does not exist")
    found = []
    candidates = [root] if (root / "manifest").is_dir() else []
    candidates += sorted(p.parent for p in root.rglob("manifest") if p.is_dir())
    for db in dict.fromkeys(candidates):
        attempt_dir = db.parent if db.name == "db" else db
        job_id, attempt_id = attempt_dir.parent.name, attempt_dir.name
        found.append((db, job_id, attempt_id))
    if not found:
        raise InspectError(
            f"no Solstice archive under {root}: expected <job_id>/<attempt_id>/db/manifest/"
            " (the old web UI's JobStorage layout)"
        )
    return found


def read_archive(db_dir: str | Path) -> dict[bytes, bytes]:
    """Every key and value of one SlateDB database, read-only."""
    try:
        from slatedb.uniffi import DbReaderBuilder, KeyRange, ObjectStore
    except ImportError as exc:
        raise ImportError(
            "importing Solstice archives needs slatedb: pip install 'solstice-inspect[archives]'"
        ) from exc

    async def scan() -> dict[bytes, bytes]:
        store = ObjectStore.resolve("file:///")
        reader = await DbReaderBuilder(str(Path(db_dir).resolve()), store).build()
        try:
            everything = KeyRange(start=None, start_inclusive=True, end=None, end_inclusive=True)
            it = await reader.scan(everything)
            out = {}
            while (kv := await it.next()) is not None:
                out[bytes(kv.key)] = bytes(kv.value)
            return out
        finally:
            await reader.shutdown()

    return _run(scan())


def _run(coro: Any) -> Any:
    """Run a coroutine to its end, also from a notebook whose loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="solstice-archive-reader")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):  # Ray's event export writes ISO 8601
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
            if when.tzinfo is None:  # no zone written: UTC, never this machine's zone
                when = when.replace(tzinfo=timezone.utc)
            return when.timestamp()
        return None
    return float(value) if math.isfinite(value) else None


def _counter(value: Any) -> int | float | None:
    number = _float(value)
    if number is None or number < 0:
        return None
    return int(number) if number.is_integer() else number


def _seconds(record: dict[str, Any]) -> int | float | None:
    """A split's processing time in seconds: ``processing_time`` (s) or the state
    manager's ``process_time_ms`` / the collector's ``processing_time_ms`` (ms)."""
    for key in ("process_time_ms", "processing_time_ms"):
        ms = _counter(record.get(key))
        if ms is not None:
            return ms / 1000.0
    return _counter(record.get("processing_time"))


def _drop_none(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if v is not None}


class _Builder:
    """Envelopes from one archive's decoded values, in the order Solstice sent them."""

    def __init__(self, job_id: str, result: ArchiveImport) -> None:
        self.job_id = job_id
        self.result = result
        self.out: list[tuple[float, int, dict[str, Any]]] = []
        self.first_ts: float | None = None

    def add(self, mtype: str, source: str, ts: float, payload: dict[str, Any], rank: int = 1):
        env = envelope(mtype, self.job_id, source, ts, _drop_none(payload))
        self.out.append((ts, rank, env))

    def job(self, job: dict[str, Any], config: dict[str, Any] | None) -> None:
        start = _float(job.get("start_time"))
        end = _float(job.get("end_time"))
        stages = [s for s in job.get("stages") or () if isinstance(s, dict) and s.get("stage_id")]
        merged = {**(job.get("config") or {}), **(config or {})}
        if start is not None:
            self.add(
                "job_started",
                JOB_SOURCE,
                start,
                {
                    "dag_edges": job.get("dag_edges") or None,
                    "stages": [
                        _drop_none(
                            {
                                "stage_id": str(s["stage_id"]),
                                "operator_type": s.get("operator_type"),
                                "min_parallelism": _counter(s.get("min_parallelism")),
                                "max_parallelism": _counter(s.get("max_parallelism")),
                            }
                        )
                        for s in stages
                    ]
                    or None,
                    "config": merged or None,
                },
                rank=0,
            )
        at = end if end is not None else start
        if at is None:
            self.result.skipped["job_without_times"] += 1
            return
        for s in stages:
            sid = str(s["stage_id"])
            final = s.get("final_metrics") or {}
            if isinstance(final, dict) and final:
                self.stage_metrics(sid, at, final)
            if s.get("failed") and s.get("failure_message"):
                self.add(
                    "event",
                    JOB_SOURCE,
                    at,
                    {
                        "event_type": "stage_failed",
                        "stage_id": sid,
                        "description": str(s["failure_message"]),
                    },
                )
            if s.get("is_finished") or s.get("failed"):
                self.add("stage_completed", sid, at, {"operator_type": s.get("operator_type")})
        status = str(job.get("status") or "").upper()
        if status in ("COMPLETED", "FAILED", "CANCELLED") and end is not None:
            self.add(
                "job_failed" if status == "FAILED" else "job_completed",
                JOB_SOURCE,
                end,
                {
                    "status": status,
                    "duration_ms": _counter(job.get("duration_ms")),
                    "final_metrics": job.get("final_metrics") or None,
                    "error": None if job.get("error") is None else str(job["error"]),
                },
                rank=9,
            )

    def stage_metrics(self, stage_id: str, ts: float, m: dict[str, Any]) -> None:
        partitions = m.get("partition_metrics")
        self.add(
            "stage_metrics",
            stage_id,
            ts,
            {
                "worker_count": _counter(m.get("worker_count")),
                "input_records": _counter(m.get("input_records")),
                "output_records": _counter(m.get("output_records")),
                "input_throughput": _counter(m.get("input_throughput")),
                "output_throughput": _counter(m.get("output_throughput")),
                "queue_lag": _counter(m.get("queue_lag")),
                "backpressure_active": m.get("backpressure_active")
                if isinstance(m.get("backpressure_active"), bool)
                else None,
                "partition_metrics": partitions if isinstance(partitions, dict) else None,
            },
        )

    def exception(self, e: dict[str, Any]) -> None:
        first = _float(e.get("first_seen")) or _float(e.get("timestamp")) or _float(e.get("ts"))
        last = _float(e.get("last_seen")) or first
        if first is None or last is None:
            self.result.skipped["exception_without_time"] += 1
            return
        count = int(_counter(e.get("occurrence_count")) or 1)
        if count > MAX_OCCURRENCES:
            self.result.skipped["exception_occurrences_over_cap"] += count - MAX_OCCURRENCES
        payload = {
            "stage_id": e.get("stage_id"),
            "worker_id": e.get("worker_id"),
            "split_id": e.get("split_id"),
            "exception_type": str(e.get("exception_type") or "Exception"),
            "message": None if e.get("message") is None else str(e["message"]),
            "stacktrace": None if e.get("stacktrace") is None else str(e["stacktrace"]),
        }
        source = str(e.get("worker_id") or e.get("stage_id") or JOB_SOURCE)
        # the archive keeps the first and last time and a count: the occurrences between
        # them are placed at the last time (documented in docs/import-solstice.md)
        for i in range(min(count, MAX_OCCURRENCES)):
            self.add("exception", source, first if i == 0 else last, payload)

    def lineage(self, s: dict[str, Any], key_split: str) -> None:
        ts = _float(s.get("timestamp"))
        stage_id = s.get("stage_id")
        if ts is None or not stage_id:
            self.result.skipped["lineage_without_time_or_stage"] += 1
            return
        parents = s.get("parent_ids", s.get("parent_split_ids")) or []
        # written by the stage master on behalf of its worker: a committed split
        self.add(
            "split_processed",
            str(stage_id),
            ts,
            {
                "stage_id": str(stage_id),
                "split_id": str(s.get("split_id") or key_split),
                "worker_id": s.get("worker_id"),
                "parent_split_ids": [str(p) for p in parents] if isinstance(parents, list) else [],
                "input_records": _counter(s.get("input_records")),
                "output_records": _counter(s.get("output_records")),
                "processing_time": _seconds(s),
            },
        )

    def split(self, s: dict[str, Any], key_rest: str) -> None:
        """``split:<stage>:<partition>:<offset>`` (or ``:<msg_id>``): one split's metrics,
        as the state manager stored them from Solstice's split metrics batches."""
        ts = _float(s.get("ts")) or _float(s.get("timestamp"))
        stage_id = s.get("stage_id") or key_rest.partition(":")[0]
        if ts is None or not stage_id:
            self.result.skipped["split_without_time_or_stage"] += 1
            return
        split_id = s.get("msg_id") or key_rest
        self.add(
            "split_processed",
            str(stage_id),  # the stage master's record of its worker's split: committed
            ts,
            {
                "stage_id": str(stage_id),
                "split_id": str(split_id),
                "worker_id": s.get("worker_id") or None,
                "input_records": _counter(s.get("input_records")),
                "output_records": _counter(s.get("output_records")),
                "processing_time": _seconds(s),
            },
        )

    def stage(self, s: dict[str, Any], key_stage: str) -> None:
        stage_id = str(s.get("stage_id") or key_stage)
        start, end = _float(s.get("start_time")), _float(s.get("end_time"))
        spec = {
            "operator_type": s.get("operator_type"),
            "min_parallelism": _counter(s.get("min_parallelism")),
            "max_parallelism": _counter(s.get("max_parallelism")),
        }
        if start is not None:
            self.add("stage_started", stage_id, start, spec, rank=0)
        if end is not None:
            self.add("stage_completed", stage_id, end, spec)
        if start is None and end is None:
            self.result.skipped["stage_without_times"] += 1

    def offset(self, o: dict[str, Any]) -> None:
        ts, stage_id = _float(o.get("ts")), o.get("stage_id")
        offset = _counter(o.get("offset"))
        if ts is None or not stage_id or offset is None:
            self.result.skipped["offset_without_time_stage_or_offset"] += 1
            return
        part: dict[str, Any] = {"committed_offset": int(offset)}
        if o.get("worker_id"):
            part["worker_id"] = str(o["worker_id"])
        self.add(
            "stage_metrics",
            str(stage_id),
            ts,
            {"partition_metrics": {str(o.get("partition_id", 0)): part}},
        )

    def backpressure(self, b: dict[str, Any]) -> None:
        ts, stage_id = _float(b.get("ts")), b.get("stage_id")
        if ts is None or not stage_id or not isinstance(b.get("active"), bool):
            self.result.skipped["backpressure_without_time_stage_or_flag"] += 1
            return
        self.add(
            "backpressure",
            str(stage_id),
            ts,
            {"active": b["active"], "queue_lag": _counter(b.get("queue_lag"))},
        )

    def worker(self, w: dict[str, Any], key_worker: str) -> None:
        worker_id = str(w.get("worker_id") or key_worker)
        stage_id = w.get("stage_id")
        start, end = _float(w.get("start_time")), _float(w.get("end_time"))
        if (
            start is None
            and end is None
            and str(w.get("status") or "").upper()
            in (
                "RUNNING",
                "IDLE",
            )
        ):
            start = _float(w.get("timestamp"))  # a state snapshot: alive at that time
        if not stage_id or (start is None and end is None):
            self.result.skipped["worker_without_stage_or_time"] += 1
            return
        ids = {"node_id": w.get("node_id"), "pid": _counter(w.get("pid"))}
        parts = w.get("assigned_partitions")
        if start is not None:
            self.add(
                "worker_started",
                worker_id,
                start,
                {
                    "stage_id": str(stage_id),
                    "assigned_partitions": parts if isinstance(parts, list) else None,
                    **ids,
                },
            )
        if any(k in w for k in ("input_records", "output_records", "processed_count")):
            self.add(
                "worker_metrics",
                worker_id,
                end if end is not None else start,  # type: ignore[arg-type]
                {
                    "stage_id": str(stage_id),
                    "input_records": _counter(w.get("input_records")),
                    "output_records": _counter(w.get("output_records")),
                    "processing_time": _counter(w.get("processing_time")),
                    "processed_count": _counter(w.get("processed_count")),
                },
            )
        if end is not None:
            self.add(
                "worker_stopped",
                worker_id,
                end,
                {
                    "stage_id": str(stage_id),
                    "reason": str(w.get("reason") or w.get("status") or "COMPLETED").lower(),
                    "processed_count": _counter(w.get("processed_count")),
                    **ids,
                },
                rank=2,
            )

    def event(self, kind: str, ts: float | None, payload: dict[str, Any]) -> None:
        if ts is None:
            self.result.skipped[f"{kind}_without_time"] += 1
            return
        self.add("event", JOB_SOURCE, ts, payload)


def to_envelopes(
    items: dict[bytes, bytes], job_id: str, result: ArchiveImport | None = None
) -> list[dict[str, Any]]:
    """The envelopes one archive's keys stand for, oldest first.

    Keys and values the old layout does not explain are counted in
    ``result.skipped`` and never stop the others.

    Examples
    --------
    >>> envs = to_envelopes({b"lineage:s1": b'{"split_id": "s1", "stage_id": "parse",'
    ...                      b' "timestamp": 1764331200.0, "output_records": 9}'}, "etl")
    >>> [(e["message_type"], e["payload"]["split_id"]) for e in envs]
    [('split_processed', 's1')]
    """
    result = result or ArchiveImport("", job_id, "")
    b = _Builder(job_id, result)
    decoded: dict[str, Any] = {}
    for raw_key, raw_value in items.items():
        result.keys += 1
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            result.skipped["undecodable_key"] += 1
            continue
        if key.startswith(INDEX_PREFIXES):
            continue
        try:
            value = json.loads(raw_value)
        except (ValueError, UnicodeDecodeError):
            result.skipped["invalid_json"] += 1
            continue
        if not isinstance(value, dict):
            result.skipped["not_an_object"] += 1
            continue
        decoded[key] = value
    for key, value in decoded.items():
        kind, _, rest = key.partition(":")
        try:
            if key in ("job", "config"):
                continue
            if kind == "metrics" and rest.count(":") >= 1:
                stage_id, _, stamp = rest.rpartition(":")
                ts = _float(value.get("timestamp"))
                ts = _float(float(stamp)) if ts is None else ts
                if ts is None:
                    result.skipped["metrics_without_time"] += 1
                else:
                    b.stage_metrics(stage_id, ts, value)
            elif kind == "exception":
                b.exception(value)
            elif kind == "lineage":
                b.lineage(value, rest)
            elif kind == "split":
                b.split(value, rest)
            elif kind == "stage":
                b.stage(value, rest)
            elif kind == "offset":
                b.offset(value)
            elif kind == "backpressure":
                b.backpressure(value)
            elif kind == "worker":
                b.worker(value, rest)
            elif kind == "worker_event":
                worker_id, _, millis = rest.rpartition(":")
                ts = _float(value.get("timestamp")) or (int(millis) / 1000.0)
                b.event(
                    "worker_event",
                    ts,
                    {
                        "event_type": "worker_" + str(value.get("event_type") or "event").lower(),
                        "worker_id": worker_id,
                        "stage_id": value.get("stage_id"),
                    },
                )
            elif kind == "ray_event":
                ts = _float(value.get("timestamp")) or _float(value.get("ingested_at"))
                b.event(
                    "ray_event",
                    ts,
                    {
                        "event_type": "ray_" + str(value.get("eventType") or "event").lower(),
                        "description": str(value.get("message") or value.get("severity") or ""),
                        "metadata": value,
                    },
                )
            else:
                result.skipped[f"unknown_key:{kind[:40]}"] += 1
        except (TypeError, ValueError):
            result.skipped[f"bad_value:{kind[:40]}"] += 1
    job = decoded.get("job")
    if job is not None:
        b.job(job, decoded.get("config"))
    elif "config" in decoded:
        result.note = "the archive has no job record: no start, end or final status"
    b.out.sort(key=lambda item: (item[1] == 9, item[1] != 0, item[0], item[1]))
    return [env for _, _, env in b.out]


def import_archive(store: Store, db_dir: str | Path, job_id: str, attempt_id: str) -> ArchiveImport:
    """Record one archive as the attempt ``attempt_id`` of ``job_id`` (skipped when the
    store has it already)."""
    result = ArchiveImport(str(db_dir), job_id, attempt_id)
    if not JOB_ID_RE.fullmatch(job_id) or not JOB_ID_RE.fullmatch(attempt_id):
        result.skipped["invalid_job_or_attempt_id"] += 1
        result.note = "the directory names are not valid job / attempt ids"
        return result
    known = store.attempts(job_id)
    if attempt_id in set(known["attempt_id"]):
        result.already_present = True
        result.status = str(known.loc[known["attempt_id"] == attempt_id, "status"].iloc[-1])
        return result
    envelopes = to_envelopes(read_archive(db_dir), job_id, result)
    result.envelopes = len(envelopes)
    rec = store.record(job_id, attempt_id=attempt_id)
    counts = rec.ingest(envelopes)
    result.rejected = counts["rejected"]
    if rec.status == "RUNNING":
        rec.close()  # no final status in the archive: the attempt reads as LOST
        result.note = result.note or "the archive has no final status: the attempt reads as LOST"
    else:
        rec.finish(rec.status)
    result.status = rec.status
    return result
