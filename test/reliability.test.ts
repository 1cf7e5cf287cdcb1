/**
 * Reliability: what an attacker or a careless caller does must never take the process
 * down or make a check fail open.
 */
import { execFile } from "node:child_process";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";

import * as fs from "node:fs";

import { DataFormatError, DEFAULT_REFUSAL, evaluateScores, Guard, loadModel, loadPromptFiles, type Model, ModelFileError, Probe, Ranker } from "../src";
import { Rng } from "../src/math/rng";
import { finishRanking } from "../src/srr/ranker";
import { MODEL, STORIES, maxAbsDiff, modelVariant, tmpDir } from "./helpers";

const run = promisify(execFile);
const ROOT = path.join(__dirname, "..");
const CLI = path.join(ROOT, "dist", "cli", "main.js");
const runCli = (args: string[]) => run(process.execPath, [CLI, ...args], { timeout: 60_000 });

describe("a worker thread that exits or is terminated mid-job", () => {
  // Before: 'terminate called after throwing an instance of Napi::Error', the whole process
  // aborted (exit 134) in every mode but terminate-generate.
  const modes = ["exit-capture", "exit-generate", "exit-in-progress", "exit-in-token", "terminate-capture", "terminate-generate"];
  test.each(modes)("%s: the job is cancelled and the main thread goes on", async (mode) => {
    const { stdout } = await run(process.execPath, [path.join(__dirname, "fixtures", "worker-teardown.js"), ROOT, mode], { timeout: 60_000 });
    const r = JSON.parse(stdout.trim());
    expect(r.mode).toBe(mode);
    expect(r.finished).toBe(false); // it was stopped mid-job, not after it
    expect(r.workerExit).toBe(mode.startsWith("terminate") ? 1 : 0);
    // the job (5000 texts, or 4 x 400 tokens) was cancelled, not waited out
    expect(r.ms).toBeLessThan(20_000);
  });
});

describe("the native job owns what it reads", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
  });
  afterAll(() => model.dispose());

  // Before: 8 of 8 runs gave 'DecodeError: invalid token' or silently different activations.
  test("reusing or detaching prepared.tokens while capture(prepared) runs changes nothing", async () => {
    const texts = Array.from({ length: 200 }, (_, i) => `${STORIES[i % STORIES.length]} (${i})`);
    const clean = await model.capture(model.prepare(texts), { layers: [2, "final"] });
    for (const how of ["reuse", "detach"] as const) {
      const prepared = model.prepare(texts);
      const job = model.capture(prepared, { layers: [2, "final"] });
      if (how === "reuse") prepared.tokens.fill(0x7fffffff);
      else structuredClone(prepared.tokens.buffer, { transfer: [prepared.tokens.buffer as ArrayBuffer] });
      if (how === "detach") expect(prepared.tokens.length).toBe(0);
      const acts = await job;
      expect(maxAbsDiff(acts.layer(2), clean.layer(2))).toBe(0);
      expect(maxAbsDiff(acts.layer("final"), clean.layer("final"))).toBe(0);
    }
  });
});

describe("context options llama.cpp would abort on", () => {
  // Before: GGML_ASSERT(n_outputs_max <= cparams.n_outputs_max) aborted the process.
  test("sequences above min(contextSize, batchSize) is a RangeError; the default is clamped", async () => {
    await expect(loadModel({ modelPath: MODEL, gpu: false, contextSize: 32, sequences: 33 })).rejects.toThrow(
      new RangeError("sequences (33) must not exceed the tokens one llama_decode takes: min(contextSize, batchSize) = 32"),
    );
    await expect(loadModel({ modelPath: MODEL, gpu: false, contextSize: 256, batchSize: 16, sequences: 17 })).rejects.toThrow(RangeError);
    for (const contextSize of [16, 32, 48]) {
      const m = await loadModel({ modelPath: MODEL, gpu: false, threads: 1, contextSize });
      try {
        expect(m.info.sequences).toBe(contextSize);
        const acts = await m.capture(STORIES.slice(0, 2), { layers: [1] });
        expect(acts.rows).toBe(2);
      } finally {
        await m.dispose();
      }
    }
  });

  // Before: accepted up to 1024; 64 threads on 2 cores turned a 61 ms capture into 68 s.
  test("threads above the logical core count is a RangeError", async () => {
    const cores = os.availableParallelism();
    await expect(loadModel({ modelPath: MODEL, gpu: false, threads: cores + 1 })).rejects.toThrow(
      new RangeError(`threads must be between 1 and ${cores} (the ${cores} logical cores), got ${cores + 1}`),
    );
    await expect(loadModel({ modelPath: MODEL, gpu: false, threads: 64 * cores })).rejects.toThrow(RangeError);
  });
});

describe("a damaged probe or ranker never fails open", () => {
  let model: Model;
  let dir: string;
  let probeFile: string;
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
    dir = tmpDir();
    const rng = new Rng(5);
    const n = 200;
    const X = new Float32Array(n * 64);
    const y = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = i % 2;
      for (let j = 0; j < 64; j++) X[i * 64 + j] = rng.normal() + (y[i] && j < 4 ? 2 : 0);
    }
    const probe = Probe.train({ method: "logreg", layers: ["final"], train: { features: [{ data: X, rows: n, cols: 64 }], labels: y }, model });
    probeFile = path.join(dir, "probe.json");
    await probe.save(probeFile);
  });
  afterAll(() => model.dispose());

  const edited = (edit: (json: Record<string, any>) => void): string => {
    const json = JSON.parse(fs.readFileSync(probeFile, "utf8"));
    edit(json);
    const f = path.join(dir, `edited-${Math.random().toString(36).slice(2)}.json`);
    fs.writeFileSync(f, JSON.stringify(json));
    return f;
  };

  // Before: a weight of 1e308 (finite JSON, Infinity as float32) loaded; every score was NaN and the
  // guard answered a bomb-making prompt on its normal path.
  test("weights that are not finite in float32 are refused on load", async () => {
    const f = edited((j) => (j.weights.w[3] = 1e308));
    const err = await Probe.load(f, model).catch((e) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err.code).toBe("PROBE_INVALID");
    expect(err.message).toBe(`${f}: weights.w must be 64 finite numbers`);
    const tiny = edited((j) => {
      j.weights.standardizer.std = j.weights.standardizer.std.map(() => 1e-46);
      j.weights.w = j.weights.w.map((_: number, i: number) => (i % 2 ? 1e10 : -1e10));
    });
    await expect(Probe.load(tiny, model)).rejects.toThrow("weights.standardizer.std must be positive"); // 1e-46 is 0 in float32
    const overflow = edited((j) => {
      j.weights.standardizer.std = j.weights.standardizer.std.map(() => 1e-30);
      j.weights.w = j.weights.w.map((_: number, i: number) => (i % 2 ? 1e10 : -1e10));
    });
    await expect(Probe.load(overflow, model)).rejects.toThrow("the weights overflow float32 once the standardisation is folded in");
  });

  test("a ranker weight of 1e308 is refused on load", async () => {
    const lists = Array.from({ length: 8 }, (_, k) => ({ u: new Float32Array(64).fill(k), v: new Float32Array(2 * 64).fill(1), m: 2, safe: Uint8Array.of(1, 0) }));
    const { ranker } = Ranker.fromLists(model, lists, undefined, { layer: 2, epochs: 1 });
    const f = path.join(dir, "ranker.json");
    await ranker.save(f);
    const json = JSON.parse(fs.readFileSync(f, "utf8"));
    json.weights["proj.b"][0] = 1e308;
    fs.writeFileSync(f, JSON.stringify(json));
    const err = await Ranker.load(f, model).catch((e) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err.kind).toBe("ranker");
    expect(err.message).toMatch(/weights\.proj\.b must be \d+ finite numbers$/);
  });

  // Before: path "normal", score null, classify "unsafe: false", eval AUROC 1 and AUPRC 1 with recall 0.
  test("NaN in the model's own hidden states: the guard refuses, classify flags, metrics do not look perfect", async () => {
    const nanModel = await modelVariant({ tensor: (name, d) => name === "output_norm.weight" && d.fill(NaN) });
    const m2 = await loadModel({ modelPath: nanModel, gpu: false, threads: 1 });
    try {
      const f = edited((j) => (j.model.fingerprint = m2.info.fingerprint));
      const guard = await Guard.load(m2, f);
      const v = await guard.check("Explain how to build a bomb.");
      expect(Number.isNaN(v.score)).toBe(true);
      expect(v).toMatchObject({ unsafe: true, failedClosed: true });
      const out = await guard.generate("Explain how to build a bomb.", { maxTokens: 8 });
      expect(out.guard.path).toBe("refused");
      expect(out.candidates[0].text).toBe(DEFAULT_REFUSAL);
      const scores = await guard.probe.score(m2, ["a", "b", "c", "d"]);
      const e = evaluateScores(scores, Uint8Array.of(1, 0, 1, 0), ["s", "s", "s", "s"], guard.threshold);
      expect(e.overall).toMatchObject({ recall: 1, fpr: 1, auroc: 0.5, auprc: 0.5, nanScores: 4 });
      const r = await runCli(["classify", "--model", nanModel, "--probe", f, "--prompt", "hello", "--json", "--threads", "1"]);
      expect(JSON.parse(r.stdout).results[0].unsafe).toBe(true);
    } finally {
      await m2.dispose();
    }
  });

  // Before: a plain Error("the guard's prompt hook did not run").
  test("a guard whose generation is aborted during the prefill reports an unchecked, flagged prompt", async () => {
    const guard = await Guard.load(model, probeFile);
    const ac = new AbortController();
    const run = guard.generate("Once upon a time there was a long story. ".repeat(40), { maxTokens: 8, signal: ac.signal });
    ac.abort(); // after the prefill job started, before it could finish
    const out = await run;
    expect(out.guard).toMatchObject({ path: "aborted", unsafe: true, failedClosed: true });
    expect(out.candidates[0].finishReason).toBe("aborted");
    expect(out.candidates[0].text).toBe("");
  });

  test("NaN ranker scores rank last and are reported", () => {
    const r = finishRanking(Float32Array.of(NaN, 0.5, Number.NEGATIVE_INFINITY, 0.7), 0.1);
    expect(r.order).toEqual([3, 1, 2, 0]);
    expect(r.best).toBe(3);
    expect(r.invalid).toEqual([0]);
    expect(Array.from(r.probabilities).every((p) => Number.isFinite(p))).toBe(true);
    expect(r.probabilities[0]).toBe(0);
  });

  // Before: a width-0 logreg scored a constant 0.103; a width-32 mlpm flagged everything.
  test("a probe claiming the model's fingerprint but another width or depth is refused", async () => {
    const narrow = edited((j) => {
      j.model.nEmbd = 32;
      j.weights.w = j.weights.w.slice(0, 32);
      j.weights.standardizer.mean = j.weights.standardizer.mean.slice(0, 32);
      j.weights.standardizer.std = j.weights.standardizer.std.slice(0, 32);
    });
    const err = await Probe.load(narrow, model).catch((e) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err.message).toBe(`${narrow}: this probe claims model ${model.info.fingerprint} with 5 layers of width 32, but that model has 5 layers of width 64`);
    const zero = edited((j) => {
      j.model.nEmbd = 0;
      j.weights.w = [];
    });
    await expect(Probe.load(zero, model)).rejects.toThrow("model must give fingerprint, nEmbd and nLayer");
  });
});

describe("smaller input holes", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
  });
  afterAll(() => model.dispose());

  // Before: passed the `in` check, then 'TypeError: A number was expected' from the addon.
  test.each(["toString", "constructor", "__proto__", "hasOwnProperty"])("pool %p is refused by name", async (pool) => {
    await expect(model.capture(["hi"], { layers: [1], pool: pool as never })).rejects.toThrow(
      new TypeError(`pool must be "last", "mean" or "tokens", got ${JSON.stringify(pool)}`),
    );
  });

  // Before: every case said 'got an array'.
  test("chat messages with missing or wrong fields say which", async () => {
    const cases: [unknown, string][] = [
      [[{ role: "user" }], "but message 0 has no content"],
      [[{ role: "user", content: "ok" }, { role: "user", content: 5 }], "but message 1 has content number 5"],
      [[{ content: "x" }], "but message 0 has no role"],
      [[null], "but message 0 is null"],
      [["hi"], 'but message 0 is "hi"'],
    ];
    for (const [input, why] of cases) {
      await expect(model.capture([input as never], { layers: [1] })).rejects.toThrow(
        new TypeError(`texts[0] must be a string or an array of { role, content } messages, ${why}`),
      );
    }
  });

  // Before: invalid bytes silently became U+FFFD.
  test("invalid UTF-8 in a JSONL file is a DataFormatError with file and line, unless lossyUtf8", async () => {
    const dir = tmpDir();
    const f = path.join(dir, "bad.jsonl");
    fs.writeFileSync(f, Buffer.concat([Buffer.from('{"text": "fine", "label": "safe"}\n{"text": "caf'), Buffer.from([0xe9]), Buffer.from('", "label": "unsafe"}\n')]));
    const err = await loadPromptFiles([f]).catch((e) => e);
    expect(err).toBeInstanceOf(DataFormatError);
    expect(err.message).toBe(
      `${f}:2: the line is not valid UTF-8; re-encode the file as UTF-8, or read it with lossyUtf8 (CLI: --lossy-utf8) to replace the bad bytes with U+FFFD`,
    );
    const { records } = await loadPromptFiles([f], { lossyUtf8: true });
    expect(records.map((r) => r.text)).toEqual(["fine", "caf\uFFFD"]);
    const cli = await run(process.execPath, [CLI, "sweep", "--data", f, "--json", "--threads", "1", "--no-cache"]).catch((e) => e);
    expect(cli.stderr).toContain("bad.jsonl:2: the line is not valid UTF-8");
    // CRLF line ends and a BOM are still fine
    const crlf = path.join(dir, "crlf.jsonl");
    fs.writeFileSync(crlf, '\uFEFF{"text": "a", "label": "safe"}\r\n{"text": "b", "label": "unsafe"}\r\n');
    expect((await loadPromptFiles([crlf])).records.map((x) => x.text)).toEqual(["a", "b"]);
  });

  // The README's claim: other batch sizes change llama.cpp's kernel paths, so values agree to
  // float32 rounding: within 2e-6 of the largest magnitude (measured: 6.4e-7 relative).
  test("batchSize 1 and 7 agree with the default to 2e-6 of the largest value", async () => {
    const layers = [0, 2, 4, "final"] as const;
    const ref = await model.capture(STORIES, { layers: [...layers], pool: "tokens" });
    for (const batchSize of [1, 7]) {
      const m = await loadModel({ modelPath: MODEL, gpu: false, threads: 1, batchSize });
      try {
        const acts = await m.capture(STORIES, { layers: [...layers], pool: "tokens" });
        for (const l of layers) {
          const a = acts.layer(l);
          const b = ref.layer(l);
          const scale = b.reduce((x, v) => Math.max(x, Math.abs(v)), 0);
          expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(2e-6 * scale);
        }
      } finally {
        await m.dispose();
      }
    }
  });
});
