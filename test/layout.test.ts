/**
 * The layering of src/ (see scripts/check-layout.js): the real tree follows it, and
 * the checker catches each kind of broken rule.
 */
import * as path from "node:path";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { checkGraph, importGraph, importsOf } = require("../scripts/check-layout.js") as {
  checkGraph: (g: Record<string, string[]>) => string[];
  importGraph: (dir: string) => Record<string, string[]>;
  importsOf: (text: string) => string[];
};

test("src/ has no import circles and every import follows the layers", () => {
  const graph = importGraph(path.join(__dirname, "..", "src"));
  expect(Object.keys(graph).length).toBeGreaterThan(40);
  expect(graph["core/model.ts"]).toContain("core/generate.ts");
  expect(graph["srr/pipeline.ts"]).toContain("probe/probe.ts");
  expect(checkGraph(graph)).toEqual([]);
});

test("the checker reads every import form and ignores comments", () => {
  const text = [
    'import { a } from "./a";',
    'import type { B } from "../b";',
    'export { c } from "./c";',
    'import "./side-effect";',
    'const d = await import("./d");',
    'const e = require("./e");',
    '// import { f } from "./f";',
    '/* import { g } from "./g"; */',
    'import { readFile } from "node:fs";',
  ].join("\n");
  expect(importsOf(text)).toEqual(["./a", "../b", "./c", "./side-effect", "./d", "./e"]);
});

test("the checker fails on each kind of broken rule", () => {
  expect(checkGraph({ "core/model.ts": ["cli/util.ts"], "cli/util.ts": [] })).toEqual([
    "core/model.ts imports cli/util.ts: the library must not import cli/",
  ]);
  expect(checkGraph({ "probe/probe.ts": ["tools/bench.ts"], "tools/bench.ts": [] })).toEqual([
    "probe/probe.ts imports tools/bench.ts: the library must not import tools/",
  ]);
  expect(checkGraph({ "io/jsonl.ts": ["core/model.ts"], "core/model.ts": [] })).toEqual(["io/jsonl.ts imports core/model.ts: io/ may use only errors"]);
  expect(checkGraph({ "core/model.ts": ["probe/probe.ts"], "probe/probe.ts": [] })).toEqual([
    "core/model.ts imports probe/probe.ts: core/ may use only errors, io, math",
  ]);
  expect(checkGraph({ "srr/ranker.ts": ["probe/probe.ts"], "srr/pipeline.ts": ["probe/probe.ts"], "probe/probe.ts": [] })).toEqual([
    "srr/ranker.ts imports probe/probe.ts: srr/ may use only errors, core, io, math",
  ]);
  expect(checkGraph({ "core/a.ts": ["core/b.ts"], "core/b.ts": ["core/c.ts"], "core/c.ts": ["core/a.ts"] })).toEqual([
    "import circle: core/a.ts -> core/b.ts -> core/c.ts -> core/a.ts",
  ]);
});
