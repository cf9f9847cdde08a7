// The dashboard's one stylesheet. Colours come from JupyterLab's theme variables only
// (light and dark alike); the fallbacks are the light theme's values, for hosts without
// them (VS Code, Colab, a static export).
import { ensureStyle } from "./dom.js";

const CSS = `
.si-root {
  --si-fg0: var(--jp-ui-font-color0, rgba(0,0,0,1));
  --si-fg1: var(--jp-ui-font-color1, rgba(0,0,0,0.87));
  --si-fg2: var(--jp-ui-font-color2, rgba(0,0,0,0.54));
  --si-fg3: var(--jp-ui-font-color3, rgba(0,0,0,0.38));
  --si-bg0: var(--jp-layout-color0, #fff);
  --si-bg1: var(--jp-layout-color1, #fff);
  --si-bg2: var(--jp-layout-color2, #eee);
  --si-bg3: var(--jp-layout-color3, #bdbdbd);
  --si-line1: var(--jp-border-color1, #bdbdbd);
  --si-line2: var(--jp-border-color2, #e0e0e0);
  --si-brand: var(--jp-brand-color1, #1976d2);
  --si-warn: var(--jp-warn-color1, #f57c00);
  --si-error: var(--jp-error-color1, #d32f2f);
  --si-ok: var(--jp-success-color1, #388e3c);
  --si-mono: var(--jp-code-font-family, ui-monospace, SFMono-Regular, Menlo, Consolas, monospace);
  font-family: var(--jp-ui-font-family, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  font-size: 12px;
  line-height: 1.4;
  color: var(--si-fg1);
  box-sizing: border-box;
}
.si-root *, .si-root *::before, .si-root *::after { box-sizing: inherit; }
.si-root button, .si-root input, .si-root select {
  font: inherit; color: var(--si-fg1); background: var(--si-bg1);
  border: 1px solid var(--si-line1); border-radius: 2px; margin: 0;
}
.si-root button { cursor: pointer; padding: 0 6px; height: 22px; line-height: 20px; }
.si-root button:hover:not(:disabled) { background: var(--si-bg2); }
.si-root button:disabled { color: var(--si-fg3); cursor: default; }
.si-root input, .si-root select { height: 22px; padding: 0 4px; }
.si-root input:focus, .si-root select:focus, .si-root button:focus-visible {
  outline: 1px solid var(--si-brand); outline-offset: -1px;
}
.si-muted { color: var(--si-fg2); }
.si-error { color: var(--si-error); white-space: pre-wrap; }
.si-error:empty { display: none; }

/* header */
.si-header { padding: 4px 2px 6px; }
.si-head-line { display: flex; align-items: baseline; gap: 10px; flex-wrap: wrap; margin-bottom: 6px; }
.si-job { font-size: 14px; font-weight: 600; color: var(--si-fg0); }
.si-attempt { color: var(--si-fg2); }
.si-badge {
  display: inline-block; padding: 1px 7px; border-radius: 3px; color: #fff;
  font-size: 11px; font-weight: 600; letter-spacing: .03em; background: #616161;
}
.si-badge[data-status="RUNNING"] { background: #1e6fc4; }
.si-badge[data-status="COMPLETED"] { background: #2e7d32; }
.si-badge[data-status="FAILED"] { background: #c62828; }
.si-badge[data-status="CANCELLED"] { background: #757575; }
.si-badge[data-status="LOST"] { background: #e65100; }
.si-reason { color: var(--si-warn); }
.si-started { color: var(--si-fg2); }
.si-updated { margin-left: auto; color: var(--si-fg2); font-variant-numeric: tabular-nums; }
.si-updated.si-stale { color: var(--si-warn); font-weight: 600; }
.si-updated.si-stale::before { content: "● "; }
.si-stats { display: flex; flex-wrap: wrap; gap: 4px 22px; align-items: flex-start; }
.si-stat-label { color: var(--si-fg2); font-size: 11px; white-space: nowrap; }
.si-stat-value {
  font-size: 13px; color: var(--si-fg0); white-space: nowrap;
  font-variant-numeric: tabular-nums; display: flex; align-items: center; gap: 6px;
}
.si-stat-bottleneck .si-stat-value { color: var(--si-warn); font-weight: 600; }
.si-stat-exceptions.si-nonzero .si-stat-value { color: var(--si-error); font-weight: 600; }
.si-progress { width: 110px; height: 6px; background: var(--si-bg2); border-radius: 3px; overflow: hidden; }
.si-progress > div { height: 100%; background: var(--si-ok); }
.si-spark { color: var(--si-brand); display: block; }

/* ipycytoscape's stylesheet paints the stage graph's container white (and dashes a border
   round it on hover): in the dashboard it shows the notebook's own background instead */
.si-monitor .custom-widget { background-color: transparent; }
.si-monitor .custom-widget:hover { border: none; }

/* tabs */
.si-tabs { border-bottom: 1px solid var(--si-line1); display: flex; flex-wrap: wrap; gap: 0; }
.si-root button.si-tab {
  border: none; border-bottom: 2px solid transparent; border-radius: 0; background: transparent;
  height: 26px; padding: 0 10px; color: var(--si-fg2); margin-bottom: -1px;
}
.si-root button.si-tab:hover { background: var(--si-bg2); color: var(--si-fg1); }
.si-root button.si-tab.si-tab-selected { color: var(--si-fg0); border-bottom-color: var(--si-brand); font-weight: 600; }
.si-tab-badge {
  display: inline-block; min-width: 16px; padding: 0 4px; margin-left: 5px; border-radius: 8px;
  background: var(--si-bg2); color: var(--si-fg1); font-size: 10px; line-height: 15px;
  text-align: center; font-weight: 600; font-variant-numeric: tabular-nums;
}
.si-tab-badge.si-badge-alert { background: var(--si-error); color: #fff; }
.si-tab-panel { padding-top: 6px; display: flex; flex-direction: column; gap: 12px; }
.si-tab-panel[hidden] { display: none; }
.si-text {
  margin: 0; padding: 6px 8px; font-family: var(--si-mono); font-size: 12px;
  background: var(--si-bg1); border: 1px solid var(--si-line2); white-space: pre-wrap;
  max-height: 480px; overflow: auto; color: var(--si-fg1);
}

/* stage detail */
.si-stage { display: flex; flex-direction: column; align-items: flex-start; gap: 4px; }
.si-stage-title { font-weight: 600; font-size: 13px; color: var(--si-fg0); }
table.si-stage-detail { border-collapse: collapse; font-variant-numeric: tabular-nums; min-width: 320px; }
table.si-stage-detail th { text-align: left; font-weight: 600; padding: 2px 8px; border-bottom: 1px solid var(--si-line1); }
table.si-stage-detail td { padding: 1px 8px; border-bottom: 1px solid var(--si-line2); white-space: nowrap; }
table.si-stage-detail td:first-child { color: var(--si-fg2); }
table.si-stage-detail th:first-child, table.si-stage-detail td:first-child { padding-left: 0; }
table.si-stage-detail td.si-num { text-align: right; }

/* paged tables */
.si-table-view { display: flex; flex-direction: column; gap: 3px; min-width: 0; }
.si-toolbar { display: flex; align-items: center; gap: 6px; flex-wrap: wrap; min-height: 24px; }
.si-table-title { font-weight: 600; font-size: 13px; color: var(--si-fg0); }
.si-table-caption { color: var(--si-fg2); }
.si-table-status { color: var(--si-fg2); font-variant-numeric: tabular-nums; margin-left: auto; white-space: nowrap; }
.si-pager { display: flex; align-items: center; gap: 3px; white-space: nowrap; color: var(--si-fg2); }
.si-root input.si-page-input { width: 48px; text-align: right; font-variant-numeric: tabular-nums; }
.si-root .si-pager button { min-width: 24px; padding: 0 4px; }
.si-table-scroll { overflow: auto; max-height: 75vh; border: 1px solid var(--si-line2); background: var(--si-bg0); }
.si-table-view.si-loading .si-table-scroll { opacity: .65; }
table.si-table {
  border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums;
  background: var(--si-bg0);
}
table.si-table th, table.si-table td {
  padding: 2px 8px; white-space: nowrap; text-align: left; vertical-align: top;
}
table.si-table thead { position: sticky; top: 0; z-index: 1; }
table.si-table thead th {
  background: var(--si-bg1); color: var(--si-fg1); font-weight: 600;
  border-bottom: 1px solid var(--si-line1); cursor: pointer; user-select: none;
}
table.si-table thead th:hover { background: var(--si-bg2); }
table.si-table thead th .si-sort { color: var(--si-brand); margin-left: 3px; font-size: 10px; }
table.si-table thead tr.si-filter-row th { padding: 2px 4px; cursor: default; background: var(--si-bg1); }
.si-root input.si-filter { width: 100%; min-width: 5em; height: 20px; font-size: 11px; background: var(--si-bg0); }
.si-root input.si-filter::placeholder { color: var(--si-fg3); }
.si-root input.si-filter.si-active { border-color: var(--si-brand); }
table.si-table th.si-num, table.si-table td.si-num { text-align: right; }
table.si-table td.si-bool, table.si-table th.si-bool { text-align: center; }
table.si-table tbody tr { cursor: pointer; border-bottom: 1px solid var(--si-line2); }
table.si-table tbody tr:nth-child(even) { background: var(--si-bg1); }
table.si-table tbody tr:hover { background: var(--si-bg2); }
table.si-table tbody tr.si-row-selected { box-shadow: inset 3px 0 0 var(--si-brand); background: var(--si-bg2); }
table.si-table td.si-str { max-width: 32em; overflow: hidden; text-overflow: ellipsis; }
/* the last text column takes the room the others leave (and ellipsises within it) */
table.si-table th.si-grow { width: 100%; min-width: 16em; }
table.si-table td.si-grow { max-width: 0; }
table.si-table td.si-null { color: var(--si-fg3); }
table.si-table td.si-bool { color: var(--si-ok); }
.si-table-error { color: var(--si-error); padding: 4px 8px; white-space: pre-wrap; }
.si-table-error:empty { display: none; }
.si-empty { color: var(--si-fg2); padding: 6px 8px; }
.si-detail { border: 1px solid var(--si-line1); border-left: 3px solid var(--si-brand); background: var(--si-bg1); }
.si-detail-bar {
  display: flex; align-items: center; gap: 8px; padding: 2px 4px 2px 8px;
  border-bottom: 1px solid var(--si-line2); color: var(--si-fg2);
}
.si-detail-bar button { margin-left: auto; }
pre.si-row-detail {
  margin: 0; padding: 4px 8px; font-family: var(--si-mono); font-size: 12px; color: var(--si-fg1);
  display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 1px 14px;
  max-height: 420px; overflow: auto; white-space: pre-wrap; word-break: break-word;
}
pre.si-row-detail .si-detail-label { color: var(--si-fg2); white-space: nowrap; }
pre.si-row-detail .si-detail-value { color: var(--si-fg0); }
.si-stage-box { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.si-stage-charts { flex: 1 1 480px; min-width: 360px; }
.si-minichart { margin-bottom: 8px; }
.si-minichart-title { color: var(--si-fg2); font-weight: 600; }
.si-minichart-svg { display: block; overflow: visible; }
.si-minichart-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; color: var(--si-fg2); }
.si-legend-item.si-flagged { color: var(--si-error); }
.si-legend-swatch { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
.si-root .si-axis, .si-root .si-grid { stroke: var(--si-line1); stroke-width: 1; }
.si-root .si-grid { stroke: var(--si-line2); }
.si-root .si-tick { fill: var(--si-fg2); font-size: 10px; }
.si-splits-form { padding: 4px 0 8px; }
.si-splits-fields { display: flex; flex-wrap: wrap; gap: 4px 12px; }
.si-splits-field { display: flex; align-items: center; gap: 4px; }
.si-splits-field > span { color: var(--si-fg2); font-family: var(--si-mono); }
.si-splits-field input { width: 11em; }
.si-splits-field.si-arg-where { flex: 1 1 100%; }
.si-splits-field.si-arg-where input { flex: 1; width: auto; font-family: var(--si-mono); }
.si-splits-actions, .si-splits-callbar { display: flex; align-items: center; gap: 8px; margin-top: 4px; }
code.si-splits-call { font-family: var(--si-mono); background: var(--si-bg2); padding: 1px 4px; white-space: pre-wrap; word-break: break-all; user-select: all; }
.si-splits-error:empty { display: none; }
.si-splits-error { white-space: pre-wrap; margin-top: 4px; }
.si-travel-bar { display: flex; align-items: center; gap: 6px; margin-bottom: 6px; }
.si-travel-slider { flex: 1; max-width: 480px; }
.si-timeline.si-travelling .si-travel-asof { color: var(--si-warn); font-weight: 600; }
.si-timeline-svg { display: block; user-select: none; cursor: crosshair; }
.si-root .si-travel-cursor { stroke: var(--si-warn); stroke-width: 2; }
.si-travel-table { margin-bottom: 6px; width: auto; }
.si-asof { color: var(--si-warn); font-weight: 600; }
.si-cards { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
.si-card { display: flex; gap: 6px; align-items: baseline; padding: 3px 8px; border-radius: 4px; border: 1px solid var(--si-line1); background: var(--si-bg2); max-width: 100%; }
.si-card-warn { border-color: var(--si-warn); }
.si-card-title { font-weight: 600; text-transform: capitalize; color: var(--si-fg2); }
.si-card-warn .si-card-title { color: var(--si-warn); }
.si-card-text { overflow-wrap: anywhere; }
`;

export function injectStyle() {
  ensureStyle("si-dashboard-style", CSS);
}
