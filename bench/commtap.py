"""Count what widgets send to the front end, as a kernel would send it.

Outside a kernel every ipywidget talks through ``comm.DummyComm``, whose ``publish_msg``
drops the message. :class:`CommTap` replaces that method with one that builds the
message content the way ipykernel's ``Comm.publish_msg`` does (``{"data", "comm_id",
...}``) and serialises it with jupyter_client's own ``json_packer`` (the kernel's
session packer: ``allow_nan=False``, a slow ``json_clean`` fallback with a warning when
that fails), so the cost of building and encoding every message is paid where the kernel
pays it, and the bytes counted are the bytes that would go on the wire (JSON content +
binary buffers; the ~300-byte Jupyter header of each message is not counted).

Used by bench/dashboard_bench.py and bench/ui_bench.py; not a test.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import comm
from ipywidgets.widgets.widget import _instances
from jupyter_client.session import json_packer


@dataclass
class Sent:
    t: float  # time.time()
    msg_type: str  # comm_open / comm_msg / comm_close
    method: str  # update / custom / ... (comm_msg), "" otherwise
    widget: str  # the widget's class name
    nbytes: int  # JSON content + buffers
    buffers: int  # bytes of binary buffers alone
    kind: str = ""  # custom message "type" (append, page, ...) or the updated trait names


@dataclass
class CommTap:
    """Context manager: record every comm message published while active."""

    sent: list[Sent] = field(default_factory=list)
    fallbacks: int = 0  # messages json_packer could not encode directly (NaN, …)
    encode_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> CommTap:
        self._orig = comm.DummyComm.publish_msg
        tap = self

        def publish_msg(
            self: Any,
            msg_type: str,
            data: Any = None,
            metadata: Any = None,
            buffers: Any = None,
            **keys: Any,
        ) -> None:
            t0 = time.perf_counter()
            content = dict(data={} if data is None else data, comm_id=self.comm_id, **keys)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                packed = json_packer(content)
            nbuf = sum(memoryview(b).nbytes for b in buffers or ())
            dt = time.perf_counter() - t0
            d = data if isinstance(data, dict) else {}
            method = str(d.get("method", "")) if msg_type == "comm_msg" else ""
            if method == "custom":
                c = d.get("content")
                kind = str(c.get("type", "")) if isinstance(c, dict) else ""
            elif method == "update":
                kind = ",".join(sorted((d.get("state") or {}).keys()))
            else:
                kind = str(((d.get("state") or {}).get("_model_name")) or "")
            owner = _instances.get(self.comm_id)
            widget = (
                type(owner).__name__
                if owner is not None
                else str((d.get("state") or {}).get("_model_name") or "?")
            )
            with tap._lock:
                tap.encode_s += dt
                tap.fallbacks += bool(caught)
                tap.sent.append(
                    Sent(time.time(), msg_type, method, widget, len(packed) + nbuf, nbuf, kind)
                )

        comm.DummyComm.publish_msg = publish_msg  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        comm.DummyComm.publish_msg = self._orig  # type: ignore[method-assign]

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()
            self.fallbacks = 0
            self.encode_s = 0.0

    def take(self) -> list[Sent]:
        with self._lock:
            out, self.sent = self.sent, []
        return out
