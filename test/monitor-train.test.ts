/**
 * Training and evaluating a monitor from response lists, from the library and the CLI.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";

import { loadModel, type Model } from "../src";
import { Monitor } from "../src/monitor/monitor";
import { evaluateMonitor, trainMonitor } from "../src/monitor/train";
import { MODEL, tmpDir } from "./helpers";

const run = promisify(execFile);
const CLI = path.join(__dirname, "..", "dist", "cli", "main.js");
const LISTS = path.join(__dirname, "..", "samples", "responses.jsonl");

describe("monitor training", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
  });
  afterAll(() => model.dispose());

  test("trainMonitor sweeps layers on validation, calibrates the FPR, and evaluateMonitor reproduces its test figures", async () => {
    const r = await trainMonitor(model, { files: [LISTS], maxResponseTokens: 24, targetFpr: 0.1, seed: 2 });
    expect(r.sweep.map((s) => s.layer)).toEqual([0, 1, 2, 3, 4]);
    const best = r.sweep.reduce((a, b) => (b.val.f1 > a.val.f1 || (b.val.f1 === a.val.f1 && b.val.auroc > a.val.auroc) ? b : a));
    expect(r.monitor.layer).toBe(best.layer);
    // the threshold holds the target false-positive rate on the validation responses
    expect(r.validation.fpr).toBeLessThanOrEqual(0.1);
    for (const m of [r.validation, r.test]) {
      for (const k of ["recall", "fpr", "precision", "f1"] as const) {
        expect(m[k]).toBeGreaterThanOrEqual(0);
        expect(m[k]).toBeLessThanOrEqual(1);
      }
    }
    expect(r.test.n).toBeGreaterThan(0);
    expect(Object.keys(r.test.baselines)).toEqual(["endOfResponse", "promptOnly"]);
    const e = await evaluateMonitor(model, r.monitor, { files: [LISTS], seed: 2, split: "test" });
    expect(e).toEqual(r.test);
  });

  test("train-monitor and eval-monitor on the command line", async () => {
    const dir = tmpDir();
    const out = path.join(dir, "monitor.json");
    const t = await run(process.execPath, [CLI, "train-monitor", "--data", LISTS, "--layer", "2", "--rule", "mean", "--window", "4", "--max-response-tokens", "16", "--out", out, "--json", "--threads", "1"]);
    const tj = JSON.parse(t.stdout);
    expect(tj).toMatchObject({ out, layer: 2, method: "logreg", rule: { kind: "mean", window: 4 } });
    const m = await Monitor.load(out, model);
    expect(m.rule.window).toBe(4);
    const e = await run(process.execPath, [CLI, "eval-monitor", "--monitor", out, "--data", LISTS, "--json", "--threads", "1"]);
    const ej = JSON.parse(e.stdout);
    for (const k of ["recall", "fpr", "f1", "meanFractionRead", "baselines"]) expect(ej).toHaveProperty(k);
    expect(ej.n).toBe(tj.test.n);
    const bad = await run(process.execPath, [CLI, "train-monitor", "--data", LISTS, "--method", "mlp"]).catch((x) => x);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--method must be logreg or lpm, got "mlp"');
    expect(fs.existsSync(out)).toBe(true);
  });
});
