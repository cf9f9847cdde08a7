// The job dashboard's own views (docs/widget-protocol.md): one bundle, one `render`, and
// the model's `part` trait says which part it draws: "header", "tabs" or "table".
import { h } from "./lib/dom.js";
import { injectStyle } from "./lib/style.js";
import { renderHeader } from "./lib/header.js";
import { renderTable, renderTabs } from "./lib/tabs.js";

const PARTS = { header: renderHeader, tabs: renderTabs, table: renderTable };

function render({ model, el }) {
  injectStyle();
  const part = model.get("part");
  const draw = PARTS[part];
  if (!draw) {
    el.replaceChildren(h("div", { class: "si-root" }, h("div", { class: "si-error" },
      `unknown dashboard part ${JSON.stringify(part)}; expected one of: ${Object.keys(PARTS).join(", ")}`)));
    return () => {};
  }
  return draw(model, el);
}

export default { render };
