"""Pure helpers for drawing a stage DAG: node labels and colours, edge labels, and a
left → right layering. Shared by the live graph (``widgets/dag.py``) and the static SVG
(``report/static.py``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["LEVEL_COLOURS", "edge_label", "fmt_count", "layers", "node_data"]

LEVEL_COLOURS = {"OK": "#2e7d32", "LOW": "#e07b00", "HIGH": "#c62828"}


def fmt_count(v: Any) -> str:
    """A short count: 1234, 12.3k, 4.5M; "—" for nothing.

    Examples
    --------
    >>> fmt_count(1234), fmt_count(12_345), fmt_count(None)
    ('1234', '12.3k', '—')
    """
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "—"
    v = float(v)
    for bound, scale, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(v) >= bound:
            return f"{v / scale:.1f}{suffix}"
    return f"{v:.0f}" if v == int(v) else f"{v:.1f}"


def node_data(stage: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Cytoscape ``data`` and ``classes`` of one stage from its summary row.

    Examples
    --------
    >>> data, classes = node_data({"stage_id": "parse", "operator_type": "JsonParse",
    ...     "workers_alive": 2, "max_parallelism": 4, "output_rate_now": 1234.0,
    ...     "backpressure_level": "HIGH"})
    >>> data["label"], classes
    ('parse · JsonParse\\n2/4 workers\\n1234 rec/s', 'high')
    >>> node_data({"stage_id": "sink", "operator_type": float("nan")})[0]["label"][:5]
    'sink\\n'
    """
    level = str(stage.get("backpressure_level") or "OK")
    op = stage.get("operator_type")
    # a stage that never declared its operator (NaN from pandas) shows its id alone
    known = isinstance(op, str) and op != ""
    name = f"{stage['stage_id']} · {op}" if known else str(stage["stage_id"])
    label = (
        f"{name}\n"
        f"{fmt_count(stage.get('workers_alive'))}/"
        f"{fmt_count(stage.get('max_parallelism'))} workers\n"
        f"{fmt_count(stage.get('display_rate', stage.get('output_rate_now')))} rec/s"
    )
    return {"id": str(stage["stage_id"]), "label": label, "level": level}, level.lower()


def edge_label(lag: Any) -> str:
    """The label of an edge into a stage with this input queue lag."""
    return f"lag {fmt_count(lag)}"


def layers(stage_ids: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Column of each stage in a left → right layout: the longest path from a source.

    Examples
    --------
    >>> layers(["a", "b", "c"], [("a", "b"), ("a", "c"), ("b", "c")])
    {'a': 0, 'b': 1, 'c': 2}
    """
    depth = dict.fromkeys(stage_ids, 0)
    for _ in range(len(stage_ids)):
        moved = False
        for up, down in edges:
            if up in depth and down in depth and depth[down] < depth[up] + 1:
                depth[down] = depth[up] + 1
                moved = True
        if not moved:
            break
    return depth
