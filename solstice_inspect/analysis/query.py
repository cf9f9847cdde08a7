"""Small helpers every query method shares: closest known ids for an error, SQL
literals and IN lists for Lance filters, id lists, time windows, keyword checking.

Pure: no I/O.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as _pc

#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc
P = ParamSpec("P")
R = TypeVar("R")


def closest_ids(query: str, known: pa.Array | Iterable[str], n: int = 3) -> list[str]:
    """The ``n`` known ids most like ``query`` (always some, when any are known).

    Fast on a million ids: candidates are first narrowed with vectorised prefix and suffix
    matches (the longest shared with ``query``), then ranked with :mod:`difflib`.

    Examples
    --------
    >>> closest_ids("parse_split_7", ["parse_split_1", "parse_split_70", "sink_split_7"])
    ['parse_split_70', 'parse_split_1', 'sink_split_7']
    """
    ids: Any = known if isinstance(known, (pa.Array, pa.ChunkedArray)) else pa.array(list(known))
    ids = ids.drop_null()
    if len(ids) == 0:
        return []
    cap = 2000
    if len(ids) <= cap:
        cands = [str(x) for x in pc.unique(ids).to_pylist()]
    else:
        picked: list[str] = []
        for fn, cut in (
            (pc.starts_with, lambda k: query[:k]),
            (pc.ends_with, lambda k: query[-k:]),
        ):
            # the longest shared prefix (suffix) by bisection: a few passes, not one per
            # character (if k characters are shared by some id, fewer are too)
            lo, hi, best = 1, len(query), None
            while lo <= hi:
                k = (lo + hi) // 2
                hits = ids.filter(fn(ids, pattern=cut(k)))
                if len(hits):
                    lo, best = k + 1, hits
                else:
                    hi = k - 1
            if best is not None:
                picked.extend(str(x) for x in pc.unique(best).slice(0, cap).to_pylist())
        cands = list(dict.fromkeys(picked)) or [str(x) for x in ids.slice(0, cap).to_pylist()]
    return difflib.get_close_matches(query, cands, n=n, cutoff=0.0)


# ------------------------------------------------------------------ query arguments
def checked_keywords(fn: Callable[P, R]) -> Callable[P, R]:
    """Make an unknown keyword a ``TypeError`` that names the valid ones (Python's own
    message names only the wrong one).

    Examples
    --------
    >>> @checked_keywords
    ... def splits(*, stage=None, worker=None):
    ...     return stage
    >>> splits(stages="parse")
    Traceback (most recent call last):
    ...
    TypeError: splits(): no keyword 'stages' (did you mean 'stage'?); keywords: stage, worker
    """
    params = inspect.signature(fn).parameters
    valid = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    valid = [n for n in valid if n != "self"]

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        for key in kwargs:
            if key not in params:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(
                    f"{fn.__name__}(): no keyword {key!r}{hint}; keywords: {', '.join(valid)}"
                )
        return fn(*args, **kwargs)

    return call


def sql_literal(value: str) -> str:
    """A SQL string literal (quotes doubled), for filters pushed down to Lance.

    Examples
    --------
    >>> sql_literal("it's")
    "'it''s'"
    """
    return "'" + str(value).replace("'", "''") + "'"


def sql_in(column: str, values: list[str]) -> str:
    """``column IN ('a', 'b')``.

    Examples
    --------
    >>> sql_in("stage_id", ["parse", "sink"])
    "stage_id IN ('parse', 'sink')"
    """
    return f"{column} IN ({', '.join(sql_literal(v) for v in values)})"


def id_list(value: str | Iterable[str] | None, name: str) -> list[str] | None:
    """One id or several as a list (None stays None).

    Examples
    --------
    >>> id_list("parse", "stage"), id_list(("a", "b"), "stage"), id_list(None, "stage")
    (['parse'], ['a', 'b'], None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    try:
        values = list(value)
    except TypeError:
        raise TypeError(f"{name} must be a string or a list of strings, not {value!r}") from None
    if not values or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{name} must be a string or a non-empty list of strings, not {value!r}")
    return values


def as_utc(value: Any, name: str) -> pd.Timestamp:
    """A time argument (datetime, pandas Timestamp, ISO text, epoch seconds) in UTC.

    Examples
    --------
    >>> as_utc(1764331200, "since") == as_utc("2025-11-28 12:00", "since")
    True
    """
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = pd.Timestamp(value, unit="s", tz="UTC")
        stamp: Any = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{name}={value!r} is not a time: pass a datetime or epoch seconds"
        ) from exc
    if stamp is pd.NaT:
        raise ValueError(f"{name}={value!r} is not a time: pass a datetime or epoch seconds")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def in_window(times: pd.Series, since: Any, until: Any) -> pd.Series:
    """``since <= t < until`` for each time (a bound that is None is open).

    Examples
    --------
    >>> t = pd.Series(pd.to_datetime([10, 20, 30], unit="s", utc=True))
    >>> in_window(t, 20, None).tolist(), in_window(t, None, 20).tolist()
    ([False, True, True], [True, False, False])
    """
    keep = pd.Series(True, index=times.index)
    if since is not None:
        keep &= times >= as_utc(since, "since")
    if until is not None:
        keep &= times < as_utc(until, "until")
    return keep
