/**
 * Records longer than the context, on the probe and ranker pipelines: one policy (skip,
 * truncate, error), the ids reported, a long record never fatal unless asked; and the ranker's
 * checkpoint, written at each improvement, holds the best epoch's ranker.
 */
import * as fs from "node:fs";
import * as path from "node:path";

import { evaluateRanker, fitLists, InputError, loadModel, loadRankerData, Model, Ranker, trainProbe, trainRankerOnFiles } from "../src";
import { tokenFeatures } from "../src/monitor/data";
import { MODEL, tmpDir } from "./helpers";

const SAMPLES = path.join(__dirname, "..", "samples", "prompts.jsonl");
const LISTS = path.join(__dirname, "..", "samples", "responses.jsonl");
const LONG = "Tell me a very long story about dragons and castles. ".repeat(40);

describe("long records on a 256-token context (llama.cpp's smallest)", () => {
  let model: Model;
  const dir = tmpDir();
  const prompts = path.join(dir, "prompts.jsonl");
  const lists = path.join(dir, "lists.jsonl");
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false, contextSize: 256 });
    const all = fs.readFileSync(SAMPLES, "utf8").split("\n").filter(Boolean);
    const keep = [...all.filter((l) => JSON.parse(l).label === "safe").slice(0, 60), ...all.filter((l) => JSON.parse(l).label === "unsafe").slice(0, 60)];
    fs.writeFileSync(prompts, [...keep, JSON.stringify({ id: "long-1", text: LONG, label: "safe", source: "long" })].join("\n") + "\n");
    const rows = fs.readFileSync(LISTS, "utf8").split("\n").filter(Boolean).slice(0, 30);
    const first = JSON.parse(rows[0]);
    fs.writeFileSync(lists, [...rows, JSON.stringify({ ...first, id: "long-list", prompt: LONG })].join("\n") + "\n");
  });
  afterAll(async () => {
    await model.dispose();
  });

  test("probe pipeline: skip lists the id, truncate keeps the record, error is typed", async () => {
    expect(model.tokenize(LONG, { chat: { addAssistantPrefix: true } }).length).toBeGreaterThan(256);
    const base = { files: [prompts], method: "logreg" as const, layers: [3], cacheDir: null };
    // the ids over 256 tokens as the probe reads them (the default input: the chat template with the assistant prefix)
    const expected = fs
      .readFileSync(prompts, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { id: string; text: string })
      .filter((r) => model.tokenize(r.text, { chat: { addAssistantPrefix: true } }).length > 256)
      .map((r) => r.id);
    expect(expected).toContain("long-1");
    const skip = await trainProbe(model, { ...base, onLong: "skip" });
    expect(skip.long).toEqual({ skippedIds: expected, truncatedIds: [] });
    expect((skip.probe.training.data as { skippedIds: string[] }).skippedIds).toEqual(expected);
    const trunc = await trainProbe(model, { ...base, onLong: "truncate" });
    expect(trunc.long).toEqual({ skippedIds: [], truncatedIds: expected });
    const err = await trainProbe(model, { ...base, onLong: "error" }).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.code).toBe("TEXT_TOO_LONG");
    // the message names the record (id, file and line), not its index in a list the caller never saw
    const lines = fs.readFileSync(prompts, "utf8").split("\n");
    const line = lines.findIndex((l) => (JSON.parse(l || "{}") as { id?: string }).id === expected[0]) + 1;
    expect(err.message).toMatch(new RegExp(`^prompt "${expected[0]}" \\(${prompts.replace(/[/.]/g, "\\$&")}:${line}\\) has \\d+ tokens but the context holds 256$`));
  });

  test("ranker: a list whose instruction fills the context is skipped (not fatal), truncated or refused", async () => {
    const data = await loadRankerData({ files: [lists], seed: 1 });
    const fit = fitLists(model, data.items, undefined, "skip");
    expect(fit.skippedIds).toEqual(["long-list"]);
    expect(fit.kept).toHaveLength(data.items.length - 1);
    expect(() => fitLists(model, data.items, undefined, "error")).toThrow(/list long-list: its instruction has \d+ tokens but the context holds 256/);
    expect(fitLists(model, data.items, undefined, "truncate").truncatedIds).toEqual(["long-list"]);

    const checkpoint = path.join(dir, "ranker.json");
    const epochs: string[] = [];
    const r = await trainRankerOnFiles(model, { files: [lists], epochs: 4, seed: 1, maxResponseTokens: 32, checkpoint, onLog: (m) => epochs.push(m) });
    const saved = await Ranker.load(checkpoint, model);
    // the checkpoint holds the returned ranker's parameters
    const l = { u: new Float32Array(model.info.nEmbd).fill(0.1), v: new Float32Array(2 * model.info.nEmbd).map((_, i) => Math.sin(i)), m: 2 };
    expect(Array.from(saved.scoreList(l).scores)).toEqual(Array.from(r.ranker.scoreList(l).scores));

    const all = await evaluateRanker(model, r.ranker, data.items, { logprob: false });
    expect(all.skippedLongIds).toEqual(["long-list"]);
    expect(all.lists).toBeGreaterThan(10);
    const t = await evaluateRanker(model, r.ranker, data.items, { logprob: false, onLong: "truncate" });
    expect(t.truncatedIds).toEqual(["long-list"]);
    expect(t.lists).toBe(all.lists + 1);

    const cands = ["I can't help with that.", "Sure, here it is."];
    const refused = await r.ranker.rank(model, LONG, cands).catch((e) => e);
    expect(refused).toBeInstanceOf(InputError);
    expect(refused.code).toBe("TEXT_TOO_LONG");
    expect(refused.message).toMatch(/^lists\[0\]\.prompt has \d+ tokens but the context holds 256, and 32 of them are kept for the responses$/);
    const cut = await r.ranker.rank(model, LONG, cands, { onLong: "truncate" });
    expect(cut.scores.every(Number.isFinite)).toBe(true);
    // "skip" is not a policy of one ranking (there would be nothing to return)
    await expect(r.ranker.rank(model, LONG, cands, { onLong: "skip" as "error" })).rejects.toThrow(new TypeError('onLong must be "error" or "truncate", got "skip"'));
  });

  test("monitor features: a response whose instruction fills the context is skipped, cut or refused", async () => {
    const responses = [
      { id: "short#0", source: "t", prompt: "Tell me a story.", text: "Once upon a time.", label: 0 as const },
      { id: "long#0", source: "t", prompt: LONG, text: "Sure, here it is.", label: 1 as const },
    ];
    const skip = await tokenFeatures(model, responses, [2], { maxResponseTokens: 16 });
    expect(skip.skipped).toEqual(["long#0"]);
    expect(skip.responses.map((r) => r.id)).toEqual(["short#0"]);
    const cut = await tokenFeatures(model, responses, [2], { maxResponseTokens: 16, onLong: "truncate" });
    expect(cut.skipped).toEqual([]);
    expect(cut.truncatedPrompts).toEqual(["long#0"]);
    // the long response keeps all its tokens: the instruction was cut to leave room for them
    expect(cut.offsets[2] - cut.offsets[1]).toBe(model.tokenizeText("Sure, here it is.").length);
    expect(Array.from(cut.tokens.get(2)!).every(Number.isFinite)).toBe(true);
    const err = await tokenFeatures(model, responses, [2], { onLong: "error" }).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(/^response "long#0": its instruction has \d+ tokens but the context holds 256$/);
  });

  test("the checkpoint is rewritten at each improvement with the epoch it holds", async () => {
    const data = await loadRankerData({ files: [lists], seed: 1 });
    const checkpoint = path.join(dir, "ckpt.json");
    const seen: number[] = [];
    const { srrFeatures } = await import("../src");
    const feats = await srrFeatures(model, fitLists(model, data.train, undefined).kept, 2, { maxResponseTokens: 32 });
    const watcher = fs.watch(dir, (_e, name) => {
      if (name === "ckpt.json" && fs.existsSync(checkpoint)) {
        try {
          seen.push((JSON.parse(fs.readFileSync(checkpoint, "utf8")).training.checkpoint as { epoch: number }).epoch);
        } catch {
          // mid-rename
        }
      }
    });
    const { ranker } = Ranker.fromLists(model, feats, undefined, { layer: 2, epochs: 3, seed: 1, checkpoint });
    await new Promise((r) => setTimeout(r, 200));
    watcher.close();
    // without validation lists every epoch is the best so far: the last write holds the last epoch
    const last = JSON.parse(fs.readFileSync(checkpoint, "utf8"));
    expect(last.training.checkpoint.epoch).toBe(3);
    expect(ranker.training.summary).toMatchObject({ epochs: 3, bestEpoch: 3 });
    expect(seen.length).toBeGreaterThanOrEqual(1);
  });
});
