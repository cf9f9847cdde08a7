"""``si.compare``: 2–10 runs side by side.

A widget (an ipywidgets ``VBox``): the runs, the largest changes, the stage DAG coloured
by the change of each stage's output rate, per-stage output-rate charts with one line per
run aligned on time since the run's start (Vega-Lite specs rendered by the charts bundle
of the job monitor), the per-stage delta table and the configuration keys that differ
(a paged :class:`~solstice_inspect.widgets.tables.Table` each; a toggle shows every key).
:meth:`Comparison.table`, :meth:`Comparison.config_diff` and :meth:`Comparison.flags` give
the same as DataFrames; without a kernel it shows as static HTML.

The figures are computed in :mod:`solstice_inspect.analysis.compare`; each run is read
once, narrowly (:func:`solstice_inspect.analysis.history.read_run`).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import numpy as np
import pandas as pd

from solstice_inspect.analysis import compare as cmp
from solstice_inspect.analysis.downsample import MAX_POINTS, minmax_indices
from solstice_inspect.analysis.history import RunData, read_run, resolve_runs, stage_order
from solstice_inspect.analysis.layout import layers
from solstice_inspect.report.static import STYLE, esc, table_html
from solstice_inspect.report.svgcharts import line_chart_svg
from solstice_inspect.widgets.guarded import GuardedView
from solstice_inspect.widgets.tables import Table
from solstice_inspect.widgets.views import ChartsView

if TYPE_CHECKING:
    import altair as alt

    from solstice_inspect.store.reader import Store

log = logging.getLogger("solstice_inspect.widgets")

__all__ = ["Comparison", "compare"]

MIN_RUNS, MAX_RUNS = 2, 10
#: points of all the charts' series together (≤ MAX_POINTS per series): the state stays small
CHART_POINTS = 12_000
#: at most this many stage charts (the pipeline's first stages)
MAX_CHARTS = 12
CHANGE_COLOURS = {"slower": "#c62828", "faster": "#2e7d32", "same": "#607d8b", "partial": "#8e6cc0"}
TABLE_COLUMNS = [
    "stage_id", "run", "in_runs", "output_records", "output_rate", "output_rate_rel",
    "duration_share", "selectivity", "exceptions", "backpressure_ratio", "skew_ratio",
]  # fmt: skip


# ------------------------------------------------------------------ charts
def rate_spec(stage: str, runs: list[str]) -> dict[str, Any]:
    """The Vega-Lite description of one stage's chart: output rate per run against the
    seconds since each run's start (rows ``{t: ms since start, stage: run, v}``).

    Examples
    --------
    >>> rate_spec("parse", ["etl #1", "etl #2"])["encoding"]["color"]["scale"]
    {'domain': ['etl #1', 'etl #2']}
    """
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "title": f"{stage}: output rate",
        "width": 360,
        "height": 160,
        "data": {"name": "series"},
        "transform": [{"calculate": "datum.t / 1000", "as": "elapsed"}],
        "mark": {"type": "line", "interpolate": "linear", "strokeWidth": 1.5},
        "encoding": {
            "x": {"field": "elapsed", "type": "quantitative", "title": "seconds since start",
                  "axis": {"labelOverlap": True}},
            "y": {"field": "v", "type": "quantitative", "title": "records / s",
                  "axis": {"format": "~s"}},
            "color": {"field": "stage", "type": "nominal", "title": "run",
                      "scale": {"domain": list(runs)}},
            "tooltip": [
                {"field": "stage", "type": "nominal", "title": "run"},
                {"field": "elapsed", "type": "quantitative", "title": "s", "format": ",.1f"},
                {"field": "v", "type": "quantitative", "title": "rec/s", "format": ",.2f"},
            ],
        },
        "autosize": {"type": "pad", "resize": True},
    }  # fmt: skip


Series = dict[str, tuple[np.ndarray, np.ndarray]]


def rate_series(run: RunData, start: float) -> Series:
    """Per stage of one run, ``(elapsed, v)`` sorted by time: seconds since ``start`` and
    its output rate (a stage that reports no output, its input rate); in numpy, one pass
    over the run's windows."""
    sm = run.stage_metrics
    if sm is None or sm.empty:
        return {}
    secs = np.asarray(sm["ts"].astype("datetime64[us, UTC]").astype("int64"), float) / 1e6
    codes, names = pd.factorize(sm["stage_id"].to_numpy())
    order = np.lexsort((secs, codes))
    codes, secs = codes[order], secs[order] - start
    out_r = np.asarray(sm["output_rate"], float)[order]
    in_r = np.asarray(sm["input_rate"], float)[order]
    records = np.nan_to_num(np.asarray(sm["output_records"], float)[order])
    bounds = np.searchsorted(codes, np.arange(len(names) + 1))
    series = {}
    for i, stage in enumerate(names):
        a, b = bounds[i], bounds[i + 1]
        if b > a and codes[a] >= 0:
            v = out_r[a:b] if records[a:b].max() > 0 else in_r[a:b]
            series[str(stage)] = (secs[a:b], v)
    return series


def rate_points(series: dict[str, Series], stage: str, budget: int = MAX_POINTS) -> pd.DataFrame:
    """``elapsed``, ``run``, ``v`` of one stage in every run (:func:`rate_series` by run),
    at most ``budget`` points per run (minima and maxima kept), finite values only."""
    parts = []
    for label, by_stage in series.items():
        if stage not in by_stage:
            continue
        t, v = by_stage[stage]
        ok = np.isfinite(v)
        t, v = t[ok], v[ok]
        if len(v) > budget:
            keep = minmax_indices(v, budget)
            t, v = t[keep], v[keep]
        parts.append((label, t, v))
    return pd.DataFrame(
        {
            "elapsed": np.concatenate([t for _, t, _ in parts]) if parts else [],
            "run": [label for label, t, _ in parts for _ in range(len(t))],
            "v": np.concatenate([v for _, _, v in parts]) if parts else [],
        }
    )


class RunCharts(ChartsView):
    """One output-rate chart per stage, one line per run (the job monitor's renderer:
    ``stages`` holds the run labels, ``t0`` is 0 and ``t`` the seconds since start)."""

    def __init__(self, runs: list[str], charts: dict[str, dict[str, list]]) -> None:
        self._names = list(charts)
        super().__init__(runs, data=charts, t0=0.0, epoch=1)

    def _specs(self, stages: list[str]) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        return {name: rate_spec(name, stages) for name in self._names}


# ------------------------------------------------------------------ DAG
CYTO_STYLE = [
    {"selector": "node", "style": {
        "shape": "round-rectangle", "width": 190, "height": 54, "label": "data(label)",
        "text-wrap": "wrap", "text-valign": "center", "text-halign": "center",
        "font-size": 13, "color": "#fff", "background-color": CHANGE_COLOURS["same"],
        "border-width": 1, "border-color": "#333"}},
    *({"selector": f"node.{k}", "style": {"background-color": c}}
      for k, c in CHANGE_COLOURS.items()),
    {"selector": "edge", "style": {
        "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 2,
        "line-color": "#999", "target-arrow-color": "#999"}},
]  # fmt: skip


def _node_label(stage: str, change: tuple[str, str]) -> str:
    return f"{stage}\n{change[1] or 'no change'}"


def change_dag(stages: list[str], edges: list[tuple[str, str]], changes: dict) -> Any:
    """A ``CytoscapeWidget`` of the stages, each coloured by its change (see
    :func:`~solstice_inspect.analysis.compare.stage_changes`)."""
    from ipycytoscape import CytoscapeWidget, Edge, Node

    cyto = CytoscapeWidget()
    cyto.set_style(CYTO_STYLE)
    cyto.set_layout(name="dagre", rankDir="LR", nodeSep=24, rankSep=80, padding=12)
    per_col: dict[int, int] = {}
    for c in layers(stages, edges).values():
        per_col[c] = per_col.get(c, 0) + 1
    rows = max(per_col.values(), default=1)
    cyto.layout.height = f"{rows * 54 + (rows - 1) * 24 + 24}px"
    cyto.layout.width = "100%"
    cyto.user_zooming_enabled = False
    cyto.min_zoom, cyto.max_zoom = 0.5, 1.0
    nodes = []
    for s in stages:
        kind = changes.get(s, ("same", ""))
        nodes.append(Node(data={"id": s, "label": _node_label(s, kind)}, classes=kind[0]))
    cyto.graph.add_nodes(nodes)
    known = set(stages)
    cyto.graph.add_edges(
        [Edge(data={"id": f"{u}->{d}", "source": u, "target": d})
         for u, d in edges if u in known and d in known],
        directed=True,
    )  # fmt: skip
    return cyto


def change_dag_svg(stages: list[str], edges: list[tuple[str, str]], changes: dict) -> str:
    """The same DAG as a static SVG (escaped labels)."""
    col = layers(stages, edges)
    per_col: dict[int, int] = {}
    pos = {}
    for s in stages:
        pos[s] = (20 + col[s] * 200, 20 + per_col.get(col[s], 0) * 70)
        per_col[col[s]] = per_col.get(col[s], 0) + 1
    width = 20 + (max(col.values(), default=0) + 1) * 200
    height = 20 + max(per_col.values(), default=1) * 70
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        "font-family='sans-serif' font-size='11' class='si-dag-svg'>"
    ]
    for u, d in edges:
        if u in pos and d in pos:
            (x1, y1), (x2, y2) = pos[u], pos[d]
            parts.append(
                f"<line x1='{x1 + 160}' y1='{y1 + 24}' x2='{x2}' y2='{y2 + 24}' "
                "stroke='#999' stroke-width='2'/>"
            )
    for s in stages:
        x, y = pos[s]
        kind = changes.get(s, ("same", ""))
        parts.append(
            f"<rect x='{x}' y='{y}' width='160' height='48' rx='6' "
            f"fill='{CHANGE_COLOURS.get(kind[0], '#607d8b')}' stroke='#333'/>"
        )
        for i, line in enumerate(_node_label(s, kind).split("\n")):
            parts.append(
                f"<text x='{x + 80}' y='{y + 20 + i * 14}' fill='#fff' text-anchor='middle'>"
                f"{esc(line)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------ the comparison
class Comparison(GuardedView, W.VBox):
    """Runs side by side; build one with :func:`compare`.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per run, in the order given: label (``"<job_id> #<run number>"``),
        job_id, attempt_id, run, status, start, duration_s.
    baseline : str
        The label of the run the others are compared with.
    stages : list of str
        Every stage of any run, in pipeline order.
    """

    view_name = "comparison"

    def __init__(self, data: list[RunData], info: pd.DataFrame, *, baseline: int) -> None:
        self._data = dict(zip(info["label"], data))
        self.runs = info
        self.baseline = str(info["label"].iloc[baseline])
        self._series: dict[str, Series] | None = None
        self.threshold = 0.10
        order: list[str] = []
        edges: list[tuple[str, str]] = []
        for d in (self._data[self.baseline], *self._data.values()):  # the baseline's first
            order.extend(s for s in d.stages if s not in order)
            edges.extend(e for e in d.edges if e not in edges)
        self.stages, self.edges = stage_order(edges, order), edges
        self._table = cmp.stage_table(
            {k: d.figures for k, d in self._data.items()}, baseline=self.baseline, order=self.stages
        )
        labels = list(self._data)
        self._changes = cmp.stage_changes(self._table, baseline=self.baseline)
        self.title = W.HTML(self._title_html())
        self.flag_list = W.HTML(self._flags_html())
        self.dag = change_dag(self.stages, self.edges, self._changes)
        self.charts = RunCharts(labels, self._chart_data(labels))
        self.deltas = Table(
            self._table[TABLE_COLUMNS], title=f"Per-stage figures against {self.baseline}"
        )
        self.show_all = W.Checkbox(value=False, description="show every configuration key")
        self.config = Table(
            self.config_diff(), title="Configuration (the keys that differ; tick for all)"
        )
        self.show_all.observe(self._on_toggle, names="value")
        self.errors = W.HTML("")
        super().__init__(
            children=[self.title, self.flag_list, self.dag, self.charts, self.deltas,
                      self.show_all, self.config, self.errors]
        )  # fmt: skip
        self.add_class("si-compare")

    def __repr__(self) -> str:  # cheap
        return f"Comparison({len(self.runs)} runs, baseline={self.baseline!r})"

    # ------------------------------------------------------------------ data
    def table(self) -> pd.DataFrame:
        """Per stage and run: each figure, its delta and relative delta (``_rel``: −0.4
        is 40 % lower) against the baseline; stages not in every run have ``common``
        False and ``in_runs`` naming the runs that have them. See
        :func:`~solstice_inspect.analysis.compare.stage_table`."""
        return self._table.copy()

    def config_diff(self, *, all: bool = False) -> pd.DataFrame:
        """The configuration keys (nested keys dotted) whose values differ between the
        runs, one column per run; ``all=True``: every key."""
        return cmp.config_diff({k: d.config for k, d in self._data.items()}, all=all)

    def flags(self, *, threshold: float | None = None) -> pd.DataFrame:
        """Each (stage, run, figure) that differs from the baseline's by ``threshold``
        (default 10 %) or more, the largest change first, with a sentence."""
        t = self.threshold if threshold is None else threshold
        return cmp.flags(self._table, baseline=self.baseline, threshold=t)

    def chart(self, stage: str) -> alt.Chart:
        """The output-rate chart of one stage (one line per run) as an ``alt.Chart``."""
        import altair as alt

        if stage not in self.stages:
            raise ValueError(f"no stage {stage!r}; stages: {', '.join(self.stages)}")
        pts = self._points(stage).rename(columns={"run": "stage"})
        spec = rate_spec(stage, list(self._data))
        spec.pop("transform")  # the points hold ``elapsed`` already
        chart = alt.Chart.from_dict({**spec, "data": {"name": "series"}})
        chart.data = pts  # a DataFrame users can inspect; Altair inlines it on render
        return chart

    def _points(self, stage: str, budget: int = MAX_POINTS) -> pd.DataFrame:
        if self._series is None:
            starts = dict(zip(self.runs["label"], self.runs["start_s"]))
            self._series = {k: rate_series(d, starts[k]) for k, d in self._data.items()}
        return rate_points(self._series, stage, budget)

    def _chart_data(self, labels: list[str]) -> dict[str, dict[str, list]]:
        shown = self.stages[:MAX_CHARTS]
        budget = max(50, min(MAX_POINTS, CHART_POINTS // max(1, len(shown) * len(labels))))
        index = {r: i for i, r in enumerate(labels)}
        out = {}
        for stage in shown:
            pts = self._points(stage, budget)
            out[stage] = {
                "t": np.round(pts["elapsed"].to_numpy(dtype=float), 3).tolist(),
                "s": [index[r] for r in pts["run"]],
                "v": np.round(pts["v"].to_numpy(dtype=float), 3).tolist(),
            }
        return out

    # ------------------------------------------------------------------ views
    def _title_html(self) -> str:
        items = "".join(
            f"<li><b>{esc(r['label'])}</b>{' (baseline)' if r['label'] == self.baseline else ''}"
            f" · {esc(r['status'])} · attempt {esc(r['attempt_id'])} · started "
            f"{esc(_when(r['start']))} · {esc(_secs(r['duration_s']))}</li>"
            for r in self.runs.to_dict("records")
        )
        return f"<h3>Comparing {len(self.runs)} runs</h3><ul>{items}</ul>"

    def _flags_html(self, limit: int = 10) -> str:
        f = self.flags()
        if f.empty:
            return (
                f"<p>No stage figure differs from {esc(self.baseline)} by "
                f"{self.threshold * 100:.0f} % or more.</p>"
            )
        items = "".join(f"<li>{esc(m)}</li>" for m in f["message"].head(limit))
        more = f"<li>… {len(f) - limit} more (<code>.flags()</code>)</li>" if len(f) > limit else ""
        return f"<p>Changes of {self.threshold * 100:.0f} % or more:</p><ul>{items}{more}</ul>"

    def _on_toggle(self, change: dict[str, Any]) -> None:
        with self._guard("showing the configuration"):
            every = bool(change.get("new"))
            self.config.refresh(self.config_diff(all=every))

    def static_html(self, *, charts: bool = True) -> str:
        """The comparison as static, escaped HTML (no kernel: a saved notebook)."""
        parts = [STYLE, "<div class='si-static si-compare-static'>", self._title_html()]
        parts.append(self._flags_html())
        parts.append(change_dag_svg(self.stages, self.edges, self._changes))
        if charts:
            parts.append("<div class='si-static-charts'>")
            for stage in self.stages[:MAX_CHARTS]:
                pts = self._points(stage, 150)
                pts = pd.DataFrame(
                    {"t": pd.to_datetime(pts["elapsed"], unit="s", utc=True),
                     "stage": pts["run"], "v": pts["v"]}
                )  # fmt: skip
                parts.append(
                    line_chart_svg(pts, list(self._data), f"{stage}: output rate "
                                   "(time since start)", "records / s")
                )  # fmt: skip
            parts.append("</div>")
        parts.append(f"<h4>Per-stage figures against {esc(self.baseline)}</h4>")
        parts.append(table_html(self._table, TABLE_COLUMNS, max_rows=100))
        diff = self.config_diff()
        parts.append(f"<h4>Configuration: {len(diff)} of {diff.attrs['keys']} keys differ</h4>")
        parts.append(table_html(diff, [c for c in diff.columns if c != "differs"]))
        parts.append("</div>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.static_html()

    def close(self) -> None:
        """Close every child widget."""
        for w in self.children:
            w.close()
        super().close()


def _when(ts: Any) -> str:
    return "?" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _epoch(ts: Any) -> float:
    if ts is None or pd.isna(ts):
        return 0.0
    return float(pd.Timestamp(ts).value) / 1e9  # ns since the epoch


def _secs(value: Any) -> str:
    return "running" if value is None or pd.isna(value) else f"{float(value):,.1f} s"


def _info(jobs: list[Any], attempts: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """Label, run number, status, start and duration of each run."""
    rows = []
    for job in jobs:
        att = attempts[(str(job.store.root), job.job_id)]
        ids = list(att["attempt_id"].astype(str))
        n = ids.index(job.attempt_id) + 1 if job.attempt_id in ids else 0
        row = att.iloc[n - 1].to_dict() if n else {}
        start = row.get("start_time")
        rows.append(
            {
                "label": f"{job.job_id} #{n}" if n else f"{job.job_id} {job.attempt_id}",
                "job_id": job.job_id, "attempt_id": job.attempt_id, "run": n,
                "status": row.get("status"), "start": start,
                "start_s": _epoch(start),
                "duration_s": row.get("duration_s"),
            }
        )  # fmt: skip
    df = pd.DataFrame(rows)
    seen: dict[str, int] = {}
    labels = []
    for label in df["label"]:  # the same run twice: tell the columns apart
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    df["label"] = labels
    return df


def compare(*runs: Any, baseline: int = 0, store: Store | str | None = None) -> Comparison:
    """Compare 2 to 10 runs, side by side: ``display(si.compare("etl_001", "etl_002"))``.

    Parameters
    ----------
    *runs
        Each a job id (its latest attempt), a :class:`~solstice_inspect.Job`, or a
        ``(job_id, attempt)`` pair (an attempt id or 1-based number); or one list of them.
    baseline
        The position of the run the others are compared with.
    store
        A :class:`Store` or path for the job ids; the default store when None.

    Returns
    -------
    Comparison
        A widget; ``.table()``, ``.config_diff(all=False)`` and ``.flags()`` return
        DataFrames.

    Raises
    ------
    ValueError
        Fewer than 2 or more than 10 runs, or a baseline that is not one of them.
    JobNotFound
        An unknown job id or attempt, naming the closest known ones.

    Examples
    --------
    >>> c = si.compare("etl", ("etl", 1), store="/data/store")  # doctest: +SKIP
    >>> c.flags()["message"].tolist()                            # doctest: +SKIP
    ['parse: output rate 40 % lower in etl #2 (60 vs 100)']
    """
    if len(runs) == 1 and isinstance(runs[0], list):
        runs = tuple(runs[0])
    if not MIN_RUNS <= len(runs) <= MAX_RUNS:
        raise ValueError(
            f"compare takes {MIN_RUNS} to {MAX_RUNS} runs, not {len(runs)}: pick the ones "
            "to see side by side (si.history(job_id) lists every run of a job)"
        )
    if not isinstance(baseline, int) or isinstance(baseline, bool):
        raise TypeError(f"baseline is the position of a run (an int), not {baseline!r}")
    if not -len(runs) <= baseline < len(runs):
        raise ValueError(f"baseline={baseline} is not the position of one of {len(runs)} runs")
    st: Any = None
    if any(isinstance(r, (str, tuple)) for r in runs):
        from solstice_inspect.store import connect
        from solstice_inspect.store.reader import Store

        st = store if isinstance(store, Store) else connect(store)
    jobs, attempts = resolve_runs(st, runs)
    info = _info(jobs, attempts)
    with ThreadPoolExecutor(max_workers=min(4, len(jobs))) as pool:
        data = list(pool.map(lambda j: read_run(j, full=True), jobs))
    return Comparison(data, info, baseline=baseline % len(runs))
