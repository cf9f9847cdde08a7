"""The follower's terminal output: log lines above one status line redrawn in place."""

from __future__ import annotations

import io
import logging

import pytest

from solstice_inspect.cli import build_parser
from solstice_inspect.follow.commands import StatusLine, status_text


def test_log_lines_print_above_the_status_line_which_is_drawn_again():
    out = io.StringIO()
    line = StatusLine(out, enabled=True)
    line.show("following 2 jobs")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "job a: COMPLETED", None, None)
    line.emit(record)
    text = out.getvalue()
    # the status line is cleared, the log line printed on its own line, the status redrawn
    assert text.endswith("\r\x1b[2K" + line.format(record) + "\nfollowing 2 jobs")
    assert "job a: COMPLETED\n" in text


def test_off_a_terminal_only_log_lines_are_written():
    out = io.StringIO()
    line = StatusLine(out, enabled=False)
    line.show("following 2 jobs")
    line.emit(logging.LogRecord("x", logging.WARNING, __file__, 1, "broker gone", None, None))
    assert out.getvalue().count("\n") == 1
    assert "following" not in out.getvalue()
    assert "\x1b" not in out.getvalue()


def test_the_status_line_says_when_the_broker_is_unreachable():
    figures = {"jobs": 1, "running": 1, "messages_per_s": 0.0, "lag": 12, "messages": 5,
               "rejected": 0, "broker_up": False}  # fmt: skip
    assert status_text(figures).endswith("lag 12 · 5 messages · 0 rejected · broker unreachable")


def test_follow_takes_a_topic_or_a_pattern_not_both(capsys):
    parser = build_parser()
    args = parser.parse_args(["follow", "--bootstrap", "h:1", "--topic", "a_state"])
    assert (args.topic, args.pattern) == (["a_state"], ".*_state")
    with pytest.raises(SystemExit, match="2"):
        parser.parse_args(["follow", "--bootstrap", "h:1", "--topic", "a", "--pattern", "b"])
    assert "not allowed with argument" in capsys.readouterr().err
