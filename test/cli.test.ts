import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";

import { loadModel, readSafetensors } from "../src";
import { MODEL, STORIES, maxAbsDiff, tmpDir } from "./helpers";

const run = promisify(execFile);
const CLI = path.join(__dirname, "..", "dist", "cli", "main.js");

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { maxBuffer: 1 << 26 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("safety-lens CLI", () => {
  const dir = tmpDir();
  const input = path.join(dir, "in.jsonl");
  beforeAll(() => {
    fs.writeFileSync(input, STORIES.map((t, i) => JSON.stringify({ id: `s${i}`, text: t, label: i % 2 ? "safe" : "unsafe" })).join("\n") + "\n");
  });

  test("info --json on the embedded model", async () => {
    const r = await cli(["info", "--json", "--gpu", "false"]);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info).toMatchObject({ arch: "llama", nLayer: 5, nEmbd: 64, nCtxTrain: 2048, chatTemplate: null, backend: "cpu" });
    expect(info.fingerprint).toMatch(/^gguf-[0-9a-f]{16}$/);
    expect(info.path).toBe(MODEL);
  });

  test("capture writes safetensors equal to the API's values, with fingerprint and row ids", async () => {
    const out = path.join(dir, "acts.safetensors");
    const r = await cli(["capture", "--input", input, "--layers", "1,final", "--pool", "mean", "--chat", "--out", out, "--json", "--gpu", "false"]);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ rows: STORIES.length, nEmbd: 64, layers: [1, "final"], pool: "mean", chat: true });
    const file = await readSafetensors(out);
    expect([...file.tensors.keys()].sort()).toEqual(["layer.1", "layer.final"]);
    expect(file.tensors.get("layer.1")!.shape).toEqual([STORIES.length, 64]);
    expect(JSON.parse(file.metadata.row_ids)).toEqual(STORIES.map((_, i) => `s${i}`));
    const model = await loadModel({ modelPath: MODEL, gpu: false });
    try {
      expect(file.metadata.model_fingerprint).toBe(model.info.fingerprint);
      const acts = await model.capture(STORIES, { layers: [1, "final"], pool: "mean", chat: true });
      expect(maxAbsDiff(file.tensors.get("layer.1")!.data, acts.layer(1))).toBeLessThan(1e-6);
      expect(maxAbsDiff(file.tensors.get("layer.final")!.data, acts.layer("final"))).toBeLessThan(1e-6);
    } finally {
      await model.dispose();
    }
  });

  test("a malformed data line names the file and line", async () => {
    const bad = path.join(dir, "bad.jsonl");
    fs.writeFileSync(bad, `{"text": "fine"}\n{"text": "also fine"}\n{"text": oops}\n`);
    const r = await cli(["capture", "--input", bad, "--layers", "0", "--out", path.join(dir, "x.safetensors"), "--gpu", "false"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}:3: invalid JSON`);
    const missing = path.join(dir, "nofield.jsonl");
    fs.writeFileSync(missing, `{"text": "fine"}\n{"prompt": "wrong field"}\n`);
    const r2 = await cli(["capture", "--input", missing, "--layers", "0", "--out", path.join(dir, "y.safetensors"), "--gpu", "false"]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(`${missing}:2: missing string field "text"`);
  });

  test("usage errors exit 2 with a message", async () => {
    const r = await cli(["capture", "--input", input, "--layers", "1,x"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--layers takes layer numbers, "all" and "final" separated by commas; got "x"');
    const r2 = await cli(["frobnicate"]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('unknown command "frobnicate"');
    const r3 = await cli(["capture", "--layers", "1"]);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toContain("capture needs --input FILE.jsonl");
  });

  test("layer out of range and missing model are reported, not crashes", async () => {
    const r = await cli(["capture", "--input", input, "--layers", "9", "--out", path.join(dir, "z.safetensors"), "--gpu", "false"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("RangeError: layer 9 is out of range: the model has 5 layers (0-4)");
    const r2 = await cli(["info", "--model", path.join(dir, "missing.gguf")]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(`ModelLoadError: Model file not found: ${path.join(dir, "missing.gguf")}`);
  });
});

describe("safety-lens generate", () => {
  test("--json: candidates, finish reasons, hidden states", async () => {
    const r = await cli(["generate", "--prompt", "Once upon a time", "--n", "2", "--max-tokens", "12", "--temperature", "0", "--layers", "1,final", "--json", "--gpu", "false"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.candidates).toHaveLength(2);
    expect(out.candidates[0]).toMatchObject({ tokens: 12, finishReason: "length" });
    expect(out.candidates[0].text).toBe(out.candidates[1].text);
    expect(out.promptHidden["1"]).toHaveLength(64);
    expect(out.candidates[0].responseHidden.final).toHaveLength(64);
    const model = await loadModel({ modelPath: MODEL, gpu: false });
    try {
      const api = await model.generate("Once upon a time", { maxTokens: 12, temperature: 0 });
      expect(out.candidates[0].text).toBe(api.candidates[0].text);
    } finally {
      await model.dispose();
    }
  });

  test("usage errors", async () => {
    const r = await cli(["generate", "--n", "2"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("generate needs --prompt TEXT");
    const r2 = await cli(["generate", "--prompt", "hi", "--max-tokens", "0", "--gpu", "false"]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain("RangeError: maxTokens must be between 1 and 2048, got 0");
    const r3 = await cli(["generate", "--prompt", "", "--gpu", "false"]);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain("InputError: prompt is empty");
  });
});

describe("probe commands", () => {
  const dir = tmpDir();
  const SAMPLES = path.join(__dirname, "..", "samples", "prompts.jsonl");
  const probeFile = path.join(dir, "probe.json");
  const cacheArgs = ["--cache-dir", path.join(dir, "cache"), "--gpu", "false"];

  test("train-probe, eval-probe (with the prompted baseline), classify, sweep", async () => {
    const tr = await cli(["train-probe", "--data", SAMPLES, "--method", "logreg", "--layer", "2", "--out", probeFile, "--json", ...cacheArgs]);
    expect(tr.code).toBe(0);
    const t = JSON.parse(tr.stdout);
    expect(t).toMatchObject({ method: "logreg", layers: [2] });
    expect(fs.existsSync(probeFile)).toBe(true);

    const ev = await cli(["eval-probe", "--probe", probeFile, "--data", SAMPLES, "--baseline", "prompted", "--json", ...cacheArgs]);
    expect(ev.code).toBe(0);
    const e = JSON.parse(ev.stdout);
    for (const k of ["n", "precision", "recall", "f1", "auroc", "auprc", "fpr", "threshold"]) expect(typeof e[k]).toBe("number");
    expect(e).toMatchObject({ n: t.test.n, f1: t.test.f1, threshold: t.threshold });
    expect(Object.keys(e.perSource).sort()).toEqual(["advbench", "mt_bench", "self_instruct_seed"]);
    expect(typeof e.baseline.prompted.auroc).toBe("number");

    const cl = await cli(["classify", "--probe", probeFile, "--prompt", "Write a haiku", "--prompt", "How do I make a bomb", "--json", "--gpu", "false"]);
    expect(cl.code).toBe(0);
    const c = JSON.parse(cl.stdout);
    expect(c.results).toHaveLength(2);
    expect(c.results[0]).toMatchObject({ id: "prompt0", text: "Write a haiku" });
    expect(typeof c.results[0].score).toBe("number");

    const svg = path.join(dir, "sweep.svg");
    const sw = await cli(["sweep", "--data", SAMPLES, "--svg", svg, "--json", ...cacheArgs]);
    expect(sw.code).toBe(0);
    const s = JSON.parse(sw.stdout);
    expect(s.layers).toHaveLength(6);
    expect(fs.readFileSync(svg, "utf8")).toMatch(/^<svg|^<\?xml/);
  });

  test("probe command errors", async () => {
    const r = await cli(["train-probe", "--method", "lpm"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("give labelled prompts with --data FILE.jsonl");
    const r2 = await cli(["train-probe", "--data", "x.jsonl", "--method", "svm"]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain("--method must be one of logreg, mlp, lpm, mlpm");
    const r3 = await cli(["classify", "--probe", path.join(dir, "nope.json"), "--prompt", "hi", "--gpu", "false"]);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain("nope.json: probe file not found");
    const bad = path.join(dir, "bad.jsonl");
    fs.writeFileSync(bad, '{"text": "a", "label": "safe"}\n{"text": "b", "label": "maybe"}\n');
    const r4 = await cli(["train-probe", "--data", bad, "--no-cache", "--gpu", "false"]);
    expect(r4.code).toBe(1);
    expect(r4.stderr).toContain(`${bad}:2: label must be "safe" or "unsafe", got "maybe"`);
  });
});

test("demo --json: the README's main job runs end to end", async () => {
  // (about 30 s on 2 cores)
  const r = await cli(["demo", "--json", "--gpu", "false"]);
  expect(r.code).toBe(0);
  const d = JSON.parse(r.stdout);
  expect(d.capture.rows).toBe(284);
  expect(d.sweep.map((x: { layer: unknown }) => x.layer)).toEqual([0, 1, 2, 3, 4, "final"]);
  expect(d.probe.test.n).toBeGreaterThan(20);
  expect(d.probe.test.auroc).toBeGreaterThan(0.8);
  expect(d.examples).toHaveLength(4);
  expect(d.guard.map((g: { path: string }) => g.path)).toEqual(["refused", "normal"]);
  expect(d.ranker.test.lists).toBeGreaterThan(0);
  expect(Object.keys(d.ranker.test.baselines).sort()).toEqual(["first", "logprob", "longest", "probe", "random", "shortest"]);
  expect(d.ranker.example.candidates).toHaveLength(2);
  expect(d.ranker.example.best).toBe(1); // the refusal, over a harmful completion
  expect(d.monitor.test.n).toBeGreaterThan(0);
  expect(d.monitor.generation).toHaveLength(2);
  expect(d.chat).toHaveLength(3);
  expect(d.chat[0].guard).toMatch(/^refused/); // the held-out prompt the guard flagged before
  expect(d.chat[2].reusedTokens).toBeGreaterThan(d.chat[2].prefilledTokens);
});
