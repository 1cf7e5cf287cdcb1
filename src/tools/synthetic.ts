/**
 * Synthetic random-weight models for benchmarks and tests: a Qwen2-architecture GGUF with real
 * tensor names and shapes (llama.cpp loads and runs it), random F16 weights, and a real tokenizer
 * copied from a llama.cpp vocab GGUF.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm, stat, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { promisify } from "node:util";
import { GgmlType, type GgufMetadataEntry, GgufValueType, readGgufInfo, readGgufMetadataEntries } from "../io/gguf";
import { f32ToF16, type GgufTensorInput, writeGguf } from "./gguf-writer";

const execFileAsync = promisify(execFile);

export interface SyntheticModelOptions {
  /** Output GGUF path. */
  out: string;
  /** Transformer blocks (default 24). */
  layers?: number;
  /** Hidden size / n_embd (default 896). */
  width?: number;
  /** A GGUF with tokenizer.* metadata (e.g. llama.cpp's models/ggml-vocab-qwen2.gguf). */
  vocabGguf: string;
  /** PRNG seed (default 1); the same options and seed give a byte-identical file. */
  seed?: number;
  /** Feed-forward size (default: 16/3 * width rounded up to a multiple of 128; 4864 for 896). */
  ffn?: number;
  /** Attention heads (default width / 64; 14 for 896). */
  heads?: number;
  /** KV heads (default 2 when heads is even, else 1). */
  headsKv?: number;
  /** Context length written as qwen2.context_length (default 4096). */
  ctx?: number;
  /** general.name (default "synthetic-qwen2-<layers>x<width>"). */
  name?: string;
}

export interface SyntheticModelInfo {
  path: string;
  fileSize: number;
  layers: number;
  width: number;
  ffn: number;
  heads: number;
  headsKv: number;
  ctx: number;
  nVocab: number;
  nParams: number;
}

/** ChatML, used when the vocab file carries no chat template. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Standard deviation of the random weights. */
const WEIGHT_STD = 0.02;
/** Elements per generated chunk. */
const CHUNK = 1 << 20;

/**
 * Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9),
 * for 0 < p < 1.
 */
function normalQuantile(p: number): number {
  const a0 = -3.969683028665376e1, a1 = 2.209460984245205e2, a2 = -2.759285104469687e2;
  const a3 = 1.38357751867269e2, a4 = -3.066479806614716e1, a5 = 2.506628277459239;
  const b0 = -5.447609879822406e1, b1 = 1.615858368580409e2, b2 = -1.556989798598866e2;
  const b3 = 6.680131188771972e1, b4 = -1.328068155288572e1;
  const c0 = -7.784894002430293e-3, c1 = -3.223964580411365e-1, c2 = -2.400758277161838;
  const c3 = -2.549732539343734, c4 = 4.374664141464968, c5 = 2.938163982698783;
  const d0 = 7.784695709041462e-3, d1 = 3.224671290700398e-1, d2 = 2.445134137142996, d3 = 3.754408661907416;
  const tail = (q: number): number =>
    (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) / (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1);
}

/**
 * Weight values by 16-bit uniform index: WEIGHT_STD * Phi^-1((k + 0.5) / 65536), an exactly
 * symmetric quantised normal (|x| <= ~4.3 std). Each 32-bit PRNG output gives two weights by
 * lookup, as float32 or directly as float16 bits.
 */
const NORMAL_F32 = (() => {
  const t = new Float32Array(65536);
  for (let k = 0; k < 32768; k++) {
    const x = WEIGHT_STD * normalQuantile((k + 0.5) / 65536);
    t[k] = x;
    t[65535 - k] = -x;
  }
  return t;
})();
const NORMAL_F16 = f32ToF16(NORMAL_F32);

/**
 * Math.imul bound once: inside a vm context (e.g. under jest) every `Math.x` lookup in a hot loop
 * goes through the global proxy and is ~50x slower.
 */
const imul = Math.imul;

/** Mix a seed and a tensor index into an independent 32-bit PRNG state (splitmix-style). */
function tensorSeed(seed: number, index: number): number {
  let z = (imul(seed | 0, 0x9e3779b1) + imul(index + 1, 0x85ebca77)) | 0;
  z = imul(z ^ (z >>> 16), 0x7feb352d);
  z = imul(z ^ (z >>> 15), 0x846ca68b);
  return (z ^ (z >>> 16)) | 0;
}

/**
 * Random normal values for one tensor, in chunks, from an inlined mulberry32 PRNG. `f16` chooses
 * float16 bits (Uint16Array) or float32 (Float32Array). The chunk buffer is reused between yields.
 */
function* randomChunks(n: number, state: number, f16: boolean): Generator<Uint16Array | Float32Array> {
  const out = f16 ? new Uint16Array(Math.min(n, CHUNK)) : new Float32Array(Math.min(n, CHUNK));
  const table = f16 ? NORMAL_F16 : NORMAL_F32;
  let a = state | 0;
  for (let done = 0; done < n; ) {
    const m = Math.min(CHUNK, n - done); // CHUNK is even, so only the last chunk can be odd
    for (let i = 0; i < m; i += 2) {
      a = (a + 0x6d2b79f5) | 0;
      let t = imul(a ^ (a >>> 15), 1 | a);
      t = (t + imul(t ^ (t >>> 7), 61 | t)) ^ t;
      t ^= t >>> 14;
      out[i] = table[t & 0xffff];
      if (i + 1 < m) out[i + 1] = table[t >>> 16];
    }
    done += m;
    yield m === out.length ? out : out.subarray(0, m);
  }
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`createSyntheticModel: ${name} must be a positive integer, got ${v}`);
  return v;
}

/**
 * Write a random-weight Qwen2 GGUF (defaults: Qwen2.5-0.5B shapes, 24 x 896, 14 heads, 2 KV heads,
 * ffn 4864, tied embeddings) with the tokenizer of `vocabGguf`. Matrices are F16, norms and biases
 * F32; norms are 1, everything else ~N(0, 0.02^2) from a seeded PRNG (tensors are independent
 * streams, so a file is reproducible for given options and seed).
 */
export async function createSyntheticModel(opts: SyntheticModelOptions): Promise<SyntheticModelInfo> {
  const layers = positiveInt("layers", opts.layers ?? 24);
  const width = positiveInt("width", opts.width ?? 896);
  const heads = positiveInt("heads", opts.heads ?? Math.max(1, Math.floor(width / 64)));
  const headsKv = positiveInt("headsKv", opts.headsKv ?? (heads % 2 === 0 ? 2 : 1));
  const ffn = positiveInt("ffn", opts.ffn ?? Math.ceil((width * 16) / 3 / 128) * 128);
  const ctx = positiveInt("ctx", opts.ctx ?? 4096);
  const seed = opts.seed ?? 1;
  if (width % heads !== 0) throw new RangeError(`createSyntheticModel: width ${width} is not divisible by heads ${heads}`);
  if (heads % headsKv !== 0) throw new RangeError(`createSyntheticModel: heads ${heads} is not divisible by headsKv ${headsKv}`);
  const headDim = width / heads;
  if (headDim % 2 !== 0) throw new RangeError(`createSyntheticModel: head dimension ${headDim} must be even (RoPE)`);
  const kvDim = headDim * headsKv;

  const tokenizer = await readGgufMetadataEntries(opts.vocabGguf, (k) => k.startsWith("tokenizer."));
  const tokens = tokenizer.find((e) => e.key === "tokenizer.ggml.tokens");
  if (!tokens || !Array.isArray(tokens.value) || tokens.value.length === 0) {
    throw new RangeError(`createSyntheticModel: ${opts.vocabGguf} has no tokenizer.ggml.tokens array`);
  }
  const nVocab = tokens.value.length;
  if (!tokenizer.some((e) => e.key === "tokenizer.chat_template")) {
    tokenizer.push({ key: "tokenizer.chat_template", type: GgufValueType.STRING, value: CHATML_TEMPLATE });
  }

  const u32 = (key: string, value: number): GgufMetadataEntry => ({ key, type: GgufValueType.UINT32, value });
  const metadata: GgufMetadataEntry[] = [
    { key: "general.architecture", type: GgufValueType.STRING, value: "qwen2" },
    { key: "general.name", type: GgufValueType.STRING, value: opts.name ?? `synthetic-qwen2-${layers}x${width}` },
    u32("general.file_type", 1), // LLAMA_FTYPE_MOSTLY_F16
    u32("general.alignment", 32),
    u32("qwen2.block_count", layers),
    u32("qwen2.context_length", ctx),
    u32("qwen2.embedding_length", width),
    u32("qwen2.feed_forward_length", ffn),
    u32("qwen2.attention.head_count", heads),
    u32("qwen2.attention.head_count_kv", headsKv),
    { key: "qwen2.rope.freq_base", type: GgufValueType.FLOAT32, value: 1000000 },
    { key: "qwen2.attention.layer_norm_rms_epsilon", type: GgufValueType.FLOAT32, value: 1e-6 },
    ...tokenizer,
  ];

  const tensors: GgufTensorInput[] = [];
  const random = (name: string, shape: number[], type: GgmlType.F16 | GgmlType.F32): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    const state = tensorSeed(seed, tensors.length);
    tensors.push({ name, shape, type, data: () => randomChunks(n, state, type === GgmlType.F16) });
  };
  const ones = (name: string, n: number): void => {
    tensors.push({ name, shape: [n], type: GgmlType.F32, data: new Float32Array(n).fill(1) });
  };

  random("token_embd.weight", [width, nVocab], GgmlType.F16);
  for (let l = 0; l < layers; l++) {
    const b = `blk.${l}`;
    ones(`${b}.attn_norm.weight`, width);
    random(`${b}.attn_q.weight`, [width, width], GgmlType.F16);
    random(`${b}.attn_q.bias`, [width], GgmlType.F32);
    random(`${b}.attn_k.weight`, [width, kvDim], GgmlType.F16);
    random(`${b}.attn_k.bias`, [kvDim], GgmlType.F32);
    random(`${b}.attn_v.weight`, [width, kvDim], GgmlType.F16);
    random(`${b}.attn_v.bias`, [kvDim], GgmlType.F32);
    random(`${b}.attn_output.weight`, [width, width], GgmlType.F16);
    ones(`${b}.ffn_norm.weight`, width);
    random(`${b}.ffn_gate.weight`, [width, ffn], GgmlType.F16);
    random(`${b}.ffn_up.weight`, [width, ffn], GgmlType.F16);
    random(`${b}.ffn_down.weight`, [ffn, width], GgmlType.F16);
  }
  ones("output_norm.weight", width);

  const { fileSize } = await writeGguf(opts.out, { metadata, tensors });
  const nParams = tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  return { path: opts.out, fileSize, layers, width, ffn, heads, headsKv, ctx, nVocab, nParams };
}

/** Directory of the installed node-llama-cpp package (found along require's search paths). */
export function findNodeLlamaCppDir(): string {
  for (const dir of require.resolve.paths("node-llama-cpp") ?? []) {
    const pkg = join(dir, "node-llama-cpp");
    if (existsSync(join(pkg, "package.json"))) return pkg;
  }
  throw new Error("node-llama-cpp is not installed (needed for its llama.cpp source bundle)");
}

/**
 * Extract llama.cpp's `models/ggml-vocab-<name>.gguf` (a vocab-only GGUF, e.g. "qwen2") from the
 * llama.cpp git bundle shipped in node-llama-cpp into destDir, and return its path. An existing
 * valid file in destDir is reused. Needs `git` on PATH.
 */
export async function extractLlamaVocab(name: string, destDir: string): Promise<string> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new RangeError(`invalid vocab name "${name}"`);
  const dest = join(destDir, `ggml-vocab-${name}.gguf`);
  if (existsSync(dest)) {
    try {
      await readGgufInfo(dest);
      return dest;
    } catch {
      // Damaged cache: extract again.
    }
  }
  const bundle = join(findNodeLlamaCppDir(), "llama", "gitRelease.bundle");
  try {
    await stat(bundle);
  } catch {
    throw new Error(`llama.cpp source bundle not found at ${bundle}`);
  }
  await mkdir(destDir, { recursive: true });
  const repo = await mkdtemp(join(tmpdir(), "safety-lens-llama-"));
  const tmp = `${dest}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await execFileAsync("git", ["clone", "--bare", "-q", bundle, repo]);
    // Stream the blob straight to disk (binary-safe).
    const child = spawn("git", ["--git-dir", repo, "show", `HEAD:models/ggml-vocab-${name}.gguf`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out = createWriteStream(tmp);
    child.stdout.pipe(out);
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", resolve);
    });
    await finished(out);
    if (code !== 0) throw new Error(`cannot extract ggml-vocab-${name}.gguf from ${bundle}: ${stderr.trim() || `git exited with ${code}`}`);
    await rename(tmp, dest);
    return dest;
  } finally {
    await unlink(tmp).catch(() => undefined);
    await rm(repo, { recursive: true, force: true });
  }
}
