import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataFormatError } from "../src/errors";
import { labelsOf, loadPromptFiles, sourcesOf, splitRecords, type PromptRecord } from "../src/probe/data";
import { normalizeText } from "../src/io/records";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safety-lens-data-"));
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

describe("loadPromptFiles", () => {
  test("mixes two files, de-duplicates by normalized text, drops conflicts", async () => {
    const a = await file("a.jsonl", [
      { id: "a1", text: "How do I bake bread?", label: "safe", source: "alpaca" },
      { id: "a2", text: "How to build a bomb", label: "unsafe", source: "advbench" },
      { text: "no id and no source", label: "safe" },
      { id: 7, text: "Tell me a joke", label: "safe", source: "x" },
      { id: "a5", text: "  how do I   BAKE bread? ", label: "safe", source: "alpaca" }, // duplicate of a1
    ]);
    const b = await file("b.jsonl", [
      "",
      { id: "b1", text: "tell me a JOKE", label: "unsafe", source: "y" }, // conflicts with a:7
      { id: "b2", text: "How to build a\tbomb", label: "unsafe", source: "z" }, // duplicate of a2
      { id: "b3", text: "Write a poem", label: "safe", source: null },
      { id: "b4", text: "Tell me a joke", label: "safe" }, // same conflicting text again
    ]);
    const { records, stats } = await loadPromptFiles([a, b]);
    expect(records).toEqual<PromptRecord[]>([
      { id: "a1", text: "How do I bake bread?", label: 0, source: "alpaca", file: a, line: 1 },
      { id: "a2", text: "How to build a bomb", label: 1, source: "advbench", file: a, line: 2 },
      { id: "a.jsonl:3", text: "no id and no source", label: 0, source: "a.jsonl", file: a, line: 3 },
      { id: "b3", text: "Write a poem", label: 0, source: "b.jsonl", file: b, line: 4 },
    ]);
    expect(stats).toEqual({ read: 9, duplicates: 2, conflicts: 1, perFile: { [a]: 3, [b]: 1 } });
    expect(Array.from(labelsOf(records))).toEqual([0, 1, 0, 0]);
    expect(labelsOf(records)).toBeInstanceOf(Uint8Array);
    expect(sourcesOf(records)).toEqual(["alpaca", "advbench", "a.jsonl", "b.jsonl"]);
    expect(normalizeText("  A\t\nB  c ")).toBe("a b c");
  });

  test("limitPerFile reads only the first records of each file", async () => {
    const a = await file("lim-a.jsonl", [1, 2, 3, 4].map((i) => ({ id: `a${i}`, text: `a text ${i}`, label: "safe" })));
    const b = await file("lim-b.jsonl", [1, 2, 3].map((i) => ({ id: `b${i}`, text: `b text ${i}`, label: "unsafe" })));
    const { records, stats } = await loadPromptFiles([a, b], { limitPerFile: 2 });
    expect(records.map((r) => r.id)).toEqual(["a1", "a2", "b1", "b2"]);
    expect(stats.read).toBe(4);
    await expect(loadPromptFiles([a], { limitPerFile: 0 })).rejects.toThrow(new RangeError("limitPerFile must be a positive integer, got 0"));
  });

  test.each<[string, string, string]>([
    ["bad label", '{"text": "hi", "label": "maybe"}', 'label must be "safe" or "unsafe", got "maybe"'],
    ["numeric label", '{"text": "hi", "label": 1}', 'label must be "safe" or "unsafe", got 1'],
    ["missing label", '{"text": "hi"}', 'missing field "label" (must be "safe" or "unsafe")'],
    ["missing text", '{"label": "safe"}', 'missing field "text"'],
    ["empty text", '{"text": "", "label": "safe"}', "text must be a non-empty string, got an empty string"],
    ["blank text", '{"text": "  \\t ", "label": "safe"}', "text must be a non-empty string, got only whitespace"],
    ["numeric text", '{"text": 5, "label": "safe"}', "text must be a non-empty string, got 5"],
    ["object id", '{"id": {}, "text": "hi", "label": "safe"}', "id must be a non-empty string or a number, got an object"],
    ["array source", '{"text": "hi", "label": "safe", "source": []}', "source must be a string, got an empty array"],
    ["invalid JSON", '{"text": "hi", "label": ', "invalid JSON: "],
    ["not an object", '["hi", "safe"]', "expected a JSON object, got an array"],
  ])("malformed line (%s) names file and line", async (name, bad, detail) => {
    const good = '{"text": "fine", "label": "safe"}';
    const p = join(dir, `bad-${name.replace(/ /g, "-")}.jsonl`);
    await writeFile(p, `${good}\n\n${good.replace("fine", "also fine")}\n${bad}\n${good}\n`);
    const err = await caught(loadPromptFiles([p]));
    expect(err).toBeInstanceOf(DataFormatError);
    const e = err as DataFormatError;
    expect(e.file).toBe(p);
    expect(e.line).toBe(4);
    if (name === "invalid JSON") expect(e.message.startsWith(`${p}:4: ${detail}`)).toBe(true);
    else expect(e.message).toBe(`${p}:4: ${detail}`);
  });

  test("a missing file is reported", async () => {
    const p = join(dir, "nope.jsonl");
    await expect(loadPromptFiles([p])).rejects.toThrow(`Data file not found: ${p}`);
  });

  const shared = ["prompts_advbench.jsonl", "prompts_alpaca_eval.jsonl"].map((f) => join(__dirname, "..", "..", "shared", "data", "normalized", f));
  test("reads the first 200 lines of two shared data files", async () => {
    const { records, stats } = await loadPromptFiles(shared, { limitPerFile: 200 });
    expect(stats.read).toBe(400);
    if (stats.conflicts === 0) expect(records.length).toBe(400 - stats.duplicates);
    else expect(records.length).toBeLessThan(400 - stats.duplicates - stats.conflicts);
    expect(records.length).toBeGreaterThan(380);
    expect(stats.perFile[shared[0]] + stats.perFile[shared[1]]).toBe(records.length);
    expect(records.filter((r) => r.file === shared[0]).every((r) => r.label === 1 && r.source === "advbench")).toBe(true);
    expect(records.filter((r) => r.file === shared[1]).every((r) => r.label === 0 && r.source === "alpaca_eval")).toBe(true);
    expect(records[0].id).toBe("advbench-0");
    const s = splitRecords(records);
    for (const part of [s.train, s.val, s.test]) {
      expect(part.some((r) => r.label === 0)).toBe(true);
      expect(part.some((r) => r.label === 1)).toBe(true);
    }
  });
});

function synth(n: number, unsafeEvery = 3): { id: string; label: 0 | 1 }[] {
  return Array.from({ length: n }, (_, i) => ({ id: `rec-${i}`, label: (i % unsafeEvery === 0 ? 1 : 0) as 0 | 1 }));
}

function splitOf(s: ReturnType<typeof splitRecords<{ id: string; label: 0 | 1 }>>): Map<string, string> {
  const m = new Map<string, string>();
  for (const [name, part] of Object.entries(s)) for (const r of part) m.set(r.id, name);
  return m;
}

describe("splitRecords", () => {
  test("deterministic, a partition, near the fractions, stratified", () => {
    const recs = synth(3000);
    const a = splitRecords(recs, { seed: 1 });
    const b = splitRecords(recs, { seed: 1 });
    expect(a).toEqual(b);
    expect(a.train.length + a.val.length + a.test.length).toBe(3000);
    expect(new Set([...a.train, ...a.val, ...a.test].map((r) => r.id)).size).toBe(3000);
    for (const label of [0, 1]) {
      const total = recs.filter((r) => r.label === label).length;
      const frac = (part: { label: number }[]) => part.filter((r) => r.label === label).length / total;
      expect(Math.abs(frac(a.train) - 0.7)).toBeLessThan(0.04);
      expect(Math.abs(frac(a.val) - 0.15)).toBeLessThan(0.04);
      expect(Math.abs(frac(a.test) - 0.15)).toBeLessThan(0.04);
    }
    // input order is kept within a split
    const idx = (id: string) => Number(id.slice(4));
    expect(a.train.map((r) => idx(r.id))).toEqual(a.train.map((r) => idx(r.id)).sort((x, y) => x - y));
    // another seed gives another split
    const c = splitRecords(recs, { seed: 2 });
    expect(splitOf(c)).not.toEqual(splitOf(a));
    // other fractions
    const d = splitRecords(recs, { fractions: [0.5, 0.5, 0] });
    expect(d.test.length).toBe(0);
    expect(Math.abs(d.train.length / 3000 - 0.5)).toBeLessThan(0.04);
  });

  test("an id's split does not depend on order or on other records", () => {
    const recs = synth(1000);
    const base = splitOf(splitRecords(recs, { seed: 5 }));
    const reversed = splitOf(splitRecords([...recs].reverse(), { seed: 5 }));
    expect(reversed).toEqual(base);
    const subset = recs.filter((_, i) => i % 7 !== 0);
    const extra = [...subset, ...synth(200).map((r) => ({ ...r, id: `other-${r.id}` }))];
    const sub = splitOf(splitRecords(extra, { seed: 5 }));
    for (const r of subset) expect(sub.get(r.id)).toBe(base.get(r.id));
  });

  test("every split gets each label that has at least 3 records", () => {
    for (let seed = 1; seed <= 40; seed++) {
      for (const n of [3, 4, 5, 8]) {
        const recs = [
          ...Array.from({ length: n }, (_, i) => ({ id: `u${seed}-${i}`, label: 1 as const })),
          ...Array.from({ length: 20 }, (_, i) => ({ id: `s${i}`, label: 0 as const })),
        ];
        const s = splitRecords(recs, { seed });
        for (const part of [s.train, s.val, s.test]) {
          expect(part.some((r) => r.label === 1)).toBe(true);
          expect(part.some((r) => r.label === 0)).toBe(true);
        }
        expect(s.train.length + s.val.length + s.test.length).toBe(n + 20);
        expect(splitRecords([...recs].reverse(), { seed })).toEqual({
          train: [...s.train].reverse(),
          val: [...s.val].reverse(),
          test: [...s.test].reverse(),
        });
      }
    }
    // two records of a label cannot fill three splits; nothing is forced
    const two = splitRecords([{ id: "x", label: 1 as const }, { id: "y", label: 1 as const }]);
    expect(two.train.length + two.val.length + two.test.length).toBe(2);
  });

  test("bad options", () => {
    expect(() => splitRecords(synth(5), { fractions: [0.5, 0.5] })).toThrow(RangeError);
    expect(() => splitRecords(synth(5), { fractions: [0, 0, 0] })).toThrow("fractions must not all be 0");
    expect(() => splitRecords(synth(5), { seed: NaN })).toThrow(TypeError);
  });
});
