"""The stage DAG: an ipycytoscape graph laid out left → right (dagre, bundled by
ipycytoscape), nodes coloured by backpressure level, edges labelled with queue lag; and
the static SVG of the same graph is in ``report/static.py``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from solstice_inspect.analysis.layout import LEVEL_COLOURS, edge_label, layers, node_data

#: node size (px at 100 % zoom) and the layout's gaps: the canvas is sized from these
NODE_W, NODE_H = 190, 66
NODE_SEP, RANK_SEP, PADDING = 24, 80, 12


def node_style(*, width: int, height: int, font_size: int, background: str) -> dict[str, Any]:
    """The look every graph of ours gives its nodes (stage DAG, lineage): a labelled
    rounded box, white text on ``background``."""
    return {
        "selector": "node",
        "style": {
            "shape": "round-rectangle",
            "width": width,
            "height": height,
            "label": "data(label)",
            "text-wrap": "wrap",
            "text-valign": "center",
            "text-halign": "center",
            "font-size": font_size,
            "font-family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
            "color": "#fff",
            "background-color": background,
            "border-width": 1,
            "border-color": "#333",
        },
    }


CYTO_STYLE = [
    node_style(width=NODE_W, height=NODE_H, font_size=13, background=LEVEL_COLOURS["OK"]),
    {"selector": "node.low", "style": {"background-color": LEVEL_COLOURS["LOW"]}},
    {"selector": "node.high", "style": {"background-color": LEVEL_COLOURS["HIGH"]}},
    {"selector": "node:selected", "style": {"border-width": 3, "border-color": "#1f3b73"}},
    {
        "selector": "edge",
        "style": {
            "curve-style": "bezier",
            "target-arrow-shape": "triangle",
            "width": 2,
            "line-color": "#999",
            "target-arrow-color": "#999",
            "label": "data(label)",
            "font-size": 12,
            # no label background: a white box would glare in JupyterLab's dark theme;
            # a mid grey reads on both
            "color": "#8a8a8a",
            "text-margin-y": -10,
        },
    },
]


def canvas_height(stage_ids: list[str], edges: list[tuple[str, str]]) -> int:
    """Pixels the DAG needs: its tallest column of stages, no empty band around it.

    Examples
    --------
    >>> canvas_height(["a", "b", "c"], [("a", "b"), ("b", "c")])
    90
    >>> canvas_height(["a", "b", "c"], [("a", "b"), ("a", "c")])
    180
    """
    col = layers(stage_ids, edges)
    per_col: dict[int, int] = {}
    for c in col.values():
        per_col[c] = per_col.get(c, 0) + 1
    rows = max(per_col.values(), default=1)
    return rows * NODE_H + (rows - 1) * NODE_SEP + 2 * PADDING


def _node(row: dict[str, Any]) -> Any:
    from ipycytoscape import Node

    data, classes = node_data(row)
    return Node(data=data, classes=classes)


def _edge(up: str, down: str, row: dict[str, Any] | None) -> Any:
    from ipycytoscape import Edge

    label = edge_label((row or {}).get("queue_lag"))
    return Edge(data={"id": f"{up}->{down}", "source": up, "target": down, "label": label})


def dag_widget(summary: pd.DataFrame, edges: list[tuple[str, str]]) -> Any:
    """A ``CytoscapeWidget`` with one node per stage and one edge per DAG edge, as tall as
    the graph and never zoomed past 100 % (labels stay at their size)."""
    from ipycytoscape import CytoscapeWidget

    cyto = CytoscapeWidget()
    cyto.set_style(CYTO_STYLE)
    cyto.set_layout(name="dagre", rankDir="LR", nodeSep=NODE_SEP, rankSep=RANK_SEP, padding=PADDING)
    ids = list(summary["stage_id"])
    cyto.layout.height = f"{canvas_height(ids, edges)}px"
    cyto.layout.width = "100%"
    cyto.user_zooming_enabled = False
    cyto.min_zoom, cyto.max_zoom = 0.5, 1.0
    rows = {r["stage_id"]: r for r in summary.to_dict("records")}
    cyto.graph.add_nodes([_node(rows[s]) for s in ids])
    cyto.graph.add_edges(
        [_edge(up, down, rows.get(down)) for up, down in edges if up in rows and down in rows],
        directed=True,
    )
    return cyto


def add_stages(cyto: Any, summary: pd.DataFrame, edges: list[tuple[str, str]]) -> list[str]:
    """Add the stages (and their edges) that are not drawn yet; return their ids."""
    have = {n.data.get("id") for n in cyto.graph.nodes}
    rows = {r["stage_id"]: r for r in summary.to_dict("records")}
    new = [s for s in summary["stage_id"] if s not in have]
    if not new:
        return []
    cyto.graph.add_nodes([_node(rows[s]) for s in new])
    drawn = {(e.data.get("source"), e.data.get("target")) for e in cyto.graph.edges}
    more = [
        _edge(up, down, rows.get(down))
        for up, down in edges
        if up in rows and down in rows and (up, down) not in drawn
    ]
    if more:
        cyto.graph.add_edges(more, directed=True)
    cyto.layout.height = f"{canvas_height(list(rows), edges)}px"
    cyto.relayout()
    return new


def update_dag(cyto: Any, summary: pd.DataFrame) -> int:
    """Set the changed labels / colours of nodes and edges; return how many changed."""
    rows = {r["stage_id"]: r for r in summary.to_dict("records")}
    changed = 0
    for node in cyto.graph.nodes:
        row = rows.get(node.data.get("id"))
        if row is None:
            continue
        data, classes = node_data(row)
        if dict(node.data) != data:
            node.data = data
            changed += 1
        if node.classes != classes:
            node.classes = classes
            changed += 1
    for edge in cyto.graph.edges:
        row = rows.get(edge.data.get("target"))
        if row is None:
            continue
        label = edge_label(row.get("queue_lag"))
        if edge.data.get("label") != label:
            edge.data = {**dict(edge.data), "label": label}
            changed += 1
    return changed
