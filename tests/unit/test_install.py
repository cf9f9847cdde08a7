"""A plain ``pip install`` (no extras) into a fresh venv records a job and shows its
dashboard; Ray stays an extra and the JavaScript bundles come inside the package."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runs in the fresh venv (python -I: neither the checkout nor PYTHONPATH is on sys.path).
SNIPPET = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import ipywidgets
    import solstice_inspect as si

    root = Path(sys.argv[1])
    t0 = 1_764_331_200.0
    stages = [{"stage_id": s, "operator_type": s.title(), "min_parallelism": 1,
               "max_parallelism": 1} for s in ("src", "sink")]
    metrics = {"stage_id": "src", "input_records": 5, "output_records": 4,
               "processing_time": 0.5, "processed_count": 1}
    with si.connect(root).record("j1") as rec:
        rec.ingest([
            si.envelope("job_started", "j1", "j1", t0,
                        {"dag_edges": {"src": ["sink"]}, "stages": stages}),
            si.envelope("worker_metrics", "j1", "src_w0", t0 + 1, metrics, 0),
        ])
    job = si.connect(root).job("j1")
    rows = job.worker_metrics()
    monitor = si.job_monitor(job)
    try:
        import ray  # noqa: F401
        ray_importable = True
    except ImportError:
        ray_importable = False
    static = Path(si.__file__).parent / "static"
    print(json.dumps({
        "package": si.__file__,
        "status": job.status,
        "input_records": int(rows["input_records"].sum()),
        "output_records": int(rows["output_records"].sum()),
        "monitor": type(monitor).__name__,
        "is_widget": isinstance(monitor, ipywidgets.Widget),
        "ray_importable": ray_importable,
        "bundles": {p.name: p.stat().st_size for p in static.glob("*.js")},
    }))
    """
)


def _run(cmd: list[str], cwd: Path, timeout: float) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.mark.slow
def test_a_plain_install_records_a_job_and_shows_its_monitor(tmp_path):
    env = tmp_path / "env"
    python = env / "bin" / "python"
    _run([sys.executable, "-m", "venv", str(env)], tmp_path, timeout=60)
    _run([str(python), "-m", "pip", "install", "--quiet", str(ROOT)], tmp_path, timeout=240)

    out = _run([str(python), "-I", "-c", SNIPPET, str(tmp_path / "store")], tmp_path, timeout=120)
    got = json.loads(out.strip().splitlines()[-1])

    assert Path(got["package"]).is_relative_to(env), "the installed copy is the one imported"
    assert got["status"] == "COMPLETED"
    assert (got["input_records"], got["output_records"]) == (5, 4)
    assert got["monitor"] == "JobMonitor"
    assert got["is_widget"]
    assert not got["ray_importable"], "ray is the [ray] extra, not a dependency"
    bundles = got["bundles"]
    assert {"dashboard.js", "charts.js"} <= set(bundles), f"installed bundles: {bundles}"
    assert bundles["charts.js"] > 300_000, "vega, vega-lite and vega-embed are inside"
