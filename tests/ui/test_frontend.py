"""The dashboard's front end (solstice_inspect/static/dashboard.js, charts.js) in headless
Chromium without JupyterLab: a small page imports the built bundles and renders them with
a fake anywidget model; this test plays the kernel, answering each page request with rows
it filters, sorts and slices with pyarrow (the protocol of docs/widget-protocol.md)."""

from __future__ import annotations

import base64
import functools
import re
import shutil
import threading
import time
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "solstice_inspect" / "static"
BUNDLES = ("dashboard.js", "charts.js")

T0 = datetime(2026, 11, 30, 12, 0, 3, tzinfo=timezone.utc).timestamp()
HOSTILE = "<img src=x onerror=alert(1)>"
TRACE = (
    'Traceback (most recent call last):\n  File "/app/pipeline/parse.py", line 88, in parse\n'
    '    record = decode(payload)\nValueError: bad payload at offset 17: b"\\x00\\x01"'
)
STAGES = ["source", "parse", "enrich", "sink"]
N = 1000

COLUMNS = [
    {"name": "id", "type": "int"},
    {"name": "stage_id", "type": "string", "label": "stage"},
    {"name": "ts", "type": "time", "label": "time"},
    {"name": "records", "type": "int"},
    {"name": "ratio", "type": "float"},
    {"name": "took", "type": "duration"},
    {"name": "ok", "type": "bool"},
    {"name": "message", "type": "string"},
]


def message(i: int) -> str | None:
    if i == 3:
        return HOSTILE
    if i == 5:
        return TRACE
    if i % 11 == 0:
        return None
    return f"partition {i % 16} committed offset {i * 113} after retry"


EVENTS = pa.table({
    "id": pa.array(range(N), pa.int64()),
    "stage_id": [STAGES[i % 4] for i in range(N)],
    "ts": pa.array([T0 + i * 7.25 for i in range(N)], pa.float64()),
    "records": pa.array([i * i * 37 for i in range(N)], pa.int64()),
    "ratio": [(i % 97) / 7 for i in range(N)],
    "took": [(i % 13) * 0.37 + (i % 3) * 61 for i in range(N)],
    "ok": [i % 5 != 0 for i in range(N)],
    "message": [message(i) for i in range(N)],
})  # fmt: skip

GROUPS = pa.table({
    "stage_id": ["parse", "enrich", "sink"],
    "exc_type": ["ValueError", "KeyError", "TimeoutError"],
    "count": pa.array([412, 37, 2], pa.int64()),
    "first_ts": [T0 + 12.5, T0 + 80.0, T0 + 3601.0],
    "message": [HOSTILE, "'customer_id'", "sink write timed out after 30 s"],
})  # fmt: skip
GROUP_COLUMNS = [
    {"name": "stage_id", "type": "string", "label": "stage"},
    {"name": "exc_type", "type": "string", "label": "type"},
    {"name": "count", "type": "int"},
    {"name": "first_ts", "type": "time", "label": "first"},
    {"name": "message", "type": "string"},
]
OCCURRENCES = pa.table({
    "ts": [T0 + 12.5 + i * 3.1 for i in range(60)],
    "stage_id": [["parse", "enrich", "sink"][i % 3] for i in range(60)],
    "worker": [f"parse-{i % 4}" for i in range(60)],
    "traceback": [TRACE if i % 2 == 0 else HOSTILE for i in range(60)],
})  # fmt: skip
OCC_COLUMNS = [
    {"name": "ts", "type": "time", "label": "time"},
    {"name": "stage_id", "type": "string", "label": "stage"},
    {"name": "worker", "type": "string"},
    {"name": "traceback", "type": "string"},
]


def meta(title: str, columns: list[dict], table: pa.Table, **extra: Any) -> dict:
    return {"title": title, "columns": columns, "total": table.num_rows, "version": 1,
            "page_size": 25, **extra}  # fmt: skip


# ---------------------------------------------------------------- the fake kernel

NUMBER_FILTER = re.compile(r"^\s*(>=|<=|!=|>|<|=)?\s*(-?\d+(?:\.\d+)?)\s*$")
OPS = {">": pc.greater, ">=": pc.greater_equal, "<": pc.less, "<=": pc.less_equal,
       "=": pc.equal, "!=": pc.not_equal}  # fmt: skip


class BadFilter(ValueError):
    pass


def page_of(table: pa.Table, columns: list[dict], req: dict) -> tuple[dict, bytes]:
    """The kernel's answer to one page request: filter, sort, clamp, slice."""
    types = {c["name"]: c["type"] for c in columns}
    mask = None
    for col, text in (req.get("filters") or {}).items():
        if types[col] == "string":
            if text.startswith("="):
                m = pc.equal(table[col], text[1:])
            else:
                m = pc.match_substring(table[col], text, ignore_case=True)
        else:
            found = NUMBER_FILTER.match(text)
            if not found:
                raise BadFilter(f"filter {text!r} on {col}: not a number")
            m = OPS[found.group(1) or "="](table[col], float(found.group(2)))
        m = pc.fill_null(m, False)
        mask = m if mask is None else pc.and_(mask, m)
    rows = table.filter(mask) if mask is not None else table
    if req.get("sort"):
        order = "descending" if req["sort"]["desc"] else "ascending"
        rows = rows.sort_by([(req["sort"]["column"], order)])
    limit, offset = req["limit"], req["offset"]
    if rows.num_rows and offset >= rows.num_rows:
        offset = (rows.num_rows - 1) // limit * limit
    page = rows.slice(offset, limit).select([c["name"] for c in columns])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, page.schema) as writer:
        writer.write_table(page)
    msg = {"type": "page", "id": req["id"], "table": req["table"], "offset": offset,
           "total": table.num_rows, "filtered": rows.num_rows, "version": 1}  # fmt: skip
    return msg, sink.getvalue().to_pybytes()


HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><title>solstice_inspect front end</title>
<style>
body.light {
  --jp-layout-color0: #ffffff; --jp-layout-color1: #ffffff; --jp-layout-color2: #eeeeee;
  --jp-layout-color3: #bdbdbd; --jp-ui-font-color0: rgba(0,0,0,1);
  --jp-ui-font-color1: rgba(0,0,0,0.87); --jp-ui-font-color2: rgba(0,0,0,0.54);
  --jp-ui-font-color3: rgba(0,0,0,0.38); --jp-border-color1: #bdbdbd;
  --jp-border-color2: #e0e0e0; --jp-brand-color1: #1976d2; --jp-warn-color1: #f57c00;
  --jp-error-color1: #d32f2f; --jp-success-color1: #388e3c;
}
body.dark {
  --jp-layout-color0: #111111; --jp-layout-color1: #212121; --jp-layout-color2: #424242;
  --jp-layout-color3: #616161; --jp-ui-font-color0: rgba(255,255,255,1);
  --jp-ui-font-color1: rgba(255,255,255,0.87); --jp-ui-font-color2: rgba(255,255,255,0.54);
  --jp-ui-font-color3: rgba(255,255,255,0.38); --jp-border-color1: #616161;
  --jp-border-color2: #424242; --jp-brand-color1: #42a5f5; --jp-warn-color1: #ffa726;
  --jp-error-color1: #ef5350; --jp-success-color1: #66bb6a;
}
body {
  --jp-ui-font-family: system-ui, -apple-system, "Segoe UI", helvetica, arial, sans-serif;
  --jp-code-font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace;
  margin: 0; padding: 12px 16px; background: var(--jp-layout-color0);
}
.cell { margin-bottom: 18px; }
</style></head>
<body><div id="cells"></div>
<script type="module">
const theme = new URLSearchParams(location.search).get("theme") || "light";
document.body.className = theme;
document.body.dataset.jpThemeName = theme === "dark" ? "JupyterLab Dark" : "JupyterLab Light";

// The part of an anywidget model the views use; "kernel" changes come through __set.
class FakeModel {
  constructor(id, state) {
    this.id = id; this.state = state; this.handlers = new Map(); this.saves = 0;
  }
  get(key) { return this.state[key]; }
  set(key, value) {
    const same = JSON.stringify(this.state[key]) === JSON.stringify(value);
    this.state[key] = value;
    if (!same) this.emit("change:" + key, this, value);
  }
  on(ev, cb) {
    if (!this.handlers.has(ev)) this.handlers.set(ev, new Set());
    this.handlers.get(ev).add(cb);
  }
  off(ev, cb) { this.handlers.get(ev)?.delete(cb); }
  emit(ev, ...args) { for (const cb of [...(this.handlers.get(ev) || [])]) cb(...args); }
  send(msg) { window.__requests.push({ model: this.id, msg: JSON.parse(JSON.stringify(msg)) }); }
  save_changes() { this.saves += 1; }
}
window.__requests = [];
window.__models = {};
window.__cleanups = {};
window.__errors = [];
addEventListener("error", (e) => window.__errors.push(String(e.message)));
addEventListener("unhandledrejection", (e) => window.__errors.push(String(e.reason)));
window.__mount = async (id, bundle, state) => {
  const mod = await import("./" + bundle);
  const model = new FakeModel(id, state);
  const el = document.createElement("div");
  el.className = "cell";
  el.id = id;
  document.getElementById("cells").append(el);
  window.__models[id] = model;
  window.__cleanups[id] = mod.default.render({ model, el });
};
window.__set = (id, key, value) => window.__models[id].set(key, value);
// An answer with one buffer: a DataView that does not start at its ArrayBuffer's start,
// as JupyterLab delivers them.
window.__deliver = (id, msg, b64) => {
  const bin = atob(b64);
  const buf = new ArrayBuffer(bin.length + 8);
  const bytes = new Uint8Array(buf, 8, bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  window.__models[id].emit("msg:custom", msg, [new DataView(buf, 8, bin.length)]);
};
window.__ready = true;
</script></body></html>
"""


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The harness page and the built bundles on a loopback HTTP server (ES modules do
    not load from file://)."""
    root = tmp_path_factory.mktemp("frontend")
    sources = sorted((REPO / "js").rglob("*.js")) if (REPO / "js").is_dir() else []
    newest_source = max((p.stat().st_mtime for p in sources), default=0)
    for name in BUNDLES:
        bundle = STATIC / name
        if not bundle.exists():
            pytest.fail(f"{bundle} is missing: build it with `node js/build.mjs`")
        if bundle.stat().st_mtime < newest_source:
            pytest.fail(f"{bundle} is older than js/: rebuild it with `node js/build.mjs`")
        shutil.copy(bundle, root / name)
    (root / "index.html").write_text(HARNESS)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Harness:
    """Drives the page: mounts views, sets traits as the kernel would, and answers (or
    withholds) page requests."""

    def __init__(self, page: Any, site: str) -> None:
        self.page = page
        self.site = site
        self.seen = 0
        self.tables = {"events": (EVENTS, COLUMNS), "groups": (GROUPS, GROUP_COLUMNS),
                       "occurrences": (OCCURRENCES, OCC_COLUMNS)}  # fmt: skip

    def open(self, theme: str = "light") -> None:
        self.page.goto(f"{self.site}/index.html?theme={theme}")
        self.page.wait_for_function("window.__ready === true")
        self.seen = 0

    def mount(self, id: str, bundle: str, state: dict) -> None:
        self.page.evaluate("([id, b, s]) => window.__mount(id, b, s)", [id, bundle, state])

    def set(self, id: str, key: str, value: Any) -> None:
        self.page.evaluate("([id, k, v]) => window.__set(id, k, v)", [id, key, value])

    def requests(self, n: int = 1, timeout: float = 5.0) -> list[dict]:
        """The next ``n`` messages the views sent (waits for them)."""
        self.page.wait_for_function(
            f"() => window.__requests.length >= {self.seen + n}", timeout=timeout * 1000
        )
        got = self.page.evaluate(f"() => window.__requests.slice({self.seen}, {self.seen + n})")
        self.seen += n
        return got

    def request(self, timeout: float = 5.0) -> dict:
        return self.requests(1, timeout)[0]

    def pending(self) -> list[dict]:
        got = self.page.evaluate(f"() => window.__requests.slice({self.seen})")
        self.seen += len(got)
        return got

    def answer(self, req: dict) -> dict:
        table, columns = self.tables[req["msg"]["table"]]
        try:
            msg, ipc = page_of(table, columns, req["msg"])
        except BadFilter as e:
            msg, ipc = {"type": "error", "id": req["msg"]["id"], "table": req["msg"]["table"],
                        "message": str(e)}, b""  # fmt: skip
        self.page.evaluate(
            "([id, m, b]) => window.__deliver(id, m, b)",
            [req["model"], msg, base64.b64encode(ipc).decode()],
        )
        return msg

    def serve(self, n: int = 1) -> list[dict]:
        """Wait for ``n`` requests and answer them in order."""
        reqs = self.requests(n)
        for r in reqs:
            self.answer(r)
        return reqs

    def texts(self, selector: str) -> list[str]:
        return self.page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")

    def errors(self) -> list[str]:
        return self.page.evaluate("window.__errors")


@pytest.fixture
def ui(page, site):
    h = Harness(page, site)
    h.open()
    yield h
    assert h.errors() == [], "no uncaught error in the page"
    assert page.dialogs == [], "no alert() ran"


def table_state(tables: dict) -> dict:
    return {"part": "table", "tables": tables}


def events_view(ui: Harness, id: str = "t1") -> Any:
    ui.mount(id, "dashboard.js", table_state({"events": meta("Events", COLUMNS, EVENTS)}))
    first = ui.request()
    assert first["msg"] == {"type": "page", "id": first["msg"]["id"], "table": "events",
                            "offset": 0, "limit": 25, "sort": None, "filters": {}}  # fmt: skip
    ui.answer(first)
    view = ui.page.locator('#t1 .si-table-view[data-table="events"]')
    view.locator("tbody tr").first.wait_for()
    return view


def ids_shown(view: Any) -> list[int]:
    return [
        int(t.replace(",", "")) for t in view.locator('td[data-column="id"]').all_text_contents()
    ]


# ---------------------------------------------------------------- tables


def test_pages_through_the_page_input_and_buttons(ui):
    view = events_view(ui)
    assert view.locator("tbody tr").count() == 25
    assert view.locator(".si-table-status").text_content() == "rows 1–25 of 1,000"
    assert view.locator(".si-pager").text_content().replace("\xa0", " ").count("of 40") == 1
    assert view.locator(".si-first").is_disabled()
    assert view.locator(".si-prev").is_disabled()

    page_input = view.locator(".si-page-input")
    page_input.fill("7")
    page_input.press("Enter")
    req = ui.request()
    assert (req["msg"]["offset"], req["msg"]["limit"]) == (150, 25)
    ui.answer(req)
    ui.page.wait_for_function(
        "() => document.querySelector('#t1 td[data-column=id]').textContent === '150'"
    )
    assert ids_shown(view) == list(range(150, 175))
    assert view.locator(".si-table-status").text_content() == "rows 151–175 of 1,000"

    view.locator(".si-last").click()
    req = ui.request()
    assert req["msg"]["offset"] == 975
    ui.answer(req)
    ui.page.wait_for_function(
        "() => document.querySelector('#t1 td[data-column=id]').textContent === '975'"
    )
    assert view.locator(".si-page-input").input_value() == "40"
    assert view.locator(".si-next").is_disabled()
    assert view.locator(".si-last").is_disabled()

    # a bigger page size keeps the first row in view
    view.locator("select.si-page-size").select_option("100")
    req = ui.request()
    assert (req["msg"]["offset"], req["msg"]["limit"]) == (900, 100)


def test_header_click_cycles_the_sort(ui):
    view = events_view(ui)
    head = view.locator('thead th[data-column="ratio"]')
    ratios = EVENTS["ratio"].to_pylist()

    head.click()
    req = ui.request()
    assert req["msg"]["sort"] == {"column": "ratio", "desc": False}
    assert req["msg"]["offset"] == 0
    ui.answer(req)
    ui.page.wait_for_function("() => document.querySelector('#t1 th[data-column=ratio]')"
                              ".textContent.includes('▲')")  # fmt: skip
    shown = view.locator('td[data-column="ratio"]').all_text_contents()
    assert shown[0] == "0"
    assert float(shown[-1]) == round(sorted(ratios)[24], 2)

    head.click()
    req = ui.request()
    assert req["msg"]["sort"] == {"column": "ratio", "desc": True}
    ui.answer(req)
    ui.page.wait_for_function("() => document.querySelector('#t1 th[data-column=ratio]')"
                              ".textContent.includes('▼')")  # fmt: skip
    assert float(view.locator('td[data-column="ratio"]').first.text_content()) == round(
        max(ratios), 2
    )

    head.click()
    req = ui.request()
    assert req["msg"]["sort"] is None
    ui.answer(req)
    ui.page.wait_for_function("() => !/[▲▼]/.test(document.querySelector('#t1 thead').textContent)")
    assert ids_shown(view)[:3] == [0, 1, 2]


def test_filters_are_debounced_and_sent(ui):
    view = events_view(ui)
    stage = view.locator('input.si-filter[data-column="stage_id"]')
    stage.press_sequentially("PARSE", delay=40)  # typed: one request after the pause
    req = ui.request()
    assert req["msg"]["filters"] == {"stage_id": "PARSE"}
    assert req["msg"]["offset"] == 0
    time.sleep(0.4)
    assert ui.pending() == [], "one request for the whole word"
    ui.answer(req)
    ui.page.wait_for_function(
        "() => document.querySelector('#t1 .si-table-status').textContent.includes('filtered')"
    )
    assert view.locator(".si-table-status").text_content() == (
        "rows 1–25 of 250 (filtered from 1,000)"
    )
    assert set(view.locator('td[data-column="stage_id"]').all_text_contents()) == {"parse"}

    ident = view.locator('input.si-filter[data-column="id"]')
    ident.fill(">990")
    ident.press("Enter")  # Enter sends at once
    req = ui.request(timeout=1)
    assert req["msg"]["filters"] == {"stage_id": "PARSE", "id": ">990"}
    ui.answer(req)
    ui.page.wait_for_function("() => document.querySelectorAll('#t1 tbody tr').length === 2")
    assert ids_shown(view) == [993, 997]

    # a filter the kernel cannot read: its error, in place of the rows
    ident.fill(">abc")
    ident.press("Enter")
    ui.answer(ui.request(timeout=1))
    view.locator(".si-table-error").wait_for()
    assert view.locator(".si-table-error").text_content() == "filter '>abc' on id: not a number"
    assert view.locator("tbody tr").count() == 0


def test_out_of_order_answers_keep_the_newest(ui):
    view = events_view(ui)
    view.locator(".si-next").click()
    view.locator(".si-next").click()
    older, newer = ui.requests(2)
    assert (older["msg"]["offset"], newer["msg"]["offset"]) == (25, 50)
    assert newer["msg"]["id"] > older["msg"]["id"]
    ui.answer(newer)
    ui.page.wait_for_function(
        "() => document.querySelector('#t1 td[data-column=id]').textContent === '50'"
    )
    ui.answer(older)  # late: must not replace the newer page
    time.sleep(0.2)
    assert ids_shown(view)[0] == 50
    assert view.locator(".si-table-status").text_content() == "rows 51–75 of 1,000"


def test_hostile_text_stays_text(ui):
    view = events_view(ui)
    cell = view.locator('tr[data-row="3"] td[data-column="message"]')
    assert cell.text_content() == HOSTILE
    assert ui.page.locator("img").count() == 0

    # the detail of a row: every field, the full text
    view.locator('tr[data-row="5"]').click()
    detail = view.locator(".si-row-detail")
    detail.wait_for()
    assert detail.evaluate("e => e.tagName") == "PRE"
    assert TRACE in detail.text_content()
    assert "2026-11-30 12:00:39.250 UTC" in detail.text_content()
    labels = detail.locator(".si-detail-label").all_text_contents()
    assert labels == [c.get("label", c["name"]) for c in COLUMNS]
    view.locator('tr[data-row="3"]').click()
    assert HOSTILE in detail.text_content()
    assert ui.page.locator("img").count() == 0
    time.sleep(0.3)  # an onerror handler would have run by now
    assert ui.page.dialogs == []


def test_cells_are_formatted_by_type(ui):
    view = events_view(ui)
    row = view.locator('tr[data-row="9"]')
    cell = lambda c: row.locator(f'td[data-column="{c}"]')  # noqa: E731
    assert cell("ts").text_content() == "12:01:08"  # T0 + 9 * 7.25 s, UTC
    assert view.locator(".si-table-caption").text_content() == "2026-11-30 UTC"
    assert cell("records").text_content() == "2,997"
    assert view.locator('tr[data-row="24"] td[data-column="records"]').text_content() == "21,312"
    assert cell("ratio").text_content() == "1.29"  # 9 / 7, at most 2 decimals
    assert cell("took").text_content() == "3.3 s"  # 9 * 0.37
    assert view.locator('tr[data-row="10"] td[data-column="took"]').text_content() == "1m 05s"
    assert cell("ok").text_content() == "✓"
    assert view.locator('tr[data-row="10"] td[data-column="ok"]').text_content() == ""
    null = view.locator('tr[data-row="11"] td[data-column="message"]')
    assert null.text_content() == "—"
    assert "si-null" in null.get_attribute("class")
    for col in ("records", "ratio", "took", "id"):
        assert cell(col).evaluate("e => getComputedStyle(e).textAlign") == "right"
    text = cell("message")
    style = text.evaluate(
        "e => { const s = getComputedStyle(e);"
        " return [s.whiteSpace, s.overflow, s.textOverflow, s.textAlign]; }"
    )
    assert style == ["nowrap", "hidden", "ellipsis", "left"]
    assert text.get_attribute("title") == text.text_content()


def test_kernel_version_and_filters_reask(ui):
    view = events_view(ui)
    view.locator(".si-next").click()
    ui.answer(ui.request())
    tables = {"events": meta("Events", COLUMNS, EVENTS)}
    tables["events"]["version"] = 2  # new rows: the same page again
    ui.set("t1", "tables", tables)
    req = ui.request()
    assert (req["msg"]["offset"], req["msg"]["filters"]) == (25, {})
    ui.answer(req)

    tables = {"events": {**tables["events"], "filters": {"stage_id": "=parse"}}}
    ui.set("t1", "tables", tables)  # e.g. a click on the stage graph
    req = ui.request()
    assert (req["msg"]["offset"], req["msg"]["filters"]) == (0, {"stage_id": "=parse"})
    assert view.locator('input.si-filter[data-column="stage_id"]').input_value() == "=parse"
    ui.answer(req)
    ui.page.wait_for_function(
        "() => document.querySelector('#t1 .si-table-status').textContent.includes('of 250')"
    )
    time.sleep(0.3)
    assert ui.pending() == [], "one request per change"

    # the kernel could not read the table: its error, as text
    failed = {**tables["events"], "version": 3, "error": f"OSError: {HOSTILE}"}
    ui.set("t1", "tables", {"events": failed})
    assert view.locator(".si-table-error").text_content() == f"OSError: {HOSTILE}"
    assert ui.page.locator("img").count() == 0


# ---------------------------------------------------------------- tabs


def tabs_state() -> dict:
    return {
        "part": "tabs",
        "tabs": [
            {"id": "exceptions", "title": "Exceptions", "badge": 451,
             "tables": ["groups", "occurrences"]},
            {"id": "stage", "title": "Stage", "tables": ["events"]},
            {"id": "log", "title": "Log", "text": "12:00:03 started\n<b>not bold</b>"},
        ],
        "selected": "exceptions",
        "tables": {
            "groups": meta("Exception groups", GROUP_COLUMNS, GROUPS,
                           link={"column": "stage_id", "table": "occurrences",
                                 "filter": "stage_id"}),
            "occurrences": meta("Occurrences", OCC_COLUMNS, OCCURRENCES),
            "events": meta("Events", COLUMNS, EVENTS),
        },
        "stage": {"stage_id": "parse", "facts": [
            ["status", "RUNNING", "string"], ["workers", 4, "int"],
            ["records out", 1234567, "int"], ["output rate", 812.3456, "float"],
            ["busy time", 191.5, "duration"], ["backpressured", True, "bool"],
            ["first seen", T0, "time"]]},
        "error": "",
    }  # fmt: skip


def test_tabs_switch_and_only_the_visible_tab_asks(ui):
    ui.mount("tabs", "dashboard.js", tabs_state())
    first = ui.requests(2)
    assert sorted(r["msg"]["table"] for r in first) == ["groups", "occurrences"]
    for r in first:
        ui.answer(r)
    time.sleep(0.3)
    assert ui.pending() == [], "the hidden tab's table asks nothing"
    root = ui.page.locator("#tabs")
    assert root.locator(".si-tab-selected").get_attribute("data-tab") == "exceptions"
    assert root.locator('.si-tab[data-tab="exceptions"] .si-tab-badge').text_content() == "451"
    assert root.locator('tr[data-row="0"] td[data-column="message"]').text_content() == HOSTILE

    root.locator('.si-tab[data-tab="stage"]').click()
    assert ui.page.evaluate("window.__models.tabs.get('selected')") == "stage"
    assert ui.page.evaluate("window.__models.tabs.saves") == 1
    assert root.locator(".si-tab-selected").get_attribute("data-tab") == "stage"
    req = ui.request()
    assert req["msg"]["table"] == "events"
    ui.answer(req)
    detail = root.locator('table.si-stage-detail[data-stage="parse"]')
    assert detail.locator("th").text_content() == "Stage parse"
    facts = dict(zip(detail.locator("td:first-child").all_text_contents(),
                     detail.locator("td:last-child").all_text_contents(), strict=True))  # fmt: skip
    assert facts == {"status": "RUNNING", "workers": "4", "records out": "1,234,567",
                     "output rate": "812.35", "busy time": "3m 12s", "backpressured": "yes",
                     "first seen": "2026-11-30 12:00:03 UTC"}  # fmt: skip
    assert root.locator('.si-table-view[data-table="events"]').is_visible()
    assert not root.locator('.si-table-view[data-table="groups"]').is_visible()

    ui.set("tabs", "selected", "log")  # the kernel selects a tab
    text = root.locator("pre.si-text")
    assert text.text_content() == "12:00:03 started\n<b>not bold</b>"
    assert root.locator("pre.si-text b").count() == 0
    assert root.locator(".si-tab-selected").get_attribute("data-tab") == "log"

    ui.set("tabs", "error", HOSTILE)
    assert root.locator(".si-error").text_content() == HOSTILE
    assert ui.page.locator("img").count() == 0

    ui.set("tabs", "selected", "exceptions")  # shown again: pages asked again
    assert sorted(r["msg"]["table"] for r in ui.requests(2)) == ["groups", "occurrences"]


def test_row_click_filters_the_linked_table(ui):
    ui.mount("tabs", "dashboard.js", tabs_state())
    for r in ui.requests(2):
        ui.answer(r)
    root = ui.page.locator("#tabs")
    root.locator('.si-table-view[data-table="groups"] tr[data-row="1"]').click()
    req = ui.request()
    assert req["msg"]["table"] == "occurrences"
    assert (req["msg"]["filters"], req["msg"]["offset"]) == ({"stage_id": "=enrich"}, 0)
    occ = root.locator('.si-table-view[data-table="occurrences"]')
    assert occ.locator('input.si-filter[data-column="stage_id"]').input_value() == "=enrich"
    ui.answer(req)
    ui.page.wait_for_function(
        "() => document.querySelector('[data-table=occurrences] .si-table-status')"
        ".textContent === 'rows 1–20 of 20 (filtered from 60)'"
    )
    assert set(occ.locator('td[data-column="stage_id"]').all_text_contents()) == {"enrich"}
    # the group's own detail opened too
    groups = root.locator('.si-table-view[data-table="groups"]')
    assert "KeyError" in groups.locator(".si-row-detail").text_content()


# ---------------------------------------------------------------- header


def header(**over: Any) -> dict:
    h = {"job_id": "etl_nightly", "attempt_id": "a1", "status": "RUNNING",
         "status_reason": None, "running": True, "start": T0, "elapsed_s": 754.2,
         "progress": 0.4213, "eta_s": 1031, "records_in": 1_234_567, "records_out": 1_200_000,
         "rate_in": 1830.5, "rate_out": 1790.2, "workers": 12, "exceptions": 451,
         "bottleneck": "parse", "stale_after_s": 6, "updated_age_s": 1}  # fmt: skip
    return {**h, **over}


def test_header_shows_status_and_ages(ui):
    spark = [1200 + 300 * ((i * 7) % 5) for i in range(60)]
    ui.mount("hd", "dashboard.js", {"part": "header", "header": header(), "spark": spark})
    root = ui.page.locator("#hd .si-header")
    badge = root.locator(".si-badge")
    assert (badge.text_content(), badge.get_attribute("data-status")) == ("RUNNING", "RUNNING")
    assert root.locator(".si-records-in").text_content() == "1.23M"
    assert root.locator(".si-records-out").get_attribute("data-value") == "1200000"
    assert "started 2026-11-30 12:00:03 UTC" in root.text_content()
    assert "ETA 17m 11s" in root.text_content()
    assert "parse" in root.locator(".si-stat-bottleneck").text_content()
    assert root.locator(".si-spark polyline").count() == 1

    updated = root.locator(".si-updated")
    assert updated.text_content() == "updated 1 s ago"
    assert "si-stale" not in updated.get_attribute("class")
    ui.page.wait_for_function(
        "() => document.querySelector('#hd .si-updated').textContent === 'updated 2 s ago'",
        timeout=3000,
    )  # it ticks with no message from the kernel
    ui.set("hd", "header", header(updated_age_s=5.5))
    ui.page.wait_for_function(
        "() => document.querySelector('#hd .si-updated').classList.contains('si-stale')",
        timeout=3000,
    )  # 5.5 s + the second that passed > stale_after_s
    ui.set("hd", "header", header(updated_age_s=10))
    updated = root.locator(".si-updated")
    assert "si-stale" in updated.get_attribute("class")
    colour = updated.evaluate("e => getComputedStyle(e).color")
    assert colour == "rgb(245, 124, 0)", "amber: --jp-warn-color1"

    final = header(running=False, status="FAILED", status_reason="stage parse failed",
                   updated_age_s=None, progress=None)  # fmt: skip
    ui.set("hd", "header", final)
    root = ui.page.locator("#hd .si-header")
    assert root.locator(".si-badge").get_attribute("data-status") == "FAILED"
    assert root.locator(".si-reason").text_content() == "stage parse failed"
    assert root.locator(".si-updated").text_content() == "final"
    assert "si-stale" not in root.locator(".si-updated").get_attribute("class")
    assert "duration" in root.text_content()


# ---------------------------------------------------------------- charts


def chart_state(stages: list[str]) -> dict:
    from solstice_inspect.charts import CHARTS, vega_lite_spec

    t = [i * 60.0 for i in range(40)]  # 40 minutes
    data = {name: {"t": t * len(stages), "s": [s for s in range(len(stages)) for _ in t],
                   "v": [100 + 10 * s + (i % 7) for s in range(len(stages)) for i in range(40)]}
            for name in CHARTS}  # fmt: skip
    return {"specs": {name: vega_lite_spec(name) for name in CHARTS}, "data": data,
            "stages": stages, "t0": T0, "epoch": 1}  # fmt: skip


def legend(ui: Harness, chart: str) -> list[str]:
    return ui.texts(f'#ch .si-chart[data-chart="{chart}"] .role-legend-label text')


def x_labels(ui: Harness, chart: str) -> list[str]:
    return ui.page.evaluate(f"""() => {{
        const axis = [...document.querySelectorAll('#ch .si-chart[data-chart={chart}] .role-axis')]
            .find(a => a.getAttribute('aria-label')?.startsWith('X-axis'));
        return [...axis.querySelectorAll('.role-axis-label text')].map(t => t.textContent);
    }}""")


def x_labels_overlap(ui: Harness) -> bool:
    return ui.page.evaluate("""() => [...document.querySelectorAll('#ch .si-chart')].some(c => {
        const axis = [...c.querySelectorAll('.role-axis')].find(
            a => a.getAttribute('aria-label')?.startsWith('X-axis'));
        const boxes = [...axis.querySelectorAll('.role-axis-label text')]
            .map(t => t.getBoundingClientRect()).sort((a, b) => a.left - b.left);
        return boxes.some((b, i) => i > 0 && b.left < boxes[i - 1].right);
    })""")


def test_charts_fill_the_width_and_take_live_rows(ui):
    ui.page.set_viewport_size({"width": 1400, "height": 1000})
    ui.mount("ch", "charts.js", chart_state(["source", "parse"]))
    ui.page.wait_for_function("() => document.getElementById('ch').dataset.rendered === '1'")
    assert ui.request()["msg"] == {"type": "hello"}
    cells = ui.page.locator("#ch .si-chart")
    assert cells.count() == 3
    widths = cells.evaluate_all(
        "cs => cs.map(c => [c.clientWidth, c.querySelector('svg').getBoundingClientRect().width])"
    )
    for cell_w, svg_w in widths:
        assert cell_w > 400, widths
        assert abs(cell_w - svg_w) <= 4, widths
    labels = x_labels(ui, "throughput")
    assert labels, "a time axis"
    assert all(t.startswith("12:") for t in labels), "times from t0 (epoch s), UTC"
    assert not x_labels_overlap(ui)
    assert sorted(legend(ui, "throughput")) == ["parse", "source"]

    # one message for all charts; a stage that first reports late (index 2) is held
    # until `stages` names it
    from solstice_inspect.charts import CHARTS

    new = {name: {"t": [2405.0, 2410.0], "s": [2, 2], "v": [50.0, 60.0]} for name in CHARTS}
    append = {"type": "append", "epoch": 1, "seq": 7, "charts": new}
    ui.page.evaluate("m => window.__models.ch.emit('msg:custom', m, [])", append)
    ui.set("ch", "stages", ["source", "parse", "enrich"])
    ui.page.wait_for_function(
        "() => [...document.querySelectorAll('#ch .si-chart[data-chart=queue_lag]"
        " .role-legend-label text')].some(t => t.textContent === 'enrich')"
    )
    for name in CHARTS:
        assert sorted(legend(ui, name)) == ["enrich", "parse", "source"]
    before = ui.page.eval_on_selector_all(
        "#ch .si-chart[data-chart=throughput] .mark-line path",
        "ps => ps.map(p => p.getAttribute('d'))",
    )
    assert len(before) == 3
    ui.page.evaluate("m => window.__models.ch.emit('msg:custom', m, [])", append)  # replayed
    time.sleep(0.2)
    after = ui.page.eval_on_selector_all(
        "#ch .si-chart[data-chart=throughput] .mark-line path",
        "ps => ps.map(p => p.getAttribute('d'))",
    )
    assert after == before, "a message applied twice (seq de-duplication)"

    # other widths: the charts follow their cells, one time tick per ~90 px, no overlap
    ticks = {}
    for width in (1400, 720, 380):
        ui.page.set_viewport_size({"width": width, "height": 1000})
        ui.page.wait_for_function(
            f"""() => [...document.querySelectorAll('#ch .si-chart')].every(c => {{
                const s = c.querySelector('svg');
                return c.clientWidth < {width} && Math.abs(c.clientWidth
                    - s.getBoundingClientRect().width) <= 4; }})""",
            timeout=5000,
        )
        assert not x_labels_overlap(ui), width
        ticks[width] = len(x_labels(ui, "throughput"))
    # 1400: three charts a row; 720: one wide chart; 380: one narrow chart
    assert ticks[720] > ticks[1400] >= ticks[380] >= 1, ticks


# ---------------------------------------------------------------- how it looks


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshot(ui, artifacts, theme):
    ui.open(theme)
    spark = [1200 + 300 * ((i * 7) % 5) for i in range(60)]
    ui.mount(
        "hd", "dashboard.js", {"part": "header", "header": header(updated_age_s=9), "spark": spark}
    )
    ui.mount("ch", "charts.js", chart_state(["source", "parse", "enrich", "sink"]))
    state = tabs_state()
    ui.mount("tabs", "dashboard.js", state)
    reqs = [r for r in ui.requests(3) if r["msg"]["type"] == "page"]
    for r in reqs:
        ui.answer(r)
    root = ui.page.locator("#tabs")
    root.locator('.si-table-view[data-table="occurrences"] tr[data-row="0"]').click()
    ui.page.wait_for_function("() => document.getElementById('ch').dataset.rendered === '1'")
    root.locator(".si-row-detail").wait_for()
    ui.page.locator("#hd").screenshot(path=str(artifacts / f"frontend_header_{theme}.png"))
    ui.page.screenshot(path=str(artifacts / f"frontend_{theme}.png"), full_page=True)

    root.locator('.si-tab[data-tab="stage"]').click()
    ui.answer(ui.request())
    root.locator("tbody tr").first.wait_for()
    root.screenshot(path=str(artifacts / f"frontend_stage_{theme}.png"))
    bg = ui.page.locator("#tabs .si-table-scroll").evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert bg == ("rgb(255, 255, 255)" if theme == "light" else "rgb(17, 17, 17)")
