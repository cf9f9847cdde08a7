"""The recorder as a Ray actor: :class:`JobRecorder`.

One named actor per running attempt (``recorder:<job_id>`` in namespace
``solstice_inspect``) hosts :meth:`Store.record` — the only writer of that attempt. Any
process in the cluster reaches it by name; workers report through small picklable
:class:`~solstice_inspect.recorder.client.Telemetry` objects that never wait on it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import ray

from solstice_inspect.errors import InspectError
from solstice_inspect.protocol import envelope, valid_job_id
from solstice_inspect.recorder.client import Telemetry
from solstice_inspect.recorder.session import FinishOnExit, Recording
from solstice_inspect.store import Store, connect
from solstice_inspect.store.layout import new_attempt_id
from solstice_inspect.store.reader import Job

NAMESPACE = "solstice_inspect"
ACTOR_CLASS = "RecorderActor"


def actor_name(job_id: str) -> str:
    """The Ray actor name of a job's recorder: ``recorder:<job_id>``."""
    return f"recorder:{job_id}"


class RecorderActor:
    """The Ray actor body: a :class:`Recording` plus what discovery needs."""

    def __init__(self, root: str, job_id: str, options: dict[str, Any]) -> None:
        self.root = root
        self.job_id = job_id
        self.started = time.time()
        store = Store(root)
        attempt_id = options.get("attempt_id")
        known = set(store.attempts(job_id)["attempt_id"]) if attempt_id else set()
        if attempt_id in known:
            # Ray restarted this actor after its process died: go on with the same attempt
            self.rec = Recording(store, job_id, **options, resume=True)
            return
        self.rec = Recording(store, job_id, **options)
        payload = {
            "dag_edges": options.get("dag_edges") or {},
            "stages": options.get("stages") or [],
            "config": options.get("config") or {},
        }
        self.rec.ingest(envelope("job_started", job_id, job_id, self.started, payload))

    def info(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "attempt_id": self.rec.attempt_id,
            "store": self.root,
            "started": self.started,
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "status": self.rec.status,
        }

    def ingest(self, batch: Any) -> dict[str, int]:
        return self.rec.ingest(batch)

    def report(self, batch: Any) -> dict[str, Any]:
        """What Telemetry clients call: ingest ``batch``; reply with ``flush_in``, the
        seconds until the next flush is due (0.0 when due now, None when unknown), so a
        client may hold its next envelopes until shortly before it (fewer calls, no later
        rows), and ``split_stats``, per stage ``(n, mean, std)`` of every worker's
        finished splits, which a client's straggler detector compares its running splits
        with (statistics for free with each batch: no extra call, no State API)."""
        rec = self.rec
        rec.ingest(batch)
        last = getattr(rec, "_last_flush", None)
        flush_in = None
        if type(last) is float:
            flush_in = max(0.0, last + rec.flush_interval - time.monotonic())
        try:
            stats = rec._fold.split_stats()
        except RuntimeError:  # a stage added while reading (flush thread): next time
            stats = {}
        return {"flush_in": flush_in, "split_stats": stats}

    def flush(self) -> int:
        return self.rec.flush()

    def stats(self) -> dict[str, Any]:
        return self.rec.stats

    def finish(self, status: str, error: str | None = None) -> dict[str, Any]:
        self.rec.finish(status, error=error)
        return self.rec.stats


#: Ray restarts a recorder whose process died (the new one resumes the attempt from the
#: store), and re-sends the calls that were in flight: reports are not lost with it
MAX_RESTARTS = 5
_RemoteRecorder = ray.remote(num_cpus=0, max_restarts=MAX_RESTARTS, max_task_retries=-1)(
    RecorderActor
)


def _stage_specs(stages: Iterable[Any] | None) -> list[dict[str, Any]]:
    out = []
    for spec in stages or ():
        out.append(dict(spec) if isinstance(spec, dict) else {"stage_id": str(spec)})
    return out


class JobRecorder(FinishOnExit):
    """A handle on a job's recorder actor; picklable, usable from any process.

    Start one with :meth:`JobRecorder.start` (or find a running one with
    :meth:`JobRecorder.lookup`). Use it as a context manager: leaving the block finishes
    the attempt as COMPLETED, or FAILED with the error if the body raised.

    Examples
    --------
    >>> rec = si.JobRecorder.start("etl_001", dag={"read": ["parse"]})   # doctest: +SKIP
    >>> tel = rec.telemetry(stage_id="parse", worker_id="parse_w0_1a2b3c")  # doctest: +SKIP
    >>> tel.metrics(input_records=10, output_records=9)                   # doctest: +SKIP
    >>> rec.finish("COMPLETED")                                           # doctest: +SKIP
    """

    def __init__(self, actor: Any, job_id: str, attempt_id: str, store: str) -> None:
        self.actor = actor
        self.job_id = job_id
        self.attempt_id = attempt_id
        self.store = store
        self._control: Telemetry | None = None
        self.finished = False

    def __repr__(self) -> str:
        return f"JobRecorder({self.job_id!r}, attempt={self.attempt_id!r}, store={self.store!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_control": None}

    # -------------------------------------------------------------- creating
    @classmethod
    def start(
        cls,
        job_id: str,
        *,
        dag: dict[str, list[str]] | None = None,
        stages: Iterable[Any] | None = None,
        config: dict[str, Any] | None = None,
        store: Store | str | None = None,
        flush_interval: float = 1.0,
        heartbeat_interval: float = 5.0,
        detached: bool = False,
    ) -> JobRecorder:
        """Start a new attempt of ``job_id`` recorded by a named Ray actor.

        Parameters
        ----------
        job_id
            The job; a second start of the same id makes a new attempt.
        dag
            ``{upstream: [downstream, ...]}``, sinks not being keys (Solstice's dag_edges).
        stages
            Stage ids, or dicts ``{stage_id, operator_type, min_parallelism,
            max_parallelism}``.
        config
            The job's configuration (stored as JSON).
        store
            Where to write (default store when None). On a cluster, a path every node
            sees or an object-store URI.
        flush_interval, heartbeat_interval
            Seconds between writes, and between catalog heartbeats (an attempt reads as
            LOST after three missed heartbeats).
        detached
            Keep the recorder alive when the starting driver exits.

        Raises
        ------
        InspectError
            When a recorder of ``job_id`` is already running in this cluster.
        """
        valid_job_id(job_id)
        root = (store if isinstance(store, Store) else connect(store)).root
        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True)
        name = actor_name(job_id)
        try:
            existing = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            existing = None
        if existing is not None:
            try:
                info: dict[str, Any] = ray.get(existing.info.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - a dead leftover: its name is about to be free
                ray.kill(existing)
            else:
                raise InspectError(
                    f"a recorder for job {job_id!r} is already running (attempt "
                    f"{info['attempt_id']}); finish it with JobRecorder.lookup({job_id!r})"
                    ".finish(), or use another job_id"
                )
        options = {
            # chosen here, not by the actor: a restarted actor must find the same attempt
            "attempt_id": new_attempt_id(),
            "dag_edges": dag or {},
            "stages": _stage_specs(stages),
            "config": config or {},
            "flush_interval": flush_interval,
            "heartbeat_interval": heartbeat_interval,
        }
        actor = _RemoteRecorder.options(
            name=name,
            namespace=NAMESPACE,
            lifetime="detached" if detached else None,
        ).remote(root, job_id, options)
        info: dict[str, Any] = ray.get(actor.info.remote())
        return cls(actor, job_id, info["attempt_id"], root)

    @classmethod
    def lookup(cls, job_id: str) -> JobRecorder:
        """The running recorder of ``job_id`` in the connected Ray cluster."""
        try:
            actor = ray.get_actor(actor_name(job_id), namespace=NAMESPACE)
        except ValueError:
            raise InspectError(f"no running recorder for job {job_id!r}") from None
        info: dict[str, Any] = ray.get(actor.info.remote())
        return cls(actor, job_id, info["attempt_id"], info["store"])

    # -------------------------------------------------------------- reporting
    def telemetry(
        self, *, stage_id: str | None = None, worker_id: str | None = None, **options: Any
    ) -> Telemetry:
        """A :class:`Telemetry` for one producer (a worker, or a stage master without
        ``worker_id``); ``options``: ``max_buffer``, ``min_interval``."""
        return Telemetry(self.job_id, self.actor, stage_id=stage_id, worker_id=worker_id, **options)

    def _control_tel(self) -> Telemetry:
        if self._control is None:
            self._control = self.telemetry()
        return self._control

    def checkpoint(
        self,
        checkpoint_id: str,
        *,
        stage_id: str | None = None,
        status: str = "COMPLETED",
        trigger_time: float | None = None,
        completion_time: float | None = None,
        state_size_bytes: int | None = None,
        offsets: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Record a checkpoint (fire-and-forget); ``offsets`` are dicts of
        ``partition_id, topic, consumer_group, committed_offset, latest_offset``."""
        tel = self.telemetry(stage_id=stage_id) if stage_id else self._control_tel()
        tel.send(
            "checkpoint",
            {
                "checkpoint_id": checkpoint_id,
                "stage_id": stage_id,
                "status": status,
                "trigger_time": trigger_time,
                "completion_time": completion_time,
                "state_size_bytes": state_size_bytes,
                "offsets": list(offsets),
            },
        )

    def event(
        self,
        event_type: str,
        *,
        stage_id: str | None = None,
        worker_id: str | None = None,
        description: str | None = None,
        duration_ms: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record a timeline event (fire-and-forget)."""
        self._control_tel().send(
            "event",
            {
                "event_type": event_type,
                "stage_id": stage_id,
                "worker_id": worker_id,
                "description": description,
                "duration_ms": duration_ms,
                "metadata": metadata,
            },
        )

    def ingest(self, envelopes: Any) -> Any:
        """Hand Solstice's own envelopes to the recorder; returns the ``ObjectRef`` of
        the counts (``ray.get`` it to wait, or ignore it)."""
        if not isinstance(envelopes, (dict, str, bytes, list)):
            envelopes = list(envelopes)
        return self.actor.ingest.remote(envelopes)

    # -------------------------------------------------------------- ending
    def finish(
        self, status: str = "COMPLETED", *, error: str | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """End the attempt (durably), stop the actor, and return the recorder's stats.

        This process's buffered telemetry is handed over first.
        """
        if self.finished:
            return {}
        if self._control is not None:
            self._control.flush(timeout=min(timeout, 5.0))
        else:
            self.telemetry().flush(timeout=min(timeout, 5.0))
        stats: dict[str, Any] = ray.get(self.actor.finish.remote(status, error), timeout=timeout)
        self.finished = True
        ray.kill(self.actor)  # frees the name for the next attempt
        return stats

    def stats(self) -> dict[str, Any]:
        """The recorder's counters (accepted, duplicates, rejected, flushes, …)."""
        return ray.get(self.actor.stats.remote())

    def flush(self) -> int:
        """Make the recorder write now; returns the rows written."""
        return ray.get(self.actor.flush.remote())

    @property
    def job(self) -> Job:
        """This attempt, read from the store."""
        return Store(self.store).job(self.job_id, attempt=self.attempt_id)
