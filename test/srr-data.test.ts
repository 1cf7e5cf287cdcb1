import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataFormatError } from "../src/errors";
import { normalizeText } from "../src/io/records";
import { hasBothLabels, loadResponseFiles, splitByInstruction, splitBySource, type RankItem } from "../src/srr/data";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safety-lens-srr-data-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, rows: (Record<string, unknown> | string)[]): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, rows.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n") + "\n");
  return p;
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

const S = (text: string) => ({ text, label: "safe" });
const U = (text: string) => ({ text, label: "unsafe" });

describe("loadResponseFiles", () => {
  test("reads lists, drops duplicate and conflicting texts, counts stats", async () => {
    const a = await file("a.jsonl", [
      { id: "a1", prompt: "How do I pick a lock?", source: "src1", category: "x", candidates: [{ ...S("No."), model: "m" }, U("Sure: ..."), S("No."), S("Ask a locksmith.")] },
      { id: 7, prompt: "Write malware", source: "src1", candidates: [U("here it is"), U("here it is"), U("ok")] },
      "",
      { prompt: "no id, no source", candidates: [S("fine")] },
    ]);
    const b = await file("b.jsonl", [
      { id: "b1", prompt: "Conflicting", source: "src2", candidates: [S("same"), U("same"), S("other"), U("bad")] },
      { id: "b2", prompt: "All conflict", source: "src2", candidates: [S("x"), U("x")] },
    ]);
    const { items, stats } = await loadResponseFiles([a, b]);
    expect(items).toEqual<RankItem[]>([
      {
        id: "a1",
        prompt: "How do I pick a lock?",
        source: "src1",
        candidates: [
          { text: "No.", safe: true },
          { text: "Sure: ...", safe: false },
          { text: "Ask a locksmith.", safe: true },
        ],
        file: a,
        line: 1,
      },
      { id: "7", prompt: "Write malware", source: "src1", candidates: [{ text: "here it is", safe: false }, { text: "ok", safe: false }], file: a, line: 2 },
      { id: "a.jsonl:4", prompt: "no id, no source", source: "a.jsonl", candidates: [{ text: "fine", safe: true }], file: a, line: 4 },
      { id: "b1", prompt: "Conflicting", source: "src2", candidates: [{ text: "other", safe: true }, { text: "bad", safe: false }], file: b, line: 1 },
    ]);
    expect(stats).toEqual({
      read: 5,
      lists: 4,
      candidates: 8,
      duplicates: 2,
      conflicts: 2,
      withBoth: 2,
      onlySafe: 1,
      onlyUnsafe: 1,
      perSource: { src1: 2, "a.jsonl": 1, src2: 1 },
    });
    expect(items.map(hasBothLabels)).toEqual([true, false, false, true]);
    expect(hasBothLabels({ candidates: [] })).toBe(false);
  });

  test("limitPerFile, maxChars and maxCandidates", async () => {
    const a = await file("lim.jsonl", [
      { id: "l1", prompt: "p1", candidates: [S("abcdefgh"), U("abcdefXY"), S("short"), U(`ab😀cd`)] },
      { id: "l2", prompt: "p2", candidates: [S("x")] },
      { id: "l3", prompt: "p3", candidates: [S("y")] },
    ]);
    const lim = await loadResponseFiles([a], { limitPerFile: 2 });
    expect(lim.items.map((i) => i.id)).toEqual(["l1", "l2"]);
    expect(lim.stats.read).toBe(2);

    // truncation to 6 code units: "abcdef" twice with both labels -> conflict; the emoji pair is not split
    const tr = await loadResponseFiles([a], { maxChars: 6, limitPerFile: 1 });
    expect(tr.items[0].candidates).toEqual([
      { text: "short", safe: true },
      { text: "ab😀cd", safe: false },
    ]);
    expect(tr.stats.conflicts).toBe(1);
    const tr2 = await loadResponseFiles([a], { maxChars: 3, limitPerFile: 1 });
    expect(tr2.items[0].candidates.map((c) => c.text)).toEqual(["sho", "ab"]);

    for (const [k, v] of [["limitPerFile", 0], ["maxCandidates", 1.5], ["maxChars", -1]] as const) {
      await expect(loadResponseFiles([a], { [k]: v })).rejects.toThrow(new RangeError(`${k} must be a positive integer, got ${v}`));
    }
  });

  test("maxCandidates keeps a deterministic subset with both labels, in file order", async () => {
    const rows = [];
    for (let r = 0; r < 30; r++) {
      const cands = [];
      const nSafe = 1 + (r % 4); // 1..4 safe among 20
      for (let i = 0; i < 20; i++) cands.push(i % 5 === 0 && Math.floor(i / 5) < nSafe ? S(`safe ${r}-${i}`) : U(`unsafe ${r}-${i}`));
      rows.push({ id: `r${r}`, prompt: `prompt ${r}`, candidates: cands });
    }
    rows.push({ id: "only", prompt: "only unsafe", candidates: [U("a"), U("b"), U("c")] });
    const p = await file("many.jsonl", rows);
    const full = await loadResponseFiles([p]);
    for (const max of [2, 3, 8]) {
      const a = await loadResponseFiles([p], { maxCandidates: max });
      const b = await loadResponseFiles([p], { maxCandidates: max });
      expect(a).toEqual(b);
      expect(a.stats.candidates).toBe(30 * max + Math.min(3, max));
      expect(a.stats.withBoth).toBe(30);
      a.items.forEach((item, k) => {
        expect(item.candidates.length).toBe(Math.min(max, full.items[k].candidates.length));
        // a subsequence of the full list
        const order = item.candidates.map((c) => full.items[k].candidates.findIndex((f) => f.text === c.text));
        expect(order.every((o) => o >= 0)).toBe(true);
        expect(order).toEqual([...order].sort((x, y) => x - y));
      });
    }
    // a label gets about its share: 4 safe of 20, 10 kept -> 2 safe
    const ten = await loadResponseFiles([p], { maxCandidates: 10 });
    expect(ten.items[3].candidates.filter((c) => c.safe).length).toBe(2);
    // one candidate: cannot keep both
    const one = await loadResponseFiles([p], { maxCandidates: 1 });
    expect(one.items.every((i) => i.candidates.length === 1)).toBe(true);
    expect(one.stats.withBoth).toBe(0);
  });

  test.each<[string, string, string]>([
    ["missing prompt", '{"candidates": [{"text": "a", "label": "safe"}]}', 'missing field "prompt"'],
    ["empty prompt", '{"prompt": " ", "candidates": [{"text": "a", "label": "safe"}]}', "prompt must be a non-empty string, got only whitespace"],
    ["numeric prompt", '{"prompt": 3, "candidates": [{"text": "a", "label": "safe"}]}', "prompt must be a non-empty string, got 3"],
    ["missing candidates", '{"prompt": "p"}', 'missing field "candidates"'],
    ["empty candidates", '{"prompt": "p", "candidates": []}', "candidates must be a non-empty array, got an empty array"],
    ["object candidates", '{"prompt": "p", "candidates": {}}', "candidates must be a non-empty array, got an object"],
    ["string candidate", '{"prompt": "p", "candidates": ["hi"]}', 'candidates[0] must be an object, got "hi"'],
    [
      "bad label",
      '{"prompt": "p", "candidates": [{"text": "a", "label": "safe"}, {"text": "b", "label": "safe"}, {"text": "c", "label": "unsafe"}, {"text": "d", "label": "ok"}]}',
      'candidates[3].label must be "safe" or "unsafe", got "ok"',
    ],
    ["missing label", '{"prompt": "p", "candidates": [{"text": "a"}]}', 'candidates[0].label must be "safe" or "unsafe", got nothing'],
    ["label case", '{"prompt": "p", "candidates": [{"text": "a", "label": "Safe"}]}', 'candidates[0].label must be "safe" or "unsafe", got "Safe"'],
    ["numeric label", '{"prompt": "p", "candidates": [{"text": "a", "label": 0}]}', 'candidates[0].label must be "safe" or "unsafe", got 0'],
    ["empty text", '{"prompt": "p", "candidates": [{"text": "", "label": "safe"}]}', "candidates[0].text must be a non-empty string, got an empty string"],
    ["missing text", '{"prompt": "p", "candidates": [{"label": "safe"}]}', "candidates[0].text must be a non-empty string, got nothing"],
    ["null text", '{"prompt": "p", "candidates": [{"text": null, "label": "safe"}]}', "candidates[0].text must be a non-empty string, got null"],
    ["object id", '{"id": {}, "prompt": "p", "candidates": [{"text": "a", "label": "safe"}]}', "id must be a non-empty string or a number, got an object"],
    ["array source", '{"source": [], "prompt": "p", "candidates": [{"text": "a", "label": "safe"}]}', "source must be a string, got an empty array"],
    ["invalid JSON", '{"prompt": "p", ', "invalid JSON: "],
    ["not an object", "[1, 2]", "expected a JSON object, got an array"],
  ])("malformed line (%s) names file and line", async (name, bad, detail) => {
    const good = '{"prompt": "fine", "candidates": [{"text": "ok", "label": "safe"}]}';
    const p = join(dir, `bad-${name.replace(/ /g, "-")}.jsonl`);
    await writeFile(p, `${good}\n\n${good}\n${bad}\n${good}\n`);
    const err = await caught(loadResponseFiles([p]));
    expect(err).toBeInstanceOf(DataFormatError);
    const e = err as DataFormatError;
    expect(e.file).toBe(p);
    expect(e.line).toBe(4);
    if (name === "invalid JSON") expect(e.message.startsWith(`${p}:4: ${detail}`)).toBe(true);
    else expect(e.message).toBe(`${p}:4: ${detail}`);
  });

  test("a missing file is reported", async () => {
    const p = join(dir, "nope.jsonl");
    await expect(loadResponseFiles([p])).rejects.toThrow(`Data file not found: ${p}`);
  });

  const NORMALIZED = join(__dirname, "..", "..", "shared", "data", "normalized"); // ../shared beside the checkout, as in CI
  const shared = ["responses_jbb_artifacts.jsonl", "responses_refusal_direction_completions.jsonl"].map((f) => join(NORMALIZED, f));
  test("reads the first 30 lines of two shared data files", async () => {
    const { items, stats } = await loadResponseFiles(shared, { limitPerFile: 30 });
    expect(stats.read).toBe(60);
    expect(items.length).toBe(60);
    expect(stats.perSource).toEqual({ jbb_artifacts: 30, refusal_direction_completions: 30 });
    expect(stats.withBoth + stats.onlySafe + stats.onlyUnsafe).toBe(60);
    expect(stats.withBoth).toBeGreaterThan(50);
    expect(stats.candidates).toBe(items.reduce((n, i) => n + i.candidates.length, 0));
    expect(items[0].id).toBe("jbb_artifacts-0");
    expect(items[30].file).toBe(shared[1]);
    expect(items[30].line).toBe(1);
    // the two files answer the same JBB goals: a split by instruction keeps them together
    const s = splitByInstruction(items);
    const where = new Map<string, string>();
    for (const [name, part] of Object.entries(s)) {
      for (const it of part) {
        const k = normalizeText(it.prompt);
        expect(where.get(k) ?? name).toBe(name);
        where.set(k, name);
      }
    }
    expect(where.size).toBeLessThan(60);
    const bySource = splitBySource(items, ["jbb_artifacts"], ["refusal_direction_completions"]);
    expect(bySource.train.length).toBe(30);
    expect(bySource.test.length).toBe(30);
    expect(bySource.sharedPrompts).toBeGreaterThan(0);
    const truncated = await loadResponseFiles(shared, { limitPerFile: 5, maxChars: 200, maxCandidates: 6 });
    expect(truncated.items.every((i) => i.candidates.length <= 6 && i.candidates.every((c) => c.text.length <= 200))).toBe(true);
  });

  test("the shipped samples/responses.jsonl", async () => {
    const p = join(__dirname, "..", "samples", "responses.jsonl");
    const { items, stats } = await loadResponseFiles([p]);
    expect(items.length).toBeGreaterThanOrEqual(30);
    expect(stats.read).toBe(items.length);
    expect(stats.withBoth).toBe(items.length);
    expect(items.every(hasBothLabels)).toBe(true);
    expect(stats.duplicates + stats.conflicts).toBe(0);
    expect(Object.keys(stats.perSource).sort()).toEqual(["gptfuzz", "jbb_artifacts"]);
    expect(items.every((i) => i.candidates.length <= 8 && i.candidates.every((c) => c.text.length <= 400))).toBe(true);
    expect(new Set(items.map((i) => i.id)).size).toBe(items.length);
    const s = splitByInstruction(items);
    expect(s.train.length + s.val.length + s.test.length).toBe(items.length);
    expect(s.train.length).toBeGreaterThan(0);
  });
});

function synthItems(n: number): { id: string; prompt: string; source: string }[] {
  return Array.from({ length: n }, (_, i) => ({ id: `it-${i}`, prompt: `Instruction number ${i}`, source: i % 2 ? "odd" : "even" }));
}

describe("splitByInstruction", () => {
  test("deterministic, a partition, near the fractions, input order kept", () => {
    const items = synthItems(3000);
    const a = splitByInstruction(items, { seed: 1 });
    expect(splitByInstruction(items, { seed: 1 })).toEqual(a);
    expect(splitByInstruction(items)).toEqual(a);
    expect(a.train.length + a.val.length + a.test.length).toBe(3000);
    expect(new Set([...a.train, ...a.val, ...a.test].map((r) => r.id)).size).toBe(3000);
    expect(Math.abs(a.train.length / 3000 - 0.7)).toBeLessThan(0.04);
    expect(Math.abs(a.val.length / 3000 - 0.15)).toBeLessThan(0.04);
    expect(Math.abs(a.test.length / 3000 - 0.15)).toBeLessThan(0.04);
    const idx = (id: string) => Number(id.slice(3));
    expect(a.val.map((r) => idx(r.id))).toEqual(a.val.map((r) => idx(r.id)).sort((x, y) => x - y));
    const c = splitByInstruction(items, { seed: 2 });
    expect(c.test.map((r) => r.id)).not.toEqual(a.test.map((r) => r.id));
    const d = splitByInstruction(items, { fractions: [1, 1, 0] });
    expect(d.test.length).toBe(0);
    expect(Math.abs(d.train.length / 3000 - 0.5)).toBeLessThan(0.04);
  });

  test("the same normalized prompt never lands in two splits; order and other items do not matter", () => {
    const items = synthItems(400);
    const variants = items.map((it, i) => ({ ...it, id: `v-${i}`, prompt: `  ${it.prompt.toUpperCase()}\n`, source: "other" }));
    const all = [...items, ...variants];
    for (const seed of [1, 2, 3]) {
      const s = splitByInstruction(all, { seed });
      const where = new Map<string, string>();
      for (const [name, part] of Object.entries(s)) {
        for (const it of part) {
          const k = normalizeText(it.prompt);
          expect(where.get(k) ?? name).toBe(name);
          where.set(k, name);
        }
      }
      expect(where.size).toBe(400);
      const alone = splitByInstruction(items.filter((_, i) => i % 3 === 0).reverse(), { seed });
      for (const [name, part] of Object.entries(alone)) for (const it of part) expect(where.get(normalizeText(it.prompt))).toBe(name);
    }
  });

  test("bad options", () => {
    expect(() => splitByInstruction(synthItems(5), { fractions: [0.5, 0.5] })).toThrow(RangeError);
    expect(() => splitByInstruction(synthItems(5), { fractions: [0, 0, 0] })).toThrow("fractions must not all be 0");
    expect(() => splitByInstruction(synthItems(5), { seed: NaN })).toThrow(TypeError);
  });
});

describe("splitBySource", () => {
  const items = [
    { id: "1", prompt: "A", source: "s1" },
    { id: "2", prompt: "B", source: "s2" },
    { id: "3", prompt: "a ", source: "s3" },
    { id: "4", prompt: "C", source: "s3" },
    { id: "5", prompt: "D", source: "s1" },
  ];
  test("train and test by source, others left out, shared prompts counted or dropped", () => {
    const s = splitBySource(items, ["s1"], ["s3"]);
    expect(s.train.map((i) => i.id)).toEqual(["1", "5"]);
    expect(s.test.map((i) => i.id)).toEqual(["3", "4"]);
    expect(s.sharedPrompts).toBe(1);
    const d = splitBySource(items, ["s1", "s2"], ["s3"], { dropSharedPrompts: true });
    expect(d.train.map((i) => i.id)).toEqual(["1", "2", "5"]);
    expect(d.test.map((i) => i.id)).toEqual(["4"]);
    expect(d.sharedPrompts).toBe(1);
  });
  test("a source in both lists, or one with no lists, is an error", () => {
    expect(() => splitBySource(items, ["s1", "s2"], ["s2"])).toThrow(new RangeError("sources in both train and test: s2"));
    expect(() => splitBySource(items, ["s1"], ["nope"])).toThrow(new RangeError("no lists for source(s) nope (present: s1, s2, s3)"));
  });
});
