/**
 * Architectures x quantizations: random-weight models of each architecture users bring
 * (src/tools/arch-specs.ts), made at test time by createSyntheticModel and llama.cpp's own
 * quantizer, each checked like the embedded model (src/tools/arch-matrix.ts has the checks and
 * why their tolerances are what they are). Every cell runs: 57-62 s of CPU time, single-threaded
 * (measured 51 s wall at load average ~1.5, 96 s at 8, 194 s at 14). SAFETY_LENS_MATRIX=ci
 * keeps every architecture at q4_k_m plus llama at f16 and q8_0.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { CaptureError, loadModel } from "../src";
import { embed, graphProbe } from "../src/core/internal";
import { readGgufInfo } from "../src/io/gguf";
import {
  BATCH_VARIATION,
  cellFailures,
  type CellResult,
  formatMatrix,
  MATRIX_ARCHS,
  MATRIX_SIZE,
  MATRIX_TOLERANCE,
  MatrixModels,
  runCell,
} from "../src/tools/arch-matrix";
import { QUANT_TYPES, type QuantType } from "../src/tools/quantize";

const CI_SUBSET = process.env.SAFETY_LENS_MATRIX === "ci";
const CELLS: [string, QuantType][] = MATRIX_ARCHS.flatMap((arch) =>
  QUANT_TYPES.filter((q) => !CI_SUBSET || q === "q4_k_m" || arch === "llama").map((q): [string, QuantType] => [arch, q]),
);

let dir: string;
let models: MatrixModels;
const results: CellResult[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safety-lens-matrix-"));
  models = new MatrixModels(dir, [...MATRIX_ARCHS, "bert"]);
});

afterAll(async () => {
  if (results.length) process.stderr.write(`${formatMatrix(results)}\n`);
  await rm(dir, { recursive: true, force: true });
});

test("the files are what was asked: llama.cpp's quantizer chose k-quants for every matrix of q4_k_m", async () => {
  const path = await models.path("granite", "q4_k_m");
  const info = await readGgufInfo(path);
  expect(info.metadata["general.architecture"]).toBe("granite");
  expect(info.metadata["general.file_type"]).toBe(15); // LLAMA_FTYPE_MOSTLY_Q4_K_M
  const types = new Map(info.tensors.map((t) => [t.name, t.type]));
  expect(types.get("blk.0.ffn_gate.weight")).toBe(12); // Q4_K: rows of 256
  expect(types.get("token_embd.weight")).toBe(14); // Q6_K: tied output head
  expect(types.get("blk.0.attn_norm.weight")).toBe(0); // F32
});

describe.each(MATRIX_ARCHS)("%s", (arch) => {
  afterAll(() => models.remove(arch));

  test.each(CELLS.filter(([a]) => a === arch).map(([, q]) => q))(
    `${arch} %s: loads; batched = one at a time, early exit = full pass, "final" = llama.cpp's embeddings, greedy generation`,
    async (quant) => {
      const r = await runCell(models, arch, quant);
      results.push(r);
      expect(cellFailures(r)).toEqual([]);
      // the same, spelled out
      expect(r.error).toBeNull();
      expect(r.earlyExitVsFull).toBe(0);
      expect(r.finalVsEmbed).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(r.finalBatchedVsSingle - r.embedBatchedVsSingle)).toBeLessThanOrEqual(1e-5);
      if (quant === "q8_0") {
        expect(r.batchedVsSingle).toBeLessThanOrEqual(MATRIX_TOLERANCE);
        expect(r.generateVsCapture).toBeLessThanOrEqual(MATRIX_TOLERANCE);
      } else {
        expect(r.batchedVsSingleRel).toBeLessThanOrEqual(BATCH_VARIATION[quant]);
        expect(r.generateVsCaptureRel).toBeLessThanOrEqual(BATCH_VARIATION[quant]);
      }
      expect(r.generated).toBe(4);
      expect(r.deterministic).toBe(true);
    },
  );
});

test("an architecture whose graph names no l_out-<n> (bert) is refused up front with CaptureError LAYERS_UNSUPPORTED", async () => {
  const path = await models.path("bert", "f16");
  const model = await loadModel({ modelPath: path, threads: 1, gpu: false, contextSize: 256 });
  try {
    const probe = graphProbe(model);
    expect(probe).toMatchObject({ layers: [], resultNorm: false });
    expect(probe.nodes).toBeGreaterThan(50);
    const progress: unknown[] = [];
    const err = await model.capture(["Hello world"], { layers: [0, 3], onProgress: (p) => progress.push(p) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureError);
    expect(err).toMatchObject({
      code: "LAYERS_UNSUPPORTED",
      message:
        "layers 0, 3 cannot be captured from this model: llama.cpp's compute graph for the bert architecture names no layer outputs (l_out-<n>)",
    });
    expect(progress).toEqual([]); // refused before any batch was decoded
    await expect(model.capture(["Hello world"], { layers: ["final"] })).rejects.toThrow(
      'layer "final" cannot be captured from this model: llama.cpp\'s compute graph for the bert architecture names no final-norm output (result_norm)',
    );
    await expect(model.generate("Hello", { maxTokens: 2, capture: { layers: [1] } })).rejects.toBeInstanceOf(CaptureError);
    // the model stays usable for what its graph does give: llama.cpp's own embeddings
    const e = await embed(model, ["Hello world"]);
    expect(e.length).toBe(MATRIX_SIZE.width);
    expect(e.every(Number.isFinite)).toBe(true);
  } finally {
    await model.dispose();
    await models.remove("bert");
  }
});

test("the load-time graph probe sees every layer and stops after one node on the CPU", async () => {
  const model = await loadModel({ modelPath: join(__dirname, "..", "models", "stories260K.gguf"), threads: 1, gpu: false });
  try {
    const probe = graphProbe(model);
    expect(probe).toMatchObject({ layers: [0, 1, 2, 3, 4], resultNorm: true, aborted: true });
    expect(probe.ms).toBeLessThan(50); // measured ~0.2 ms: the graph is asked about, then aborted after its first node
    const acts = await model.capture(["Once upon a time"], { layers: [0, 4, "final"] });
    expect(acts.layer(4).some((v) => v !== 0)).toBe(true);
  } finally {
    await model.dispose();
  }
});

test("safety-lens synthetic writes a quantized model of the asked architecture", async () => {
  const out = join(dir, "cli-qwen3.gguf");
  const cli = join(__dirname, "..", "dist", "cli", "main.js");
  const { stdout } = await promisify(execFile)(process.execPath, [
    cli, "synthetic", "--arch", "qwen3", "--layers", "2", "--width", "256", "--ffn", "512", "--quant", "q8_0",
    "--vocab", "qwen2", "--vocab-dir", join(dir, "vocab"), "--out", out, "--json",
  ]);
  const info = JSON.parse(stdout);
  expect(info).toMatchObject({ arch: "qwen3", quant: "q8_0", layers: 2, width: 256, heads: 4, headsKv: 2, headDim: 128, ffn: 512, nVocab: 151936 });
  const gguf = await readGgufInfo(out);
  expect(gguf.fileSize).toBe(info.fileSize);
  expect(gguf.metadata["general.file_type"]).toBe(7); // LLAMA_FTYPE_MOSTLY_Q8_0
  expect(gguf.metadata["qwen3.attention.key_length"]).toBe(128);
  expect(gguf.tensors.find((t) => t.name === "blk.1.attn_q.weight")?.shape).toEqual([256, 512]);
  await rm(out);
});
