/**
 * Corpus-scale capture from the model side: a real kill -9 and a resume give the bytes of an
 * uninterrupted run, shards merge into the unsharded file, long records follow one policy, and a
 * resume over another model or request is refused without touching what was captured.
 */
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";

import { CaptureFileError, loadModel, readCaptureInfo, readCaptureRows } from "../src";
import { MODEL, STORIES, maxAbsDiff, modelVariant, tmpDir } from "./helpers";

const run = promisify(execFile);
const CLI = path.join(__dirname, "..", "dist", "cli", "main.js");
const sha = (f: string) => createHash("sha256").update(fs.readFileSync(f)).digest("hex");
const cli = (args: string[]) => run(process.execPath, [CLI, ...args, "--threads", "1"], { timeout: 300_000, maxBuffer: 1 << 26 });

const dir = tmpDir();
const input = path.join(dir, "corpus.jsonl");
const N = 600;
beforeAll(() => {
  fs.writeFileSync(input, Array.from({ length: N }, (_, i) => JSON.stringify({ id: `r${i}`, text: `${STORIES[i % STORIES.length]} (${i})` })).join("\n") + "\n");
});

test("a capture killed with SIGKILL and resumed writes the bytes of an uninterrupted run", async () => {
  const base = ["capture", "--input", input, "--layers", "0,2,final", "--chunk-rows", "16", "--json"];
  const whole = path.join(dir, "whole.safetensors");
  await cli([...base, "--out", whole]);
  for (const [k, afterChunks] of [[0, 2], [1, 9]] as const) {
    const out = path.join(dir, `killed-${k}.safetensors`);
    const progress = `${out}.progress.json`;
    const child = spawn(process.execPath, [CLI, ...base, "--out", out, "--threads", "1"], { stdio: "ignore" });
    // kill once the progress file records `afterChunks` chunks (a chunk is one line after the request)
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        const lines = fs.existsSync(progress) ? fs.readFileSync(progress, "utf8").split("\n").filter(Boolean).length - 1 : 0;
        if (lines >= afterChunks) {
          clearInterval(t);
          child.kill("SIGKILL");
          resolve();
        }
      }, 5);
      child.on("exit", () => {
        clearInterval(t);
        resolve();
      });
      setTimeout(() => reject(new Error("the capture never got going")), 120_000).unref();
    });
    await new Promise((r) => child.on("close", r));
    expect(fs.existsSync(out)).toBe(false); // only the .partial: an unfinished capture never has the final name
    const refused = await cli([...base, "--out", out]).catch((e) => e);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("CAPTURE_IN_PROGRESS");
    const r = JSON.parse((await cli([...base, "--out", out, "--resume"])).stdout);
    expect(r.resumed).toBe(true);
    expect(r.rows).toBe(N);
    expect(sha(out)).toBe(sha(whole));
    expect(fs.existsSync(progress)).toBe(false);
  }
});

test("shards merge into one file equal to the unsharded capture; one file per layer on request", async () => {
  const whole = path.join(dir, "whole2.safetensors");
  await cli(["capture", "--input", input, "--layers", "1,final", "--chunk-rows", "32", "--out", whole]);
  const shards = [0, 1, 2].map((i) => path.join(dir, `shard-${i}.safetensors`));
  for (const [i, s] of shards.entries()) {
    const r = JSON.parse((await cli(["capture", "--input", input, "--layers", "1,final", "--chunk-rows", "32", "--shard", `${i}/3`, "--out", s, "--json"])).stdout);
    expect([r.rowStart, r.rowEnd]).toEqual([Math.floor((i * N) / 3), Math.floor(((i + 1) * N) / 3)]);
  }
  const merged = path.join(dir, "merged.safetensors");
  const m = JSON.parse((await run(process.execPath, [CLI, "merge", shards[2], shards[0], shards[1], "--out", merged, "--json"])).stdout);
  expect(m.complete).toBe(true);
  // the same rows, ids and metadata; values within float rounding (a shard's chunks start at its first
  // row, so llama.cpp sees other batch shapes than in the unsharded run: ~1e-6, as another batchSize)
  const [a, b] = [await readCaptureInfo(merged), await readCaptureInfo(whole)];
  expect(a.metadata.row_ids).toBe(b.metadata.row_ids);
  expect(a.metadata.token_counts).toBe(b.metadata.token_counts);
  for (const l of [1, "final"] as const) {
    const [x, y] = [await readCaptureRows(merged, l), await readCaptureRows(whole, l)];
    expect(x.length).toBe(y.length);
    expect(maxAbsDiff(x, y)).toBeLessThan(1e-4);
  }
  // a gap is refused
  const gap = await run(process.execPath, [CLI, "merge", shards[0], shards[2], "--out", path.join(dir, "gap.safetensors")]).catch((e) => e);
  expect(gap.code).toBe(1);
  expect(gap.stderr).toMatch(/MERGE_RANGES|missing|gap/i);
  // split layers: one file per layer, the same rows
  const split = path.join(dir, "split.safetensors");
  const r = JSON.parse((await cli(["capture", "--input", input, "--layers", "1,final", "--chunk-rows", "32", "--split-layers", "--out", split, "--json"])).stdout);
  expect(r.files.map((f: string) => path.basename(f))).toEqual(["split.layer-1.safetensors", "split.layer-final.safetensors"]);
  expect(maxAbsDiff(await readCaptureRows(r.files[1], "final"), await readCaptureRows(whole, "final"))).toBe(0);
});

test("long records: skip (counted and listed), truncate (the end kept), error (typed; finished chunks stay)", async () => {
  const long = path.join(dir, "long.jsonl");
  const texts = ["Once upon a time.", "A cat sat. ".repeat(60), "The dog ran.", "A big tree grew. ".repeat(60)];
  fs.writeFileSync(long, texts.map((t, i) => JSON.stringify({ id: `x${i}`, text: t })).join("\n") + "\n");
  const base = ["capture", "--input", long, "--layers", "2", "--context-size", "64", "--chunk-rows", "2", "--json"];
  const skip = JSON.parse((await cli([...base, "--out", path.join(dir, "skip.safetensors")])).stdout);
  expect(skip).toMatchObject({ rows: 4, captured: 2, skipped: 2, skippedIds: ["x1", "x3"], truncated: 0 });
  const info = await readCaptureInfo(path.join(dir, "skip.safetensors"));
  expect(JSON.parse(info.metadata.skipped_rows)).toEqual([1, 3]);
  const trunc = JSON.parse((await cli([...base, "--on-long", "truncate", "--out", path.join(dir, "trunc.safetensors")])).stdout);
  expect(trunc).toMatchObject({ captured: 4, skipped: 0, truncated: 2, truncatedIds: ["x1", "x3"] });
  // a truncated row equals the capture of its last tokens (BOS kept)
  const model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1, contextSize: 64 });
  try {
    const limit = model.info.contextSize; // llama.cpp pads the context to a multiple of 256
    const full = model.tokenize(texts[1]);
    expect(full.length).toBeGreaterThan(limit);
    const cut = Int32Array.from([full[0], ...full.subarray(full.length - (limit - 1))]);
    const acts = await model.capture({ tokens: cut, offsets: Uint32Array.of(0, limit) }, { layers: [2] });
    const rows = await readCaptureRows(path.join(dir, "trunc.safetensors"), 2);
    expect(maxAbsDiff(rows.subarray(64, 128), acts.layer(2))).toBeLessThan(1e-5);
  } finally {
    await model.dispose();
  }
  const err = await cli([...base, "--on-long", "error", "--out", path.join(dir, "err.safetensors")]).catch((e) => e);
  expect(err.code).toBe(1);
  expect(err.stderr).toContain("TEXT_TOO_LONG");
  expect(err.stderr).toContain("id x1");
  expect(fs.existsSync(path.join(dir, "err.safetensors.progress.json"))).toBe(true); // nothing finished is lost
});

test("a resume over another model, other layers, or a damaged file is refused and changes nothing", async () => {
  const out = path.join(dir, "guarded.safetensors");
  const base = ["capture", "--input", input, "--layers", "1", "--chunk-rows", "16", "--out", out];
  const child = spawn(process.execPath, [CLI, ...base, "--threads", "1"], { stdio: "ignore" });
  const progress = `${out}.progress.json`;
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      if (fs.existsSync(progress) && fs.readFileSync(progress, "utf8").split("\n").filter(Boolean).length >= 3) {
        clearInterval(t);
        child.kill("SIGKILL");
        resolve();
      }
    }, 5);
  });
  await new Promise((r) => child.on("close", r));
  const before = [sha(`${out}.partial`), sha(progress)];
  const other = await modelVariant({ template: "{{ messages[0]['content'] }}" });
  const withLayers = (l: string) => base.map((a, i) => (base[i - 1] === "--layers" ? l : a));
  const cases: [string[], RegExp][] = [
    [[...base, "--resume", "--model", other], /fingerprint/],
    [[...withLayers("2"), "--resume"], /layers/],
  ];
  for (const [args, field] of cases) {
    const e = await cli(args).catch((x) => x);
    expect(e.code).toBe(1);
    expect(e.stderr).toContain("RESUME_MISMATCH");
    expect(e.stderr).toMatch(field);
    expect([sha(`${out}.partial`), sha(progress)]).toEqual(before);
  }
  // the CaptureFileError type from the API
  const model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
  try {
    const e = await model.captureToFile(STORIES, { out, layers: [1], resume: true }).catch((x) => x);
    expect(e).toBeInstanceOf(CaptureFileError);
  } finally {
    await model.dispose();
  }
  expect([sha(`${out}.partial`), sha(progress)]).toEqual(before);
});
