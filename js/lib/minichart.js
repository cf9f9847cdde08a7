// Small SVG line charts for the stage detail (partition lag, backpressure over time),
// built with DOM calls only: every label is a text node. Points arrive as
// [[seconds since t0, value]] (docs/widget-protocol.md: `stage_series`).
import { h } from "./dom.js";
import { fmtNumber, fmtTime } from "./format.js";

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#4c78a8", "#72b7b2", "#54a24b", "#b279a2", "#9d755d", "#bab0ac", "#eeca3b", "#ff9da6"];
const FLAGGED = "#d62728";

function svgEl(tag, attrs = {}, text = null) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text != null) el.textContent = String(text);
  return el;
}

// lines: [{name, points, flagged?, area?}]; t0: epoch seconds of t = 0.
export function lineChart({ title, lines, t0, width = 720, height = 130, yFormat = fmtNumber, cls = "" }) {
  const pad = { l: 48, r: 8, t: 6, b: 18 };
  const all = lines.flatMap((l) => l.points || []);
  const box = h("div", { class: `si-minichart ${cls}`.trim() });
  box.append(h("div", { class: "si-minichart-title" }, title));
  if (!all.length) {
    box.append(h("div", { class: "si-muted" }, "no data"));
    return box;
  }
  let tMin = Math.min(...all.map((p) => p[0])), tMax = Math.max(...all.map((p) => p[0]));
  if (tMax <= tMin) tMax = tMin + 1;
  const vMax = Math.max(1e-9, ...all.map((p) => p[1]));
  const x = (t) => pad.l + ((t - tMin) / (tMax - tMin)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / vMax) * (height - pad.t - pad.b);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", height, preserveAspectRatio: "none", class: "si-minichart-svg" });
  svg.append(svgEl("line", { x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b, class: "si-axis" }));
  svg.append(svgEl("line", { x1: pad.l, x2: pad.l, y1: pad.t, y2: height - pad.b, class: "si-axis" }));
  svg.append(svgEl("text", { x: pad.l - 4, y: pad.t + 8, "text-anchor": "end", class: "si-tick" }, yFormat(vMax)));
  svg.append(svgEl("text", { x: pad.l - 4, y: height - pad.b, "text-anchor": "end", class: "si-tick" }, "0"));
  if (t0 != null) {
    svg.append(svgEl("text", { x: pad.l, y: height - 4, class: "si-tick" }, fmtTime(t0 + tMin)));
    svg.append(svgEl("text", { x: width - pad.r, y: height - 4, "text-anchor": "end", class: "si-tick" }, fmtTime(t0 + tMax)));
  }
  const legend = h("div", { class: "si-minichart-legend" });
  lines.forEach((line, i) => {
    const colour = line.flagged ? FLAGGED : PALETTE[i % PALETTE.length];
    const pts = (line.points || []).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    if (!pts.length) return;
    if (line.area) {
      // a step band: the value holds until the next point (e.g. backpressure on / off)
      const steps = [];
      line.points.forEach((p, k) => {
        if (k) steps.push(`${x(p[0]).toFixed(1)},${y(line.points[k - 1][1]).toFixed(1)}`);
        steps.push(`${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
      });
      const first = x(line.points[0][0]).toFixed(1), last = x(line.points[line.points.length - 1][0]).toFixed(1);
      svg.append(svgEl("polygon", {
        points: `${first},${height - pad.b} ${steps.join(" ")} ${last},${height - pad.b}`,
        fill: colour, "fill-opacity": 0.25, stroke: "none", "data-line": line.name,
      }));
    } else {
      svg.append(svgEl("polyline", {
        points: pts.join(" "), fill: "none", stroke: colour, "stroke-width": line.flagged ? 2 : 1.25,
        "data-line": line.name, class: line.flagged ? "si-flagged" : "",
      }));
    }
    legend.append(h("span", { class: `si-legend-item${line.flagged ? " si-flagged" : ""}`, "data-line": line.name },
      h("span", { class: "si-legend-swatch", style: `background:${colour}` }), line.name));
  });
  box.append(svg, legend);
  return box;
}
