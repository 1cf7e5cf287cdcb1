import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { dropOverlap, readSuiteDir } from "../src/io/suites";
import { loadPromptFiles } from "../src/probe/data";

const STARTER = join(__dirname, "..", "data", "starter");
const PROMPTS = join(STARTER, "prompts.jsonl");
const SHARED = join(__dirname, "..", "..", "shared", "data"); // ../shared beside the checkout, as in CI
const PERMISSIVE = ["MIT", "Apache-2.0", "CC-BY-4.0"];

interface Row {
  source: string;
  licence: string;
  safe: number;
  unsafe: number;
  kinds: string;
  languages: string[];
  licenceFiles: string[];
}

interface StarterRecord {
  id: string;
  text: string;
  label: "safe" | "unsafe";
  source: string;
  category: string | null;
  lang?: string;
  kind: string;
  base?: string;
}

let table: Row[];
let total: { safe: number; unsafe: number };
let records: StarterRecord[];

beforeAll(async () => {
  const readme = await readFile(join(STARTER, "README.md"), "utf8");
  const section = readme.split("## Composition")[1].split("\n## ")[0];
  const lines = section.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| source"));
  const cells = lines.map((l) => l.replace(/^\||\|$/g, "").split("|").map((c) => c.trim()));
  const totalCells = cells.find((c) => c[0] === "**total**")!;
  total = { safe: Number(totalCells[2].replace(/\*/g, "")), unsafe: Number(totalCells[3].replace(/\*/g, "")) };
  table = cells
    .filter((c) => c[0] !== "**total**")
    .map((c) => ({
      source: c[0],
      licence: c[1],
      safe: Number(c[2]),
      unsafe: Number(c[3]),
      kinds: c[4],
      languages: c[5].split(", "),
      licenceFiles: [...c[6].matchAll(/`([^`]+)`/g)].map((m) => m[1]),
    }));
  records = (await readFile(PROMPTS, "utf8"))
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as StarterRecord);
});

test("loads with the library's loader: no malformed line, duplicate or conflicting text", async () => {
  const { records: loaded, stats } = await loadPromptFiles([PROMPTS]);
  expect(stats).toEqual({ read: records.length, duplicates: 0, conflicts: 0, perFile: { [PROMPTS]: records.length } });
  expect(loaded.length).toBeGreaterThan(2000);
  expect(new Set(records.map((r) => r.id)).size).toBe(records.length);
});

test("composition matches the README table; about balanced", () => {
  expect(table.map((r) => r.source)).toEqual([...new Set(records.map((r) => r.source))]);
  for (const row of table) {
    const mine = records.filter((r) => r.source === row.source);
    expect([row.source, row.safe, row.unsafe]).toEqual([row.source, mine.filter((r) => r.label === "safe").length, mine.filter((r) => r.label === "unsafe").length]);
    const langs = new Set(mine.map((r) => r.lang ?? "en"));
    expect([row.source, [...row.languages].sort()]).toEqual([row.source, [...langs].sort()]);
  }
  const safe = records.filter((r) => r.label === "safe").length;
  expect(total).toEqual({ safe, unsafe: records.length - safe });
  expect(Math.abs(safe / records.length - 0.5)).toBeLessThan(0.05);
});

test("every source is permissively licensed, none CC BY-NC, and its licence file is shipped", async () => {
  for (const row of table) {
    expect([row.source, PERMISSIVE.includes(row.licence)]).toEqual([row.source, true]);
    expect(row.licenceFiles.length).toBeGreaterThan(0);
    for (const f of row.licenceFiles) expect([f, existsSync(join(STARTER, f))]).toEqual([f, true]);
  }
  const shipped = (await readdir(join(STARTER, "LICENSES"))).map((f) => `LICENSES/${f}`).sort();
  expect(shipped).toEqual([...new Set(table.flatMap((r) => r.licenceFiles))].sort());
  for (const nc of ["alpaca_instructions", "alpaca_eval", "alpaca"]) expect(records.some((r) => r.source === nc)).toBe(false);
  expect(table.some((r) => /NC/i.test(r.licence))).toBe(false);
});

test("record fields: kind, lang on non-English prompts only, base on jailbreaks only; under 2 MB", async () => {
  const kinds = new Set(["moderation", "jailbreak", "harmful-request", "benign-request"]);
  for (const r of records) {
    expect(kinds.has(r.kind)).toBe(true);
    expect(r.lang === undefined || (/^[a-z]{2}$/.test(r.lang) && r.lang !== "en")).toBe(true);
    expect(typeof r.base === "string").toBe(r.kind === "jailbreak");
  }
  expect((await stat(PROMPTS)).size).toBeLessThan(2 * 1024 * 1024);
  expect(Math.max(...records.map((r) => r.text.length))).toBeLessThanOrEqual(2500);
});

test("scripts/build-starter-data.py rebuilds the shipped files byte for byte from ../shared/data", async () => {
  const out = await mkdtemp(join(tmpdir(), "safety-lens-starter-"));
  try {
    const script = join(__dirname, "..", "scripts", "build-starter-data.py");
    const { stdout } = await promisify(execFile)("python3", [script, SHARED, "--out", out]);
    expect(stdout).toContain(`| **total** | | **${total.safe}** | **${total.unsafe}** | | | |`);
    const files = ["prompts.jsonl", "README.md", ...(await readdir(join(STARTER, "LICENSES"))).map((f) => join("LICENSES", f))];
    expect((await readdir(join(out, "LICENSES"))).length).toBe(files.length - 2);
    for (const f of files) expect([f, (await readFile(join(out, f))).equals(await readFile(join(STARTER, f)))]).toEqual([f, true]);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test("evaluation sets in ../shared stay clean: only the documented halves overlap", async () => {
  const training = records.flatMap((r) => (r.base ? [r.text, r.base] : [r.text]));
  const read = async (folder: string) => (await readSuiteDir(join(SHARED, folder))).sets;
  // AdvBench and HarmBench: no starter text or wrapped behaviour is one of theirs.
  for (const set of [...(await read("advbench")), ...(await read("harmbench"))]) {
    expect([set.name, dropOverlap(set, training).records.length]).toEqual([set.name, set.records.length]);
  }
  // JailbreakBench: exactly the behaviours the starter's jailbreaks wrap (all JailbreakBench's own).
  const [jbb] = await read("jbb_behaviors");
  const wrapped = new Set(records.filter((r) => r.base).map((r) => r.base));
  expect(jbb.records.length - dropOverlap(jbb, training).records.length).toBe(wrapped.size);
  // OpenAI moderation: the starter's half goes, the evaluation half stays.
  const [oai] = await read("openai_moderation");
  const left = dropOverlap(oai, training).records;
  const mine = records.filter((r) => r.source === "openai_moderation").length;
  expect(left.length).toBeGreaterThanOrEqual(oai.records.length - mine - 20); // the published file repeats some texts
  expect(left.length).toBeLessThanOrEqual(oai.records.length - mine);
  expect(left.filter((r) => r.label === "unsafe").length).toBeGreaterThan(250);
});
