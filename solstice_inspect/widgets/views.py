"""The anywidget views whose JavaScript is ours: the header (``js/dashboard.js``, part
``header``) and the charts (``js/charts.js``), bundled into ``solstice_inspect/static/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import traitlets

from solstice_inspect.analysis.downsample import MAX_POINTS, downsample
from solstice_inspect.charts import CHARTS, series, vega_lite_spec

STATIC = Path(__file__).resolve().parent.parent / "static"


def bundle(name: str) -> Path:
    path = STATIC / f"{name}.js"
    if not path.exists():
        raise ImportError(
            f"the widget bundle {path} is missing: build it with `make js` "
            "(or install solstice_inspect from a wheel, which ships it)"
        )
    return path


class HeaderView(anywidget.AnyWidget):
    """The job header. ``header``: a small dict of figures; ``spark``: the last output
    rates (≤ 60) for the sparkline."""

    _esm = bundle("dashboard")
    part = traitlets.Unicode("header").tag(sync=True)
    header = traitlets.Dict().tag(sync=True)
    spark = traitlets.List().tag(sync=True)


def columns(points: pd.DataFrame, stages: list[str], t0: float) -> dict[str, list]:
    """Compact columnar JSON of chart points: seconds since ``t0``, stage index, value.

    Examples
    --------
    >>> import pandas as pd
    >>> pts = pd.DataFrame({"t": pd.to_datetime([10.5, 11], unit="s", utc=True),
    ...                     "stage": ["b", "a"], "v": [1.23456, float("nan")]})
    >>> columns(pts, ["a", "b"], 10.0)
    {'t': [0.5], 's': [1], 'v': [1.235]}
    """
    points = points.loc[np.isfinite(points["v"].to_numpy(dtype=float))]
    index = {s: i for i, s in enumerate(stages)}
    micros = points["t"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
    secs = micros / 1e6 - t0
    return {
        "t": np.round(secs, 3).tolist(),
        "s": [index.get(s, -1) for s in points["stage"]],
        "v": np.round(points["v"].to_numpy(dtype=float), 3).tolist(),
    }


class ChartsView(anywidget.AnyWidget):
    """Throughput, queue lag and backpressure charts, rendered by our vega-embed.

    ``data`` holds a downsampled snapshot (≤ ``max_points`` per series); live points go
    out as one custom message per update, ``{"type": "append", "epoch", "seq", "charts":
    {name: {"t", "s", "v"}}}``, and are inserted into the Vega views as changesets. A
    view that renders later sends ``{"type": "hello"}`` and gets the points since the
    snapshot. When a series would pass ``max_points``, a new snapshot (half the budget)
    replaces the data (``epoch`` + 1).
    """

    _esm = bundle("charts")
    specs = traitlets.Dict().tag(sync=True)
    data = traitlets.Dict().tag(sync=True)
    stages = traitlets.List().tag(sync=True)
    t0 = traitlets.Float(0.0).tag(sync=True)
    epoch = traitlets.Int(0).tag(sync=True)

    def __init__(self, stages: list[str], *, max_points: int = MAX_POINTS, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_points = max_points
        self._frames: dict[str, pd.DataFrame] = {}
        self._counts: dict[str, dict[str, int]] = {}
        self._tail: list[dict[str, Any]] = []
        self._seq = 0
        self.sent: list[dict[str, Any]] = []
        with self.hold_sync():
            self.stages = list(stages)
            self.specs = self._specs(self.stages)
        self.on_msg(self._handle_msg)

    def set_points(self, stage_metrics: pd.DataFrame, *, budget: int | None = None) -> None:
        """A new snapshot of every chart from the whole ``stage_metrics`` frame."""
        budget = budget or self.max_points
        if not stage_metrics.empty and self.t0 == 0.0:
            self.t0 = float(stage_metrics["ts"].min().timestamp())
        data = {}
        for name in CHARTS:
            pts = downsample(series(stage_metrics, name), "t", "v", by="stage", max_points=budget)
            self._frames[name] = pts
            data[name] = columns(pts, self.stages, self.t0)
            self._counts[name] = pts.groupby("stage").size().to_dict() if len(pts) else {}
        self._tail = []
        with self.hold_sync():
            self.epoch += 1
            self.data = data

    def append(self, new_rows: pd.DataFrame, stage_metrics: Any) -> int:
        """Stream the points of new ``stage_metrics`` rows; return how many were sent.

        Re-snapshots (from the whole ``stage_metrics``: a frame, or a callable returning
        it, called only then) when a series would exceed ``max_points`` points in the
        browser.
        """
        if new_rows.empty:
            return 0
        sent = 0
        points = {name: series(new_rows, name) for name in CHARTS}
        for name, pts in points.items():
            counts = self._counts.setdefault(name, {})
            for stage, n in pts["stage"].value_counts().items():
                counts[str(stage)] = counts.get(str(stage), 0) + int(n)
            if max(counts.values(), default=0) > self.max_points:
                full = stage_metrics() if callable(stage_metrics) else stage_metrics
                assert isinstance(full, pd.DataFrame)
                self.set_points(full, budget=self.max_points // 2)
                return sum(len(v["t"]) for v in self.data.values())
        charts = {}
        for name, pts in points.items():
            cols = columns(pts, self.stages, self.t0)
            if cols["t"]:
                charts[name] = cols
                sent += len(cols["t"])
        if charts:
            self._seq += 1
            msg = {"type": "append", "epoch": self.epoch, "seq": self._seq, "charts": charts}
            self._tail.append(msg)
            self._send_msg(msg)
        return sent

    def add_stages(self, stages: list[str]) -> None:
        """Stages that first reported after the charts were built get a colour too."""
        new = [s for s in stages if s not in self.stages]
        if new:
            with self.hold_sync():
                self.stages = [*self.stages, *new]
                self.specs = self._specs(self.stages)

    @staticmethod
    def _specs(stages: list[str]) -> dict[str, dict[str, Any]]:
        """The charts' specs, the legend and colours in pipeline order (not by name)."""
        specs = {}
        for name in CHARTS:
            spec = vega_lite_spec(name)
            color = spec["encoding"]["color"]
            spec["encoding"] = {**spec["encoding"], "color": {**color, "scale": {"domain": stages}}}
            specs[name] = spec
        return specs

    def _send_msg(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)
        del self.sent[:-100]  # the last few, for tests and debugging
        self.send(msg)

    def _handle_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "hello":
            for msg in self._tail:
                self._send_msg(msg)
