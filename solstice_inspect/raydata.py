"""Ray Data pipelines recorded as jobs: ``si.trace_ray_data(job_id)``.

Each execution of a Dataset (``materialize()``, ``count()``, ``write_*()``, iterating)
becomes one attempt of the job: one stage per physical operator Ray Data runs (fused
operators, such as ``ReadRange->MapBatches(f)``, are one stage, as in Ray's own progress
bars), with rows, blocks, bytes and tasks over time.

The hook is Ray Data's execution callback: a class listed in
``DataContext.custom_execution_callback_classes`` is instantiated for every execution and
called before it starts, at each step of the executor's loop, and when it succeeds or
fails. The figures are each operator's runtime metrics (``op.metrics.as_dict()``: the
same counters Ray Data exports to Prometheus as ``ray_data_*``). The callback's base class
and the executor's topology live in ``ray.data._internal``: they are read here only, so a
Ray release that moves them breaks this module with a clear error and nothing else.

What it cannot show: Ray Data has no workers in Solstice's sense (tasks come and go;
actor pools are counted, not named), so the Workers tab stays empty; queue lag in records
(Ray Data queues blocks: ``blocks_queued`` is recorded instead); lineage of blocks; and
datasets created *before* the ``with`` block (the context is copied when a dataset is
created: pass them to :meth:`RayDataTracer.watch`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
import weakref
from typing import TYPE_CHECKING, Any

from solstice_inspect.api import Store, connect
from solstice_inspect.protocol import envelope, valid_job_id

if TYPE_CHECKING:
    from solstice_inspect.recorder.session import Recording

__all__ = ["RayDataTracer", "trace_ray_data"]

log = logging.getLogger("solstice_inspect.raydata")

#: operator metrics recorded as custom metrics per stage (name in the store ← Ray Data's)
BLOCK_METRICS = {
    "blocks_in": "num_inputs_received",
    "blocks_out": "num_outputs_taken",
    "bytes_in": "bytes_inputs_received",
    "bytes_out": "bytes_outputs_taken",
    "tasks_submitted": "num_tasks_submitted",
    "tasks_running": "num_tasks_running",
    "tasks_finished": "num_tasks_finished",
    "tasks_failed": "num_tasks_failed",
    "blocks_queued": "num_external_inqueue_blocks",
    "actors_alive": "num_alive_actors",
}
#: Ray Data's input buffer: the read tasks' metadata, not a stage of the pipeline
INPUT_BUFFER = "InputDataBuffer"


def _callback_base() -> type:
    try:
        from ray.data._internal.execution.execution_callback import ExecutionCallback
    except ImportError as exc:  # a Ray release that moved it
        raise ImportError(
            "si.trace_ray_data needs Ray Data's execution callbacks (ray>=2.40 with"
            " ray.data._internal.execution.execution_callback): pip install"
            " 'solstice-inspect[ray]'"
        ) from exc
    return ExecutionCallback


class _Execution:
    """One Dataset execution being recorded as one attempt."""

    def __init__(self, tracer: RayDataTracer, executor: Any) -> None:
        self.tracer = tracer
        self.ops: list[tuple[Any, str, bool]] = []  # (operator, stage id, is a source)
        names: dict[int, str] = {}
        used: set[str] = set()
        for op in executor._topology:  # private: see the module docstring
            if type(op).__name__ == INPUT_BUFFER:
                continue
            name = str(op.name)[:200] or type(op).__name__
            stage_id, n = name, 2
            while stage_id in used:
                stage_id, n = f"{name} #{n}", n + 1
            used.add(stage_id)
            names[id(op)] = stage_id
            deps = [d for d in op.input_dependencies if id(d) in names]
            self.ops.append((op, stage_id, not deps))
        edges: dict[str, list[str]] = {sid: [] for _, sid, _ in self.ops}
        for op, sid, _ in self.ops:
            for dep in op.input_dependencies:
                if id(dep) in names:
                    edges[names[id(dep)]].append(sid)
        stages = [{"stage_id": sid, "operator_type": type(op).__name__} for op, sid, _ in self.ops]
        now = time.time()
        self.start = now
        self.last_step = 0.0
        self.rec: Recording = tracer.store.record(tracer.job_id)
        tracer.attempts.append(self.rec.attempt_id)
        self._send(
            [
                self._env(
                    "job_started",
                    tracer.job_id,
                    now,
                    {
                        "dag_edges": edges,
                        "stages": stages,
                        "config": {
                            "engine": "ray.data",
                            "dataset_id": str(getattr(executor, "_dataset_id", "")),
                        },
                    },
                ),
                *(self._env("stage_started", sid, now, {}) for _, sid, _ in self.ops),
            ]
        )

    def _env(self, mtype: str, source: str, ts: float, payload: dict[str, Any]) -> dict:
        return envelope(mtype, self.tracer.job_id, source, ts, payload)

    def _send(self, envelopes: list[dict[str, Any]]) -> None:
        self.rec.ingest(envelopes)

    def step(self, *, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last_step < self.tracer.interval:
            return
        self.last_step = now
        out = []
        for op, sid, source in self.ops:
            m = op.metrics.as_dict()
            rows_out = int(m.get("row_outputs_taken") or 0)
            out.append(
                self._env(
                    "stage_metrics",
                    sid,
                    now,
                    {
                        "worker_count": int(m.get("num_tasks_running") or 0)
                        + int(m.get("num_alive_actors") or 0),
                        # a source's inputs are read tasks, not rows: records enter there
                        "input_records": 0
                        if source
                        else int(m.get("num_row_inputs_received") or 0),
                        "output_records": rows_out,
                    },
                )
            )
            for name, key in BLOCK_METRICS.items():
                value = m.get(key)
                if isinstance(value, (int, float)):
                    out.append(
                        self._env(
                            "custom_metric",
                            sid,
                            now,
                            {"name": name, "value": float(value), "labels": {"stage_id": sid}},
                        )
                    )
        self._send(out)

    def finish(self, error: BaseException | None) -> None:
        try:
            self._final_messages(error)
        finally:  # the attempt ends even when its last messages could not be built
            self.rec.finish("FAILED" if error is not None else "COMPLETED")

    def _final_messages(self, error: BaseException | None) -> None:
        self.step(force=True)
        now = time.time()
        done = [self._env("stage_completed", sid, now, {}) for _, sid, _ in self.ops]
        duration = round((now - self.start) * 1000.0, 3)
        if error is None:
            done.append(
                self._env("job_completed", self.tracer.job_id, now, {"duration_ms": duration})
            )
        else:
            trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            done.append(
                self._env(
                    "exception",
                    self.tracer.job_id,
                    now,
                    {
                        "exception_type": type(error).__name__,
                        "message": str(error),
                        "stacktrace": trace,
                    },
                )
            )
            done.append(
                self._env(
                    "job_failed",
                    self.tracer.job_id,
                    now,
                    {"duration_ms": duration, "error": f"{type(error).__name__}: {error}"},
                )
            )
        self._send(done)


class RayDataTracer:
    """Records every Ray Data execution started while it is active as an attempt of
    ``job_id``. Get one with :func:`trace_ray_data`."""

    def __init__(self, job_id: str, store: Store, interval: float) -> None:
        self.job_id = job_id
        self.store = store
        self.interval = float(interval)
        #: attempt ids recorded, oldest first
        self.attempts: list[str] = []
        self.errors = 0
        self._class: type | None = None
        self._context: Any = None
        self._lock = threading.Lock()
        self._key = f"{next(_KEYS)}"

    def __repr__(self) -> str:
        return f"RayDataTracer({self.job_id!r}, attempts={len(self.attempts)})"

    def _guard(self, what: str, fn: Any, *args: Any) -> Any:
        """Tracing never raises into the pipeline: count, log once, go on."""
        try:
            return fn(*args)
        except Exception:  # never into the user's Ray Data execution
            with self._lock:
                self.errors += 1
                first = self.errors == 1
            if first:
                log.warning(
                    "recording Ray Data job %s: %s failed", self.job_id, what, exc_info=True
                )
            return None

    def callback_class(self) -> type:
        """The execution callback class bound to this tracer (one instance per execution).

        Ray ships the DataContext, with this class, to its tasks: the class holds only
        this tracer's key and module-level functions, so it pickles without the tracer
        (whose store and locks stay in the driver, where executions run).
        """
        if self._class is None:
            _TRACERS[self._key] = self
            self._class = type(
                f"SolsticeInspectCallback_{self._key}",
                (_callback_base(),),
                {
                    "_tracer_key": self._key,
                    "before_execution_starts": _before_execution_starts,
                    "on_execution_step": _on_execution_step,
                    "after_execution_succeeds": _after_execution_succeeds,
                    "after_execution_fails": _after_execution_fails,
                },
            )
        return self._class

    def watch(self, dataset: Any) -> Any:
        """Also record ``dataset``, created before the tracer started; returns it."""
        classes = dataset.context.custom_execution_callback_classes
        if self.callback_class() not in classes:
            classes.append(self.callback_class())
        return dataset

    def __enter__(self) -> RayDataTracer:
        import ray.data

        self._context = ray.data.DataContext.get_current()
        classes = self._context.custom_execution_callback_classes
        if self.callback_class() not in classes:
            classes.append(self.callback_class())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._context is not None:
            classes = self._context.custom_execution_callback_classes
            if self.callback_class() in classes:
                classes.remove(self.callback_class())
            self._context = None

    def jobs(self) -> list[Any]:
        """The recorded attempts as :class:`~solstice_inspect.api.Job` objects."""
        return [self.store.job(self.job_id, attempt=a) for a in self.attempts]


#: tracers by key: what a callback instance (created by Ray Data per execution) reports to
_TRACERS: weakref.WeakValueDictionary[str, RayDataTracer] = weakref.WeakValueDictionary()
_KEYS = itertools.count(1)


def _execution(callback: Any) -> _Execution | None:
    return getattr(callback, "_solstice_execution", None)


def _before_execution_starts(self: Any, executor: Any) -> None:
    tracer = _TRACERS.get(self._tracer_key)
    if tracer is not None:
        self._solstice_execution = tracer._guard("start", _Execution, tracer, executor)


def _on_execution_step(self: Any, executor: Any) -> None:
    execution = _execution(self)
    if execution is not None:
        execution.tracer._guard("step", execution.step)


def _after_execution_succeeds(self: Any, executor: Any) -> None:
    execution = _execution(self)
    if execution is not None:
        execution.tracer._guard("finish", execution.finish, None)


def _after_execution_fails(self: Any, executor: Any, error: Exception) -> None:
    execution = _execution(self)
    if execution is not None:
        execution.tracer._guard("finish", execution.finish, error)


def trace_ray_data(job_id: str, *, store: Any = None, interval: float = 0.5) -> RayDataTracer:
    """Record Ray Data pipelines as Solstice-style jobs, live, in the store.

    Every Dataset created and executed inside the ``with`` block becomes one attempt of
    ``job_id``: a stage per physical operator, rows in / out over time, and per stage the
    custom metrics ``blocks_in``, ``blocks_out``, ``bytes_in``, ``bytes_out``,
    ``tasks_submitted``, ``tasks_running``, ``tasks_finished``, ``tasks_failed``,
    ``blocks_queued`` and ``actors_alive``. The job is live in every view while it runs.

    Parameters
    ----------
    job_id
        The job id to record under.
    store
        A :class:`~solstice_inspect.api.Store` or a path / URI (default store if None).
    interval
        Seconds between two samples of the operators' metrics (default 0.5).

    Examples
    --------
    >>> import ray, solstice_inspect as si  # doctest: +SKIP
    >>> with si.trace_ray_data("daily_clean", store="/tmp/store") as t:  # doctest: +SKIP
    ...     ray.data.range(1000).map_batches(lambda b: b).materialize()
    >>> t.jobs()[0].stage_summary()  # doctest: +SKIP
    """
    valid_job_id(job_id)
    if interval <= 0:
        raise ValueError(f"interval must be > 0, not {interval!r}")
    if not isinstance(store, Store):
        store = connect(store)
    _callback_base()  # fail now, not at the first execution, when Ray Data lacks the hook
    return RayDataTracer(job_id, store, interval)
