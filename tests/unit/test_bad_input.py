"""Bad input is rejected with a counted, queryable reason; nothing good around it is lost."""

from __future__ import annotations

import json

from tests.conftest import T0, metrics, started


def test_a_mixed_stream_keeps_every_valid_message(store, msg):
    good = [started(msg)] + [
        metrics(msg, "src_w0_aaaaaa", "src", T0 + i, i * 10) for i in range(1, 6)
    ]
    lines = [json.dumps(m) for m in good]
    bad = [
        "{this is not json",
        json.dumps({"message_type": "worker_metrics", "job_id": "j1"}),  # missing fields
        json.dumps(
            {**good[1], "sequence": 99, "payload": {"stage_id": "src", "input_records": "many"}}
        ),
        json.dumps({**good[1], "message_type": "telepathy"}),
        json.dumps(
            {
                **good[1],
                "sequence": 98,
                "payload": {"stage_id": "src", "processing_time": float("inf")},
            }
        ),
        json.dumps({**good[1], "job_id": "someone_else"}),
        "[]",
    ]
    stream = [
        lines[0],
        bad[0],
        lines[1],
        bad[1],
        lines[2],
        bad[2],
        bad[3],
        lines[3],
        bad[4],
        lines[4],
        bad[5],
        bad[6],
        lines[5],
    ]
    with store.record("j1") as rec:
        counts = rec.ingest("\n".join(stream).encode())
    assert counts == {"accepted": 6, "duplicates": 0, "rejected": 7}
    assert rec.stats["rejected"] == {
        "invalid_json": 1,
        "missing_field": 1,
        "wrong_type": 1,
        "unknown_message_type": 1,
        "non_finite": 1,
        "job_id_mismatch": 1,
        "not_an_object": 1,
    }
    job = store.job("j1")
    assert len(job.worker_metrics()) == 5
    assert job.info["records_in"] == 50
    rejects = job.rejects()
    assert sorted(rejects["reason"]) == sorted(rec.stats["rejected"])
    assert rejects.loc[rejects["reason"] == "invalid_json", "raw"].iloc[0] == "{this is not json"


def test_a_malformed_checkpoint_is_rejected_without_partial_state(store, msg):
    with store.record("j1") as rec:
        rec.ingest(
            [
                started(msg),
                msg(
                    "checkpoint",
                    "src",
                    T0 + 1,
                    {"checkpoint_id": "c1", "offsets": [{"topic": "no-partition"}]},
                ),
                msg(
                    "checkpoint",
                    "src",
                    T0 + 2,
                    {
                        "checkpoint_id": "c2",
                        "offsets": [{"partition_id": 0, "committed_offset": 5, "latest_offset": 9}],
                    },
                ),
            ]
        )
    chk = store.job("j1").checkpoints()
    assert list(chk["checkpoint_id"]) == ["c2"]
    assert chk["offsets"].iloc[0][0]["committed_offset"] == 5
    assert rec.stats["rejected"] == {"wrong_type": 1}


def test_oversize_messages_are_stored_truncated_and_marked(store, msg):
    with store.record("j1") as rec:
        rec.ingest(
            [
                started(msg),
                msg(
                    "exception",
                    "src_w0_aaaaaa",
                    T0 + 1,
                    {
                        "stage_id": "src",
                        "exception_type": "ValueError",
                        "message": "<b>" * 10_000,
                        "stacktrace": "x" * 200_000,
                    },
                ),
                msg("log", "src_w0_aaaaaa", T0 + 2, {"message": "y" * 50_000}),
            ]
        )
    job = store.job("j1")
    exc = job.exceptions().iloc[0]
    assert bool(exc["truncated"])
    assert exc["message"].endswith("chars]")
    assert len(exc["message"]) < 8_300
    assert bool(job.logs()["truncated"].iloc[0])
    assert rec.stats["truncated"] == 2


def test_a_hostile_object_is_rejected_and_the_recorder_goes_on(store, msg):
    class Weird:
        def __repr__(self):
            raise RuntimeError("no repr for you")

    with store.record("j1") as rec:
        counts = rec.ingest([Weird(), started(msg), object(), None])
    assert counts["accepted"] == 1
    assert counts["rejected"] == 3
    assert store.job("j1").status == "COMPLETED"
