"""Exception fingerprints and root-cause hints: the same bug in 10,000 splits is one row
(grouping itself is part of the job model, :mod:`solstice_inspect.analysis.snapshot`)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from solstice_inspect.semantics import fingerprint, normalise_message, top_frames

__all__ = [
    "ExceptionGroups",
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


#: split ids kept per exception group
GROUP_SPLITS = 20
GROUP_COLUMNS = [
    "fingerprint", "exception_type", "count", "first_seen", "last_seen", "stages",
    "workers", "splits", "message", "stacktrace", "hint",
]  # fmt: skip


class ExceptionGroups:
    """Exceptions grouped by fingerprint, kept up to date as rows come (any batching
    gives the same groups: first / last are decided by time, then by arrival)."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Any]] = {}
        self.seen = 0

    def add(self, table: pa.Table) -> None:
        """Fold new exception rows (an ``exceptions`` table's columns) in."""
        df = table.select(
            ["ts", "fingerprint", "exception_type", "stage_id", "worker_id", "split_id",
             "message", "stacktrace"]
        ).to_pandas()  # fmt: skip
        df["_key"] = np.arange(self.seen, self.seen + len(df))
        self.seen += len(df)
        df["_us"] = df["ts"].astype("datetime64[us, UTC]").astype("int64")
        df = df.sort_values(["_us", "_key"], kind="stable")
        for fp, g in df.groupby("fingerprint", sort=False):
            first, last = g.iloc[0], g.iloc[-1]
            group = self.groups.get(fp)
            if group is None:
                group = self.groups[fp] = {
                    "fingerprint": fp,
                    "count": 0,
                    "first": (int(first["_us"]), int(first["_key"])),
                    "exception_type": first["exception_type"],
                    "first_seen": first["ts"],
                    "last": (-1, -1),
                    "stages": set(),
                    "workers": set(),
                    "splits": [],
                }
            group["count"] += len(g)
            if (int(first["_us"]), int(first["_key"])) < group["first"]:
                group["first"] = (int(first["_us"]), int(first["_key"]))
                group["exception_type"] = first["exception_type"]
                group["first_seen"] = first["ts"]
            if (int(last["_us"]), int(last["_key"])) > group["last"]:
                group["last"] = (int(last["_us"]), int(last["_key"]))
                group["last_seen"] = last["ts"]
                group["message"] = last["message"]
                group["stacktrace"] = last["stacktrace"]
            group["stages"].update(v for v in g["stage_id"] if isinstance(v, str) and v)
            group["workers"].update(v for v in g["worker_id"] if isinstance(v, str) and v)
            splits = [
                (int(u), int(k), s)
                for u, k, s in zip(g["_us"], g["_key"], g["split_id"])
                if isinstance(s, str) and s
            ][:GROUP_SPLITS]
            group["splits"] = sorted(group["splits"] + splits)[:GROUP_SPLITS]

    def table(self) -> pd.DataFrame:
        """One row per fingerprint, most frequent first.

        Count, first / last seen, stages, workers, up to 20 split ids, the last message
        and stacktrace, a root-cause hint.
        """
        groups = sorted(self.groups.values(), key=lambda g: (-g["count"], g["first"]))
        rows = [
            {
                **{k: g[k] for k in ("fingerprint", "exception_type", "count", "first_seen",
                                     "last_seen", "message", "stacktrace")},
                "stages": sorted(g["stages"]),
                "workers": sorted(g["workers"]),
                "splits": [s for _, _, s in g["splits"]],
                "hint": root_cause_hint(g["exception_type"], g["message"]),
            }
            for g in groups
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=GROUP_COLUMNS)
