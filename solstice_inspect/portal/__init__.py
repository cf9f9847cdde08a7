"""The portal: the job browser and its monitors as a web app (Voilà), for teammates who do
not open notebooks. ``solstice-inspect portal [--store S] [--port 8866]``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["APP"]

#: the notebook Voilà serves (shipped in the wheel beside this module)
APP = Path(__file__).resolve().parent / "app.ipynb"
