"""The incident, profile and sample messages at their limits: a profile's counts stay
inside int64 without losing the rows around it, and ids are the same when the same
stream is recorded twice."""

from __future__ import annotations

import solstice_inspect as si

T0 = 1_764_331_200.0


def msg(mtype, source, ts, payload, seq=None):
    env = {"message_type": mtype, "job_id": "j1", "source_id": source, "timestamp": ts}
    env["payload"] = payload
    if seq is not None:
        env["sequence"] = seq
    return env


def test_profile_counts_near_int64_are_capped_and_lose_nothing_around_them(tmp_path):
    store = si.connect(tmp_path)
    big = (1 << 53) - 1
    with store.record("j1") as rec:
        counts = rec.ingest(
            [
                msg("log", "w0", T0, {"message": "before"}),
                # each count is legal, their sum is not an int64: kept at the protocol's cap
                msg("profile", "p", T0 + 1, {"worker_id": "w0", "stacks": [["a", big]] * 2000}),
                # a count beyond the protocol's cap is rejected, alone
                msg("profile", "p", T0 + 2, {"worker_id": "w0", "stacks": [["a", 1 << 63]]}),
                msg("log", "w0", T0 + 3, {"message": "after"}),
            ]
        )
    assert counts == {"accepted": 3, "duplicates": 0, "rejected": 1}
    job = store.job("j1")
    assert job.status == "COMPLETED"
    assert list(job.logs()["message"]) == ["before", "after"]
    prof = job.to_pandas("profiles")
    assert prof[["stack", "samples"]].values.tolist() == [["a", 1 << 53]]  # MAX_COUNTER
    assert list(job.rejects()["reason"]) == ["out_of_range"]


def test_ids_without_sequences_are_the_same_in_two_recordings(tmp_path):
    stream = [
        msg("exception", "w0", T0, {"exception_type": "KeyError", "message": "'geo'"}),
        msg("exception", "w0", T0 + 1, {"exception_type": "KeyError", "message": "'geo'"}),
        msg("incident", "w0", T0 + 2, {"kind": "straggler", "split_id": "s9"}),
        msg("profile", "p", T0 + 3, {"worker_id": "w0", "stacks": [["main;f", 3]]}),
    ]
    ids = []
    for name in ("a", "b"):
        store = si.connect(tmp_path / name)
        with store.record("j1") as rec:
            rec.ingest(stream)
        job = store.job("j1")
        ids.append(
            (
                list(job.exceptions()["exception_id"]),
                list(job.to_pandas("incidents")["incident_id"]),
                list(job.to_pandas("profiles")["profile_id"]),
            )
        )
    assert ids[0] == ids[1]
    exception_ids = ids[0][0]
    assert len(set(exception_ids)) == 2  # two occurrences, two ids


def test_a_row_the_schema_cannot_hold_is_rejected_alone(tmp_path):
    # defence in depth: were a fold rule ever to emit a value beyond its column's type,
    # the flush rejects that row and writes every other one (of its table and the rest)
    store = si.connect(tmp_path)
    rec = store.record("j1")
    rec.ingest(
        [
            msg("log", "w0", T0, {"message": "kept"}),
            msg("exception", "w0", T0 + 1, {"exception_type": "KeyError"}),
        ]
    )
    with rec._lock:
        rec._fold._emit("logs", (T0 + 2, "w0", None, "INFO", "beyond int64", 1 << 70))
    rec.finish()
    job = store.job("j1")
    assert list(job.logs()["message"]) == ["kept"]
    assert len(job.exceptions()) == 1
    rejects = job.rejects()
    assert list(rejects["reason"]) == ["unwritable"]
    assert rejects["detail"].iloc[0].startswith("logs: ")
    assert "beyond int64" in rejects["raw"].iloc[0]
    assert rec.stats["rejected"] == {"unwritable": 1}
