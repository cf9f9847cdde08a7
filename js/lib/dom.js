// Tiny DOM helpers: every piece of data reaches the page through textContent, never
// innerHTML, so a message such as "<img src=x onerror=...>" stays text.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.setAttribute("style", v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// One <style> per document, whatever the number of widgets.
export function ensureStyle(id, css) {
  if (document.getElementById(id)) return;
  const style = document.createElement("style");
  style.id = id;
  style.textContent = css;
  document.head.append(style);
}

// An inline SVG sparkline built with DOM calls (no markup strings); its colour is the
// CSS `color` of `.si-spark` (the theme's brand colour).
export function sparkline(values, width = 96, height = 20) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "si-spark");
  const vals = (values || []).filter((v) => v != null && !Number.isNaN(v));
  if (vals.length < 2) return svg;
  const max = Math.max(...vals, 1e-9);
  const pts = vals.map((v, i) => {
    const x = (i / (vals.length - 1)) * (width - 2) + 1;
    const y = height - 1 - (v / max) * (height - 2);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const area = document.createElementNS(ns, "polygon");
  area.setAttribute("points", `1,${height - 1} ${pts.join(" ")} ${width - 1},${height - 1}`);
  area.setAttribute("fill", "currentColor");
  area.setAttribute("fill-opacity", "0.15");
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "currentColor");
  line.setAttribute("stroke-width", "1.25");
  svg.append(area, line);
  return svg;
}
