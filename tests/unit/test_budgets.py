"""The dashboard's payload budgets (DESIGN §6), counted where Jupyter counts them: every
message the widgets' comms publish. Jupyter Server drops comm messages above 1000/s and
proxies cut messages near 10 MB; ours: ≤ 20 messages/s per live dashboard, no message
over 4 MB, initial state ≤ 1 MB at any job size."""

from __future__ import annotations

import json
import time

import comm
import pytest
from widget_jobs import LiveFeed, big_job

import solstice_inspect as si

MAX_MESSAGES_PER_S = 20


class _Published(list):
    """(time, bytes, msg_type) per message, and ``code``: JS bundle characters in each."""

    def __init__(self) -> None:
        super().__init__()
        self.code: list[int] = []


MAX_MESSAGE_BYTES = 4 * 1024 * 1024


#: these tests count what each action sends (see tests/conftest.py)
pytestmark = pytest.mark.usefixtures("advice_in_the_kernel_thread")


@pytest.fixture
def published(monkeypatch):
    """(time, bytes, msg_type) of every comm message published (outside a kernel the
    comms are ``comm.DummyComm``: the same ``publish_msg`` a kernel's comm goes through)."""
    out = _Published()

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        size = len(json.dumps(data, default=str)) + sum(len(bytes(b)) for b in buffers or ())
        out.append((time.monotonic(), size, msg_type))
        state = (data or {}).get("state") or {}
        code.append(sum(len(str(state.get(k, ""))) for k in ("_esm", "_css")))

    code = out.code

    monkeypatch.setattr(comm.DummyComm, "publish_msg", publish_msg)
    return out


def test_a_live_dashboard_stays_within_its_message_budget(tmp_path, published):
    store = si.connect(tmp_path / "store")
    feed = LiveFeed(store, "budget", duration_s=40, speed=5.0, workers_per_stage=40,
                    flush_interval=0.2)  # fmt: skip
    feed.feed_until(2)
    m = si.job_monitor(store.job("budget"), refresh=1.0)
    try:
        built = len(published)
        assert max(size for _, size, _ in published) <= MAX_MESSAGE_BYTES
        start = time.monotonic()
        feed.start()
        deadline = start + 9
        while time.monotonic() < deadline and m.live.running:
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        live = published[built:]
        assert m.updates >= 5, "the dashboard followed the job"
        # per one-second window, not just on average: bursts count
        windows: dict[int, int] = {}
        for t, _, _ in live:
            windows[int(t - start)] = windows.get(int(t - start), 0) + 1
        assert max(windows.values()) <= MAX_MESSAGES_PER_S, windows
        assert len(live) / elapsed <= MAX_MESSAGES_PER_S
        assert max(size for _, size, _ in live) <= MAX_MESSAGE_BYTES
        assert m.errors.value == ""
    finally:
        m.close()
        feed.stop()


def test_a_page_of_the_biggest_cells_stays_under_4_mb(tmp_path, published):
    import pyarrow as pa

    from solstice_inspect.widgets.paging import MAX_CELL_CHARS

    huge = "x" * 1_000_000
    table = si.widgets.Table(pa.table({"text": [huge] * 600}), title="t")
    reply, buffers = table.answer({"type": "page", "id": 1, "table": "t", "offset": 0,
                                   "limit": 10_000})  # fmt: skip
    assert reply["type"] == "page"
    rows = pa.ipc.open_stream(buffers[0]).read_all()
    assert 1 <= rows.num_rows < 500, "a page of huge cells holds fewer rows"
    assert max(len(v) for v in rows.column("text").to_pylist()) == MAX_CELL_CHARS
    assert max(size for _, size, _ in published) <= MAX_MESSAGE_BYTES


def test_initial_state_of_a_1m_row_job_is_under_1_mb(tmp_path, published):
    job = big_job(si.connect(tmp_path / "store"), workers=1000, reports=1000)
    start = len(published)
    m = si.job_monitor(job)
    try:
        sizes = [p[1] - c for p, c in zip(published[start:], published.code[start:])]
        assert len(sizes) > 10, "the widgets opened their comms"
        # the JS bundles (package files, the same for every job) are not state
        state = sum(sizes)
        assert state <= 1_000_000, state
        assert max(size for _, size, _ in published) <= MAX_MESSAGE_BYTES
    finally:
        m.close()
