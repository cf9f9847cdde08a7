// Bundle one ES module per widget into solstice_inspect/static/ (nothing is loaded from a
// URL at run time: vega, vega-lite, vega-embed and flechette are inside the bundles).
//   node js/build.mjs         minified bundles (what the wheel ships)
//   node js/build.mjs --dev   rebuild on every change, inline sourcemaps, not minified
import { build, context } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const entries = ["dashboard", "charts", "worker"];
const dev = process.argv.includes("--dev");

const options = {
  entryPoints: entries.map((e) => path.join(root, "js", `${e}.js`)),
  outdir: path.join(root, "solstice_inspect", "static"),
  bundle: true,
  format: "esm",
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  target: ["es2020"],
  legalComments: "none",
  logLevel: "info",
};

if (dev) {
  const ctx = await context(options);
  await ctx.watch();
  console.log("watching js/ (Ctrl-C to stop)");
} else {
  await build(options);
}
