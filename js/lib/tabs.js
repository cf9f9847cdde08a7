// The `tabs` and `table` parts: a tab strip whose tabs hold paged tables, a text block,
// or the selected stage's facts; only the visible tab's tables ask the kernel for pages.
import { h } from "./dom.js";
import { fmtCell, fmtDateTime, NUMERIC } from "./format.js";
import { lineChart } from "./minichart.js";
import { Pager } from "./pager.js";
import { SplitsForm } from "./splits.js";
import { TableView } from "./table.js";
import { TimelineView } from "./timeline.js";

// The tables of one model: created, updated and dropped as `tables` changes.
class Tables {
  constructor(model, onLink) {
    this.model = model;
    this.pager = new Pager(model);
    this.views = new Map();
    this.host = { pager: this.pager, onLink, send: (msg) => model.send(msg) };
  }

  sync() {
    const metas = this.model.get("tables") || {};
    for (const [name, view] of this.views) {
      if (!(name in metas)) {
        view.dispose();
        view.root.remove();
        this.pager.unregister(name);
        this.views.delete(name);
      }
    }
    for (const [name, meta] of Object.entries(metas)) {
      const view = this.views.get(name);
      if (view) view.update(meta);
      else {
        const created = new TableView(name, meta, this.host);
        this.views.set(name, created);
        this.pager.register(name, created);
      }
    }
  }

  dispose() {
    for (const v of this.views.values()) v.dispose();
    this.pager.dispose();
  }
}

function factRows(facts) {
  return (facts || []).map(([label, value, type]) => {
    const text = type === "bool" ? (value == null ? null : value ? "yes" : "no")
      : type === "time" ? (value == null ? null : fmtDateTime(value))
      : fmtCell(value, type || "string");
    return h("tr", {},
      h("td", {}, label),
      h("td", { class: NUMERIC.has(type) ? "si-num" : "", "data-fact": label }, text ?? "—"));
  });
}

// The stage's lines over time (stage_series): partition lag, flagged partitions in red;
// queue lag with the backpressured windows shaded.
function stageCharts(series) {
  if (!series || series.t0 == null) return null;
  const lag = (series.lag || []).map((l) => ({
    name: `partition ${l.partition}${l.flagged ? ` (flagged, ${l.ratio}x mean)` : ""}`,
    points: l.points, flagged: l.flagged,
  }));
  const shown = lag.length < (series.lag_total || 0) ? ` (${lag.length} of ${series.lag_total}: flagged first, then the largest)` : "";
  const bp = series.backpressure || {};
  const maxLag = Math.max(1, ...(bp.queue_lag || []).map((p) => p[1]));
  const back = [{ name: "input queue lag", points: bp.queue_lag || [] }];
  if ((bp.active || []).some((p) => p[1] > 0)) {
    back.push({ name: "backpressured", points: bp.active.map(([t, v]) => [t, v * maxLag]), area: true, flagged: true });
  }
  return h("div", { class: "si-stage-charts" },
    lineChart({ title: `Partition lag over time${shown}`, lines: lag, t0: series.t0, cls: "si-chart-lag" }),
    lineChart({ title: "Backpressure over time", lines: back, t0: series.t0, cls: "si-chart-backpressure" }));
}

function stageDetail(stage, series) {
  if (!stage || stage.stage_id == null) {
    return h("div", { class: "si-muted si-stage-empty" }, "Click a stage in the graph to see its details.");
  }
  return h("div", { class: "si-stage-box" },
    h("table", { class: "si-stage-detail", "data-stage": String(stage.stage_id) },
      h("thead", {}, h("tr", {}, h("th", { colspan: "2" }, `Stage ${stage.stage_id}`))),
      h("tbody", {}, factRows(stage.facts))),
    stageCharts(series));
}

function workerDetail(worker) {
  if (!worker || worker.worker_id == null) return h("div", { class: "si-muted" }, "Click a worker row to see its details.");
  return h("table", { class: "si-stage-detail si-worker-detail", "data-worker": String(worker.worker_id) },
    h("thead", {}, h("tr", {}, h("th", { colspan: "2" }, `Worker ${worker.worker_id}`))),
    h("tbody", {}, factRows(worker.facts)));
}

function badgeOf(tab) {
  const b = tab.badge;
  if (b == null || b === 0 || b === "") return null;
  const alert = tab.id === "exceptions" && Number(b) > 0;
  return h("span", { class: `si-tab-badge${alert ? " si-badge-alert" : ""}` },
    typeof b === "number" ? b.toLocaleString("en") : String(b));
}

export function renderTabs(model, el) {
  const tables = new Tables(model, (link, row) => follow(link, row));
  const strip = h("div", { class: "si-tabs", role: "tablist" });
  const panel = h("div", { class: "si-tab-panel", role: "tabpanel" });
  const stageBox = h("div", { class: "si-stage" });
  const workerBox = h("div", { class: "si-worker" });
  let splitsForm = null, timeline = null;
  const textBox = h("pre", { class: "si-text" });
  const tablesBox = h("div", { class: "si-tab-panel", style: "padding-top:0" });
  const errorEl = h("div", { class: "si-error" });
  el.replaceChildren(h("div", { class: "si-root si-tabs-view" }, strip, panel, errorEl));
  let shown = { tab: null, stage: null, worker: null, text: null, tables: null };

  const tabsList = () => model.get("tabs") || [];
  const current = () => {
    const tabs = tabsList();
    return tabs.find((t) => t.id === model.get("selected")) || tabs[0] || null;
  };

  function select(id) {
    if (model.get("selected") === id) return;
    model.set("selected", id);
    model.save_changes();
    sync();
  }

  // A row click in a linked table (exception groups -> occurrences).
  function follow(link, row) {
    const target = tables.views.get(link.table);
    if (!target) return;
    const value = row[link.column];
    target.setFilter(link.filter, value == null ? "" : `=${value}`);
    const holder = tabsList().find((t) => (t.tables || []).includes(link.table));
    if (holder && !target.visible) select(holder.id);
    target.root.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function drawStrip(tab) {
    strip.replaceChildren(...tabsList().map((t) => {
      const on = tab && t.id === tab.id;
      return h("button", {
        type: "button", role: "tab", class: `si-tab${on ? " si-tab-selected" : ""}`,
        "data-tab": t.id, "aria-selected": on ? "true" : "false",
        onclick: () => select(t.id),
      }, t.title ?? t.id, badgeOf(t));
    }));
  }

  function sync() {
    tables.sync();
    const tab = current();
    drawStrip(tab);
    const names = tab ? (tab.tables || []).filter((n) => tables.views.has(n)) : [];
    // touch the panel only where it changed: a table being typed into keeps its focus
    const parts = [];
    const stageKey = tab && tab.id === "stage"
      ? JSON.stringify([model.get("stage") || null, model.get("stage_series") || null]) : null;
    if (stageKey !== shown.stage || tab?.id !== shown.tab) {
      stageBox.replaceChildren(stageKey != null ? stageDetail(model.get("stage"), model.get("stage_series")) : "");
    }
    if (stageKey != null) parts.push(stageBox);
    const workerKey = tab && tab.kind === "worker" ? JSON.stringify(model.get("worker") || null) : null;
    if (workerKey !== shown.worker || tab?.id !== shown.tab) {
      workerBox.replaceChildren(workerKey != null ? workerDetail(model.get("worker")) : "");
    }
    if (workerKey != null) parts.push(workerBox);
    if (tab && tab.kind === "splits") {
      if (!splitsForm) splitsForm = new SplitsForm(model);
      parts.push(splitsForm.root);
    }
    if (tab && tab.kind === "timeline") {
      if (!timeline) timeline = new TimelineView(model);
      parts.push(timeline.root);
    }
    const text = tab && tab.text != null ? String(tab.text) : null;
    if (text !== shown.text) textBox.textContent = text ?? "";
    if (text != null) parts.push(textBox);
    const tablesKey = names.join("\u0000");
    if (tablesKey !== shown.tables) tablesBox.replaceChildren(...names.map((n) => tables.views.get(n).root));
    if (names.length) parts.push(tablesBox);
    if (!tab) parts.push(h("div", { class: "si-muted" }, "nothing to show"));
    const same = parts.length === panel.children.length && parts.every((p, i) => panel.children[i] === p);
    if (!same) panel.replaceChildren(...parts);
    shown = { tab: tab?.id ?? null, stage: stageKey, worker: workerKey, text, tables: tablesKey };
    for (const [name, view] of tables.views) view.setVisible(names.includes(name));
    errorEl.textContent = model.get("error") || "";
  }

  sync();
  const events = ["change:tabs", "change:selected", "change:tables", "change:stage",
    "change:stage_series", "change:worker", "change:error"];
  for (const ev of events) model.on(ev, sync);
  const onSplits = () => splitsForm && splitsForm.update();
  const onTimeline = () => timeline && timeline.update();
  const onTravel = () => timeline && timeline.updateTravel();
  model.on("change:splits", onSplits);
  model.on("change:timeline", onTimeline);
  model.on("change:travel", onTravel);
  return () => {
    for (const ev of events) model.off(ev, sync);
    model.off("change:splits", onSplits);
    model.off("change:timeline", onTimeline);
    model.off("change:travel", onTravel);
    tables.dispose();
  };
}

// The `table` part: one paged table (`tables` has exactly one entry), always visible.
export function renderTable(model, el) {
  const tables = new Tables(model, () => {});
  const box = h("div", { class: "si-table-part" });
  const errorEl = h("div", { class: "si-error" });
  el.replaceChildren(h("div", { class: "si-root" }, box, errorEl));
  const sync = () => {
    tables.sync();
    const views = [...tables.views.values()];
    const same = views.length === box.children.length && views.every((v, i) => box.children[i] === v.root);
    if (!same) box.replaceChildren(...views.map((v) => v.root));
    for (const v of views) v.setVisible(true);
    errorEl.textContent = model.get("error") || "";
  };
  sync();
  model.on("change:tables", sync);
  model.on("change:error", sync);
  return () => {
    model.off("change:tables", sync);
    model.off("change:error", sync);
    tables.dispose();
  };
}
