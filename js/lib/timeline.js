// The Timeline tab: worker lifetimes per stage (a Gantt), backpressure bands, failures,
// restarts and checkpoints, and a time brush: a click or drag on the chart (or the
// slider) asks the kernel for the job as of that moment ({type: "travel", t}); "Back to
// now" asks for the live job again ({type: "travel", t: null}). The kernel answers by
// re-scoping the header and the stage graph, and with `travel` (stages as of t).
import { h } from "./dom.js";
import { fmtCell, fmtDateTime, fmtDuration } from "./format.js";

const NS = "http://www.w3.org/2000/svg";
const ENDED = { RUNNING: "#4c78a8", STOPPED: "#54a24b", FAILED: "#e45756", KILLED: "#b279a2", LOST: "#9d9d9d" };
const MARKS = { failure: "#b00020", restart: "#7f3fbf", checkpoint: "#2ca02c", checkpoint_failed: "#e45756" };
const ROW = 14, LABEL_W = 220, WIDTH = 960, AXIS = 20;
const SEND_EVERY_MS = 250;

function svgEl(tag, attrs = {}, text = null) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text != null) el.textContent = String(text);
  return el;
}

export class TimelineView {
  constructor(model) {
    this.model = model;
    this.chartEl = h("div", { class: "si-timeline-chart" });
    this.slider = h("input", { type: "range", class: "si-travel-slider", min: "0", max: "1", step: "0.1", value: "1", "aria-label": "time" });
    this.slider.addEventListener("input", () => this.brush(Number(this.slider.value), { now: false }));
    this.slider.addEventListener("change", () => this.brush(Number(this.slider.value), { now: true }));
    this.slider.addEventListener("keydown", (e) => e.stopPropagation());
    this.liveBtn = h("button", { type: "button", class: "si-travel-live", onclick: () => this.live() }, "Back to now");
    this.asOfEl = h("span", { class: "si-travel-asof" });
    this.stagesEl = h("div", { class: "si-travel-stages" });
    this.root = h("div", { class: "si-timeline" },
      h("div", { class: "si-travel-bar" }, h("span", { class: "si-muted" }, "Time travel: "), this.slider, " ", this.asOfEl, " ", this.liveBtn),
      this.stagesEl, this.chartEl);
    this.lastSent = 0;
    this.pending = null;
    this.update();
  }

  span() {
    const tl = this.model.get("timeline") || {};
    return { t0: tl.t0 ?? 0, len: Math.max(0.001, (tl.t1 ?? 0) - (tl.t0 ?? 0)) };
  }

  // Ask for the job as of t0 + s (throttled while dragging; at once when released), one
  // request in flight at a time: a moment brushed meanwhile waits for the answer, and
  // only the latest one is sent (a big job's answer can take a second).
  brush(s, { now }) {
    const { t0 } = this.span();
    this.drawCursor(s);
    this.wanted = t0 + s;
    clearTimeout(this.pending);
    if (this.inflight) return;
    if (now || performance.now() - this.lastSent > SEND_EVERY_MS) this.sendWanted();
    else this.pending = setTimeout(() => this.sendWanted(), SEND_EVERY_MS);
  }

  sendWanted() {
    if (this.wanted === undefined) return;
    this.pending = null;
    this.lastSent = performance.now();
    this.inflight = true;
    clearTimeout(this.inflightTimer); // an answer lost (kernel restarted) must not block it
    this.inflightTimer = setTimeout(() => this.answered(), 10_000);
    this.model.send({ type: "travel", t: this.wanted });
    this.wanted = undefined;
  }

  answered() {
    clearTimeout(this.inflightTimer);
    this.inflight = false;
    if (this.wanted !== undefined) this.sendWanted();
  }

  live() {
    clearTimeout(this.pending);
    this.wanted = undefined;
    this.model.send({ type: "travel", t: null });
  }

  drawCursor(s) {
    if (!this.cursor || !this.xOf) return;
    const x = this.xOf(s);
    this.cursor.setAttribute("x1", x);
    this.cursor.setAttribute("x2", x);
    this.cursor.setAttribute("visibility", "visible");
  }

  update() {
    this.drawChart();
    this.updateTravel();
  }

  updateTravel() {
    this.answered();
    const tr = this.model.get("travel") || {};
    const { t0, len } = this.span();
    this.slider.max = String(len);
    const travelling = tr.t != null;
    this.root.classList.toggle("si-travelling", travelling);
    this.liveBtn.disabled = !travelling;
    if (!travelling) {
      this.asOfEl.textContent = "showing now";
      this.asOfEl.removeAttribute("data-t");
      this.slider.value = String(len);
      if (this.cursor) this.cursor.setAttribute("visibility", "hidden");
      this.stagesEl.replaceChildren();
      return;
    }
    this.asOfEl.textContent = `as of ${fmtDateTime(tr.t)} (+${fmtDuration(tr.t - t0)})`;
    this.asOfEl.dataset.t = String(tr.t);
    if (document.activeElement !== this.slider) this.slider.value = String(tr.t - t0);
    this.drawCursor(tr.t - t0);
    const cols = [["stage_id", "stage", "string"], ["status", "status as of t", "string"], ["workers", "workers alive", "int"],
      ["records_in", "records in", "int"], ["records_out", "records out", "int"], ["backpressure", "backpressure", "string"]];
    const head = h("tr", {}, cols.map(([, label]) => h("th", {}, label)));
    const rows = (tr.stages || []).map((s) => h("tr", { "data-stage": String(s.stage_id) },
      cols.map(([key, , type]) => h("td", { class: type === "int" ? "si-num" : "", "data-column": key }, fmtCell(s[key], type) ?? "—"))));
    this.stagesEl.replaceChildren(h("table", { class: "si-table si-travel-table" }, h("thead", {}, head), h("tbody", {}, rows)));
  }

  drawChart() {
    const tl = this.model.get("timeline") || {};
    if (!tl.lanes) {
      this.chartEl.replaceChildren(h("div", { class: "si-muted" }, "loading the timeline…"));
      return;
    }
    const lanes = tl.lanes;
    const { t0, len } = this.span();
    const height = AXIS + Math.max(1, lanes.length) * ROW + 4;
    const plotW = WIDTH - LABEL_W - 8;
    this.xOf = (s) => LABEL_W + (Math.max(0, Math.min(len, s)) / len) * plotW;
    const yOf = (lane) => AXIS + lane * ROW;
    const svg = svgEl("svg", { viewBox: `0 0 ${WIDTH} ${height}`, width: "100%", class: "si-timeline-svg" });
    lanes.forEach((name, i) => {
      svg.append(svgEl("text", { x: LABEL_W - 6, y: yOf(i) + ROW - 4, "text-anchor": "end", class: "si-tick" }, name.length > 40 ? `${name.slice(0, 39)}…` : name));
    });
    for (let k = 0; k <= 4; k++) {
      const s = (len * k) / 4;
      svg.append(svgEl("text", { x: this.xOf(s), y: 12, "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle", class: "si-tick" }, fmtCell(t0 + s, "time")));
      svg.append(svgEl("line", { x1: this.xOf(s), x2: this.xOf(s), y1: AXIS - 4, y2: height, class: "si-grid" }));
    }
    const bp = tl.bp || { lane: [] };
    bp.lane.forEach((lane, i) => {
      if (lane < 0) return;
      const x = this.xOf(bp.s[i]);
      svg.append(svgEl("rect", { x, y: yOf(lane) + 2, width: Math.max(1, this.xOf(bp.e[i]) - x), height: ROW - 4, fill: "#f2a900", "fill-opacity": 0.6, class: "si-bp-span" }));
    });
    const sp = tl.spans || { lane: [] };
    sp.lane.forEach((lane, i) => {
      if (lane < 0) return;
      const x = this.xOf(sp.s[i]);
      const r = svgEl("rect", { x, y: yOf(lane) + 2, width: Math.max(1, this.xOf(sp.e[i]) - x), height: ROW - 4, fill: ENDED[sp.ended[i]] || "#888", class: "si-worker-span", "data-ended": sp.ended[i] });
      r.append(svgEl("title", {}, `${sp.worker[i]}: ${sp.ended[i]}`));
      svg.append(r);
    });
    const mk = tl.marks || { lane: [] };
    mk.lane.forEach((lane, i) => {
      const x = this.xOf(mk.t[i]), colour = MARKS[mk.kind[i]] || "#555";
      const el = lane < 0
        ? svgEl("line", { x1: x, x2: x, y1: AXIS, y2: height, stroke: colour, "stroke-dasharray": "4 3", class: "si-mark" })
        : svgEl("circle", { cx: x, cy: yOf(lane) + ROW / 2, r: 3.5, fill: colour, class: "si-mark" });
      el.append(svgEl("title", {}, `${mk.kind[i]}: ${mk.label[i]}`));
      svg.append(el);
    });
    this.cursor = svgEl("line", { x1: 0, x2: 0, y1: AXIS - 4, y2: height, class: "si-travel-cursor", visibility: "hidden" });
    svg.append(this.cursor);
    // the brush: press, drag, release anywhere on the plot
    const toS = (ev) => {
      const box = svg.getBoundingClientRect();
      const px = ((ev.clientX - box.left) / box.width) * WIDTH;
      return Math.max(0, Math.min(len, ((px - LABEL_W) / plotW) * len));
    };
    let dragging = false;
    svg.addEventListener("pointerdown", (ev) => { dragging = true; svg.setPointerCapture?.(ev.pointerId); this.brush(toS(ev), { now: false }); });
    svg.addEventListener("pointermove", (ev) => { if (dragging) this.brush(toS(ev), { now: false }); });
    svg.addEventListener("pointerup", (ev) => { if (dragging) { dragging = false; this.brush(toS(ev), { now: true }); } });
    const more = tl.total_workers > (sp.lane || []).length
      ? h("div", { class: "si-muted" }, `${(sp.lane || []).length} of ${tl.total_workers} workers drawn (failed first, then the longest-lived)`) : null;
    this.chartEl.replaceChildren(svg, more || "");
  }
}
