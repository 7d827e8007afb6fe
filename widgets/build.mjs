// Bundles src/index.js and what it imports into panel.js, the one ES module anywidget loads
// (it loads _esm from a blob: URL, where relative imports do not resolve). Readable, not minified.
//
//   npm run build                       write panel.js (commit it with the sources)
//   npm run build -- --outfile=PATH     write PATH instead (tests/test_widget.py compares)
//   npm run watch                       rebuild on every change; with ANYWIDGET_HMR=1 the
//                                       notebook's panel reloads by itself

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const BANNER = `// GENERATED FILE, do not edit: \`npm run build\` in widgets/ bundles widgets/src/ (entry
// src/index.js) into this file with esbuild. Edit the sources, then rebuild and commit both.`;

const args = process.argv.slice(2);
const outfile = args.find((a) => a.startsWith("--outfile="))?.slice("--outfile=".length) ?? "panel.js";
const options = {
  absWorkingDir: dirname(fileURLToPath(import.meta.url)), // module paths in the bundle: src/...
  entryPoints: ["src/index.js"],
  outfile,
  bundle: true,
  format: "esm",
  charset: "utf8",
  banner: { js: BANNER },
  logLevel: "warning",
};

if (args.includes("--watch")) {
  const context = await esbuild.context({ ...options, logLevel: "info" });
  await context.watch();
} else {
  await esbuild.build(options);
}
