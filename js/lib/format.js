// Formatting of values for people: counts, durations, UTC times, and the cells of a
// paged table by column type (docs/widget-protocol.md: int, float, string, time, bool,
// duration).

const pad2 = (n) => String(n).padStart(2, "0");

// Compact count for headline figures: 12,345 -> "12.3k".
export function fmtNumber(v, digits = 1) {
  if (v == null || Number.isNaN(v)) return "—";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(digits) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(digits) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(digits) + "k";
  return Number.isInteger(v) ? v.toLocaleString("en") : v.toFixed(digits);
}

// Whole-second duration for headline figures: "1h 02m 03s", "4m 05s", "7s".
export function fmtDuration(s) {
  if (s == null || Number.isNaN(s)) return "—";
  s = Math.max(0, Math.round(s));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  if (hh) return `${hh}h ${pad2(mm)}m ${pad2(ss)}s`;
  return mm ? `${mm}m ${pad2(ss)}s` : `${ss}s`;
}

// Duration in a cell, where sub-second values matter: "350 ms", "1.2 s", "3m 04s".
export function fmtSeconds(s) {
  if (s == null || Number.isNaN(s)) return "—";
  const a = Math.abs(s), sign = s < 0 ? "-" : "";
  if (a < 1) return `${sign}${Math.round(a * 1000)} ms`;
  if (a < 60) return `${sign}${a.toFixed(1)} s`;
  const t = Math.round(a);
  const hh = Math.floor(t / 3600), mm = Math.floor((t % 3600) / 60), ss = t % 60;
  return hh ? `${sign}${hh}h ${pad2(mm)}m` : `${sign}${mm}m ${pad2(ss)}s`;
}

// Epoch seconds (or a Date) -> milliseconds, or null.
function epochMs(v) {
  if (v == null) return null;
  if (v instanceof Date) return v.getTime();
  const n = Number(v);
  return Number.isFinite(n) ? n * 1000 : null;
}

export function fmtTime(v) {
  const ms = epochMs(v);
  if (ms == null) return "—";
  const d = new Date(ms);
  return `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;
}

export function fmtDate(v) {
  const ms = epochMs(v);
  if (ms == null) return "";
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
}

// "2026-11-30 12:00:03.250 UTC": the full stamp for a row's detail.
export function fmtDateTime(v, { millis = false } = {}) {
  const ms = epochMs(v);
  if (ms == null) return "—";
  const frac = millis ? "." + String(Math.floor(((ms % 1000) + 1000) % 1000)).padStart(3, "0") : "";
  return `${fmtDate(v)} ${fmtTime(v)}${frac} UTC`;
}

const INT = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const FLOAT = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });

export const NUMERIC = new Set(["int", "float", "duration"]);

// A cell's text by column type; null for a missing value (drawn as a muted dash).
export function fmtCell(v, type) {
  if (v == null || (typeof v === "number" && Number.isNaN(v))) return null;
  switch (type) {
    case "int": return typeof v === "bigint" ? v.toLocaleString("en") : INT.format(Number(v));
    case "float": return FLOAT.format(Number(v));
    case "time": return fmtTime(v);
    case "duration": return fmtSeconds(Number(v));
    case "bool": return v ? "✓" : "";
    default: return String(v);
  }
}

// The full value for the row detail (no rounding, full date).
export function fmtDetail(v, type) {
  if (v == null || (typeof v === "number" && Number.isNaN(v))) return "—";
  switch (type) {
    case "int": return typeof v === "bigint" ? v.toLocaleString("en") : Number(v).toLocaleString("en");
    case "float": return Number(v).toLocaleString("en", { maximumFractionDigits: 6 });
    case "time": return fmtDateTime(v, { millis: true });
    case "duration": return `${fmtSeconds(Number(v))} (${Number(v)} s)`;
    case "bool": return v ? "true" : "false";
    default: return String(v);
  }
}
