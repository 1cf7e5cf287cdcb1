// The capture-file layer: writing, resuming, refusing mismatches, sharding, merging, reading (also
// from Python). Crash, disk-full and memory tests are in capture-file-crash.test.ts. About 6 s.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFile, mkdtemp, readFile, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CaptureFileError, FileFormatError } from "../src/errors";
import {
  CaptureReader, digestFile, layerFilePath, mergeCaptureFiles, openCaptureFile, parseShard, readCaptureInfo,
  readCaptureRows, shardRange, FINAL_METADATA_RESERVE, type CaptureFileOptions,
} from "../src/io/capture-file";
import { rangeJsonLength } from "../src/io/capture-layout";
import { readSafetensors, writeSafetensors } from "../src/io/safetensors";

// eslint-disable-next-line @typescript-eslint/no-var-requires
const synth = require("./fixtures/capture-synthetic.js") as {
  value: (r: number, l: number, j: number) => number;
  isSkipped: (r: number) => boolean;
  tokenCount: (r: number) => number;
  options: (cfg: object) => CaptureFileOptions;
  chunkData: (first: number, count: number, layers: unknown[], width: number) => Float32Array[];
  run: (cfg: object) => Promise<unknown>;
};

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safety-lens-capfile-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
const fresh = (name = "acts") => join(dir, `${name}-${n++}.safetensors`);
const sha = async (p: string) => createHash("sha256").update(await readFile(p)).digest("hex");

const LAYERS = [0, 5, "final"];
const base = (out: string, extra: object = {}) => ({ out, layers: LAYERS, width: 24, rows: 200, chunk: 13, ...extra });

async function captureError(p: Promise<unknown>, code: string, fragment: string, field?: string): Promise<CaptureFileError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CaptureFileError);
  const e = err as CaptureFileError;
  expect(e.code).toBe(code);
  expect(e.message).toContain(fragment);
  if (field !== undefined) expect(e.field).toBe(field);
  return e;
}

function expectRows(data: Float32Array, first: number, count: number, layer: number, width: number): void {
  for (let k = 0; k < count; k++) {
    const r = first + k;
    for (let j = 0; j < width; j++) {
      const want = synth.isSkipped(r) ? 0 : synth.value(r, layer, j);
      if (data[k * width + j] !== want) throw new Error(`row ${r} layer ${layer} col ${j}: ${data[k * width + j]} != ${want}`);
    }
  }
}

describe("shards", () => {
  test("shardRange covers [0, N) contiguously, sizes differ by at most one", () => {
    for (const rows of [0, 1, 7, 100, 86001]) {
      for (const count of [1, 2, 3, 7, 16, 150]) {
        let at = 0;
        const sizes: number[] = [];
        for (let i = 0; i < count; i++) {
          const [a, b] = shardRange(i, count, rows);
          expect(a).toBe(at);
          expect(a).toBe(Math.floor((i * rows) / count));
          sizes.push(b - a);
          at = b;
        }
        expect(at).toBe(rows);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      }
    }
    expect(shardRange(2, 3, 2 ** 52)).toEqual([Number((2n * 2n ** 52n) / 3n), 2 ** 52]);
  });

  test("parseShard and bad shards", () => {
    expect(parseShard("0/4")).toEqual({ index: 0, count: 4 });
    expect(parseShard(" 3/4 ")).toEqual({ index: 3, count: 4 });
    expect(() => parseShard("4/4")).toThrow(new RangeError("shard index must be an integer in 0-3 for 4 shards, got 4"));
    expect(() => parseShard("1/0")).toThrow(new RangeError("shard count must be a positive integer, got 0"));
    expect(() => parseShard("a/b")).toThrow('shard must look like i/n (0-based, e.g. 0/4), got "a/b"');
    expect(() => shardRange(0, 2, -1)).toThrow(RangeError);
  });
});

describe("writing", () => {
  test("a capture lands at its offsets and reads back (readSafetensors, reader, chunks)", async () => {
    const out = fresh();
    const summary = (await synth.run(base(out))) as { captured: number; skipped: number; files: string[] };
    const skipped = Array.from({ length: 200 }, (_, r) => r).filter(synth.isSkipped);
    expect(summary).toMatchObject({ captured: 200 - skipped.length, skipped: skipped.length, files: [out] });
    expect((await readdir(dir)).filter((f) => f.startsWith(out.split("/").pop()!))).toEqual([out.split("/").pop()]); // no sidecar or partial left

    const file = await readSafetensors(out);
    expect([...file.tensors.keys()]).toEqual(["layer.0", "layer.5", "layer.final"]);
    LAYERS.forEach((l, i) => {
      expect(file.tensors.get(`layer.${l}`)!.shape).toEqual([200, 24]);
      expectRows(file.tensors.get(`layer.${l}`)!.data, 0, 200, i, 24);
    });
    const m = file.metadata;
    expect(Object.keys(m)).toEqual([
      "format", "model_fingerprint", "layers", "pool", "total_rows", "row_start", "row_end", "source_digest", "row_ids",
      "chat", "model_path", "skipped_rows", "token_counts", "note",
    ]);
    expect(m).toMatchObject({ format: "safety-lens.activations/2", model_fingerprint: "synthetic-fp", layers: '[0,5,"final"]', pool: "last", total_rows: "200", row_start: "0", row_end: "200", note: "synthetic" });
    expect(JSON.parse(m.skipped_rows)).toEqual(skipped);
    expect(JSON.parse(m.token_counts)).toEqual(Array.from({ length: 200 }, (_, r) => synth.tokenCount(r)));
    expect(JSON.parse(m.row_ids)).toEqual(Array.from({ length: 200 }, (_, r) => `row-${r}`));

    const info = await readCaptureInfo(out);
    expect(info).toMatchObject({ layers: LAYERS, width: 24, rows: 200, totalRows: 200, complete: true, fingerprint: "synthetic-fp", skippedRows: skipped });
    expectRows(await readCaptureRows(out, 5, [37, 61]), 37, 24, 1, 24);
    const reader = await CaptureReader.open(out);
    let seen = 0;
    for await (const c of reader.chunks("final", { chunkRows: 64 })) {
      expectRows(c.data, c.firstRow, c.rows, 2, 24);
      seen += c.rows;
    }
    expect(seen).toBe(200);
    await expect(reader.readRows(7)).rejects.toThrow(`${out} has no layer.7 (layers: 0, 5, final)`);
    await expect(reader.readRows(0, 190, 201)).rejects.toThrow(`rows [190, 201) are outside ${out}'s rows [0, 200)`);
    await reader.close();
  });

  test("split layers: one file per layer, same rows, each loadable alone", async () => {
    const out = fresh("split");
    const single = fresh("single");
    await synth.run(base(out, { split: true }));
    await synth.run(base(single));
    LAYERS.forEach((l) => expect(layerFilePath(out, l as number)).toBe(out.replace(/\.safetensors$/, `.layer-${l}.safetensors`)));
    for (const [i, l] of LAYERS.entries()) {
      const f = await readSafetensors(layerFilePath(out, l as number));
      expect([...f.tensors.keys()]).toEqual([`layer.${l}`]);
      expect(f.metadata.layers).toBe(JSON.stringify([l]));
      expectRows(f.tensors.get(`layer.${l}`)!.data, 0, 200, i, 24);
      expect(Array.from(await readCaptureRows(layerFilePath(out, l as number), l as number))).toEqual(Array.from(await readCaptureRows(single, l as number)));
    }
  });

  test("progress view and missing ranges follow out-of-order chunks", async () => {
    const w = await openCaptureFile({ out: fresh(), layers: [1], width: 3, rows: 20, fingerprint: "f", pool: "mean" });
    const rows = (a: number, k: number) => [Float32Array.from({ length: 3 * k }, (_, i) => a + i)];
    await w.writeRows(5, rows(5, 5));
    await w.writeRows(15, rows(15, 2));
    await w.markSkipped([0, 19]);
    expect(w.progress).toEqual({ rowStart: 0, rowEnd: 20, rows: 20, captured: 7, skipped: 2, done: 9, nextRow: 1, complete: false });
    expect(w.missingRanges()).toEqual([[1, 5], [10, 15], [17, 19]]);
    await captureError(w.finish(), "CAPTURE_INCOMPLETE", "cannot finish: 11 of 20 rows are missing (first missing row 1)");
    await w.writeRows(0, rows(0, 20)); // overwriting done rows is allowed; a skipped row becomes captured
    expect(w.progress).toMatchObject({ captured: 20, skipped: 0, nextRow: null, complete: true });
    await w.finish();
    await captureError(w.writeRows(0, rows(0, 1)), "CAPTURE_CLOSED", "the capture writer was finished or closed");
  });

  test("a chunk with skipped rows: captured rows fill the others in order, skipped ones are zeros, one progress record", async () => {
    const out = fresh();
    const w = await openCaptureFile({ out, layers: [0, 1], width: 2, rows: 8, fingerprint: "f", pool: "last", tokenCounts: true });
    const cap = (k: number, base: number) => Float32Array.from({ length: 2 * k }, (_, i) => base + i);
    await w.writeRows(0, [new Float32Array(8).fill(9), new Float32Array(8).fill(9)], { tokenCounts: [1, 1, 1, 1] }); // to be overwritten
    await w.writeRows(0, [cap(3, 10), cap(3, 20)], { skipped: [0, 2, 3], tokenCounts: [5, 6, 7, 8, 9, 10] });
    await w.writeRows(6, [new Float32Array(0), new Float32Array(0)], { skipped: [6, 7], tokenCounts: [11, 12] }); // all skipped
    expect(w.progress).toMatchObject({ captured: 3, skipped: 5, complete: true });
    await w.close();
    const lines = (await readFile(`${out}.progress.json`, "utf8")).trim().split("\n").slice(1).map((l) => JSON.parse(l));
    expect(lines[1]).toEqual({ rows: [0, 6], skipped: [0, 2, 3], tokens: [5, 6, 7, 8, 9, 10] });
    const again = await openCaptureFile({ out, layers: [0, 1], width: 2, rows: 8, fingerprint: "f", pool: "last", tokenCounts: true, resume: true });
    expect(again.progress).toMatchObject({ captured: 3, skipped: 5, complete: true });
    await again.finish();
    expect(Array.from(await readCaptureRows(out, 0))).toEqual([0, 0, 10, 11, 0, 0, 0, 0, 12, 13, 14, 15, 0, 0, 0, 0]);
    expect(Array.from(await readCaptureRows(out, 1, [1, 2]))).toEqual([20, 21]);
    expect(await readCaptureInfo(out)).toMatchObject({ skippedRows: [0, 2, 3, 6, 7], tokenCounts: [5, 6, 7, 8, 9, 10, 11, 12] });
  });

  test("bad chunks and options are typed errors that leave the writer usable", async () => {
    const out = fresh();
    const w = await openCaptureFile({ out, layers: [0, 1], width: 4, rows: 10, fingerprint: "f", pool: "last", tokenCounts: true });
    const two = (k: number) => [new Float32Array(4 * k), new Float32Array(4 * k)];
    await expect(w.writeRows(0, [new Float32Array(4)])).rejects.toThrow(new TypeError("writeRows: perLayer must hold one Float32Array per layer (2), got 1"));
    await expect(w.writeRows(0, [new Float32Array(4), new Float64Array(4) as unknown as Float32Array])).rejects.toThrow("writeRows: perLayer[1] must be a Float32Array");
    await expect(w.writeRows(0, [new Float32Array(6), new Float32Array(6)])).rejects.toThrow("writeRows: perLayer[0] has 6 floats, not a positive multiple of the width 4");
    await expect(w.writeRows(0, [new Float32Array(8), new Float32Array(4)])).rejects.toThrow("writeRows: perLayer[1] has 1 rows, perLayer[0] 2");
    await expect(w.writeRows(9, two(2), { tokenCounts: [1, 1] })).rejects.toThrow(new RangeError("writeRows: rows 9-10 run past this file's rows [0, 10)"));
    await expect(w.writeRows(10, two(1), { tokenCounts: [1] })).rejects.toThrow(new RangeError("writeRows: row 10 is outside this file's rows [0, 10)"));
    await expect(w.writeRows(0, two(1))).rejects.toThrow("writeRows: tokenCounts is required (the file records token counts)");
    await expect(w.writeRows(0, two(2), { tokenCounts: [1] })).rejects.toThrow("writeRows: tokenCounts has 1 values for 2 rows");
    await expect(w.writeRows(0, two(1), { tokenCounts: [-1] })).rejects.toThrow("writeRows: token counts must be integers in 0-2147483647, got -1");
    await expect(w.markSkipped([3.5])).rejects.toThrow("markSkipped: row 3.5 is outside this file's rows [0, 10)");
    await expect(w.writeRows(0, two(2), { skipped: [3], tokenCounts: [1, 1, 1] })).rejects.toThrow("writeRows: skipped must be increasing row numbers inside the chunk's rows 0-2, got 3");
    await expect(w.writeRows(0, two(1), { skipped: [1, 1], tokenCounts: [1, 1, 1] })).rejects.toThrow("got 1");
    await expect(w.writeRows(8, two(1), { skipped: [9, 10], tokenCounts: [1, 1, 1] })).rejects.toThrow("writeRows: rows 8-10 run past this file's rows [0, 10)");
    await expect(w.writeRows(0, two(1), { skipped: [1], tokenCounts: [1] })).rejects.toThrow("writeRows: tokenCounts has 1 values for 2 rows");
    await w.writeRows(0, two(10), { tokenCounts: new Int32Array(10).fill(3) });
    await expect(w.finish({ "bad key": "x" })).rejects.toThrow('finalMetadata key "bad key" must match');
    await expect(w.finish({ skipped_rows: "x" })).rejects.toThrow('finalMetadata key "skipped_rows" is reserved for the capture file itself');
    await expect(w.finish({ big: "x".repeat(5000) })).rejects.toThrow(RangeError);
    await w.finish({ small: "ok" }); // still finishable after the refused metadata
    expect((await readSafetensors(out)).metadata.small).toBe("ok");

    const ok = { out: fresh(), layers: [0], width: 4, rows: 3, fingerprint: "f", pool: "last" };
    await expect(openCaptureFile({ ...ok, layers: [] })).rejects.toThrow('layers must be a non-empty array of layer numbers or "final"');
    await expect(openCaptureFile({ ...ok, layers: [1, 1] })).rejects.toThrow("layer 1 appears twice in layers");
    await expect(openCaptureFile({ ...ok, width: 0 })).rejects.toThrow("width must be a positive integer, got 0");
    await expect(openCaptureFile({ ...ok, rowIds: ["a"] })).rejects.toThrow("rowIds must be an array of 3 strings (the ids of all input rows)");
    await expect(openCaptureFile({ ...ok, metadata: { layers: "x" } })).rejects.toThrow('metadata key "layers" is reserved');
    await expect(openCaptureFile({ ...ok, shard: { index: 2, count: 2 } })).rejects.toThrow("shard index must be an integer in 0-1 for 2 shards, got 2");
    await expect(openCaptureFile({ ...ok, resume: true, overwrite: true })).rejects.toThrow("resume and overwrite cannot both be set");
    await expect(openCaptureFile({ ...ok, rows: 50_000_000, layers: [0], tokenCounts: true })).rejects.toThrow("over safetensors' 100000000-byte limit; capture it in shards");
  });

  test("the reserved header holds the worst case: every row skipped, every token count 2^31-1, 4 KiB of final metadata", async () => {
    for (const [a, b] of [[0, 0], [0, 1], [0, 10], [7, 12], [95, 1005], [99_990, 100_020]]) {
      expect(rangeJsonLength(a, b)).toBe(JSON.stringify(Array.from({ length: b - a }, (_, i) => a + i)).length);
    }
    const out = fresh();
    const w = await openCaptureFile({ out, layers: [3], width: 2, rows: 20_000, shard: { index: 1, count: 2 }, fingerprint: "f", pool: "last", tokenCounts: true });
    const rows = Array.from({ length: 10_000 }, (_, i) => 10_000 + i);
    await w.markSkipped(rows, { tokenCounts: rows.map(() => 2147483647) });
    const finalMeta = { note: "n".repeat(FINAL_METADATA_RESERVE - 20) };
    await w.finish(finalMeta);
    const info = await readCaptureInfo(out);
    expect(info).toMatchObject({ skippedRows: rows, rowStart: 10_000, rowEnd: 20_000 });
    expect(info.metadata.note).toBe(finalMeta.note);
  });

  test("a file being written is valid safetensors (zeros where rows are missing) marked incomplete", async () => {
    const out = fresh();
    const w = await openCaptureFile({ out, layers: [2], width: 2, rows: 4, fingerprint: "f", pool: "last" });
    await w.writeRows(1, [new Float32Array([1, 2, 3, 4])]);
    await w.close();
    const partial = await readSafetensors(`${out}.partial`);
    expect(partial.metadata.status).toBe("incomplete");
    expect(Array.from(partial.tensors.get("layer.2")!.data)).toEqual([0, 0, 1, 2, 3, 4, 0, 0]);
    expect((await readCaptureInfo(`${out}.partial`)).complete).toBe(false);
  });
});

describe("resume", () => {
  async function interrupted(extra: object = {}): Promise<{ out: string; cfg: ReturnType<typeof base> }> {
    const out = fresh("resume");
    const cfg = base(out, extra);
    const w = await openCaptureFile(synth.options(cfg));
    await w.writeRows(0, synth.chunkData(0, 5, LAYERS, 24), { tokenCounts: [1, 2, 3, 4, 5].map((k) => synth.tokenCount(k - 1)) });
    await w.markSkipped([7], { tokenCounts: [synth.tokenCount(7)] });
    await w.close();
    return { out, cfg };
  }
  const snapshot = async (out: string) => [await sha(`${out}.partial`), await sha(`${out}.progress.json`)];

  test("resuming after close (and after a torn progress line) equals an uninterrupted run, byte for byte", async () => {
    const { out, cfg } = await interrupted();
    await appendFile(`${out}.progress.json`, '{"rows":[5,'); // a crash while appending
    const w = await openCaptureFile(synth.options(cfg));
    expect(w.resumed).toBe(true);
    expect(w.progress).toMatchObject({ captured: 5, skipped: 1, nextRow: 5 });
    expect(w.missingRanges()).toEqual([[5, 7], [8, 200]]);
    await w.close();
    await synth.run(cfg);
    const ref = fresh("ref");
    await synth.run(base(ref));
    expect(await sha(out)).toBe(await sha(ref));
  });

  test.each([
    ["fingerprint", { fingerprint: "other-model" }, "model_fingerprint", "another model"],
    ["layers", { layers: [0, 6, "final"] }, "layers", "other layers"],
    ["pool", { pool: "mean" }, "pool", "another pool"],
    ["width", { width: 32 }, "width", "another width"],
    ["rows", { rows: 201 }, "total_rows", "another row count"],
    ["input", { sourceDigest: "sha256:other" }, "source_digest", "another input file"],
    ["shard", { shard: { index: 0, count: 2 } }, "row_range", "another shard"],
    ["metadata", { modelPath: "/elsewhere.gguf" }, "model_path", 'other metadata "model_path"'],
    ["split", { split: true }, "split_layers", "one file per layer"],
  ])("another %s is refused with RESUME_MISMATCH and nothing changes", async (_what, change, field, phrase) => {
    const { out, cfg } = await interrupted();
    await appendFile(`${out}.progress.json`, '{"rows":[5,'); // even a torn line is left as it is
    const before = await snapshot(out);
    const e = await captureError(openCaptureFile(synth.options({ ...cfg, ...change })), "RESUME_MISMATCH", phrase, field);
    expect(e.file).toBe(`${out}.progress.json`);
    expect(e.message).toContain("nothing was changed");
    expect(await snapshot(out)).toEqual(before);
    await synth.run(cfg); // and the original request still resumes
  });

  test("a truncated, foreign or orphaned data file is refused with RESUME_INVALID and left alone", async () => {
    const a = await interrupted();
    await truncate(`${a.out}.partial`, 5000);
    const before = await snapshot(a.out);
    await captureError(openCaptureFile(synth.options(a.cfg)), "RESUME_INVALID", `${a.out}.partial: is truncated (5000 of`);
    expect(await snapshot(a.out)).toEqual(before);

    const b = await interrupted();
    await writeFile(`${b.out}.partial`, "this is not a safetensors file at all, but it is long enough");
    await captureError(openCaptureFile(synth.options(b.cfg)), "RESUME_INVALID", "nothing was changed");
    expect((await readFile(`${b.out}.partial`, "utf8")).startsWith("this is not")).toBe(true);

    const c = await interrupted();
    await rm(`${c.out}.progress.json`);
    await captureError(openCaptureFile(synth.options(c.cfg)), "RESUME_INVALID", `has no progress file (${c.out}.progress.json)`);

    const d = await interrupted();
    await rm(`${d.out}.partial`);
    await captureError(openCaptureFile(synth.options(d.cfg)), "RESUME_INVALID", "records 6 rows written to it");

    const e = await interrupted();
    await writeFile(`${e.out}.progress.json`, "garbage\n");
    await captureError(openCaptureFile(synth.options(e.cfg)), "RESUME_INVALID", "is not a capture progress file");
  });

  test("a data file torn while it was created (nothing recorded yet) is created afresh", async () => {
    const out = fresh("torn-create");
    const cfg = base(out);
    const w = await openCaptureFile(synth.options(cfg));
    await w.close();
    await truncate(`${out}.partial`, 3);
    await synth.run(cfg);
    const ref = fresh("ref");
    await synth.run(base(ref));
    expect(await sha(out)).toBe(await sha(ref));
  });

  test("a new capture over an unfinished one is refused unless resumed or overwritten", async () => {
    const { out, cfg } = await interrupted();
    await captureError(openCaptureFile(synth.options({ ...cfg, resume: false })), "CAPTURE_IN_PROGRESS", "an unfinished capture is here (6 of 200 rows done); resume it (--resume) or start over (--overwrite)");
    const w = await openCaptureFile({ ...synth.options({ ...cfg, resume: false }), overwrite: true });
    expect(w.progress.done).toBe(0);
    await w.close();
  });

  test("resume over a finished file: reused when it matches, refused (untouched) when not", async () => {
    const out = fresh();
    await synth.run(base(out));
    const hash = await sha(out);
    const w = await openCaptureFile(synth.options(base(out)));
    expect(w.progress).toMatchObject({ complete: true, skipped: 4 });
    expect(await w.finish()).toMatchObject({ alreadyComplete: true, files: [out] });
    await captureError(openCaptureFile(synth.options(base(out, { layers: [0, 5] }))), "RESUME_MISMATCH", "other layers", "layers");
    expect(await sha(out)).toBe(hash);
    // Without resume a new capture replaces it only when finished (atomic rename).
    const fresh2 = await openCaptureFile(synth.options(base(out, { resume: false, layers: [0] })));
    expect(await sha(out)).toBe(hash);
    await fresh2.close();
  });
});

describe("merge", () => {
  const shardOf = (out: string, index: number, count: number, extra: object = {}) => base(out, { shard: { index, count }, ...extra });

  test("shards (one of them empty) merge into the bytes of an unsharded capture", async () => {
    const whole = fresh("whole");
    await synth.run(base(whole, { rows: 5 }));
    const parts = [0, 1, 2, 3, 4, 5, 6].map(() => fresh("part"));
    for (const [i, p] of parts.entries()) await synth.run(shardOf(p, i, 7, { rows: 5 }));
    expect((await readCaptureInfo(parts[0])).rows).toBe(0);
    const merged = fresh("merged");
    const r = await mergeCaptureFiles([...parts].reverse(), merged);
    expect(r).toMatchObject({ rowStart: 0, rowEnd: 5, totalRows: 5, complete: true });
    expect(r.inputs).toEqual(parts);
    expect(await sha(merged)).toBe(await sha(whole));
  });

  test("larger shards merge in small copy chunks; split-layer shards merge per layer", async () => {
    const whole = fresh("whole");
    await synth.run(base(whole));
    const parts = [0, 1, 2].map(() => fresh("part"));
    for (const [i, p] of parts.entries()) await synth.run(shardOf(p, i, 3));
    expect((await readCaptureInfo(parts[1])).shard).toBe("1/3");
    const merged = fresh("merged");
    await mergeCaptureFiles(parts, merged, { chunkBytes: 4096 });
    expect(await sha(merged)).toBe(await sha(whole));

    const wholeSplit = fresh("wsplit");
    await synth.run(base(wholeSplit, { split: true }));
    const splitParts = [0, 1].map(() => fresh("spart"));
    for (const [i, p] of splitParts.entries()) await synth.run(shardOf(p, i, 2, { split: true }));
    const mergedSplit = fresh("msplit");
    await mergeCaptureFiles(splitParts.map((p) => layerFilePath(p, 5)), layerFilePath(mergedSplit, 5));
    expect(await sha(layerFilePath(mergedSplit, 5))).toBe(await sha(layerFilePath(wholeSplit, 5)));
  });

  test("mismatches, overlaps, gaps and partial coverage are refused, naming the file and field", async () => {
    const p = [0, 1, 2].map(() => fresh("m"));
    for (const [i, f] of p.entries()) await synth.run(shardOf(f, i, 3));
    const other = fresh("m-other");
    await synth.run(shardOf(other, 1, 3, { fingerprint: "another" }));
    const otherLayers = fresh("m-layers");
    await synth.run(shardOf(otherLayers, 1, 3, { layers: [0, 5] }));
    const otherPath = fresh("m-path");
    await synth.run(shardOf(otherPath, 1, 3, { modelPath: "/elsewhere/model.gguf" }));
    const overlap = fresh("m-overlap");
    await synth.run(shardOf(overlap, 1, 2));
    const out = fresh("m-out");
    await writeFile(out, "previous");

    const e1 = await captureError(mergeCaptureFiles([p[0], other, p[2]], out), "MERGE_MISMATCH", `differs from ${p[0]}: another model`, "model_fingerprint");
    expect(e1.file).toBe(other);
    await captureError(mergeCaptureFiles([p[0], otherLayers, p[2]], out), "MERGE_MISMATCH", "other layers", "layers");
    await captureError(mergeCaptureFiles([p[0], p[1], overlap], out), "MERGE_RANGES", "overlaps");
    await captureError(mergeCaptureFiles([p[0], p[2]], out), "MERGE_RANGES", "rows 66-132 are in no input (a gap between");
    await captureError(mergeCaptureFiles([p[0], p[1]], out), "MERGE_RANGES", "the inputs cover rows 0-132 of 200; rows 133-199 are missing");
    await expect(mergeCaptureFiles([p[0], p[1], p[0]], out)).rejects.toThrow("overlaps");
    await expect(mergeCaptureFiles([p[0], out], out)).rejects.toThrow(`out (${out}) must not be one of the inputs`);
    const notCapture = fresh("plain");
    await writeSafetensors(notCapture, [{ name: "x", shape: [1], data: new Float32Array(1) }], {});
    await expect(mergeCaptureFiles([p[0], notCapture], out)).rejects.toThrow(new FileFormatError(notCapture, 'not a safety-lens capture file (metadata "format" is null, expected "safety-lens.activations/2")'));
    expect(await readFile(out, "utf8")).toBe("previous"); // untouched by every refusal

    const partial = await mergeCaptureFiles([p[0], p[1]], out, { allowPartial: true });
    expect(partial).toMatchObject({ rowStart: 0, rowEnd: 133, complete: false });
    const info = await readCaptureInfo(out);
    expect(info).toMatchObject({ rowStart: 0, rowEnd: 133, totalRows: 200, shard: null });
    expectRows(await readCaptureRows(out, "final", [100, 133]), 100, 33, 2, 24);
    // model_path may differ between machines: the first input's is kept.
    await mergeCaptureFiles([p[0], otherPath, p[2]], out);
    expect(await sha(out)).toBe(await sha((await mergeCaptureFiles(p, fresh("again"))).out));

    const unfinished = fresh("unfinished");
    const w = await openCaptureFile(synth.options(shardOf(unfinished, 2, 3)));
    await w.close();
    await captureError(mergeCaptureFiles([p[0], p[1], `${unfinished}.partial`], out), "MERGE_MISMATCH", "is an unfinished capture", "status");
  });
});

describe("interoperability", () => {
  test("digestFile streams a sha256", async () => {
    const p = join(dir, "input.jsonl");
    await writeFile(p, '{"text":"a"}\n');
    expect(await digestFile(p)).toBe(`sha256:${createHash("sha256").update('{"text":"a"}\n').digest("hex")}`);
  });

  test("Python (numpy, parsing the header as the safetensors reference does) loads single, split and merged files", async () => {
    const single = fresh("py");
    await synth.run(base(single));
    const split = fresh("pysplit");
    await synth.run(base(split, { split: true }));
    const parts = [0, 1].map(() => fresh("pypart"));
    for (const [i, p] of parts.entries()) await synth.run(base(p, { shard: { index: i, count: 2 } }));
    const merged = fresh("pymerged");
    await mergeCaptureFiles(parts, merged);
    const files = [single, merged, ...LAYERS.map((l) => layerFilePath(split, l as number))];
    // numpy when installed (it is in this project's machine image), else the standard library's array.
    const script = `
import array, json, struct, sys
try:
    import numpy as np
except ImportError:
    np = None
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n <= 100_000_000 and n % 8 == 0
    text = raw[8:8 + n].decode("utf-8")
    assert text.startswith("{")          # the reference refuses other starts
    header = json.loads(text)            # trailing spaces are JSON whitespace
    meta = header.pop("__metadata__")
    assert all(isinstance(v, str) for v in meta.values())
    buf = memoryview(raw)[8 + n:]
    spans = sorted(tuple(t["data_offsets"]) for t in header.values())
    pos = 0
    for a, b in spans:
        assert a == pos; pos = b
    assert pos == len(buf)               # the buffer is covered exactly
    tensors = {}
    for k, t in header.items():
        assert t["dtype"] == "F32"
        part = buf[t["data_offsets"][0]:t["data_offsets"][1]]
        if np is not None:
            x = np.frombuffer(part, dtype="<f4").reshape(t["shape"])
            tensors[k] = (list(x.shape), str(x.dtype), x.reshape(-1).tolist())
        else:
            x = array.array("f"); x.frombytes(bytes(part))
            if sys.byteorder == "big": x.byteswap()
            tensors[k] = (t["shape"], "float32", x.tolist())
    return meta, tensors
out = {"numpy": np is not None}
for path in sys.argv[1:]:
    meta, tensors = load(path)
    start, end = int(meta["row_start"]), int(meta["row_end"])
    skipped = set(json.loads(meta["skipped_rows"]))
    bad = 0
    for name, (shape, dtype, flat) in tensors.items():
        l = ${JSON.stringify(LAYERS.map(String))}.index(name.split(".", 1)[1])
        width = shape[1]
        for i, r in enumerate(range(start, end)):
            for j in range(width):
                want = 0.0 if r in skipped else ((r * 131 + l * 17 + j * 7) % 1000) / 8 - 60
                bad += flat[i * width + j] != want
    out[path] = {"shapes": {k: v[0] for k, v in tensors.items()}, "dtypes": sorted({v[1] for v in tensors.values()}), "bad": bad,
                 "tokens": json.loads(meta["token_counts"])[:3], "ids": json.loads(meta["row_ids"])[-1]}
print(json.dumps(out))
`;
    const res = JSON.parse(execFileSync("python3", ["-c", script, ...files], { encoding: "utf8" }));
    // eslint-disable-next-line no-console
    if (!res.numpy) console.log("numpy is not installed: checked with Python's array module");
    expect(res[single]).toEqual({ shapes: { "layer.0": [200, 24], "layer.5": [200, 24], "layer.final": [200, 24] }, dtypes: ["float32"], bad: 0, tokens: [1, 38, 75], ids: "row-199" });
    expect(res[merged]).toEqual(res[single]);
    LAYERS.forEach((l) => expect(res[layerFilePath(split, l as number)]).toMatchObject({ shapes: { [`layer.${l}`]: [200, 24] }, bad: 0 }));
  });

  test("old whole-file captures (format 1, written by writeSafetensors) are read as plain layer files", async () => {
    const p = fresh("v1");
    const data = Float32Array.from({ length: 6 }, (_, i) => i);
    await writeSafetensors(p, [{ name: "layer.3", shape: [3, 2], data }, { name: "layer.final", shape: [3, 2], data }], { format: "safety-lens.activations/1", row_ids: '["a","b","c"]', token_counts: "[4,5,6]" });
    expect(await readCaptureInfo(p)).toMatchObject({ layers: [3, "final"], rows: 3, width: 2, rowIds: ["a", "b", "c"], tokenCounts: [4, 5, 6], complete: true });
    expect(Array.from(await readCaptureRows(p, "final", [1, 3]))).toEqual([2, 3, 4, 5]);
    const odd = fresh("odd");
    await writeSafetensors(odd, [{ name: "weights", shape: [2], data: new Float32Array(2) }], {});
    await expect(readCaptureInfo(odd)).rejects.toThrow('tensor "weights" is not a captured layer');
  });
});
