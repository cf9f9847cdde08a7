"""The Prometheus exporter: the store's figures as metric families (``docs/ops.md``).

One :class:`StoreCollector` answers each scrape from the store, with the figures the
monitor renders (:class:`~solstice_inspect.analysis.snapshot.JobSnapshot`), so a value in
Prometheus equals the value the notebook shows. A scrape stays cheap:

- a finished attempt (COMPLETED, FAILED, CANCELLED) is read once, whole, with the catalog
  row of the scrape's listing; its samples are kept (its figures no longer change, and
  neither do its counters' exported values) until it leaves the ``recent`` window;
- a running (or LOST) attempt is followed by a :class:`~solstice_inspect.live.LiveJob`:
  each scrape reads only the rows written since the previous one;
- the catalog is read once per scrape (:meth:`Store.jobs`): followed attempts take their
  catalog row from it too;
- the stage figures come from :class:`~solstice_inspect.ops.stagefold.StageFold`, which
  folds ``stage_metrics`` rows by the model's rules for every stage of a batch at once
  (the model's per-stage pandas work cost ~170 ms per attempt and scrape with 20 stages:
  ``docs/benchmarks.md``); the rest of the model (status, DAG, workers) is the
  ``JobSnapshot``'s.

Counters never go down while a job runs: the last value exported per series is kept and
a smaller one is never exported.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample as PromSample

from solstice_inspect.analysis.checkpoints import checkpoint_rows
from solstice_inspect.analysis.snapshot import SNAPSHOT_COLUMNS, JobSnapshot
from solstice_inspect.analysis.stages import finite
from solstice_inspect.api import Store
from solstice_inspect.errors import InspectError, StoreError
from solstice_inspect.live import LiveJob
from solstice_inspect.ops.stagefold import COLUMNS, NO_WINDOWS, StageFold, elapsed_s
from solstice_inspect.schema import FINAL_STATUSES, STATUSES
from solstice_inspect.store.reader import Job

log = logging.getLogger("solstice_inspect.ops")

__all__ = ["FAMILIES", "Family", "StoreCollector", "attempt_samples"]

#: default of ``--recent``: finished attempts stay exported this long after they end
RECENT_S = 3600.0
#: what a failed read of one attempt raises (it is left out of the scrape and retried)
_READ_ERRORS = (InspectError, OSError, ValueError, RuntimeError, KeyError)

_JOB = ("job_id", "attempt_id")
_STAGE = (*_JOB, "stage_id")
_WORKER = (*_STAGE, "worker_id")


@dataclass(frozen=True)
class Family:
    """One metric family: its name (as scraped), kind, labels, unit and where it comes from."""

    name: str
    kind: str  # "counter" or "gauge"
    labels: tuple[str, ...]
    unit: str
    help: str
    workers: bool = False  # only with ``--workers``


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("solstice_stage_input_records_total", "counter", _STAGE, "records",
               "Records the stage has taken in (sum over its workers, alive or stopped)."),
        Family("solstice_stage_output_records_total", "counter", _STAGE, "records",
               "Records the stage has emitted (a sink reports 0: what it wrote is its input)."),
        Family("solstice_stage_exceptions_total", "counter", _STAGE, "exceptions",
               "Exception occurrences recorded for the stage."),
        Family("solstice_checkpoints_total", "counter", (*_STAGE, "status"), "checkpoints",
               "Checkpoints of the stage that ended, by final status (COMPLETED, FAILED)."),
        Family("solstice_stage_output_rate", "gauge", _STAGE, "records per second",
               "Output rate: of the latest window while running, the mean over the run after."),
        Family("solstice_stage_queue_lag", "gauge", _STAGE, "messages",
               "Input queue lag of the stage in its latest window."),
        Family("solstice_stage_backpressure_ratio", "gauge", _STAGE, "ratio (0-1)",
               "Fraction of the whole run's time the stage was backpressured (the monitor's "
               "figure); to alert on recent backpressure use "
               "rate(solstice_stage_backpressured_seconds_total[5m])."),
        Family("solstice_stage_backpressured_seconds_total", "counter", _STAGE, "seconds",
               "Time the stage was backpressured (time-weighted over its windows): alert on "
               "its rate() (the share of recent time backpressured, HIGH above 0.5)."),
        Family("solstice_stage_workers_alive", "gauge", _STAGE, "workers",
               "Workers of the stage alive in its latest window (absent once LOST)."),
        Family("solstice_checkpoint_duration_seconds", "gauge", _STAGE, "seconds",
               "Duration of the stage's latest completed checkpoint."),
        Family("solstice_checkpoint_size_bytes", "gauge", _STAGE, "bytes",
               "State size of the stage's latest completed checkpoint."),
        Family("solstice_job_duration_seconds", "gauge", _JOB, "seconds",
               "Time since the attempt started (running), or its start to its end."),
        Family("solstice_job_status", "gauge", (*_JOB, "status"), "1 or 0",
               "1 for the attempt's current status, 0 for the other statuses."),
        Family("solstice_worker_input_records_total", "counter", _WORKER, "records",
               "Records the worker has taken in (its latest cumulative report).", True),
        Family("solstice_worker_output_records_total", "counter", _WORKER, "records",
               "Records the worker has emitted (its latest cumulative report).", True),
        Family("solstice_worker_processed_splits_total", "counter", _WORKER, "splits",
               "Splits the worker has processed (its stop message's count when newer).", True),
        Family("solstice_worker_output_rate", "gauge", _WORKER, "records per second",
               "The worker's output rate in its latest report.", True),
        Family("solstice_worker_alive", "gauge", _WORKER, "1 or 0",
               "1 while the worker runs, 0 once it stopped, failed or was killed.", True),
        Family("solstice_exporter_scrape_seconds", "gauge", (), "seconds",
               "Time this scrape took to read the store and build the samples."),
        Family("solstice_exporter_attempts", "gauge", ("state",), "attempts",
               "Attempts exported: 'cached' (finished, read once) or 'followed' (read live)."),
        Family("solstice_exporter_read_errors_total", "counter", (), "errors",
               "Reads of the store that failed (that attempt is left out of the scrape)."),
    )
}  # fmt: skip

#: one sample: (family name, label values in the family's label order, value)
Sample = tuple[str, tuple[str, ...], float]

#: the tables the exporter follows, with the columns it needs (None: all)
_TABLES: dict[str, list[str] | None] = {
    "job": None,
    "stages": None,
    "stage_metrics": COLUMNS,
    "exceptions": ["ts", "stage_id"],
    "checkpoints": None,
}
_WORKER_TABLES = ("worker_metrics", "workers")


class _ListedJob(Job):
    """An attempt whose catalog row is the one the scrape's listing read (``Store.jobs``,
    heartbeats applied, LOST derived) instead of a read of the catalog per poll. A poll
    still reads its tables after that row, so a final status means every row is there."""

    row: dict[str, Any]

    def catalog_row(self) -> dict[str, Any]:
        return dict(self.row)


class _Attempt:
    """One attempt being read: its rows (whole once, or from a live cursor), its model."""

    def __init__(self, store: Store, job_id: str, attempt_id: str, workers: bool) -> None:
        tables = dict(_TABLES)
        if workers:
            tables.update({t: SNAPSHOT_COLUMNS[t] for t in _WORKER_TABLES})
        self.tables = tables
        self.job = _ListedJob(store, job_id, attempt_id)
        self.snap = JobSnapshot(job_id, attempt_id)
        self.stages = StageFold()
        self.exceptions: Counter[str] = Counter()
        self.checkpoints: list[pa.Table] = []
        self._checkpoint_rows: pd.DataFrame | None = None
        columns = {k: v for k, v in tables.items() if v is not None}
        self.live = LiveJob(self.job, tables=list(tables), columns=columns)

    def read(self) -> dict[str, pa.Table]:
        """Every row of the attempt's tables (a finished attempt's one read)."""
        return {name: self.job.scan(name, columns=cols).table for name, cols in self.tables.items()}

    def poll(self, row: dict[str, Any]) -> None:
        """Fold the rows written since the previous poll (from the live cursors), the
        attempt's listing ``row`` read before them."""
        self.job.row = row
        self.add(self.live.poll(), self.live.catalog)

    def add(self, rows: dict[str, pa.Table], catalog: dict[str, Any]) -> None:
        exc = rows.pop("exceptions", None)
        if exc is not None:
            self.exceptions.update(str(s or "") for s in exc.column("stage_id").to_pylist())
        chk = rows.pop("checkpoints", None)
        if chk is not None and chk.num_rows:
            self.checkpoints.append(chk)
            self._checkpoint_rows = None
        sm = rows.pop("stage_metrics", None)
        if sm is not None:
            self.stages.add(sm)
        self.snap.add(rows)
        self.snap.set_catalog(catalog)

    def checkpoint_rows(self) -> pd.DataFrame | None:
        if not self.checkpoints:
            return None
        if self._checkpoint_rows is None:
            table = pa.concat_tables(self.checkpoints)
            self.checkpoints = [table]
            self._checkpoint_rows = checkpoint_rows(table)
        return self._checkpoint_rows

    def samples(self, now: float, workers: bool) -> list[Sample]:
        running = self.snap.status == "RUNNING"
        figures = self.stages.figures(running=running)
        stages = []
        for sid in [*self.snap.stage_ids, *sorted(set(figures) - set(self.snap.stage_ids))]:
            stages.append({"stage_id": sid, **figures.get(sid, NO_WINDOWS)})
        return attempt_samples(
            self.snap,
            stages=stages,
            exceptions=dict(self.exceptions),
            checkpoints=self.checkpoint_rows(),
            now=now,
            workers=workers,
        )


def attempt_samples(
    snap: JobSnapshot,
    *,
    exceptions: dict[str, int],
    checkpoints: pd.DataFrame | None,
    now: float,
    workers: bool = False,
    stages: list[dict[str, Any]] | None = None,
) -> list[Sample]:
    """Every sample of one attempt, from its model (see the module doc and docs/ops.md).

    Parameters
    ----------
    snap
        The attempt's model, its catalog row set (status with LOST derived).
    exceptions
        Exception occurrences per stage id.
    checkpoints
        :func:`~solstice_inspect.analysis.checkpoints.checkpoint_rows` of the attempt.
    now
        The time ``solstice_job_duration_seconds`` of a running attempt is measured to.
    workers
        Add the worker-level families.
    stages
        The stage figures, one dict per stage (``stage_id`` and ``_STAGE_FIGURES``; a
        figure None or missing is left out), as :class:`StageFold` gives them; with
        ``elapsed_s`` from the catalog row. None: the model's own ``stage_summary()`` and
        ``header()``, which cost ~100 times more (the exporter's tests check both agree).
    """
    job = (snap.job_id, snap.attempt_id)
    status = snap.status
    out: list[Sample] = []

    def put(name: str, labels: tuple[str, ...], value: Any) -> None:
        v = finite(value)
        if v is not None:
            out.append((name, labels, v))

    if stages is None:
        stages = snap.stage_summary().to_dict("records")
        elapsed = snap.header(now=now)["elapsed_s"]
    else:
        elapsed = elapsed_s(snap.catalog, status, now=now)
    for row in stages:
        stage = (*job, str(row["stage_id"]))
        put("solstice_stage_input_records_total", stage, row.get("input_records"))
        put("solstice_stage_output_records_total", stage, row.get("output_records"))
        put("solstice_stage_exceptions_total", stage, exceptions.get(stage[2], 0))
        put("solstice_stage_output_rate", stage, row.get("display_rate"))
        put("solstice_stage_queue_lag", stage, row.get("queue_lag"))
        put("solstice_stage_backpressure_ratio", stage, row.get("backpressure_ratio"))
        put("solstice_stage_backpressured_seconds_total", stage, row.get("backpressured_s"))
        if status != "LOST":  # its recorder is gone: how many workers live now is unknown
            put("solstice_stage_workers_alive", stage, row.get("workers_alive"))
    known = {labels[2] for name, labels, _ in out}
    for sid, n in exceptions.items():  # exceptions of stages the DAG does not name
        if sid not in known:
            put("solstice_stage_exceptions_total", (*job, sid), n)
    if checkpoints is not None and not checkpoints.empty:
        ended = checkpoints[
            checkpoints["status"].notna() & (checkpoints["status"] != "IN_PROGRESS")
        ]
        counts = Counter(zip(ended["stage_id"].astype(str), ended["status"].astype(str)))
        for (sid, st), n in counts.items():
            put("solstice_checkpoints_total", (*job, sid, st), n)
        done = checkpoints[checkpoints["status"] == "COMPLETED"]
        for sid, rows in done.groupby("stage_id", sort=False):
            last = rows.iloc[-1]  # rows are in trigger-time order
            ms = finite(last["duration_ms"])
            put("solstice_checkpoint_duration_seconds", (*job, str(sid)),
                None if ms is None else ms / 1000.0)  # fmt: skip
            put("solstice_checkpoint_size_bytes", (*job, str(sid)), last["state_size_bytes"])
    put("solstice_job_duration_seconds", job, elapsed)
    for word in STATUSES:
        put("solstice_job_status", (*job, word), 1.0 if word == status else 0.0)
    if workers:
        for w in snap.workers().to_pylist():
            labels = (*job, str(w["stage_id"] or ""), str(w["worker_id"]))
            put("solstice_worker_input_records_total", labels, w["input_records"])
            put("solstice_worker_output_records_total", labels, w["output_records"])
            put("solstice_worker_processed_splits_total", labels, w["processed_count"])
            put("solstice_worker_output_rate", labels, w["output_rate"])
            if w["status"] is not None:  # no lifecycle message: whether it runs is unknown
                put("solstice_worker_alive", labels, 1.0 if w["status"] == "RUNNING" else 0.0)
    return out


class StoreCollector(Collector):
    """A Prometheus collector over a job store; register it in a ``CollectorRegistry``.

    Parameters
    ----------
    store
        A :class:`~solstice_inspect.api.Store`, or a path/URI.
    recent
        Seconds a finished (or LOST) attempt stays exported after it ended.
    workers
        Export the worker-level families too (one series per worker: mind cardinality).
    clock
        The time source (tests).

    Raises
    ------
    StoreError
        A local store path that does not exist or is not a directory.

    Examples
    --------
    >>> import tempfile
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> registry.register(StoreCollector(tempfile.mkdtemp()))
    >>> b"solstice_job_status" in generate_latest(registry)
    True
    """

    def __init__(
        self,
        store: Store | str,
        *,
        recent: float = RECENT_S,
        workers: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not recent >= 0:
            raise ValueError(f"recent must be >= 0 seconds, not {recent!r}")
        self.store = store if isinstance(store, Store) else Store(store)
        check_store(self.store)
        self.recent = float(recent)
        self.workers = bool(workers)
        self.clock = clock
        self._lock = threading.Lock()
        self._following: dict[tuple[str, str], _Attempt] = {}
        self._cached: dict[tuple[str, str], _Done] = {}
        self._high: dict[tuple[str, tuple[str, ...]], float] = {}
        self.read_errors = 0
        self.last_scrape_s: float | None = None
        self._warned: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return (
            f"StoreCollector({self.store.root!r}, followed={len(self._following)}, "
            f"cached={len(self._cached)})"
        )

    # ------------------------------------------------------------------ selection
    def exported_attempts(self, now: float) -> list[tuple[str, str]]:
        """(job_id, attempt_id) of the latest attempt of each job that is running, or
        that ended (LOST: last heartbeat) within ``recent`` seconds of ``now``."""
        return list(self._listing(now))

    def _listing(self, now: float) -> dict[tuple[str, str], dict[str, Any] | None]:
        """The exported attempts (see :meth:`exported_attempts`) with their catalog rows
        (None for an attempt whose samples are kept: it needs none)."""
        df = self.store.jobs()
        if df.empty:
            return {}
        end = df["end_time"].where(df["end_time"].notna(), df["heartbeat"])
        end_s = pd.to_datetime(end, utc=True).map(lambda t: t.timestamp() if pd.notna(t) else None)
        out: dict[tuple[str, str], dict[str, Any] | None] = {}
        read = []
        for i, (job_id, attempt_id, status, ended) in enumerate(
            zip(df["job_id"], df["attempt_id"], df["status"], end_s)
        ):
            if status == "RUNNING" or ended is None or ended >= now - self.recent:
                key = (str(job_id), str(attempt_id))
                out[key] = None
                if key not in self._cached:
                    read.append(i)
        for row in df.iloc[read].to_dict("records"):  # rows as dicts only where needed
            out[(str(row["job_id"]), str(row["attempt_id"]))] = row
        return out

    # ------------------------------------------------------------------ scrape
    def samples(self) -> list[Sample]:
        """Every sample of one scrape (what :meth:`collect` groups into families)."""
        fresh, done = self._scrape()
        return [s for d in done for s in d.samples] + fresh

    def _scrape(self) -> tuple[list[Sample], list[_Done]]:
        """One scrape: the samples read now (followed attempts, the exporter's own) and
        the finished attempts' (kept)."""
        with self._lock:
            started = time.perf_counter()
            now = self.clock()
            out: list[Sample] = []
            done: list[_Done] = []
            try:
                listing = self._listing(now)
            except (InspectError, OSError, ValueError, RuntimeError) as exc:
                self._error(("", "catalog"), f"cannot list the jobs of {self.store.root}: {exc}")
                listing = {}
            failed = self._read_finished(listing, now)
            for key in listing:
                got = None if key in failed else self._attempt_samples(key, listing[key], now)
                if isinstance(got, _Done):
                    done.append(got)
                elif got is not None:
                    out.extend(got)
            self._forget(set(listing))
            out = self._never_lower(out)
            self.last_scrape_s = time.perf_counter() - started
            out += [
                ("solstice_exporter_scrape_seconds", (), self.last_scrape_s),
                ("solstice_exporter_attempts", ("cached",), float(len(self._cached))),
                ("solstice_exporter_attempts", ("followed",), float(len(self._following))),
                ("solstice_exporter_read_errors_total", (), float(self.read_errors)),
            ]
            return out, done

    def _read_finished(
        self, listing: dict[tuple[str, str], dict[str, Any] | None], now: float
    ) -> set[tuple[str, str]]:
        """Read the finished attempts met for the first time, whole, with their listing
        row, and keep their samples; return those that could not be read (retried next
        scrape). No live reader: its first poll would read the catalog once more."""
        known = {*self._cached, *self._following}
        failed: set[tuple[str, str]] = set()
        for key, row in listing.items():
            if row is None or row["status"] not in FINAL_STATUSES or key in known:
                continue
            attempt = _Attempt(self.store, *key, self.workers)
            try:
                attempt.add(attempt.read(), row)  # final: everything is written
                self._cached[key] = self._done(attempt.samples(now, self.workers))
            except _READ_ERRORS as exc:
                failed.add(key)
                self._error(key, f"cannot read job {key[0]!r} attempt {key[1]}: {exc}")
        return failed

    def _attempt_samples(
        self, key: tuple[str, str], row: dict[str, Any] | None, now: float
    ) -> list[Sample] | _Done | None:
        cached = self._cached.get(key)
        if cached is not None or row is None:
            return cached
        attempt = self._following.get(key)
        try:
            if attempt is None:
                attempt = self._following[key] = _Attempt(self.store, *key, self.workers)
            attempt.poll(row)
            samples = attempt.samples(now, self.workers)
        except _READ_ERRORS as exc:
            self._following.pop(key, None)  # start afresh next scrape
            self._error(key, f"cannot read job {key[0]!r} attempt {key[1]}: {exc}")
            return None
        if attempt.snap.status in FINAL_STATUSES:
            del self._following[key]
            self._cached[key] = done = self._done(samples)  # its figures no longer change
            return done
        return samples

    def _done(self, samples: list[Sample]) -> _Done:
        """A finished attempt's samples as every later scrape exports them."""
        samples = self._never_lower(samples)
        by_family: dict[str, list[PromSample]] = {}
        for name, labels, value in samples:
            by_family.setdefault(name, []).append(_sample(name, labels, value))
        return _Done(samples, by_family)

    def _forget(self, keep: set[tuple[str, str]]) -> None:
        for table in (self._following, self._cached):
            for key in [k for k in table if k not in keep]:
                del table[key]
        self._high = {k: v for k, v in self._high.items() if k[1][:2] in keep}

    def _never_lower(self, samples: list[Sample]) -> list[Sample]:
        """Counters as exported before or higher: a counter never goes down."""
        out = []
        for name, labels, value in samples:
            if FAMILIES[name].kind == "counter":
                key = (name, labels)
                value = max(value, self._high.get(key, value))
                self._high[key] = value
            out.append((name, labels, value))
        return out

    def _error(self, key: tuple[str, str], message: str) -> None:
        self.read_errors += 1
        if key not in self._warned:  # once per attempt: a scrape every few s must not flood
            self._warned.add(key)
            log.warning("%s (left out of the scrape; retried at every scrape)", message)

    def collect(self) -> Iterator[Metric]:
        """The metric families of one scrape (prometheus_client's collector interface)."""
        fresh, done = self._scrape()
        by_family: dict[str, list[PromSample]] = {n: [] for n in FAMILIES}
        for d in done:  # built once per finished attempt
            for name, samples in d.by_family.items():
                by_family[name].extend(samples)
        for name, labels, value in fresh:
            by_family[name].append(_sample(name, labels, value))
        for name, fam in FAMILIES.items():
            if fam.workers and not self.workers:
                continue
            doc = f"{fam.help} Unit: {fam.unit}."
            metric: CounterMetricFamily | GaugeMetricFamily
            if fam.kind == "counter":
                metric = CounterMetricFamily(name, doc, labels=list(fam.labels))
            else:
                metric = GaugeMetricFamily(name, doc, labels=list(fam.labels))
            metric.samples = by_family[name]
            yield metric


@dataclass(frozen=True)
class _Done:
    """A finished attempt's samples (counters as exported), and grouped by family."""

    samples: list[Sample]
    by_family: dict[str, list[PromSample]]


def _sample(name: str, labels: tuple[str, ...], value: float) -> PromSample:
    """What ``add_metric`` of the family ``name`` makes (a counter's name ends in _total)."""
    return PromSample(name, dict(zip(FAMILIES[name].labels, labels)), value)


def check_store(store: Store) -> None:
    """Raise :class:`StoreError` when a local store path is missing or not a folder."""
    root = store.root
    if "://" in root:
        return
    if not os.path.exists(root):
        raise StoreError(
            f"no store at {root}: the folder does not exist; pass --store PATH (or set "
            "$SOLSTICE_INSPECT_STORE) to a folder that recorders write to"
        )
    if not os.path.isdir(root):
        raise StoreError(f"{root} is a file, not a store folder; pass --store PATH to a folder")
