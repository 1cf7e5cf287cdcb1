import { Activations, loadModel, Model } from "../src";
import { embed } from "../src/core/internal";
import { MODEL, STORIES, maxAbsDiff } from "./helpers";

describe("capture on the embedded model", () => {
  let model: Model;
  let small: Model; // tiny batches: long texts span several llama_decode calls
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false });
    small = await loadModel({ modelPath: MODEL, gpu: false, batchSize: 8, sequences: 4 });
  });
  afterAll(async () => {
    await model.dispose();
    await small.dispose();
  });

  test("info describes the model", () => {
    expect(model.info.arch).toBe("llama");
    expect(model.info.nLayer).toBe(5);
    expect(model.info.nEmbd).toBe(64);
    expect(model.info.nVocab).toBe(512);
    expect(model.info.nCtxTrain).toBe(2048);
    expect(model.info.chatTemplate).toBeNull();
    expect(model.info.fingerprint).toMatch(/^gguf-[0-9a-f]{16}$/);
    expect(model.info.backend).toBe("cpu");
    expect(model.info.threads).toBeGreaterThanOrEqual(1);
  });

  test("shapes and views", async () => {
    const acts = await model.capture(STORIES, { layers: [0, 3, "final"] });
    expect(acts).toBeInstanceOf(Activations);
    expect(acts.rows).toBe(STORIES.length);
    const l3 = acts.layer(3);
    expect(l3).toBeInstanceOf(Float32Array);
    expect(l3.length).toBe(STORIES.length * 64);
    expect(acts.get(3, 2)).toEqual(l3.subarray(128, 192));
    expect(() => acts.layer(4)).toThrow(new RangeError('layer 4 was not captured (captured: 0, 3, "final")'));
    // real, finite, non-trivial values
    expect(l3.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(l3, new Float32Array(l3.length))).toBeGreaterThan(0.1);
  });

  test("batched capture equals one text at a time (and across batch splits)", async () => {
    const layers = [0, 2, 4, "final"] as const;
    const batched = await model.capture(STORIES, { layers: [...layers] });
    const split = await small.capture(STORIES, { layers: [...layers] });
    for (let i = 0; i < STORIES.length; i++) {
      const single = await model.capture([STORIES[i]], { layers: [...layers] });
      for (const l of layers) {
        expect(maxAbsDiff(batched.get(l, i), single.get(l, 0))).toBeLessThan(1e-4);
        expect(maxAbsDiff(split.get(l, i), single.get(l, 0))).toBeLessThan(1e-4);
      }
    }
    // the long text really is longer than small's batch
    expect(model.tokenize(STORIES[2]).length).toBeGreaterThan(8 * 4);
  });

  test("early exit gives the same values as a full pass", async () => {
    for (const pool of ["last", "mean", "tokens"] as const) {
      const early = await model.capture(STORIES, { layers: [1], pool, earlyExit: true });
      const full = await model.capture(STORIES, { layers: [1], pool, earlyExit: false });
      expect(maxAbsDiff(early.layer(1), full.layer(1))).toBe(0);
    }
  });

  test('"final" equals llama.cpp\'s own embeddings output', async () => {
    const acts = await model.capture(STORIES, { layers: ["final"] });
    const ref = await embed(model, STORIES);
    expect(maxAbsDiff(acts.layer("final"), ref)).toBeLessThan(1e-4);
    const chat = await model.capture(STORIES, { layers: ["final"], chat: true });
    const chatRef = await embed(model, STORIES, { chat: true });
    expect(maxAbsDiff(chat.layer("final"), chatRef)).toBeLessThan(1e-4);
  });

  test("layer 0 differs from layer 3", async () => {
    const acts = await model.capture(STORIES, { layers: [0, 3] });
    expect(maxAbsDiff(acts.layer(0), acts.layer(3))).toBeGreaterThan(0.5);
  });

  test("mean pooling equals the mean of the tokens; last equals the last token row", async () => {
    const layers = [1, 4, "final"] as const;
    const tokens = await model.capture(STORIES, { layers: [...layers], pool: "tokens" });
    const mean = await model.capture(STORIES, { layers: [...layers], pool: "mean" });
    const last = await model.capture(STORIES, { layers: [...layers], pool: "last" });
    expect(tokens.rows).toBe(tokens.offsets[STORIES.length]);
    for (const l of layers) {
      for (let i = 0; i < STORIES.length; i++) {
        const rows = tokens.get(l, i);
        const n = tokens.tokenCounts[i];
        expect(rows.length).toBe(n * 64);
        const m = new Float32Array(64);
        for (let r = 0; r < n; r++) for (let e = 0; e < 64; e++) m[e] += rows[r * 64 + e] / n;
        expect(maxAbsDiff(mean.get(l, i), m)).toBeLessThan(1e-5);
        expect(maxAbsDiff(last.get(l, i), rows.subarray((n - 1) * 64))).toBeLessThan(1e-5);
      }
    }
  });

  test("chat input: template rendering, assistant prefix, messages", async () => {
    const rendered = model.formatText("Tell me a story", { chat: true });
    expect(rendered.text).toBe("<|im_start|>user\nTell me a story<|im_end|>\n<|im_start|>assistant\n");
    const noPrefix = model.formatText("Tell me a story", { chat: { addAssistantPrefix: false } });
    expect(noPrefix.text).toBe("<|im_start|>user\nTell me a story<|im_end|>\n");
    const sys = model.formatText([{ role: "user", content: "hi" }], { chat: { systemPrompt: "Be safe." } });
    expect(sys.text.startsWith("<|im_start|>system\nBe safe.<|im_end|>\n")).toBe(true);
    const a = await model.capture([[{ role: "user", content: "Tell me a story" }]], { layers: [2] });
    const b = await model.capture(["Tell me a story"], { layers: [2], chat: true });
    const raw = await model.capture(["Tell me a story"], { layers: [2] });
    expect(maxAbsDiff(a.layer(2), b.layer(2))).toBe(0);
    expect(maxAbsDiff(a.layer(2), raw.layer(2))).toBeGreaterThan(0.01);
    // one BOS token, not two
    const toks = model.tokenize("Tell me a story", { chat: true });
    expect(toks[0]).toBe(1);
    expect(toks[1]).not.toBe(1);
  });

  test("progress reports reach JS and end at the totals", async () => {
    const seen: number[] = [];
    let last = { textsDone: 0, texts: 0, tokensDone: 0, tokens: 0 };
    await small.capture(STORIES, {
      layers: [0],
      onProgress: (p) => {
        seen.push(p.textsDone);
        last = p;
      },
    });
    expect(seen.length).toBeGreaterThan(1);
    expect(last.textsDone).toBe(STORIES.length);
    expect(last.tokensDone).toBe(last.tokens);
    expect([...seen]).toEqual([...seen].sort((x, y) => x - y));
  });

  test("the event loop keeps running during a capture", async () => {
    const many = Array.from({ length: 400 }, (_, i) => `${STORIES[i % STORIES.length]} ${i}`);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await small.capture(many, { layers: [4] });
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
  });
});
