"""Altair descriptions of the job charts: output rate, queue lag and backpressure per stage.

The same descriptions serve two renderers: users get ``alt.Chart`` objects to restyle and
display themselves (``si.charts.throughput(job)``), and :func:`job_monitor` sends their
Vega-Lite specs (with a named data source instead of inline rows) to the vega-embed
bundled in its own JavaScript, which then streams new rows in without redrawing.

Examples
--------
>>> import solstice_inspect as si                 # doctest: +SKIP
>>> si.charts.throughput(si.job("etl_001")).properties(width=600)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from solstice_inspect.analysis.downsample import MAX_POINTS, downsample

if TYPE_CHECKING:
    import altair as alt

    from solstice_inspect.store.reader import Job

__all__ = [
    "CHARTS",
    "backpressure",
    "icicle",
    "icicle_rects",
    "queue_lag",
    "series",
    "throughput",
    "timeline",
    "vega_lite_spec",
]

#: chart name -> (stage_metrics column, title, y axis title)
CHARTS: dict[str, tuple[str, str, str]] = {
    "throughput": ("output_rate", "Output rate per stage", "records / s"),
    "queue_lag": ("queue_lag", "Queue lag per stage", "messages"),
    "backpressure": ("backpressure_ratio", "Backpressure ratio per stage", "fraction of time"),
}
#: per chart, how its y axis reads: a ratio is a percentage of 0..100 %, never "0.000000"
_Y_AXIS: dict[str, dict[str, Any]] = {
    "backpressure": {"scale": {"domain": [0, 1]}, "axis": {"format": ".0%"}},
    "throughput": {"axis": {"format": "~s"}},
    "queue_lag": {"axis": {"format": "~s"}},
}
#: name of the data source the widget's specs read
DATA_NAME = "series"


def _altair() -> Any:
    try:
        import altair as alt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("charts need altair: pip install 'solstice_inspect[widgets]'") from exc
    return alt


def series(stage_metrics: pd.DataFrame, chart: str) -> pd.DataFrame:
    """Long-form points ``t`` (datetime), ``stage``, ``v`` of one chart, sorted by time.

    Parameters
    ----------
    stage_metrics
        The ``stage_metrics`` table as pandas (``Job.stage_metrics()``).
    chart
        One of ``CHARTS``: ``throughput``, ``queue_lag``, ``backpressure``.

    Examples
    --------
    >>> import pandas as pd
    >>> sm = pd.DataFrame({"ts": pd.to_datetime([1, 2], unit="s", utc=True),
    ...     "stage_id": ["a", "a"], "output_rate": [1.0, 2.0], "queue_lag": [0, 3],
    ...     "backpressure_ratio": [None, 0.5], "backpressure_active": [True, False]})
    >>> series(sm, "backpressure")["v"].tolist()
    [1.0, 0.5]
    """
    if chart not in CHARTS:
        raise ValueError(f"no chart {chart!r}; charts: {', '.join(CHARTS)}")
    column = CHARTS[chart][0]
    if stage_metrics.empty:
        return pd.DataFrame({"t": pd.Series([], dtype="datetime64[us, UTC]"), "stage": [], "v": []})
    v = stage_metrics[column].astype(float)
    if column == "backpressure_ratio" and "backpressure_active" in stage_metrics:
        # a window without a ratio still knows whether the stage was backpressured
        v = v.fillna(stage_metrics["backpressure_active"].astype(float))
    out = pd.DataFrame({"t": stage_metrics["ts"], "stage": stage_metrics["stage_id"], "v": v})
    return out.sort_values("t", kind="stable").reset_index(drop=True)


def _spec(chart: str) -> dict[str, Any]:
    """The Vega-Lite description of one chart, without its data.

    The one source both the widget's renderer and the ``alt.Chart`` objects users get
    are built from. Written as a
    plain dict so that displaying a dashboard never imports Altair (1.5 s on first import;
    ``tests/unit/test_widgets.py`` checks the dict is a valid Altair chart).
    """
    _, title, y_title = CHARTS[chart]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "config": {"view": {"continuousWidth": 300, "continuousHeight": 300}},
        "title": title,
        "width": 360,
        "height": 180,
        "mark": {"type": "line", "interpolate": "linear", "strokeWidth": 1.5},
        "encoding": {
            "x": {"field": "t", "type": "temporal", "title": "time",
                  "axis": {"format": "%H:%M:%S", "labelOverlap": True}},
            "y": {"field": "v", "type": "quantitative", "title": y_title, **_Y_AXIS.get(chart, {})},
            "color": {"field": "stage", "type": "nominal", "title": "stage"},
            "tooltip": [
                {"field": "stage", "type": "nominal"},
                {"field": "t", "type": "temporal"},
                {"field": "v", "type": "quantitative", "format": ",.2f"},
            ],
        },
    }  # fmt: skip


def _chart(points: pd.DataFrame, chart: str) -> alt.Chart:
    alt = _altair()
    described = alt.Chart.from_dict({**_spec(chart), "data": {"name": DATA_NAME}})
    described.data = points  # a DataFrame users can inspect; Altair inlines it on render
    return described


def _from_job(job: Job, chart: str, max_points: int) -> alt.Chart:
    points = series(job.stage_metrics(), chart)
    points = downsample(points, "t", "v", by="stage", max_points=max_points)
    # Vega-Lite reads ISO strings reliably; naive datetimes would be taken as local time
    points = points.assign(t=points["t"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    return _chart(points, chart)


def throughput(job: Job, *, max_points: int = MAX_POINTS) -> alt.Chart:
    """Output rate (records / s) per stage over time, ≤ ``max_points`` points per stage.

    Examples
    --------
    >>> chart = si.charts.throughput(job)               # doctest: +SKIP
    >>> chart.properties(width=800).interactive()       # doctest: +SKIP
    """
    return _from_job(job, "throughput", max_points)


def queue_lag(job: Job, *, max_points: int = MAX_POINTS) -> alt.Chart:
    """Input queue lag (messages) per stage over time, ≤ ``max_points`` points per stage.

    Examples
    --------
    >>> si.charts.queue_lag(job).save("lag.svg")        # doctest: +SKIP
    """
    return _from_job(job, "queue_lag", max_points)


def backpressure(job: Job, *, max_points: int = MAX_POINTS) -> alt.Chart:
    """Fraction of each window a stage was backpressured, per stage over time.

    Examples
    --------
    >>> si.charts.backpressure(job)                     # doctest: +SKIP
    """
    return _from_job(job, "backpressure", max_points)


def vega_lite_spec(chart: str) -> dict[str, Any]:
    """The Vega-Lite spec of one chart, as the widget renders it.

    It reads the named data source ``"series"`` (rows ``{t: epoch ms, stage, v}``).

    Examples
    --------
    >>> vega_lite_spec("queue_lag")["data"]
    {'name': 'series'}
    """
    if chart not in CHARTS:
        raise ValueError(f"no chart {chart!r}; charts: {', '.join(CHARTS)}")
    spec = {**_spec(chart), "data": {"name": DATA_NAME}}
    # rows arrive after the first layout: re-fit axes and legend on every update
    spec["autosize"] = {"type": "pad", "resize": True}
    return spec


#: bar colour per way a worker ended (RUNNING, STOPPED, FAILED, KILLED, LOST)
_ENDING_COLOURS = ["#4c78a8", "#9aa5b1", "#e45756", "#f58518", "#b279a2"]


def _iso(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timeline_lanes(job: Job, *, max_workers: int = 200) -> Any:
    """The rows of a job's timeline laid out in lanes.

    A :class:`~solstice_inspect.analysis.timeline.Lanes`: what :func:`timeline` and the
    saved report's SVG timeline draw.
    """
    from solstice_inspect.analysis.timeline import backpressure_spans, lanes, marks, worker_spans

    running = job.status == "RUNNING"
    end = job.info.get("end_time")
    if end is None or pd.isna(end) or running:
        end = pd.Timestamp.now(tz="UTC")
    workers = job.workers()
    events = job.events()
    reports = job.worker_metrics(columns=["ts", "worker_id", "stage_id"])
    return lanes(
        worker_spans(workers, reports, end=end, running=running),
        backpressure_spans(events, end=end),
        marks(workers, events, job.checkpoints()),
        stage_order=job.dag.topological_order(),
        max_workers=max_workers,
    )


def timeline(job: Job, *, max_workers: int = 200) -> alt.LayerChart:
    """Worker lifetimes per stage as a Gantt chart, coloured by how each worker ended.

    Over the bars: backpressure spans (an amber band in a lane per stage), failures
    (red crosses), restarts (triangles) and checkpoints (vertical rules; dashed red
    when failed). The rows behind it are
    :func:`solstice_inspect.analysis.timeline.worker_spans` and
    :func:`~solstice_inspect.analysis.timeline.marks`.

    Parameters
    ----------
    job
        A job (running or archived).
    max_workers
        At most this many worker lanes: failed and killed workers first, then lost
        ones, then the longest-lived; the title says how many were left out.

    Examples
    --------
    >>> si.charts.timeline(job).properties(width=900)   # doctest: +SKIP
    """
    from solstice_inspect.analysis.timeline import ENDINGS

    alt = _altair()
    laid = timeline_lanes(job, max_workers=max_workers)
    order, total = laid.order, laid.total_workers
    spans = laid.spans.assign(start=_iso(laid.spans["start"]), end=_iso(laid.spans["end"]))
    bp = laid.backpressure.assign(
        start=_iso(laid.backpressure["start"]), end=_iso(laid.backpressure["end"])
    )
    points = laid.marks.assign(ts=_iso(laid.marks["ts"]))
    y = alt.Y("lane:N", sort=order, title=None, axis=alt.Axis(labelLimit=260))
    title = "Workers over time"
    if total > len(spans):
        title += f" ({len(spans):,} of {total:,} workers: failed first, then longest)"
    bars = (
        alt.Chart(spans)
        .mark_bar(height={"band": 0.7})
        .encode(
            x=alt.X("start:T", title="time"),  # Vega's own multi-scale tick format
            x2="end:T",
            y=y,
            color=alt.Color(
                "ended:N",
                title="ended",
                scale=alt.Scale(domain=ENDINGS, range=_ENDING_COLOURS),
            ),
            tooltip=["worker_id", "stage_id", "ended", "reason", "start:T", "end:T"],
        )
    )
    layers = [bars]
    if len(bp):
        layers.append(
            alt.Chart(bp)
            .mark_bar(color="#f2a900", opacity=0.6, height={"band": 0.7})
            .encode(x="start:T", x2="end:T", y=y, tooltip=["stage_id", "start:T", "end:T"])
        )
    on_lanes = points[points["kind"].isin(["failure", "restart"]) & points["lane"].isin(order)]
    if len(on_lanes):
        layers.append(
            alt.Chart(on_lanes)
            .mark_point(filled=True, size=70, color="#b00020")
            .encode(
                x="ts:T",
                y=y,
                shape=alt.Shape("kind:N", title="mark"),
                tooltip=["kind", "label", "ts:T"],
            )
        )
    rules = points[~points["lane"].isin(order)]
    if len(rules):
        layers.append(
            alt.Chart(rules)
            .mark_rule(strokeDash=[4, 3], strokeOpacity=0.8)
            .encode(
                x="ts:T",
                color=alt.Color(
                    "kind:N",
                    title="rule",
                    scale=alt.Scale(
                        domain=["checkpoint", "checkpoint_failed", "restart"],
                        range=["#2ca02c", "#e45756", "#7f3fbf"],
                    ),
                ),
                tooltip=["kind", "label", "ts:T"],
            )
        )
    height = max(60, min(14 * len(order), 2800))
    chart = alt.layer(*layers).properties(title=title, width=720, height=height)
    return chart.resolve_scale(color="independent")


#: an icicle merges frames under this share of the samples into their parent
ICICLE_MIN_SHARE = 0.005
#: … and draws at most this many rectangles
ICICLE_MAX_RECTS = 2000


def icicle_rects(
    profile: pd.DataFrame,
    *,
    min_share: float = ICICLE_MIN_SHARE,
    max_rects: int = ICICLE_MAX_RECTS,
) -> pd.DataFrame:
    """The rectangles of an icicle chart of folded stacks (``outer;inner;leaf``, samples).

    One row per frame path: ``depth`` (0: outermost), ``x0``/``x1`` in samples (a frame
    spans its samples, children side by side under it, most sampled first), ``frame``,
    ``path``, ``samples``, ``share`` (of all samples). Frames under ``min_share`` are
    merged into their parent (its width already counts them); past ``max_rects``, the
    least sampled go the same way.

    Examples
    --------
    >>> import pandas as pd
    >>> prof = pd.DataFrame({"stack": ["main;parse;loads", "main;parse", "main;write"],
    ...                      "samples": [6, 2, 2]})
    >>> icicle_rects(prof)[["path", "depth", "x0", "x1"]].values.tolist()
    [['main', 0, 0, 10], ['main;parse', 1, 0, 8], ['main;write', 1, 8, 10], \
['main;parse;loads', 2, 0, 6]]
    """
    counts: dict[tuple[str, ...], int] = {}
    for stack, n in zip(profile["stack"], profile["samples"]):
        if not isinstance(stack, str) or not n or n < 0:
            continue
        frames = tuple(stack.split(";"))
        for d in range(1, len(frames) + 1):
            counts[frames[:d]] = counts.get(frames[:d], 0) + int(n)
    total = sum(n for path, n in counts.items() if len(path) == 1)
    cols = ["path", "frame", "depth", "x0", "x1", "samples", "share"]
    if not total:
        return pd.DataFrame(columns=cols)
    kept = [p for p, n in counts.items() if n >= min_share * total]
    # a frame never has more samples than its parent: the most sampled keep their parents
    kept.sort(key=lambda p: (-counts[p], len(p), p))
    kept = kept[:max_rects]
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for p in kept:
        children.setdefault(p[:-1], []).append(p)
    rows = []
    stack_: list[tuple[tuple[str, ...], int]] = [((), 0)]
    while stack_:
        parent, x = stack_.pop()
        placed = []
        for child in children.get(parent, []):  # already most sampled first
            n = counts[child]
            rows.append((";".join(child), child[-1], len(child) - 1, x, x + n, n, n / total))
            placed.append((child, x))
            x += n
        stack_.extend(reversed(placed))
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["depth", "x0"], kind="stable").reset_index(drop=True)


def icicle(
    profile: pd.DataFrame,
    *,
    min_share: float = ICICLE_MIN_SHARE,
    max_rects: int = ICICLE_MAX_RECTS,
    width: int = 720,
) -> alt.LayerChart:
    """An icicle (flame) chart of a sampling profile: callers above, callees below.

    Each rectangle is a frame; its width is the share of samples spent in it and in what
    it called. Frames under ``min_share`` (0.5 %) are merged into their parent, and at
    most ``max_rects`` rectangles are drawn (:func:`icicle_rects`).

    Parameters
    ----------
    profile
        Rows with ``stack`` (folded: ``outer;inner;leaf``) and ``samples``, such as
        :meth:`Job.profile <solstice_inspect.api.Job.profile>` returns.

    Examples
    --------
    >>> prof = job.profile("parse_w0_269e0d", seconds=10)   # doctest: +SKIP
    >>> si.charts.icicle(prof).properties(width=900)        # doctest: +SKIP
    """
    alt = _altair()
    rects = icicle_rects(profile, min_share=min_share, max_rects=max_rects)
    if rects.empty:
        raise ValueError("the profile has no samples: nothing to draw")
    total = float(rects.loc[rects["depth"] == 0, "samples"].sum())
    # a label where it fits (~7 px a character); the tooltip always has the whole frame
    fits = (rects["samples"] / total * width / 7).astype(int)
    # "outer.<locals>.Class.method (file.py:12)" is labelled "Class.method"
    names = rects["frame"].str.replace(r" \(.*\)$", "", regex=True)
    names = names.str.replace(r"^.*<locals>\.", "", regex=True)
    label = [n if len(n) <= k else n[: k - 1] + "…" if k >= 4 else "" for n, k in zip(names, fits)]
    data = rects.assign(label=label, y0=rects["depth"], y1=rects["depth"] + 1)
    levels = int(rects["depth"].max()) + 1
    x = alt.X("x0:Q", axis=None, scale=alt.Scale(domain=[0, total], nice=False, zero=True))
    y_scale = alt.Scale(domain=[levels, 0], nice=False)
    y = alt.Y("y0:Q", axis=None, scale=y_scale)
    base = alt.Chart(data).encode(x=x, x2="x1:Q", y=y, y2="y1:Q")
    boxes = base.mark_rect(stroke="white", strokeWidth=0.5).encode(
        color=alt.Color("share:Q", scale=alt.Scale(scheme="oranges"), legend=None),
        tooltip=[
            alt.Tooltip("frame:N", title="frame"),
            alt.Tooltip("samples:Q", format=","),
            alt.Tooltip("share:Q", format=".1%", title="of samples"),
            alt.Tooltip("depth:Q"),
        ],
    )
    text = (
        alt.Chart(data)
        .mark_text(align="left", baseline="middle", dx=3, fontSize=10, color="black")
        .encode(x=x, y=alt.Y("mid:Q", axis=None, scale=y_scale), text="label:N")
        .transform_calculate(mid="datum.y0 + 0.5")
    )
    title = f"Profile: {int(total):,} samples, {len(rects):,} frames drawn"
    return alt.layer(boxes, text).properties(title=title, width=width, height=max(60, 18 * levels))


def svg(chart: alt.Chart) -> str:
    """Render an Altair chart to SVG offline (vl-convert), for static HTML fallbacks."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart.to_dict())
