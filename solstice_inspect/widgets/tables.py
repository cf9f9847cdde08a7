"""Paged tables in our own front end (``js/dashboard.js``).

The dashboard's tab strip (:class:`TabsView`) and a standalone :class:`Table` users can
point at any Arrow table, DataFrame or query. Pages are asked for over custom messages and
answered with Arrow IPC bytes in the buffers (``docs/widget-protocol.md``).
"""

from __future__ import annotations

import logging
from typing import Any

import anywidget
import traitlets

from solstice_inspect.widgets.paging import FilterError, Pager, column_meta, ipc_bytes
from solstice_inspect.widgets.views import bundle

log = logging.getLogger("solstice_inspect.widgets")

__all__ = ["Table", "TabsView"]


class PagedTables(anywidget.AnyWidget):
    """An anywidget of ours holding named :class:`Pager` s and answering page requests."""

    _esm = bundle("dashboard")
    part = traitlets.Unicode("table").tag(sync=True)
    tables = traitlets.Dict().tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pagers: dict[str, Pager] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._columns: dict[str, list[dict[str, str]]] = {}
        self._clicks: dict[str, Any] = {}
        self.pages_sent = 0
        self.on_msg(self._on_msg)

    # ------------------------------------------------------------------ tables
    def add_table(
        self,
        name: str,
        source: Any,
        *,
        title: str | None = None,
        labels: dict[str, str] | None = None,
        page_size: int = 25,
        sort: dict[str, Any] | None = None,
        filters: dict[str, str] | None = None,
        link: dict[str, str] | None = None,
        on_click: Any = None,
        send: bool = True,
    ) -> Pager:
        """Serve ``source`` (a table, DataFrame, or a callable returning one) as ``name``.

        ``on_click(row)`` is called with the clicked row (a dict of its values as shown:
        times as epoch seconds) when the user clicks one.
        """
        pager = Pager(source)
        self._pagers[name] = pager
        self._columns.pop(name, None)
        meta: dict[str, Any] = {"title": title or name, "page_size": page_size}
        if labels:
            meta["labels"] = labels
        if sort:
            meta["sort"] = sort
        if filters:
            meta["filters"] = filters
        if link:
            meta["link"] = link
        if on_click is not None:
            meta["clicks"] = True
            self._clicks[name] = on_click
        self._meta[name] = meta
        if send:
            self.sync_tables()
        return pager

    def refresh_table(self, name: str, source: Any = None) -> None:
        """Mark the rows of ``name`` changed (a new ``source``, or the callable's answer).

        The front end re-asks for the page it shows. Call :meth:`sync_tables` after a
        batch of these (one message for all).
        """
        pager = self._pagers[name]
        if source is not None:
            pager.set(source)
        else:
            pager.invalidate()

    def set_filters(self, name: str, filters: dict[str, str]) -> None:
        self._meta[name]["filters"] = dict(filters)

    def sync_tables(self) -> None:
        """Send every table's meta (columns, row count, version) in one trait change.

        A table's rows are computed when it is first served and then only when a page of
        it is asked for: after a live update, a table nobody looks at costs nothing here
        (its ``total`` is the last known one; each page answer carries the current one).
        """
        out = {}
        old = self.tables
        for name, pager in self._pagers.items():
            meta = dict(self._meta[name])
            labels = meta.pop("labels", None)
            try:
                if name not in self._columns or pager.computed:
                    table = pager.table
                    self._columns[name] = column_meta(pager.schema, labels)
                    meta["total"] = table.num_rows
                else:
                    meta["total"] = old.get(name, {}).get("total", 0)
                meta["columns"] = self._columns[name]
            except Exception as exc:
                log.exception("table %s failed", name)
                meta["columns"] = []
                meta["total"] = 0
                meta["error"] = f"{type(exc).__name__}: {exc}"
            meta["version"] = pager.version
            out[name] = meta
        self.tables = out

    def pager(self, name: str) -> Pager:
        return self._pagers[name]

    # ------------------------------------------------------------------ messages
    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "page":
            self.answer(content)
        elif content.get("type") == "row":
            self.clicked(content)

    def clicked(self, message: dict[str, Any]) -> None:
        """A row click from the front end: ``{"type": "row", "table", "row": {...}}``.

        The table's ``on_click`` runs here; its errors show in the view's error area
        (a callback's exception in a kernel thread is otherwise invisible).
        """
        callback = self._clicks.get(str(message.get("table")))
        row = message.get("row")
        if callback is None or not isinstance(row, dict):
            return
        try:
            callback(row)
        except Exception as exc:
            log.exception("click on %s failed", message.get("table"))
            self.error = f"{type(exc).__name__}: {exc}"

    def answer(self, request: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
        """Answer one page request (and send the answer); returned for tests."""
        rid = request.get("id")
        name = request.get("table")
        try:
            pager = self._pagers.get(str(name))
            if pager is None:
                raise FilterError(f"no table {name!r}; tables: {', '.join(self._pagers)}")
            rows, offset, filtered = pager.page(
                int(request.get("offset") or 0),
                int(request.get("limit") or 25),
                request.get("sort") or None,
                request.get("filters") or {},
            )
            reply = {
                "type": "page",
                "id": rid,
                "table": name,
                "offset": offset,
                "total": pager.table.num_rows,
                "filtered": filtered,
                "version": pager.version,
            }
            buffers = [ipc_bytes(rows)]
        except (FilterError, ValueError, TypeError) as exc:
            reply = {"type": "error", "id": rid, "table": name, "message": str(exc)}
            buffers = []
        except Exception as exc:
            log.exception("page of %s failed", name)
            reply = {
                "type": "error",
                "id": rid,
                "table": name,
                "message": f"{type(exc).__name__}: {exc}",
            }
            buffers = []
        self.pages_sent += 1
        self.send(reply, buffers)
        return reply, buffers


class TabsView(PagedTables):
    """The dashboard's tab strip: tables, a text tab (configuration) and a stage detail."""

    tabs = traitlets.List().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    stage = traitlets.Dict().tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(part="tabs", **kwargs)


class Table(PagedTables):
    """A paged, sortable, filterable table of any Arrow table, DataFrame or query.

    Only one page at a time travels to the browser, as Arrow IPC bytes; sorting and
    filtering happen in the kernel. Pass a callable to re-run a query on
    :meth:`refresh`.

    Parameters
    ----------
    data
        A ``pyarrow.Table``, a ``pandas.DataFrame``, or a callable returning one.
    title
        Shown above the table.
    page_size
        Rows per page (the front end lets the user change it).
    on_click
        Called with the clicked row (a dict of its values as shown; times as epoch
        seconds) when the user clicks one.

    Examples
    --------
    >>> import pyarrow as pa, solstice_inspect as si
    >>> t = si.widgets.Table(pa.table({"stage": ["a", "b"], "n": [1, 2]}), title="demo")
    >>> t.tables["demo"]["total"]
    2
    >>> reply, _ = t.answer({"type": "page", "id": 1, "table": "demo", "offset": 0,
    ...                      "limit": 10, "filters": {"stage": "=b"}})
    >>> reply["filtered"]
    1
    """

    def __init__(
        self, data: Any, *, title: str = "table", page_size: int = 25, on_click: Any = None
    ) -> None:
        super().__init__(part="table")
        self.name = title
        self.add_table(title, data, title=title, page_size=page_size, on_click=on_click)

    def refresh(self, data: Any = None) -> None:
        """Re-read the rows (re-run the query, or take ``data``); the view re-asks."""
        self.refresh_table(self.name, data)
        _ = self.pager(self.name).table  # run the query now: its errors show here
        self.sync_tables()

    def to_arrow(self) -> Any:
        """The rows as served (times as epoch seconds, lists as text)."""
        return self.pager(self.name).table

    def __repr__(self) -> str:
        meta = self.tables.get(self.name, {})
        return f"Table({self.name!r}, rows={meta.get('total')})"
