#!/usr/bin/env node
// The layering rules of src/, checked over the import graph (static imports, re-exports,
// `import type`, dynamic import() and require() of relative paths):
//   - no import circles;
//   - io/ and math/ import nothing of ours but errors.ts and their own folder;
//   - core/ imports only io/, math/ and errors.ts;
//   - probe/ imports core/, io/, math/; srr/ the same, plus probe/ in srr/pipeline.ts only
//     (the per-candidate probe baseline); monitor/ imports core/, io/, math/, probe/ and srr/
//     (response-list data);
//   - chat/ imports the library below it: core/, io/, math/, probe/, srr/, monitor/ and guard.ts;
//   - nothing in the library (everything but cli/ and tools/) imports cli/ or tools/.
// Usage: node scripts/check-layout.js [srcDir]   (exit 1 and one line per broken rule)
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const IMPORT_RE = /(?:^|[^\w$.])(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']|(?:^|[^\w$.])import\s*["']([^"']+)["']|(?:^|[^\w$.])(?:import|require)\s*\(\s*["']([^"']+)["']\s*\)/gm;

/** Every .ts file under dir, as paths relative to dir with forward slashes. */
function listSources(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) out.push(path.relative(dir, p).split(path.sep).join("/"));
    }
  };
  walk(dir);
  return out.sort();
}

/** The relative imports of a source text (block and line comments removed first). */
function importsOf(text) {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
  const out = [];
  for (const m of code.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec.startsWith(".")) out.push(spec);
  }
  return out;
}

/** Resolves a relative import of `from` against the set of files. */
function resolve(files, from, spec) {
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  for (const c of [base, `${base}.ts`, `${base}/index.ts`]) if (files.has(c)) return c;
  return null;
}

/** { file: [imported files] } for the tree under srcDir. */
function importGraph(srcDir) {
  const list = listSources(srcDir);
  const files = new Set(list);
  const graph = {};
  for (const f of list) {
    graph[f] = [];
    for (const spec of importsOf(fs.readFileSync(path.join(srcDir, f), "utf8"))) {
      const to = resolve(files, f, spec);
      if (to && !graph[f].includes(to)) graph[f].push(to);
    }
  }
  return graph;
}

/** The layer of a file: its top folder, or "root" (index.ts, errors.ts, guard.ts). */
function layerOf(file) {
  const i = file.indexOf("/");
  return i < 0 ? (file === "errors.ts" ? "errors" : "root") : file.slice(0, i);
}

const LIBRARY_LAYERS = new Set(["errors", "root", "core", "io", "math", "probe", "srr", "monitor", "chat"]);
const ALLOWED = {
  errors: [],
  io: ["errors"],
  math: ["errors"],
  core: ["errors", "io", "math"],
  probe: ["errors", "core", "io", "math"],
  srr: ["errors", "core", "io", "math"],
  monitor: ["errors", "core", "io", "math", "probe", "srr"],
  chat: ["errors", "core", "io", "math", "probe", "srr", "monitor"],
  root: ["errors", "core", "io", "math", "probe", "srr", "monitor", "chat"],
  cli: null, // anything
  tools: ["errors", "root", "core", "io", "math", "probe", "srr", "monitor", "chat"],
};

/** Broken rules of a graph, one message each (empty when the layout holds). */
function checkGraph(graph) {
  const problems = [];
  for (const [from, tos] of Object.entries(graph)) {
    const lf = layerOf(from);
    for (const to of tos) {
      const lt = layerOf(to);
      if (lt === lf) continue;
      if (LIBRARY_LAYERS.has(lf) && (lt === "cli" || lt === "tools")) {
        problems.push(`${from} imports ${to}: the library must not import ${lt}/`);
        continue;
      }
      if (lf === "srr" && lt === "probe" && from === "srr/pipeline.ts") continue;
      if (lf === "chat" && to === "guard.ts") continue;
      const allowed = ALLOWED[lf];
      if (allowed && !allowed.includes(lt)) problems.push(`${from} imports ${to}: ${lf}/ may use only ${allowed.join(", ") || "nothing"}`);
    }
  }
  // circles: depth-first search with colours; each circle reported once, from its smallest file
  const state = {};
  const stack = [];
  const seen = new Set();
  const visit = (f) => {
    state[f] = 1;
    stack.push(f);
    for (const to of graph[f] ?? []) {
      if (state[to] === 1) {
        const cycle = stack.slice(stack.indexOf(to));
        const start = cycle.indexOf([...cycle].sort()[0]);
        const key = [...cycle.slice(start), ...cycle.slice(0, start)].join(" -> ");
        if (!seen.has(key)) {
          seen.add(key);
          problems.push(`import circle: ${key} -> ${cycle[start]}`);
        }
      } else if (!state[to]) visit(to);
    }
    stack.pop();
    state[f] = 2;
  };
  for (const f of Object.keys(graph).sort()) if (!state[f]) visit(f);
  return problems;
}

module.exports = { importGraph, importsOf, checkGraph, layerOf };

if (require.main === module) {
  const dir = path.resolve(process.argv[2] ?? path.join(__dirname, "..", "src"));
  const problems = checkGraph(importGraph(dir));
  for (const p of problems) console.error(p);
  if (problems.length) process.exit(1);
  console.log(`layout ok: ${Object.keys(importGraph(dir)).length} files, no circles, every import follows the layers`);
}
