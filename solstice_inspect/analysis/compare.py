"""Runs side by side: per-stage deltas against a baseline, the configuration keys that
differ, and what changed beyond a threshold. Pure: per-run figures in
(:func:`~solstice_inspect.analysis.history.stage_figures`), DataFrames out.

Examples
--------
>>> import pandas as pd
>>> a = pd.DataFrame({"stage_id": ["parse"], "output_rate": [100.0]})
>>> b = pd.DataFrame({"stage_id": ["parse"], "output_rate": [60.0]})
>>> t = stage_table({"run 1": a, "run 2": b}, baseline="run 1", metrics=["output_rate"])
>>> t[["stage_id", "run", "output_rate", "output_rate_delta", "output_rate_rel"]]
  stage_id    run  output_rate  output_rate_delta  output_rate_rel
0    parse  run 1        100.0                0.0              0.0
1    parse  run 2         60.0              -40.0             -0.4
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "COMPARE_METRICS",
    "FLAG_COLUMNS",
    "FLAG_METRICS",
    "config_diff",
    "flags",
    "flatten",
    "relative",
    "stage_changes",
    "stage_table",
]

#: the per-stage figures compared, in table order
COMPARE_METRICS = [
    "input_records", "output_records", "input_rate", "output_rate", "duration_share",
    "selectivity", "exceptions", "backpressure_ratio", "skew_ratio",
]  # fmt: skip
#: the figures :func:`flags` looks at by default (a stage's input follows its upstream's
#: output: flagging both would say the same thing twice)
FLAG_METRICS = [
    "output_records", "output_rate", "duration_share", "selectivity", "exceptions",
    "backpressure_ratio", "skew_ratio",
]  # fmt: skip
FLAG_COLUMNS = [
    "stage_id", "run", "metric", "baseline_value", "value", "delta", "change", "message",
]  # fmt: skip
_LABELS = {
    "input_records": "records in", "output_records": "records out",
    "input_rate": "input rate", "output_rate": "output rate",
    "duration_share": "share of processing time", "selectivity": "selectivity",
    "exceptions": "exceptions", "backpressure_ratio": "backpressure",
    "skew_ratio": "skew",
}  # fmt: skip


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys (lists and other values kept whole).

    Examples
    --------
    >>> flatten({"io": {"batch": 64, "s3": {"region": "eu"}}, "seed": 7, "empty": {}})
    {'io.batch': 64, 'io.s3.region': 'eu', 'seed': 7, 'empty': {}}
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _text(value: Any) -> str | None:
    if value is _MISSING:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


_MISSING = object()


def config_diff(
    configs: Mapping[str, Mapping[str, Any]],
    *,
    all: bool = False,
) -> pd.DataFrame:
    """The configuration of each run, one row per (dotted) key.

    Parameters
    ----------
    configs
        Run label → its configuration (nested dicts allowed).
    all
        Every key; by default only those whose value differs between runs (a key one
        run lacks differs).

    Returns
    -------
    pandas.DataFrame
        ``key``, one text column per run (values as JSON, strings as they are; empty
        where the run has no such key), and ``differs``; sorted by key.
        ``attrs["keys"]``: how many keys there are in all.

    Examples
    --------
    >>> config_diff({"a": {"io": {"batch": 64}, "seed": 7},
    ...              "b": {"io": {"batch": 128}, "seed": 7}})
            key   a    b  differs
    0  io.batch  64  128     True
    """
    flat = {label: flatten(c) for label, c in configs.items()}
    keys = sorted({k for f in flat.values() for k in f})
    rows = []
    for key in keys:
        values = [f.get(key, _MISSING) for f in flat.values()]
        first = values[0]
        differs = any(
            (v is _MISSING) != (first is _MISSING) or (v is not _MISSING and v != first)
            or type(v) is not type(first)
            for v in values[1:]
        )  # fmt: skip
        if all or differs:
            rows.append([key, *(_text(v) for v in values), differs])
    df = pd.DataFrame(rows, columns=["key", *flat, "differs"])
    df["differs"] = df["differs"].astype(bool)
    df.attrs["keys"] = len(keys)
    return df


def relative(value: Any, base: Any) -> float:
    """(value − base) / |base|: −0.4 is 40 % lower; ±inf from 0; NaN if either is missing.

    Examples
    --------
    >>> relative(60, 100), relative(3, 0), relative(0, 0), relative(None, 1)
    (-0.4, inf, 0.0, nan)
    """
    try:
        v, b = float(value), float(base)
    except (TypeError, ValueError):
        return math.nan
    if math.isnan(v) or math.isnan(b):
        return math.nan
    if b == 0:
        return 0.0 if v == 0 else math.copysign(math.inf, v)
    return (v - b) / abs(b)


def stage_table(
    figures: Mapping[str, pd.DataFrame],
    *,
    baseline: str,
    order: Sequence[str] | None = None,
    metrics: Sequence[str] = COMPARE_METRICS,
) -> pd.DataFrame:
    """Per stage and run, each figure and its delta against the ``baseline`` run.

    Parameters
    ----------
    figures
        Run label → its per-stage figures (``stage_id`` and the ``metrics`` columns).
    baseline
        The label of the run the others are compared with.
    order
        Stages in display order (others follow, as first seen).
    metrics
        The figures compared.

    Returns
    -------
    pandas.DataFrame
        One row per (stage, run) where the run has the stage: ``stage_id``, ``run``,
        ``in_runs`` ("all", or the runs that have the stage), ``common``, then per
        metric its value, ``<metric>_delta`` (value − baseline's) and ``<metric>_rel``
        (:func:`relative`; NaN where the baseline lacks the stage).
    """
    if baseline not in figures:
        raise ValueError(f"baseline {baseline!r} is not one of the runs: {', '.join(figures)}")
    seen = [s for f in figures.values() for s in f["stage_id"]]
    stages = list(dict.fromkeys([*(s for s in order or () if s in set(seen)), *seen]))
    by_run = {  # plain dicts: a lookup per figure costs ns, not a pandas .loc
        label: {r["stage_id"]: r for r in f.to_dict("records")} for label, f in figures.items()
    }
    base = by_run[baseline]
    nan = math.nan
    rows = []
    for sid in stages:
        have = [label for label, f in by_run.items() if sid in f]
        common = len(have) == len(by_run)
        b_fig = base.get(sid, {})
        for label in have:
            row: dict[str, Any] = {
                "stage_id": sid, "run": label, "in_runs": "all" if common else ", ".join(have),
                "common": common,
            }  # fmt: skip
            fig = by_run[label][sid]
            for m in metrics:
                v = fig.get(m)
                v = nan if v is None else float(v)
                b = b_fig.get(m)
                b = nan if b is None else float(b)
                row[m] = v
                row[f"{m}_delta"] = v - b
                row[f"{m}_rel"] = relative(v, b)
            rows.append(row)
    cols = ["stage_id", "run", "in_runs", "common"]
    cols += [c for m in metrics for c in (m, f"{m}_delta", f"{m}_rel")]
    df = pd.DataFrame(rows, columns=cols)
    df["common"] = df["common"].astype(bool)
    return df


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "—"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"


def flags(
    table: pd.DataFrame,
    *,
    baseline: str,
    threshold: float = 0.10,
    metrics: Sequence[str] = FLAG_METRICS,
) -> pd.DataFrame:
    """The (stage, run, metric) whose value differs from the baseline's by at least
    ``threshold`` (relative), largest change first, with a sentence each; then the
    stages that are not in every run (metric ``"stage"``).

    Examples
    --------
    >>> t = pd.DataFrame({"stage_id": ["parse"] * 2, "run": ["r1", "r2"],
    ...     "output_rate": [100.0, 60.0], "output_rate_delta": [0.0, -40.0],
    ...     "output_rate_rel": [0.0, -0.4]})
    >>> flags(t, baseline="r1", metrics=["output_rate"])["message"].tolist()
    ['parse: output rate 40 % lower in r2 (60 vs 100)']
    """
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, not {threshold!r}")
    rows = []
    others = pd.DataFrame(table[table["run"] != baseline])
    for rec in others.to_dict("records"):
        for m in metrics:
            rel = rec.get(f"{m}_rel")
            if rel is None or pd.isna(rel) or abs(rel) < threshold:
                continue
            value, delta = float(rec[m]), float(rec[f"{m}_delta"])
            base = value - delta if math.isfinite(delta) else math.nan
            pct = "∞" if math.isinf(rel) else f"{abs(rel) * 100:.0f}"
            word = "higher" if rel > 0 else "lower"
            rows.append(
                {
                    "stage_id": rec["stage_id"], "run": rec["run"], "metric": m,
                    "baseline_value": base, "value": value, "delta": delta, "change": rel,
                    "message": f"{rec['stage_id']}: {_LABELS.get(m, m)} {pct} % {word} in "
                    f"{rec['run']} ({_fmt(value)} vs {_fmt(base)})",
                }
            )  # fmt: skip
    df = pd.DataFrame(rows, columns=FLAG_COLUMNS)
    if not df.empty:
        order = df["change"].abs().sort_values(ascending=False, kind="stable").index
        df = df.loc[order].reset_index(drop=True)
    if "common" in table:
        partial = pd.DataFrame(table[~table["common"].astype(bool)]).drop_duplicates("stage_id")
        extra = pd.DataFrame(
            {
                "stage_id": partial["stage_id"], "run": partial["in_runs"], "metric": "stage",
                "message": [f"{s}: only in {r}" for s, r in
                            zip(partial["stage_id"], partial["in_runs"])],
            },
            columns=FLAG_COLUMNS,
        )  # fmt: skip
        if not extra.empty:
            df = pd.concat([df, extra], ignore_index=True) if not df.empty else extra
    return df.reset_index(drop=True)


def stage_changes(
    table: pd.DataFrame, *, baseline: str, threshold: float = 0.10, metric: str = "output_rate"
) -> dict[str, tuple[str, str]]:
    """Per stage, how ``metric`` moved against the baseline, for colouring a DAG:
    ``(kind, text)`` with kind ``slower`` / ``faster`` (the largest change of any run
    beyond ``threshold``), ``partial`` (not in every run) or ``same``.

    Examples
    --------
    >>> t = pd.DataFrame({"stage_id": ["a", "a", "b"], "run": ["r1", "r2", "r1"],
    ...     "common": [True, True, False], "output_rate_rel": [0.0, -0.4, 0.0]})
    >>> stage_changes(t, baseline="r1")
    {'a': ('slower', 'output rate −40 % (r2)'), 'b': ('partial', 'only in r1')}
    """
    out: dict[str, tuple[str, str]] = {}
    for sid, g in table.groupby("stage_id", sort=False):
        if not bool(g["common"].all()):
            out[str(sid)] = ("partial", "only in " + ", ".join(str(r) for r in g["run"]))
            continue
        others = pd.DataFrame(g[g["run"] != baseline])
        rel = np.asarray(others[f"{metric}_rel"], dtype=float)
        finite = np.where(np.isnan(rel), 0.0, rel)
        if finite.size == 0 or np.abs(finite).max() < threshold:
            out[str(sid)] = ("same", "")
            continue
        i = int(np.abs(finite).argmax())
        r = finite[i]
        pct = "∞" if math.isinf(r) else f"{abs(r) * 100:.0f}"
        sign = "+" if r > 0 else "−"
        label = _LABELS.get(metric, metric)
        text = f"{label} {sign}{pct} % ({list(others['run'])[i]})"
        out[str(sid)] = ("faster" if r > 0 else "slower", text)
    return out
