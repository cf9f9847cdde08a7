"""The shipped notebooks run from top to bottom (nbclient, a real kernel, a tmp store) and
show what they promise, checked against figures computed here from the raw rows."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

import solstice_inspect as si

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
JOB = "etl_nightly"
#: the slowed run's parse: 2 workers of 120 records/s (the notebook's SLOW_PARSE)
SLOW_PARSE_CEILING = 2 * 120.0


def _run(name: str, tmp_path: Path, monkeypatch) -> tuple[list[str], Path]:
    """Execute a notebook in a fresh kernel on a tmp store; the text of each code cell's
    outputs, and the store."""
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("SOLSTICE_INSPECT_STORE", str(store))  # the kernel inherits it
    nb = nbformat.read(str(NOTEBOOKS / name), as_version=4)
    NotebookClient(
        nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for out in cell.outputs:
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
        texts.append("".join(parts))
    return texts, store


def _parse_rate(store: Path, run: int) -> float:
    """parse's mean output rate, from its workers' raw cumulative counters: what all of
    them output over the time from the stage's first to its last report."""
    wm = si.connect(store).job(JOB, attempt=run).worker_metrics()
    wm = wm[wm["stage_id"] == "parse"]
    out = wm.groupby("worker_id")["output_records"].max().sum()
    span = (wm["ts"].max() - wm["ts"].min()) / pd.Timedelta(seconds=1)
    return float(out / span)


def test_compare_and_report(tmp_path, monkeypatch):
    texts, store = _run("compare_and_report.ipynb", tmp_path, monkeypatch)
    everything = "\n".join(texts)
    baseline = [_parse_rate(store, run) for run in range(1, 7)]
    slowed = _parse_rate(store, 7)
    assert slowed <= SLOW_PARSE_CEILING * 1.02
    assert min(baseline) > 1.5 * SLOW_PARSE_CEILING, "the usual runs are not capped"

    # the regression of the slowed stage, with its figures
    flag = re.search(
        r"parse (\d+) % slower than the median of 6 runs \((\d+) vs (\d+) rec/s\)", everything
    )
    assert flag, everything
    pct, now, usual = (int(g) for g in flag.groups())
    assert now == pytest.approx(slowed, rel=0.03)
    assert usual == pytest.approx(pd.Series(baseline).median(), rel=0.03)
    assert pct == pytest.approx(100 * (1 - slowed / pd.Series(baseline).median()), abs=2)

    # the side-by-side table: parse's rate change from run 6 to run 7
    row = re.search(r"parse\s+etl_nightly #7\s+([\d.]+)\s+(-?[\d.]+)", everything)
    assert row, everything
    assert float(row.group(1)) == pytest.approx(slowed, rel=0.03)
    assert float(row.group(2)) == pytest.approx(slowed / baseline[5] - 1, abs=0.02)
    # the configuration keys that differ, and only those
    assert re.search(r"parse_capacity\s+700\.0\s+120\.0\s+True", everything)

    # the report was saved, whole, and loads nothing from anywhere
    saved = re.search(r"saved (\S+\.html) \(", everything)
    assert saved, everything
    html = Path(saved.group(1)).read_text()
    assert "etl_nightly #7" in html
    assert ">parse<" in html
    assert not re.search(r"(src|href)=[\"']?https?:", html)
    os.remove(saved.group(1))


# ---------------------------------------------------------------- debug_a_job.ipynb
DEBUG_JOB = "demo_etl"
#: the demo's source splits: run_pipeline's split_size, seed and (with faults) malformed rate
DEMO_SPLIT_SIZE, DEMO_SEED, DEMO_MALFORMED_RATE = 50, 7, 0.03


def _cell(nb, needle: str) -> tuple[str, set[str]]:
    """The text of the outputs of the first code cell whose source holds ``needle``, and
    the mime types it displayed."""
    for cell in nb.cells:
        if cell.cell_type == "code" and needle in cell.source:
            text, kinds = [], set()
            for out in cell.outputs:
                text.append(out.get("text", ""))
                text.append(out.get("data", {}).get("text/plain", ""))
                kinds.update(out.get("data", {}))
            return "".join(text), kinds
    raise AssertionError(f"no code cell with {needle!r}")


def _malformed_lines(source_split_ids: list[str]) -> int:
    """The demo source's lines that are not valid JSON, regenerated here from the seed."""
    from solstice_inspect.demo.data import generate_split

    bad = 0
    for split_id in source_split_ids:
        index = int(split_id.rsplit("_", 1)[1])
        for row in generate_split(
            index, DEMO_SPLIT_SIZE, seed=DEMO_SEED, malformed_rate=DEMO_MALFORMED_RATE
        ):
            try:
                json.loads(row["payload"])
            except ValueError:
                bad += 1
    return bad


def _ray_processes(marker: str) -> list[str]:
    """Command lines of the processes of the Ray whose temp dir is ``marker``."""
    psutil = pytest.importorskip("psutil")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or ())
        if marker in cmd:
            found.append(cmd[:200])
    return found


@pytest.mark.ray
@pytest.mark.timeout(420)
def test_debug_a_job(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("SOLSTICE_INSPECT_STORE", str(store))
    # the kernel starts a Ray of its own (not the test session's), in a temp dir of its
    # own (short: Ray's socket paths must stay under 108 characters)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_tmp = tempfile.mkdtemp(prefix="si-nbray-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    nb = nbformat.read(str(NOTEBOOKS / "debug_a_job.ipynb"), as_version=4)
    hang = re.search(r"^HANG_S = ([\d.]+)", nb.cells[1].source, re.M)
    assert hang, "the notebook's first code cell sets HANG_S"
    hang_s = float(hang.group(1))
    try:
        NotebookClient(
            nb, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(tmp_path)}}
        ).execute()  # raises CellExecutionError on the first cell that raises
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, errors

        # the notebook shut its Ray down: none of its processes outlive the kernel
        deadline = time.monotonic() + 30
        while _ray_processes(ray_tmp) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _ray_processes(ray_tmp), _ray_processes(ray_tmp)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)

    # ground truth: the malformed lines of the source splits the job made, regenerated
    lineage = si.connect(store).job(DEBUG_JOB).lineage()
    sources = sorted(set(lineage.loc[lineage["stage_id"] == "source", "split_id"]))
    assert len(sources) >= 20, "the demo produced too few splits to judge"
    malformed = _malformed_lines(sources)
    assert malformed > 0

    # exceptions: JSONDecodeErrors of parse only, as many as there were malformed lines
    text, _ = _cell(nb, "job.exception_groups()")
    groups = re.findall(r"^\s*\d+\s+(\S+)\s+(\d+)\s+\[([^\]]*)\]", text, re.M)
    assert groups, text
    assert {(kind, stages) for kind, _, stages in groups} == {("JSONDecodeError", "parse")}
    assert sum(int(n) for _, n, _ in groups) == malformed
    text, _ = _cell(nb, 'job.exceptions(search="parse_record")')
    assert f"{malformed} occurrences" in text, text
    assert "in parse_record" in text

    # splits: every split was processed once (the killed worker was drained first) ...
    text, _ = _cell(nb, 'job.splits(status=["failed", "retried"])')
    assert "Empty DataFrame" in text, text
    # ... and the one that hung is the only one that took about HANG_S
    text, _ = _cell(nb, "job.splits(min_duration_s=HANG_S / 2)")
    slow = re.findall(r"^\d+\s+(enrich_\S+)\s+enrich\s+(enrich_w0_\w+)\s", text, re.M)
    assert len(slow) == 1, text
    hung_split, hung_worker = slow[0]

    # lineage around a split with bad lines: its chain from source to sink
    text, _ = _cell(nb, 'job.trace(split_id, direction="both")')
    traced = re.match(r"(parse_source_split_\d+)", text)
    assert traced, text
    chain = [traced.group(1)]
    for stage in ("filter", "enrich", "sink"):  # each stage prefixes the id it derives
        chain.append(f"{stage}_{chain[-1]}")
    assert all(re.search(rf"\s{split}\s", text) for split in chain), text
    assert re.search(rf"\s{traced.group(1).removeprefix('parse_')}\s", text), text  # its source
    text, kinds = _cell(nb, "si.lineage_view(job, split_id)")
    assert "application/vnd.jupyter.widget-view+json" in kinds
    assert f"Lineage of {traced.group(1)}" in text

    # checkpoints: 4 queues x 4 partitions
    text, _ = _cell(nb, "job.checkpoint_diff(a, b)")
    assert re.search(r"chk_\d+ -> chk_\d+: \d+ of 16 partitions moved", text), text
    _, kinds = _cell(nb, "si.charts.timeline(job)")
    assert "image/svg+xml" in kinds

    # the killed parse worker, and the one that replaced it
    text, _ = _cell(nb, 'workers["stage_id"] == "parse"')
    events = re.findall(r"^\d+\s+(parse_w\d_\w+)\s+([A-Z]+)\s+(.*?)\s+(\[.*\]|None)$", text, re.M)
    killed = [i for i, (_, event, _, _) in enumerate(events) if event == "KILLED"]
    assert len(killed) == 1, text
    assert events[killed[0]][2] == "killed: fault injection"
    started = {w: parts for w, event, _, parts in events if event == "STARTED"}
    assert len(started) == 3, text  # two workers, and one that replaced the killed one
    later = [w for w, event, _, _ in events[killed[0] :] if event == "STARTED"]
    assert len(later) == 1, text
    assert started[later[0]] == started[events[killed[0]][0]]  # it took over its partitions
    _, kinds = _cell(nb, "si.worker_view(job, killed)")
    assert "application/vnd.jupyter.widget-view+json" in kinds

    # the incident: the hung split, its sleeping frame, its log tail, its outcome
    text, _ = _cell(nb, "incidents = job.incidents()")
    assert re.search(rf"straggler\s+enrich\s+{hung_worker}\s+{hung_split}", text), text
    text, _ = _cell(nb, 'print(incident["stack"])')
    head = re.match(rf"{hung_split} on {hung_worker}: finished after ([\d.]+) s", text)
    assert head, text
    assert hang_s <= float(head.group(1)) < hang_s + 3
    stack = text.split("stack when detected:", 1)[1].split("log tail when detected:", 1)[0]
    frames = [ln.strip() for ln in stack.strip().splitlines()]
    # the innermost frame is the sleep (the frame the split was hanging in)
    assert frames[-2].endswith("in _slow_geo_lookup"), frames
    assert frames[-1].startswith("time.sleep("), frames
    assert f"geo lookup for {hung_split}" in text.split("log tail when detected:", 1)[1]
    _, kinds = _cell(nb, 'si.worker_view(job, incident["worker_id"])')
    assert "application/vnd.jupyter.widget-view+json" in kinds
    text, _ = _cell(nb, 'si.lineage_view(job, incident["split_id"])')
    assert f"Lineage of {hung_split}" in text
