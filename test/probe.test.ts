import * as fs from "node:fs";
import * as path from "node:path";

import { loadModel, Model, Probe, ProbeFileError } from "../src";
import type { Features } from "../src/probe/types";
import { MODEL, maxAbsDiff, modelVariant, tmpDir } from "./helpers";

/** Planted-direction features for a fake model of width 64. */
function planted(n: number, seed: number): { X: Features; y: Uint8Array } {
  let s = seed >>> 0;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const d = 64;
  const X = new Float32Array(n * d);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3 === 0 ? 1 : 0;
    for (let j = 0; j < d; j++) X[i * d + j] = rnd() + (j === 7 ? (y[i] ? 1.5 : -1.5) : 0);
  }
  return { X: { data: X, rows: n, cols: d }, y };
}

describe("Probe", () => {
  let model: Model;
  const dir = tmpDir();
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false });
  });
  afterAll(async () => {
    await model.dispose();
  });

  for (const method of ["logreg", "mlp", "lpm"] as const) {
    test(`${method}: learns a planted direction; save + load scores identically`, async () => {
      const tr = planted(900, 1);
      const va = planted(300, 2);
      const probe = Probe.train({ method, layers: [2], train: { features: [tr.X], labels: tr.y }, val: { features: [va.X], labels: va.y }, threshold: "best-f1", model });
      const scores = probe.scoreFeatures([va.X]);
      let right = 0;
      for (let i = 0; i < va.y.length; i++) right += (scores[i] >= probe.threshold ? 1 : 0) === va.y[i] ? 1 : 0;
      expect(right / va.y.length).toBeGreaterThan(0.95);
      const file = path.join(dir, `${method}.json`);
      await probe.save(file);
      const again = await Probe.load(file, model);
      expect(again.method).toBe(method);
      expect(again.threshold).toBe(probe.threshold);
      expect(maxAbsDiff(again.scoreFeatures([va.X]), scores)).toBe(0);
    });
  }

  test("scoring with standardisation folded into the weights equals standardise-then-score from the saved weights", () => {
    const tr = planted(600, 12);
    for (const method of ["logreg", "mlp"] as const) {
      const probe = Probe.train({ method, layers: [2], train: { features: [tr.X], labels: tr.y }, model });
      const j = probe.toJSON() as { weights: Record<string, unknown> };
      const w = j.weights as { standardizer: { mean: number[]; std: number[] }; w?: number[]; b?: number; hidden?: number; w1?: number[]; b1?: number[]; w2?: number[]; b2?: number };
      for (let r = 0; r < 20; r++) {
        const x = tr.X.data.subarray(r * 64, (r + 1) * 64);
        const z = Array.from(x, (v, k) => (v - w.standardizer.mean[k]) / w.standardizer.std[k]);
        let logit: number;
        if (method === "logreg") logit = z.reduce((a, v, k) => a + v * w.w![k], w.b!);
        else {
          logit = w.b2!;
          for (let u = 0; u < w.hidden!; u++) {
            const a = z.reduce((acc, v, k) => acc + v * w.w1![u * 64 + k], w.b1![u]);
            if (a > 0) logit += w.w2![u] * a;
          }
        }
        expect(Math.abs(probe.scoreVectors([x]) - 1 / (1 + Math.exp(-logit)))).toBeLessThan(1e-5);
      }
    }
  });

  test("mlpm combines layers", async () => {
    const a = planted(900, 3);
    const noise = planted(900, 4);
    for (let i = 0; i < noise.X.data.length; i++) if (i % 64 === 7) noise.X.data[i] = 0;
    const probe = Probe.train({ method: "mlpm", layers: [1, 3], train: { features: [noise.X, a.X], labels: a.y }, model });
    const v = planted(300, 5);
    const s = probe.scoreFeatures([v.X, v.X]);
    let right = 0;
    for (let i = 0; i < 300; i++) right += (s[i] >= 0.5 ? 1 : 0) === v.y[i] ? 1 : 0;
    expect(right / 300).toBeGreaterThan(0.9);
    const file = path.join(dir, "mlpm.json");
    await probe.save(file);
    expect(maxAbsDiff((await Probe.load(file, model)).scoreFeatures([v.X, v.X]), s)).toBe(0);
  });

  test("a false-positive-rate threshold holds on the validation data", () => {
    const tr = planted(900, 6);
    const va = planted(600, 7);
    const probe = Probe.train({ method: "lpm", layers: [0], train: { features: [tr.X], labels: tr.y }, val: { features: [va.X], labels: va.y }, threshold: { fpr: 0.02 }, model });
    const s = probe.scoreFeatures([va.X]);
    let fp = 0;
    let neg = 0;
    for (let i = 0; i < va.y.length; i++) if (!va.y[i]) {
      neg++;
      if (s[i] >= probe.threshold) fp++;
    }
    expect(fp / neg).toBeLessThanOrEqual(0.02);
    expect(probe.thresholdRule).toBe("fpr:0.02");
  });

  test("probe.score on a model equals scoring its captured features", async () => {
    const tr = planted(300, 8);
    const probe = Probe.train({ method: "logreg", layers: [3], train: { features: [tr.X], labels: tr.y }, model });
    const prompts = ["How do I bake bread?", "Tell me a story about a cat"];
    const acts = await model.capture(prompts, { layers: [3], chat: { addAssistantPrefix: true } });
    const want = probe.scoreFeatures([{ data: acts.layer(3), rows: 2, cols: 64 }]);
    expect(maxAbsDiff(await probe.score(model, prompts), want)).toBe(0);
  });

  test("malformed probe files are clear errors", async () => {
    const tr = planted(300, 9);
    const good = Probe.train({ method: "logreg", layers: [3], train: { features: [tr.X], labels: tr.y }, model }).toJSON() as Record<string, unknown>;
    const cases: [unknown, string][] = [
      [{ ...good, format: "something-else" }, 'not a safety-lens probe (format "something-else", expected "safety-lens/probe")'],
      [{ ...good, version: 99 }, "unsupported probe version 99 (this safety-lens reads version 1)"],
      [{ ...good, method: "svm" }, 'unknown method "svm"'],
      [{ ...good, layers: [99] }, "invalid layer 99"],
      [{ ...good, threshold: 2 }, "threshold must be a number between 0 and 1"],
      [{ ...good, weights: { ...(good.weights as object), w: [1, 2, 3] } }, "weights.w must be 64 finite numbers"],
      [[1, 2], "a probe file is a JSON object"],
    ];
    for (const [json, msg] of cases) {
      const file = path.join(dir, "bad.json");
      fs.writeFileSync(file, JSON.stringify(json));
      const err = await Probe.load(file, model).catch((e) => e);
      expect(err).toBeInstanceOf(ProbeFileError);
      expect(err.code).toBe("PROBE_INVALID");
      expect(err.message).toBe(`${file}: ${msg}`);
    }
    const nan = path.join(dir, "nan.json");
    fs.writeFileSync(nan, JSON.stringify(good).replace(/"b":[-0-9.e]+/, '"b":"NaN"'));
    await expect(Probe.load(nan, model)).rejects.toThrow("weights.b must be a finite number");
    fs.writeFileSync(nan, "{ not json");
    await expect(Probe.load(nan, model)).rejects.toThrow(/not valid JSON/);
    await expect(Probe.load(path.join(dir, "missing.json"), model)).rejects.toThrow(`${path.join(dir, "missing.json")}: probe file not found`);
  });

  test("a probe trained on another model is refused", async () => {
    const other = await loadModel({ modelPath: await modelVariant({ template: "{{ messages[0]['content'] }}" }), gpu: false });
    try {
      expect(other.info.fingerprint).not.toBe(model.info.fingerprint);
      const tr = planted(300, 10);
      const probe = Probe.train({ method: "lpm", layers: [1], train: { features: [tr.X], labels: tr.y }, model });
      const file = path.join(dir, "mine.json");
      await probe.save(file);
      const err = await Probe.load(file, other).catch((e) => e);
      expect(err).toBeInstanceOf(ProbeFileError);
      expect(err.code).toBe("PROBE_MODEL_MISMATCH");
      expect(err.message).toContain(`this probe was trained on model llama (${model.info.fingerprint}), not on llama (${other.info.fingerprint})`);
    } finally {
      await other.dispose();
    }
  });

  test("bad training input", () => {
    const tr = planted(100, 11);
    expect(() => Probe.train({ method: "svm" as never, layers: [1], train: { features: [tr.X], labels: tr.y }, model })).toThrow(TypeError);
    expect(() => Probe.train({ method: "lpm", layers: [1, 2], train: { features: [tr.X, tr.X], labels: tr.y }, model })).toThrow(
      "method lpm reads one layer; got 2 (use mlpm to combine layers)",
    );
    expect(() => Probe.train({ method: "lpm", layers: [1], train: { features: [tr.X], labels: new Uint8Array(100) }, model })).toThrow(
      "training data needs both safe and unsafe examples",
    );
    expect(() => Probe.train({ method: "lpm", layers: [1], train: { features: [tr.X], labels: tr.y }, threshold: "best-f1", model })).toThrow(
      "threshold rule best-f1 needs validation data",
    );
  });
});
