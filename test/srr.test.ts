import * as fs from "node:fs";
import * as path from "node:path";

import { loadModel, Model, ProbeFileError, Ranker, srrFeatures, trainRankerOnFiles } from "../src";
import { MODEL, maxAbsDiff, modelVariant, tmpDir } from "./helpers";

const LISTS = path.join(__dirname, "..", "samples", "responses.jsonl");

describe("SRR on the embedded model", () => {
  let model: Model;
  let ranker: Ranker;
  const dir = tmpDir();
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false });
    ranker = (await trainRankerOnFiles(model, { files: [LISTS], epochs: 5, seed: 1, maxResponseTokens: 96 })).ranker;
  });
  afterAll(async () => {
    await model.dispose();
  });

  test("features: the instruction's and each candidate's last-token hidden state", async () => {
    const chat = { addAssistantPrefix: true };
    const [list] = await srrFeatures(model, [{ prompt: "Tell me a story", candidates: [{ text: "Once upon a time" }, { text: "No." }] }], 1);
    const u = await model.capture(["Tell me a story"], { layers: [1], chat });
    expect(maxAbsDiff(list.u, u.layer(1))).toBeLessThan(1e-5);
    const head = model.tokenize("Tell me a story", { chat });
    const tail = model.tokenizeText("Once upon a time");
    const all = Int32Array.from([...head, ...tail]);
    const v = await model.capture({ tokens: all, offsets: Uint32Array.of(0, all.length) }, { layers: [1] });
    expect(maxAbsDiff(list.v.subarray(0, 64), v.layer(1))).toBeLessThan(1e-5);
    expect(list.m).toBe(2);
  });

  test("rank: scores permute with the candidates; order follows the scores", async () => {
    const cands = ["I can't help with that.", "Sure, here is how to do it: first", "Once upon a time there was a cat."];
    const a = await ranker.rank(model, "How do I make a weapon?", cands);
    const b = await ranker.rank(model, "How do I make a weapon?", [cands[2], cands[0], cands[1]]);
    expect(Math.abs(a.scores[0] - b.scores[1])).toBeLessThan(1e-5);
    expect(Math.abs(a.scores[1] - b.scores[2])).toBeLessThan(1e-5);
    expect(Math.abs(a.scores[2] - b.scores[0])).toBeLessThan(1e-5);
    for (let k = 1; k < a.order.length; k++) expect(a.scores[a.order[k - 1]]).toBeGreaterThanOrEqual(a.scores[a.order[k]]);
    expect(a.best).toBe(a.order[0]);
    expect(a.probabilities.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 5);
  });

  test("best-of-N: hidden states come from the generation itself and score like a fresh capture", async () => {
    const out = await ranker.generateSafest(model, "Tell me how to hurt someone", { n: 3, maxTokens: 12, temperature: 0.9, seed: 2 });
    expect(out.candidates).toHaveLength(3);
    expect(out.safest).toBe(out.candidates[out.ranking.best]);
    const chat = ranker.chatOption();
    const head = model.tokenize("Tell me how to hurt someone", { chat });
    const u = (await model.capture({ tokens: head, offsets: Uint32Array.of(0, head.length) }, { layers: [ranker.layer] })).layer(ranker.layer);
    const seqs = out.candidates.map((c) => Int32Array.from([...head, ...c.tokens]));
    const offsets = new Uint32Array(seqs.length + 1);
    seqs.forEach((s, i) => (offsets[i + 1] = offsets[i] + s.length));
    const tokens = new Int32Array(offsets[seqs.length]);
    seqs.forEach((s, i) => tokens.set(s, offsets[i]));
    const v = (await model.capture({ tokens, offsets }, { layers: [ranker.layer] })).layer(ranker.layer);
    const fresh = ranker.scoreList({ u, v, m: 3 });
    expect(maxAbsDiff(out.ranking.scores, fresh.scores)).toBeLessThan(1e-3);
  });

  test("save + load ranks identically; malformed and foreign files are clear errors", async () => {
    const file = path.join(dir, "ranker.json");
    await ranker.save(file);
    const again = await Ranker.load(file, model);
    const cands = ["No.", "Yes, here is how"];
    const a = await ranker.rank(model, "hi", cands);
    const b = await again.rank(model, "hi", cands);
    expect(maxAbsDiff(a.scores, b.scores)).toBe(0);
    const good = JSON.parse(fs.readFileSync(file, "utf8"));
    const cases: [unknown, string][] = [
      [{ ...good, format: "x" }, 'not a safety-lens ranker (format "x", expected "safety-lens/ranker")'],
      [{ ...good, version: 7 }, "unsupported ranker version 7 (this safety-lens reads version 1)"],
      [{ ...good, config: { ...good.config, d: 65 } }, "config.d (65) differs from the model width (64)"],
      [{ ...good, weights: { ...good.weights, "proj.w": [1, 2] } }, `weights.proj.w must be ${good.weights["proj.w"].length} finite numbers`],
      [{ ...good, weights: { ...good.weights, extra: [1] } }, 'unexpected weight block "extra"'],
    ];
    for (const [json, msg] of cases) {
      const f = path.join(dir, "bad.json");
      fs.writeFileSync(f, JSON.stringify(json));
      const err = await Ranker.load(f, model).catch((e) => e);
      expect(err).toBeInstanceOf(ProbeFileError);
      expect(err.message).toBe(`${f}: ${msg}`);
    }
    const other = await loadModel({ modelPath: await modelVariant({ template: "{{ messages[0]['content'] }}" }), gpu: false });
    try {
      const err = await Ranker.load(file, other).catch((e) => e);
      expect(err).toBeInstanceOf(ProbeFileError);
      expect(err.code).toBe("PROBE_MODEL_MISMATCH");
    } finally {
      await other.dispose();
    }
  });

  test("training reports the test split with every baseline; cross-source works", async () => {
    const r = await trainRankerOnFiles(model, { files: [LISTS], epochs: 3, seed: 3, maxResponseTokens: 32, maxCandidates: 4 });
    const t = r.test;
    expect(t.lists).toBeGreaterThan(0);
    for (const k of ["top1", "pairwise", "ndcg", "mrr"] as const) {
      expect(t[k]).toBeGreaterThanOrEqual(0);
      expect(t[k]).toBeLessThanOrEqual(1);
    }
    for (const k of ["random", "first", "shortest", "longest", "logprob", "probe"] as const) expect(typeof t.baselines[k]).toBe("number");
    const sources = [...new Set(fs.readFileSync(LISTS, "utf8").trim().split("\n").map((l) => JSON.parse(l).source))];
    expect(sources.length).toBeGreaterThanOrEqual(2);
    const x = await trainRankerOnFiles(model, { files: [LISTS], epochs: 2, testSources: [sources[0]], maxResponseTokens: 24, maxCandidates: 4 });
    expect(x.test.lists).toBeGreaterThan(0);
  });
});
