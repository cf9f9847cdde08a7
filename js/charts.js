// Charts described with Altair (Vega-Lite specs in the `specs` trait) and rendered by the
// vega-embed bundled here. Each chart reads the named dataset "series" with rows
// {t (ms epoch), stage, v}. `data` holds the downsampled snapshot (columnar: t0 + t in
// seconds, s = stage index, v); live points arrive as custom messages
// {type: "append", epoch, seq, chart, t, s, v} and go into the view as a Vega changeset (no redraw).
import embed from "vega-embed";
import { changeset } from "vega";
import { h } from "./lib/dom.js";

function rows(cols, stages, t0) {
  const out = new Array(cols.t.length);
  for (let i = 0; i < cols.t.length; i++) {
    out[i] = { t: t0 + cols.t[i] * 1000, stage: stages[cols.s[i]], v: cols.v[i] };
  }
  return out;
}

function render({ model, el }) {
  const views = {};
  let pending = [];
  let alive = true;
  const box = h("div", { class: "si-charts", style: "display:flex;flex-wrap:wrap;gap:12px" });
  const err = h("div", { class: "si-error", style: "color:#b00" });
  el.replaceChildren(box, err);

  let applied = new Set();
  const apply = (msg) => {
    if (msg.epoch !== model.get("epoch") || applied.has(`${msg.chart}:${msg.seq}`)) return;
    const view = views[msg.chart];
    if (!view) { pending.push(msg); return; }
    applied.add(`${msg.chart}:${msg.seq}`);
    const stages = model.get("stages"), t0 = model.get("t0");
    view.change("series", changeset().insert(rows(msg, stages, t0))).run();
  };

  async function draw() {
    for (const v of Object.values(views)) v.finalize();
    for (const k of Object.keys(views)) delete views[k];
    box.replaceChildren();
    el.dataset.rendered = "0";
    applied = new Set();
    const specs = model.get("specs") || {}, data = model.get("data") || {};
    const stages = model.get("stages"), t0 = model.get("t0");
    try {
      await Promise.all(Object.entries(specs).map(async ([name, spec]) => {
        const div = h("div", { class: "si-chart", "data-chart": name });
        box.append(div);
        const res = await embed(div, spec, { actions: false, renderer: "svg" });
        if (!alive) { res.finalize(); return; }
        views[name] = res.view;
        const cols = data[name] || { t: [], s: [], v: [] };
        res.view.change("series", changeset().remove(() => true).insert(rows(cols, stages, t0)));
        await res.view.runAsync();
      }));
      const queued = pending; pending = [];
      queued.forEach(apply);
      el.dataset.rendered = "1";
      model.send({ type: "hello" });  // ask for the live points since the snapshot
    } catch (e) {
      err.textContent = `chart error: ${e && e.message ? e.message : e}`;
    }
  }

  const onMsg = (msg) => { if (msg && msg.type === "append") apply(msg); };
  model.on("msg:custom", onMsg);
  model.on("change:data", draw);
  model.on("change:specs", draw);
  draw();
  return () => {
    alive = false;
    model.off("msg:custom", onMsg);
    model.off("change:data", draw);
    model.off("change:specs", draw);
    for (const v of Object.values(views)) v.finalize();
  };
}

export default { render };
