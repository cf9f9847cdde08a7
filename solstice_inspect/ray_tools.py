"""Ray for what the store cannot answer: which jobs run now, and live-only debugging
(logs, stack traces, process resources) of a worker that is still alive.

Everything else — metrics, lineage, exceptions — is read from the store (DESIGN §2).
Functions here connect to the running cluster (``ray.init(address="auto")``) when this
process is not connected yet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any

import pandas as pd
import ray
from ray.exceptions import RayError

from solstice_inspect.errors import InspectError, JobNotFound
from solstice_inspect.recorder.actor import NAMESPACE
from solstice_inspect.schema import FINAL_STATUSES
from solstice_inspect.store import Store, connect
from solstice_inspect.store.reader import Job

#: most log lines :func:`worker_logs` returns
MAX_LOG_LINES = 5_000


class WorkerGone(InspectError):
    """The worker is not alive any more (or the job is archived): read the store instead."""


class PySpyMissing(InspectError, ImportError):
    """``py-spy`` is not installed where the worker runs."""


class StateApiUnavailable(InspectError):
    """Ray's State API (it needs the dashboard) cannot be reached."""


def _connect() -> None:
    if ray.is_initialized():
        return
    try:
        ray.init(address="auto", ignore_reinit_error=True, log_to_driver=False)
    except ConnectionError as exc:
        raise InspectError(
            "no running Ray cluster to connect to: start one (`ray start --head`) or call "
            f"ray.init() in this process first ({exc})"
        ) from exc


def _address() -> str:
    """The connected cluster's address: the State API's default ("auto") is ambiguous
    when several Ray instances run on this machine."""
    return ray.get_runtime_context().gcs_address


def running_jobs(*, store: Store | str | None = None) -> pd.DataFrame:
    """Jobs whose recorder is alive in the connected Ray cluster, with live counts.

    The recorders are found by name (``recorder:<job_id>`` in namespace
    ``solstice_inspect``); the counts come from each job's store catalog, so they are as
    fresh as the recorder's last heartbeat (``heartbeat_interval``, 5 s by default).

    Parameters
    ----------
    store
        Only jobs recorded into this store (default: any store).

    Returns
    -------
    pandas.DataFrame
        job_id, attempt_id, status, start_time, heartbeat, stages, workers, records_in,
        records_out, exceptions, store, recorder_pid, node_id.

    Examples
    --------
    >>> si.running_jobs()[["job_id", "status", "records_out"]]   # doctest: +SKIP
    """
    _connect()
    only = None if store is None else (store if isinstance(store, Store) else connect(store)).root
    rows = []
    # Ray annotates the result as list[str]; with all_namespaces=True the entries are dicts
    # {"name": ..., "namespace": ...} (its docstring and code say so).
    entries: list[dict[str, str]] = ray.util.list_named_actors(  # pyright: ignore[reportAssignmentType]
        all_namespaces=True
    )
    for entry in entries:
        if entry.get("namespace") != NAMESPACE or not entry.get("name", "").startswith("recorder:"):
            continue
        try:
            actor = ray.get_actor(entry["name"], namespace=NAMESPACE)
            info: dict[str, Any] = ray.get(actor.info.remote(), timeout=10)
        except (ValueError, RayError):
            continue  # it finished between the listing and the call
        if only is not None and info["store"] != only:
            continue
        row: dict[str, Any] = {
            "job_id": info["job_id"],
            "attempt_id": info["attempt_id"],
            "status": info["status"],
            "store": info["store"],
            "recorder_pid": info["pid"],
            "node_id": info.get("node_id"),
        }
        attempts = Store(info["store"]).attempts(info["job_id"])
        mine = attempts[attempts["attempt_id"] == info["attempt_id"]]
        if not mine.empty:
            latest = mine.iloc[0]
            for col in ("start_time", "heartbeat", "stages", "workers", "records_in"):
                row[col] = latest[col]
            row["records_out"] = latest["records_out"]
            row["exceptions"] = latest["exceptions"]
        rows.append(row)
    cols = [
        "job_id",
        "attempt_id",
        "status",
        "start_time",
        "heartbeat",
        "stages",
        "workers",
        "records_in",
        "records_out",
        "exceptions",
        "store",
        "recorder_pid",
        "node_id",
    ]
    return pd.DataFrame(rows).reindex(columns=cols)


def _resolve(job: Job | str, store: Store | str | None = None) -> Job:
    if isinstance(job, Job):
        return job
    return (store if isinstance(store, Store) else connect(store)).job(job)


def _actor(job: Job, worker_id: str) -> dict[str, Any]:
    """The live actor of ``worker_id``: its state entry from Ray (raises when gone)."""
    workers = job.workers()
    known = list(dict.fromkeys(workers["worker_id"])) if not workers.empty else []
    if worker_id not in known:
        raise JobNotFound(worker_id, f"job {job.job_id!r}", known, what="worker")
    status = job.status
    if status in FINAL_STATUSES:  # LOST: the recorder died, the workers may well be alive
        raise WorkerGone(
            f"job {job.job_id!r} (attempt {job.attempt_id}) is {status}: its workers are gone;"
            f" read job.logs(where=\"worker_id = '{worker_id}'\") and job.exceptions() from"
            " the store instead"
        )
    mine = workers[workers["worker_id"] == worker_id]
    last = mine.iloc[-1]
    if last["event"] != "STARTED":
        raise WorkerGone(
            f"worker {worker_id} is {str(last['event']).lower()} ({last['reason']}); its"
            " replacement is listed in job.workers()"
        )
    name = f"{last['stage_id']}:{worker_id}"
    _connect()
    try:
        from ray.util.state import list_actors

        # Any: Ray's state records are typed as a bare PydanticDataclass (its decorator is
        # chosen at run time), which hides their fields (state, actor_id, pid, node_id).
        found: list[Any] = list_actors(
            address=_address(),
            filters=[("name", "=", name)],
            detail=False,
            raise_on_missing_output=False,
        )
    except Exception as exc:
        raise StateApiUnavailable(
            f"Ray's State API is unavailable ({exc}); it needs the dashboard: "
            "ray.init(include_dashboard=True) or `ray start --head --include-dashboard true`"
        ) from exc
    alive = [a for a in found if getattr(a, "state", None) == "ALIVE"]
    if not alive:
        state = found[-1].state if found else "not found"
        raise WorkerGone(f"the actor {name} of worker {worker_id} is {state} in Ray")
    a = alive[-1]
    return {
        "worker_id": worker_id,
        "stage_id": str(last["stage_id"]),
        "actor_name": name,
        "actor_id": a.actor_id,
        "pid": a.pid,
        "node_id": a.node_id,
    }


def _on_node(node_id: str | None, fn: Any, *args: Any, timeout: float = 60) -> Any:
    """Run ``fn(*args)`` on the worker's node (here when it is this node)."""
    here = ray.get_runtime_context().get_node_id()
    if node_id is None or node_id == here:
        return fn(*args)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0)(fn).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
    )
    return ray.get(task.remote(*args), timeout=timeout)


def worker_logs(
    job: Job | str, worker_id: str, tail: int = 200, *, store: Store | str | None = None
) -> str:
    """The last ``tail`` lines (at most 5000) of a live worker's log, from Ray.

    Raises
    ------
    WorkerGone
        The worker (or the whole job) is not running: read ``job.logs()`` instead.
    StateApiUnavailable
        Ray's dashboard is not running.
    """
    if not 0 < tail <= MAX_LOG_LINES:
        raise ValueError(f"tail must be between 1 and {MAX_LOG_LINES}, not {tail}")
    info = _actor(_resolve(job, store), worker_id)
    from ray.util.state import get_log

    try:
        chunks = list(get_log(address=_address(), actor_id=info["actor_id"], tail=tail))
    except Exception as exc:
        raise WorkerGone(f"no log for {info['actor_name']}: {exc}") from exc
    lines = "".join(chunks).splitlines()
    return "\n".join(lines[-tail:])


def _pyspy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    local = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return local if os.path.exists(local) else None


def _dump(pid: int) -> dict[str, Any]:
    exe = _pyspy()
    if exe is None:
        return {"error": "missing"}
    proc = subprocess.run(
        [exe, "dump", "--pid", str(int(pid))], capture_output=True, text=True, timeout=30
    )
    return {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}


def worker_stack(job: Job | str, worker_id: str, *, store: Store | str | None = None) -> str:
    """A ``py-spy dump`` of a live worker's actor process: what it is doing right now.

    Raises
    ------
    PySpyMissing
        ``pip install py-spy`` on the worker's node.
    WorkerGone
        The worker is not running.
    """
    if _pyspy() is None:
        raise PySpyMissing("py-spy is not installed: pip install py-spy")
    info = _actor(_resolve(job, store), worker_id)
    out = _on_node(info["node_id"], _dump, info["pid"])
    if out.get("error") == "missing":
        raise PySpyMissing(f"py-spy is not installed on node {info['node_id']}: pip install py-spy")
    if out["rc"] != 0:
        raise InspectError(
            f"py-spy dump --pid {info['pid']} failed ({out['err'].strip()[:500]}); it needs"
            " ptrace rights (root, or CAP_SYS_PTRACE in containers)"
        )
    return str(out["out"])


def _process(pid: int) -> dict[str, Any]:
    import psutil

    proc = psutil.Process(pid)
    with proc.oneshot():
        return {
            "cpu_percent": proc.cpu_percent(interval=0.2),
            "memory_mb": round(proc.memory_info().rss / 2**20, 1),
            "num_threads": proc.num_threads(),
            "create_time": pd.Timestamp(proc.create_time(), unit="s", tz="UTC"),
            "cmdline": " ".join(proc.cmdline())[:500],
        }


def worker_process(
    job: Job | str, worker_id: str, *, store: Store | str | None = None
) -> dict[str, Any]:
    """Identity and resources of a live worker's process (pid, node, CPU %, RSS MB, …)."""
    info = _actor(_resolve(job, store), worker_id)
    try:
        info.update(_on_node(info["node_id"], _process, info["pid"]))
    except Exception as exc:
        raise WorkerGone(f"process {info['pid']} of {worker_id} is gone: {exc}") from exc
    return info


def profile_worker(
    job: Job | str,
    worker_id: str,
    *,
    seconds: float = 10.0,
    rate: int = 100,
    idle: bool = False,
    nonblocking: bool = False,
    store: Store | str | None = None,
) -> dict[str, Any]:
    """Sample a live worker with ``py-spy record`` and send the profile to its recorder.

    py-spy runs on the worker's node (a small Ray task pinned there); the folded stacks go
    to the job's recorder actor as one ``profile`` envelope. Returns that envelope's
    payload (``profile_id``, ``stacks``…); :meth:`Job.profile
    <solstice_inspect.api.Job.profile>` also waits for the stored rows.

    Raises
    ------
    WorkerGone
        The job is finished, or the worker stopped: the message names the live workers
        of its stage.
    PySpyMissing
        ``pip install py-spy`` on the worker's node.
    InspectError
        ptrace refused (the message says how to allow it), the worker was idle, or no
        recorder of this attempt runs.
    """
    import difflib

    from solstice_inspect import profiling

    job = _resolve(job, store)
    seconds, rate = profiling.check_options(seconds, rate)
    status = job.status
    if status in FINAL_STATUSES:
        raise WorkerGone(
            f"job {job.job_id!r} (attempt {job.attempt_id}) is {status}: profiling needs a "
            "running worker; the profiles stored while it ran stay readable: job.profiles()"
        )
    if _pyspy() is None:
        raise PySpyMissing("py-spy is not installed: pip install py-spy")
    try:
        info = _actor(job, worker_id)
    except WorkerGone as exc:
        workers = job.workers(columns=["worker_id", "stage_id"])
        stages = workers.loc[workers["worker_id"] == worker_id, "stage_id"]
        stage = str(stages.iloc[-1]) if len(stages) else None
        live = profiling.live_workers(job, stage)
        near = difflib.get_close_matches(worker_id, live, n=3, cutoff=0.0) or live[:3]
        raise WorkerGone(
            f"{exc}; profiling needs a live worker — live workers of stage {stage}: "
            f"{', '.join(near) or 'none'} (stored profiles stay readable: job.profiles())"
        ) from exc
    started = time.time()
    result = _on_node(
        info["node_id"], profiling.record, info["pid"], seconds, rate, idle, nonblocking,
        timeout=seconds + 90,
    )  # fmt: skip
    if result.get("error") == "missing":
        raise PySpyMissing(f"py-spy is not installed on node {info['node_id']}: pip install py-spy")
    problem = profiling.failure(result, info["pid"], info["node_id"])
    if problem is not None:
        raise problem
    stacks = profiling.parse_folded(result["folded"])
    if not stacks:
        raise InspectError(
            f"py-spy took no sample of {worker_id} in {seconds:g} s: the worker was idle "
            "(py-spy skips idle threads: profile it while it works, or pass idle=True)"
        )
    env = profiling.profile_envelope(
        job.job_id, worker_id, info["stage_id"], stacks, seconds=seconds, rate=rate,
        started=started,
    )  # fmt: skip
    profiling.send(job, env)
    return env["payload"]
