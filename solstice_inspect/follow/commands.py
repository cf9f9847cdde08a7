"""``solstice-inspect follow``: record the Solstice jobs of a broker until stopped."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, TextIO

#: seconds between two redraws of the status line
STATUS_EVERY_S = 1.0


def register(sub: Any, add: Any) -> None:
    """Add ``follow`` to the CLI (``add`` gives it ``--store``)."""
    p = add(
        "follow",
        "Record the Solstice jobs on a broker (their <job_id>_state topics) into the store, "
        "live, until Ctrl-C.",
    )
    p.add_argument("--bootstrap", required=True, metavar="HOST:PORT", help="Solstice's broker")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--topic", action="append", default=None, help="only this topic (repeat)")
    which.add_argument(
        "--pattern",
        default=".*_state",
        help="follow every topic whose whole name matches (default: .*_state)",
    )
    p.add_argument(
        "--flush-interval",
        type=float,
        default=1.0,
        help="seconds between two writes of a job's rows (default: 1)",
    )
    p.add_argument(
        "--linger",
        type=float,
        default=60.0,
        help="seconds a finished job stays open for late reports (default: 60)",
    )
    p.add_argument("--no-status", action="store_true", help="no live status line on a terminal")
    p.set_defaults(func=cmd_follow)


def cmd_follow(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from solstice_inspect.follow.follower import Follower, _kafka
    from solstice_inspect.store import connect

    try:
        _kafka()
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = connect(args.store)
    follower = Follower(
        args.bootstrap,
        store=store,
        topics=args.topic,
        pattern=args.pattern,
        flush_interval=args.flush_interval,
        linger=args.linger,
    )
    line = StatusLine(sys.stderr, enabled=sys.stderr.isatty() and not args.no_status)
    _logging(line)
    what = ", ".join(args.topic) if args.topic else f"topics matching {args.pattern!r}"
    logging.getLogger("solstice_inspect.follow").info(
        "following %s on %s into %s (Ctrl-C stops)", what, args.bootstrap, store.root
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(name: str) -> None:
            logging.getLogger("solstice_inspect.follow").info(
                "%s: writing what was read and stopping", name
            )
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        status = asyncio.create_task(_status(follower, line, stop))
        try:
            await follower.run(stop)
        finally:
            stop.set()
            await status

    asyncio.run(main())
    line.clear()
    s = follower.stats()
    print(
        f"followed {s['jobs']} job(s), {s['messages']:,} messages: {s['accepted']:,} accepted, "
        f"{s['rejected']:,} rejected, {s['duplicates']:,} duplicates"
        + (f", {s['late_dropped']:,} late (dropped)" if s["late_dropped"] else "")
    )
    running = [j for j in follower.jobs() if j["status"] == "RUNNING"]
    if running:
        print(
            f"{len(running)} job(s) still running were left RUNNING: the next "
            "`solstice-inspect follow` on this store resumes them"
        )
    print(f"store: {store.root}")
    return 0


async def _status(follower: Any, line: StatusLine, stop: Any) -> None:
    import asyncio

    while not stop.is_set():
        line.show(status_text(follower.stats()))
        try:
            await asyncio.wait_for(stop.wait(), STATUS_EVERY_S)
        except asyncio.TimeoutError:
            pass


def status_text(s: dict[str, Any]) -> str:
    """The status line for the figures of :meth:`Follower.stats`.

    Examples
    --------
    >>> status_text({"broker_up": True, "jobs": 3, "running": 2, "messages_per_s": 1234.5,
    ...              "lag": 0, "messages": 10000, "rejected": 4})
    'following 3 jobs (2 running) · 1,234 msg/s · lag 0 · 10,000 messages · 4 rejected'
    """
    broker = {True: "", False: " · broker unreachable", None: " · connecting"}[s["broker_up"]]
    return (
        f"following {s['jobs']} jobs ({s['running']} running) · "
        f"{s['messages_per_s']:,.0f} msg/s · lag {s['lag']:,} · {s['messages']:,} messages · "
        f"{s['rejected']:,} rejected{broker}"
    )


class StatusLine(logging.Handler):
    """One line redrawn in place at the bottom of a terminal; log records are printed
    above it (the line is cleared first, then drawn again)."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        super().__init__()
        self.stream = stream
        self.enabled = enabled
        self.text = ""
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self.clear()
            self.stream.write(message + "\n")
            self._draw()
            self.stream.flush()
        except Exception:  # noqa: BLE001 - a logging handler never raises
            self.handleError(record)

    def show(self, text: str) -> None:
        self.text = text
        if self.enabled:
            self.clear()
            self._draw()
            self.stream.flush()

    def _draw(self) -> None:
        if self.enabled and self.text:
            self.stream.write(self.text[:200])

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[2K")


def _logging(handler: logging.Handler) -> None:
    root = logging.getLogger("solstice_inspect")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    # the follower says when the broker goes and comes back; aiokafka would log every
    # failed reconnection as an error
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
