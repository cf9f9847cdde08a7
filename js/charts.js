// Charts described with Altair (Vega-Lite specs in the `specs` trait) and rendered by the
// vega-embed bundled here. Each chart reads the named dataset "series" with rows
// {t (ms epoch), stage, v}. `data` holds the downsampled snapshot, columnar per chart:
// t = seconds since `t0` (itself epoch seconds), s = index into `stages`, v. Live points
// arrive as ONE custom message per update for all charts, {type: "append", epoch, seq,
// charts: {name: {t, s, v}}}, and go into each view as a Vega changeset (no redraw). A
// view that renders late sends {type: "hello"} and the kernel replays the messages since
// the snapshot (seq de-duplicates). Charts fill the output's width (a grid of >= 340 px
// cells), follow JupyterLab's light / dark theme, and get fewer time ticks when narrow.
import embed from "vega-embed";
import { changeset } from "vega";
import { h } from "./lib/dom.js";

const MIN_CELL = 340;
const GAP = 12;
const MAX_PENDING = 500;

function rows(cols, stages, t0) {
  const n = cols.t ? cols.t.length : 0;
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = { t: (t0 + cols.t[i]) * 1000, stage: stages[cols.s[i]] ?? `stage ${cols.s[i]}`, v: cols.v[i] };
  }
  return out;
}

// A Vega config from the theme's CSS variables, read where the chart is drawn.
function themeConfig(el) {
  const read = (name, fallback) => {
    for (const node of [el, document.body, document.documentElement]) {
      const v = node && getComputedStyle(node).getPropertyValue(name).trim();
      if (v) return v;
    }
    return fallback;
  };
  const fg = read("--jp-ui-font-color1", "rgba(0,0,0,0.87)");
  const fg2 = read("--jp-ui-font-color2", "rgba(0,0,0,0.54)");
  const grid = read("--jp-border-color2", "#e0e0e0");
  const line = read("--jp-border-color1", "#bdbdbd");
  const font = read("--jp-ui-font-family", "system-ui, sans-serif");
  return {
    background: "transparent",
    font,
    view: { stroke: grid },
    title: { color: fg, font, fontSize: 12, fontWeight: 600, anchor: "start", offset: 6 },
    axis: {
      labelColor: fg2, titleColor: fg, gridColor: grid, domainColor: line, tickColor: line,
      labelFont: font, titleFont: font, labelFontSize: 10, titleFontSize: 11, titleFontWeight: 500,
    },
    legend: { labelColor: fg, titleColor: fg, labelFont: font, titleFont: font, labelFontSize: 10, titleFontSize: 11 },
  };
}

// The spec as drawn: width from the cell, height as described, and a time axis with one
// tick per ~90 px of plot (a signal, so resizing never needs a re-embed).
function prepare(spec, width) {
  const copy = structuredClone(spec);
  copy.width = width;
  copy.autosize = { type: "fit-x", contains: "padding", resize: true };
  const x = copy.encoding && copy.encoding.x;
  if (x && x.type === "temporal") {
    x.axis = { ...(x.axis || {}), labelOverlap: true, tickCount: { expr: "max(2, floor(width / 90))" } };
  }
  return copy;
}

function cellWidth(cell) {
  const cs = getComputedStyle(cell);
  const pad = parseFloat(cs.paddingLeft || 0) + parseFloat(cs.paddingRight || 0);
  return Math.max(200, Math.floor(cell.clientWidth - pad));
}

function render({ model, el }) {
  const views = {}; // chart name -> {view, cell, width}
  let pending = [];
  let applied = new Set(); // seqs applied in the current epoch
  let alive = true;
  let drawing = null;
  const box = h("div", {
    class: "si-charts",
    style: `display:grid;grid-template-columns:repeat(auto-fill,minmax(${MIN_CELL}px,1fr));gap:${GAP}px;width:100%`,
  });
  const err = h("div", { class: "si-error", style: "color:var(--jp-error-color1,#d32f2f);white-space:pre-wrap" });
  el.replaceChildren(box, err);

  const showError = (e) => { err.textContent = `chart error: ${e && e.message ? e.message : e}`; };

  // One live message: every chart's new rows, unless already applied or from an old
  // snapshot. Held back while the views are being drawn, while its snapshot has not
  // arrived, or while one of its stages is not yet in `stages` (a stage that first
  // reports late: the trait grows before the message comes, but never rely on it).
  const apply = (msg) => {
    const epoch = model.get("epoch");
    if (msg.epoch < epoch || applied.has(msg.seq)) return;
    const charts = msg.charts || (msg.chart ? { [msg.chart]: msg } : {});
    const stages = model.get("stages") || [];
    const unknown = Object.values(charts).some((c) => (c.s || []).some((i) => i >= stages.length));
    if (drawing || msg.epoch > epoch || unknown) {
      if (pending.length < MAX_PENDING) pending.push(msg);
      return;
    }
    applied.add(msg.seq);
    const t0 = model.get("t0");
    for (const [name, cols] of Object.entries(charts)) {
      const v = views[name];
      if (v) v.view.change("series", changeset().insert(rows(cols, stages, t0))).run();
    }
  };

  const flush = () => {
    const queued = pending;
    pending = [];
    queued.forEach(apply);
  };

  // The snapshot (`data`) into every view; live messages of this epoch follow.
  const load = () => {
    applied = new Set();
    const data = model.get("data") || {}, stages = model.get("stages") || [], t0 = model.get("t0");
    for (const [name, v] of Object.entries(views)) {
      const cols = data[name] || { t: [], s: [], v: [] };
      v.view.change("series", changeset().remove(() => true).insert(rows(cols, stages, t0)));
    }
    return Promise.all(Object.values(views).map((v) => v.view.runAsync()));
  };

  function finalizeAll() {
    for (const v of Object.values(views)) v.view.finalize();
    for (const k of Object.keys(views)) delete views[k];
  }

  async function draw() {
    const run = {};
    drawing = run;
    finalizeAll();
    box.replaceChildren();
    el.dataset.rendered = "0";
    err.textContent = "";
    const specs = model.get("specs") || {};
    const config = themeConfig(el);
    const cells = Object.keys(specs).map((name) => {
      const cell = h("div", { class: "si-chart", "data-chart": name, style: "min-width:0" });
      box.append(cell);
      return [name, cell];
    });
    try {
      const made = await Promise.all(cells.map(async ([name, cell]) => {
        const width = cellWidth(cell);
        const res = await embed(cell, prepare(specs[name], width), { actions: false, renderer: "svg", config });
        return [name, { view: res.view, cell, width }];
      }));
      if (!alive || drawing !== run) { made.forEach(([, v]) => v.view.finalize()); return; }
      for (const [name, v] of made) {
        views[name] = v;
        v.cell.__siView = v.view; // for tests: the points shown, view.data("series")
      }
      drawing = null;
      await load();
      flush();
      // the cells may have changed size while the views were being made (e.g. hidden
      // then shown while JupyterLab switched theme): the observer found no view then
      await resize();
      el.dataset.rendered = "1";
      model.send({ type: "hello" }); // ask for the live points since the snapshot
    } catch (e) {
      if (drawing === run) drawing = null;
      showError(e);
    }
  }

  // Fill the width: each chart follows its grid cell.
  let frame = 0;
  const resize = () => {
    frame = 0;
    const runs = [];
    for (const v of Object.values(views)) {
      const w = cellWidth(v.cell);
      if (Math.abs(w - v.width) < 2) continue;
      v.width = w;
      runs.push(v.view.width(w).runAsync().catch(showError));
    }
    return Promise.all(runs);
  };
  const observer = new ResizeObserver(() => { if (!frame) frame = requestAnimationFrame(resize); });
  observer.observe(box);

  // JupyterLab switched between light and dark: redraw with the new colours. It hides
  // its whole shell while it swaps the stylesheets (cells measure 0 px then, and no
  // ResizeObserver call follows), so draw once the charts are laid out again.
  const whenShown = (fn, frames = 120) => {
    if (!alive) return;
    if (box.clientWidth > 0 || frames <= 0) fn();
    else requestAnimationFrame(() => whenShown(fn, frames - 1));
  };
  const themeWatch = new MutationObserver(() => whenShown(draw));
  themeWatch.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-name"] });

  const onMsg = (msg) => { if (msg && msg.type === "append") apply(msg); };
  const onData = () => {
    if (drawing) return; // draw() loads the newest snapshot itself
    load().then(flush).catch(showError);
  };
  const onStages = () => flush();
  model.on("msg:custom", onMsg);
  model.on("change:data", onData);
  model.on("change:specs", draw);
  model.on("change:stages", onStages);
  draw();
  return () => {
    alive = false;
    observer.disconnect();
    themeWatch.disconnect();
    if (frame) cancelAnimationFrame(frame);
    model.off("msg:custom", onMsg);
    model.off("change:data", onData);
    model.off("change:specs", draw);
    model.off("change:stages", onStages);
    finalizeAll();
  };
}

export default { render };
