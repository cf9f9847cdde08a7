"""nbconvert's ``--template solstice_inspect``: notebooks whose widgets render offline.

nbconvert's HTML loads require.js and the widget manager from CDNs, so every widget of an
export is blank without a network. The template (``share/jupyter/nbconvert/templates/
solstice_inspect``) inlines instead, through :class:`OfflineWidgets`: require.js, the
static-page widget manager (``@jupyter-widgets/html-manager``'s ``embed-amd.js``) and the
AMD module of each widget library our views use, all taken from npm when the package is
built (``js/build.mjs`` -> ``solstice_inspect/static/export/``).

The saved widget state is kept only for the models the notebook's outputs display (and
the models those refer to): a monitor cell run ten times leaves ten dashboards' state in
a notebook executed with ``store_widget_state``, but the export carries one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from markupsafe import Markup
from nbconvert.preprocessors import Preprocessor

__all__ = ["EXPORT", "OfflineWidgets", "displayed_state"]

EXPORT = Path(__file__).resolve().parent.parent / "static" / "export"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_REF = re.compile(r"IPY_MODEL_([0-9a-f]{32}|[0-9A-Za-z_-]+)")


def _script(code: str) -> str:
    # nothing in the code may end the <script> element or open an HTML comment in it
    safe = code.replace("</script", "<\\/script").replace("<!--", "<\\!--")
    return f"<script>\n{safe}\n</script>"


def _read(name: str) -> str:
    path = EXPORT / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: build the widget bundles with `make js` (or install "
            "solstice_inspect from a wheel, which ships them)"
        )
    return path.read_text(encoding="utf-8")


def scripts() -> dict[str, Markup]:
    """``require_js``: require.js; ``widget_js``: the widget modules, then the manager."""
    modules = sorted(p.name for p in EXPORT.glob("*.module.js"))
    if not modules:
        _read("anywidget.module.js")  # raises, saying how to build them
    widget_js = "\n".join(_script(_read(name)) for name in [*modules, "embed-amd.js"])
    return {"require_js": Markup(_script(_read("require.js"))), "widget_js": Markup(widget_js)}


def _outputs(nb: Any) -> Iterable[dict[str, Any]]:
    for cell in nb.get("cells", []):
        yield from cell.get("outputs", []) or []


def displayed_state(nb: Any) -> dict[str, Any] | None:
    """The notebook's saved widget state, reduced to the displayed models and their refs.

    Examples
    --------
    >>> state = {"a": {"state": {"children": ["IPY_MODEL_b"]}}, "b": {"state": {}},
    ...          "old": {"state": {}}}
    >>> nb = {"metadata": {"widgets": {WIDGET_STATE: {"state": state}}},
    ...       "cells": [{"outputs": [{"data": {WIDGET_VIEW: {"model_id": "a"}}}]}]}
    >>> sorted(displayed_state(nb)["state"])
    ['a', 'b']
    """
    saved = (nb.get("metadata", {}).get("widgets") or {}).get(WIDGET_STATE)
    if not saved or "state" not in saved:
        return None
    models = saved["state"]
    todo = [
        out["data"][WIDGET_VIEW]["model_id"]
        for out in _outputs(nb)
        if WIDGET_VIEW in (out.get("data") or {})
    ]
    keep: set[str] = set()
    while todo:
        model_id = todo.pop()
        if model_id in keep or model_id not in models:
            continue
        keep.add(model_id)
        todo.extend(_REF.findall(json.dumps(models[model_id].get("state", {}))))
    return {**saved, "state": {k: v for k, v in models.items() if k in keep}}


class OfflineWidgets(Preprocessor):
    """Put the inlined widget scripts in ``resources["solstice_inspect"]`` and keep only
    the displayed models' widget state (see the module's docstring)."""

    def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
        """nbconvert's hook: called once per notebook."""
        resources = resources if resources is not None else {}
        resources["solstice_inspect"] = scripts()
        pruned = displayed_state(nb)
        if pruned is not None:
            nb.metadata.widgets[WIDGET_STATE] = pruned
        return nb, resources
