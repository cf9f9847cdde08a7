"""``worker_view``: one worker of a job, running or gone.

Its lifecycle (the ``workers`` events), metrics over time (records and rates),
resources (CPU, memory; GPU where it reported any), its last log lines (following live
while the job runs, with a search over every stored line), a live stack (py-spy) and a
sampling profile drawn as an icicle chart. Everything but the live stack and a new
profile comes from the store, so a worker that is gone stays viewable.

The view reads through the :class:`~solstice_inspect.Job` it is given and never opens
Lance or calls Ray itself: the stack and the profile go through ``job.worker_stack`` and
``job.profile``. Every string reaches the page as text (``js/worker.js``) or escaped
(:meth:`WorkerView.static_html`).
"""

from __future__ import annotations

import html
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets as W
import numpy as np
import pandas as pd
import traitlets

from solstice_inspect.analysis.downsample import downsample
from solstice_inspect.analysis.query import checked_keywords, closest_ids, sql_literal
from solstice_inspect.errors import NotFound
from solstice_inspect.widgets.guarded import GuardedView
from solstice_inspect.widgets.views import bundle

if TYPE_CHECKING:
    from solstice_inspect.api import Job

log = logging.getLogger("solstice_inspect.widgets")

__all__ = ["WorkerView", "worker_view"]

#: the last log lines the view holds (every line stays in the store: ``job.logs()``)
MAX_LOG_LINES = 5_000
#: … within this many characters of messages, each cut at LINE_CHARS
LOG_CHARS = 400_000
LINE_CHARS = 1_000
#: most lines a search answers with (the newest)
MAX_SEARCH_LINES = 1_000
#: points per series in the charts (the state stays well under 1 MB)
MAX_POINTS = 1_000
MAX_EVENTS = 200
MAX_PROFILES = 50
STACK_CHARS = 100_000
PROFILE_SECONDS = 10

#: chart name -> (table, [(column, label)], title, y title)
CHARTS: dict[str, tuple[str, list[tuple[str, str]], str, str]] = {
    "records": ("worker_metrics", [("input_records", "in"), ("output_records", "out")],
                "Records (cumulative)", "records"),
    "rates": ("worker_metrics", [("input_rate", "in/s"), ("output_rate", "out/s")],
              "Rates", "records / s"),
    "cpu": ("worker_resources", [("cpu_percent", "CPU %"), ("gpu_utilization", "GPU %")],
            "CPU / GPU utilisation", "%"),
    "memory": ("worker_resources", [("memory_mb", "memory"), ("gpu_memory_mb", "GPU memory")],
               "Memory", "MB"),
}  # fmt: skip
EVENT_COLUMNS = ["ts", "event", "reason", "node_id", "pid", "processed_count", "error_count"]


def chart_spec(name: str) -> dict[str, Any]:
    """The Vega-Lite spec of one chart of the view; its rows are ``{t: epoch ms, series,
    v}`` in the named data source ``series``.

    Examples
    --------
    >>> chart_spec("rates")["title"]
    'Rates'
    """
    _, _, title, y_title = CHARTS[name]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "title": title,
        "height": 150,
        "data": {"name": "series"},
        "mark": {"type": "line", "strokeWidth": 1.5},
        "encoding": {
            "x": {"field": "t", "type": "temporal", "title": None,
                  "axis": {"format": "%H:%M:%S", "labelOverlap": True}},
            "y": {"field": "v", "type": "quantitative", "title": y_title,
                  "axis": {"format": "~s"}},
            "color": {"field": "series", "type": "nominal", "title": None,
                      "legend": {"orient": "top"}},
            "tooltip": [{"field": "series", "type": "nominal"},
                        {"field": "t", "type": "temporal", "format": "%H:%M:%S"},
                        {"field": "v", "type": "quantitative", "format": ",.2f"}],
        },
    }  # fmt: skip


def _secs(ts: pd.Series) -> np.ndarray:
    return ts.astype("datetime64[us, UTC]").astype("int64").to_numpy() / 1e6


def chart_points(frame: pd.DataFrame, name: str, max_points: int = MAX_POINTS) -> dict:
    """One chart's columnar points: ``t`` (epoch s), ``s`` (index into ``names``), ``v``.

    Series with no value at all are left out (a worker without a GPU has no GPU line);
    each series keeps at most ``max_points`` points (min/max per time bucket).
    """
    _, cols, _, _ = CHARTS[name]
    parts, names = [], []
    for column, label in cols:
        if frame.empty or column not in frame or frame[column].isna().all():
            continue
        v = frame[column].astype(float)
        pts = pd.DataFrame({"t": frame["ts"], "v": v}).dropna()
        pts = downsample(pts, "t", "v", max_points=max_points)
        pts["s"] = len(names)
        names.append(label)
        parts.append(pts)
    if not parts:
        return {"names": [], "t": [], "s": [], "v": []}
    pts = pd.concat(parts, ignore_index=True)
    return {
        "names": names,
        "t": np.round(_secs(pts["t"]), 3).tolist(),
        "s": pts["s"].astype(int).tolist(),
        "v": np.round(pts["v"].to_numpy(dtype=float), 3).tolist(),
    }


def log_tail(logs: pd.DataFrame, *, lines: int = MAX_LOG_LINES, chars: int = LOG_CHARS) -> list:
    """The last log lines as ``[epoch s, level, message]``, newest last.

    At most ``lines`` lines whose messages (each cut at LINE_CHARS characters) add up to
    at most ``chars`` characters.
    """
    if logs.empty:
        return []
    tail = logs.iloc[-lines:]
    msgs = tail["message"].fillna("").astype(str).str.slice(0, LINE_CHARS)
    sizes = msgs.str.len().to_numpy()[::-1].cumsum()[::-1]  # chars from each line to the end
    keep = sizes <= chars
    secs = np.round(_secs(tail["ts"]), 3)
    levels = tail["level"].fillna("").astype(str)
    return [[t, lv, m] for t, lv, m, k in zip(secs.tolist(), levels, msgs, keep) if k]


class WorkerPanel(anywidget.AnyWidget):
    """The front end of :class:`WorkerView` (``js/worker.js``)."""

    _esm = bundle("worker")
    summary = traitlets.Dict().tag(sync=True)
    lifecycle = traitlets.List().tag(sync=True)
    specs = traitlets.Dict().tag(sync=True)
    points = traitlets.Dict().tag(sync=True)
    logs = traitlets.List().tag(sync=True)
    log_total = traitlets.Int(0).tag(sync=True)
    search = traitlets.Dict().tag(sync=True)
    stack = traitlets.Dict().tag(sync=True)
    profile = traitlets.Dict().tag(sync=True)
    stored_profiles = traitlets.List().tag(sync=True)


class WorkerView(GuardedView, W.VBox):
    """One worker's view; build it with :func:`worker_view` (or ``WorkerView(job, id)``).

    Attributes
    ----------
    panel : WorkerPanel
        The anywidget whose synced state is everything shown.
    frames : dict[str, pandas.DataFrame]
        The worker's rows read so far: workers, worker_metrics, worker_resources, logs.
    updates : int
        Live updates applied.
    """

    view_name = "worker view"
    TABLES = ("workers", "worker_metrics", "worker_resources", "logs")

    def __init__(self, job: Job, worker_id: str, *, refresh: float = 1.0) -> None:
        self.job = job
        self.worker_id = worker_id
        self.updates = 0
        self._lock = threading.RLock()
        self._unsubscribe: Any = None
        self.live: Any = None
        self._profiling: threading.Thread | None = None
        running = job.status == "RUNNING"
        cursors = self._cursors() if running else {}
        where = f"worker_id = {sql_literal(worker_id)}"
        self.frames = {name: job.to_pandas(name, where=where) for name in self.TABLES}
        if all(f.empty for f in self.frames.values()):
            self._unknown()
        self.panel = WorkerPanel()
        self.panel.on_msg(self._on_msg)
        self.errors = W.HTML("")
        with self.panel.hold_sync():
            self.panel.specs = {name: chart_spec(name) for name in CHARTS}
            self.panel.stack = {}
            self.panel.profile = {}
            self.panel.search = {}
            self.panel.stored_profiles = self.stored_profiles()
            self._sync(set(self.TABLES))
        super().__init__(children=[self.panel, self.errors])
        self.add_class("si-worker")
        if running:
            self._follow(refresh, cursors)

    # ------------------------------------------------------------------ reading
    def _cursors(self) -> dict[str, int]:
        """Per table, the newest batch before the first read: the live reader goes on
        from there (a row is either in the first read or after the cursor)."""
        out = {}
        for name in self.TABLES:
            batches = self.job.table(name, columns=["batch"]).column(0)
            out[name] = int(batches.to_numpy().max()) if len(batches) else -1
        return out

    def _unknown(self) -> None:
        known: set[str] = set()
        for name in self.TABLES:
            known.update(self.job.table(name, columns=["worker_id"]).column(0).to_pylist())
        known.discard(None)
        where = f"job {self.job.job_id!r} (attempt {self.job.attempt_id})"
        close = closest_ids(self.worker_id, sorted(known))
        raise NotFound("worker", self.worker_id, where, close, len(known))

    def _follow(self, refresh: float, cursors: dict[str, int]) -> None:
        from solstice_inspect.live import LiveJob

        self.live = LiveJob(self.job, refresh=refresh, tables=list(self.TABLES), follow=False)
        self.live.cursors.update({k: max(v, -1) for k, v in cursors.items()})
        self._unsubscribe = self.live.subscribe(self.update)
        self.live.start()

    def update(self, rows: dict[str, Any]) -> None:
        """Apply one live poll's rows (only this worker's are kept)."""
        with self._guard("updating"), self._lock:
            changed = set()
            for name, table in rows.items():
                df = table.to_pandas()
                df = df[df["worker_id"] == self.worker_id]
                if df.empty:
                    continue
                both = pd.concat([self.frames[name], df], ignore_index=True)
                self.frames[name] = both.sort_values("ts", kind="stable").reset_index(drop=True)
                changed.add(name)
            if changed or (self.live is not None and self.live.done):
                with self.panel.hold_sync():
                    self._sync(changed | {"workers"})
                self.updates += 1
        if self.live is not None and self.live.done:
            self._stop_live()

    # ------------------------------------------------------------------ state
    def _sync(self, changed: set[str]) -> None:
        f = self.frames
        if "workers" in changed or "worker_resources" in changed:
            self.panel.summary = self.summary()
            self.panel.lifecycle = self.lifecycle()
        if changed & {"worker_metrics", "worker_resources"}:
            self.panel.points = {name: chart_points(f[CHARTS[name][0]], name) for name in CHARTS}
        if "logs" in changed:
            self.panel.logs = log_tail(f["logs"])
            self.panel.log_total = len(f["logs"])

    def summary(self) -> dict[str, Any]:
        """The header: stage, status, node, pid, times, last counters and resources."""
        f = self.frames
        events, metrics, res = f["workers"], f["worker_metrics"], f["worker_resources"]
        first = [d["ts"].iloc[0] for d in f.values() if not d.empty]
        last = [d["ts"].iloc[-1] for d in f.values() if not d.empty]
        stage = next((str(d["stage_id"].dropna().iloc[-1]) for d in f.values()
                      if "stage_id" in d and d["stage_id"].notna().any()), None)  # fmt: skip
        status = str(events["event"].iloc[-1]) if not events.empty else "UNKNOWN"
        job_running = self.job.status == "RUNNING" and (self.live is None or not self.live.done)
        if status == "STARTED" and not job_running:
            status = "ENDED WITH THE JOB"
        node = pid = None
        parts = [d[["ts", "node_id", "pid"]] for d in (events, res) if not d.empty]
        if parts:
            ids = pd.DataFrame(pd.concat(parts, ignore_index=True))
            ids = ids.sort_values("ts", kind="stable")
            nodes, pids = ids["node_id"].dropna(), ids["pid"].dropna()
            node = str(nodes.iloc[-1]) if len(nodes) else None
            pid = int(pids.iloc[-1]) if len(pids) else None
        out: dict[str, Any] = {
            "worker_id": self.worker_id, "job_id": self.job.job_id,
            "attempt_id": self.job.attempt_id, "stage_id": stage, "status": status,
            "alive": status == "STARTED", "job_running": job_running, "node_id": node,
            "pid": pid, "first_seen": _secs(pd.Series(first))[0] if first else None,
            "last_seen": float(max(_secs(pd.Series(last)))) if last else None,
            "reports": len(metrics), "log_lines": len(f["logs"]),
        }  # fmt: skip
        if not metrics.empty:
            m = metrics.iloc[-1]
            for col in ("input_records", "output_records", "processed_count"):
                out[col] = None if pd.isna(m[col]) else int(m[col])
            for col in ("input_rate", "output_rate"):
                out[col] = None if pd.isna(m[col]) else round(float(m[col]), 3)
        if not res.empty:
            for col in ("cpu_percent", "memory_mb", "gpu_utilization", "gpu_memory_mb"):
                vals = res[col].dropna()
                out[col] = round(float(vals.iloc[-1]), 3) if len(vals) else None
        return out

    def lifecycle(self) -> list[dict[str, Any]]:
        """The worker's lifecycle events, oldest first (the last MAX_EVENTS)."""
        ev = self.frames["workers"]
        if ev.empty:
            return []
        ev = ev.iloc[-MAX_EVENTS:]
        rows = []
        for r in ev[EVENT_COLUMNS].itertuples(index=False):
            row = dict(zip(EVENT_COLUMNS, r))
            row["ts"] = round(float(_secs(pd.Series([row["ts"]]))[0]), 3)
            for k, v in row.items():
                if k != "ts" and v is not None and pd.isna(v):
                    row[k] = None
                elif isinstance(v, (np.integer,)):
                    row[k] = int(v)
            rows.append(row)
        return rows

    # ------------------------------------------------------------------ actions
    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "search":
            self.find(str(content.get("query") or ""))
        elif kind == "stack":
            # py-spy on the worker's node through Ray: off the kernel's message loop
            threading.Thread(target=self._stack_in_background, name="si-stack", daemon=True).start()
        elif kind == "profile":
            self.start_profile(float(content.get("seconds") or PROFILE_SECONDS))
        elif kind == "show_profile":
            with self._guard("showing a stored profile"):
                self.show_stored_profile(str(content.get("profile_id") or ""))

    def find(self, query: str) -> dict[str, Any]:
        """Search every stored line of this worker (``job.logs(worker=, search=)``); the
        newest MAX_SEARCH_LINES matches go to the page."""
        answer: dict[str, Any] = {"query": query}
        if not query:
            self.panel.search = {}
            return {}
        try:
            found = self.job.logs(worker=self.worker_id, search=query)
            answer["total"] = len(found)
            answer["lines"] = log_tail(found, lines=MAX_SEARCH_LINES)
        except Exception as exc:  # noqa: BLE001 - shown beside the search box
            answer["error"] = f"{type(exc).__name__}: {exc}"
        self.panel.search = answer
        return answer

    def _stack_in_background(self) -> None:
        with self._guard("reading the stack"):
            self.fetch_stack()

    def fetch_stack(self) -> dict[str, Any]:
        """A live worker: its py-spy dump; a gone one: its last incident's stack, else its
        last exception's, else a message saying there is none."""
        out: dict[str, Any]
        if self.summary()["alive"]:
            try:
                out = {
                    "source": "live (py-spy dump)",
                    "text": self.job.worker_stack(self.worker_id),
                }
            except Exception as exc:  # noqa: BLE001 - e.g. it died meanwhile: say so, then fall back
                out = {**self._stored_stack(), "error": f"{type(exc).__name__}: {exc}"}
        else:
            out = self._stored_stack()
        out["text"] = str(out.get("text") or "")[:STACK_CHARS]
        out["at"] = time.time()
        self.panel.stack = out
        return out

    def _stored_stack(self) -> dict[str, Any]:
        where = f"worker_id = {sql_literal(self.worker_id)}"
        sources = [("incidents", "stack", "the last incident"),
                   ("exceptions", "stacktrace", "the last exception")]  # fmt: skip
        for table, column, label in sources:
            rows = self.job.to_pandas(table, columns=["ts", column], where=where)
            texts: pd.Series = rows[column]
            kept = rows.loc[texts.notna() & (texts != "")]
            if len(kept):
                last = kept.iloc[-1]
                when = pd.Timestamp(last["ts"]).strftime("%Y-%m-%d %H:%M:%S UTC")
                return {"source": f"{label} ({when})", "text": str(last[column])}
        return {
            "source": "none",
            "text": "",
            "error": f"worker {self.worker_id} is not running (a live stack needs a live "
            "worker) and the store holds no incident or exception stack of it",
        }

    def start_profile(self, seconds: float = PROFILE_SECONDS) -> threading.Thread | None:
        """Profile the worker in a background thread (the kernel stays free); the icicle
        chart goes to the page when the profile is stored."""
        if self._profiling is not None and self._profiling.is_alive():
            return self._profiling
        self.panel.profile = {"busy": True, "seconds": seconds, "started": time.time()}
        self._profiling = threading.Thread(
            target=self._profile, args=(seconds,), name="si-profile", daemon=True
        )
        self._profiling.start()
        return self._profiling

    def _profile(self, seconds: float) -> None:
        try:
            prof = self.job.profile(self.worker_id, seconds=seconds)
            self.show_profile(prof)
        except Exception as exc:  # noqa: BLE001 - shown in the profile area
            self.panel.profile = {"busy": False, "error": f"{type(exc).__name__}: {exc}"}

    def stored_profiles(self) -> list[dict[str, Any]]:
        """This worker's stored profiles, newest first (the last MAX_PROFILES): id, time,
        samples."""
        where = f"worker_id = {sql_literal(self.worker_id)}"
        rows = self.job.to_pandas("profiles", columns=["ts", "profile_id", "samples"], where=where)
        if rows.empty:
            return []
        per = rows.groupby("profile_id").agg(ts=("ts", "min"), samples=("samples", "sum"))
        per = per.sort_values("ts", ascending=False).head(MAX_PROFILES)
        return [
            {"profile_id": str(pid), "ts": round(float(_secs(pd.Series([r.ts]))[0]), 3),
             "samples": int(r.samples)}
            for pid, r in zip(per.index, per.itertuples(index=False))
        ]  # fmt: skip

    def show_stored_profile(self, profile_id: str) -> None:
        """Draw one of :meth:`stored_profiles` (the worker may be long gone)."""
        every = self.job.profiles(worker=self.worker_id)
        prof = every.loc[every["profile_id"] == profile_id].reset_index(drop=True)
        if prof.empty:
            known = [p["profile_id"] for p in self.panel.stored_profiles]
            raise NotFound("profile", profile_id, f"worker {self.worker_id}",
                           closest_ids(profile_id, known), len(known))  # fmt: skip
        self.show_profile(prof)

    def show_profile(self, prof: pd.DataFrame) -> None:
        """Draw a stored profile (rows of ``job.profile``/``job.profiles``)."""
        from solstice_inspect.charts import icicle

        spec = icicle(prof).to_dict()
        with self.panel.hold_sync():
            self.panel.profile = {
                "busy": False, "spec": spec, "profile_id": str(prof["profile_id"].iloc[0]),
                "samples": int(prof["samples"].sum()), "stacks": len(prof),
            }  # fmt: skip
            self.panel.stored_profiles = self.stored_profiles()

    # ------------------------------------------------------------------ ending
    def _stop_live(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.live is not None:
            self.live.stop()

    def close(self) -> None:
        """Stop following the job and close the view."""
        self._stop_live()
        for child in (getattr(self, "panel", None), getattr(self, "errors", None)):
            if child is not None:
                child.close()
        super().close()

    # ------------------------------------------------------------------ static
    def static_html(self) -> str:
        """The view without a kernel: summary, lifecycle, the last 200 log lines, the
        stack and profile fetched, all escaped."""
        e = html.escape
        s = self.panel.summary
        facts = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in s.items())
        events = "".join(
            "<tr>" + "".join(f"<td>{e(str(r.get(c, '')))}</td>" for c in EVENT_COLUMNS) + "</tr>"
            for r in self.panel.lifecycle
        )
        head = "".join(f"<th>{e(c)}</th>" for c in EVENT_COLUMNS)
        lines = "\n".join(f"{lv} {m}" for _, lv, m in self.panel.logs[-200:])
        stack = self.panel.stack.get("text") or ""
        prof = self.panel.profile
        prof_line = (
            f"<p>Profile {e(str(prof['profile_id']))}: {prof['samples']:,} samples</p>"
            if prof.get("spec") else ""
        )  # fmt: skip
        return (
            f"<div class='si-worker-static'><h4>Worker {e(self.worker_id)}</h4>"
            f"<table>{facts}</table><h5>Lifecycle</h5><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{events}</tbody></table>"
            f"<h5>Log (last {min(200, len(self.panel.logs))} of {self.panel.log_total:,} lines)"
            f"</h5><pre>{e(lines)}</pre>"
            + (f"<h5>Stack</h5><pre>{e(stack)}</pre>" if stack else "")
            + prof_line
            + "</div>"
        )

    def _repr_html_(self) -> str:
        return self.static_html()


@checked_keywords
def worker_view(job: Job, worker_id: str, *, refresh: float = 1.0) -> WorkerView:
    """One worker of a job: lifecycle, metrics, resources, logs, stack and profile.

    Works the same for a running job (the view follows it: new metrics and log lines
    appear as they are stored) and for an archived one, and for a worker that is gone:
    everything shown comes from the store. The live stack (py-spy) and a new profile
    need the worker alive; a gone worker's stack button shows its last incident's (or
    exception's) stack.

    Parameters
    ----------
    job
        A :class:`~solstice_inspect.Job`.
    worker_id
        One of its workers (``job.workers()``).
    refresh
        Seconds between live updates while the job runs.

    Raises
    ------
    NotFound
        No worker ``worker_id`` in the job, naming the closest known ids.

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> store = si.connect(tempfile.mkdtemp())
    >>> with store.record("etl_001") as rec:
    ...     _ = rec.ingest([si.envelope("worker_started", "etl_001", "parse_w0_a1b2c3",
    ...         1764331200.0, {"stage_id": "parse"}), si.envelope("log", "etl_001",
    ...         "parse_w0_a1b2c3", 1764331201.0, {"level": "INFO", "message": "hello"})])
    >>> view = si.worker_view(store.job("etl_001"), "parse_w0_a1b2c3")
    >>> view.panel.summary["stage_id"], [m for _, _, m in view.panel.logs]
    ('parse', ['hello'])
    """
    if not refresh > 0:
        raise ValueError(f"refresh must be > 0 seconds, not {refresh!r}")
    return WorkerView(job, worker_id, refresh=refresh)
