"""Where things live in a store: ``<root>/catalog.lance``,
``<root>/jobs/<job_id>/<attempt_id>/<table>.lance`` and the attempt's heartbeat file
``<root>/jobs/<job_id>/<attempt_id>/heartbeat.json``. Local paths or object-store URIs."""

from __future__ import annotations

import os
import secrets
import time

from solstice_inspect.protocol import valid_job_id

ENV_VAR = "SOLSTICE_INSPECT_STORE"
DEFAULT_DIR = ".solstice_inspect"
#: the attempt's latest heartbeat, overwritten in place (``store/heartbeat.py``)
HEARTBEAT_FILE = "heartbeat.json"


def default_root() -> str:
    """``$SOLSTICE_INSPECT_STORE`` if set, else ``./.solstice_inspect`` (made absolute)."""
    return resolve_root(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def is_uri(root: str) -> bool:
    return "://" in root


def resolve_root(root: str | os.PathLike[str]) -> str:
    text = os.fspath(root)
    if not text:
        raise ValueError("store root must not be empty")
    if is_uri(text):
        return text.rstrip("/")
    return os.path.abspath(os.path.expanduser(text))


def join(root: str, *parts: str) -> str:
    if is_uri(root):
        return "/".join([root, *parts])
    return os.path.join(root, *parts)


def catalog_uri(root: str) -> str:
    return join(root, "catalog.lance")


def attempt_uri(root: str, job_id: str, attempt_id: str) -> str:
    valid_job_id(job_id)
    valid_job_id(attempt_id)
    return join(root, "jobs", job_id, attempt_id)


def table_uri(root: str, job_id: str, attempt_id: str, table: str) -> str:
    return join(attempt_uri(root, job_id, attempt_id), f"{table}.lance")


def heartbeat_uri(root: str, job_id: str, attempt_id: str) -> str:
    return join(attempt_uri(root, job_id, attempt_id), HEARTBEAT_FILE)


def new_attempt_id(now: float | None = None) -> str:
    """A sortable, unique attempt id: UTC start time to the millisecond + 4 hex digits.

    Examples
    --------
    >>> new_attempt_id(0.0)[:19]
    '19700101T000000000-'
    """
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}{int(now * 1000) % 1000:03d}-{secrets.token_hex(2)}"
