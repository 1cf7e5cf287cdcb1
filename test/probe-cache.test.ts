import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { LayerSpec } from "../src/core/activations";
import { loadModel, type Model } from "../src/core/model";
import { ActivationCache } from "../src/probe/cache";
import type { Features } from "../src/probe/types";
import { MODEL, STORIES, maxAbsDiff, tmpDir } from "./helpers";

const LAYERS: LayerSpec[] = [1, 3, "final"];

let model: Model;
let dir: string;
beforeAll(async () => {
  model = await loadModel({ modelPath: MODEL, gpu: false });
  dir = tmpDir("safety-lens-cache-");
});
afterAll(async () => {
  await model.dispose();
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  jest.restoreAllMocks();
});

function layerDir(cacheDir: string, layer: LayerSpec): string {
  return join(cacheDir, model.info.fingerprint, `layer-${String(layer)}`);
}

function shards(cacheDir: string, layer: LayerSpec): string[] {
  return readdirSync(layerDir(cacheDir, layer))
    .filter((f) => f.endsWith(".safetensors"))
    .map((f) => join(layerDir(cacheDir, layer), f));
}

function rowsOf(f: Features, rows: number[]): Float32Array {
  const out = new Float32Array(rows.length * f.cols);
  rows.forEach((r, j) => out.set(f.data.subarray(r * f.cols, (r + 1) * f.cols), j * f.cols));
  return out;
}

test("defaultDir", () => {
  const saved = process.env.SAFETY_LENS_CACHE;
  try {
    process.env.SAFETY_LENS_CACHE = "/some/where";
    expect(ActivationCache.defaultDir()).toBe("/some/where");
    delete process.env.SAFETY_LENS_CACHE;
    expect(ActivationCache.defaultDir()).toBe(join(homedir(), ".cache", "safety-lens"));
  } finally {
    if (saved === undefined) delete process.env.SAFETY_LENS_CACHE;
    else process.env.SAFETY_LENS_CACHE = saved;
  }
});

describe("activation cache on the embedded model", () => {
  const cacheDir = () => join(dir, "main");

  test("first call misses and equals capture; second call hits without capturing", async () => {
    const cache = new ActivationCache(cacheDir());
    const texts = [...STORIES, STORIES[1]]; // a repeated text is captured once
    const spy = jest.spyOn(model, "capture");
    const first = await cache.features(model, texts, { layers: LAYERS, chat: false });
    expect(first.misses).toBe(texts.length);
    expect(first.hits).toBe(0);
    expect(first.warnings).toEqual([]);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.calls[0][0]).toEqual(STORIES);
    spy.mockClear();

    const direct = await model.capture(texts, { layers: LAYERS, pool: "last", chat: false });
    spy.mockClear();
    for (const l of LAYERS) {
      const f = first.layers.get(l)!;
      expect(f.rows).toBe(texts.length);
      expect(f.cols).toBe(model.info.nEmbd);
      expect(maxAbsDiff(f.data, direct.layer(l))).toBeLessThan(1e-4);
    }
    expect(first.layers.get(3)!.data.subarray(5 * 64, 6 * 64)).toEqual(first.layers.get(3)!.data.subarray(64, 128));

    const second = await cache.features(model, texts, { layers: LAYERS, chat: false });
    expect(spy).not.toHaveBeenCalled();
    expect(second.hits).toBe(texts.length);
    expect(second.misses).toBe(0);
    for (const l of LAYERS) expect(second.layers.get(l)!.data).toEqual(first.layers.get(l)!.data);

    // a subset of layers, in another order, from another instance: still hits
    const third = await new ActivationCache(cacheDir()).features(model, [STORIES[2], STORIES[0]], { layers: ["final", 1], chat: false });
    expect(spy).not.toHaveBeenCalled();
    expect(third.hits).toBe(2);
    expect(third.layers.get("final")!.data).toEqual(rowsOf(first.layers.get("final")!, [2, 0]));
  });

  test("a new text captures only that text; a new layer captures only that layer", async () => {
    const cache = new ActivationCache(cacheDir());
    const spy = jest.spyOn(model, "capture");
    const texts = [STORIES[0], "A brand new story about a frog.", STORIES[3]];
    const r = await cache.features(model, texts, { layers: LAYERS, chat: false });
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.calls[0][0]).toEqual(["A brand new story about a frog."]);
    expect(r.hits).toBe(2);
    expect(r.misses).toBe(1);
    const direct = await model.capture(texts, { layers: LAYERS, pool: "last" });
    for (const l of LAYERS) expect(maxAbsDiff(r.layers.get(l)!.data, direct.layer(l))).toBeLessThan(1e-4);
    spy.mockClear();

    const withLayer0 = await cache.features(model, texts, { layers: [0, 3], chat: false });
    expect(spy).toHaveBeenCalledTimes(1);
    expect((spy.mock.calls[0][1] as { layers: LayerSpec[] }).layers).toEqual([0]);
    expect(withLayer0.misses).toBe(3);
    expect(withLayer0.layers.get(3)!.data).toEqual(r.layers.get(3)!.data);
    expect(maxAbsDiff(withLayer0.layers.get(0)!.data, (await model.capture(texts, { layers: [0] })).layer(0))).toBeLessThan(1e-4);
  });

  test("different chat options give different keys and values", async () => {
    const cache = new ActivationCache(join(dir, "chat"));
    const spy = jest.spyOn(model, "capture");
    const variants: (boolean | { addAssistantPrefix?: boolean; systemPrompt?: string })[] = [
      false,
      true,
      { addAssistantPrefix: false },
      { systemPrompt: "You are a helpful assistant." },
    ];
    const text = STORIES[1];
    const keys = new Set(variants.map((chat) => ActivationCache.key(model.info.fingerprint, model.formatText(text, { chat }), 3)));
    expect(keys.size).toBe(4);
    const results: Float32Array[] = [];
    for (const chat of variants) {
      const r = await cache.features(model, [text], { layers: [3], chat });
      expect(r.misses).toBe(1);
      results.push(r.layers.get(3)!.data);
      const direct = await model.capture([text], { layers: [3], chat });
      expect(maxAbsDiff(r.layers.get(3)!.data, direct.layer(3))).toBeLessThan(1e-4);
    }
    for (let i = 1; i < results.length; i++) expect(maxAbsDiff(results[0], results[i])).toBeGreaterThan(1e-3);
    expect(spy).toHaveBeenCalledTimes(8); // 4 cache misses + 4 direct captures
    spy.mockClear();
    for (const chat of variants) expect((await cache.features(model, [text], { layers: [3], chat })).hits).toBe(1);
    expect(spy).not.toHaveBeenCalled();
    // `true` and `{}` render the same text: same key
    expect((await cache.features(model, [text], { layers: [3], chat: {} })).hits).toBe(1);
  });

  test("corrupt shards and indexes are ignored and rebuilt", async () => {
    const cdir = join(dir, "corrupt");
    const cache = new ActivationCache(cdir);
    const texts = STORIES.slice(0, 3);
    const good = await cache.features(model, texts, { layers: [2, "final"], chat: false });
    const spy = jest.spyOn(model, "capture");

    // 1. garbage in a shard
    const [shard2] = shards(cdir, 2);
    writeFileSync(shard2, "this is not a safetensors file");
    let r = await cache.features(model, texts, { layers: [2, "final"], chat: false });
    expect(r.misses).toBe(3);
    expect(r.warnings.length).toBe(1);
    expect(r.warnings[0]).toContain("is unreadable");
    expect(spy).toHaveBeenCalledTimes(1);
    expect((spy.mock.calls[0][1] as { layers: LayerSpec[] }).layers).toEqual([2]);
    expect(maxAbsDiff(r.layers.get(2)!.data, good.layers.get(2)!.data)).toBeLessThan(1e-4);
    expect(r.layers.get("final")!.data).toEqual(good.layers.get("final")!.data);
    expect(existsSync(shard2)).toBe(false);
    spy.mockClear();
    r = await cache.features(model, texts, { layers: [2, "final"], chat: false });
    expect(spy).not.toHaveBeenCalled();
    expect(r.hits).toBe(3);
    expect(r.warnings).toEqual([]);

    // 2. one flipped byte in the tensor data (the checksum catches it)
    const [shardF] = shards(cdir, "final");
    const bytes = readFileSync(shardF);
    bytes[bytes.length - 10] ^= 0x40;
    writeFileSync(shardF, bytes);
    r = await cache.features(model, texts, { layers: ["final"], chat: false });
    expect(r.misses).toBe(3);
    expect(maxAbsDiff(r.layers.get("final")!.data, good.layers.get("final")!.data)).toBeLessThan(1e-4);
    spy.mockClear();

    // 3. a truncated shard
    const [shardF2] = shards(cdir, "final");
    writeFileSync(shardF2, readFileSync(shardF2).subarray(0, 100));
    r = await cache.features(model, texts, { layers: ["final"], chat: false });
    expect(r.misses).toBe(3);
    expect(spy).toHaveBeenCalledTimes(1);
    spy.mockClear();

    // 4. a corrupt index, then a missing one
    writeFileSync(join(layerDir(cdir, 2), "index.json"), '{"format": "saf');
    r = await cache.features(model, texts, { layers: [2], chat: false });
    expect(r.misses).toBe(3);
    expect(r.warnings[0]).toContain("index.json is unreadable");
    expect(shards(cdir, 2).length).toBe(1); // the unreachable shard was removed
    expect((await cache.features(model, texts, { layers: [2], chat: false })).hits).toBe(3);
    await rm(join(layerDir(cdir, 2), "index.json"));
    r = await cache.features(model, texts, { layers: [2], chat: false });
    expect(r.misses).toBe(3);
    expect(r.warnings).toEqual([]);
    expect(maxAbsDiff(r.layers.get(2)!.data, good.layers.get(2)!.data)).toBeLessThan(1e-4);

    // 5. an index pointing at rows that hold other texts
    const idxPath = join(layerDir(cdir, 2), "index.json");
    const index = JSON.parse(readFileSync(idxPath, "utf8"));
    const entries = Object.entries(index.entries) as [string, [string, number]][];
    const rowsSwapped = entries.map(([k, [s, row]]) => [k, [s, (row + 1) % entries.length]]);
    writeFileSync(idxPath, JSON.stringify({ ...index, entries: Object.fromEntries(rowsSwapped) }));
    spy.mockClear();
    r = await cache.features(model, texts, { layers: [2], chat: false });
    expect(r.misses).toBe(3);
    expect(maxAbsDiff(r.layers.get(2)!.data, good.layers.get(2)!.data)).toBeLessThan(1e-4);
  });

  test("a cache of another model fingerprint is never used", async () => {
    const cdir = join(dir, "fingerprint");
    const cache = new ActivationCache(cdir);
    const texts = STORIES.slice(0, 2);
    await cache.features(model, texts, { layers: [3], chat: false });
    // The same weights under another fingerprint: a stand-in with the Model surface the cache uses.
    const other = {
      info: { ...model.info, fingerprint: "gguf-other/../model" },
      formatText: model.formatText.bind(model),
      capture: jest.fn((t: string[], o: Parameters<Model["capture"]>[1]) => model.capture(t, o)),
    } as unknown as Model;
    const r = await cache.features(other, texts, { layers: [3], chat: false });
    expect(r.misses).toBe(2);
    expect((other.capture as jest.Mock).mock.calls.length).toBe(1);
    expect((await cache.features(other, texts, { layers: [3], chat: false })).hits).toBe(2);
    // the odd fingerprint became one safe folder name inside the cache
    const folders = readdirSync(cdir);
    expect(folders.length).toBe(2);
    expect(folders).toContain(model.info.fingerprint);
    expect(folders.find((f) => f !== model.info.fingerprint)).toMatch(/^gguf-other_\.\._model-[0-9a-f]{16}$/);
  });

  test("an unwritable cache still returns the features", async () => {
    const file = join(dir, "a-file");
    writeFileSync(file, "x");
    const cache = new ActivationCache(join(file, "cache")); // a folder under a file cannot be made
    const r = await cache.features(model, [STORIES[0]], { layers: [1], chat: false });
    expect(r.misses).toBe(1);
    expect(r.warnings.length).toBe(1);
    expect(r.warnings[0]).toContain("could not store layer 1");
    expect(maxAbsDiff(r.layers.get(1)!.data, (await model.capture([STORIES[0]], { layers: [1] })).layer(1))).toBeLessThan(1e-4);
  });

  test("empty input and bad layers", async () => {
    const cache = new ActivationCache(join(dir, "misc"));
    const r = await cache.features(model, [], { layers: [1], chat: false });
    expect(r.layers.get(1)).toEqual({ data: new Float32Array(0), rows: 0, cols: 64 });
    await expect(cache.features(model, ["x"], { layers: [9], chat: false })).rejects.toThrow(RangeError);
    const ac = new AbortController();
    ac.abort();
    await expect(cache.features(model, ["x"], { layers: [1], chat: false, signal: ac.signal })).rejects.toMatchObject({ code: "ABORTED" });
  });
});
