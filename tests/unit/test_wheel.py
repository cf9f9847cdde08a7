"""The built wheel ships the widgets' JavaScript (no CDN at run time)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_the_js_bundles(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(ROOT),
            "-w",
            str(tmp_path),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("solstice_inspect-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = [n for n in names if n.startswith("solstice_inspect/static/") and n.count("/") == 2]
    bundles = {n for n in top if n.endswith(".js")}
    assert bundles == {f"solstice_inspect/static/{b}.js" for b in ("dashboard", "charts", "worker")}
    charts = zipfile.ZipFile(wheel).read("solstice_inspect/static/charts.js")
    assert len(charts) > 300_000, "vega, vega-lite and vega-embed are inside"
    assert b"cdn.jsdelivr" not in charts
    assert b'import("http' not in charts
    # nbconvert's `--template solstice_inspect` and the portal's Voilà template, and the
    # scripts the export inlines (tests/ui/test_export.py opens such an export offline)
    data = "solstice_inspect-{}.data/data/share/jupyter/{}/templates/solstice_inspect/{}"
    version = wheel.name.split("-")[1]
    for tool in ("nbconvert", "voila"):
        for name in ("conf.json", "index.html.j2"):
            assert data.format(version, tool, name) in names
    export = {n.rsplit("/", 1)[1] for n in names if n.startswith("solstice_inspect/static/export/")}
    assert export == {
        "require.js", "embed-amd.js", "anywidget.module.js", "jupyter-cytoscape.module.js",
    }  # fmt: skip
