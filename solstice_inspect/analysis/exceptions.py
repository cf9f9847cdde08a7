"""Exception fingerprints and root-cause hints: the same bug in 10,000 splits is one row
(grouping itself is part of the job model, :mod:`solstice_inspect.analysis.snapshot`)."""

from __future__ import annotations

import re

from solstice_inspect.semantics import fingerprint, normalise_message, top_frames

__all__ = [
    "fingerprint",
    "normalise_message",
    "root_cause_hint",
    "top_frames",
]

_HINTS = [
    (
        re.compile(r"MemoryError|OutOfMemory|OOM|out of memory", re.I),
        "memory: lower batch size or raise the worker's memory request",
    ),
    (
        re.compile(r"Timeout|timed out", re.I),
        "timeout: a slow dependency or an overloaded stage; check backpressure and retries",
    ),
    (
        re.compile(r"ConnectionError|ConnectionRefused|ECONNRESET|BrokenPipe", re.I),
        "connection: a remote service or node went away; check node health and retries",
    ),
    (
        re.compile(r"JSONDecodeError|UnicodeDecodeError|ParserError|parse", re.I),
        "malformed input: some records do not parse; inspect the split ids below",
    ),
    (
        re.compile(r"KeyError|AttributeError|IndexError", re.I),
        "schema drift: a field the code expects is missing in some records",
    ),
    (
        re.compile(r"ActorDied|RayActorError|WorkerCrashed|killed", re.I),
        "worker died: see the workers tab for the failed worker and its replacement",
    ),
    (
        re.compile(r"FileNotFound|No such file|PermissionError", re.I),
        "storage: a path is missing or not readable from the worker's node",
    ),
]


def root_cause_hint(exception_type: str, message: str) -> str:
    """A one-line guess at the cause, or "" when nothing matches."""
    text = f"{exception_type} {message}"
    for pattern, hint in _HINTS:
        if pattern.search(text):
            return hint
    return ""
