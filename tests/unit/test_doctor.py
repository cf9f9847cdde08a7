"""`solstice-inspect doctor` on a real store: a good one, then one with a damaged table."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import solstice_inspect as si
from solstice_inspect.cli import main


@pytest.fixture
def store(tmp_path):
    store = si.connect(tmp_path / "store")
    t0 = time.time() - 30
    with store.record("etl") as rec:
        rec.ingest([
            si.envelope("log", "etl", "w0", t0 + i, {"stage_id": "s", "message": f"line {i}"})
            for i in range(5)
        ])  # fmt: skip
    return store


def test_a_good_store_reads_whole(store, capsys):
    assert main(["doctor", "--store", store.root, "--tables"]) == 0
    out = capsys.readouterr().out
    attempt = store.job("etl").attempt_id
    logs = next(line for line in out.splitlines() if " logs " in line)
    # job, attempt, status, table, rows (5 log lines written), …, state
    assert logs.split()[:5] == ["etl", attempt, "COMPLETED", "logs", "5"]
    assert logs.split()[-1] == "ok"
    assert "catalog: ok" in out
    assert out.rstrip().endswith("all tables read back whole")
    # per attempt: every table ok, the rows of all its tables
    assert main(["doctor", "--store", store.root]) == 0
    summary = next(line for line in capsys.readouterr().out.splitlines() if attempt in line)
    n_tables = len(list((Path(store.root) / "jobs" / "etl" / attempt).glob("*.lance")))
    assert f"{n_tables}/{n_tables}" in summary.split()


def test_a_damaged_table_is_named_and_fails_the_run(store, capsys):
    attempt = store.job("etl").attempt_id
    data = Path(store.root) / "jobs" / "etl" / attempt / "logs.lance" / "data"
    files = list(data.glob("*.lance"))
    assert files
    files[0].unlink()
    assert main(["doctor", "--store", store.root]) == 1
    out = capsys.readouterr().out
    damaged = [line for line in out.splitlines() if line.startswith("DAMAGED")]
    assert len(damaged) == 1
    assert damaged[0].startswith(f"DAMAGED job etl attempt {attempt} table logs: ")
    assert out.rstrip().endswith("1 damaged table(s)")


def test_a_corrupted_data_file_is_found(store, capsys):
    attempt = store.job("etl").attempt_id
    data = Path(store.root) / "jobs" / "etl" / attempt / "logs.lance" / "data"
    path = next(data.glob("*.lance"))
    path.write_bytes(b"\0" * path.stat().st_size)  # same size, garbage
    assert main(["doctor", "--store", store.root]) == 1
    assert "table logs:" in capsys.readouterr().out


def test_a_missing_store_is_a_clear_error(tmp_path, capsys):
    assert main(["doctor", "--store", str(tmp_path / "nope")]) == 2
    assert "no store at" in capsys.readouterr().err
