// One paged table: toolbar (title, date caption, row range, pager, page size), a header
// that sorts (asc -> desc -> none), a filter row, the page's rows, and the detail of a
// clicked row. The rows live in the kernel; this view only asks for pages (pager.js).
import { h } from "./dom.js";
import { fmtCell, fmtDate, fmtDetail, NUMERIC } from "./format.js";

const PAGE_SIZES = [25, 50, 100, 250];
const DEBOUNCE_MS = 250;
const fmtCount = (n) => (n == null ? "?" : Number(n).toLocaleString("en"));

const PLACEHOLDER = { string: "filter", int: "> < =", float: "> < =", duration: "> < = s", time: "> < =", bool: "" };
const FILTER_HELP = {
  string: "rows containing this text (any case); =text: exactly this text",
  time: ">t, >=t, <t, <=t, =t, !=t with t in epoch seconds",
  duration: ">10, >=10, <5, <=5, =3, !=3 (seconds)",
};
const NUMBER_HELP = ">10, >=10, <5, <=5, =3, !=3, or a number";

function cellClass(type) {
  if (NUMERIC.has(type)) return "si-num";
  if (type === "bool") return "si-bool";
  if (type === "time") return "si-time";
  return "si-str";
}

const nonEmpty = (filters) =>
  Object.fromEntries(Object.entries(filters).filter(([, v]) => v != null && String(v) !== ""));

// A row as JSON can carry it: 64-bit integers as numbers, anything else odd as text.
function plainRow(row) {
  const out = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] = typeof v === "bigint" ? Number(v)
      : v == null || typeof v === "number" || typeof v === "string" || typeof v === "boolean" ? v
      : String(v);
  }
  return out;
}

export class TableView {
  // host: {pager, onLink(link, row), send(msg)}; meta: tables[name] from the kernel.
  constructor(name, meta, host) {
    this.name = name;
    this.host = host;
    this.meta = {};
    this.visible = false;
    this.loaded = false;
    this.offset = 0;
    this.limit = meta.page_size || 25;
    this.sort = meta.sort || null;
    this.filters = { ...(meta.filters || {}) };
    this.seen = { // what the kernel last said: only a change of it acts
      version: meta.version,
      filters: JSON.stringify(meta.filters || {}),
      sort: JSON.stringify(meta.sort || null),
    };
    this.rows = [];
    this.answer = null;
    this.selected = null; // index in this.rows of the row whose detail is open
    this.timers = new Map();
    this.inputs = new Map();

    this.titleEl = h("span", { class: "si-table-title" });
    this.captionEl = h("span", { class: "si-table-caption" });
    this.statusEl = h("span", { class: "si-table-status" }, "loading…");
    const btn = (cls, text, title, go) =>
      h("button", { class: cls, title, type: "button", onclick: () => this.goto(go()) }, text);
    this.firstBtn = btn("si-first", "«", "first page", () => 0);
    this.prevBtn = btn("si-prev", "‹", "previous page", () => this.offset - this.limit);
    this.nextBtn = btn("si-next", "›", "next page", () => this.offset + this.limit);
    this.lastBtn = btn("si-last", "»", "last page", () => (this.pages() - 1) * this.limit);
    this.pageInput = h("input", {
      class: "si-page-input", type: "text", inputmode: "numeric", value: "1", "aria-label": "page",
    });
    this.pageInput.addEventListener("keydown", (e) => {
      e.stopPropagation(); // typing here is not a notebook shortcut
      if (e.key === "Enter") this.jumpToInput();
    });
    this.pageInput.addEventListener("change", () => this.jumpToInput());
    this.pagesEl = h("span", {}, "1");
    this.sizeSelect = h("select", { class: "si-page-size", title: "rows per page" });
    this.fillSizes();
    this.sizeSelect.addEventListener("change", () => {
      this.limit = Number(this.sizeSelect.value);
      this.offset = Math.floor(this.offset / this.limit) * this.limit;
      this.request();
    });
    const pager = h("span", { class: "si-pager" },
      this.firstBtn, this.prevBtn, " page ", this.pageInput, " of ", this.pagesEl, " ",
      this.nextBtn, this.lastBtn, " ", this.sizeSelect, " rows");

    this.thead = h("thead");
    this.tbody = h("tbody");
    this.tbody.addEventListener("click", (e) => this.onRowClick(e));
    this.tableEl = h("table", { class: "si-table" }, this.thead, this.tbody);
    this.errorEl = h("div", { class: "si-table-error", role: "alert" });
    this.detailEl = h("div", { class: "si-detail", hidden: true });
    this.root = h("div", { class: "si-table-view", "data-table": name },
      h("div", { class: "si-toolbar" }, this.titleEl, this.captionEl, this.statusEl, pager),
      h("div", { class: "si-table-scroll" }, this.tableEl),
      this.errorEl,
      this.detailEl);
    this.update(meta, { initial: true });
  }

  fillSizes() {
    const sizes = [...new Set([...PAGE_SIZES, this.limit])].sort((a, b) => a - b);
    this.sizeSelect.replaceChildren(...sizes.map((n) => h("option", { value: String(n) }, String(n))));
    this.sizeSelect.value = String(this.limit);
  }

  columns() { return this.meta.columns || []; }

  pages() {
    const n = this.answer ? this.answer.filtered : 0;
    return Math.max(1, Math.ceil(n / this.limit));
  }

  // A new `tables[name]` from the kernel.
  update(meta, { initial = false } = {}) {
    const colsChanged = JSON.stringify(meta.columns || []) !== JSON.stringify(this.meta.columns || []);
    this.meta = meta;
    this.titleEl.textContent = meta.title || this.name;
    let ask = false;
    const filtersKey = JSON.stringify(meta.filters || {});
    if (!initial && filtersKey !== this.seen.filters) {
      // the kernel filtered this table (e.g. a click on the stage graph)
      this.seen.filters = filtersKey;
      this.filters = { ...(meta.filters || {}) };
      this.offset = 0;
      ask = true;
    }
    const sortKey = JSON.stringify(meta.sort || null);
    if (!initial && sortKey !== this.seen.sort) {
      this.seen.sort = sortKey;
      this.sort = meta.sort || null;
      this.offset = 0;
      ask = true;
    }
    if (!initial && meta.version !== this.seen.version) {
      this.seen.version = meta.version;
      ask = true; // its rows changed: the same page again
    }
    if (colsChanged) this.drawHead();
    else if (ask) this.syncInputs();
    // the kernel could not read the table at all (its source failed)
    if (meta.error) this.errorEl.textContent = String(meta.error);
    else if (this.metaError) this.errorEl.textContent = "";
    this.metaError = !!meta.error;
    if (ask && this.visible) this.request();
  }

  setVisible(visible) {
    const was = this.visible;
    this.visible = visible;
    if (visible && !was) this.request();
  }

  goto(offset) {
    const n = this.answer ? this.answer.filtered : 0;
    const last = Math.max(0, (Math.ceil(n / this.limit) - 1) * this.limit);
    this.offset = Math.max(0, Math.min(offset, last));
    this.request();
  }

  jumpToInput() {
    const k = parseInt(this.pageInput.value, 10);
    if (!Number.isFinite(k)) {
      this.pageInput.value = String(Math.floor(this.offset / this.limit) + 1);
      return;
    }
    const page = Math.max(1, Math.min(k, this.pages()));
    this.pageInput.value = String(page);
    const target = (page - 1) * this.limit;
    if (target !== this.offset || !this.loaded) this.goto(target);
  }

  setFilter(column, text) {
    this.filters[column] = text;
    this.offset = 0;
    this.closeDetail(); // other rows now: the open detail's index names another row
    this.syncInputs();
    if (this.visible) this.request();
  }

  request() {
    // dim the rows only when an answer is slow: live refreshes must not flicker
    clearTimeout(this.slow);
    this.slow = setTimeout(() => this.root.classList.add("si-loading"), 300);
    this.host.pager.request(this.name, {
      offset: this.offset, limit: this.limit, sort: this.sort, filters: nonEmpty(this.filters),
    });
  }

  // The column that takes the spare width: the last text column.
  growColumn() {
    const texts = this.columns().filter((c) => (c.type || "string") === "string");
    return texts.length ? texts[texts.length - 1].name : null;
  }

  classOf(c) {
    return c.name === this.grow ? `${cellClass(c.type)} si-grow` : cellClass(c.type);
  }

  drawHead() {
    this.inputs.clear();
    this.grow = this.growColumn();
    const heads = this.columns().map((c) => {
      const th = h("th", { class: this.classOf(c), "data-column": c.name, title: `${c.name} (${c.type}) — click to sort` },
        c.label || c.name, h("span", { class: "si-sort" }));
      th.addEventListener("click", () => this.cycleSort(c.name));
      return th;
    });
    const filters = this.columns().map((c) => {
      const input = h("input", {
        class: "si-filter", "data-column": c.name, type: "text", spellcheck: "false",
        placeholder: PLACEHOLDER[c.type] ?? "", "aria-label": `filter ${c.label || c.name}`,
        title: FILTER_HELP[c.type] ?? (NUMERIC.has(c.type) ? NUMBER_HELP : ""),
      });
      input.addEventListener("input", () => this.onFilterInput(c.name, input));
      input.addEventListener("keydown", (e) => {
        e.stopPropagation(); // typing here is not a notebook shortcut
        if (e.key === "Enter") this.flushFilter(c.name, input);
      });
      this.inputs.set(c.name, input);
      return h("th", { class: c.name === this.grow ? "si-grow" : null }, input);
    });
    this.thead.replaceChildren(h("tr", {}, heads), h("tr", { class: "si-filter-row" }, filters));
    this.syncInputs();
  }

  // Filter inputs and sort marks from this.filters / this.sort.
  syncInputs() {
    for (const [col, input] of this.inputs) {
      const v = this.filters[col] ?? "";
      if (input.value !== String(v)) input.value = String(v);
      input.classList.toggle("si-active", String(v) !== "");
    }
    for (const th of this.thead.querySelectorAll("tr:first-child th")) {
      const on = this.sort && this.sort.column === th.dataset.column;
      th.querySelector(".si-sort").textContent = on ? (this.sort.desc ? "▼" : "▲") : "";
      th.setAttribute("aria-sort", on ? (this.sort.desc ? "descending" : "ascending") : "none");
    }
  }

  cycleSort(column) {
    const s = this.sort;
    if (!s || s.column !== column) this.sort = { column, desc: false };
    else if (!s.desc) this.sort = { column, desc: true };
    else this.sort = null;
    this.offset = 0;
    this.closeDetail();
    this.syncInputs();
    this.request();
  }

  onFilterInput(column, input) {
    clearTimeout(this.timers.get(column));
    input.classList.toggle("si-active", input.value !== "");
    this.timers.set(column, setTimeout(() => this.flushFilter(column, input), DEBOUNCE_MS));
  }

  flushFilter(column, input) {
    clearTimeout(this.timers.get(column));
    this.timers.delete(column);
    if ((this.filters[column] ?? "") === input.value) return;
    this.filters[column] = input.value;
    this.offset = 0;
    this.closeDetail();
    this.request();
  }

  answered() {
    clearTimeout(this.slow);
    this.root.classList.remove("si-loading");
  }

  showPage(msg, rows) {
    this.loaded = true;
    this.answer = { total: msg.total, filtered: msg.filtered ?? msg.total, version: msg.version };
    this.offset = msg.offset ?? this.offset;
    this.rows = rows;
    this.answered();
    this.errorEl.textContent = this.metaError ? String(this.meta.error) : "";
    this.drawRows();
    this.drawStatus();
  }

  showError(message) {
    this.loaded = true;
    this.answered();
    this.rows = [];
    this.tbody.replaceChildren();
    this.errorEl.textContent = message;
    this.statusEl.textContent = "error";
  }

  drawStatus() {
    const { total, filtered } = this.answer;
    const filtering = Object.keys(nonEmpty(this.filters)).length > 0 || filtered !== total;
    const from = filtering ? ` (filtered from ${fmtCount(total)})` : "";
    const a = this.offset + 1, b = this.offset + this.rows.length;
    this.statusEl.textContent = this.rows.length
      ? `rows ${fmtCount(a)}–${fmtCount(b)} of ${fmtCount(filtered)}${from}`
      : `no rows${from}`;
    const k = Math.floor(this.offset / this.limit) + 1, n = this.pages();
    if (document.activeElement !== this.pageInput) this.pageInput.value = String(k);
    this.pagesEl.textContent = fmtCount(n);
    const atStart = this.offset <= 0, atEnd = this.offset + this.limit >= filtered;
    this.firstBtn.disabled = this.prevBtn.disabled = atStart;
    this.nextBtn.disabled = this.lastBtn.disabled = atEnd;
    // times show as HH:MM:SS; the caption says which day (UTC), once
    const timeCol = this.columns().find((c) => c.type === "time");
    const first = timeCol && this.rows.length ? this.rows[0][timeCol.name] : null;
    this.captionEl.textContent = first != null ? `${fmtDate(first)} UTC` : "";
  }

  drawRows() {
    const cols = this.columns();
    const trs = this.rows.map((row, i) => {
      const tds = cols.map((c) => {
        const v = row[c.name];
        const text = fmtCell(v, c.type);
        if (text == null) return h("td", { class: `${this.classOf(c)} si-null`, "data-column": c.name }, "—");
        const td = h("td", { class: this.classOf(c), "data-column": c.name }, text);
        if (c.type === "string" && text.length > 16) td.title = text;
        else if (c.type === "time") td.title = fmtDetail(v, "time");
        return td;
      });
      return h("tr", { "data-row": String(this.offset + i) }, tds);
    });
    if (!trs.length) {
      trs.push(h("tr", { class: "si-empty-row" },
        h("td", { class: "si-empty", colspan: String(Math.max(1, cols.length)) }, "no rows")));
    }
    this.tbody.replaceChildren(...trs);
    this.markSelected();
  }

  onRowClick(e) {
    const tr = e.target.closest("tr[data-row]");
    if (!tr || !this.tbody.contains(tr)) return;
    const sel = window.getSelection && window.getSelection();
    if (sel && !sel.isCollapsed && tr.contains(sel.anchorNode)) return; // selecting text
    const i = Number(tr.dataset.row) - this.offset;
    const row = this.rows[i];
    if (!row) return;
    if (this.selected && this.selected.index === this.offset + i) this.closeDetail();
    else this.openDetail(row, this.offset + i);
    if (this.meta.link) this.host.onLink(this.meta.link, row);
    // the kernel asked to hear of clicks on this table (a job browser, a worker row)
    if (this.meta.clicks && this.host.send) this.host.send({ type: "row", table: this.name, row: plainRow(row) });
  }

  markSelected() {
    for (const tr of this.tbody.children) {
      tr.classList.toggle("si-row-selected", !!this.selected && tr.dataset.row === String(this.selected.index));
    }
  }

  // Every field of a row, full text (stack traces are read here).
  openDetail(row, index) {
    this.selected = { index };
    const pre = h("pre", { class: "si-row-detail" });
    for (const c of this.columns()) {
      pre.append(h("span", { class: "si-detail-label" }, c.label || c.name),
        h("span", { class: "si-detail-value", "data-column": c.name }, fmtDetail(row[c.name], c.type)));
    }
    const close = h("button", {
      type: "button", class: "si-detail-close", title: "close", onclick: () => this.closeDetail(),
    }, "✕");
    const where = `row ${fmtCount(index + 1)} of ${this.meta.title || this.name}`;
    this.detailEl.replaceChildren(h("div", { class: "si-detail-bar" }, where, close), pre);
    this.detailEl.hidden = false;
    this.markSelected();
  }

  closeDetail() {
    this.selected = null;
    this.detailEl.hidden = true;
    this.detailEl.replaceChildren();
    this.markSelected();
  }

  dispose() {
    clearTimeout(this.slow);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
