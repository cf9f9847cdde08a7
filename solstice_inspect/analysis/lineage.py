"""Split lineage, pure: which split came from which, and what became of each split.

- :class:`LineageGraph` — parent and child indices over lineage rows, built with
  vectorised Arrow/numpy (no Python loop over the rows), so that a neighbourhood query on
  a million rows costs the size of the neighbourhood, not of the job;
- :func:`trace_edges` — the edges around one split, up (its ancestors), down (its
  descendants) or both, fan-in followed on every branch;
- :class:`Neighbourhood` — the bounded subgraph a lineage view draws (≤ ``max_nodes``
  nodes, the rest folded into "+N more" nodes that expand on demand);
What became of each split is :mod:`solstice_inspect.analysis.splits`; the shared query
helpers (closest ids, SQL literals) are :mod:`solstice_inspect.analysis.query`.

No I/O: everything takes Arrow tables or pandas frames of the stored rows.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as _pc

#: pyarrow.compute's functions are generated at import time: no static types to check
pc: Any = _pc

#: what :func:`trace_edges` needs of the lineage table
TRACE_COLUMNS = [
    "ts", "split_id", "parent_split_ids", "stage_id", "worker_id", "input_records",
    "output_records", "processing_time", "status",
]  # fmt: skip
#: the columns of :func:`trace_edges`' answer
EDGE_COLUMNS = [
    "split_id", "parent_split_id", "stage_id", "worker_id", "start_time", "end_time",
    "duration_s", "input_records", "output_records", "direction", "depth",
]  # fmt: skip
#: the columns of :func:`split_status`' answer
SPLIT_COLUMNS = [
    "split_id", "stage_id", "worker_id", "parent_split_ids", "start_time", "end_time",
    "duration_s", "input_records", "output_records", "status", "exception_fingerprint",
]  # fmt: skip
_TS = pa.timestamp("us", tz="UTC")
SPLIT_SCHEMA = pa.schema(
    [
        ("split_id", pa.string()),
        ("stage_id", pa.string()),
        ("worker_id", pa.string()),
        ("parent_split_ids", pa.list_(pa.string())),
        ("start_time", _TS),
        ("end_time", _TS),
        ("duration_s", pa.float64()),
        ("input_records", pa.int64()),
        ("output_records", pa.int64()),
        ("status", pa.string()),
        ("exception_fingerprint", pa.string()),
    ]
)
SPLIT_STATUSES = ("ok", "failed", "retried")
DIRECTIONS = ("up", "down", "both")
#: a lineage row the recorder stored for a split id already processed by its stage
DUPLICATE = "DUPLICATE"

_EMPTY = np.zeros(0, dtype=np.int64)


def _gather(offsets: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Positions ``offsets[k] .. offsets[k + 1]`` for every k of ``keys``, concatenated
    (a CSR lookup for many keys at once, without a Python loop).

    Examples
    --------
    >>> _gather(np.array([0, 2, 2, 5]), np.array([2, 0])).tolist()
    [2, 3, 4, 0, 1]
    """
    if len(keys) == 0:
        return _EMPTY
    starts = offsets[keys]
    lengths = offsets[keys + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return _EMPTY
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return shift + np.arange(total, dtype=np.int64)


def _offsets(keys: np.ndarray, n: int) -> np.ndarray:
    """CSR offsets of ``keys`` (each in ``0..n-1``) once sorted."""
    out = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n), out=out[1:])
    return out


class LineageGraph:
    """The split graph over lineage rows, walked with vectorised Arrow lookups.

    A lineage row is one processing of its split and gives one edge per parent. Nothing
    is indexed up front (hashing a million split ids costs more than a whole walk): each
    hop of a walk is one vectorised ``is_in`` over the split ids (up) or the parent ids
    (down) — a few milliseconds per million rows — so a neighbourhood query costs a few
    passes over the columns, with no Python loop over the rows.

    Parameters
    ----------
    table
        Lineage rows with at least ``split_id`` and ``parent_split_ids`` (other columns
        are kept, as :attr:`table`, to describe the rows found).

    Examples
    --------
    >>> import pyarrow as pa
    >>> g = LineageGraph(pa.table({"split_id": ["a", "b", "c"],
    ...                            "parent_split_ids": [[], ["a"], ["a", "b"]]}))
    >>> g.neighbours(["a"], "down")
    {'a': ['b', 'c']}
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        # the columns stay in their chunks (a store read has many): no copy of the ids
        self.split: Any = _chunked(table.column("split_id"))
        parents = _chunked(table.column("parent_split_ids"))
        #: per edge: the parent split id, and the row (the child's processing)
        self.parent: Any = pa.chunked_array([c.flatten() for c in parents.chunks], pa.string())
        starts = np.cumsum([0, *(len(c) for c in parents.chunks)])
        self.edge_row = np.concatenate(
            [
                np.asarray(pc.list_parent_indices(c), dtype=np.int64) + start
                for c, start in zip(parents.chunks, starts)
            ]
            or [_EMPTY]
        )
        #: the edges of row r are ``edge_offsets[r] .. edge_offsets[r + 1]``
        self.edge_offsets = _offsets(self.edge_row, table.num_rows)

    def __len__(self) -> int:
        return self.table.num_rows

    def has(self, split_id: str) -> bool:
        """Whether a row processed ``split_id`` or names it as a parent."""
        return bool(pc.any(pc.equal(self.split, split_id)).as_py()) or bool(
            pc.any(pc.equal(self.parent, split_id)).as_py()
        )

    def known_ids(self) -> pa.Array:
        """Every split id named (processed or parent), with repeats."""
        return pa.chunked_array([*self.split.chunks, *self.parent.chunks], pa.string())

    def rows(self, split_ids: Any) -> np.ndarray:
        """Rows (processings) of these splits, in row order."""
        mask = pc.is_in(self.split, value_set=_strings(split_ids))
        return np.flatnonzero(mask.fill_null(False).to_numpy())

    def step(self, split_ids: Any, direction: str) -> tuple[np.ndarray, Any]:
        """One hop from these splits: (edges, the splits reached through each edge)."""
        if direction == "up":
            edges = _gather(self.edge_offsets, self.rows(split_ids))
            return edges, _take(self.parent, edges)
        if direction == "down":
            mask = pc.is_in(self.parent, value_set=_strings(split_ids))
            edges = np.flatnonzero(mask.fill_null(False).to_numpy())
            return edges, _take(self.split, self.edge_row[edges])
        raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")

    def neighbours(self, split_ids: Any, direction: str) -> dict[str, list[str]]:
        """For each of these splits, its distinct parents (up) or children (down), in row
        order; one vectorised hop for all of them."""
        edges, reached = self.step(split_ids, direction)
        if direction == "up":
            source = _take(self.split, self.edge_row[edges])
        else:
            source = _take(self.parent, edges)
        src = source.to_numpy(zero_copy_only=False)
        pairs: Any = pd.DataFrame({"src": src, "dst": reached.to_numpy(zero_copy_only=False)})
        pairs = pairs.dropna()
        pairs = pairs[pairs["src"] != pairs["dst"]].drop_duplicates()
        dst = pairs["dst"].to_numpy()
        groups = pairs.groupby("src", sort=False).indices
        return {str(k): [str(x) for x in dst[i]] for k, i in groups.items()}

    def stages(self, split_ids: Any) -> dict[str, str | None]:
        """The stage of each of these splits (of its first row; missing: only a parent)."""
        rows = self.rows(split_ids)
        ids = _take(self.split, rows).to_pylist()
        stage = _take(self.table.column("stage_id"), rows).to_pylist()
        out: dict[str, str | None] = {}
        for i, s in zip(ids, stage):
            out.setdefault(i, s)
        return out

    def walk(
        self, split_id: str, direction: str, depth: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Edges within ``depth`` hops of ``split_id``, one direction ("up" or "down").

        Returns ``(edges, hops)``: edge numbers, and for each the hop count from the start
        (1: its own parents or children). Breadth first, one vectorised step per hop;
        every split is expanded once, so fan-in (and a cycle in bad data) is safe.
        """
        seen = {split_id}
        frontier = [split_id]
        found: list[np.ndarray] = []
        hops: list[np.ndarray] = []
        hop = 0
        while frontier and (depth is None or hop < depth):
            hop += 1
            edges, reached = self.step(frontier, direction)
            found.append(edges)
            hops.append(np.full(len(edges), hop, dtype=np.int64))
            frontier = [x for x in pc.unique(reached.drop_null()).to_pylist() if x not in seen]
            seen.update(frontier)
        if not found:
            return _EMPTY, _EMPTY
        return np.concatenate(found), np.concatenate(hops)


def _chunked(column: Any) -> pa.ChunkedArray:
    return column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])


def _strings(values: Any) -> Any:
    return (
        values
        if isinstance(values, (pa.Array, pa.ChunkedArray))
        else pa.array(list(values), pa.string())
    )


def _take(column: Any, rows: Any) -> Any:
    """``column.take(rows)``, chunk by chunk.

    pyarrow's take on a column of many chunks (a store read has one per fragment batch)
    can concatenate them first, which costs the whole column for a handful of rows.

    Examples
    --------
    >>> col = pa.chunked_array([["a", "b"], ["c"], ["d", "e"]])
    >>> _take(col, np.array([4, 0, 2])).to_pylist()
    ['e', 'a', 'c']
    """
    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(column, pa.Array):
        return column.take(pa.array(rows, pa.int64()))
    if len(rows) == 0 or column.num_chunks == 0:
        return pa.array([], column.type)
    bounds = np.cumsum([0, *(len(c) for c in column.chunks)])
    which = np.searchsorted(bounds, rows, side="right") - 1
    order = np.argsort(which, kind="stable")
    parts = [
        column.chunk(int(k)).take(pa.array(rows[which == k] - bounds[k], pa.int64()))
        for k in np.unique(which)
    ]
    grouped = pa.concat_arrays(parts)
    return grouped.take(pa.array(np.argsort(order, kind="stable"), pa.int64()))


def _take_rows(table: pa.Table, rows: Any, columns: list[str]) -> pa.Table:
    """These rows of these columns (see :func:`_take`)."""
    return pa.table({c: _take(table.column(c), rows) for c in columns})


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        close = difflib.get_close_matches(str(direction), DIRECTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}{hint}"
        )


def check_depth(depth: int | None) -> None:
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ValueError(f"depth must be a whole number ≥ 0 or None (unbounded), not {depth!r}")


def _times(table: pa.Table, rows: np.ndarray) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(start_time, end_time, duration_s) of these rows: a row's ``ts`` is when its split
    ended; it started ``processing_time`` seconds before."""
    end = pd.Series(_take(table.column("ts"), rows).to_pandas())
    duration = pd.Series(_take(table.column("processing_time"), rows).to_pandas(), dtype="float64")
    start = end - pd.to_timedelta(duration, unit="s")
    return start, end, duration


def trace_edges(
    table: pa.Table | LineageGraph,
    split_id: str,
    *,
    direction: str = "up",
    depth: int | None = None,
) -> pd.DataFrame:
    """The lineage edges around one split, as a DataFrame.

    Parameters
    ----------
    table
        Lineage rows with the columns of :data:`TRACE_COLUMNS` (or a :class:`LineageGraph`
        built over them, to ask many questions of one read).
    split_id
        The split to start from; it must be a processed split or a named parent.
    direction
        ``"up"``: its parents, their parents…; ``"down"``: the splits made from it, and
        so on; ``"both"``: the two.
    depth
        At most this many hops (None: all the way).

    Returns
    -------
    pandas.DataFrame
        One row per edge (a processing of ``split_id`` that read ``parent_split_id``):
        :data:`EDGE_COLUMNS`. Stage, worker, times and records are those of the child's
        processing; ``direction`` says which walk found the edge and ``depth`` its hop
        count from the start (1: adjacent). A split processed twice gives an edge per
        processing. Up edges first, then down, each by depth then end time.

    Raises
    ------
    KeyError
        When no row names ``split_id`` (callers turn it into a NotFound with the
        closest ids).

    Examples
    --------
    >>> import pyarrow as pa
    >>> rows = pa.table({"ts": pa.array([1, 2, 3], pa.timestamp("s", tz="UTC")),
    ...                  "split_id": ["a", "b", "c"],
    ...                  "parent_split_ids": [[], [], ["a", "b"]],
    ...                  "stage_id": ["src", "src", "join"], "worker_id": ["w0", "w1", "w2"],
    ...                  "input_records": [5, 5, 10], "output_records": [5, 5, 8],
    ...                  "processing_time": [0.5, 0.5, 1.0], "status": ["PROCESSED"] * 3})
    >>> trace_edges(rows, "c")[["split_id", "parent_split_id", "depth"]].values.tolist()
    [['c', 'a', 1], ['c', 'b', 1]]
    """
    check_direction(direction)
    check_depth(depth)
    graph = table if isinstance(table, LineageGraph) else LineageGraph(table)
    if not graph.has(split_id):
        raise KeyError(split_id)
    parts = []
    for way in ["up", "down"] if direction == "both" else [direction]:
        edges, hops = graph.walk(split_id, way, depth)
        parts.append((way, edges, hops))
    edges = np.concatenate([e for _, e, _ in parts])
    hops = np.concatenate([h for _, _, h in parts])
    ways = np.concatenate([np.full(len(e), w, dtype=object) for w, e, _ in parts])
    rows = graph.edge_row[edges]
    t = graph.table
    start, end, duration = _times(t, rows)

    def col(name: str) -> Any:
        return _take(t.column(name), rows).to_pandas()

    out = pd.DataFrame(
        {
            "split_id": col("split_id"),
            "parent_split_id": _take(graph.parent, edges).to_pandas(),
            "stage_id": col("stage_id"),
            "worker_id": col("worker_id"),
            "start_time": start,
            "end_time": end,
            "duration_s": duration,
            "input_records": pd.array(col("input_records"), dtype="Int64"),
            "output_records": pd.array(col("output_records"), dtype="Int64"),
            "direction": ways,
            "depth": hops,
        },
        columns=EDGE_COLUMNS,
    )
    out["_down"] = out["direction"] != "up"
    keys = ["_down", "depth", "end_time", "split_id", "parent_split_id"]
    out = out.sort_values(keys, kind="stable")
    return out.drop(columns="_down").reset_index(drop=True)


# ------------------------------------------------------------------ neighbourhoods
@dataclass
class More:
    """A "+N more" node: splits next to ``anchor`` not drawn yet (in ``direction``)."""

    key: str
    anchor: str
    direction: str
    hidden: list[str]
    hops_left: int | None

    @property
    def label(self) -> str:
        return f"+{len(self.hidden):,} more"


@dataclass
class Step:
    """What one :class:`Neighbourhood` change added, relabelled and removed."""

    nodes: list[str] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)  # (parent, child)
    more: list[More] = field(default_factory=list)  # new "+N more" nodes
    changed: list[More] = field(default_factory=list)  # "+N more" nodes with fewer now
    removed: list[More] = field(default_factory=list)  # "+N more" nodes now empty


class Neighbourhood:
    """The bounded subgraph around one split that a lineage view draws.

    At most ``max_nodes`` nodes are drawn, "+N more" nodes included. From the origin it
    walks ``depth`` hops up (parents) and down (children), breadth first, one vectorised
    hop per level; a split's neighbours beyond ``fanout`` (or beyond the budget) fold
    into one "+N more" node that :meth:`expand` opens, ``fanout`` at a time, while the
    budget lasts.

    Examples
    --------
    >>> import pyarrow as pa
    >>> kids = [f"k{i}" for i in range(50)]
    >>> g = LineageGraph(pa.table({"split_id": ["src", *kids],
    ...                            "parent_split_ids": [[]] + [["src"]] * 50}))
    >>> hood = Neighbourhood(g, "src", depth=2, fanout=10)
    >>> len(hood.nodes), [m.label for m in hood.more.values()]
    (11, ['+40 more'])
    >>> step = hood.expand("m0")
    >>> len(hood.nodes), step.changed[0].label
    (21, '+30 more')
    """

    def __init__(
        self,
        graph: LineageGraph,
        origin: str,
        *,
        depth: int | None = 2,
        max_nodes: int = 300,
        fanout: int = 20,
    ) -> None:
        check_depth(depth)
        if max_nodes < 2 or fanout < 1:
            raise ValueError("max_nodes must be ≥ 2 and fanout ≥ 1")
        self.graph = graph
        self.origin = origin
        self.depth = depth
        self.max_nodes = max_nodes
        self.fanout = fanout
        self.nodes: dict[str, int] = {origin: 0}  # split id → hops (up < 0 < down)
        self.edges: set[tuple[str, str]] = set()
        self.more: dict[str, More] = {}
        self._more_seq = 0
        self.first = Step(nodes=[origin])
        self._walk([(origin, "up", depth), (origin, "down", depth)], self.first)

    @property
    def size(self) -> int:
        """Nodes drawn, "+N more" nodes included."""
        return len(self.nodes) + len(self.more)

    def _walk(self, level: list[tuple[str, str, int | None]], step: Step) -> None:
        """Breadth first from ``level`` ((split, direction, hops left) items)."""
        while level:
            nxt: list[tuple[str, str, int | None]] = []
            for way in ("up", "down"):
                todo = [(n, h) for n, d, h in level if d == way and (h is None or h > 0)]
                if not todo or self.size >= self.max_nodes:
                    continue
                found = self.graph.neighbours([n for n, _ in todo], way)
                for node, hops_left in todo:
                    near = found.get(node, [])
                    for other in [x for x in near if x in self.nodes]:  # fan-in, diamonds
                        self._add_edge(node, other, way, step)
                    new = [x for x in near if x not in self.nodes]
                    if new:
                        nxt.extend(self._place(node, way, new, hops_left, step))
            level = nxt

    def _place(
        self,
        node: str,
        way: str,
        new: list[str],
        hops_left: int | None,
        step: Step,
        more: More | None = None,
    ) -> list[tuple[str, str, int | None]]:
        """Draw up to ``fanout`` of ``new`` (within the budget); fold the rest into a
        "+N more" node (``more``, when expanding one). Returns the next walk items."""
        room = self.max_nodes - self.size + (1 if more is not None else 0)
        fits = len(new) if len(new) <= min(self.fanout, room) else min(self.fanout, room - 1)
        fits = max(fits, 0)
        sign = -1 if way == "up" else 1
        base = abs(self.nodes.get(node, 0))
        left = None if hops_left is None else hops_left - 1
        for other in new[:fits]:
            self.nodes[other] = sign * (base + 1)
            step.nodes.append(other)
            self._add_edge(node, other, way, step)
        rest = new[fits:]
        if more is not None:
            more.hidden = rest
            if rest:
                step.changed.append(more)
            else:
                del self.more[more.key]
                step.removed.append(more)
        elif rest and self.size < self.max_nodes:
            folded = More(f"m{self._more_seq}", node, way, rest, hops_left)
            self._more_seq += 1
            self.more[folded.key] = folded
            step.more.append(folded)
        return [(other, way, left) for other in new[:fits]]

    def _add_edge(self, node: str, other: str, way: str, step: Step) -> None:
        edge = (other, node) if way == "up" else (node, other)
        if edge not in self.edges:
            self.edges.add(edge)
            step.edges.append(edge)

    def expand(self, key: str) -> Step:
        """Draw the next ``fanout`` splits of a "+N more" node (while the budget lasts)."""
        if key not in self.more:
            raise KeyError(f"no '+N more' node {key!r}; open: {', '.join(self.more) or 'none'}")
        more = self.more[key]
        step = Step()
        hidden = [x for x in more.hidden if x not in self.nodes]
        nxt = self._place(more.anchor, more.direction, hidden, more.hops_left, step, more)
        self._walk(nxt, step)
        return step
