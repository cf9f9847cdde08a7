"""Where a follower of a broker topic stands: ``<root>/follow/<topic>.json``.

``solstice-inspect follow`` records a job's state topic into an attempt; this file says
which attempt, the last flush (``batch``) whose rows are in the store, and, per
partition, the next offset to read after them and a fingerprint of the last message
read (to tell a broker that lost its data from one that kept it). It is written only
*after* the rows it covers are flushed, so a follower killed at any moment finds at most
rows it will read again: :func:`rollback` deletes the attempt's rows of later flushes
before it resumes, and the restart gives neither a duplicate row nor a gap.

Replacing is atomic like the heartbeat file's: a temporary file and ``os.replace``
locally, one PUT on an object store.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from typing import Any

from pyarrow import fs as pafs

from solstice_inspect.schema import JOB_TABLES
from solstice_inspect.store import layout
from solstice_inspect.store.dataset import open_dataset

#: bumped when the file's meaning changes; a follower ignores files of another format
FORMAT = 1
FOLDER = "follow"
#: Kafka's own rule for topic names: they are safe as file names
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

__all__ = ["FORMAT", "partitions", "positions", "read", "rollback", "uri", "write"]


def uri(root: str, topic: str) -> str:
    """The offsets file of ``topic`` under the store ``root``."""
    if not _TOPIC.match(topic) or topic in (".", ".."):
        raise ValueError(f"not a Kafka topic name: {topic!r} (letters, digits, . _ -)")
    return layout.join(root, FOLDER, f"{topic}.json")


def write(root: str, topic: str, doc: dict[str, Any]) -> None:
    """Replace the offsets file of ``topic`` with ``doc`` (atomically).

    Raises
    ------
    OSError
        When it cannot be written; the follower keeps its position in memory, retries at
        its next flush, and a restart then re-reads (and rolls back) a little more.
    """
    root = _local(root)
    target = uri(root, topic)
    data = json.dumps({**doc, "format": FORMAT, "topic": topic}, separators=(",", ":")).encode()
    if layout.is_uri(root):
        fs, path = _filesystem(root, target)
        with fs.open_output_stream(path) as out:  # one PUT replaces an object atomically
            out.write(data)
        return
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{topic}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the position must not outlive a crash its rows miss
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # never created, or the disk is gone: the write's own error is what counts
        raise


def read(root: str, topic: str) -> dict[str, Any] | None:
    """The offsets file of ``topic``, or None when there is none (or it is not ours)."""
    root = _local(root)
    target = uri(root, topic)
    try:
        if layout.is_uri(root):
            fs, path = _filesystem(root, target)
            with fs.open_input_stream(path) as stream:
                data = stream.read()
        else:
            with open(target, "rb") as handle:
                data = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if "not exist" in str(exc).lower() or "not found" in str(exc).lower():
            return None
        raise
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("topic") != topic:
        return None
    return doc


def partitions(
    nxt: dict[int, int], last: dict[int, tuple[int, int, int]]
) -> dict[str, dict[str, Any]]:
    """The file's ``partitions``: per partition, the next offset to read and the (offset,
    timestamp, crc) of the last message read.

    Examples
    --------
    >>> partitions({0: 5}, {0: (4, 1000, 7)})
    {'0': {'next': 5, 'offset': 4, 'ts': 1000, 'crc': 7}}
    """
    out = {}
    for p, n in sorted(nxt.items()):
        seen = last.get(p)
        out[str(p)] = {
            "next": n,
            "offset": seen[0] if seen else None,
            "ts": seen[1] if seen else None,
            "crc": seen[2] if seen else None,
        }
    return out


def positions(doc: dict[str, Any]) -> tuple[dict[int, int], dict[int, tuple[int, int, int]]]:
    """The next offsets and last messages read of a file's ``doc`` (see :func:`partitions`).

    Examples
    --------
    >>> positions({"partitions": {"0": {"next": 5, "offset": 4, "ts": 1000, "crc": 7}}})
    ({0: 5}, {0: (4, 1000, 7)})
    """
    nxt: dict[int, int] = {}
    last: dict[int, tuple[int, int, int]] = {}
    for key, part in (doc.get("partitions") or {}).items():
        nxt[int(key)] = int(part["next"])
        if part.get("offset") is not None:
            last[int(key)] = (int(part["offset"]), int(part["ts"]), int(part["crc"]))
    return nxt, last


def rollback(root: str, job_id: str, attempt_id: str, after_batch: int) -> int:
    """Delete the attempt's rows of flushes after ``after_batch``; return how many.

    A follower that died between flushing rows and writing its offsets left rows that
    it will read (and write) again from the broker: removed before it resumes.
    """
    removed = 0
    for table in JOB_TABLES:
        ds = open_dataset(layout.table_uri(root, job_id, attempt_id, table))
        if ds is None:
            continue
        where = f"batch > {int(after_batch)}"
        n = ds.count_rows(where)
        if n:
            ds.delete(where)
            removed += n
    return removed


def _local(root: str) -> str:
    return root[len("file://") :] if root.startswith("file://") else root


def _filesystem(root: str, target: str) -> tuple[pafs.FileSystem, str]:
    fs, base = pafs.FileSystem.from_uri(root)
    return fs, base.rstrip("/") + target[len(root) :]
