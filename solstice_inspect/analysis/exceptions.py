"""Exception fingerprints and root-cause hints: the same bug in 10,000 splits is one row
(grouping itself is part of the job model, :mod:`solstice_inspect.analysis.snapshot`);
occurrences over time per group; and the filters that search exceptions and log lines
(case-insensitive text search, log levels) pushed down to Lance as SQL."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from solstice_inspect.analysis.query import sql_in, sql_literal
from solstice_inspect.semantics import fingerprint, normalise_message, top_frames

__all__ = [
    "LOG_LEVELS",
    "ExceptionGroups",
    "fingerprint",
    "level_filter",
    "normalise_message",
    "occurrences",
    "query_filter",
    "root_cause_hint",
    "search_filter",
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
        # Vectorised per group (first / last row, counts, distinct stages and workers,
        # first split ids), then one small Python step per group; message and stack
        # trace are read for each group's last row only: converting every row's text
        # to Python (50,000 traces) cost most of the fold.
        df = table.select(
            ["ts", "fingerprint", "exception_type", "stage_id", "worker_id", "split_id"]
        ).to_pandas()  # fmt: skip
        df["_row"] = np.arange(len(df))
        df["_key"] = np.arange(self.seen, self.seen + len(df))
        self.seen += len(df)
        df["_us"] = df["ts"].astype("datetime64[us, UTC]").astype("int64")
        df = df.sort_values(["_us", "_key"], kind="stable")
        by = df.groupby("fingerprint", sort=False)
        counts = by.size()
        firsts = df.drop_duplicates("fingerprint", keep="first").set_index("fingerprint")
        lasts = df.drop_duplicates("fingerprint", keep="last").set_index("fingerprint")
        stages = by["stage_id"].unique()
        workers = by["worker_id"].unique()
        named = df.loc[df["split_id"].notna() & (df["split_id"] != "")]
        named = named.groupby("fingerprint", sort=False).head(GROUP_SPLITS)
        splits_of: dict[Any, list[tuple[int, int, str]]] = {}
        for fp, u, k, sid in zip(named["fingerprint"], named["_us"], named["_key"],
                                 named["split_id"]):  # fmt: skip
            splits_of.setdefault(fp, []).append((int(u), int(k), sid))
        messages, stacks = table.column("message"), table.column("stacktrace")
        for fp, n in counts.items():
            first, last = firsts.loc[fp], lasts.loc[fp]
            first_key = (int(first["_us"]), int(first["_key"]))
            last_key = (int(last["_us"]), int(last["_key"]))
            group = self.groups.get(fp)
            if group is None:
                group = self.groups[fp] = {
                    "fingerprint": fp,
                    "count": 0,
                    "first": first_key,
                    "exception_type": first["exception_type"],
                    "first_seen": first["ts"],
                    "last": (-1, -1),
                    "stages": set(),
                    "workers": set(),
                    "splits": [],
                }
            group["count"] += int(n)
            if first_key < group["first"]:
                group["first"] = first_key
                group["exception_type"] = first["exception_type"]
                group["first_seen"] = first["ts"]
            if last_key > group["last"]:
                group["last"] = last_key
                group["last_seen"] = last["ts"]
                row = int(last["_row"])
                group["message"] = messages[row].as_py()
                group["stacktrace"] = stacks[row].as_py()
            group["stages"].update(v for v in stages[fp] if isinstance(v, str) and v)
            group["workers"].update(v for v in workers[fp] if isinstance(v, str) and v)
            splits = splits_of.get(fp, [])
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


# ------------------------------------------------------------------ over time
OCCURRENCE_COLUMNS = [
    "fingerprint", "exception_type", "time", "count", "first_seen", "last_seen",
]  # fmt: skip


def occurrences(rows: pd.DataFrame, freq: str = "1min") -> pd.DataFrame:
    """Occurrences per exception group and time bucket, with each group's first/last seen.

    ``rows``: exception rows (``ts``, ``fingerprint``, ``exception_type``). One row per
    (fingerprint, bucket of ``freq``) that has occurrences — empty buckets are left out,
    so the size follows the data, not the job's length. Groups come most frequent first
    (as :meth:`ExceptionGroups.table`), buckets in time order; ``exception_type`` is the
    group's first one, ``first_seen`` / ``last_seen`` its first and last occurrence.

    Examples
    --------
    >>> t = pd.to_datetime([0, 30, 70, 75], unit="s", utc=True)
    >>> rows = pd.DataFrame({"ts": t, "fingerprint": ["a", "a", "a", "b"],
    ...                      "exception_type": ["KeyError"] * 3 + ["OSError"]})
    >>> occurrences(rows, "1min")[["fingerprint", "time", "count"]]
      fingerprint                      time  count
    0           a 1970-01-01 00:00:00+00:00      2
    1           a 1970-01-01 00:01:00+00:00      1
    2           b 1970-01-01 00:01:00+00:00      1
    """
    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    except (ValueError, TypeError):
        raise ValueError(
            f"freq={freq!r} is not a fixed time step: pass e.g. '10s' or '1min'"
        ) from None
    if step <= pd.Timedelta(0):
        raise ValueError(f"freq={freq!r} must be a positive time step")
    if rows.empty:
        return pd.DataFrame(columns=OCCURRENCE_COLUMNS)
    df = rows.loc[:, ["ts", "fingerprint", "exception_type"]].sort_values("ts", kind="stable")
    df = df.assign(time=df["ts"].dt.floor(step))
    g = df.groupby("fingerprint", sort=False)
    groups = pd.DataFrame(
        {
            "exception_type": g["exception_type"].first(),
            "total": g.size(),
            "first_seen": g["ts"].min(),
            "last_seen": g["ts"].max(),
        }
    ).sort_values(["total", "first_seen"], ascending=[False, True], kind="stable")
    counts = df.groupby(["fingerprint", "time"]).size().rename("count").reset_index()
    order = {fp: i for i, fp in enumerate(groups.index)}
    counts = counts.assign(_g=counts["fingerprint"].map(order))
    counts = counts.sort_values(["_g", "time"], kind="stable").drop(columns="_g")
    out = counts.join(groups.drop(columns="total"), on="fingerprint")
    return out.reset_index(drop=True)[OCCURRENCE_COLUMNS]


# ------------------------------------------------------------------ searching rows
#: log levels, lowest first, as :mod:`logging` names them
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: other spellings producers send, and the level each means
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
_LEVEL_NUMBERS = dict(zip(LOG_LEVELS, (10, 20, 30, 40, 50)))


def search_filter(text: str, columns: list[str]) -> str | None:
    """A Lance SQL filter: ``text`` in any of ``columns``, ignoring case (None: no text).

    A plain substring: ``%``, ``_``, ``\\`` and quotes in ``text`` match themselves
    (``contains``, not ``LIKE``; quotes doubled).

    Examples
    --------
    >>> search_filter("100% it's", ["message"])
    "(contains(lower(message), '100% it''s'))"
    """
    if not isinstance(text, str):
        raise TypeError(f"search must be a string, not {text!r}")
    if not text:
        return None
    needle = sql_literal(text.lower())
    return "(" + " OR ".join(f"contains(lower({c}), {needle})" for c in columns) + ")"


def level_filter(level: str | int) -> str:
    """A Lance SQL filter keeping log lines at ``level`` and above.

    ``level``: a name (``"warning"``, ``"WARN"``…) or a :mod:`logging` number (30). Lines
    stored with a level outside :data:`LOG_LEVELS` (and WARN, FATAL) are left out.

    Examples
    --------
    >>> level_filter("error")
    "level IN ('ERROR', 'CRITICAL', 'FATAL')"
    >>> level_filter("loud")
    Traceback (most recent call last):
    ...
    ValueError: no log level 'loud'; levels: DEBUG, INFO, WARNING, ERROR, CRITICAL
    """
    if isinstance(level, bool) or not isinstance(level, (str, int, np.integer)):
        raise TypeError(f"level must be a level name or number, not {level!r}")
    if isinstance(level, str):
        name = _LEVEL_ALIASES.get(level.strip().upper(), level.strip().upper())
        if name not in _LEVEL_NUMBERS:
            raise ValueError(f"no log level {level!r}; levels: {', '.join(LOG_LEVELS)}")
        floor = _LEVEL_NUMBERS[name]
    else:
        floor = int(level)
    names = [n for n in LOG_LEVELS if _LEVEL_NUMBERS[n] >= floor]
    names += [alias for alias, n in _LEVEL_ALIASES.items() if n in names]
    if not names:
        return "FALSE"
    return f"level IN ({', '.join(sql_literal(n) for n in names)})"


def query_filter(
    *,
    search: str | None = None,
    search_in: tuple[str, ...] = (),
    level: str | int | None = None,
    where: str | None = None,
    **ids: list[str] | None,
) -> str | None:
    """The Lance SQL filter of a query on exceptions or log lines (None: keep every row).

    The conditions that are set, joined with AND: ``search`` in any column of
    ``search_in`` (:func:`search_filter`), ``level`` and above (:func:`level_filter`),
    each ``column=[ids]`` (one of them), and a free ``where``.

    Examples
    --------
    >>> query_filter(search="oom", search_in=("message",), stage_id=["embed"], worker_id=None)
    "(contains(lower(message), 'oom')) AND stage_id IN ('embed')"
    """
    parts = [
        None if search is None else search_filter(search, list(search_in)),
        None if level is None else level_filter(level),
        *(sql_in(column, values) for column, values in ids.items() if values),
        f"({where})" if where else None,
    ]
    return " AND ".join(p for p in parts if p) or None
