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


def svg(chart: alt.Chart) -> str:
    """Render an Altair chart to SVG offline (vl-convert), for static HTML fallbacks."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart.to_dict())
