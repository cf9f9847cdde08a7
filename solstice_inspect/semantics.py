"""Solstice's rules for what a job's figures mean, in one place (DESIGN §3).

The recorder's catalog row and every view's model (:mod:`solstice_inspect.analysis.snapshot`)
both count a job's records through these functions, so the two can never disagree:

- job records in = what the **source** stages produced (their output);
- job records out = what the **sink** stages wrote: a sink's ``output_records``, or its
  ``input_records`` when it reports no output — real Solstice sinks emit nothing
  downstream and report ``output_records = 0``;
- never a sum across stages.

It also holds the exception fingerprint (type + normalised message + top frames), which
the recorder stores with every exception and the views group by.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

__all__ = [
    "fingerprint",
    "job_records",
    "normalise_message",
    "sink_written",
    "sources_and_sinks",
    "top_frames",
]


def sources_and_sinks(
    stage_ids: Iterable[str], dag_edges: Mapping[str, Iterable[str]] | None
) -> tuple[list[str] | None, list[str] | None]:
    """Source and sink stages of a DAG (``dag_edges`` maps upstream → downstream).

    With no edges, a single stage is both source and sink; several stages without edges
    are ambiguous: ``(None, None)``.

    Examples
    --------
    >>> sources_and_sinks(["read", "parse", "write"], {"read": ["parse"], "parse": ["write"]})
    (['read'], ['write'])
    >>> sources_and_sinks(["only"], {}), sources_and_sinks(["a", "b"], None)
    ((['only'], ['only']), (None, None))
    """
    ids = list(dict.fromkeys(stage_ids))
    edges = {str(k): [str(d) for d in v] for k, v in (dag_edges or {}).items()}
    for up, downs in edges.items():
        ids.extend(s for s in (up, *downs) if s not in ids)
    if not edges:
        return (list(ids), list(ids)) if len(ids) == 1 else (None, None)
    downstream = {d for downs in edges.values() for d in downs}
    sources = [s for s in ids if s not in downstream]
    sinks = [s for s in ids if not edges.get(s)]
    return sources, sinks


def sink_written(input_records: int | float | None, output_records: int | float | None) -> float:
    """What a sink stage wrote: its output, or its input when it reports no output.

    Examples
    --------
    >>> sink_written(1000, 0), sink_written(1000, 990), sink_written(None, None)
    (1000, 990, 0)
    """
    out = output_records or 0
    return out if out else (input_records or 0)


def job_records(
    totals: Mapping[str, tuple[int | float, int | float]],
    sources: Iterable[str] | None,
    sinks: Iterable[str] | None,
) -> tuple[int | float | None, int | float | None]:
    """Job records (in, out) from per-stage ``(input, output)`` totals.

    ``None`` when the sources (or sinks) are unknown.

    Examples
    --------
    >>> totals = {"read": (0, 500), "parse": (500, 480), "write": (480, 0)}
    >>> job_records(totals, ["read"], ["write"])
    (500, 480)
    """
    rec_in = rec_out = None
    if sources is not None:
        rec_in = sum(totals[s][1] for s in sources if s in totals)
    if sinks is not None:
        rec_out = sum(sink_written(*totals[s]) for s in sinks if s in totals)
    return rec_in, rec_out


# ---------------------------------------------------------------------- fingerprints
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
    r"""The innermost ``n`` frames of a Python traceback as ``file:function``.

    Examples
    --------
    >>> top_frames('File "/a/b.py", line 3, in run\n  File "/a/c.py", line 9, in parse')
    ['b.py:run', 'c.py:parse']
    """
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
