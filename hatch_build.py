"""Build the widgets' JavaScript (js/ -> solstice_inspect/static/) when a wheel is built
from a checkout that has not run `make js`, so every wheel ships the bundles."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLES = ("dashboard.js", "charts.js")


class JsBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        static = root / "solstice_inspect" / "static"
        if all((static / b).exists() for b in BUNDLES) or not (root / "js").is_dir():
            return  # already built (or an sdist without sources: static/ came with it)
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                "building the widget JavaScript needs node and npm (or run `make js`)"
            )
        if not (root / "node_modules").is_dir():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=root, check=True)
        subprocess.run(["node", "js/build.mjs"], cwd=root, check=True)
