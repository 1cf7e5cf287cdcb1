/**
 * Reliability: what an attacker or a careless caller does must never take the process
 * down or make a check fail open.
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";

import { loadModel, type Model } from "../src";
import { MODEL, STORIES, maxAbsDiff } from "./helpers";

const run = promisify(execFile);
const ROOT = path.join(__dirname, "..");

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
