"""What every composite view of ours shares: callback errors shown under the view, and a
static HTML fallback in its mime bundle (a saved notebook, nbconvert, no kernel)."""

from __future__ import annotations

import contextlib
import html
import logging
import traceback
from collections.abc import Iterator
from typing import Any

from solstice_inspect.widgets.lifetime import shown_by_cell

log = logging.getLogger("solstice_inspect.widgets")

__all__ = ["GuardedView", "error_html"]


def error_html(what: str, exc: BaseException) -> str:
    """An escaped, collapsible error: what failed, then the traceback.

    Examples
    --------
    >>> "&lt;b&gt;" in error_html("reading <b>", ValueError("x"))
    True
    """
    tb = "".join(traceback.format_exception(exc))
    return (
        f"<details class='si-widget-error'><summary>Error while {html.escape(what)}: "
        f"{html.escape(repr(exc))}</summary><pre>{html.escape(tb)}</pre></details>"
    )


class GuardedView:
    """Mixin for an ipywidgets box with an ``errors`` HTML child and a ``static_html()``.

    ``with self._guard("doing x"):`` shows an exception under the view (a callback's
    exception in a kernel thread is otherwise invisible); the mime bundle carries the
    static HTML beside the widget view.
    """

    errors: Any
    #: how the log names this view
    view_name = "view"

    def static_html(self) -> str:
        raise NotImplementedError

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            log.exception("%s failed while %s", self.view_name, what)
            self.errors.value = error_html(what, exc)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        shown_by_cell(self)  # a re-run cell closes the views of its previous run
        bundle = super()._repr_mimebundle_(**kwargs) or {}  # type: ignore[misc]
        try:
            bundle["text/html"] = self.static_html()
        except Exception as exc:
            log.exception("static fallback failed")
            bundle["text/html"] = f"<pre>{html.escape(repr(exc))}</pre>"
        return bundle
