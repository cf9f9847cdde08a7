// The `header` part: status badge, start time, elapsed / duration, progress + ETA,
// records, rates + sparkline, workers, exceptions, bottleneck, and "updated N s ago".
// State: `header` (a small dict) and `spark` (<= 60 numbers).
import { keepDagFitted } from "./dagfit.js";
import { h, sparkline } from "./dom.js";
import { fmtDateTime, fmtDuration, fmtNumber } from "./format.js";

function stat(label, value, { cls = "", extra = null, title = null } = {}) {
  return h("div", { class: `si-stat ${cls}`.trim(), title },
    h("div", { class: "si-stat-label" }, label),
    h("div", { class: "si-stat-value" }, value, extra));
}

// records / s: "1,831", "7.5", "12.3k"
const fmtRate = (v) => {
  if (v == null || Number.isNaN(v)) return "—";
  if (Math.abs(v) >= 1e5) return fmtNumber(v, 1);
  return v.toLocaleString("en", { maximumFractionDigits: Math.abs(v) < 10 ? 1 : 0 });
};

// "3 s", "2m 05s": the age of the data on screen.
function fmtAge(s) {
  return s < 60 ? `${Math.floor(s)} s` : fmtDuration(s);
}

export function renderHeader(model, el) {
  let received = 0; // performance.now() when this header value arrived
  let updatedEl = null, elapsedEl = null;

  const tick = () => {
    const s = model.get("header") || {};
    const since = (performance.now() - received) / 1000;
    if (s.as_of != null) { // time travel: a past moment does not tick
      if (updatedEl) updatedEl.textContent = "";
      return;
    }
    if (elapsedEl && s.running && s.elapsed_s != null) elapsedEl.textContent = fmtDuration(s.elapsed_s + since);
    if (!updatedEl) return;
    if (!s.running) {
      updatedEl.textContent = "final";
      updatedEl.classList.remove("si-stale");
      updatedEl.removeAttribute("data-age");
      return;
    }
    if (s.updated_age_s == null) {
      updatedEl.textContent = "waiting for data";
      updatedEl.classList.remove("si-stale");
      return;
    }
    const age = s.updated_age_s + since;
    const stale = s.stale_after_s != null && age > s.stale_after_s;
    updatedEl.textContent = `updated ${fmtAge(age)} ago`;
    updatedEl.dataset.age = age.toFixed(1);
    updatedEl.classList.toggle("si-stale", stale);
    updatedEl.title = stale
      ? `no new rows from the store for ${fmtAge(age)} (expected every ${fmtAge(s.stale_after_s / 3)})`
      : "time since the store last brought new rows";
  };

  const draw = () => {
    received = performance.now();
    const s = model.get("header") || {};
    const status = s.status || "?";
    updatedEl = h("span", { class: "si-updated" });
    const line = h("div", { class: "si-head-line" },
      h("span", { class: "si-job" }, s.job_id || ""),
      s.attempt_id != null && s.attempt_id !== "" ? h("span", { class: "si-attempt" }, `attempt ${s.attempt_id}`) : null,
      h("span", { class: "si-badge", "data-status": s.status || "" }, status),
      s.status_reason ? h("span", { class: "si-reason" }, s.status_reason) : null,
      s.start != null ? h("span", { class: "si-started" }, `started ${fmtDateTime(s.start)}`) : null,
      s.as_of != null ? h("span", { class: "si-asof", "data-t": String(s.as_of), title: "time travel: the job as it was then (Timeline tab: Back to now)" },
        `as of ${fmtDateTime(s.as_of)}`) : null,
      updatedEl);

    let progress;
    if (s.progress != null) {
      const pct = Math.max(0, Math.min(1, s.progress)) * 100;
      const bar = h("div", { class: "si-progress" }, h("div", { style: `width:${pct.toFixed(1)}%` }));
      const eta = s.running && s.eta_s != null ? ` · ETA ${fmtDuration(s.eta_s)}` : "";
      progress = stat("progress", `${pct.toFixed(1)}%${eta}`, { extra: bar });
    } else {
      progress = stat("progress", "—");
    }
    elapsedEl = h("span", { class: "si-elapsed" }, fmtDuration(s.elapsed_s));
    const exceptions = Number(s.exceptions) || 0;
    const row = h("div", { class: "si-stats" },
      stat(s.running ? "elapsed" : "duration", elapsedEl),
      progress,
      stat("records in / out", h("span", {},
        h("span", { class: "si-records-in", "data-value": String(s.records_in ?? "") }, fmtNumber(s.records_in, 2)),
        " / ",
        h("span", { class: "si-records-out", "data-value": String(s.records_out ?? "") }, fmtNumber(s.records_out, 2))),
      { title: `${(s.records_in ?? 0).toLocaleString("en")} in / ${(s.records_out ?? 0).toLocaleString("en")} out` }),
      stat("rate in / out (rec/s)", `${fmtRate(s.rate_in)} / ${fmtRate(s.rate_out)}`,
        { extra: sparkline(model.get("spark")), title: "output rate, last 60 updates" }),
      stat("workers", fmtNumber(s.workers)),
      stat("exceptions", fmtNumber(s.exceptions), { cls: `si-stat-exceptions${exceptions > 0 ? " si-nonzero" : ""}` }),
      s.bottleneck != null ? stat("bottleneck", s.bottleneck, { cls: "si-stat-bottleneck" }) : null);
    // incidents and regressions, each a sentence with its figures (text nodes: escaped)
    const cards = Array.isArray(s.cards) && s.cards.length
      ? h("div", { class: "si-cards" }, ...s.cards.map((c) =>
        h("div", {
          class: `si-card si-card-${c.severity === "warn" ? "warn" : "info"}`,
          "data-kind": String(c.kind || ""),
          "data-split": c.split_id == null ? "" : String(c.split_id),
          title: c.kind === "incident" ? "Incidents tab: the stack and log tail when it was seen" : "Advice tab: the figures",
        },
        h("span", { class: "si-card-title" }, String(c.title || c.kind || "")),
        h("span", { class: "si-card-text" }, String(c.text || "")))))
      : null;
    el.replaceChildren(h("div", { class: "si-root si-header" }, line, row, cards));
    tick();
  };

  draw();
  const timer = setInterval(tick, 1000);
  const redrawSpark = () => {
    const old = el.querySelector(".si-spark");
    if (old) old.replaceWith(sparkline(model.get("spark")));
  };
  model.on("change:header", draw);
  model.on("change:spark", redrawSpark);
  const stopFitting = keepDagFitted(el);
  return () => {
    stopFitting();
    clearInterval(timer);
    model.off("change:header", draw);
    model.off("change:spark", redrawSpark);
  };
}
