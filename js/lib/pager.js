// Pages of kernel-side tables over the widget's custom messages (docs/widget-protocol.md):
// {type: "page", id, table, offset, limit, sort, filters} out; {type: "page", ...} with
// one Arrow IPC stream in buffers[0], or {type: "error", ...}, back. Answers may arrive
// out of order: each table shows only the answer to its newest request.
import { tableFromIPC } from "@uwdata/flechette";

// Ids are unique across every view in the page: all views of one model receive every
// answer the kernel sends, and a view must never take another view's answer as its own.
let nextId = Math.floor(Math.random() * 2 ** 30);

// A comm buffer arrives as a DataView (JupyterLab), an ArrayBuffer or a typed array.
export function bytesOf(buf) {
  if (buf == null) return null;
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  return null;
}

// The rows of an Arrow IPC stream as plain objects (timestamps, if any, as Dates).
export function decodeRows(buf) {
  const bytes = bytesOf(buf);
  if (!bytes || bytes.byteLength === 0) return [];
  return tableFromIPC(bytes, { useDate: true }).toArray();
}

export class Pager {
  constructor(model) {
    this.model = model;
    this.open = new Map(); // request id -> table name
    this.newest = new Map(); // table name -> id of its newest request
    this.views = new Map(); // table name -> {showPage(msg, rows), showError(msg)}
    this.onMsg = (msg, buffers) => this.receive(msg, buffers);
    model.on("msg:custom", this.onMsg);
  }

  register(name, view) { this.views.set(name, view); }

  unregister(name) {
    this.views.delete(name);
    this.newest.delete(name);
  }

  request(table, { offset, limit, sort, filters }) {
    const id = ++nextId;
    this.open.set(id, table);
    this.newest.set(table, id);
    this.model.send({ type: "page", id, table, offset, limit, sort: sort || null, filters: filters || {} });
    return id;
  }

  // Is an answer to `table` still on its way?
  waiting(table) {
    const id = this.newest.get(table);
    return id != null && this.open.has(id);
  }

  receive(msg, buffers) {
    if (!msg || (msg.type !== "page" && msg.type !== "error")) return;
    const table = this.open.get(msg.id);
    if (table === undefined || (msg.table != null && msg.table !== table)) return;
    this.open.delete(msg.id);
    if (this.newest.get(table) !== msg.id) return; // superseded by a newer request
    const view = this.views.get(table);
    if (!view) return;
    if (msg.type === "error") {
      view.showError(String(msg.message ?? "error"));
      return;
    }
    let rows;
    try {
      rows = decodeRows(buffers && buffers[0]);
    } catch (e) {
      view.showError(`could not read the page: ${e && e.message ? e.message : e}`);
      return;
    }
    view.showPage(msg, rows);
  }

  dispose() {
    this.model.off("msg:custom", this.onMsg);
    this.open.clear();
    this.views.clear();
  }
}
