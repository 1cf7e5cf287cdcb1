/**
 * Synthetic random-weight models for benchmarks and tests: a GGUF of one of several
 * architectures (src/tools/arch-specs.ts) with real tensor names and shapes (llama.cpp loads
 * and runs it), random F16 weights (optionally quantized by llama.cpp), and a real tokenizer
 * copied from a llama.cpp vocab GGUF.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm, stat, unlink } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { promisify } from "node:util";
import { GgmlType, type GgufMetadataEntry, GgufValueType, readGgufInfo, readGgufMetadataEntries } from "../io/gguf";
import { type ArchConfig, type ArchSpec, archSpec, hparamsOf, SYNTHETIC_ARCHS, type TensorSpec } from "./arch-specs";
import { f32ToF16, type GgufTensorInput, writeGguf } from "./gguf-writer";
import { QUANT_TYPES, quantizeModel, type QuantType } from "./quantize";

const execFileAsync = promisify(execFile);

export interface SyntheticModelOptions {
  /** Output GGUF path. */
  out: string;
  /** Architecture (general.architecture): one of SYNTHETIC_ARCHS (default "qwen2"). */
  arch?: string;
  /** Weight type: "f16" (written directly), or "q8_0" / "q4_k_m" (llama.cpp's quantizer on the F16 file). */
  quant?: QuantType;
  /** Transformer blocks (default 24). */
  layers?: number;
  /** Hidden size / n_embd (default 896). */
  width?: number;
  /** A GGUF with tokenizer.* metadata (e.g. llama.cpp's models/ggml-vocab-qwen2.gguf). */
  vocabGguf?: string;
  /** Instead of vocabGguf: a vocab of llama.cpp's bundle ("llama-bpe", "qwen2", ...; default the architecture's). */
  vocab?: string;
  /** Where bundle vocabs are extracted to and kept (default $SAFETY_LENS_CACHE/vocab, else ~/.cache/safety-lens/vocab). */
  vocabDir?: string;
  /** PRNG seed (default 1); the same options and seed give a byte-identical file. */
  seed?: number;
  /** Feed-forward size (default: 16/3 * width rounded up to a multiple of 128; 4864 for 896). */
  ffn?: number;
  /** Attention heads (default width / 64; 14 for 896). */
  heads?: number;
  /** KV heads (default 2 when heads is even, else 1). */
  headsKv?: number;
  /** Head size, where the architecture allows any (default: the architecture's, else width / heads). */
  headDim?: number;
  /** Context length written as <arch>.context_length (default 4096). */
  ctx?: number;
  /** general.name (default "synthetic-<arch>-<layers>x<width>"). */
  name?: string;
  /** Threads for the quantizer (default 1). */
  threads?: number;
}

export interface SyntheticModelInfo {
  path: string;
  arch: string;
  quant: QuantType;
  fileSize: number;
  layers: number;
  width: number;
  ffn: number;
  heads: number;
  headsKv: number;
  headDim: number;
  ctx: number;
  nVocab: number;
  nParams: number;
  /** The vocab GGUF the tokenizer came from. */
  vocabGguf: string;
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

/** Where bundle vocabs are kept by default: $SAFETY_LENS_CACHE/vocab, else ~/.cache/safety-lens/vocab. */
export function defaultVocabDir(): string {
  const env = process.env.SAFETY_LENS_CACHE;
  return join(env && env.length > 0 ? env : join(homedir(), ".cache", "safety-lens"), "vocab");
}

/** The architecture's sizes from the options, checked against its constraints. */
function resolveConfig(spec: ArchSpec, opts: SyntheticModelOptions, nVocab: number): ArchConfig {
  const layers = positiveInt("layers", opts.layers ?? 24);
  const width = positiveInt("width", opts.width ?? 896);
  const heads = positiveInt("heads", opts.heads ?? Math.max(1, Math.floor(width / 64)));
  const headsKv = positiveInt("headsKv", opts.headsKv ?? (heads % 2 === 0 ? 2 : 1));
  const ffn = positiveInt("ffn", opts.ffn ?? Math.ceil((width * 16) / 3 / 128) * 128);
  const ctx = positiveInt("ctx", opts.ctx ?? 4096);
  if (heads % headsKv !== 0) throw new RangeError(`createSyntheticModel: heads ${heads} is not divisible by headsKv ${headsKv}`);
  let headDim: number;
  if (spec.headDim === "width/heads") {
    if (width % heads !== 0) throw new RangeError(`createSyntheticModel: width ${width} is not divisible by heads ${heads}`);
    headDim = width / heads;
    if (opts.headDim !== undefined && opts.headDim !== headDim) {
      throw new RangeError(`createSyntheticModel: ${spec.arch} needs headDim = width / heads = ${headDim}, got ${opts.headDim}`);
    }
  } else if (opts.headDim !== undefined) {
    headDim = positiveInt("headDim", opts.headDim);
  } else if (spec.defaultHeadDim) {
    headDim = spec.defaultHeadDim(width, heads);
  } else {
    if (width % heads !== 0) throw new RangeError(`createSyntheticModel: width ${width} is not divisible by heads ${heads}`);
    headDim = width / heads;
  }
  if (headDim % 2 !== 0) throw new RangeError(`createSyntheticModel: head dimension ${headDim} must be even (RoPE)`);
  return { layers, width, heads, headsKv, headDim, ffn, nVocab, ctx };
}

/**
 * Write a random-weight GGUF of one architecture (default qwen2 with Qwen2.5-0.5B shapes:
 * 24 x 896, 14 heads, 2 KV heads, ffn 4864, tied embeddings) with the real tensor names and
 * shapes llama.cpp's loader expects (src/tools/arch-specs.ts) and the tokenizer of a vocab
 * GGUF. Matrices are F16, norms and biases F32; norms are 1, everything else ~N(0, 0.02^2)
 * from a seeded PRNG (tensors are independent streams, so a file is reproducible for given
 * options and seed). With quant "q8_0" or "q4_k_m" the F16 file goes through llama.cpp's own
 * quantizer (llama_model_quantize); k-quants need rows of a multiple of 256 values (width and
 * ffn), llama.cpp falls back to another type for other tensors.
 */
export async function createSyntheticModel(opts: SyntheticModelOptions): Promise<SyntheticModelInfo> {
  const arch = opts.arch ?? "qwen2";
  const spec = archSpec(arch);
  if (!spec) throw new RangeError(`createSyntheticModel: unknown arch ${JSON.stringify(arch)}; one of ${SYNTHETIC_ARCHS.join(", ")}`);
  const quant = opts.quant ?? "f16";
  if (!QUANT_TYPES.includes(quant)) throw new RangeError(`createSyntheticModel: quant must be one of ${QUANT_TYPES.join(", ")}, got ${JSON.stringify(quant)}`);
  if (opts.vocabGguf !== undefined && opts.vocab !== undefined) throw new TypeError("createSyntheticModel: give vocabGguf or vocab, not both");
  // Sizes are checked before anything is extracted or written.
  resolveConfig(spec, opts, 1);
  const seed = opts.seed ?? 1;
  const vocabGguf = opts.vocabGguf ?? (await extractLlamaVocab(opts.vocab ?? spec.vocab, opts.vocabDir ?? defaultVocabDir()));

  const tokenizer = await readGgufMetadataEntries(vocabGguf, (k) => k.startsWith("tokenizer."));
  const tokens = tokenizer.find((e) => e.key === "tokenizer.ggml.tokens");
  if (!tokens || !Array.isArray(tokens.value) || tokens.value.length === 0) {
    throw new RangeError(`createSyntheticModel: ${vocabGguf} has no tokenizer.ggml.tokens array`);
  }
  const c = resolveConfig(spec, opts, tokens.value.length);
  if (!tokenizer.some((e) => e.key === "tokenizer.chat_template")) {
    tokenizer.push({ key: "tokenizer.chat_template", type: GgufValueType.STRING, value: CHATML_TEMPLATE });
  }

  const metadata: GgufMetadataEntry[] = [
    { key: "general.architecture", type: GgufValueType.STRING, value: arch },
    { key: "general.name", type: GgufValueType.STRING, value: opts.name ?? `synthetic-${arch}-${c.layers}x${c.width}` },
    { key: "general.file_type", type: GgufValueType.UINT32, value: 1 }, // LLAMA_FTYPE_MOSTLY_F16
    { key: "general.alignment", type: GgufValueType.UINT32, value: 32 },
    ...hparamsOf(spec, c),
    ...tokenizer,
  ];

  const tensors: GgufTensorInput[] = [];
  const add = (t: TensorSpec, layer: number): void => {
    const name = t.name.replace("#", String(layer));
    const shape = t.shape(c);
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.init === "ones") {
      tensors.push({ name, shape, type: GgmlType.F32, data: new Float32Array(n).fill(1) });
      return;
    }
    // matrices F16, vectors (biases) F32, as llama.cpp's converters write them
    const type = shape.length > 1 && !t.f32 ? GgmlType.F16 : GgmlType.F32;
    const state = tensorSeed(seed, tensors.length);
    tensors.push({ name, shape, type, data: () => randomChunks(n, state, type === GgmlType.F16) });
  };
  for (const t of spec.head) add(t, -1);
  for (let l = 0; l < c.layers; l++) for (const t of spec.block) add(t, l);
  for (const t of spec.tail) add(t, -1);
  const nParams = tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);

  let fileSize: number;
  if (quant === "f16") {
    ({ fileSize } = await writeGguf(opts.out, { metadata, tensors }));
  } else {
    const f16 = `${opts.out}.${process.pid}.${randomBytes(4).toString("hex")}.f16.tmp`;
    try {
      await writeGguf(f16, { metadata, tensors });
      ({ fileSize } = await quantizeModel(f16, opts.out, quant, { threads: opts.threads ?? 1 }));
    } finally {
      await unlink(f16).catch(() => undefined);
    }
  }
  return { path: opts.out, arch, quant, fileSize, ...c, nParams, vocabGguf };
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
  return (await extractLlamaVocabs([name], destDir))[0];
}

/** extractLlamaVocab for several names, from one clone of the bundle; paths in the order asked. */
export async function extractLlamaVocabs(names: readonly string[], destDir: string): Promise<string[]> {
  for (const name of names) if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new RangeError(`invalid vocab name "${name}"`);
  const dests = names.map((name) => join(destDir, `ggml-vocab-${name}.gguf`));
  const missing: number[] = [];
  for (let i = 0; i < names.length; i++) {
    try {
      await readGgufInfo(dests[i]);
    } catch {
      missing.push(i); // absent or damaged: extract (again)
    }
  }
  if (missing.length === 0) return dests;
  const bundle = join(findNodeLlamaCppDir(), "llama", "gitRelease.bundle");
  try {
    await stat(bundle);
  } catch {
    throw new Error(`llama.cpp source bundle not found at ${bundle}`);
  }
  await mkdir(destDir, { recursive: true });
  const repo = await mkdtemp(join(tmpdir(), "safety-lens-llama-"));
  try {
    await execFileAsync("git", ["clone", "--bare", "-q", bundle, repo]);
    for (const i of missing) await extractBlob(bundle, repo, names[i], dests[i]);
    return dests;
  } finally {
    await rm(repo, { recursive: true, force: true });
  }
}

/** Streams one vocab blob of a cloned bundle to dest (binary-safe, atomically). */
async function extractBlob(bundle: string, repo: string, name: string, dest: string): Promise<void> {
  const tmp = `${dest}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
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
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
