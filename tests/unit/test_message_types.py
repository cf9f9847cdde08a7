"""Each of the 17 message types lands in its own table, with the values a user looks for."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from solstice_inspect.protocol import MESSAGE_TYPES
from tests.conftest import T0, started

DOCS = Path(__file__).resolve().parents[2] / "docs"


def one_of_each(msg) -> list[dict]:
    """One envelope of every type but job_failed, in a plausible order, job_completed last."""
    w = "src_w0_aaaaaa"
    return [
        started(msg),  # job_started: src -> mid -> sink
        msg("stage_started", "src", T0 + 0.1, {"operator_type": "LanceSource"}),
        msg("worker_started", w, T0 + 0.2, {"stage_id": "src", "assigned_partitions": [0]}),
        msg(
            "worker_metrics",
            w,
            T0 + 1,
            {"stage_id": "src", "input_records": 120, "output_records": 118, "processed_count": 2},
        ),
        msg(
            "worker_resources",
            w,
            T0 + 1.1,
            {"stage_id": "src", "cpu_percent": 88.5, "memory_mb": 512.0, "pid": 4242},
        ),
        msg(
            "stage_metrics",
            "mid",
            T0 + 1.2,
            {
                "worker_count": 3,
                "input_records": 700,
                "output_records": 690,
                "queue_lag": 40,
                "partition_metrics": {"7": {"latest_offset": 90, "committed_offset": 50}},
            },
        ),
        msg("backpressure", "mid", T0 + 1.3, {"active": True, "queue_lag": 6000}),
        msg(
            "split_processed",
            w,
            T0 + 1.4,
            {
                "stage_id": "src",
                "split_id": "src_split_0",
                "parent_split_ids": [],
                "input_records": 120,
                "output_records": 118,
                "processing_time": 0.25,
            },
        ),
        msg(
            "exception",
            w,
            T0 + 1.5,
            {
                "stage_id": "src",
                "exception_type": "KeyError",
                "message": "'geo'",
                "stacktrace": "Traceback (most recent call last):\nKeyError: 'geo'",
                "split_id": "src_split_0",
            },
        ),
        msg(
            "checkpoint",
            "src",
            T0 + 1.6,
            {
                "checkpoint_id": "chk_1",
                "status": "COMPLETED",
                "trigger_time": T0 + 1.5,
                "completion_time": T0 + 1.6,
                "state_size_bytes": 9216,
                "offsets": [{"partition_id": 0, "committed_offset": 80, "latest_offset": 83}],
            },
        ),
        msg("log", w, T0 + 1.7, {"level": "warning", "message": "skipped record 17"}),
        msg(
            "event",
            "j1",
            T0 + 1.8,
            {"event_type": "rescale", "stage_id": "mid", "description": "mid: 2 -> 3 workers"},
        ),
        msg(
            "custom_metric",
            "mid",
            T0 + 1.9,
            {"name": "cache_hit_ratio", "value": 0.605, "labels": {"cache": "lru"}},
        ),
        msg(
            "incident",
            w,
            T0 + 1.91,
            {
                "kind": "straggler",
                "stage_id": "src",
                "split_id": "src_split_1",
                "started_at": T0 + 0.5,
                "elapsed_s": 1.41,
                "threshold_s": 0.9,
                "mean_s": 0.25,
                "std_s": 0.16,
                "finished_splits": 12,
                "stack": 'File "w.py", line 9, in process\n    time.sleep(30)',
                "log_tail": "fetching src_split_1",
            },
        ),
        msg(
            "profile",
            w,
            T0 + 1.92,
            {
                "worker_id": w,
                "profile_id": "p1",
                "duration_s": 10.0,
                "rate_hz": 100.0,
                "stacks": [["main;process;parse", 600], {"stack": "main;process;io", "count": 400}],
            },
        ),
        msg(
            "sample",
            w,
            T0 + 1.93,
            {"split_id": "src_split_0", "rows": [{"id": i, "name": f"r{i}"} for i in range(7)]},
        ),
        msg("stage_completed", "src", T0 + 2.0, {}),
        msg(
            "worker_stopped",
            w,
            T0 + 2.1,
            {"stage_id": "src", "reason": "done", "processed_count": 2, "error_count": 0},
        ),
        msg("job_completed", "j1", T0 + 3.0, {"status": "COMPLETED", "duration_ms": 3000.0}),
    ]


def at(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(round((T0 + seconds) * 1e6), unit="us", tz="UTC")  # stored in µs


def test_one_envelope_of_each_type_lands_in_its_table(store, msg):
    msgs = one_of_each(msg)
    with store.record("j1") as rec:
        assert rec.ingest(msgs) == {"accepted": 19, "duplicates": 0, "rejected": 0}
    # job_failed ends a second attempt (an attempt has one final status)
    with store.record("j1") as failed:
        counts = failed.ingest(
            msg("job_failed", "j1", T0 + 60, {"error": "OOM in enrich", "duration_ms": 5.5})
        )
        assert counts == {"accepted": 1, "duplicates": 0, "rejected": 0}
    sent = {m["message_type"] for m in msgs} | {"job_failed"}
    assert sent == MESSAGE_TYPES

    job = store.attempt("j1", rec.attempt_id)
    # job_started, job_completed -> job (one row per status change)
    rows = job.to_pandas("job")
    assert list(rows["status"]) == ["RUNNING", "COMPLETED"]
    assert json.loads(rows["config"].iloc[0]) == {"batch": 64}
    assert rows["duration_ms"].iloc[-1] == 3000.0
    assert job.status == "COMPLETED"
    # stage_started / stage_completed -> stages (after job_started's three declared stages)
    stages = job.to_pandas("stages")
    src = stages[stages["stage_id"] == "src"]
    assert list(src["status"]) == ["PENDING", "RUNNING", "COMPLETED"]
    assert src["operator_type"].iloc[-1] == "LanceSource"
    assert sorted(stages["stage_id"].unique()) == ["mid", "sink", "src"]
    # worker_started / worker_stopped -> workers
    workers = job.workers()
    assert list(workers["event"]) == ["STARTED", "STOPPED"]
    assert list(workers["assigned_partitions"].iloc[0]) == ["0"]
    assert workers["processed_count"].iloc[1] == 2
    # worker_metrics -> worker_metrics
    wm = job.worker_metrics()
    assert wm[["worker_id", "stage_id", "input_records", "output_records"]].values.tolist() == [
        ["src_w0_aaaaaa", "src", 120, 118]
    ]
    # worker_resources -> worker_resources
    res = job.worker_resources().iloc[0]
    assert (res["cpu_percent"], res["memory_mb"], res["pid"]) == (88.5, 512.0, 4242)
    # stage_metrics -> partition_metrics rows, and the stage's window in stage_metrics
    part = job.partition_metrics().iloc[0]
    assert (part["stage_id"], part["partition_id"], part["lag"]) == ("mid", "7", 40)
    sm = job.stage_metrics()
    mid = sm[sm["stage_id"] == "mid"].iloc[-1]
    assert (mid["workers_alive"], mid["input_records"], mid["output_records"]) == (3, 700, 690)
    # backpressure -> an event, and the stage's window says so
    assert bool(mid["backpressure_active"])
    events = job.events()
    bp = events[events["event_type"] == "backpressure_started"].iloc[0]
    assert (bp["stage_id"], bp["ts"]) == ("mid", at(1.3))
    # split_processed -> lineage
    lin = job.lineage().iloc[0]
    assert (lin["split_id"], lin["stage_id"], lin["worker_id"]) == (
        "src_split_0",
        "src",
        "src_w0_aaaaaa",
    )
    assert (lin["input_records"], lin["output_records"]) == (120, 118)
    # exception -> exceptions
    exc = job.exceptions().iloc[0]
    assert (exc["exception_type"], exc["stage_id"], exc["worker_id"], exc["split_id"]) == (
        "KeyError",
        "src",
        "src_w0_aaaaaa",
        "src_split_0",
    )
    assert not exc["truncated"]
    # checkpoint -> checkpoints
    chk = job.checkpoints().iloc[0]
    assert (chk["checkpoint_id"], chk["stage_id"], chk["status"]) == ("chk_1", "src", "COMPLETED")
    assert abs(chk["duration_ms"] - 100.0) < 1e-3
    assert chk["offsets"][0]["committed_offset"] == 80
    # log -> logs
    log = job.logs().iloc[0]
    assert (log["level"], log["message"], log["worker_id"]) == (
        "WARNING",
        "skipped record 17",
        "src_w0_aaaaaa",
    )
    # event -> events
    rescale = events[events["event_type"] == "rescale"].iloc[0]
    assert (rescale["stage_id"], rescale["description"]) == ("mid", "mid: 2 -> 3 workers")
    # custom_metric -> custom_metrics
    cm = job.custom_metrics().iloc[0]
    assert (cm["source_id"], cm["name"], cm["value"]) == ("mid", "cache_hit_ratio", 0.605)
    assert json.loads(cm["labels"]) == {"cache": "lru"}
    # incident -> incidents, owned by the sending worker's stage
    inc = job.to_pandas("incidents").iloc[0]
    assert (inc["kind"], inc["stage_id"], inc["worker_id"], inc["split_id"]) == (
        "straggler",
        "src",
        "src_w0_aaaaaa",
        "src_split_1",
    )
    assert (inc["elapsed_s"], inc["finished_splits"], inc["started_at"]) == (1.41, 12, at(0.5))
    assert "time.sleep(30)" in inc["stack"]
    # profile -> one profiles row per folded stack
    prof = job.to_pandas("profiles").sort_values("samples")
    assert prof[["profile_id", "stack", "samples"]].values.tolist() == [
        ["p1", "main;process;io", 400],
        ["p1", "main;process;parse", 600],
    ]
    # sample -> samples: at most five rows kept, marked truncated
    sample = job.to_pandas("samples").iloc[0]
    assert json.loads(sample["rows"]) == [{"id": i, "name": f"r{i}"} for i in range(5)]
    assert (sample["row_count"], bool(sample["truncated"])) == (5, True)
    # every row keeps its message's own time
    assert wm["ts"].iloc[0] == at(1)
    assert cm["ts"] == at(1.9)
    assert job.rejects().empty

    # job_failed -> job, with its error, in its own attempt
    other = store.attempt("j1", failed.attempt_id)
    assert other.status == "FAILED"
    assert other.info["error"] == "OOM in enrich"
    assert other.info["duration_ms"] == 5.5


def test_every_example_in_protocol_md_is_accepted(store):
    text = (DOCS / "protocol.md").read_text()
    sections = text.split("\n## Message types\n", 1)[1]  # the intro's example has "{...}"
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", sections, re.S)]
    assert {e["message_type"] for e in examples} == MESSAGE_TYPES
    with store.record("etl_001") as rec:
        counts = rec.ingest(examples)
    assert counts["rejected"] == 0, rec.job().rejects()[["reason", "detail"]].to_dict("records")
    assert counts["accepted"] + counts["duplicates"] == len(examples)
