"""The store's one way to its files (``store/fs.py``): options from ``connect`` over the
AWS environment, secrets never shown, local files replaced atomically, errors said
plainly. The S3 side against a real server is tests/integration/test_s3_store.py."""

from __future__ import annotations

import logging
import os
import threading

import pytest

import solstice_inspect as si
from solstice_inspect.api import Store
from solstice_inspect.store import fs, heartbeat

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEBYaDEXAMPLETOKEN"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(var, raising=False)


def test_local_paths_get_no_options_and_refuse_them(tmp_path):
    assert fs.storage_options(str(tmp_path / "x.lance")) is None
    with pytest.raises(ValueError, match="local path"):
        si.connect(tmp_path, storage_options={"aws_region": "us-east-1"})
    with pytest.raises(TypeError, match="dict of option names"):
        fs.configure("s3://b/p", ["aws_region"])  # type: ignore[arg-type]


def test_explicit_options_beat_the_environment_and_apply_under_the_root(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://10.0.0.1:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    fs.configure("s3://unit-a/stores/one", {"access_key_id": "MYKEY", "secret_access_key": "x1234"})
    got = fs.storage_options("s3://unit-a/stores/one/jobs/j/a/logs.lance")
    assert got is not None
    # the caller's key and secret (under another alias) replace the environment's
    assert got["access_key_id"] == "MYKEY"
    assert "aws_access_key_id" not in got
    assert got["secret_access_key"] == "x1234"
    assert "aws_secret_access_key" not in got
    # what the caller left out comes from the environment; http endpoints are allowed
    assert got["aws_endpoint"] == "http://10.0.0.1:9000"
    assert got["allow_http"] == "true"
    assert got["aws_region"] == "eu-west-1"
    # short timeouts unless set: an endpoint that does not answer fails in seconds
    assert got["connect_timeout"] == "2s"
    # a sibling prefix is not under that root: the environment alone
    other = fs.storage_options("s3://unit-a/stores/one-more/catalog.lance")
    assert other is not None
    assert other["aws_access_key_id"] == "ENVKEY"
    # the longest root wins
    fs.configure("s3://unit-a/stores/one/deeper", {"aws_region": "ap-south-1"})
    assert fs.storage_options("s3://unit-a/stores/one/deeper/x")["aws_region"] == "ap-south-1"


def test_a_bad_endpoint_is_refused_before_any_request():
    with pytest.raises(ValueError, match="not a URL"):
        fs.configure("s3://unit-b/p", {"aws_endpoint": "127.0.0.1:9000"})


def test_redact_removes_given_and_environment_secrets(monkeypatch):
    fs.configure("s3://unit-c/p", {"aws_secret_access_key": SECRET, "aws_session_token": TOKEN})
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")
    text = f"failed with {SECRET} and {TOKEN} and from-the-environment at s3://AK:{SECRET}@b/x"
    shown = fs.redact(text)
    for secret in (SECRET, TOKEN, "from-the-environment"):
        assert secret not in shown
    assert shown.startswith("failed with *** and *** and *** at s3://***@b/x")
    store = Store("s3://unit-c/p")
    assert SECRET not in repr(store)
    assert repr(store) == "Store('s3://unit-c/p')"


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ("Server returned 404 Not Found: <Code>NoSuchBucket</Code>", "bucket 'bkt' does not exist"),
        ("AWS Error NO_SUCH_BUCKET during ListObjectsV2", "bucket 'bkt' does not exist"),
        ("403 Forbidden: <Code>SignatureDoesNotMatch</Code>", "credentials were refused"),
        ("AWS Error ACCESS_DENIED during HeadObject", "credentials were refused"),
        ("error sending request, after 2 retries", "cannot reach the endpoint http://h:1"),
        ("curlCode: 28, Timeout was reached", "cannot reach the endpoint http://h:1"),
    ],
)
def test_describe_says_why_in_a_line(error, says):
    fs.configure("s3://bkt/p", {"aws_endpoint": "http://h:1"})
    assert says in fs.describe(OSError(error), "s3://bkt/p/catalog.lance")


def test_a_missing_bucket_is_not_a_missing_dataset():
    assert fs.missing(ValueError("Dataset at path x was not found: Not found: x/_versions"))
    assert not fs.missing(ValueError("404 Not Found: <Code>NoSuchBucket</Code>"))


def test_write_atomic_replaces_locally_and_readers_never_see_half(tmp_path):
    path = str(tmp_path / "deep" / "folder" / "beat.json")  # folders made on first write
    assert fs.read_bytes(path) is None
    big_a, big_b = b"a" * 200_000, b"b" * 200_000
    fs.write_atomic(path, big_a)
    seen: set[bytes] = set()
    stop = threading.Event()

    def read():
        while not stop.is_set():
            seen.add(fs.read_bytes(path) or b"")

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(200):
        fs.write_atomic(path, big_b if i % 2 else big_a)
    stop.set()
    reader.join()
    assert seen <= {big_a, big_b}
    assert os.listdir(tmp_path / "deep" / "folder") == ["beat.json"], "no temp file left"


def test_create_lock_excludes_other_holders_locally(tmp_path):
    uri = str(tmp_path / "catalog.lance")
    order: list[str] = []
    with fs.create_lock(uri):
        t = threading.Thread(target=lambda: _hold(uri, order))
        t.start()
        t.join(0.3)
        assert t.is_alive(), "the second holder waits"
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]


def _hold(uri, order):
    with fs.create_lock(uri):
        order.append("second")


def test_unreadable_heartbeats_are_said_once_without_secrets(caplog):
    options = {"aws_secret_access_key": SECRET, "aws_endpoint": "http://127.0.0.1:1"}
    fs.configure("s3://unit-d/p", options)
    with caplog.at_level(logging.WARNING, logger="solstice_inspect"):
        assert heartbeat.read_many("s3://unit-d/p", [("j", "a1"), ("j", "a2")]) == {}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "cannot reach the endpoint http://127.0.0.1:1" in messages[0]
    assert SECRET not in messages[0]
