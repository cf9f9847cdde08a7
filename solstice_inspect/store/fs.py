"""How the store reaches its files: a local directory or an object store, one way.

Lance opens the datasets itself; it gets :func:`storage_options` of the dataset's URI.
Everything else the store reads or writes beside the datasets (heartbeat files, the
catalog's creation lock) goes through the few functions here, on ``pyarrow.fs``:
``LocalFileSystem`` semantics (and speed) for local paths, ``S3FileSystem`` for ``s3://``
(built from the same options Lance gets), ``FileSystem.from_uri`` for other schemes.
``pyarrow.fs`` rather than fsspec: pyarrow is already a dependency and speaks S3 natively.

Options of a store root come from :func:`configure` (``si.connect(uri,
storage_options=...)``) over the usual AWS environment variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``);
they are kept per root in this process, so every ``Store`` of that root (a recorder's,
a live reader's) reaches it the same way. Timeouts are short by default: an endpoint that
does not answer fails an operation in seconds instead of hanging; the recorder retries
writes itself (with backoff) rather than letting one request wait.

Secrets (the secret key, the session token) never leave this module in text:
:func:`redact` removes them from every message the store logs or raises.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from pyarrow import fs as pafs

from solstice_inspect.errors import StoreError

#: Lance / object_store options set unless the caller sets them: an unreachable endpoint
#: fails a call in seconds. Lance retries a failed request a few times on its own on top
#: of ``client_max_retries`` (measured: 6 tries), so these stay small.
DEFAULT_OPTIONS: dict[str, str] = {
    "connect_timeout": "2s",
    "timeout": "10s",
    "client_max_retries": "2",
}
#: the pyarrow side (heartbeat files): seconds, tries
CONNECT_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 5.0
PYARROW_TRIES = 2
#: the check in ``connect``: one try of each request, answered within this (seconds)
CHECK_TIMEOUT_S = 3.0

#: option names (lower case) holding secrets: never shown
_SECRET_KEYS = frozenset(
    {
        "aws_secret_access_key",
        "secret_access_key",
        "aws_session_token",
        "session_token",
        "aws_token",
        "token",
        "google_service_account_key",
        "azure_storage_account_key",
        "account_key",
        "azure_storage_sas_key",
        "sas_key",
    }
)
#: the names each S3 setting goes by (Lance accepts all of them); the first is canonical
_ALIASES: dict[str, tuple[str, ...]] = {
    "aws_access_key_id": ("aws_access_key_id", "access_key_id"),
    "aws_secret_access_key": ("aws_secret_access_key", "secret_access_key"),
    "aws_session_token": ("aws_session_token", "session_token", "aws_token", "token"),
    "aws_region": ("aws_region", "region", "aws_default_region"),
    "aws_endpoint": ("aws_endpoint", "aws_endpoint_url", "endpoint", "endpoint_url"),
}
#: environment variable → option, for S3 roots (explicit options win)
_ENV = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_DEFAULT_REGION": "aws_region",
    "AWS_REGION": "aws_region",
    "AWS_ENDPOINT_URL_S3": "aws_endpoint",
    "AWS_ENDPOINT_URL": "aws_endpoint",
}

_REGISTRY: dict[str, dict[str, str]] = {}
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_RUST_LOCATION = re.compile(r",\s*/[^\s,]+\.rs:\d+:\d+")

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, creation may race
    fcntl = None


# ---------------------------------------------------------------------- options
def is_remote(uri: str) -> bool:
    """True for an object-store URI (``s3://``, ``gs://``, …); False for local paths and
    ``file://``."""
    return "://" in uri and not uri.startswith("file://")


def configure(root: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remember how to reach ``root`` (a resolved store root) in this process.

    ``storage_options`` are Lance's (``aws_access_key_id``, ``aws_secret_access_key``,
    ``aws_endpoint``, ``aws_region``, ``allow_http``, …); values become strings.

    Raises
    ------
    TypeError
        ``storage_options`` is not a mapping of names to values.
    ValueError
        Options given for a local path, or an endpoint that is not an http(s) URL.
    """
    if not storage_options:
        if is_remote(root):
            _remember_secrets(_from_env())
        return
    if not isinstance(storage_options, Mapping):
        raise TypeError(
            f"storage_options must be a dict of option names to values, "
            f"not {type(storage_options).__name__}"
        )
    if not is_remote(root):
        raise ValueError(
            f"storage_options are for object-store URIs (s3://…); {root} is a local path"
        )
    options = {str(k).lower(): str(v) for k, v in storage_options.items() if v is not None}
    _remember_secrets(options)
    endpoint = _get(options, "aws_endpoint")
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"storage_options endpoint {endpoint!r} is not a URL: "
                "pass e.g. 'http://127.0.0.1:9000' or 'https://s3.example.com'"
            )
    with _LOCK:
        _REGISTRY[root.rstrip("/")] = options
    _root_filesystem.cache_clear()


def storage_options(uri: str) -> dict[str, str] | None:
    """The options Lance gets for ``uri`` (None for local paths: Lance's defaults)."""
    if not is_remote(uri):
        return None
    options = dict(DEFAULT_OPTIONS)
    if uri.startswith("s3://"):
        options.update(_from_env())
    given = _registered(uri)
    if given:
        # the caller's names replace the environment's value under any alias
        for aliases in _ALIASES.values():
            if any(a in given for a in aliases):
                for a in aliases:
                    options.pop(a, None)
        options.update(given)
    endpoint = _get(options, "aws_endpoint")
    if endpoint is not None and endpoint.startswith("http://"):
        options.setdefault("allow_http", "true")
    return options


def _registered_root(uri: str) -> str | None:
    """The longest configured root that holds ``uri``."""
    with _LOCK:
        roots = [r for r in _REGISTRY if uri == r or uri.startswith(r + "/")]
    return max(roots, key=len) if roots else None


def _registered(uri: str) -> dict[str, str] | None:
    root = _registered_root(uri)
    with _LOCK:
        return None if root is None else dict(_REGISTRY.get(root, {}))


def _from_env() -> dict[str, str]:
    found: dict[str, str] = {}
    for var, option in _ENV.items():
        value = os.environ.get(var)
        if value and option not in found:
            found[option] = value
    return found


def _get(options: Mapping[str, str], name: str) -> str | None:
    for alias in _ALIASES[name]:
        if options.get(alias):
            return options[alias]
    return None


def _remember_secrets(options: Mapping[str, str]) -> None:
    with _LOCK:
        for key, value in options.items():
            if key in _SECRET_KEYS and value:
                _SECRETS.add(value)


# ---------------------------------------------------------------------- secrets
def redact(text: str) -> str:
    """``text`` with every secret this process was given (and the AWS secret variables)
    replaced by ``***``, and credentials written into a URL dropped.

    Examples
    --------
    >>> redact("s3://AKIA:hunter2@bucket/x")
    's3://***@bucket/x'
    """
    secrets = set(_SECRETS)
    for var in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        value = os.environ.get(var)
        if value:
            secrets.add(value)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:  # a one-letter "secret" would blank every such letter
            text = text.replace(secret, "***")
    return re.sub(r"://[^/@\s]+@", "://***@", text)


def display(uri: str) -> str:
    """``uri`` as it may be shown: no credentials in it."""
    return redact(uri)


# ---------------------------------------------------------------------- errors
def describe(exc: BaseException, uri: str = "") -> str:
    """One line saying why an object-store call failed, secrets removed: a missing
    bucket, refused credentials, an endpoint that does not answer, or the error itself."""
    text = str(exc)
    low = text.lower()
    if "nosuchbucket" in low or "no_such_bucket" in low:
        bucket = _bucket(uri)
        return f"the bucket {bucket!r} does not exist" if bucket else "the bucket does not exist"
    if any(
        word in low
        for word in (
            "signaturedoesnotmatch",
            "invalidaccesskeyid",
            "access_denied",
            "accessdenied",
            "invalidtoken",
            "expiredtoken",
            "403 forbidden",
            "http status 403",
            "invalid_access_key_id",
            "signature_does_not_match",
        )
    ):
        return (
            "access denied: the credentials were refused (check aws_access_key_id, "
            "aws_secret_access_key and aws_session_token in storage_options, or the "
            "AWS_* environment variables)"
        )
    if any(
        word in low
        for word in (
            "error sending request",
            "network_connection",
            "could not connect",
            "connection refused",
            "timed out",
            "timeout was reached",
            "connect error",
        )
    ):
        endpoint = _get(storage_options(uri) or {}, "aws_endpoint") if uri else None
        where = f"the endpoint {endpoint}" if endpoint else "the object store"
        return f"cannot reach {where} (no answer within the timeouts: is it up?)"
    first = _RUST_LOCATION.sub("", text).strip().splitlines()
    return redact(first[0] if first else type(exc).__name__)


def lasting(text: str) -> bool:
    """True when a message of :func:`describe` names a cause that waiting does not cure
    (a missing bucket, refused credentials): retrying it for long is pointless."""
    return "credentials were refused" in text or "does not exist" in text


def missing(exc: BaseException) -> bool:
    """True when ``exc`` says a dataset or file is absent (not its bucket)."""
    if isinstance(exc, FileNotFoundError):
        return True
    low = str(exc).lower()
    if "nosuchbucket" in low or "no_such_bucket" in low:
        return False
    return "not found" in low or "not exist" in low or "nosuchkey" in low


def _bucket(uri: str) -> str | None:
    if not is_remote(uri):
        return None
    return urlsplit(uri).hostname or None


# ---------------------------------------------------------------------- files
def filesystem(uri: str, *, quick: bool = False) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``uri`` and the path of ``uri`` in it (``quick``: one try
    per request and short timeouts, for a check)."""
    if not is_remote(uri):
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        return _LOCAL, path
    scheme, rest = uri.split("://", 1)
    # the options of the registered root holding ``uri``, else the environment's
    base = _registered_root(uri) or f"{scheme}://{rest.split('/', 1)[0]}"
    fs, bucket = _root_filesystem(base, quick)
    return fs, f"{bucket}/{rest.split('/', 1)[1]}" if "/" in rest else bucket


_LOCAL = pafs.LocalFileSystem()


@lru_cache(maxsize=32)
def _root_filesystem(base: str, quick: bool = False) -> tuple[pafs.FileSystem, str]:
    # resolving an object store (credentials, region) takes a while: once per root
    bucket = base.split("://", 1)[1].split("/", 1)[0]
    if not base.startswith("s3://"):
        fs, path = pafs.FileSystem.from_uri(f"{base.split('://', 1)[0]}://{bucket}")
        return fs, path.rstrip("/")
    options = storage_options(base) or {}
    kwargs: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "request_timeout": CHECK_TIMEOUT_S if quick else REQUEST_TIMEOUT_S,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(
            max_attempts=1 if quick else PYARROW_TRIES
        ),
    }
    key, secret = _get(options, "aws_access_key_id"), _get(options, "aws_secret_access_key")
    if key and secret:
        kwargs["access_key"], kwargs["secret_key"] = key, secret
        token = _get(options, "aws_session_token")
        if token:
            kwargs["session_token"] = token
    region = _get(options, "aws_region")
    if region:
        kwargs["region"] = region
    endpoint = _get(options, "aws_endpoint")
    if endpoint:
        parts = urlsplit(endpoint)
        kwargs["endpoint_override"] = parts.netloc
        kwargs["scheme"] = parts.scheme or "https"
    return pafs.S3FileSystem(**kwargs), bucket


def read_bytes(uri: str) -> bytes | None:
    """The bytes of a small file, or None when it does not exist.

    Raises
    ------
    OSError
        It exists but cannot be read (the message is redacted).
    """
    if not is_remote(uri):
        try:
            with open(uri.removeprefix("file://"), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
    try:
        fs, path = filesystem(uri)
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # pyarrow says "invalid" for a scheme it lacks
        if missing(exc):
            return None
        raise OSError(f"cannot read {display(uri)}: {describe(exc, uri)}") from None


def write_atomic(uri: str, data: bytes) -> None:
    """Replace a small file: readers see the old bytes or the new, never half.

    Locally a temporary file in the same folder, then ``os.replace``; on an object store
    one PUT (an object is replaced atomically).

    Raises
    ------
    OSError
        When it cannot be written (the message is redacted).
    """
    if is_remote(uri):
        try:
            fs, path = filesystem(uri)
            with fs.open_output_stream(path) as out:
                out.write(data)
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot write {display(uri)}: {describe(exc, uri)}") from None
        return
    uri = uri.removeprefix("file://")
    folder = os.path.dirname(uri)
    # unique per writer: two processes may replace the same file at the same moment
    tmp = os.path.join(
        folder, f".{os.path.basename(uri)}.{os.getpid()}.{threading.get_ident()}.tmp"
    )
    try:
        handle = open(tmp, "wb")  # noqa: SIM115 - closed below; the folder may be missing
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        handle = open(tmp, "wb")  # noqa: SIM115
    try:
        with handle:
            handle.write(data)
        os.replace(tmp, uri)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk must not fill up with temp files
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def create_lock(uri: str) -> Iterator[None]:
    """Held while creating the dataset at ``uri`` once across processes.

    Local stores: an advisory lock on ``<uri>.lock``. Object stores need none: Lance
    commits a dataset's first version with a conditional PUT (``If-None-Match``), so of
    writers racing to create it one wins and the others get "already exists" (checked on
    the S3-compatible test server: four processes, one creation, no row lost).
    """
    if is_remote(uri) or fcntl is None:
        yield
        return
    path = uri.removeprefix("file://")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check(root: str) -> None:
    """Fail fast, with one clear error naming ``root``, when an object-store root cannot
    be used: a missing bucket, refused credentials, an endpoint that does not answer.
    One small request (a LIST of the root's top level); nothing for local roots or other
    schemes.

    Raises
    ------
    StoreError
        Naming the root (without secrets) and the cause.
    """
    if not root.startswith("s3://"):
        return
    try:
        fs, path = filesystem(root, quick=True)
        # a LIST, not a HEAD: its error answers carry the reason (a HEAD's have no body)
        fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot open the store {display(root)}: {describe(exc, root)}") from None
