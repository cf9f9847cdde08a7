"""A store on an S3-compatible server (``moto_server``, TESTING.md): recording, LiveJob
and reading; a 10 s outage mid-job that loses nothing; bad buckets, refused credentials
and unreachable endpoints that fail fast with one clear error and never show a secret.

moto keeps its data in memory, so the outage is a TCP proxy in front of it that refuses
every connection (and cuts the open ones) for 10 s: the client sees exactly what a
stopped server looks like, and moto's state survives.

moto checks credentials only after ``POST /moto-api/reset-auth``; from then on it
verifies each request's signature against the IAM access keys it holds (a wrong secret:
``SignatureDoesNotMatch``; an unknown key: ``InvalidAccessKeyId``). The fixture creates
an IAM user and its key first, then turns authentication on: every test here runs with
real credentials checked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

import solstice_inspect as si
from solstice_inspect.demo.stream import simulate
from solstice_inspect.errors import StoreError
from solstice_inspect.schema import JOB_TABLES
from solstice_inspect.store import fs

boto3 = pytest.importorskip("boto3", reason="pip install -e '.[test]' (moto[server], boto3)")

BUCKET = "inspect-bucket"
#: what a user would recognise: long enough that finding it in a message is meaningful
SECRET_MARK = "S3cr3t-Do-Not-Print"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {deadline_s} s")


class Proxy:
    """A TCP proxy to ``target``; :meth:`down` refuses new connections and cuts the open
    ones, :meth:`up` listens again on the same port."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = _free_port()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.1)
        self._listener = listener
        self._stop = threading.Event()
        threading.Thread(target=self._accept, args=(listener, self._stop), daemon=True).start()

    def down(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def moto():
    """``moto_server`` on a free loopback port, a bucket, an IAM key, auth turned on."""
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen(
        [*cmd, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        setup = {"endpoint_url": endpoint, "region_name": "us-east-1",
                 "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}  # fmt: skip
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="recorder")
        allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [allow]}
        iam.put_user_policy(UserName="recorder", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="recorder")["AccessKey"]
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["status"] == "ok"
        proxy = Proxy(port)
        yield {
            "port": port,
            "endpoint": endpoint,
            "proxy": proxy,
            "key": key["AccessKeyId"],
            "secret": key["SecretAccessKey"],
        }
        proxy.down()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _options(moto, *, via_proxy: bool = False, **changes: str) -> dict[str, str]:
    port = moto["proxy"].port if via_proxy else moto["port"]
    return {
        "aws_endpoint": f"http://127.0.0.1:{port}",
        "aws_region": "us-east-1",
        "aws_access_key_id": moto["key"],
        "aws_secret_access_key": moto["secret"],
        **changes,
    }


def _chunks(messages: list[dict], n: int) -> list[list[dict]]:
    size = -(-len(messages) // n)
    return [messages[i : i + size] for i in range(0, len(messages), size)]


def _canonical(table) -> list[str]:
    """A table's rows without what differs between two recordings of one stream."""
    keep = [c for c in table.column_names if c not in ("attempt_id", "batch")]
    rows = table.select(keep).to_pylist()
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)


def _record(store, job_id: str, chunks: list[list[dict]]) -> str:
    """Record ``chunks`` with one flush after each (flushes at the same places in both
    stores: stage windows close at flushes); return the attempt id."""
    rec = store.record(job_id, flush_interval=3600, heartbeat_interval=1.0)
    for chunk in chunks:
        rec.ingest(chunk)
        rec.flush()
    rec.finish("COMPLETED")
    return rec.attempt_id


def test_s3_store_records_follows_and_reads_like_a_local_one(moto, tmp_path):
    messages = list(simulate("s3_etl", duration_s=20))
    *body, last = messages  # job_completed, sent on its own after the live checks
    chunks = [*_chunks(body, 10), [last]]
    local = si.connect(tmp_path / "local")
    _record(local, "s3_etl", chunks)

    uri = f"s3://{BUCKET}/stores/same"
    store = si.connect(uri, storage_options=_options(moto))
    rec = store.record("s3_etl", flush_interval=3600, heartbeat_interval=1.0)
    live = si.LiveJob("s3_etl", store=store, tables=["worker_metrics", "job"])
    seen_while_running: list[int] = []
    for chunk in chunks[:-1]:
        rec.ingest(chunk)
        rec.flush()
        rows = live.poll()
        if "worker_metrics" in rows:
            seen_while_running.append(rows["worker_metrics"].num_rows)
    assert live.status == "RUNNING", "followed while it recorded"
    rec.ingest(chunks[-1])
    rec.flush()
    rec.finish("COMPLETED")
    live.poll()
    assert live.done
    assert live.status == "COMPLETED"
    sent_wm = sum(m["message_type"] == "worker_metrics" for m in messages)
    assert len(seen_while_running) >= 9, "rows came in every poll, not all at the end"
    assert sum(seen_while_running) == sent_wm

    # a new connection (a notebook elsewhere) reads the same tables as the local store
    reader = si.connect(uri, storage_options=_options(moto))
    jobs = reader.jobs()
    assert list(jobs["job_id"]) == ["s3_etl"]
    assert jobs.iloc[0]["status"] == "COMPLETED"
    s3_job, local_job = reader.job("s3_etl"), local.job("s3_etl")
    for table in JOB_TABLES:
        assert _canonical(s3_job.table(table)) == _canonical(local_job.table(table)), table
    assert s3_job.table("worker_metrics").num_rows == sent_wm
    lineage = s3_job.table("lineage", columns=["split_id"]).column("split_id").to_pylist()
    sent_splits = [
        m["payload"]["split_id"] for m in messages if m["message_type"] == "split_processed"
    ]
    assert sorted(lineage) == sorted(sent_splits)
    # SQL across jobs works on the object store too
    n = si.sql("select count(*) as n from worker_metrics", store=reader)["n"].iloc[0]
    assert n == sent_wm
    assert moto["secret"] not in repr(reader)


def test_a_10_s_outage_mid_job_loses_nothing(moto, caplog):
    """The proxy refuses every connection for 10 s while the job runs: ingest never
    blocks, the recorder retries with backoff, and the attempt ends with every row,
    once each; a LiveJob following it sees them all too."""
    messages = list(simulate("outage_etl", duration_s=24))
    *body, last = messages
    assert last["message_type"] == "job_completed"
    chunks = _chunks(body, 24)
    uri = f"s3://{BUCKET}/stores/outage"
    store = si.connect(uri, storage_options=_options(moto, via_proxy=True))
    proxy: Proxy = moto["proxy"]
    # the default heartbeat (5 s): LOST is derived after 3 missed ones (15 s), longer
    # than this outage; a reader must not take the attempt for dead
    rec = store.record("outage_etl", flush_interval=0.2, heartbeat_interval=5.0)
    live = si.LiveJob("outage_etl", store=store, refresh=0.2, tables=["worker_metrics"])
    live_rows: list[tuple] = []

    def collect(rows):
        if "worker_metrics" in rows:
            wm = rows["worker_metrics"]
            live_rows.extend(zip(wm["worker_id"].to_pylist(), wm["input_records"].to_pylist()))

    live.subscribe(collect)
    live.start()
    slowest_ingest = 0.0
    down_at = up_at = None
    with caplog.at_level(logging.DEBUG, logger="solstice_inspect"):
        for i, chunk in enumerate(chunks):
            if i == 6:
                rec.flush()  # a heartbeat right before: the outage is the whole gap
                proxy.down()
                down_at = time.monotonic()
            if down_at is not None and up_at is None and time.monotonic() - down_at >= 10.0:
                proxy.up()
                up_at = time.monotonic()
            started = time.monotonic()
            assert rec.ingest(chunk)["accepted"] == len(chunk)
            slowest_ingest = max(slowest_ingest, time.monotonic() - started)
            time.sleep(0.6)
        if up_at is None:
            time.sleep(max(0.0, 10.0 - (time.monotonic() - down_at)))
            proxy.up()
        rec.ingest(last)  # job_completed: written at once, with everything still waiting
        rec.finish("COMPLETED")
        assert live.wait(timeout=60), "the live view saw the end"
    assert slowest_ingest < 0.5, "ingest never waited for the store"
    stats = rec.stats
    assert stats["write_errors"] > 0, "the outage was real: writes failed"
    assert stats["write_retries"] > 0
    assert stats["rows_waiting"] == 0
    assert stats["rows_dropped"] == 0
    job = si.connect(uri, storage_options=_options(moto)).job("outage_etl")
    assert job.status == "COMPLETED"
    sent = Counter(m["message_type"] for m in messages)
    wm = job.table("worker_metrics", columns=["worker_id", "input_records", "ts"])
    sent_wm = sorted(
        (m["source_id"], m["payload"]["input_records"])
        for m in messages
        if m["message_type"] == "worker_metrics"
    )
    got_wm = sorted(zip(wm.column("worker_id").to_pylist(), wm.column("input_records").to_pylist()))
    assert got_wm == sent_wm, "every worker report, once"
    assert job.table("lineage").num_rows == sent["split_processed"]
    assert job.table("logs").num_rows == sent["log"]
    assert job.table("custom_metrics").num_rows == sent["custom_metric"]
    assert sorted(live_rows) == sent_wm, "the live view got every row once"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "cannot write" in text, "the outage was logged"
    assert moto["secret"] not in text


def _fails_fast(uri: str, options: dict[str, str] | None, within_s: float) -> str:
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        si.connect(uri, storage_options=options).jobs()
    took = time.monotonic() - started
    assert took < within_s, f"took {took:.1f} s"
    return str(info.value)


def test_bad_bucket_credentials_and_endpoints_fail_fast_without_secrets(moto, caplog):
    secret = f"{SECRET_MARK}-{moto['secret'][:6]}"
    with caplog.at_level(logging.DEBUG):
        # a bucket that does not exist
        msg = _fails_fast("s3://no-such-bucket/jobs", _options(moto), 5)
        assert "s3://no-such-bucket/jobs" in msg
        assert "'no-such-bucket' does not exist" in msg
        # a wrong secret (moto checks the signature) and an unknown key id
        for options in (
            _options(moto, aws_secret_access_key=secret),
            _options(moto, aws_access_key_id="AKIANOTAKEY000000000", aws_secret_access_key=secret),
            _options(moto, aws_session_token=secret),
        ):
            msg = _fails_fast(f"s3://{BUCKET}/jobs", options, 5)
            assert f"s3://{BUCKET}/jobs" in msg
            assert "credentials were refused" in msg, msg
            assert secret not in msg
        # nothing listens there
        closed = _free_port()
        msg = _fails_fast(
            f"s3://{BUCKET}/jobs",
            _options(moto, aws_endpoint=f"http://127.0.0.1:{closed}", aws_secret_access_key=secret),
            5,
        )
        assert f"s3://{BUCKET}/jobs" in msg
        assert f"127.0.0.1:{closed}" in msg
        assert "cannot reach" in msg
        # it accepts connections and never answers (a hung server, a firewall dropping)
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(16)
            port = silent.getsockname()[1]
            msg = _fails_fast(
                f"s3://{BUCKET}/jobs",
                _options(
                    moto, aws_endpoint=f"http://127.0.0.1:{port}", aws_secret_access_key=secret
                ),
                8,
            )
            assert "cannot reach" in msg
        # an endpoint that is not a URL: said so, before any request
        with pytest.raises(ValueError, match="not a URL"):
            si.connect(f"s3://{BUCKET}/jobs", storage_options=_options(moto, aws_endpoint="nope"))
    assert secret not in "\n".join(r.getMessage() for r in caplog.records)


def test_the_recorder_path_never_shows_the_secret(moto, caplog):
    """Credentials accepted at connect, refused afterwards (a rotated key): the recorder
    logs the refused writes, the reader raises — no secret in either, nor in reprs."""
    secret = f"{SECRET_MARK}-rotated"
    uri = f"s3://{BUCKET}/stores/rotated"
    good = si.connect(uri, storage_options=_options(moto))
    store = si.connect(uri, storage_options=_options(moto))
    with caplog.at_level(logging.DEBUG):
        # the same root, now with a wrong secret: what a key rotated under a running job does
        fs.configure(store.root, _options(moto, aws_secret_access_key=secret))
        rec = store.record("rotated", flush_interval=0.05, heartbeat_interval=0.2)
        payload = {"stage_id": "parse", "input_records": 5, "output_records": 5}
        rec.ingest([si.envelope("worker_metrics", "rotated", "w1", 1.7e9, payload, 1)])
        rec.flush()
        assert rec.stats["rows_waiting"] > 0, "the writes were refused"
        with pytest.raises(StoreError) as info:
            store.job("rotated")
        rec.close()
        texts = [str(info.value), repr(store), repr(rec), repr(good)]
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert any("credentials were refused" in t for t in texts)
    for text in texts:
        assert secret not in text


def test_aws_environment_variables_are_enough(moto, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto["secret"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto["endpoint"])
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = si.connect(f"s3://{BUCKET}/stores/env")
    with store.record("env_job") as rec:
        rec.ingest(list(simulate("env_job", duration_s=2)))
    job = si.connect(f"s3://{BUCKET}/stores/env").job("env_job")
    assert job.status == "COMPLETED"
    assert job.table("worker_metrics").num_rows == sum(
        m["message_type"] == "worker_metrics" for m in simulate("env_job", duration_s=2)
    )
    assert moto["secret"] not in repr(store)
    assert "AWS_SECRET_ACCESS_KEY" in os.environ


_RECORD_ONE = """
import sys, solstice_inspect as si
from solstice_inspect.demo.stream import simulate
store = si.connect(sys.argv[1])  # credentials and endpoint from the AWS_* variables
with store.record(sys.argv[2]) as rec:
    rec.ingest(list(simulate(sys.argv[2], duration_s=2)))
"""


def test_processes_creating_the_shared_catalog_at_once_lose_nothing(moto):
    """No lock file on an object store: Lance's conditional commit lets one process
    create the catalog and the others append (three recorders start at the same time)."""
    uri = f"s3://{BUCKET}/stores/racing"
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": moto["key"],
        "AWS_SECRET_ACCESS_KEY": moto["secret"],
        "AWS_ENDPOINT_URL": moto["endpoint"],
        "AWS_REGION": "us-east-1",
    }
    jobs = [f"race_{i}" for i in range(3)]
    procs = [
        subprocess.Popen([sys.executable, "-c", _RECORD_ONE, uri, job], env=env) for job in jobs
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    listing = si.connect(uri, storage_options=_options(moto)).jobs()
    assert sorted(listing["job_id"]) == jobs
    assert set(listing["status"]) == {"COMPLETED"}
