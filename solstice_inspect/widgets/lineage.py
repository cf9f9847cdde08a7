"""``lineage_view``: the splits around one split, as an ipycytoscape graph.

A bounded neighbourhood (≤ 300 nodes, :class:`~solstice_inspect.analysis.lineage.
Neighbourhood`): parents to the left, children to the right, a split's neighbours beyond
the fan-out folded into "+N more" nodes that open on click. Clicking a split shows,
under the graph, its processings (worker, times, records), the exceptions that name it,
its worker's log lines while it ran, the output rows sampled from it (``tel.sample``) and
the checkpoint that covered it.

The view reads through the :class:`~solstice_inspect.Job` it is given (a few filtered
scans per click), never Lance or Ray itself. Every string shown is escaped.
"""

from __future__ import annotations

import html
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd

from solstice_inspect.analysis.lineage import LineageGraph, Neighbourhood, Step, check_depth, pc
from solstice_inspect.analysis.query import checked_keywords, closest_ids, sql_in, sql_literal
from solstice_inspect.analysis.samples import SAMPLE_COLUMNS, sample_rows
from solstice_inspect.errors import NotFound
from solstice_inspect.widgets.dag import node_style
from solstice_inspect.widgets.guarded import GuardedView

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Job, Store

log = logging.getLogger("solstice_inspect.widgets")

#: what the graph needs of every lineage row (the rest is read per click)
GRAPH_COLUMNS = ["split_id", "parent_split_ids", "stage_id"]
MAX_NODES = 300
FANOUT = 20
#: a split's detail shows at most this many processings, log lines and exceptions each
DETAIL_ROWS = 50
#: a split's sampled rows show at most this many of their fields, each cut to this length
SAMPLE_FIELDS = 12
SAMPLE_CELL_CHARS = 200
LABEL_CHARS = 36
NODE_W, NODE_H = 220, 44

CYTO_STYLE = [
    node_style(width=NODE_W, height=NODE_H, font_size=11, background="#4c78a8"),
    {"selector": "node.origin", "style": {"background-color": "#f58518", "border-width": 2}},
    {"selector": "node.parent-only", "style": {"background-color": "#9e9e9e"}},
    {
        "selector": "node.more",
        "style": {
            "shape": "round-rectangle",
            "width": 120,
            "background-color": "#e0e0e0",
            "color": "#333",
            "border-style": "dashed",
        },
    },
    {"selector": "node:selected", "style": {"border-width": 3, "border-color": "#1f3b73"}},
    {
        "selector": "edge",
        "style": {
            "curve-style": "bezier",
            "target-arrow-shape": "triangle",
            "width": 1.5,
            "line-color": "#999",
            "target-arrow-color": "#999",
        },
    },
    {"selector": "edge.more", "style": {"line-style": "dashed"}},
]


def short(text: str, limit: int = LABEL_CHARS) -> str:
    """A label cut to ``limit`` characters (the middle elided: ids differ at both ends).

    Examples
    --------
    >>> short("enrich_parse_source_split_12345", 20)
    'enrich_pa…plit_12345'
    """
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[-(limit - 1 - head) :]}"


class LineageView(GuardedView, W.VBox):
    """The lineage graph of one split; build it with :func:`lineage_view`.

    Attributes
    ----------
    hood : Neighbourhood
        The splits and edges drawn, and the "+N more" nodes.
    cyto : ipycytoscape.CytoscapeWidget
        The graph.
    detail : ipywidgets.HTML
        The clicked split's detail (escaped HTML).
    selected : str
        The split whose detail is shown.
    """

    view_name = "lineage view"

    def __init__(
        self,
        job: Job,
        split_id: str,
        *,
        depth: int | None = 2,
        max_nodes: int = MAX_NODES,
        fanout: int = FANOUT,
    ) -> None:
        from ipycytoscape import CytoscapeWidget

        check_depth(depth)
        self.job = job
        self.graph = LineageGraph(job.table("lineage", columns=GRAPH_COLUMNS))
        if not self.graph.has(split_id):
            known = self.graph.known_ids()
            where = f"job {job.job_id!r} (attempt {job.attempt_id})"
            count = pc.count_distinct(known).as_py()
            raise NotFound("split", split_id, where, closest_ids(split_id, known), count)
        self.hood = Neighbourhood(
            self.graph, split_id, depth=depth, max_nodes=max_nodes, fanout=fanout
        )
        self._node_ids: dict[str, str] = {}  # split id → cytoscape node id
        self._splits: dict[str, str] = {}  # cytoscape node id → split id
        self.cyto = CytoscapeWidget()
        self.cyto.set_style(CYTO_STYLE)
        self.cyto.set_layout(name="dagre", rankDir="LR", nodeSep=12, rankSep=60, padding=10)
        self.cyto.layout.width = "100%"
        self.cyto.layout.height = "520px"
        self.cyto.min_zoom, self.cyto.max_zoom = 0.2, 1.5
        self._apply(self.hood.first)
        self.cyto.on("node", "click", self._on_click)
        self.title = W.HTML(self._title())
        self.selected = split_id
        self.detail = W.HTML(split_detail_html(split_detail(job, split_id)))
        self.errors = W.HTML("")
        super().__init__(children=[self.title, self.cyto, self.detail, self.errors])
        self.add_class("si-lineage")

    # ------------------------------------------------------------------ graph
    def _title(self) -> str:
        h = self.hood
        more = sum(len(m.hidden) for m in h.more.values())
        folded = f", {more:,} more folded" if more else ""
        return (
            f"<b>Lineage of {html.escape(h.origin)}</b> — {len(h.nodes)} splits drawn"
            f"{folded} (depth {h.depth if h.depth is not None else 'all'}, "
            f"at most {h.max_nodes} nodes)"
        )

    def _cid(self, split_id: str) -> str:
        cid = self._node_ids.get(split_id)
        if cid is None:
            cid = f"s{len(self._node_ids)}"
            self._node_ids[split_id] = cid
            self._splits[cid] = split_id
        return cid

    def _apply(self, step: Step) -> None:
        """Draw what one neighbourhood change added; relabel and remove "+N more"s."""
        from ipycytoscape import Edge, Node

        stages = self.graph.stages(step.nodes) if step.nodes else {}
        nodes = []
        for sid in step.nodes:
            stage = stages.get(sid)
            classes = "split origin" if sid == self.hood.origin else "split"
            if stage is None:
                classes += " parent-only"
            label = f"{short(sid)}\n{stage or 'not processed'}"
            data = {"id": self._cid(sid), "label": label, "split_id": sid, "stage": stage}
            nodes.append(Node(data=data, classes=classes))
        edges = []
        for parent, child in step.edges:
            a, b = self._cid(parent), self._cid(child)
            edges.append(Edge(data={"id": f"{a}->{b}", "source": a, "target": b}))
        for more in step.more:
            nodes.append(Node(data={"id": more.key, "label": more.label}, classes="more"))
            anchor = self._cid(more.anchor)
            a, b = (more.key, anchor) if more.direction == "up" else (anchor, more.key)
            edges.append(Edge(data={"id": f"{a}->{b}", "source": a, "target": b}, classes="more"))
        with self.cyto.hold_sync():
            for more in step.removed:
                self.cyto.graph.remove_node_by_id(more.key)
            if nodes:
                self.cyto.graph.add_nodes(nodes)
            if edges:
                self.cyto.graph.add_edges(edges, directed=True)
            for more in step.changed:
                for node in self.cyto.graph.nodes:
                    if node.data.get("id") == more.key:
                        node.data = {**dict(node.data), "label": more.label}

    # ------------------------------------------------------------------ interaction
    def _on_click(self, node: dict[str, Any]) -> None:
        """Ipycytoscape's click callback: ``node`` is the clicked element's JSON."""
        cid = str((node.get("data") or {}).get("id", ""))
        if cid in self.hood.more:
            self.expand(cid)
        elif cid in self._splits:
            self.select(self._splits[cid])

    def expand(self, key: str) -> None:
        """Open the next splits of a "+N more" node."""
        with self._guard("expanding"):
            self._apply(self.hood.expand(key))
            self.title.value = self._title()
            self.cyto.relayout()

    def select(self, split_id: str) -> None:
        """Show one split's detail under the graph."""
        with self._guard(f"reading split {split_id}"):
            self.selected = split_id
            self.detail.value = split_detail_html(split_detail(self.job, split_id))

    # ------------------------------------------------------------------ static
    def static_html(self) -> str:
        """The view without a kernel: the splits drawn by hop, and the detail shown."""
        by_hop: dict[int, list[str]] = {}
        for sid, hop in self.hood.nodes.items():
            by_hop.setdefault(hop, []).append(sid)
        stages = self.graph.stages(list(self.hood.nodes))
        rows = []
        for hop in sorted(by_hop):
            side = "parents" if hop < 0 else "children" if hop > 0 else "split"
            for sid in by_hop[hop]:
                rows.append(
                    f"<tr><td>{abs(hop)}</td><td>{side}</td><td>{html.escape(sid)}</td>"
                    f"<td>{html.escape(str(stages.get(sid) or ''))}</td></tr>"
                )
        more = "".join(
            f"<li>{html.escape(m.label)} {'parents' if m.direction == 'up' else 'children'} "
            f"of {html.escape(m.anchor)}</li>"
            for m in self.hood.more.values()
        )
        return (
            f"<div class='si-lineage-static'><p>{self._title()}</p>"
            "<table><thead><tr><th>hops</th><th></th><th>split</th><th>stage</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            + (f"<ul>{more}</ul>" if more else "")
            + f"{self.detail.value}</div>"
        )

    def _repr_html_(self) -> str:
        return self.static_html()


# ------------------------------------------------------------------ a split's detail
def split_detail(job: Job, split_id: str) -> dict[str, Any]:
    """What a click on a split shows: its processings, the exceptions naming it, its
    workers' log lines while it ran and the checkpoint that covered it (a few filtered
    scans through ``job``)."""
    lit = sql_literal(split_id)
    rows: Any = job.table("lineage", where=f"split_id = {lit}").to_pandas()
    rows = rows.sort_values("ts", kind="stable").reset_index(drop=True)
    duration: Any = pd.to_numeric(rows["processing_time"], errors="coerce")
    duration = duration.fillna(0.0)
    rows["end_time"] = rows["ts"]
    rows["start_time"] = rows["ts"] - pd.to_timedelta(duration, unit="s")
    parents = sorted({p for ps in rows["parent_split_ids"] if ps is not None for p in ps})
    stages = set(rows["stage_id"].dropna())
    exc = job.table("exceptions", where=sql_in("split_id", [split_id, *parents])).to_pandas()
    # an exception names this split by its id, or by a parent read by its stage
    exc = exc[(exc["split_id"] == split_id) | exc["stage_id"].isin(stages)]
    exc = exc.sort_values("ts", kind="stable").reset_index(drop=True)
    logs = []
    for row in rows.head(DETAIL_ROWS).itertuples():
        if not isinstance(row.worker_id, str):
            continue
        # ``until`` is exclusive: one microsecond past the split's end keeps its last line
        lines = job.table(
            "logs",
            where=f"worker_id = {sql_literal(row.worker_id)}",
            since=row.start_time,
            until=row.end_time + pd.Timedelta(microseconds=1),
        ).to_pandas()
        logs.append(lines.sort_values("ts", kind="stable"))
    log_rows = pd.concat(logs, ignore_index=True) if logs else pd.DataFrame()
    checkpoint = None
    if len(rows):
        stage = rows["stage_id"].iloc[-1]
        ended = rows["end_time"].max()
        if isinstance(stage, str):
            cps = job.table(
                "checkpoints", where=f"stage_id = {sql_literal(stage)} AND status = 'COMPLETED'"
            ).to_pandas()
            if len(cps):
                cps["done"] = cps["completion_time"].fillna(cps["ts"])
                after = cps[cps["done"] >= ended].sort_values("done", kind="stable")
                if len(after):
                    checkpoint = after.iloc[0].to_dict()
    samples = sample_rows(job.table("samples", where=f"split_id = {lit}"))
    return {
        "split_id": split_id,
        "rows": rows,
        "exceptions": exc,
        "logs": log_rows,
        "checkpoint": checkpoint,
        "samples": samples,
    }


def _cell(value: Any) -> str:
    if value is None or (not isinstance(value, (list, tuple)) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(df: pd.DataFrame, columns: list[str], labels: dict[str, str] | None = None) -> str:
    labels = labels or {}
    head = "".join(f"<th>{html.escape(labels.get(c, c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r[c]))}</td>" for c in columns) + "</tr>"
        for r in df.head(DETAIL_ROWS).to_dict("records")
    )
    more = f"<p>… {len(df) - DETAIL_ROWS:,} more</p>" if len(df) > DETAIL_ROWS else ""
    return (
        f"<table class='si-detail-table'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>{more}"
    )


def _samples_html(samples: pd.DataFrame) -> str:
    """The rows sampled from the split (``tel.sample``): their own fields, then who."""
    fields = [c for c in samples.columns if c not in SAMPLE_COLUMNS][:SAMPLE_FIELDS]
    more = len(samples.columns) - len(SAMPLE_COLUMNS) - len(fields)
    cut = bool(samples["truncated"].any())
    head = f"<h5>Sampled output rows ({len(samples):,})</h5>"
    notes = []
    if more > 0:
        notes.append(f"{more:,} more field(s) not shown: job.samples(split_id) has them all")
    if cut:
        notes.append("the producer's sample was cut (more rows or text than kept)")
    shown = samples.copy()
    for col in fields:  # long values stay readable: job.samples() has them whole
        shown[col] = [short_value(v) for v in shown[col]]
    table = _table(
        shown, [*fields, "stage_id", "worker_id"], {"stage_id": "stage", "worker_id": "worker"}
    )
    note = "".join(f"<p>{html.escape(n)}.</p>" for n in notes)
    return head + table + note


def short_value(value: Any, limit: int = SAMPLE_CELL_CHARS) -> Any:
    """A sampled value as shown in a cell: containers as JSON, text cut to ``limit``.

    Examples
    --------
    >>> short_value({"a": [1, 2]}), short_value("x" * 10, 4)
    ('{"a": [1, 2]}', 'xxx…')
    """
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def split_detail_html(detail: dict[str, Any]) -> str:
    """:func:`split_detail` as HTML; every value escaped.

    Examples
    --------
    >>> import pandas as pd
    >>> empty = pd.DataFrame()
    >>> html_ = split_detail_html({"split_id": "<script>x</script>", "rows": empty,
    ...     "exceptions": empty, "logs": empty, "checkpoint": None})
    >>> "<script>" in html_, "&lt;script&gt;x&lt;/script&gt;" in html_
    (False, True)
    """
    parts = [f"<div class='si-split-detail'><h4>Split {html.escape(detail['split_id'])}</h4>"]
    rows = detail["rows"]
    if len(rows):
        cols = ["stage_id", "worker_id", "start_time", "end_time", "processing_time"]
        cols += ["input_records", "output_records", "status"]
        parts.append(_table(rows, cols, {"processing_time": "duration s", "stage_id": "stage"}))
    else:
        parts.append("<p>No processing of this split was recorded (only named as a parent).</p>")
    exc = detail["exceptions"]
    parts.append(f"<h5>Exceptions ({len(exc):,})</h5>")
    if len(exc):
        cols = ["ts", "worker_id", "exception_type", "message", "fingerprint"]
        parts.append(_table(exc, cols, {"ts": "time", "worker_id": "worker"}))
    logs = detail["logs"]
    parts.append(f"<h5>Worker log lines during the split ({len(logs):,})</h5>")
    if len(logs):
        parts.append(_table(logs, ["ts", "worker_id", "level", "message"], {"ts": "time"}))
    samples = detail.get("samples")
    if samples is not None and len(samples):
        parts.append(_samples_html(samples))
    cp = detail["checkpoint"]
    if cp is None:
        parts.append("<p>Checkpoint: none completed for its stage after it ended (yet).</p>")
    else:
        parts.append(
            f"<p>Checkpoint: {html.escape(_cell(cp.get('checkpoint_id')))} (stage "
            f"{html.escape(_cell(cp.get('stage_id')))}), completed "
            f"{html.escape(_cell(cp.get('done')))}</p>"
        )
    parts.append("</div>")
    return "".join(parts)


@checked_keywords
def lineage_view(
    job_or_id: Job | str,
    split_id: str,
    depth: int | None = 2,
    *,
    store: Store | str | None = None,
    max_nodes: int = MAX_NODES,
    fanout: int = FANOUT,
) -> LineageView:
    """The lineage graph around one split: ``display(si.lineage_view(job, split_id))``.

    Parameters
    ----------
    job_or_id
        A :class:`~solstice_inspect.Job`, or a job id (its latest attempt).
    split_id
        The split at the centre.
    depth
        Hops drawn each way: parents to the left, children to the right (None: all).
    store
        For a job id: a :class:`Store` or path (default store when None).
    max_nodes
        At most this many nodes ("+N more" nodes included); 300 keeps the browser fast.
    fanout
        A split shows at most this many parents or children; the rest fold into a
        "+N more" node that shows ``fanout`` more per click.

    Returns
    -------
    LineageView
        An ipywidgets ``VBox``: the graph, then the clicked split's detail (worker,
        exceptions, log lines during the split, covering checkpoint).

    Raises
    ------
    NotFound
        No split ``split_id`` in the job, naming the closest known split ids.

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> store = si.connect(tempfile.mkdtemp())
    >>> with store.record("etl_001") as rec:
    ...     _ = rec.ingest([si.envelope("split_processed", "etl_001", "src_w0_a1b2c3",
    ...         1764331200.0, {"stage_id": "src", "split_id": "src_split_0"})])
    >>> view = si.lineage_view(store.job("etl_001"), "src_split_0")
    >>> sorted(view.hood.nodes)
    ['src_split_0']
    """
    from solstice_inspect.store import connect
    from solstice_inspect.store.reader import Job, Store

    if not isinstance(job_or_id, Job):
        st = store if isinstance(store, Store) else connect(store)
        job_or_id = st.job(str(job_or_id))
    started = time.perf_counter()
    view = LineageView(job_or_id, split_id, depth=depth, max_nodes=max_nodes, fanout=fanout)
    log.debug("lineage view built in %.3f s", time.perf_counter() - started)
    return view
