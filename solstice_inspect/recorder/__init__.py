"""Folding Solstice state messages into rows, and the writer of one attempt."""

from solstice_inspect.recorder.session import Recording

__all__ = ["Recording"]
