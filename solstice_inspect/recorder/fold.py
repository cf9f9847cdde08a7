"""Fold checked envelopes into bounded state and table rows. Pure: no I/O, no clock.

The :class:`Fold` keeps the rules of DESIGN §3:

- dedupe on ``(source_id, sequence)`` with bounded memory per producer;
- a worker's cumulative counters are replaced only by a newer report
  (by ``(timestamp, sequence)``), so a late, older report never makes totals regress;
- stage totals are the sum over every worker ever seen, alive or stopped — or, when
  larger, the sum over the distinct splits a stage master reported committed on behalf
  of its workers (a worker that crashed mid-split never sent the counters of the splits
  it finished since its last rate-limited report; the stage master's reports cover
  them), a redelivered split counted once;
  ``workers_alive`` counts workers started and not stopped;
- job records in / out come from source / sink stages only;
- rates are deltas of cumulative counters over message time, never negative;
- every row carries its message's own timestamp.

Rows are tuples in schema column order (after ``job_id, attempt_id``), timestamps as
float seconds; :mod:`solstice_inspect.recorder.rows` turns them into Arrow.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, deque
from typing import Any

from solstice_inspect.errors import InvalidMessage
from solstice_inspect.protocol import (
    MAX_COUNTER,
    MAX_JSON_CHARS,
    MAX_MESSAGE_CHARS,
    MESSAGE_TYPES,
    Envelope,
    cap,
)
from solstice_inspect.recorder.stragglers import DurationStats
from solstice_inspect.semantics import fingerprint, job_records, sources_and_sinks

#: log lines kept per worker; beyond it lines are counted in ``stats["logs_capped"]``
MAX_LOG_LINES_PER_WORKER = 10_000
#: data peek: rows kept per split, characters of their JSON, splits kept per stage
MAX_SAMPLE_ROWS = 5
MAX_SAMPLE_CHARS = 16_384
MAX_SAMPLES_PER_STAGE = 1_000
#: a profile keeps its most sampled stacks (the rest merged into one row) of capped length
MAX_PROFILE_STACKS = 5_000
MAX_STACK_CHARS = 16_384
OTHER_STACKS = "[other stacks]"
#: out-of-order sequences remembered per producer before the window slides
SEQUENCE_WINDOW = 4_096
#: split ids remembered per stage to count a redelivered split once: redelivery follows
#: its failure within seconds, so a window of minutes (8,192 ids: 200 s at 40 splits/s)
#: misses none while keeping the fold's memory flat (~1 MB per stage; 65,536 ids cost
#: ~8 MB per stage and were most of a 60-minute soak's remaining RSS growth)
SPLIT_WINDOW = 8_192
#: Solstice marks a stage backpressured when input lag > 5000 and clears it below 3500
BACKPRESSURE_ON_LAG = 5_000
BACKPRESSURE_OFF_LAG = 3_500

_STOP_EVENTS = (("kill", "KILLED"), ("fail", "FAILED"), ("error", "FAILED"), ("crash", "FAILED"))


def _json(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = json.dumps(value, default=str, sort_keys=True)
    except TypeError:  # keys of mixed types (1 and "a") cannot be sorted
        text = json.dumps(value, default=str)
    return cap(text, MAX_JSON_CHARS)[0]


def _int(value: Any) -> int | None:
    """An integer column's value; one beyond int64 is rejected, never left to fail the
    write of the whole batch."""
    if value is None:
        return None
    number = int(value)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise InvalidMessage("out_of_range", f"an integer of {number.bit_length()} bits")
    return number


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _message_id(env: Envelope, *parts: Any) -> str:
    """A stored id for a message that names none: its producer and sequence, else a hash
    of what it says, so that the same stream recorded twice gets the same ids."""
    if env.sequence is not None:
        return f"{env.source_id}-{env.sequence}"
    text = "\x1f".join(map(str, (env.source_id, repr(env.timestamp), *parts)))
    return hashlib.blake2b(text.encode("utf-8", "backslashreplace"), digest_size=8).hexdigest()


class _Worker:
    __slots__ = (
        "alive",
        "input",
        "key",
        "node_id",
        "output",
        "pid",
        "processed",
        "ptime",
        "seen",
        "stage_id",
    )

    def __init__(self, stage_id: str) -> None:
        self.stage_id = stage_id
        self.alive = True
        self.key: tuple[float, int] | None = None  # (timestamp, sequence) of the newest report
        self.input = self.output = self.processed = 0
        self.ptime = 0.0
        self.node_id: str | None = None
        self.pid: int | None = None
        self.seen = 0.0


class _Stage:
    __slots__ = (
        "bp_active",
        "bp_mark",
        "bp_time",
        "dirty",
        "durations",
        "emit_bp",
        "emit_input",
        "emit_output",
        "emit_ts",
        "input",
        "max_p",
        "min_p",
        "msg_input",
        "msg_output",
        "msg_workers",
        "operator_type",
        "output",
        "partitions",
        "queue_lag",
        "split_input",
        "split_output",
        "splits_seen",
        "splits_window",
        "stage_id",
        "status",
        "window",
        "window_ts",
        "workers",
    )

    def __init__(self, stage_id: str) -> None:
        self.stage_id = stage_id
        self.operator_type: str | None = None
        self.min_p: int | None = None
        self.max_p: int | None = None
        self.status = "PENDING"
        self.workers: set[str] = set()
        self.input = self.output = 0  # sums of the newest per-worker counters
        # sums over the distinct splits reported processed (split_processed): they count
        # what a crashed worker finished but never reported in its rate-limited counters
        self.split_input = self.split_output = 0
        self.splits_seen: set[str] = set()  # recent split ids: a redelivery counts once
        self.splits_window: deque[str] = deque()
        # every worker's finished splits (distinct ones): what a worker's straggler
        # detector compares its running splits with (JobRecorder.report's reply)
        self.durations = DurationStats()
        self.msg_workers: int | None = None  # from stage_metrics, when no lifecycle is seen
        self.msg_input: int | None = None
        self.msg_output: int | None = None
        self.queue_lag: int | None = None
        self.bp_active = False
        self.bp_time = 0.0  # seconds spent backpressured, in message time
        self.bp_mark: float | None = None
        self.partitions: dict[str, int] = {}  # partition -> lag
        self.window: int | None = None
        self.window_ts = 0.0
        self.emit_ts: float | None = None
        self.emit_input = self.emit_output = 0
        self.emit_bp = 0.0
        self.dirty = False


class Fold:
    """Turn envelopes of one job attempt into rows; see the module docstring.

    Parameters
    ----------
    job_id
        The job; envelopes for other jobs are rejected before they reach the fold.
    window_s
        Width, in message time, of one ``stage_metrics`` row per stage.
    """

    def __init__(self, job_id: str, *, window_s: float = 1.0) -> None:
        self.job_id = job_id
        self.window_s = window_s
        self.rows: dict[str, list[tuple]] = {}
        self.stats: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.status = "RUNNING"
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.duration_ms: float | None = None
        self.error: str | None = None
        self.config: dict[str, Any] = {}
        self.final_metrics: dict[str, Any] | None = None
        self.dag_edges: dict[str, list[str]] = {}
        self.stages: dict[str, _Stage] = {}
        self.workers: dict[str, _Worker] = {}
        self.exceptions = 0
        self.last_ts: float | None = None
        self._seqs: dict[str, list] = {}  # source -> [contiguous watermark, set above it]
        self._upstream: dict[str, list[str]] = {}
        self._log_counts: Counter[str] = Counter()
        self._sample_counts: Counter[str] = Counter()
        self._records_dag: tuple = ()
        self._records_top: tuple[Any, Any] = (None, None)
        self._handlers = {t: getattr(self, "_on_" + t) for t in MESSAGE_TYPES}

    # ------------------------------------------------------------------ plumbing
    def _emit(self, table: str, row: tuple) -> None:
        rows = self.rows.get(table)
        if rows is None:
            rows = self.rows[table] = []
        rows.append(row)

    def drain(self) -> dict[str, list[tuple]]:
        """Hand over the rows folded so far and start a new batch."""
        rows, self.rows = self.rows, {}
        return rows

    def is_duplicate(self, source: str, seq: int) -> bool:
        """Remember ``(source, seq)``; True if it was seen before (or is too old to tell)."""
        state = self._seqs.get(source)
        if state is None:
            state = self._seqs[source] = [-1, set()]
        mark, above = state
        if seq <= mark or seq in above:
            return True
        if seq == mark + 1:
            mark += 1
            while mark + 1 in above:
                mark += 1
                above.discard(mark)
            state[0] = mark
        else:
            above.add(seq)
            if len(above) > SEQUENCE_WINDOW:  # a producer with gaps: slide the window
                floor = sorted(above)[len(above) // 2]
                state[0] = floor
                state[1] = {s for s in above if s > floor}
                self.stats["sequence_window_slides"] += 1
        return False

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    # ------------------------------------------------------------------ entry point
    def apply(self, env: Envelope) -> bool:
        """Fold one checked envelope. Returns True when it set the job's final status.

        Raises ``InvalidMessage`` (before changing any state) for payloads that pass the
        envelope check but cannot be folded, such as malformed checkpoint offsets.
        """
        seq = env.sequence
        if seq is not None and self.is_duplicate(env.source_id, seq):
            self.stats["duplicates"] += 1
            return False
        final = self._handlers[env.message_type](env, env.payload, env.timestamp)
        self.stats["accepted"] += 1
        if env.truncated:
            self.stats["truncated"] += 1
        if self.last_ts is None or env.timestamp > self.last_ts:
            self.last_ts = env.timestamp
        # an attempt starts at its first message: Solstice workers start (and report)
        # before job_started arrives
        if self.start_time is None or env.timestamp < self.start_time:
            self.start_time = env.timestamp
        return bool(final)

    # ------------------------------------------------------------------ job
    def set_dag(self, dag_edges: dict[str, list[str]] | None, stages: list[dict] | None) -> None:
        """Declare the DAG (from ``job_started`` or from the recorder's own arguments)."""
        # check everything before changing anything: a bad entry rejects the message whole
        edges = None
        if dag_edges:
            edges = {}
            for up, downs in dag_edges.items():
                if not isinstance(downs, (list, tuple, set, frozenset)) or not all(
                    isinstance(d, (str, int)) for d in downs
                ):
                    raise InvalidMessage("wrong_type", f"dag_edges[{up}] must be a list of ids")
                edges[str(up)] = [str(d) for d in downs]
        specs = []
        for spec in stages or ():
            if not isinstance(spec, dict) or not spec.get("stage_id"):
                raise InvalidMessage("wrong_type", "stages[] entries need a stage_id")
            operator = spec.get("operator_type")
            if operator is not None and not isinstance(operator, str):
                raise InvalidMessage("wrong_type", "stages[].operator_type must be a string")
            mins, maxs = spec.get("min_parallelism"), spec.get("max_parallelism")
            specs.append((str(spec["stage_id"]), operator, _int(mins), _int(maxs)))
        if edges is not None:
            self.dag_edges = edges
        for stage_id, operator, mins, maxs in specs:
            st = self._stage(stage_id)
            st.operator_type = operator or st.operator_type
            st.min_p = st.min_p if mins is None else mins
            st.max_p = st.max_p if maxs is None else maxs
        for up, downs in self.dag_edges.items():
            self._stage(up)
            for down in downs:
                self._stage(down)
        upstream: dict[str, list[str]] = {s: [] for s in self.stages}
        for up, downs in self.dag_edges.items():
            for down in downs:
                upstream[down].append(up)
        self._upstream = upstream

    def _job_row(self, ts: float) -> None:
        specs = [
            {
                "stage_id": s.stage_id,
                "operator_type": s.operator_type,
                "min_parallelism": s.min_p,
                "max_parallelism": s.max_p,
            }
            for s in self.stages.values()
        ]
        self._emit(
            "job",
            (
                ts,
                self.status,
                self.start_time,
                self.end_time,
                self.duration_ms,
                _json(self.config),
                _json(self.dag_edges),
                _json(specs),
                _json(self.final_metrics),
                self.error,
            ),
        )

    def _on_job_started(self, env: Envelope, p: dict, ts: float) -> None:
        self.set_dag(p.get("dag_edges"), p.get("stages"))
        if "config" in p:
            self.config = {**self.config, **p["config"]}
        if self.start_time is None or ts < self.start_time:
            self.start_time = ts
        for st in self.stages.values():
            self._stage_row(st, ts)
        self._job_row(ts)
        self._event(ts, "job_started", None, None, f"job {self.job_id} started", None, None)

    def _on_job_completed(self, env: Envelope, p: dict, ts: float) -> bool:
        status = str(p.get("status") or "COMPLETED").upper()
        if status not in ("COMPLETED", "FAILED", "CANCELLED"):
            status = "COMPLETED" if env.message_type == "job_completed" else "FAILED"
        self.status = status
        self.end_time = ts
        if self.start_time is None:
            self.start_time = ts - (p.get("duration_ms") or 0) / 1000.0
        self.duration_ms = p.get("duration_ms")
        if self.duration_ms is None:
            self.duration_ms = round((ts - self.start_time) * 1000.0, 3)
        self.final_metrics = p.get("final_metrics")
        self.error = p.get("error") or self.error
        self.close_windows()
        self._job_row(ts)
        self._event(
            ts, "job_" + status.lower(), None, None, self.error or status, self.duration_ms, None
        )
        return True

    def _on_job_failed(self, env: Envelope, p: dict, ts: float) -> bool:
        if not p.get("status"):
            p = {**p, "status": "FAILED"}
        return self._on_job_completed(env, p, ts)

    def finish(self, status: str, ts: float, error: str | None = None) -> None:
        """Close the attempt from the recorder's side (no final message was received)."""
        if self.status != "RUNNING":
            return
        if error is not None:  # the producer's own exception text: capped, storable
            if not error.isascii():
                error = error.encode("utf-8", "backslashreplace").decode("utf-8")
            error = cap(error, MAX_MESSAGE_CHARS)[0]
        self._on_job_completed(
            Envelope("job_completed", self.job_id, self.job_id, ts, None, {}, False),
            {"status": status, "error": error},
            ts,
        )

    # ------------------------------------------------------------------ stages
    def _stage(self, stage_id: str) -> _Stage:
        st = self.stages.get(stage_id)
        if st is None:
            st = self.stages[stage_id] = _Stage(stage_id)
        return st

    def _stage_row(self, st: _Stage, ts: float) -> None:
        self._emit(
            "stages",
            (
                ts,
                st.stage_id,
                st.operator_type,
                st.min_p,
                st.max_p,
                list(self._upstream.get(st.stage_id, ())),
                st.status,
            ),
        )

    def _on_stage_started(self, env: Envelope, p: dict, ts: float) -> None:
        st = self._stage(env.source_id)
        st.operator_type = p.get("operator_type") or st.operator_type
        st.min_p = _int(p.get("min_parallelism", st.min_p))
        st.max_p = _int(p.get("max_parallelism", st.max_p))
        self._touch(st, ts)
        st.status = "RUNNING" if env.message_type == "stage_started" else "COMPLETED"
        self._stage_row(st, ts)

    _on_stage_completed = _on_stage_started

    def _on_stage_metrics(self, env: Envelope, p: dict, ts: float) -> None:
        parts = p.get("partition_metrics") or {}
        rows = []
        for pid, m in parts.items():
            if not isinstance(m, dict):
                raise InvalidMessage("wrong_type", f"partition_metrics[{pid}] must be an object")
            try:
                latest, committed = _int(m.get("latest_offset")), _int(m.get("committed_offset"))
                lag = _int(m.get("lag"))
            except (TypeError, ValueError):
                raise InvalidMessage("wrong_type", f"partition_metrics[{pid}] offsets") from None
            if lag is None and latest is not None and committed is not None:
                lag = max(latest - committed, 0)
            worker_id = m.get("worker_id")
            if worker_id is not None and not isinstance(worker_id, str):
                raise InvalidMessage("wrong_type", f"partition_metrics[{pid}].worker_id")
            rows.append((ts, env.source_id, str(pid), latest, committed, lag, worker_id))
        st = self._stage(env.source_id)
        self._touch(st, ts)
        for row in rows:
            self._emit("partition_metrics", row)
            if row[5] is not None:
                st.partitions[row[2]] = row[5]
        if "worker_count" in p:
            st.msg_workers = int(p["worker_count"])
        # a stage's own report is cumulative too: a late, smaller one never lowers it
        if "input_records" in p:
            st.msg_input = max(int(p["input_records"]), st.msg_input or 0)
        if "output_records" in p:
            st.msg_output = max(int(p["output_records"]), st.msg_output or 0)
        if "queue_lag" in p:
            st.queue_lag = int(p["queue_lag"])
        elif st.partitions:
            st.queue_lag = sum(st.partitions.values())
        if "backpressure_active" in p:
            self._set_backpressure(st, p["backpressure_active"], ts, None)
        elif st.queue_lag is not None:  # no flag sent: apply Solstice's own hysteresis
            limit = BACKPRESSURE_OFF_LAG if st.bp_active else BACKPRESSURE_ON_LAG
            self._set_backpressure(st, st.queue_lag > limit, ts, None)

    def _on_backpressure(self, env: Envelope, p: dict, ts: float) -> None:
        st = self._stage(env.source_id)
        self._touch(st, ts)
        if "queue_lag" in p:
            st.queue_lag = int(p["queue_lag"])
        self._set_backpressure(st, p["active"], ts, p.get("slow_down_factor"))

    def _set_backpressure(self, st: _Stage, active: bool, ts: float, factor: Any) -> None:
        if active == st.bp_active:
            return
        st.bp_active = active
        kind = "backpressure_started" if active else "backpressure_cleared"
        meta = {"queue_lag": st.queue_lag, "slow_down_factor": factor}
        self._event(
            ts, kind, st.stage_id, None, f"{st.stage_id}: {kind.replace('_', ' ')}", None, meta
        )

    # ------------------------------------------------------------------ workers
    def _worker(self, worker_id: str, stage_id: str | None, ts: float) -> _Worker:
        w = self.workers.get(worker_id)
        if w is None:
            w = self.workers[worker_id] = _Worker(stage_id or "")
            if stage_id:
                self._stage(stage_id).workers.add(worker_id)
        elif stage_id and not w.stage_id:
            w.stage_id = stage_id
            self._stage(stage_id).workers.add(worker_id)
        if ts > w.seen:
            w.seen = ts
        return w

    def _on_worker_started(self, env: Envelope, p: dict, ts: float) -> None:
        parts = [str(x) for x in p.get("assigned_partitions") or ()]
        self._touch(self._stage(p["stage_id"]), ts)
        w = self._worker(env.source_id, p["stage_id"], ts)
        w.alive = True
        w.node_id = p.get("node_id") or w.node_id
        w.pid = _int(p.get("pid", w.pid))
        self._emit(
            "workers",
            (ts, env.source_id, w.stage_id, "STARTED", None, w.node_id, w.pid, parts, None, None),
        )

    def _on_worker_stopped(self, env: Envelope, p: dict, ts: float) -> None:
        self._touch(self._stage(p["stage_id"]), ts)
        w = self._worker(env.source_id, p["stage_id"], ts)
        w.alive = False
        reason = p.get("reason")
        event = "STOPPED"
        low = (reason or "").lower()
        for word, name in _STOP_EVENTS:
            if word in low:
                event = name
                break
        self._emit(
            "workers",
            (
                ts,
                env.source_id,
                w.stage_id,
                event,
                reason,
                p.get("node_id") or w.node_id,
                _int(p.get("pid", w.pid)),
                None,
                _int(p.get("processed_count")),
                _int(p.get("error_count")),
            ),
        )
        if event != "STOPPED":
            self._event(
                ts,
                "worker_" + event.lower(),
                w.stage_id,
                env.source_id,
                f"{env.source_id} {event.lower()}: {reason or ''}".strip(),
                None,
                None,
            )

    def _on_worker_metrics(self, env: Envelope, p: dict, ts: float) -> None:
        stage_id = p["stage_id"]
        self._worker(env.source_id, stage_id, ts)  # known before its counters are read
        get = p.get
        self.worker_report(
            env.source_id,
            env.sequence,
            ts,
            stage_id,
            int(get("input_records", 0)),
            int(get("output_records", 0)),
            int(get("processed_count", 0)),
            float(get("processing_time", 0.0)),
        )

    def worker_report(
        self,
        source: str,
        seq: int | None,
        ts: float,
        stage_id: str,
        inp: int,
        out: int,
        processed: int,
        ptime: float,
    ) -> None:
        """Fold one worker_metrics report whose counters are already numbers (the general
        handler above and the ingest fast path, ``recorder/fastpath.py``, both end here)."""
        w = self.workers.get(source)
        if w is None or w.stage_id != stage_id:
            w = self._worker(source, stage_id, ts)
        elif ts > w.seen:  # all that _worker would do for a known worker of this stage
            w.seen = ts
        key = (ts, seq if seq is not None else -1)
        in_rate = out_rate = None
        last = w.key
        if last is None or key > last:
            st = self.stages[w.stage_id]
            self._touch(st, ts)  # close the previous window before the counters move
            # never let a stage total fall: a restarted counter keeps the larger value
            had_in, had_out = w.input, w.output
            d_in = inp - had_in if inp > had_in else 0
            d_out = out - had_out if out > had_out else 0
            if last is not None:
                dt = ts - last[0]
                if dt > 0:
                    in_rate = d_in / dt
                    out_rate = d_out / dt
            if d_in:
                st.input += d_in
                w.input = had_in + d_in
            if d_out:
                st.output += d_out
                w.output = had_out + d_out
            if processed > w.processed:
                w.processed = processed
            if ptime > w.ptime:
                w.ptime = ptime
            w.key = key
        else:
            self.stats["late_reports"] += 1
        rows = self.rows.get("worker_metrics")
        if rows is None:
            rows = self.rows["worker_metrics"] = []
        rows.append((ts, source, w.stage_id, inp, out, processed, ptime, in_rate, out_rate))

    def _on_worker_resources(self, env: Envelope, p: dict, ts: float) -> None:
        w = self._worker(env.source_id, p.get("stage_id"), ts)
        w.node_id = p.get("node_id") or w.node_id
        w.pid = _int(p.get("pid", w.pid))
        self._emit(
            "worker_resources",
            (
                ts,
                env.source_id,
                w.stage_id or None,
                p.get("cpu_percent"),
                p.get("memory_mb"),
                p.get("gpu_utilization"),
                p.get("gpu_memory_mb"),
                w.node_id,
                w.pid,
            ),
        )

    # ------------------------------------------------------------------ records
    def _owner(self, env: Envelope, p: dict) -> tuple[str | None, str | None]:
        """(stage_id, worker_id) of a message that may come from a worker or a stage."""
        worker_id = p.get("worker_id")
        stage_id = p.get("stage_id")
        src = env.source_id
        if worker_id is None and (src in self.workers or "_w" in src) and src not in self.stages:
            worker_id = src
        if stage_id is None:
            if worker_id in self.workers:
                stage_id = self.workers[worker_id].stage_id or None
            elif src in self.stages:
                stage_id = src
        return stage_id, worker_id

    def _on_exception(self, env: Envelope, p: dict, ts: float) -> None:
        stage_id, worker_id = self._owner(env, p)
        etype, msg, trace = p["exception_type"], p.get("message", ""), p.get("stacktrace", "")
        eid = _message_id(env, etype, msg, p.get("split_id"))
        self.exceptions += 1
        self._emit(
            "exceptions",
            (
                ts,
                eid,
                fingerprint(etype, msg, trace),
                etype,
                msg,
                trace,
                stage_id,
                worker_id,
                p.get("split_id"),
                env.truncated,
            ),
        )

    def _on_split_processed(self, env: Envelope, p: dict, ts: float) -> None:
        parents = [str(x) for x in p.get("parent_split_ids") or ()]
        split_id = p["split_id"]
        st = self._stage(p["stage_id"])
        # A stage master may report a split it committed on behalf of its worker. Only
        # such reports count toward the stage's totals: a worker's own reports travel
        # with its counters (same process, same buffer), so they cannot cover what a crash
        # loses, and producers may send them for a sample of splits only.
        worker_id = p.get("worker_id") or env.source_id
        committed = worker_id != env.source_id
        n_in, n_out = _int(p.get("input_records")), _int(p.get("output_records"))
        status = "COMMITTED" if committed else "PROCESSED"
        if split_id in st.splits_seen:
            status = "DUPLICATE"  # processed again (redelivered): stored, counted once
            self.stats["duplicate_splits"] += 1
        else:
            st.splits_seen.add(split_id)
            st.splits_window.append(split_id)
            if len(st.splits_window) > SPLIT_WINDOW:
                st.splits_seen.discard(st.splits_window.popleft())
            if committed:
                self._touch(st, ts)
                st.split_input += n_in or 0
                st.split_output += n_out or 0
            seconds = p.get("processing_time")
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
                st.durations.add(float(seconds))
        self._emit(
            "lineage",
            (
                ts,
                split_id,
                parents,
                st.stage_id,
                worker_id,
                n_in,
                n_out,
                p.get("processing_time"),
                status,
            ),
        )

    def _on_checkpoint(self, env: Envelope, p: dict, ts: float) -> None:
        offsets = []
        for item in p.get("offsets") or ():
            if not isinstance(item, dict) or "partition_id" not in item:
                raise InvalidMessage("wrong_type", "offsets[] entries need a partition_id")
            try:
                offsets.append(
                    {
                        "partition_id": str(item["partition_id"]),
                        "topic": None if item.get("topic") is None else str(item["topic"]),
                        "consumer_group": (
                            None
                            if item.get("consumer_group") is None
                            else str(item["consumer_group"])
                        ),
                        "committed_offset": _int(item.get("committed_offset")),
                        "latest_offset": _int(item.get("latest_offset")),
                    }
                )
            except (TypeError, ValueError):
                raise InvalidMessage("wrong_type", "offsets[] offsets must be integers") from None
        trigger, done = p.get("trigger_time"), p.get("completion_time")
        status = str(p.get("status") or ("COMPLETED" if done is not None else "IN_PROGRESS"))
        duration = None
        if trigger is not None and done is not None:
            duration = round(max(done - trigger, 0.0) * 1000.0, 3)
        stage_id = p.get("stage_id") or env.source_id
        self._emit(
            "checkpoints",
            (
                ts,
                p.get("checkpoint_id"),
                stage_id,
                status.upper(),
                trigger,
                done,
                duration,
                _int(p.get("state_size_bytes")),
                offsets,
            ),
        )

    # ------------------------------------------------------------------ free-form
    def _event(
        self,
        ts: float,
        kind: str,
        stage_id: str | None,
        worker_id: str | None,
        description: str | None,
        duration_ms: float | None,
        meta: Any,
    ) -> None:
        self._emit("events", (ts, kind, stage_id, worker_id, description, duration_ms, _json(meta)))

    def record_event(
        self, ts: float, kind: str, description: str, duration_ms: float | None, meta: Any
    ) -> None:
        """A job-level timeline event of the recorder's own (e.g. ``recorder_restarted``)."""
        self._event(ts, kind, None, None, description, duration_ms, meta)

    def _on_event(self, env: Envelope, p: dict, ts: float) -> None:
        self._event(
            ts,
            p["event_type"],
            p.get("stage_id"),
            p.get("worker_id"),
            p.get("description"),
            p.get("duration_ms"),
            p.get("metadata"),
        )

    def _on_log(self, env: Envelope, p: dict, ts: float) -> None:
        stage_id, worker_id = self._owner(env, p)
        key = worker_id or env.source_id
        if self._log_counts[key] >= MAX_LOG_LINES_PER_WORKER:
            self.stats["logs_capped"] += 1
            return
        self._log_counts[key] += 1
        level = str(p.get("level") or "INFO").upper()
        self._emit("logs", (ts, worker_id, stage_id, level, p["message"], env.truncated))

    def _on_incident(self, env: Envelope, p: dict, ts: float) -> None:
        stage_id, worker_id = self._owner(env, p)
        iid = p.get("incident_id") or _message_id(env, p["kind"], p.get("split_id"))
        self._emit(
            "incidents",
            (
                ts,
                iid,
                p["kind"],
                stage_id,
                worker_id,
                p.get("split_id"),
                p.get("started_at"),
                p.get("elapsed_s"),
                p.get("threshold_s"),
                p.get("mean_s"),
                p.get("std_s"),
                _int(p.get("finished_splits")),
                p.get("description"),
                p.get("stack"),
                p.get("log_tail"),
                env.truncated,
            ),
        )

    def _on_profile(self, env: Envelope, p: dict, ts: float) -> None:
        counts: Counter[str] = Counter()
        for item in p["stacks"]:
            if isinstance(item, dict):
                stack, n = item.get("stack"), item.get("count")
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                stack, n = item
            else:
                raise InvalidMessage("wrong_type", "profile stacks[] are [stack, count] pairs")
            if not isinstance(stack, str) or type(n) is not int or n < 0:
                raise InvalidMessage(
                    "wrong_type", "profile stacks[]: a folded stack string and a count >= 0"
                )
            if n > MAX_COUNTER:
                raise InvalidMessage("out_of_range", f"profile stacks[]: a count of {n}")
            key = cap(stack, MAX_STACK_CHARS)[0]
            counts[key] = min(counts[key] + n, MAX_COUNTER)  # sums stay inside int64
        kept = counts.most_common(MAX_PROFILE_STACKS)
        rest = min(sum(counts.values()) - sum(n for _, n in kept), MAX_COUNTER)
        if rest:
            kept.append((OTHER_STACKS, rest))
        stage_id, worker_id = self._owner(env, p)
        pid = p.get("profile_id") or _message_id(env, p["worker_id"])
        head = (ts, pid, worker_id, stage_id, p.get("duration_s"), p.get("rate_hz"))
        for stack, n in kept:
            self._emit("profiles", (*head, stack, n))

    def _on_sample(self, env: Envelope, p: dict, ts: float) -> None:
        stage_id, worker_id = self._owner(env, p)
        key = stage_id or env.source_id
        if self._sample_counts[key] >= MAX_SAMPLES_PER_STAGE:
            self.stats["samples_capped"] += 1
            return
        self._sample_counts[key] += 1
        rows = list(p["rows"])
        cut = len(rows) > MAX_SAMPLE_ROWS
        rows = rows[:MAX_SAMPLE_ROWS]
        text = json.dumps(rows, default=str, ensure_ascii=False)
        text, capped = cap(text, MAX_SAMPLE_CHARS)
        self._emit(
            "samples",
            (ts, p["split_id"], stage_id, worker_id, text, len(rows), cut or capped),
        )

    def _on_custom_metric(self, env: Envelope, p: dict, ts: float) -> None:
        self._emit(
            "custom_metrics",
            (ts, env.source_id, p["name"], float(p["value"]), _json(p.get("labels"))),
        )

    # ------------------------------------------------------------------ stage windows
    def _touch(self, st: _Stage, ts: float) -> None:
        """Account message time for a stage; emit its previous window when a new one opens."""
        mark = st.bp_mark
        if mark is None:
            st.bp_mark = ts
        elif ts > mark:
            if st.bp_active:
                st.bp_time += ts - mark
            st.bp_mark = ts
        window = int(ts // self.window_s)
        current = st.window
        if current is None:
            st.window = window
        elif window > current:
            if st.dirty:
                self._stage_snapshot(st)
            st.window = window
        if ts > st.window_ts:
            st.window_ts = ts
        st.dirty = True

    def split_stats(self) -> dict[str, tuple[int, float, float]]:
        """Per stage ``(n, mean, std)`` of the processing times of its distinct
        processed splits (std over the population; stages with none left out)."""
        return {
            stage_id: st.durations.figures()
            for stage_id, st in self.stages.items()
            if st.durations.n
        }

    def alive_workers(self, st: _Stage) -> int:
        if st.workers:
            return sum(1 for w in st.workers if self.workers[w].alive)
        return st.msg_workers or 0

    def stage_totals(self, st: _Stage) -> tuple[int, int]:
        """(input, output) of a stage: the largest of the sum over its workers' counters,
        the sum over its distinct processed splits and the stage's own report (workers
        not seen yet) — each can only lag the truth, and a total never falls."""
        inp = max(st.split_input, st.msg_input or 0)
        out = max(st.split_output, st.msg_output or 0)
        if st.workers:
            return max(st.input, inp), max(st.output, out)
        return inp, out

    def _skew(self, st: _Stage) -> float | None:
        values = list(st.partitions.values())
        if not values:
            values = [self.workers[w].processed for w in st.workers if self.workers[w].alive]
        if len(values) < 2:
            return None
        mean = sum(values) / len(values)
        return max(values) / mean if mean > 0 else None

    def _stage_snapshot(self, st: _Stage) -> None:
        ts = st.window_ts
        inp, out = self.stage_totals(st)
        in_rate = out_rate = bp_ratio = None
        if st.emit_ts is not None:
            dt = ts - st.emit_ts
            if dt > 1e-3:
                in_rate = max(inp - st.emit_input, 0) / dt
                out_rate = max(out - st.emit_output, 0) / dt
                bp_ratio = min(max((st.bp_time - st.emit_bp) / dt, 0.0), 1.0)
        if st.emit_ts is None or ts >= st.emit_ts:
            st.emit_ts, st.emit_input, st.emit_output, st.emit_bp = ts, inp, out, st.bp_time
        queue_lag = st.queue_lag
        if queue_lag is None and st.partitions:
            queue_lag = sum(st.partitions.values())
        self._emit(
            "stage_metrics",
            (
                ts,
                st.stage_id,
                self.alive_workers(st),
                inp,
                out,
                in_rate,
                out_rate,
                queue_lag,
                st.bp_active,
                bp_ratio,
                self._skew(st),
            ),
        )
        st.dirty = False

    def close_windows(self) -> None:
        """Emit the pending window of every stage that changed (each flush and at the end)."""
        for st in self.stages.values():
            if st.dirty:
                self._stage_snapshot(st)

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        """Counts for the catalog row: stages, workers alive, records in / out, exceptions.

        Records in / out follow :func:`solstice_inspect.semantics.job_records` (sources'
        output; what sinks wrote), the same rule every view's model uses.
        """
        sources, sinks = sources_and_sinks(self.stages, self.dag_edges)
        totals = {sid: self.stage_totals(st) for sid, st in self.stages.items()}
        records_in, records_out = job_records(totals, sources, sinks)
        # a job's records never fall while its DAG stands, even when a sink that reported
        # no output (so: "wrote its input") starts reporting a smaller output
        dag = (tuple(sources or ()), tuple(sinks or ()))
        if dag != self._records_dag:
            self._records_dag, self._records_top = dag, (None, None)
        top_in, top_out = self._records_top
        if records_in is not None and top_in is not None:
            records_in = max(records_in, top_in)
        if records_out is not None and top_out is not None:
            records_out = max(records_out, top_out)
        self._records_top = (records_in, records_out)
        return {
            "stages": len(self.stages),
            "workers": sum(1 for w in self.workers.values() if w.alive and w.stage_id),
            "records_in": records_in,
            "records_out": records_out,
            "exceptions": self.exceptions,
        }
