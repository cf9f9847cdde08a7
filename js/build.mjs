// Bundle one ES module per widget into solstice_inspect/static/ (nothing is loaded from a
// URL at run time: vega, vega-lite and vega-embed are inside charts.js).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const entries = ["header", "charts"];

await build({
  entryPoints: entries.map((e) => path.join(root, "js", `${e}.js`)),
  outdir: path.join(root, "solstice_inspect", "static"),
  bundle: true,
  format: "esm",
  minify: true,
  target: ["es2020"],
  legalComments: "none",
  logLevel: "info",
});
