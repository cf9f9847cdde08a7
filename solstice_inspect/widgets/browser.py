"""The job browser: every job of a store in a paged table, filtered, live; a click opens
the job's monitor below it, and picked runs open side by side (``si.compare``).

The old web UI's portal / running / completed pages, as one notebook view.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from solstice_inspect.widgets.lifetime import shown_by_cell
from solstice_inspect.widgets.tables import Table

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Store

log = logging.getLogger("solstice_inspect.widgets")

__all__ = ["JobBrowser", "job_browser"]

STATUSES = ["any", "RUNNING", "COMPLETED", "FAILED", "LOST", "CANCELLED"]
#: "started within" choices: label -> seconds (None: any time)
WITHIN = {"any time": None, "1 hour": 3600, "24 hours": 86_400, "7 days": 7 * 86_400}
COLUMNS = [
    "job_id",
    "attempt_id",
    "status",
    "start_time",
    "duration_s",
    "records_in",
    "records_out",
    "exceptions",
    "workers",
    "stages",
]


def filter_jobs(
    listing: pd.DataFrame,
    *,
    status: str = "any",
    text: str = "",
    within_s: float | None = None,
    now: float | None = None,
) -> pd.DataFrame:
    """The rows of a job listing (``Store.jobs``) a browser's filters keep.

    Examples
    --------
    >>> df = pd.DataFrame({"job_id": ["etl_a", "ml_b"], "attempt_id": ["1", "2"],
    ...     "status": ["FAILED", "RUNNING"],
    ...     "start_time": pd.to_datetime([0, 100], unit="s", utc=True)})
    >>> filter_jobs(df, text="ETL")["job_id"].tolist()
    ['etl_a']
    >>> filter_jobs(df, within_s=50, now=120)["job_id"].tolist()
    ['ml_b']
    """
    keep = pd.Series(True, index=listing.index)
    if status != "any":
        keep &= listing["status"] == status
    if text:
        needle = text.lower()
        keep &= listing["job_id"].str.lower().str.contains(needle, regex=False) | listing[
            "attempt_id"
        ].str.lower().str.contains(needle, regex=False)
    if within_s is not None:
        now = time.time() if now is None else now
        start = listing["start_time"].astype("datetime64[us, UTC]").astype("int64") / 1e6
        keep &= start >= now - within_s
    return listing.loc[keep].reset_index(drop=True)


class JobBrowser(w.VBox):
    """Every job of a store: filters, a paged table, the clicked job's monitor below.

    Get one with :func:`job_browser`. While shown it re-reads the listing every
    ``refresh`` seconds (statuses change live) until :meth:`close`.
    """

    def __init__(self, store: Store, *, refresh: float = 5.0) -> None:
        self.store = store
        self.refresh_s = refresh
        self.status = w.Dropdown(options=STATUSES, value="any", description="status")
        self.text = w.Text(placeholder="job or attempt id contains…", description="search")
        self.within = w.Dropdown(options=list(WITHIN), value="any time", description="started")
        self.click_mode = w.ToggleButtons(
            options=["open monitor", "add to comparison"],
            value="open monitor",
            description="click",
            style={"button_width": "140px"},
        )
        self.picked = w.TagsInput(value=[], allow_duplicates=False)
        self.compare_button = w.Button(description="Compare", icon="columns", disabled=True)
        self.errors = w.HTML()
        self.detail = w.VBox()
        self._listing = pd.DataFrame(columns=COLUMNS)
        self._signature: tuple = ()
        self._read()
        self.table = Table(self._rows, title="Jobs", page_size=15, on_click=self._on_row)
        for control in (self.status, self.text, self.within):
            control.observe(lambda _change: self._refilter(), names="value")
        self.picked.observe(self._on_picked, names="value")
        self.compare_button.on_click(lambda _b: self._guard(self.open_comparison))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="job-browser", daemon=True)
        super().__init__(
            children=[
                w.HBox([self.status, self.within, self.text]),
                w.HBox([self.click_mode, self.picked, self.compare_button]),
                self.table,
                self.errors,
                self.detail,
            ]
        )
        self._thread.start()

    # ------------------------------------------------------------------ rows
    def _read(self) -> bool:
        """Re-read the listing; True when it changed (new attempts, new statuses)."""
        listing = self.store.jobs(all_attempts=True)
        cols = [c for c in COLUMNS if c in listing]
        listing = listing.loc[:, cols]
        signature = tuple(zip(listing["attempt_id"], listing["status"], listing["exceptions"]))
        changed = signature != self._signature
        self._listing, self._signature = listing, signature
        return changed

    def _rows(self) -> pd.DataFrame:
        return filter_jobs(
            self._listing,
            status=str(self.status.value),
            text=self.text.value.strip(),
            within_s=WITHIN[str(self.within.value)],
        )

    def _refilter(self) -> None:
        self.table.refresh()

    def _follow(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                if self._read():
                    self.table.refresh()
            except Exception as exc:  # shown, and the browser keeps going
                log.exception("job browser refresh failed")
                self.errors.value = f"<span style='color:#c62828'>{_escape(exc)}</span>"

    # ------------------------------------------------------------------ clicks
    def _on_row(self, row: dict[str, Any]) -> None:
        label = f"{row.get('job_id')}:{row.get('attempt_id')}"
        if self.click_mode.value == "add to comparison":
            if label not in self.picked.value:
                self.picked.value = [*self.picked.value, label]
            return
        self.open_monitor(str(row["job_id"]), str(row["attempt_id"]))

    def open_monitor(self, job_id: str, attempt_id: str) -> Any:
        """Show the monitor of one attempt below the table (closing the previous one)."""
        from solstice_inspect.widgets.monitor import job_monitor

        self._close_detail()
        monitor = job_monitor(self.store.attempt(job_id, attempt_id))
        self.detail.children = [monitor]
        return monitor

    def _on_picked(self, change: dict[str, Any]) -> None:
        self.compare_button.disabled = len(change["new"]) < 2

    def open_comparison(self) -> Any:
        """Show the picked runs side by side below the table (``si.compare``)."""
        from solstice_inspect.widgets.compare import compare

        runs = []
        for label in self.picked.value:
            job_id, _, attempt_id = str(label).rpartition(":")
            runs.append((job_id, attempt_id))
        self._close_detail()
        comparison = compare(*runs, store=self.store)
        self.detail.children = [comparison] if isinstance(comparison, w.Widget) else []
        return comparison

    def _guard(self, action: Any) -> None:
        try:
            self.errors.value = ""
            action()
        except Exception as exc:  # a click's error is shown, not lost
            log.exception("job browser action failed")
            self.errors.value = f"<span style='color:#c62828'>{_escape(exc)}</span>"

    def _close_detail(self) -> None:
        for child in self.detail.children:
            child.close()
        self.detail.children = []

    def close(self) -> None:
        """Stop following the store and close the views."""
        self._stop.set()
        self._close_detail()
        self.table.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        shown_by_cell(self)  # a re-run cell closes the browser of its previous run
        return super()._repr_mimebundle_(**kwargs)

    def _repr_html_(self) -> str:
        from solstice_inspect.report.static import table_html

        return table_html(self._rows(), max_rows=50)


def _escape(exc: BaseException) -> str:
    import html

    return html.escape(f"{type(exc).__name__}: {exc}")


def job_browser(store: Store | str | None = None, *, refresh: float = 5.0) -> JobBrowser:
    """Browse every job of a store: ``display(si.job_browser())``.

    Filters by status, start time and text; the listing follows the store live; a click
    on a row opens that attempt's monitor below the table, or (in "add to comparison"
    mode) adds it to the runs to compare side by side.

    Parameters
    ----------
    store
        A store or its path/URI; default: the default store.
    refresh
        Seconds between re-reads of the listing.

    Examples
    --------
    >>> display(si.job_browser())          # doctest: +SKIP
    """
    from solstice_inspect.store import connect
    from solstice_inspect.store.reader import Store

    if not refresh > 0:
        raise ValueError(f"refresh must be > 0 seconds, not {refresh!r}")
    st = store if isinstance(store, Store) else connect(store)
    return JobBrowser(st, refresh=refresh)
