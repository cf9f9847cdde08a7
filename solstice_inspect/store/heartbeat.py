"""The heartbeat file of a running attempt: ``jobs/<job_id>/<attempt_id>/heartbeat.json``.

A recorder overwrites it every heartbeat with the values its catalog row would carry
(status, times, counts), so the shared catalog gets rows only when an attempt starts and
when its status changes: the catalog grows with the number of attempts, not with their
running time. Readers overlay it on attempts whose newest catalog row is RUNNING
(:func:`solstice_inspect.store.catalog.latest_attempts`).

Replacing is atomic, so a reader sees the old beat or the new one, never half of one:
locally a temporary file in the same folder and ``os.replace``; on an object store one
PUT (both in :func:`solstice_inspect.store.fs.write_atomic`). Times are integer
microseconds since the epoch (UTC), the catalog's own precision.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from solstice_inspect.schema import FINAL_STATUSES
from solstice_inspect.store import fs, layout

log = logging.getLogger("solstice_inspect.store")

#: bumped when the file's meaning changes; a reader skips files of another format
FORMAT = 1
#: what a heartbeat carries: the catalog's columns beyond job_id, attempt_id, ts, batch
FIELDS: tuple[str, ...] = (
    "status",
    "start_time",
    "end_time",
    "heartbeat",
    "heartbeat_interval_s",
    "stages",
    "workers",
    "records_in",
    "records_out",
    "exceptions",
)
#: of :data:`FIELDS`, the times (epoch microseconds in the file)
TIMES: tuple[str, ...] = ("start_time", "end_time", "heartbeat")
#: object-store reads in flight at once (each is one GET, latency-bound)
REMOTE_READERS = 16

#: what a recorder writes (LOST is only ever derived by readers)
_WRITTEN_STATUSES = frozenset({"RUNNING", *FINAL_STATUSES})

_warned: set[str] = set()
_warned_lock = threading.Lock()


def encode(job_id: str, attempt_id: str, beat: Mapping[str, Any]) -> bytes:
    """The file's bytes; ``beat`` has :data:`FIELDS` with times as epoch seconds."""
    doc: dict[str, Any] = {"format": FORMAT, "job_id": job_id, "attempt_id": attempt_id}
    for name in FIELDS:
        value = beat.get(name)
        doc[name] = None if value is None else round(value * 1e6) if name in TIMES else value
    return json.dumps(doc, separators=(",", ":")).encode()


def decode(data: bytes, job_id: str, attempt_id: str) -> dict[str, Any] | None:
    """:data:`FIELDS` of a file's bytes (times in epoch µs), or None when they are not a
    heartbeat of this attempt (a torn or foreign file must not change a listing)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or doc.get("job_id") != job_id
        or doc.get("attempt_id") != attempt_id
        or not isinstance(doc.get("heartbeat"), int)
        or doc.get("status") not in _WRITTEN_STATUSES
    ):
        return None
    return {name: doc.get(name) for name in FIELDS}


def write(root: str, job_id: str, attempt_id: str, beat: Mapping[str, Any]) -> None:
    """Replace the attempt's heartbeat file with ``beat`` (atomically).

    Parameters
    ----------
    root
        The store root (a local path or an object-store URI).
    job_id, attempt_id
        The attempt.
    beat
        :data:`FIELDS`; ``start_time``, ``end_time`` and ``heartbeat`` in epoch seconds.

    Raises
    ------
    OSError
        When the file cannot be written; the caller (the recorder) counts it and goes on.
    """
    uri = layout.heartbeat_uri(root, job_id, attempt_id)
    fs.write_atomic(uri, encode(job_id, attempt_id, beat))


def read(root: str, job_id: str, attempt_id: str) -> dict[str, Any] | None:
    """The attempt's last heartbeat (:data:`FIELDS`, times in epoch µs), or None.

    None when there is no file (an attempt written by an older recorder, or not started
    yet) or it cannot be read; readers then keep the catalog row.
    """
    return read_many(root, [(job_id, attempt_id)]).get((job_id, attempt_id))


def read_many(
    root: str, attempts: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The last heartbeats of many attempts, keyed by ``(job_id, attempt_id)``.

    Attempts without a readable file are left out. Local files are read one after the
    other (~25 µs each: a thousand cost ~25 ms); object-store reads run in parallel.
    """
    keys = list(dict.fromkeys(attempts))
    if not keys:
        return {}
    if fs.is_remote(root):
        with ThreadPoolExecutor(min(REMOTE_READERS, len(keys))) as pool:
            found = list(pool.map(lambda k: _read_one(root, *k), keys))
    else:
        found = [_read_one(root, *k) for k in keys]
    return {k: beat for k, beat in zip(keys, found) if beat is not None}


def _read_one(root: str, job_id: str, attempt_id: str) -> dict[str, Any] | None:
    try:
        data = fs.read_bytes(layout.heartbeat_uri(root, job_id, attempt_id))
    except OSError as exc:
        _warn_once(root, exc)
        return None
    return None if data is None else decode(data, job_id, attempt_id)


def _warn_once(root: str, exc: BaseException) -> None:
    """A reader that cannot read heartbeats falls back to the catalog rows; say so once."""
    with _warned_lock:
        if root in _warned:
            return
        _warned.add(root)
    log.warning(
        "cannot read heartbeat files under %s (%s); listing from the catalog alone",
        fs.display(root),
        fs.describe(exc, root),
    )
