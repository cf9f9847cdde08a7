"""The ``exporter`` and ``doctor`` sub-commands of ``solstice-inspect``."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from typing import Any

#: ``--recent`` values: seconds, or a number with s / m / h / d
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_s(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"30m"``, ``"1h"`` or ``"2d"``.

    Examples
    --------
    >>> duration_s("1h"), duration_s("30m"), duration_s("45")
    (3600.0, 1800.0, 45.0)
    """
    m = _DURATION.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: write seconds or e.g. 90s, 30m, 1h, 2d"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def register(sub: Any, add: Any) -> None:
    """Add ``exporter`` and ``doctor`` (``add(name, help)`` gives them ``--store``)."""
    p = add(
        "exporter",
        "Serve the store's figures to Prometheus on /metrics (running jobs and recently"
        " finished ones; docs/ops.md lists every metric).",
    )
    p.add_argument("--port", type=int, default=9464, help="port to listen on (0: any free one)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: this machine only)"
    )
    p.add_argument(
        "--recent",
        type=duration_s,
        default=3600.0,
        help="keep finished attempts exported this long after they end (default 1h;"
        " e.g. 15m, 2h, 1d)",
    )
    p.add_argument(
        "--workers",
        action="store_true",
        help="also export one series per worker (solstice_worker_*; mind the cardinality)",
    )
    p.set_defaults(func=cmd_exporter)
    p = add(
        "doctor",
        "Check that every table of every attempt reads back whole; list versions,"
        " fragments, size on disk, LOST attempts. Exits 1 naming any damaged table.",
    )
    p.add_argument(
        "--tables", action="store_true", help="one line per table instead of per attempt"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="open the manifests only (no full read: a damaged data file goes unnoticed)",
    )
    p.set_defaults(func=cmd_doctor)


def cmd_exporter(args: argparse.Namespace) -> int:
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        print(
            "error: the exporter needs prometheus_client: pip install 'solstice_inspect[ops]'",
            file=sys.stderr,
        )
        return 2
    from solstice_inspect.api import connect
    from solstice_inspect.errors import StoreError
    from solstice_inspect.ops.exporter import StoreCollector

    try:
        collector = StoreCollector(connect(args.store), recent=args.recent, workers=args.workers)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    registry = CollectorRegistry()
    registry.register(collector)
    # the first read of every recent attempt happens now, not in Prometheus' first scrape
    collector.samples()
    try:
        server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(
        f"serving http://{host}:{port}/metrics from {collector.store.root}"
        f" ({collector!r}, first read {collector.last_scrape_s or 0:.2f} s)",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    print("exporter stopped", flush=True)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from solstice_inspect.api import connect
    from solstice_inspect.ops.doctor import diagnose, render

    store = connect(args.store)
    if "://" not in store.root and not os.path.isdir(store.root):
        print(
            f"error: no store at {store.root}; pass --store PATH (or set $SOLSTICE_INSPECT_STORE)",
            file=sys.stderr,
        )
        return 2
    d = diagnose(store, read=not args.quick)
    print(render(d, tables=args.tables))
    return 0 if d.ok else 1
