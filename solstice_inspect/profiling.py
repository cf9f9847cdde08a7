"""Sampling profiles of live workers with py-spy, stored through the job's recorder.

:func:`profile_worker` finds the worker's actor (pid, node) through Ray, runs ``py-spy
record --format raw`` on that node for a few seconds, and sends the folded stacks as one
``profile`` envelope to the job's recorder actor — the only writer of the attempt — so
the profile is stored in the ``profiles`` table and stays readable after the worker and
the job are gone (:meth:`Job.profiles <solstice_inspect.api.Job.profiles>`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from solstice_inspect.errors import InspectError
from solstice_inspect.protocol import envelope

#: source id of the envelopes this module sends (the protocol's example uses it too)
SOURCE_ID = "solstice_inspect.profiler"
#: the longest and the densest profile asked for
MAX_SECONDS = 600.0
MAX_RATE = 1000
#: what to do when the kernel refuses py-spy's ptrace
PTRACE_FIX = (
    "py-spy needs ptrace rights on the worker's node: run the Ray worker as root, add "
    "CAP_SYS_PTRACE to its container (docker run --cap-add SYS_PTRACE; Kubernetes: "
    "securityContext.capabilities.add: [SYS_PTRACE]), or allow it with "
    "`sysctl kernel.yama.ptrace_scope=0`"
)


def pyspy_path() -> str | None:
    """The py-spy executable on this node: on ``PATH``, or beside this Python."""
    found = shutil.which("py-spy")
    if found:
        return found
    local = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return local if os.path.exists(local) else None


def parse_folded(text: str) -> list[list[Any]]:
    """The ``[stack, count]`` pairs of py-spy's raw (folded) output, equal stacks merged.

    Each line is ``outer;inner;leaf count``; blank or malformed lines are skipped.

    Examples
    --------
    >>> parse_folded("main (a.py:3);work (a.py:9) 7\\nmain (a.py:3) 2\\nmain (a.py:3) 1\\n")
    [['main (a.py:3);work (a.py:9)', 7], ['main (a.py:3)', 3]]
    """
    counts: dict[str, int] = {}
    for line in text.splitlines():
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack or not n.isdigit():
            continue
        counts[stack] = counts.get(stack, 0) + int(n)
    return [[stack, n] for stack, n in counts.items()]


def check_options(seconds: Any, rate: Any) -> tuple[float, int]:
    """``seconds`` and ``rate`` as numbers py-spy takes, or a ValueError naming the range."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, not {seconds!r}")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be in (0, {MAX_SECONDS:g}], not {seconds!r}")
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= MAX_RATE:
        raise ValueError(f"rate must be an int sample rate in [1, {MAX_RATE}] Hz, not {rate!r}")
    return float(seconds), rate


def record(
    pid: int, seconds: float, rate: int, idle: bool = False, nonblocking: bool = False
) -> dict[str, Any]:
    """Run ``py-spy record --format raw`` on ``pid`` (on this node); return what it said.

    A plain function so that Ray can run it on the worker's node: ``{"error":
    "missing"}`` when py-spy is not installed there, else ``rc``, ``folded`` (the raw
    output), ``err`` (its stderr).
    """
    exe = pyspy_path()
    if exe is None:
        return {"error": "missing"}
    fd, out = tempfile.mkstemp(prefix="si-profile-", suffix=".txt")
    os.close(fd)
    # py-spy's duration is whole seconds; shorter asks sample one second
    duration = max(1, round(seconds))
    cmd = [exe, "record", "--pid", str(int(pid)), "--duration", str(duration), "--rate",
           str(int(rate)), "--format", "raw", "--output", out]  # fmt: skip
    if idle:
        cmd.append("--idle")
    if nonblocking:
        cmd.append("--nonblocking")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        with open(out, encoding="utf-8", errors="replace") as fh:
            folded = fh.read()
    finally:
        os.unlink(out)
    return {"rc": proc.returncode, "folded": folded, "err": proc.stderr + proc.stdout}


def failure(result: dict[str, Any], pid: int, node: str | None) -> InspectError | None:
    """The error to raise for a failed :func:`record` (None when it worked)."""
    if result.get("error") == "missing":
        return InspectError(f"py-spy is not installed on node {node}: pip install py-spy")
    if result["rc"] == 0:
        return None
    said = " ".join(str(result["err"]).split())[:500]
    if "ermission" in said or "ptrace" in said.lower() or "EPERM" in said:
        return InspectError(f"py-spy may not attach to process {pid} ({said}); {PTRACE_FIX}")
    return InspectError(f"py-spy record --pid {pid} failed: {said}")


def profile_envelope(
    job_id: str,
    worker_id: str,
    stage_id: str | None,
    stacks: list[list[Any]],
    *,
    seconds: float,
    rate: int,
    started: float,
) -> dict[str, Any]:
    """The ``profile`` envelope of one sampling run (its id: worker and start in ms)."""
    profile_id = f"{worker_id}-{int(started * 1000)}"
    payload = {
        "worker_id": worker_id,
        "stage_id": stage_id,
        "profile_id": profile_id,
        "duration_s": seconds,
        "rate_hz": float(rate),
        "stacks": stacks,
    }
    # the sequence is unique per run, so a retried send is deduplicated by the recorder
    return envelope("profile", job_id, SOURCE_ID, time.time(), payload, int(started * 1e6))


def send(job: Any, env: dict[str, Any]) -> None:
    """Hand ``env`` to the job's recorder actor and make it write now.

    Raises
    ------
    InspectError
        No recorder of this attempt runs in the connected Ray cluster.
    """
    import ray
    from ray.exceptions import RayError

    from solstice_inspect.recorder.actor import NAMESPACE, actor_name

    try:
        actor = ray.get_actor(actor_name(job.job_id), namespace=NAMESPACE)
        info: dict[str, Any] = ray.get(actor.info.remote(), timeout=30)
    except (ValueError, RayError) as exc:
        raise InspectError(
            f"no recorder of job {job.job_id!r} runs in this Ray cluster ({exc}); a profile "
            "is stored through the job's recorder (JobRecorder), the only writer of an attempt"
        ) from exc
    attempt = info["attempt_id"]
    if attempt != job.attempt_id:
        raise InspectError(
            f"the running recorder of job {job.job_id!r} records attempt {attempt}, not "
            f"{job.attempt_id}: profile the workers of the running attempt "
            f"(si.job({job.job_id!r}))"
        )
    ray.get(actor.ingest.remote(env), timeout=60)
    ray.get(actor.flush.remote(), timeout=60)


def live_workers(job: Any, stage_id: str | None) -> list[str]:
    """Workers of ``stage_id`` (every stage when None) whose last event is STARTED,
    as the store knows them."""
    workers = job.workers(columns=["ts", "worker_id", "stage_id", "event"])
    if workers.empty:
        return []
    if stage_id is not None:
        workers = workers[workers["stage_id"] == stage_id]
    last = workers.groupby("worker_id", sort=False)["event"].last()
    return sorted(str(w) for w, event in last.items() if event == "STARTED")
