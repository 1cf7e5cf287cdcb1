/**
 * The activation cache in bounded memory: misses captured chunk by chunk (rows per capture call
 * and the size of its outputs observed through a spy), one layer read at a time, a real SIGKILL
 * mid-fill keeping the finished chunks, and the layer-by-layer sweep and trainGuard (MLPM fitted
 * one layer at a time) giving what the all-layers-in-memory algorithms give on the same features.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

import type { LayerSpec } from "../src/core/activations";
import { loadModel, type Model } from "../src/core/model";
import { ActivationCache, CACHE_CHUNK_ROWS } from "../src/probe/cache";
import { metricsAt } from "../src/probe/metrics";
import { featuresFor, loadAndSplit, openLayerSource, subset, sweepLayers } from "../src/probe/pipeline";
import { DEFAULT_PROBE_INPUT, Probe } from "../src/probe/probe";
import { trainGuard } from "../src/probe/train-guard";
import type { PromptRecord } from "../src/probe/data";
import { MODEL, STORIES, maxAbsDiff, tmpDir } from "./helpers";

const ROOT = path.join(__dirname, "..");
const SAMPLES = path.join(ROOT, "samples", "prompts.jsonl");
const STARTER = path.join(ROOT, "data", "starter", "prompts.jsonl");
const LAYERS: LayerSpec[] = [0, 2, "final"];

let model: Model;
const dir = tmpDir("safety-lens-cache-stream-");
beforeAll(async () => {
  model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
});
afterAll(async () => {
  await model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});
afterEach(() => jest.restoreAllMocks());

/** Records every model.capture call: texts, layers, and the floats of its largest output array. */
function spyCapture(): { texts: string[]; layers: LayerSpec[]; floats: number }[] {
  const calls: { texts: string[]; layers: LayerSpec[]; floats: number }[] = [];
  const orig = model.capture.bind(model);
  jest.spyOn(model, "capture").mockImplementation(async (inputs, o) => {
    const acts = await orig(inputs, o);
    calls.push({ texts: inputs as string[], layers: o.layers, floats: Math.max(...acts.layers.map((l) => acts.layer(l).length)) });
    return acts;
  });
  return calls;
}

const layerDir = (cacheDir: string, l: LayerSpec) => path.join(cacheDir, model.info.fingerprint, `layer-${String(l)}`);
const logLines = (cacheDir: string, l: LayerSpec) => {
  const f = path.join(layerDir(cacheDir, l), "index.log");
  return fs.existsSync(f) ? fs.readFileSync(f, "utf8").split("\n").filter(Boolean).length : 0;
};
/** Direct captures of `texts` in calls of `chunk` texts (the batches the cache used), concatenated per layer. */
async function chunked(texts: string[], chunk: number, layers = LAYERS): Promise<Map<LayerSpec, Float32Array>> {
  const parts: Map<LayerSpec, Float32Array>[] = [];
  for (let c = 0; c < texts.length; c += chunk) {
    const acts = await model.capture(texts.slice(c, c + chunk), { layers });
    parts.push(new Map(layers.map((l) => [l, acts.layer(l)])));
  }
  return new Map(layers.map((l) => [l, Float32Array.from(parts.flatMap((p) => [...p.get(l)!]))]));
}

/** max |a - b| / max |b|: what a capture in other batches changes (float rounding in llama.cpp). */
function relDiff(a: Float32Array, b: Float32Array): number {
  return maxAbsDiff(a, b) / Math.max(...b.map(Math.abs));
}

const shards = (cacheDir: string, l: LayerSpec) => fs.readdirSync(layerDir(cacheDir, l)).filter((f) => f.startsWith("shard-"));

test("ensure captures chunk by chunk and returns no features; layer() reads one layer, equal to a direct capture", async () => {
  const cacheDir = path.join(dir, "chunks");
  const cache = new ActivationCache(cacheDir);
  const texts = Array.from({ length: 30 }, (_, i) => `${STORIES[i % STORIES.length]} (${i})`);
  const calls = spyCapture();
  const progress: number[] = [];
  const r = await cache.ensure(model, texts, { layers: LAYERS, chat: false, chunkRows: 8, onProgress: (p) => progress.push(p.textsDone) });
  expect(r).toEqual({ hits: 0, misses: 30, warnings: [] });
  // bounded: at most 8 texts per capture call, every layer in the same call, outputs of 8 x nEmbd floats
  expect(calls.map((c) => c.texts.length)).toEqual([8, 8, 8, 6]);
  expect(calls.flatMap((c) => c.texts)).toEqual(texts);
  for (const c of calls) expect(c.layers).toEqual(LAYERS);
  expect(Math.max(...calls.map((c) => c.floats))).toBe(8 * model.info.nEmbd);
  expect(progress[progress.length - 1]).toBe(30);
  // one shard per chunk and layer; the log folded into index.json at the end
  for (const l of LAYERS) {
    expect(shards(cacheDir, l).length).toBe(4);
    expect(logLines(cacheDir, l)).toBe(0);
    expect(Object.keys(JSON.parse(fs.readFileSync(path.join(layerDir(cacheDir, l), "index.json"), "utf8")).entries).length).toBe(30);
  }
  calls.length = 0;
  const direct = await model.capture(texts, { layers: LAYERS, pool: "last" });
  const same = await chunked(texts, 8);
  calls.length = 0;
  const d = model.info.nEmbd;
  const loaded = new Map<LayerSpec, Float32Array>();
  for (const l of LAYERS) {
    const one = await cache.layer(model, texts, l, { chat: false });
    expect(one.hits).toBe(30);
    expect(one.features.rows).toBe(30);
    expect(one.features.data).toEqual(same.get(l)); // what was captured, bit for bit
    expect(relDiff(one.features.data, direct.layer(l))).toBeLessThan(1e-6); // one call of all texts: other batches
    loaded.set(l, one.features.data);
  }
  expect(await cache.ensure(model, texts, { layers: LAYERS, chat: false })).toEqual({ hits: 30, misses: 0, warnings: [] });
  const two = await cache.features(model, [texts[3], texts[29]], { layers: LAYERS, chat: false });
  for (const l of LAYERS) expect(two.layers.get(l)!.data).toEqual(Float32Array.from([...loaded.get(l)!.subarray(3 * d, 4 * d), ...loaded.get(l)!.subarray(29 * d, 30 * d)]));
  expect(calls.length).toBe(0);

  // a shard that went missing is captured again by layer() (that layer only), with a warning
  fs.unlinkSync(path.join(layerDir(cacheDir, 2), shards(cacheDir, 2)[0]));
  const again = await cache.layer(model, texts, 2, { chat: false });
  expect(again.misses).toBe(8);
  expect(again.warnings.length).toBe(1);
  expect(calls.map((c) => [c.texts.length, c.layers])).toEqual([[8, [2]]]);
  expect(again.features.data).toEqual(same.get(2));
});

test("an unwritable cache: ensure stops after the first failed chunk, layer() still returns the features", async () => {
  const file = path.join(dir, "a-file");
  fs.writeFileSync(file, "x");
  const cache = new ActivationCache(path.join(file, "cache"));
  const texts = STORIES.slice(0, 4);
  const calls = spyCapture();
  const r = await cache.ensure(model, texts, { layers: [1, 3], chat: false, chunkRows: 2 });
  expect(r.misses).toBe(4);
  expect(r.warnings.map((w) => w.slice(0, 34))).toEqual(["activation cache: could not store ", "activation cache: could not store "]);
  expect(calls.length).toBe(1); // the second chunk could be stored nowhere: not captured
  const one = await cache.layer(model, texts, 3, { chat: false, chunkRows: 2 });
  expect(one.warnings.length).toBe(1);
  expect(one.features.data).toEqual((await chunked(texts, 2, [3])).get(3));
});

test("a fill killed with SIGKILL keeps its finished chunks: the rerun captures only the rest", async () => {
  const cacheDir = path.join(dir, "killed");
  const texts = fs.readFileSync(STARTER, "utf8").split("\n").filter(Boolean).slice(0, 48).map((l) => JSON.parse(l).text as string);
  const textsFile = path.join(dir, "texts.json");
  fs.writeFileSync(textsFile, JSON.stringify(texts));
  const script = path.join(dir, "fill.js");
  fs.writeFileSync(
    script,
    `const lib = require(${JSON.stringify(path.join(ROOT, "dist", "index.js"))});
(async () => {
  const model = await lib.loadModel({ modelPath: ${JSON.stringify(MODEL)}, gpu: false, threads: 1 });
  const texts = JSON.parse(require("node:fs").readFileSync(${JSON.stringify(textsFile)}, "utf8"));
  await new lib.ActivationCache(${JSON.stringify(cacheDir)}).ensure(model, texts, { layers: ${JSON.stringify(LAYERS)}, chat: false, chunkRows: 4 });
  await model.dispose();
})();`,
  );
  const child = spawn(process.execPath, [script], { stdio: "ignore" });
  let exited = false;
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (logLines(cacheDir, "final") >= 2) {
        clearInterval(t);
        child.kill("SIGKILL");
        resolve();
      }
    }, 5);
    child.on("exit", () => {
      exited = true;
      clearInterval(t);
      resolve();
    });
    setTimeout(() => reject(new Error("the fill never got going")), 60_000).unref();
  });
  await new Promise((r) => child.on("close", r));
  expect(exited).toBe(true);
  const done = LAYERS.map((l) => logLines(cacheDir, l));
  const kept = Math.min(...done); // chunks stored at every layer
  expect(kept).toBeGreaterThanOrEqual(2);
  expect(Math.max(...done)).toBeLessThan(12); // killed mid-fill, not after it
  expect(fs.existsSync(path.join(layerDir(cacheDir, "final"), "index.json"))).toBe(false); // never compacted

  const calls = spyCapture();
  const r = await new ActivationCache(cacheDir).ensure(model, texts, { layers: LAYERS, chat: false, chunkRows: 4 });
  expect(r.hits).toBe(4 * kept);
  expect(r.misses).toBe(48 - 4 * kept);
  expect(calls.flatMap((c) => c.texts)).toEqual(texts.slice(4 * kept));
  // the chunk some layers finished before the kill is captured for the other layers only
  done.forEach((n, li) => {
    if (n > kept) expect(calls[0].layers).not.toContain(LAYERS[li]);
  });
  for (const l of LAYERS) expect(logLines(cacheDir, l)).toBe(0);
  calls.length = 0;
  const same = await chunked(texts, 4);
  for (const l of LAYERS) {
    // chunks from the killed run and from the rerun, bit for bit what a direct capture of them gives
    expect((await new ActivationCache(cacheDir).layer(model, texts, l, { chat: false })).features.data).toEqual(same.get(l));
  }
}, 60_000);

test("sweepLayers fills the cache once and reads one layer at a time; its rows equal the all-layers sweep", async () => {
  const cacheDir = path.join(dir, "sweep");
  const ensure = jest.spyOn(ActivationCache.prototype, "ensure");
  const layer = jest.spyOn(ActivationCache.prototype, "layer");
  const features = jest.spyOn(ActivationCache.prototype, "features");
  const calls = spyCapture();
  const r = await sweepLayers(model, { files: [SAMPLES], cacheDir, method: "lpm" });
  const layers: LayerSpec[] = [0, 1, 2, 3, 4, "final"];
  expect(ensure).toHaveBeenCalledTimes(1);
  expect(ensure.mock.calls[0][2].layers).toEqual(layers);
  expect(layer.mock.calls.map((c) => c[2])).toEqual(layers);
  expect(features).not.toHaveBeenCalled();
  // 284 prompts: two capture calls of at most CACHE_CHUNK_ROWS texts, every layer in each
  expect(calls.map((c) => c.texts.length)).toEqual([CACHE_CHUNK_ROWS, 284 - CACHE_CHUNK_ROWS]);
  expect(Math.max(...calls.map((c) => c.floats))).toBe(CACHE_CHUNK_ROWS * model.info.nEmbd);

  // the sweep as it was (every layer in memory, copies of the rows), on the same cached features
  const { splits } = await loadAndSplit({ files: [SAMPLES] }, model);
  const all = [...splits.train, ...splits.val, ...splits.test];
  const fs_ = await featuresFor(model, all, layers, { cacheDir });
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const [tr, va, te] = [range(0, splits.train.length), range(splits.train.length, splits.train.length + splits.val.length), range(splits.train.length + splits.val.length, all.length)];
  const y = (rows: number[]) => Uint8Array.from(rows.map((i) => fs_.labels[i]));
  for (const [k, l] of layers.entries()) {
    const f = fs_.features.get(l)!;
    const p = Probe.train({ method: "lpm", layers: [l], train: { features: [subset(f, tr)], labels: y(tr) }, val: { features: [subset(f, va)], labels: y(va) }, threshold: "best-f1", model });
    expect(r.rows[k].val).toEqual(metricsAt(p.scoreFeatures([subset(f, va)]), y(va), p.threshold));
    expect(r.rows[k].test).toEqual(metricsAt(p.scoreFeatures([subset(f, te)]), y(te), p.threshold));
  }
});

test("trainGuard reads one layer at a time; MLPM fitted layer by layer equals Probe.train on all layers in memory", async () => {
  const cacheDir = path.join(dir, "guard");
  const layer = jest.spyOn(ActivationCache.prototype, "layer");
  const t = await trainGuard(model, { starter: false, files: [SAMPLES], cacheDir });
  expect(layer.mock.calls.map((c) => c[2])).toEqual([0, 1, 2, 3, 4, "final", t.bestLayer]); // the sweep, then the best layer once
  expect(t.candidates.map((c) => c.method)).toEqual(["mlpm", "lpm", "logreg"]);

  const { splits } = await loadAndSplit({ files: [SAMPLES], input: DEFAULT_PROBE_INPUT }, model);
  const all = [...splits.train, ...splits.val, ...splits.test];
  const fs_ = await featuresFor(model, all, [0, 1, 2, 3, 4, "final"], { cacheDir });
  const nTrain = splits.train.length;
  const nVal = splits.val.length;
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const rows = { train: range(0, nTrain), val: range(nTrain, nTrain + nVal), test: range(nTrain + nVal, all.length) };
  const y = (r: number[]) => Uint8Array.from(r.map((i) => fs_.labels[i]));
  const part = (which: keyof typeof rows, ls: LayerSpec[]) => ls.map((l) => subset(fs_.features.get(l)!, rows[which]));
  for (const c of t.candidates) {
    const ref = Probe.train({ method: c.method, layers: c.layers, train: { features: part("train", c.layers), labels: y(rows.train) }, val: { features: part("val", c.layers), labels: y(rows.val) }, threshold: { fpr: 0.05 }, model });
    expect(c.val).toEqual(metricsAt(ref.scoreFeatures(part("val", c.layers)), y(rows.val), ref.threshold));
    expect(c.test).toEqual(metricsAt(ref.scoreFeatures(part("test", c.layers)), y(rows.test), ref.threshold));
    if (c.method === t.probe.method) {
      expect(t.probe.threshold).toBe(ref.threshold);
      expect(t.probe.toJSON().weights).toEqual(ref.toJSON().weights);
    }
  }
  // MLPM alone: the probe it returns is the in-memory one, weight for weight
  const m = await trainGuard(model, { starter: false, files: [SAMPLES], cacheDir, methods: ["mlpm"] });
  const ref = Probe.train({ method: "mlpm", layers: [0, 1, 2, 3, 4], train: { features: part("train", [0, 1, 2, 3, 4]), labels: y(rows.train) }, val: { features: part("val", [0, 1, 2, 3, 4]), labels: y(rows.val) }, threshold: { fpr: 0.05 }, model });
  expect(m.probe.toJSON().weights).toEqual(ref.toJSON().weights);
  expect(m.probe.threshold).toBe(ref.threshold);
  expect(m.validation).toEqual(ref.training.validation);
});

test("prompts longer than the context go through a capture file of the source's own, removed by close()", async () => {
  const cacheDir = path.join(dir, "long");
  const rec = (id: string, text: string, label: 0 | 1): PromptRecord => ({ id, text, label, source: "t", file: "t.jsonl", line: 1 }) as PromptRecord;
  const records = [rec("a", STORIES[0], 0), rec("b", "A cat sat on the mat. ".repeat(500), 1), rec("c", STORIES[4], 1), rec("d", "The dog ran far. ".repeat(600), 0)];
  expect(model.tokenize(records[1].text).length).toBeGreaterThan(model.info.contextSize);
  const src = await openLayerSource(model, records, [1, "final"], { cacheDir, input: { ...DEFAULT_PROBE_INPUT, chat: false } });
  const tmp = path.join(cacheDir, "+tmp");
  expect(fs.readdirSync(tmp).filter((f) => f.endsWith(".safetensors")).length).toBe(1);
  const ref = await featuresFor(model, records, [1, "final"], { cacheDir: null, input: { ...DEFAULT_PROBE_INPUT, chat: false } });
  for (const l of [1, "final"] as const) expect(maxAbsDiff((await src.load(l)).data, ref.features.get(l)!.data)).toBeLessThan(1e-5);
  await src.close();
  expect(fs.readdirSync(tmp)).toEqual([]);
  // only the prompts that fit were cached
  expect(Object.keys(JSON.parse(fs.readFileSync(path.join(layerDir(cacheDir, 1), "index.json"), "utf8")).entries).length).toBe(2);
  await expect(src.load(3)).rejects.toThrow(RangeError);
});
