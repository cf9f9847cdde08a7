// One worker of a job (solstice_inspect/widgets/worker.py): summary, lifecycle, metric
// and resource charts (vega-embed bundled here), the last log lines (following live,
// with a search the kernel answers), a stack button and a profile button (icicle chart).
// Every string reaches the page through textContent (lib/dom.js `h`), so log lines and
// stacks holding markup stay text.
import embed from "vega-embed";
import { h, ensureStyle } from "./lib/dom.js";
import { injectStyle } from "./lib/style.js";
import { fmtNumber, fmtTime } from "./lib/format.js";

const CSS = `
.si-worker-root { display: flex; flex-direction: column; gap: 10px; }
.si-worker-root h4 { margin: 0; font-size: 13px; }
.si-worker-root .si-w-facts { display: flex; flex-wrap: wrap; gap: 4px 16px; }
.si-worker-root .si-w-fact b { color: var(--si-fg2); font-weight: 500; margin-right: 4px; }
.si-worker-root table { border-collapse: collapse; }
.si-worker-root td, .si-worker-root th { padding: 1px 8px; text-align: left; border-bottom: 1px solid var(--si-line2); }
.si-worker-root .si-w-charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 10px; }
.si-worker-root .si-w-log { font-family: var(--si-mono); font-size: 11px; white-space: pre-wrap; word-break: break-all;
  max-height: 320px; overflow: auto; border: 1px solid var(--si-line2); padding: 4px; background: var(--si-bg1); }
.si-worker-root .si-w-log .lv-ERROR, .si-worker-root .si-w-log .lv-CRITICAL { color: var(--si-error); }
.si-worker-root .si-w-log .lv-WARNING { color: var(--si-warn); }
.si-worker-root .si-w-bar { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.si-worker-root .si-w-note { color: var(--si-fg2); }
.si-worker-root .si-w-err { color: var(--si-error); white-space: pre-wrap; }
.si-worker-root pre.si-w-stack { font-family: var(--si-mono); font-size: 11px; max-height: 360px; overflow: auto;
  border: 1px solid var(--si-line2); padding: 4px; margin: 0; white-space: pre; }
`;

const fmt = (v) => (v == null ? "—" : typeof v === "number" ? fmtNumber(v, 2) : String(v));

function rows(points, t0 = 0) {
  const out = [];
  const n = points && points.t ? points.t.length : 0;
  for (let i = 0; i < n; i++) {
    out.push({ t: (t0 + points.t[i]) * 1000, series: points.names[points.s[i]], v: points.v[i] });
  }
  return out;
}

// Resolves once `node` is laid out (a view renders before its output is attached).
function sized(node, frames = 120) {
  return new Promise((resolve) => {
    const check = (left) => (node.clientWidth > 0 || left <= 0 ? resolve() : requestAnimationFrame(() => check(left - 1)));
    check(frames);
  });
}

function render({ model, el }) {
  injectStyle();
  ensureStyle("si-worker-style", CSS);
  let alive = true;
  const views = [];
  const root = h("div", { class: "si-root si-worker-root" });
  el.replaceChildren(root);

  const title = h("h4", { class: "si-w-title" });
  const facts = h("div", { class: "si-w-facts" });
  const lifecycle = h("div", { class: "si-w-lifecycle" });
  const charts = h("div", { class: "si-w-charts" });
  const logNote = h("span", { class: "si-w-note si-w-log-note" });
  const query = h("input", { type: "search", placeholder: "search this worker's log", class: "si-w-search", size: 32 });
  const searchBtn = h("button", { class: "si-w-search-go" }, "search");
  const clearBtn = h("button", { class: "si-w-search-clear" }, "clear");
  const logBox = h("div", { class: "si-w-log" });
  const stackBtn = h("button", { class: "si-w-stack-btn" }, "stack");
  const profBtn = h("button", { class: "si-w-profile-btn" }, "profile 10 s");
  const stackNote = h("div", { class: "si-w-note si-w-stack-note" });
  const stackErr = h("div", { class: "si-w-err si-w-stack-err" });
  const stackPre = h("pre", { class: "si-w-stack", hidden: true });
  const storedSel = h("select", { class: "si-w-stored", hidden: true });
  const storedBtn = h("button", { class: "si-w-stored-btn", hidden: true }, "show stored profile");
  const profNote = h("div", { class: "si-w-note si-w-profile-note" });
  const profErr = h("div", { class: "si-w-err si-w-profile-err" });
  const profChart = h("div", { class: "si-w-icicle" });
  root.append(
    title, facts,
    h("div", { class: "si-w-section" }, h("b", {}, "Lifecycle"), lifecycle),
    charts,
    h("div", { class: "si-w-section" },
      h("div", { class: "si-w-bar" }, h("b", {}, "Log"), query, searchBtn, clearBtn, logNote), logBox),
    h("div", { class: "si-w-section" },
      h("div", { class: "si-w-bar" }, stackBtn, profBtn, storedSel, storedBtn), stackNote, stackErr, stackPre, profNote, profErr, profChart),
  );

  const drawSummary = () => {
    const s = model.get("summary") || {};
    title.textContent = `Worker ${s.worker_id ?? ""} — stage ${s.stage_id ?? "?"} — ${s.status ?? ""}`;
    const shown = [
      ["node", s.node_id], ["pid", s.pid != null ? String(s.pid) : null], ["first seen", s.first_seen != null ? fmtTime(s.first_seen) : null],
      ["last seen", s.last_seen != null ? fmtTime(s.last_seen) : null], ["records in", s.input_records],
      ["records out", s.output_records], ["splits", s.processed_count], ["in/s", s.input_rate],
      ["out/s", s.output_rate], ["CPU %", s.cpu_percent], ["memory MB", s.memory_mb],
      ["GPU %", s.gpu_utilization], ["GPU memory MB", s.gpu_memory_mb], ["log lines", s.log_lines],
    ].filter(([k, v]) => v != null || !k.startsWith("GPU"));
    facts.replaceChildren(...shown.map(([k, v]) => h("span", { class: "si-w-fact" }, h("b", {}, k), fmt(v))));
    stackBtn.title = s.alive ? "py-spy dump of the live worker" : "the worker is gone: its last stored stack";
    profBtn.disabled = !(s.alive && s.job_running);
    profBtn.title = profBtn.disabled ? "profiling needs a live worker of a running job" : "sample it with py-spy for 10 s";
  };

  const drawLifecycle = () => {
    const evs = model.get("lifecycle") || [];
    const cols = ["ts", "event", "reason", "node_id", "pid", "processed_count", "error_count"];
    const head = h("tr", {}, cols.map((c) => h("th", {}, c === "ts" ? "time" : c.replace("_", " "))));
    const cell = (e, c) => (c === "ts" ? fmtTime(e.ts) : c === "pid" && e.pid != null ? String(e.pid) : fmt(e[c]));
    const body = evs.map((e) => h("tr", {}, cols.map((c) => h("td", {}, cell(e, c)))));
    lifecycle.replaceChildren(evs.length ? h("table", {}, h("thead", {}, head), h("tbody", {}, body))
      : h("span", { class: "si-w-note" }, "no lifecycle event stored"));
  };

  // charts: drawn once, then new points go into the same Vega views (no redraw) unless
  // the set of charts changed; `gen` drops a draw that a newer one overtook
  const chartViews = {};
  let gen = 0;
  async function drawCharts() {
    const my = ++gen;
    views.splice(0).forEach((v) => v.finalize());
    for (const k of Object.keys(chartViews)) delete chartViews[k];
    await sized(charts);
    if (!alive || my !== gen) return;
    const specs = model.get("specs") || {}, points = model.get("points") || {};
    const cells = [];
    for (const [name, spec] of Object.entries(specs)) {
      const pts = points[name];
      if (!pts || !pts.t || !pts.t.length) continue;
      const cell = h("div", { class: "si-w-chart", "data-chart": name, style: "min-width:0" });
      cells.push([name, cell, spec, pts]);
    }
    charts.replaceChildren(...cells.map(([, c]) => c));
    for (const [name, cell, spec, pts] of cells) {
      const copy = structuredClone(spec);
      // fill the cell: the width includes the axes and the legend (as js/charts.js does)
      copy.width = Math.max(200, cell.clientWidth);
      copy.autosize = { type: "fit-x", contains: "padding", resize: true };
      try {
        const res = await embed(cell, copy, { actions: false, renderer: "svg" });
        if (!alive || my !== gen) { res.view.finalize(); return; }
        await res.view.data("series", rows(pts)).runAsync();
        views.push(res.view);
        chartViews[name] = res.view;
      } catch (e) { cell.textContent = `chart error: ${e && e.message ? e.message : e}`; }
    }
  }
  const updateCharts = () => {
    const points = model.get("points") || {};
    const names = Object.keys(points).filter((n) => points[n] && points[n].t && points[n].t.length);
    const drawn = Object.keys(chartViews);
    if (names.length !== drawn.length || !names.every((n) => chartViews[n])) return drawCharts();
    for (const n of names) chartViews[n].data("series", rows(points[n])).runAsync();
  };

  const lineEl = ([t, lv, msg]) => h("div", { class: `si-w-line lv-${lv}` }, `${fmtTime(t)} ${lv} ${msg}`);
  const drawLogs = () => {
    const search = model.get("search") || {};
    const atEnd = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
    if (search.query) {
      const lines = search.lines || [];
      logNote.textContent = search.error ? `search failed: ${search.error}`
        : `${(search.total ?? 0).toLocaleString("en")} line(s) match "${search.query}"` +
          (search.total > lines.length ? ` (the newest ${lines.length.toLocaleString("en")} shown)` : "");
      logBox.replaceChildren(...lines.map(lineEl));
      return;
    }
    const lines = model.get("logs") || [];
    const total = model.get("log_total") || 0;
    logNote.textContent = total > lines.length ? `the last ${lines.length.toLocaleString("en")} of ${total.toLocaleString("en")} lines`
      : `${total.toLocaleString("en")} line(s)`;
    logBox.replaceChildren(...lines.map(lineEl));
    if (atEnd || !logBox.dataset.drawn) logBox.scrollTop = logBox.scrollHeight; // follow the tail
    logBox.dataset.drawn = "1";
  };

  const drawStack = () => {
    const st = model.get("stack") || {};
    stackBtn.disabled = false;
    stackNote.textContent = st.source ? `stack: ${st.source}` : "";
    stackErr.textContent = st.error || "";
    stackPre.textContent = st.text || "";
    stackPre.hidden = !st.text;
  };

  let profView = null;
  async function drawProfile() {
    const p = model.get("profile") || {};
    profErr.textContent = p.error || "";
    if (p.busy) { profNote.textContent = `profiling for ${p.seconds ?? 10} s…`; profBtn.disabled = true; return; }
    drawSummary();
    if (!p.spec) { profNote.textContent = ""; return; }
    profNote.textContent = `profile ${p.profile_id}: ${fmtNumber(p.samples)} samples, ${p.stacks} stacks`;
    if (profView) profView.finalize();
    await sized(profChart);
    if (!alive) return;
    try {
      const spec = structuredClone(p.spec);
      spec.width = Math.max(300, profChart.clientWidth);
      spec.autosize = { type: "fit-x", contains: "padding" };
      profView = (await embed(profChart, spec, { actions: false, renderer: "svg" })).view;
    } catch (e) { profErr.textContent = `chart error: ${e && e.message ? e.message : e}`; }
  }

  const drawStored = () => {
    const stored = model.get("stored_profiles") || [];
    const chosen = storedSel.value;
    storedSel.replaceChildren(...stored.map((p) =>
      h("option", { value: p.profile_id }, `${fmtTime(p.ts)} · ${fmtNumber(p.samples)} samples`)));
    if (stored.some((p) => p.profile_id === chosen)) storedSel.value = chosen;
    storedSel.hidden = storedBtn.hidden = stored.length === 0;
  };
  storedBtn.addEventListener("click", () => model.send({ type: "show_profile", profile_id: storedSel.value }));

  const doSearch = () => model.send({ type: "search", query: query.value });
  searchBtn.addEventListener("click", doSearch);
  query.addEventListener("keydown", (e) => { if (e.key === "Enter") doSearch(); });
  clearBtn.addEventListener("click", () => { query.value = ""; model.send({ type: "search", query: "" }); });
  stackBtn.addEventListener("click", () => {
    stackBtn.disabled = true; stackNote.textContent = "reading the stack…"; model.send({ type: "stack" });
  });
  profBtn.addEventListener("click", () => model.send({ type: "profile", seconds: 10 }));

  const handlers = {
    "change:summary": drawSummary, "change:lifecycle": drawLifecycle,
    "change:points": updateCharts, "change:specs": drawCharts,
    "change:logs": drawLogs, "change:log_total": drawLogs, "change:search": drawLogs,
    "change:stack": drawStack, "change:profile": drawProfile, "change:stored_profiles": drawStored,
  };
  for (const [ev, fn] of Object.entries(handlers)) model.on(ev, fn);
  drawSummary(); drawLifecycle(); drawLogs(); drawStack(); drawStored(); drawProfile();
  drawCharts().then(() => { el.dataset.rendered = "1"; });
  return () => {
    alive = false;
    for (const [ev, fn] of Object.entries(handlers)) model.off(ev, fn);
    views.splice(0).forEach((v) => v.finalize());
    if (profView) profView.finalize();
  };
}

export default { render };
