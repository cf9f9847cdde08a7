"""The stage DAG: an ipycytoscape graph laid out left → right (dagre, bundled by
ipycytoscape), nodes coloured by backpressure level, edges labelled with queue lag; and
the same picture as a static SVG for the no-kernel fallback.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from solstice_inspect.report.summary import esc

LEVEL_COLOURS = {"OK": "#2ca02c", "LOW": "#ff9f1c", "HIGH": "#d62728"}

CYTO_STYLE = [
    {
        "selector": "node",
        "style": {
            "shape": "round-rectangle",
            "width": 150,
            "height": 56,
            "label": "data(label)",
            "text-wrap": "wrap",
            "text-valign": "center",
            "text-halign": "center",
            "font-size": 10,
            "color": "#fff",
            "background-color": LEVEL_COLOURS["OK"],
            "border-width": 1,
            "border-color": "#333",
        },
    },
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
            "font-size": 9,
            "text-background-color": "#fff",
            "text-background-opacity": 1,
        },
    },
]


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "—"
    v = float(v)
    for bound, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if abs(v) >= bound:
            return f"{v / bound:.1f}{suffix}"
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
    """
    level = str(stage.get("backpressure_level") or "OK")
    label = (
        f"{stage['stage_id']} · {stage.get('operator_type') or '?'}\n"
        f"{_fmt(stage.get('workers_alive'))}/{_fmt(stage.get('max_parallelism'))} workers\n"
        f"{_fmt(stage.get('display_rate', stage.get('output_rate_now')))} rec/s"
    )
    return {"id": str(stage["stage_id"]), "label": label, "level": level}, level.lower()


def edge_label(lag: Any) -> str:
    """The label of an edge into a stage with this input queue lag."""
    return f"lag {_fmt(lag)}"


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


def dag_svg(summary: pd.DataFrame, edges: list[tuple[str, str]]) -> str:
    """The DAG as a standalone SVG string (escaped labels), for static HTML.

    Examples
    --------
    >>> import pandas as pd
    >>> svg = dag_svg(pd.DataFrame({"stage_id": ["a", "<b>"], "backpressure_level": "OK"}),
    ...               [("a", "<b>")])
    >>> svg.startswith("<svg") and "&lt;b&gt;" in svg and "<b>" not in svg
    True
    """
    ids = list(summary["stage_id"])
    rows = {r["stage_id"]: r for r in summary.to_dict("records")}
    col = layers(ids, edges)
    per_col: dict[int, int] = {}
    pos = {}
    for s in ids:
        c = col[s]
        pos[s] = (20 + c * 200, 20 + per_col.get(c, 0) * 80)
        per_col[c] = per_col.get(c, 0) + 1
    width = 20 + (max(col.values(), default=0) + 1) * 200
    height = 20 + max(per_col.values(), default=1) * 80
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        "font-family='sans-serif' font-size='10' class='si-dag-svg'>",
        "<defs><marker id='si-arrow' markerWidth='8' markerHeight='8' refX='8' refY='4' "
        "orient='auto'><path d='M0,0 L8,4 L0,8 z' fill='#999'/></marker></defs>",
    ]
    for up, down in edges:
        if up not in pos or down not in pos:
            continue
        (x1, y1), (x2, y2) = pos[up], pos[down]
        parts.append(
            f"<line x1='{x1 + 150}' y1='{y1 + 28}' x2='{x2}' y2='{y2 + 28}' stroke='#999' "
            "stroke-width='2' marker-end='url(#si-arrow)'/>"
            f"<text x='{(x1 + 150 + x2) / 2}' y='{(y1 + y2) / 2 + 22}' text-anchor='middle'>"
            f"{esc(edge_label(rows[down].get('queue_lag')))}</text>"
        )
    for s in ids:
        x, y = pos[s]
        data, _ = node_data(rows[s])
        colour = LEVEL_COLOURS.get(data["level"], "#2ca02c")
        parts.append(
            f"<rect x='{x}' y='{y}' width='150' height='56' rx='6' fill='{colour}' stroke='#333'/>"
        )
        for i, line in enumerate(data["label"].split("\n")):
            parts.append(
                f"<text x='{x + 75}' y='{y + 16 + i * 13}' fill='#fff' text-anchor='middle'>"
                f"{esc(line)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def dag_widget(summary: pd.DataFrame, edges: list[tuple[str, str]]) -> Any:
    """A ``CytoscapeWidget`` with one node per stage and one edge per DAG edge."""
    from ipycytoscape import CytoscapeWidget, Edge, Node

    cyto = CytoscapeWidget()
    cyto.set_style(CYTO_STYLE)
    cyto.set_layout(name="dagre", rankDir="LR", nodeSep=20, rankSep=70, padding=10)
    cyto.layout.height = "260px"
    cyto.user_zooming_enabled = False
    cyto.min_zoom, cyto.max_zoom = 0.3, 2.0
    rows = {r["stage_id"]: r for r in summary.to_dict("records")}
    nodes = []
    for s in summary["stage_id"]:
        data, classes = node_data(rows[s])
        nodes.append(Node(data=data, classes=classes))
    cyto.graph.add_nodes(nodes)
    cyto.graph.add_edges(
        [
            Edge(
                data={
                    "id": f"{up}->{down}",
                    "source": up,
                    "target": down,
                    "label": edge_label(rows.get(down, {}).get("queue_lag")),
                }
            )
            for up, down in edges
            if up in rows and down in rows
        ],
        directed=True,
    )
    return cyto


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
