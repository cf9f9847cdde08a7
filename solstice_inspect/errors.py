"""The exceptions solstice_inspect raises: one small hierarchy."""

from __future__ import annotations

import difflib


class InspectError(Exception):
    """Base class of every error raised by solstice_inspect."""


class StoreError(InspectError):
    """The store cannot be read or written (missing, corrupt, unreachable)."""


class JobNotFound(InspectError, KeyError):
    """No such job (or attempt) in the store; the message lists the known ones."""

    def __init__(self, job_id: str, root: str, known: list[str], *, what: str = "job") -> None:
        self.job_id = job_id
        self.known = list(known)
        shown = ", ".join(self.known[:20]) or "none"
        if len(self.known) > 20:
            shown += f", … ({len(self.known)} in all)"
        close = difflib.get_close_matches(job_id, self.known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        super().__init__(f"no {what} {job_id!r} in {root}; known {what}s: {shown}{hint}")

    def __str__(self) -> str:  # KeyError would repr() the message otherwise
        return str(self.args[0])


class NotFound(InspectError, KeyError):
    """No such stage, worker or split in a job; the message names the closest known ids.

    ``closest``: the known ids most like the one asked for (see
    :func:`solstice_inspect.analysis.query.closest_ids`); ``known``: how many exist.
    """

    def __init__(self, what: str, value: str, where: str, closest: list[str], known: int) -> None:
        self.what, self.value, self.closest, self.known = what, value, list(closest), known
        near = ", ".join(self.closest) or "none"
        super().__init__(
            f"no {what} {value!r} in {where}; closest of the {known:,} known {what}s: {near}"
        )

    def __str__(self) -> str:  # KeyError would repr() the message otherwise
        return str(self.args[0])


class InvalidMessage(InspectError, ValueError):
    """An envelope that breaks the protocol; ``reason`` is a short, countable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class RecorderClosed(InspectError):
    """The recording has finished; it accepts no more messages."""
