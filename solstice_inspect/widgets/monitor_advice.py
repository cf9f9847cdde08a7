"""The monitor's incidents and advice: header cards, an Incidents tab, an Advice tab.

- **Cards** in the header: stragglers the workers reported (``job.incidents()``), newest
  first, and the stages whose figures are unusual against the earlier runs of the job id
  (``si.regressions``), each a short sentence with its figures.
- **Incidents** tab: every incident, with what became of its split (click one: its
  split's lineage opens below).
- **Advice** tab: the regressions and ``job.recommendations()`` (workers to add or
  remove per stage, with the evidence).

Regressions read the job's earlier runs, so they are computed off the kernel's way (one
thread shared by every monitor) when the monitor opens and again when the attempt ends;
recommendations, which read the run's worker metrics, only when the Advice tab is shown.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from solstice_inspect.widgets.monitor_tabs import api_job

log = logging.getLogger("solstice_inspect.widgets")

#: cards shown in the header (the tabs hold the rest)
MAX_CARDS = 4
INCIDENT_COLUMNS = [
    "detected_at", "kind", "stage_id", "worker_id", "split_id", "elapsed_s", "threshold_s",
    "status", "outcome", "description", "stack", "log_tail",
]  # fmt: skip
REGRESSION_COLUMNS = ["stage_id", "metric", "value", "median", "change", "runs", "message"]
RECOMMENDATION_COLUMNS = ["stage_id", "action", "current_workers", "suggested_workers", "reason"]

#: one thread for every monitor's background advice: opening ten monitors queues ten reads
#: instead of running ten at once beside the kernel; its thread is joined when the
#: interpreter exits (a read is never torn down half-way: Lance would abort the process)
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="si-advice")


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="object") for c in columns})


def _shown(df: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    """``df``'s columns among ``columns`` (in that order), or an empty frame of them."""
    if df is None or df.empty:
        return _empty(columns)
    return df.loc[:, [c for c in columns if c in df.columns]].reset_index(drop=True)


def incident_cards(incidents: pd.DataFrame) -> list[dict[str, Any]]:
    """Header cards for the newest incidents: kind, where, and what became of the split.

    Examples
    --------
    >>> df = pd.DataFrame({"kind": ["straggler"], "stage_id": ["enrich"],
    ...     "worker_id": ["enrich_w1"], "split_id": ["s311"], "elapsed_s": [3.9],
    ...     "threshold_s": [1.2], "outcome": ["finished after 31.2 s"],
    ...     "status": ["finished"], "detected_at": [pd.Timestamp(0, tz="UTC")]})
    >>> incident_cards(df)[0]["text"]
    'split s311 on enrich_w1 (enrich): 3.9 s when seen, over 1.2 s; finished after 31.2 s'
    """
    if incidents is None or incidents.empty:
        return []
    newest = incidents.sort_values("detected_at", ascending=False, kind="stable")
    cards = []
    for row in newest.head(MAX_CARDS).to_dict("records"):
        where = f"{row.get('worker_id') or '?'} ({row.get('stage_id') or '?'})"
        seen = row.get("elapsed_s")
        over = row.get("threshold_s")
        figures = (
            f": {seen:.1f} s when seen, over {over:.1f} s"
            if pd.notna(seen) and pd.notna(over)
            else ""
        )
        outcome = row.get("outcome")
        cards.append(
            {
                "kind": "incident",
                "title": f"{row.get('kind') or 'incident'}",
                "text": f"split {row.get('split_id')} on {where}{figures}"
                + (f"; {outcome}" if isinstance(outcome, str) and outcome else ""),
                "severity": "warn" if row.get("status") in ("running", "unfinished") else "info",
                "split_id": row.get("split_id"),
            }
        )
    if len(incidents) > MAX_CARDS:
        cards.append(
            {
                "kind": "incident",
                "title": "more",
                "text": f"{len(incidents) - MAX_CARDS:,} more: Incidents tab",
                "severity": "info",
            }
        )
    return cards


def regression_cards(regressions: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Header cards for the flagged stage figures (their sentences).

    Examples
    --------
    >>> df = pd.DataFrame({"stage_id": ["parse"],
    ...     "message": ["parse 40 % slower than the median of 6 runs (60 vs 100 rec/s)"]})
    >>> regression_cards(df)[0]["text"]
    'parse 40 % slower than the median of 6 runs (60 vs 100 rec/s)'
    """
    if regressions is None or regressions.empty or "message" not in regressions:
        return []
    cards = [
        {"kind": "regression", "title": "regression", "text": str(msg), "severity": "warn"}
        for msg in regressions["message"].head(MAX_CARDS)
    ]
    if len(regressions) > MAX_CARDS:
        cards.append(
            {
                "kind": "regression",
                "title": "more",
                "text": f"{len(regressions) - MAX_CARDS:,} more: Advice tab",
                "severity": "info",
            }
        )
    return cards


class AdviceViews:
    """Mixin of :class:`~solstice_inspect.widgets.monitor.JobMonitor`."""

    live: Any
    tabs: Any
    header: Any
    travel_t: float | None
    _lock: Any

    def _init_advice(self) -> None:
        self._incidents: pd.DataFrame = _empty(INCIDENT_COLUMNS)
        self._regressions: pd.DataFrame | None = None
        self._recommendations: pd.DataFrame | None = None
        self._advice_note = ""
        self._advice_for: tuple[str, bool] | None = None  # (attempt, ended) computed for
        self._recs_for: tuple[str, bool] | None = None
        self._advice_closed = False
        #: set when the advice of the shown attempt (as last asked for) is computed
        self.advice_ready = threading.Event()
        self._read_incidents()

    # ------------------------------------------------------------------ data
    def _read_incidents(self) -> None:
        job = api_job(self.live.job)
        if job.version("incidents") is None:
            self._incidents = _empty(INCIDENT_COLUMNS)
            return
        self._incidents = job.incidents()

    def _incident_rows(self) -> pd.DataFrame:
        return _shown(self._incidents, INCIDENT_COLUMNS)

    def _regression_rows(self) -> pd.DataFrame:
        return _shown(self._regressions, REGRESSION_COLUMNS)

    def _recommendation_rows(self) -> pd.DataFrame:
        return _shown(self._recommendations, RECOMMENDATION_COLUMNS)

    def header_cards(self) -> list[dict[str, Any]]:
        """What the header shows beside the figures: incidents, then regressions."""
        return incident_cards(self._incidents) + regression_cards(self._regressions)

    def _advice_key(self) -> tuple[str, bool]:
        return (api_job(self.live.job).attempt_id, bool(self.live.done))

    def refresh_advice(self, *, wait: bool = False) -> None:
        """Recompute the regressions (in the shared thread unless ``wait``) when the
        attempt or its running state changed since they were last computed, and the
        recommendations too if the Advice tab is shown."""
        key = self._advice_key()
        if self._advice_for == key:
            return
        self._advice_for = key
        self.advice_ready.clear()
        if wait:
            self._compute_regressions(key)
        else:
            _POOL.submit(self._compute_regressions, key)
        if getattr(self.tabs, "selected", None) == "advice":
            self._compute_recommendations()

    def _compute_regressions(self, key: tuple[str, bool]) -> None:
        from solstice_inspect.analysis.history import regressions

        try:
            if self._advice_closed or self._advice_for != key:
                return  # closed, or a newer attempt is shown, while this waited its turn
            job = api_job(self.live.job)
            try:
                found = regressions(None, job)
                note = str(found.attrs.get("note") or "")
            except Exception as exc:  # the monitor stays useful without its advice
                log.exception("regressions of %s failed", job.job_id)
                found, note = None, f"regressions failed: {type(exc).__name__}: {exc}"
            with self._lock:
                if self._advice_closed or self._advice_for != key:
                    return
                self._regressions, self._advice_note = found, note
                self._show_advice()
        finally:
            self.advice_ready.set()

    def _compute_recommendations(self) -> None:
        """The Advice tab's recommendations, in the kernel's thread when it is shown."""
        key = self._advice_key()
        if self._recs_for == key:
            return
        self._recs_for = key
        job = api_job(self.live.job)
        try:
            self._recommendations = job.recommendations()
        except Exception as exc:
            log.exception("recommendations of %s failed", job.job_id)
            self._recommendations = None
            self._advice_note += f" recommendations failed: {type(exc).__name__}: {exc}"
        self._show_advice()

    def _on_advice_tab(self, change: dict[str, Any]) -> None:
        if change.get("new") == "advice":
            with self._guard("computing the recommendations"), self._lock:  # type: ignore[attr-defined]
                self._compute_recommendations()

    def close_advice(self) -> None:
        """Stop computing advice for this monitor (it is being closed)."""
        self._advice_closed = True

    def _show_advice(self) -> None:
        t = self.tabs
        with t.hold_sync(), self.header.hold_sync():
            t.refresh_table("regressions")
            t.refresh_table("recommendations")
            t.tabs = self._tab_list()  # type: ignore[attr-defined]
            t.sync_tables()
            if self.travel_t is None:
                self.header.header = self._header()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ tabs
    def _add_advice_tables(self, labels: dict[str, str]) -> None:
        t = self.tabs
        t.observe(self._on_advice_tab, names="selected")
        t.add_table("incidents", self._incident_rows,
                    title="Incidents: stragglers the workers reported (click one: its split's"
                    " lineage below)", labels=labels,
                    on_click=self._on_exception_row, send=False)  # type: ignore[attr-defined]  # fmt: skip
        t.add_table("regressions", self._regression_rows,
                    title="Unusual against the earlier runs of this job id", labels=labels,
                    send=False)  # fmt: skip
        t.add_table("recommendations", self._recommendation_rows,
                    title="Recommendations: workers per stage, with the evidence",
                    labels=labels, send=False)  # fmt: skip

    def _advice_tabs(self) -> list[dict[str, Any]]:
        n_flags = 0 if self._regressions is None else len(self._regressions)
        n_recs = 0 if self._recommendations is None else len(self._recommendations)
        return [
            {"id": "incidents", "title": "Incidents", "tables": ["incidents"],
             "badge": len(self._incidents) or None},
            {"id": "advice", "title": "Advice", "tables": ["regressions", "recommendations"],
             "badge": (n_flags + n_recs) or None, "text": self._advice_note or None},
        ]  # fmt: skip

    def _advice_changes(self, changed: set[str]) -> None:
        """After a live update: re-read incidents when theirs moved; advice at the end."""
        if "incidents" in changed:
            self._read_incidents()
            if self.travel_t is None:
                self.header.header = self._header()  # type: ignore[attr-defined]
        if self.live.done:
            self.refresh_advice()
