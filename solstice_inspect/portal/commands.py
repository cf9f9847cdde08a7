"""``solstice-inspect portal``: serve the job browser through Voilà on 127.0.0.1.

The store reaches the app's kernel through ``$SOLSTICE_INSPECT_STORE`` in the kernel's
environment (inherited from this process), never as text pasted into code.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys

from solstice_inspect.store.layout import ENV_VAR, catalog_uri, default_root, is_uri, resolve_root

DEFAULT_PORT = 8866


def register(sub, add) -> None:  # type: ignore[no-untyped-def]
    """Add ``portal`` to the CLI (``add`` gives it ``--store``)."""
    p = add(
        "portal",
        "Serve the job browser and the job dashboards as a web app (Voilà), for people who"
        " do not open notebooks.",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only)",
    )
    p.set_defaults(func=cmd_portal)


def check_store(store: str | None) -> str:
    """The store's root, or ValueError when a local store directory does not exist."""
    root = default_root() if store is None else resolve_root(store)
    if is_uri(root):
        return root  # an object store: the browser reports what it cannot read
    if not os.path.isdir(root):
        how = "--store" if store is not None else f"${ENV_VAR} / --store"
        raise ValueError(
            f"no job store at {root}; pass an existing store with {how} "
            "(a store appears when a job is recorded: `solstice-inspect demo --sample`)"
        )
    return root


def check_port(host: str, port: int) -> None:
    """ValueError naming a free port when ``host:port`` cannot be listened on."""
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, not {port}")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as s:
            s.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ValueError(
                f"port {port} on {host} is already in use; pass another with --port "
                f"(e.g. --port {_free_port(host)})"
            ) from None
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def cmd_portal(args: argparse.Namespace) -> int:
    try:
        from voila.app import Voila
    except ImportError:
        print(
            "error: the portal needs Voilà: pip install 'solstice-inspect[portal]'",
            file=sys.stderr,
        )
        return 2
    from solstice_inspect.portal import APP

    root = check_store(args.store)
    check_port(args.host, args.port)
    if not is_uri(root) and not os.path.exists(catalog_uri(root)):
        print(f"note: no job recorded in {root} yet; the list fills as jobs record")
    os.environ[ENV_VAR] = root  # the app's kernel inherits it
    print(f"serving the jobs of {root} at http://{_url_host(args.host)}:{args.port}/")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {args.host}: whoever can reach it sees every job of the"
            " store (the portal has no login)"
        )
    print("(Ctrl-C to stop)", flush=True)
    Voila.launch_instance(
        argv=[
            str(APP),
            f"--port={args.port}",
            f"--Voila.ip={args.host}",
            # fail rather than move to another port the user was not told about
            "--Voila.port_retries=0",
            "--no-browser",
            # Voilà's lab page without its CDN stylesheet links (share/jupyter/voila/...)
            "--template=solstice_inspect",
        ]
    )
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
