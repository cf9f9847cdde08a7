"""One version string: the package, its installed metadata and package.json agree."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import solstice_inspect

ROOT = Path(__file__).resolve().parents[2]


def test_package_json_and_installed_metadata_carry_the_package_version():
    ours = solstice_inspect.__version__
    npm = json.loads((ROOT / "package.json").read_text())["version"]
    assert npm == ours, f"package.json says {npm}, solstice_inspect.__version__ says {ours}"
    installed = version("solstice_inspect")
    assert installed == ours, (
        f"the installed metadata says {installed}, solstice_inspect.__version__ says {ours}"
        " (reinstall: pip install -e .)"
    )
