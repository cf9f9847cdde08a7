// The Splits tab's query builder: one control per argument of job.splits(), a Run
// button, the equivalent Python call (text, with a copy button) and the error of a query
// that could not run. The rows are the paged `splits` table below it (table.js).
// Out: {type: "splits", query: {arg: text}}; in: the `splits` trait.
import { h } from "./dom.js";

const HELP = {
  stage: "stage id(s), comma-separated",
  worker: "worker id(s), comma-separated",
  status: "ok, failed or retried",
  min_duration_s: "seconds, e.g. 1.5",
  since: "epoch seconds or 2026-11-30 12:00 (UTC)",
  until: "epoch seconds or 2026-11-30 12:00 (UTC), exclusive",
  where: "SQL on the lineage columns, e.g. output_records = 0",
};

export class SplitsForm {
  constructor(model) {
    this.model = model;
    this.inputs = new Map();
    this.stageList = h("datalist", { id: `si-stages-${Math.random().toString(36).slice(2)}` });
    const fields = h("div", { class: "si-splits-fields" });
    const state = model.get("splits") || {};
    const args = state.args || Object.keys(HELP);
    for (const arg of args) {
      let input;
      if (arg === "status") {
        input = h("select", { class: "si-splits-input", "data-arg": arg, title: HELP[arg] },
          h("option", { value: "" }, "any"),
          ...(state.statuses || ["ok", "failed", "retried"]).map((s) => h("option", { value: s }, s)));
      } else {
        input = h("input", {
          class: "si-splits-input", "data-arg": arg, type: "text", spellcheck: "false",
          placeholder: HELP[arg] || "", title: HELP[arg] || "", "aria-label": arg,
          list: arg === "stage" ? this.stageList.id : null,
        });
        input.addEventListener("keydown", (e) => {
          e.stopPropagation(); // typing here is not a notebook shortcut
          if (e.key === "Enter") this.run();
        });
      }
      this.inputs.set(arg, input);
      fields.append(h("label", { class: `si-splits-field si-arg-${arg}` }, h("span", {}, arg), input));
    }
    this.runBtn = h("button", { type: "button", class: "si-splits-run", onclick: () => this.run() }, "Run");
    this.resetBtn = h("button", { type: "button", class: "si-splits-reset", onclick: () => this.reset() }, "Reset");
    this.statusEl = h("span", { class: "si-splits-status si-muted" });
    this.callEl = h("code", { class: "si-splits-call" });
    this.copyBtn = h("button", { type: "button", class: "si-splits-copy", title: "copy the call", onclick: () => this.copy() }, "copy");
    this.errorEl = h("div", { class: "si-splits-error si-error", role: "alert" });
    this.root = h("div", { class: "si-splits-form" },
      fields, this.stageList,
      h("div", { class: "si-splits-actions" }, this.runBtn, this.resetBtn, this.statusEl),
      h("div", { class: "si-splits-callbar" }, h("span", { class: "si-muted" }, "Python: "), this.callEl, this.copyBtn),
      this.errorEl);
    this.fill(state.query || {});
    this.update();
  }

  fill(query) {
    for (const [arg, input] of this.inputs) input.value = query[arg] ?? "";
  }

  query() {
    const q = {};
    for (const [arg, input] of this.inputs) if (input.value.trim() !== "") q[arg] = input.value;
    return q;
  }

  run() {
    this.statusEl.textContent = "running…";
    this.model.send({ type: "splits", query: this.query() });
  }

  reset() {
    this.fill({});
    this.run();
  }

  copy() {
    const text = this.callEl.textContent;
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).catch(() => this.selectCall());
    } else this.selectCall();
  }

  selectCall() {
    const range = document.createRange();
    range.selectNodeContents(this.callEl);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // A new `splits` from the kernel: the call, the error, the row count.
  update() {
    const s = this.model.get("splits") || {};
    const stages = s.stages || [];
    if (this.stageList.children.length !== stages.length) {
      this.stageList.replaceChildren(...stages.map((id) => h("option", { value: id })));
    }
    this.callEl.textContent = s.call || "";
    this.errorEl.textContent = s.error || "";
    this.root.classList.toggle("si-has-error", !!s.error);
    this.statusEl.textContent = s.error ? "the query did not run; the rows below are the last query's"
      : s.rows == null ? "" : `${Number(s.rows).toLocaleString("en")} splits in ${s.took_s} s`;
  }
}
