// Copy the npm packages the web UI uses into the package's static dir (git-ignored).
import { cpSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "atoll", "web", "static", "vendor");
const assets = {
  "htmx.min.js": "node_modules/htmx.org/dist/htmx.min.js",
  "pico.min.css": "node_modules/@picocss/pico/css/pico.min.css",
  "uPlot.iife.min.js": "node_modules/uplot/dist/uPlot.iife.min.js",
  "uPlot.min.css": "node_modules/uplot/dist/uPlot.min.css",
};
mkdirSync(out, { recursive: true });
for (const [name, src] of Object.entries(assets)) {
  cpSync(join(here, src), join(out, name));
}
console.log(`copied ${Object.keys(assets).length} assets to ${out}`);
