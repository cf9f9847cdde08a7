// The job header: status badge, times, progress / ETA, records, rates + sparkline,
// workers and exceptions. State: `header` (a small dict) and `spark` (<= 60 numbers).
import { h, fmtNumber, fmtDuration, sparkline } from "./lib/dom.js";

const COLOURS = {
  RUNNING: "#1f77b4", COMPLETED: "#2ca02c", FAILED: "#d62728",
  CANCELLED: "#7f7f7f", LOST: "#ff7f0e",
};

function stat(label, value, extra) {
  return h("div", { class: "si-stat" },
    h("div", { class: "si-stat-label" }, label),
    h("div", { class: "si-stat-value" }, value, extra || null));
}

function draw(model, el) {
  const s = model.get("header") || {};
  const badge = h("span", {
    class: "si-badge",
    "data-status": s.status || "",
    style: `background:${COLOURS[s.status] || "#555"};color:#fff;padding:2px 8px;` +
      "border-radius:4px;font-weight:600;margin-left:8px",
  }, s.status || "?");
  const title = h("div", { class: "si-title", style: "font-size:15px;margin-bottom:6px" },
    h("b", {}, s.job_id || ""), " ", h("small", { style: "color:#666" }, `attempt ${s.attempt_id || ""}`),
    badge,
    s.status_reason ? h("span", { class: "si-reason", style: "margin-left:8px;color:#b35900" }, s.status_reason) : null);
  let progress = null;
  if (s.progress != null) {
    const pct = Math.max(0, Math.min(1, s.progress)) * 100;
    progress = h("div", { class: "si-progress", style: "width:140px;height:8px;background:#eee;border-radius:4px" },
      h("div", { style: `width:${pct.toFixed(1)}%;height:8px;background:#2ca02c;border-radius:4px` }));
  }
  const row = h("div", { class: "si-stats", style: "display:flex;flex-wrap:wrap;gap:18px;align-items:flex-end" },
    stat(s.running ? "elapsed" : "duration", fmtDuration(s.elapsed_s)),
    s.progress != null
      ? stat("progress", `${(s.progress * 100).toFixed(1)}% · ETA ${fmtDuration(s.eta_s)}`, progress)
      : stat("progress", "—"),
    h("div", { class: "si-stat" },
      h("div", { class: "si-stat-label" }, "records in / out"),
      h("div", { class: "si-stat-value" },
        h("span", { class: "si-records-in" }, fmtNumber(s.records_in, 2)), " / ",
        h("span", { class: "si-records-out", "data-value": String(s.records_out ?? "") }, fmtNumber(s.records_out, 2)))),
    stat("rate in / out (rec/s)", `${fmtNumber(s.rate_in)} / ${fmtNumber(s.rate_out)}`,
      sparkline(model.get("spark"))),
    stat("workers alive", fmtNumber(s.workers)),
    stat("exceptions", fmtNumber(s.exceptions)));
  el.replaceChildren(h("div", { class: "si-header", style: "font-family:sans-serif;padding:6px 2px" }, title, row));
}

function render({ model, el }) {
  const redraw = () => draw(model, el);
  redraw();
  model.on("change:header", redraw);
  model.on("change:spark", redraw);
  return () => {
    model.off("change:header", redraw);
    model.off("change:spark", redraw);
  };
}

export default { render };
