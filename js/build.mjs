// Bundle one ES module per widget into solstice_inspect/static/ (nothing is loaded from a
// URL at run time: vega, vega-lite, vega-embed and flechette are inside the bundles).
//   node js/build.mjs         minified bundles (what the wheel ships)
//   node js/build.mjs --dev   rebuild on every change, inline sourcemaps, not minified
import { build, context } from "esbuild";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
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
exportBundles();

// The scripts that make widgets render in a notebook exported by nbconvert with
// `--template solstice_inspect`, offline: require.js, the widget manager of a static page
// (@jupyter-widgets/html-manager's embed-amd.js) and the AMD module of each widget library
// our views use, as published on npm (what a CDN would otherwise serve at run time). The
// template inlines them (solstice_inspect/report/nbexport.py).
function exportBundles() {
  const out = path.join(root, "solstice_inspect", "static", "export");
  mkdirSync(out, { recursive: true });
  const mod = (p) => readFileSync(path.join(root, "node_modules", p), "utf8");
  // no request for a source map from an exported file
  const strip = (code) => code.replace(/^\/\/# sourceMappingURL=.*$/gm, "");
  // Each module in its own function scope: their top-level names must not meet on the
  // page (without it anywidget fails: "node.fn is not a function"), and an anonymous
  // define() gets the module name the widget state asks for.
  const amd = (name, code) =>
    `(function () {\nvar define = function () {\n` +
    `  var args = Array.prototype.slice.call(arguments);\n` +
    `  if (typeof args[0] !== "string") args.unshift(${JSON.stringify(name)});\n` +
    `  return window.define.apply(this, args);\n};\ndefine.amd = window.define.amd;\n` +
    `${strip(code)}\n}());\n`;
  const files = {
    "require.js": strip(mod("requirejs/require.js")),
    "embed-amd.js": strip(mod("@jupyter-widgets/html-manager/dist/embed-amd.js")),
    // module name -> file: `<name>.module.js`, loaded before embed-amd.js
    "anywidget.module.js": amd("anywidget", mod("anywidget/dist/index.js")),
    "jupyter-cytoscape.module.js": amd("jupyter-cytoscape", mod("jupyter-cytoscape/dist/index.js")),
  };
  for (const [name, code] of Object.entries(files)) writeFileSync(path.join(out, name), code);
  console.log(`export bundles: ${Object.keys(files).join(", ")} -> ${out}`);
}
