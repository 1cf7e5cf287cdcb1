/**
 * The architecture x quantization matrix: random-weight models of each architecture
 * (src/tools/arch-specs.ts) in f16, q8_0 and q4_k_m, each loaded and checked the way the
 * capture tests check the embedded model. test/arch-matrix.test.ts asserts on every cell (in CI);
 * `npm run matrix` (node dist/tools/arch-matrix.js [--arch=a,b] [--quant=q,r] [--dir=DIR]) runs
 * them outside jest and prints a Markdown table.
 */
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { CaptureInput, LayerSpec } from "../core/activations";
import { embed } from "../core/internal";
import { loadModel, type Model } from "../core/model";
import { SafetyLensError } from "../errors";
import { archSpec, SYNTHETIC_ARCHS } from "./arch-specs";
import { createSyntheticModel, extractLlamaVocabs } from "./synthetic";
import { QUANT_TYPES, quantizeModel, type QuantType } from "./quantize";

/** The architectures of the capture matrix (bert is the one without layer outputs). */
export const MATRIX_ARCHS: readonly string[] = SYNTHETIC_ARCHS.filter((a) => archSpec(a)!.namesLayerOutputs);

/**
 * Sizes of the matrix models: 4 layers x 256 wide (k-quants need rows of a multiple of 256:
 * width and ffn), 4 heads (2 KV heads), head size 64 or the architecture's own.
 */
export const MATRIX_SIZE = Object.freeze({ layers: 4, width: 256, ffn: 512, heads: 4, headsKv: 2, ctx: 512 });

/** Texts of several lengths (one a chat message: the vocab's chat template). */
export const MATRIX_TEXTS: readonly CaptureInput[] = [
  "The quick brown fox jumps over the lazy dog.",
  "Hi",
  [{ role: "user", content: "How do I bake bread at home?" }],
  "Safety probes read a model's hidden states, layer by layer, and score the prompt before any token is sampled.",
];

export interface CellResult {
  arch: string;
  quant: QuantType;
  fileSize: number;
  /** The error that stopped the cell (creation, quantization, load or a check), else null. */
  error: string | null;
  loadMs: number;
  /** Largest |batched - one text at a time| over every layer and "final", absolute and relative to the layer's largest |value|. */
  batchedVsSingle: number;
  batchedVsSingleRel: number;
  /** The same for "final" alone, and for llama.cpp's own embeddings output (its reference): equal when capture adds nothing. */
  finalBatchedVsSingle: number;
  embedBatchedVsSingle: number;
  /** Largest |early exit - full pass| at layer 1. */
  earlyExitVsFull: number;
  /** Largest |"final" - llama.cpp's embeddings output| for the same batch. */
  finalVsEmbed: number;
  /** Largest |hidden state read during generation - fresh capture of prompt + response|, absolute and relative. */
  generateVsCapture: number;
  generateVsCaptureRel: number;
  /** Tokens generated greedily, and whether a second run gave the same ones. */
  generated: number;
  deterministic: boolean;
  ms: number;
}

type Measured = Omit<CellResult, "arch" | "quant" | "fileSize" | "error" | "loadMs" | "ms">;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN propagates as NaN
  }
  return m;
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Runs the checks on one loaded model; numbers, no assertions. */
export async function checkModel(model: Model): Promise<Measured> {
  const n = model.info.nLayer;
  const d = model.info.nEmbd;
  const layers: LayerSpec[] = [...Array.from({ length: n }, (_, i) => i), "final"];
  const texts = MATRIX_TEXTS;

  const batched = await model.capture(texts, { layers });
  const embedded = await embed(model, texts);
  let batchedVsSingle = 0;
  let batchedVsSingleRel = 0;
  let finalBatchedVsSingle = 0;
  let embedBatchedVsSingle = 0;
  for (let t = 0; t < texts.length; t++) {
    const one = await model.capture([texts[t]], { layers });
    for (const l of layers) {
      const diff = maxAbsDiff(batched.get(l, t), one.get(l, 0));
      batchedVsSingle = Math.max(batchedVsSingle, diff);
      batchedVsSingleRel = Math.max(batchedVsSingleRel, diff / Math.max(1e-30, maxAbs(batched.layer(l))));
      if (l === "final") finalBatchedVsSingle = Math.max(finalBatchedVsSingle, diff);
    }
    embedBatchedVsSingle = Math.max(embedBatchedVsSingle, maxAbsDiff(embedded.subarray(t * d, (t + 1) * d), await embed(model, [texts[t]])));
  }

  const early = await model.capture(texts, { layers: [1], earlyExit: true });
  const full = await model.capture(texts, { layers: [1], earlyExit: false });
  const earlyExitVsFull = maxAbsDiff(early.layer(1), full.layer(1));

  const finalVsEmbed = maxAbsDiff(batched.layer("final"), embedded);

  const prompt = "Once upon a time";
  const read: LayerSpec[] = [n - 1, "final"];
  const opts = { maxTokens: 4, temperature: 0, ignoreEos: true, capture: { layers: read, prompt: true, response: "last" as const } };
  const g1 = await model.generate(prompt, opts);
  const g2 = await model.generate(prompt, opts);
  const c1 = g1.candidates[0];
  const c2 = g2.candidates[0];
  const deterministic = c1.tokens.length === c2.tokens.length && c1.tokens.every((t, i) => t === c2.tokens[i]);
  // The response's last hidden state read while generating, against a capture of prompt + response.
  const promptTokens = model.tokenize(prompt);
  const seq = new Int32Array(promptTokens.length + c1.tokens.length);
  seq.set(promptTokens);
  seq.set(c1.tokens, promptTokens.length);
  const fresh = await model.capture({ tokens: seq, offsets: Uint32Array.of(0, seq.length) }, { layers: read });
  let generateVsCapture = 0;
  let generateVsCaptureRel = 0;
  for (const l of read) {
    const diff = maxAbsDiff(c1.hidden.response!.get(l, 0), fresh.get(l, 0));
    generateVsCapture = Math.max(generateVsCapture, diff);
    generateVsCaptureRel = Math.max(generateVsCaptureRel, diff / Math.max(1e-30, maxAbs(fresh.get(l, 0))));
  }
  return {
    batchedVsSingle,
    batchedVsSingleRel,
    finalBatchedVsSingle,
    embedBatchedVsSingle,
    earlyExitVsFull,
    finalVsEmbed,
    generateVsCapture,
    generateVsCaptureRel,
    generated: c1.tokens.length,
    deterministic,
  };
}

/**
 * Writes the matrix's models into dir: per architecture an f16 file, and the quantized ones
 * from it (llama.cpp's quantizer). Returns the path of each cell's file.
 */
export class MatrixModels {
  private readonly f16 = new Map<string, Promise<string>>();
  private readonly quantized = new Map<string, Promise<string>>();
  private vocabs: Promise<Map<string, string>> | undefined;

  constructor(
    readonly dir: string,
    private readonly archs: readonly string[],
    private readonly threads = 1,
  ) {}

  /** Every vocab the architectures need, from one clone of llama.cpp's bundle. */
  private vocabPaths(): Promise<Map<string, string>> {
    this.vocabs ??= (async () => {
      const names = [...new Set(this.archs.map((a) => archSpec(a)!.vocab))];
      const paths = await extractLlamaVocabs(names, join(this.dir, "vocab"));
      return new Map(names.map((name, i) => [name, paths[i]]));
    })();
    return this.vocabs;
  }

  path(arch: string, quant: QuantType): Promise<string> {
    if (quant === "f16") {
      let p = this.f16.get(arch);
      if (!p) {
        p = (async () => {
          const vocabGguf = (await this.vocabPaths()).get(archSpec(arch)!.vocab)!;
          const out = join(this.dir, `${arch}-f16.gguf`);
          await createSyntheticModel({ out, arch, vocabGguf, ...MATRIX_SIZE });
          return out;
        })();
        this.f16.set(arch, p);
      }
      return p;
    }
    const key = `${arch}-${quant}`;
    let p = this.quantized.get(key);
    if (!p) {
      p = (async () => {
        const out = join(this.dir, `${key}.gguf`);
        await quantizeModel(await this.path(arch, "f16"), out, quant, { threads: this.threads });
        return out;
      })();
      this.quantized.set(key, p);
    }
    return p;
  }

  /** Deletes an architecture's files once its cells are done (all of them at once take ~1.5 GB). */
  async remove(arch: string): Promise<void> {
    const pending = [this.f16.get(arch), ...QUANT_TYPES.map((q) => this.quantized.get(`${arch}-${q}`))];
    await Promise.all(pending.map((p) => p?.catch(() => undefined)));
    this.f16.delete(arch);
    for (const q of QUANT_TYPES) {
      this.quantized.delete(`${arch}-${q}`);
      await rm(join(this.dir, `${arch}-${q}.gguf`), { force: true });
    }
  }
}

/** One cell: create (or reuse) the file, load it with one thread, run the checks. */
export async function runCell(models: MatrixModels, arch: string, quant: QuantType): Promise<CellResult> {
  const t0 = Date.now();
  const result: CellResult = {
    arch,
    quant,
    fileSize: 0,
    error: null,
    loadMs: 0,
    batchedVsSingle: NaN,
    batchedVsSingleRel: NaN,
    finalBatchedVsSingle: NaN,
    embedBatchedVsSingle: NaN,
    earlyExitVsFull: NaN,
    finalVsEmbed: NaN,
    generateVsCapture: NaN,
    generateVsCaptureRel: NaN,
    generated: 0,
    deterministic: false,
    ms: 0,
  };
  let model: Model | undefined;
  try {
    const path = await models.path(arch, quant);
    result.fileSize = (await stat(path)).size;
    const t1 = Date.now();
    model = await loadModel({ modelPath: path, threads: 1, gpu: false, contextSize: 256, sequences: 8 });
    result.loadMs = Date.now() - t1;
    Object.assign(result, await checkModel(model));
  } catch (e) {
    result.error = e instanceof SafetyLensError ? `${e.name} ${e.code}: ${e.message}` : String((e as Error)?.message ?? e);
  } finally {
    await model?.dispose();
  }
  result.ms = Date.now() - t0;
  return result;
}

/** The tolerance of the comparisons that llama.cpp itself computes the same way (absolute). */
export const MATRIX_TOLERANCE = 1e-4;

/**
 * How far a text's hidden states may move with what else shares its batch, relative to the
 * layer's largest |value|. With q8_0 weights llama.cpp's CPU kernels give every row the same
 * result in any batch (measured: 0), so capture is held to MATRIX_TOLERANCE. With F16 and
 * k-quant weights they do not: the activations are rounded to F16 / quantized to 8 bits
 * before each matrix product, and the ~1e-7 differences between the kernels llama.cpp picks
 * for different row counts now and then flip one rounding, which moves the state by one
 * rounding step (measured up to 5e-4 relative with F16, 1.4e-2 with q4_k_m, in llama.cpp's
 * own embeddings output too). There the bound only catches wrong rows (an O(1) error), and
 * capture is held to llama.cpp's own difference instead (checkCell).
 */
export const BATCH_VARIATION: Readonly<Record<QuantType, number>> = Object.freeze({ f16: 2e-3, q8_0: MATRIX_TOLERANCE, q4_k_m: 5e-2 });

/** What is wrong with a cell (empty: it passed). */
export function cellFailures(r: CellResult): string[] {
  if (r.error !== null) return [r.error];
  const out: string[] = [];
  const strict = r.quant === "q8_0";
  const batchOk = strict ? r.batchedVsSingle <= MATRIX_TOLERANCE : r.batchedVsSingleRel <= BATCH_VARIATION[r.quant];
  if (!batchOk) out.push(`batched vs single ${r.batchedVsSingle.toExponential(1)} (${r.batchedVsSingleRel.toExponential(1)} relative)`);
  // "final" is llama.cpp's embeddings output: batched vs single, capture moves exactly as llama.cpp does
  if (!(Math.abs(r.finalBatchedVsSingle - r.embedBatchedVsSingle) <= 1e-5)) {
    out.push(`"final" batched vs single ${r.finalBatchedVsSingle.toExponential(1)} but llama.cpp's own ${r.embedBatchedVsSingle.toExponential(1)}`);
  }
  if (r.earlyExitVsFull !== 0) out.push(`early exit vs full ${r.earlyExitVsFull}`);
  if (!(r.finalVsEmbed <= 1e-5)) out.push(`final vs embeddings ${r.finalVsEmbed.toExponential(1)}`);
  const genOk = strict ? r.generateVsCapture <= MATRIX_TOLERANCE : r.generateVsCaptureRel <= BATCH_VARIATION[r.quant];
  if (!genOk) out.push(`generate vs capture ${r.generateVsCapture.toExponential(1)} (${r.generateVsCaptureRel.toExponential(1)} relative)`);
  if (r.generated !== 4) out.push(`generated ${r.generated} tokens, not 4`);
  if (!r.deterministic) out.push("greedy generation not deterministic");
  return out;
}

export function cellPassed(r: CellResult): boolean {
  return cellFailures(r).length === 0;
}

/** A Markdown table of results. */
export function formatMatrix(results: readonly CellResult[]): string {
  const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;
  const e = (x: number): string => (Number.isNaN(x) ? "-" : x === 0 ? "0" : x.toExponential(1));
  const lines = [
    "| arch | quant | file | result | batched vs single, all layers (relative) | \"final\" batched vs single / llama.cpp's own | early exit vs full | final vs embeddings | generate vs capture (relative) | load | cell |",
    "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    const fails = cellFailures(r);
    lines.push(
      `| ${r.arch} | ${r.quant} | ${mb(r.fileSize)} | ${fails.length === 0 ? "pass" : `FAIL: ${fails.join("; ")}`} | ${e(r.batchedVsSingle)} (${e(r.batchedVsSingleRel)}) | ${e(r.finalBatchedVsSingle)} / ${e(r.embedBatchedVsSingle)} | ${e(r.earlyExitVsFull)} | ${e(r.finalVsEmbed)} | ${e(r.generateVsCapture)} (${e(r.generateVsCaptureRel)}) | ${(r.loadMs / 1000).toFixed(1)} s | ${(r.ms / 1000).toFixed(1)} s |`,
    );
  }
  return lines.join("\n");
}

/** `npm run matrix`: every architecture x every quantization; exits 1 when a cell fails. */
async function main(argv: string[]): Promise<number> {
  const archs = argv.find((a) => a.startsWith("--arch="))?.slice(7).split(",") ?? [...MATRIX_ARCHS];
  const quants = (argv.find((a) => a.startsWith("--quant="))?.slice(8).split(",") ?? [...QUANT_TYPES]) as QuantType[];
  for (const a of archs) if (!MATRIX_ARCHS.includes(a)) throw new RangeError(`unknown arch ${a}; one of ${MATRIX_ARCHS.join(", ")}`);
  for (const q of quants) if (!QUANT_TYPES.includes(q)) throw new RangeError(`unknown quant ${q}; one of ${QUANT_TYPES.join(", ")}`);
  const keep = argv.find((a) => a.startsWith("--dir="))?.slice(6);
  const dir = keep ?? (await mkdtemp(join(tmpdir(), "safety-lens-matrix-")));
  await mkdir(dir, { recursive: true });
  const models = new MatrixModels(dir, archs);
  const results: CellResult[] = [];
  const t0 = Date.now();
  try {
    for (const arch of archs) {
      for (const quant of quants) {
        const r = await runCell(models, arch, quant);
        results.push(r);
        process.stderr.write(`${arch} ${quant}: ${cellPassed(r) ? "pass" : `FAIL ${cellFailures(r).join("; ")}`} (${(r.ms / 1000).toFixed(1)} s)\n`);
      }
      if (!keep) await models.remove(arch);
    }
  } finally {
    if (!keep) await rm(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${formatMatrix(results)}\n\n${results.filter(cellPassed).length}/${results.length} passed in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  return results.every(cellPassed) ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e) => {
      process.stderr.write(`${(e as Error).stack ?? e}\n`);
      process.exitCode = 2;
    },
  );
}
