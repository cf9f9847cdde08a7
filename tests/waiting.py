"""Waiting on a condition with a deadline (never a bare sleep), for tests outside the
browser (tests/ui/lab.py has the browser's own)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05):
    """``condition()``'s first truthy value, polled every ``every`` s for ``timeout`` s;
    AssertionError naming ``what`` when the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
