"""A cell that runs again replaces the views it displayed before.

Re-running ``si.job_monitor(...)`` would otherwise leave every earlier dashboard alive in
the kernel: still polling the store, still holding its widget models, and — for a front
end that saves widget state (JupyterLab's "save widget state automatically") — still
written into the notebook, about 1 MB each. When a view of ours is displayed, the views
that the same cell displayed in an earlier run are closed, so their models go away in
the kernel and the front end alike.

The cell is known by the ``cellId`` that JupyterLab, Notebook 7 and VS Code put in the
execute request's metadata; where a front end sends none (nbclient), nothing is closed.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

log = logging.getLogger("solstice_inspect.widgets")

__all__ = ["shown_by_cell"]

_lock = threading.Lock()
#: cell id -> (id of the execute request that displayed them, the views displayed)
_shown: dict[str, tuple[str, list[weakref.ref]]] = {}


def _running_cell() -> tuple[str, str] | None:
    """(cell id, execute request id) of the cell running now, or None (no kernel, no id,
    or not inside a cell's execution: e.g. a click's callback)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent("shell")
    except TypeError:  # ipykernel < 6.0: one parent
        parent = kernel.get_parent()
    if not isinstance(parent, dict) or parent.get("msg_type") != "execute_request":
        return None
    cell_id = (parent.get("metadata") or {}).get("cellId")
    msg_id = (parent.get("header") or {}).get("msg_id")
    if not cell_id or not msg_id:
        return None
    return str(cell_id), str(msg_id)


def shown_by_cell(view: Any) -> None:
    """Record that the running cell displays ``view``; close what it displayed in its
    previous run (never ``view`` itself, which a re-run may display again)."""
    where = _running_cell()
    if where is None:
        return
    cell_id, request = where
    stale: list[Any] = []
    with _lock:
        entry = _shown.get(cell_id)
        if entry is None or entry[0] != request:
            if entry is not None:
                stale = [ref() for ref in entry[1]]
            entry = (request, [])
            _shown[cell_id] = entry
        if not any(ref() is view for ref in entry[1]):
            entry[1].append(weakref.ref(view))
    for old in stale:
        if old is None or old is view:
            continue
        try:
            old.close()
        except Exception:  # a view that fails to close must not break the new one
            log.exception("closing a view replaced by its cell's re-run failed")
