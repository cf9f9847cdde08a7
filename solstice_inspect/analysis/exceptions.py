"""Exception fingerprints and grouping: the same bug in 10,000 splits is one row."""

from __future__ import annotations

import hashlib
import re

import pandas as pd

_FRAME = re.compile(r'File "([^"]+)", line \d+, in (\S+)')
_NORMALISE = [
    (re.compile(r"0x[0-9a-fA-F]+"), "<hex>"),
    (re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"), "<uuid>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"(?<![A-Za-z_])\d+(\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def normalise_message(message: str) -> str:
    """Strip what varies between occurrences of one bug (numbers, ids, quoted values).

    Examples
    --------
    >>> normalise_message("bad record 1234 in 'a.json' at 0x7f3e")
    'bad record <n> in <str> at <hex>'
    """
    text = message[:2000]
    for pattern, repl in _NORMALISE:
        text = pattern.sub(repl, text)
    return text.strip()


def top_frames(stacktrace: str, n: int = 3) -> list[str]:
    """The innermost ``n`` frames of a Python traceback as ``file:function``."""
    frames = [f"{path.rsplit('/', 1)[-1]}:{fn}" for path, fn in _FRAME.findall(stacktrace or "")]
    return frames[-n:]


def fingerprint(exception_type: str, message: str, stacktrace: str = "") -> str:
    """A stable id for "the same error": type + normalised message + top frames.

    Examples
    --------
    >>> fingerprint("ValueError", "bad row 17") == fingerprint("ValueError", "bad row 99")
    True
    """
    key = "\n".join(
        [exception_type or "", normalise_message(message or ""), *top_frames(stacktrace)]
    )
    return hashlib.sha1(key.encode("utf-8", "replace")).hexdigest()[:16]


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


def group_exceptions(exceptions: pd.DataFrame) -> pd.DataFrame:
    """One row per fingerprint: count, first / last seen, stages, workers, an example.

    Parameters
    ----------
    exceptions
        The ``exceptions`` table as pandas (``Job.exceptions()``).
    """
    cols = [
        "fingerprint",
        "exception_type",
        "count",
        "first_seen",
        "last_seen",
        "stages",
        "workers",
        "splits",
        "message",
        "stacktrace",
        "hint",
    ]
    if exceptions.empty:
        return pd.DataFrame(columns=cols)
    ordered = exceptions.sort_values("ts")
    grouped = ordered.groupby("fingerprint", sort=False)
    out = grouped.agg(
        exception_type=("exception_type", "first"),
        count=("exception_id", "size"),
        first_seen=("ts", "min"),
        last_seen=("ts", "max"),
        stages=("stage_id", lambda s: sorted({v for v in s if v})),
        workers=("worker_id", lambda s: sorted({v for v in s if v})),
        splits=("split_id", lambda s: [v for v in s if v][:20]),
        message=("message", "last"),
        stacktrace=("stacktrace", "last"),
    ).reset_index()
    out["hint"] = [root_cause_hint(t, m) for t, m in zip(out["exception_type"], out["message"])]
    return out.sort_values("count", ascending=False, kind="stable")[cols].reset_index(drop=True)
