"""The solstice-inspect command: ingest, jobs, show, demo (sample), --help everywhere."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from solstice_inspect.cli import main
from solstice_inspect.demo.stream import simulate


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "solstice_inspect.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("command", ["ingest", "jobs", "show", "demo"])
def test_every_command_has_help(command):
    res = cli(command, "--help")
    assert res.returncode == 0
    assert "--store" in res.stdout


def test_ingest_counts_rejections_and_still_exits_zero(tmp_path, capsys):
    path = tmp_path / "stream.jsonl.gz"
    msgs = list(simulate("etl_cli", duration_s=12))
    with gzip.open(path, "wt") as fh:
        for i, m in enumerate(msgs):
            fh.write(json.dumps(m) + "\n")
            if i == 3:
                fh.write("garbage line\n")
                fh.write(json.dumps({**m, "message_type": "nope"}) + "\n")
        fh.write(json.dumps(msgs[5]) + "\n")  # a duplicate
    store = str(tmp_path / "store")
    assert main(["ingest", str(path), "--store", store]) == 0
    out = capsys.readouterr().out
    assert f"accepted {len(msgs)}, duplicates 1, rejected 2" in out
    assert "invalid_json" in out
    assert "unknown_message_type" in out
    assert "status COMPLETED" in out
    assert main(["jobs", "--store", store]) == 0
    assert "etl_cli" in capsys.readouterr().out
    assert main(["show", "etl_cli", "--store", store]) == 0
    shown = capsys.readouterr().out
    for word in ("parse", "enrich", "JSONDecodeError", "checkpoints", "bottleneck"):
        assert word in shown


def test_ingest_of_an_unreadable_file_fails(tmp_path):
    res = cli("ingest", str(tmp_path / "missing.jsonl"), "--store", str(tmp_path / "s"))
    assert res.returncode != 0
    assert "cannot read" in res.stderr
    bad_gz = tmp_path / "bad.jsonl.gz"
    bad_gz.write_bytes(b"not gzip at all")
    res = cli("ingest", str(bad_gz), "--store", str(tmp_path / "s"))
    assert res.returncode != 0


def test_a_stream_without_a_final_status_is_not_called_completed(tmp_path, capsys):
    path = tmp_path / "partial.jsonl"
    msgs = list(simulate("partial", duration_s=4))[:-1]  # no job_completed
    path.write_text("".join(json.dumps(m) + "\n" for m in msgs))
    assert main(["ingest", str(path), "--store", str(tmp_path / "s")]) == 0
    assert "will read as LOST" in capsys.readouterr().out


def test_show_of_an_unknown_job_is_a_clear_error(tmp_path, capsys):
    assert main(["show", "nope", "--store", str(tmp_path / "s")]) == 2
    assert "no job 'nope'" in capsys.readouterr().err
