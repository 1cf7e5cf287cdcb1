/**
 * Checks a GGUF model's header for the values llama.cpp asserts on (GGML_ASSERT aborts the whole
 * process) or crashes on, so that a corrupt or hand-edited file is refused with a typed
 * ModelLoadError instead. Each rule below names the llama.cpp check it stands in for (release
 * v0.5.0 of node-llama-cpp's bundle: src/llama-model.cpp load_hparams, src/llama-vocab.cpp load,
 * ggml/src/ggml-cpu ops). Shapes llama.cpp itself checks with a clean error are checked here only
 * for the roles common to every architecture, for a clearer message.
 *
 * The rules must pass every real model: they are generic (no per-architecture tables) and tested
 * on the embedded model, on synthetic qwen2 models and on llama.cpp's vocab files' metadata.
 */
import { readSync, openSync, closeSync } from "node:fs";
import { ModelLoadError } from "../errors";
import { GgmlType, ggmlTypeName, type GgufInfo, type GgufValue } from "./gguf";

/** llama.cpp's LLAMA_MAX_LAYERS and LLAMA_MAX_EXPERTS (src/llama-hparams.h). */
const MAX_LAYERS = 512;
const MAX_EXPERTS = 1024;
/** Smallest training context accepted: the same floor as loadModel's contextSize option. */
const MIN_CONTEXT = 16;
/**
 * Architectures whose graph builder asserts that the rope covers the whole head and that keys and values have the
 * same head size (GGML_ASSERT(n_embd_head == n_rot) and n_embd_head_v == n_embd_head_k in src/models/*.cpp of the
 * pinned llama.cpp, found by scanning those files; an assert aborts the process).
 */
const FULL_ROPE_ARCHS = new Set([
  "apertus", "arcee", "arctic", "baichuan", "chameleon", "codeshell", "cogvlm", "cohere2moe", "dbrx", "deci",
  "deepseek", "dots1", "dream", "ernie4_5", "ernie4_5-moe", "exaone", "exaone-moe", "exaone4", "falcon", "granite",
  "granite_swa", "graniteswitch", "grok", "grovemoe", "hunyuan-moe", "hunyuan_vl", "hy_v3", "internlm2", "jais2",
  "llada", "llada-moe", "llama", "llama4", "maincoder", "mellum", "minimax-01", "minimax-m2", "mistral3", "nemotron",
  "olmo", "olmo2", "olmoe", "orion", "paddleocr", "pangu-embedded", "plamo", "pockettts", "qwen2", "qwen2moe",
  "qwen2vl", "qwen3", "qwen3moe", "qwen3vl", "qwen3vlmoe", "rnd1", "seed_oss", "smollm3", "starcoder2", "talkie",
  "xverse",
]);

/** llama.cpp's rope scaling types (llama-model.cpp LLAMA_ROPE_SCALING_TYPES); another name aborts. */
const ROPE_SCALING_TYPES = new Set(["none", "linear", "yarn", "longrope"]);
/** Architectures whose token embedding or output is not [n_embd, n_vocab] (draft heads, audio decoder). */
const OWN_EMBEDDING_SHAPES = new Set(["dflash", "eagle3", "wavtokenizer-dec"]);

/**
 * Tensor types llama.cpp can compute with: float types and the quantized types with a CPU dot
 * product. Integer types (I8..I64), F64, Q8_1 and Q8_K (activation-only formats) never hold
 * weights; the CPU backend accepts them in a matrix product and then reads out of bounds.
 */
const WEIGHT_TYPES = new Set<number>([
  GgmlType.F32, GgmlType.F16, GgmlType.BF16,
  GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0,
  GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
  GgmlType.IQ2_XXS, GgmlType.IQ2_XS, GgmlType.IQ3_XXS, GgmlType.IQ1_S, GgmlType.IQ4_NL, GgmlType.IQ3_S,
  GgmlType.IQ2_S, GgmlType.IQ4_XS, GgmlType.IQ1_M, GgmlType.TQ1_0, GgmlType.TQ2_0,
  GgmlType.MXFP4, GgmlType.NVFP4, GgmlType.Q1_0, GgmlType.Q2_0,
]);

type Fail = (detail: string) => never;

function show(v: GgufValue | undefined): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v);
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  if (v === undefined) return "missing";
  return `an array of ${v.length}`;
}

function isNumericArray(v: GgufValue | undefined): v is Exclude<GgufValue, string | number | bigint | boolean | string[] | boolean[]> {
  return ArrayBuffer.isView(v);
}

/** A numeric scalar as a JS number (bigints, beyond 2^53, become approximate), or undefined when absent. */
function scalar(meta: GgufInfo["metadata"], key: string, fail: Fail): number | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return fail(`${key} is ${show(v)}, not a number`);
}

/** An integer hyperparameter that may be one value or one per layer (llama.cpp get_key_or_arr). */
function perLayer(meta: GgufInfo["metadata"], key: string, fail: Fail): number[] | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (typeof v === "number" || typeof v === "bigint") return [Number(v)];
  if (isNumericArray(v)) return Array.from(v as ArrayLike<number | bigint>, Number);
  return fail(`${key} is ${show(v)}, not a number or an array of numbers`);
}

function checkInt(key: string, v: number, min: number, max: number, fail: Fail, why = ""): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    fail(`${key} is ${v}; it must be an integer from ${min} to ${max}${why}`);
  }
}

/** Hyperparameters llama.cpp reads with GGML_ASSERTs or uses unchecked in ggml ops. */
function checkHparams(info: GgufInfo, arch: string, fail: Fail): void {
  const meta = info.metadata;
  const k = (name: string) => `${arch}.${name}`;

  // llama-model.cpp load_hparams: GGML_ASSERT(n_layer_all > 0 && n_layer_all <= LLAMA_MAX_LAYERS).
  const nLayer = scalar(meta, k("block_count"), fail);
  if (nLayer === undefined) fail(`${k("block_count")} is missing`);
  checkInt(k("block_count"), nLayer!, 1, MAX_LAYERS, fail, " (llama.cpp's limit)");
  const nextn = scalar(meta, k("nextn_predict_layers"), fail);
  if (nextn !== undefined) checkInt(k("nextn_predict_layers"), nextn, 0, nLayer!, fail, ` (${k("block_count")})`);

  const nEmbd = scalar(meta, k("embedding_length"), fail);
  if (nEmbd === undefined) fail(`${k("embedding_length")} is missing`);
  checkInt(k("embedding_length"), nEmbd!, 1, 2 ** 31 - 1, fail);

  // The context's batch and output buffers are sized from it; tiny values trip llama-context asserts.
  const nCtx = scalar(meta, k("context_length"), fail);
  if (nCtx !== undefined && nCtx !== 0) checkInt(k("context_length"), nCtx, MIN_CONTEXT, 2 ** 32 - 1, fail);

  // Every float hyperparameter: ggml asserts eps >= 0 in its norms, and NaN or infinite values in
  // rope or scales have no meaning.
  for (const [key, v] of Object.entries(meta)) {
    if (!key.startsWith(`${arch}.`) && !/(^|\.)(epsilon|eps)$/.test(key)) continue;
    const values = typeof v === "number" ? [v] : v instanceof Float32Array || v instanceof Float64Array ? Array.from(v) : [];
    for (const x of values) {
      if (!Number.isFinite(x)) fail(`${key} is ${x}; it must be a finite number`);
      if (/(epsilon|eps)$/.test(key) && x < 0) fail(`${key} is ${x}; an epsilon must be >= 0`);
    }
  }

  // Heads: grouped-query attention broadcasts K/V over Q heads (ggml_mul_mat asserts the division).
  const heads = perLayer(meta, k("attention.head_count"), fail) ?? [0];
  const headsKv = perLayer(meta, k("attention.head_count_kv"), fail) ?? heads;
  for (const [key, arr] of [[k("attention.head_count"), heads], [k("attention.head_count_kv"), headsKv]] as const) {
    for (const h of arr) checkInt(key, h, 0, 2 ** 31 - 1, fail);
  }
  for (let il = 0; il < Math.max(heads.length, headsKv.length); il++) {
    const h = heads.length === 1 ? heads[0] : heads[il];
    const hk = headsKv.length === 1 ? headsKv[0] : headsKv[il];
    if (h === undefined || hk === undefined || h === 0 || hk === 0) continue;
    if (h % hk !== 0) {
      fail(`${k("attention.head_count")} (${h}) is not a multiple of ${k("attention.head_count_kv")} (${hk})${heads.length > 1 || headsKv.length > 1 ? ` in layer ${il}` : ""}`);
    }
  }
  for (const name of ["feed_forward_length", "attention.key_length", "attention.value_length", "attention.key_length_swa", "attention.value_length_swa", "rope.dimension_count", "rope.dimension_count_swa"]) {
    const arr = perLayer(meta, k(name), fail);
    if (arr) for (const x of arr) checkInt(k(name), x, 0, 2 ** 31 - 1, fail);
  }

  // Rope: ggml's rope asserts n_dims <= head size and n_dims even (ggml-cpu ops.cpp rope).
  const h0 = heads[0];
  if (h0 > 0) {
    const keyLength = scalar(meta, k("attention.key_length"), fail);
    if (keyLength === undefined && h0 > nEmbd!) {
      fail(`${k("attention.head_count")} (${h0}) is larger than ${k("embedding_length")} (${nEmbd}): the head size would be 0`);
    }
    const headK = keyLength ?? Math.floor(nEmbd! / h0);
    const nRot = scalar(meta, k("rope.dimension_count"), fail) ?? headK;
    if (nRot % 2 !== 0 || nRot > headK) {
      fail(`${k("rope.dimension_count")} is ${nRot}; it must be even and at most the head size ${headK}`);
    }
    if (FULL_ROPE_ARCHS.has(arch)) {
      const headV = scalar(meta, k("attention.value_length"), fail) ?? headK;
      if (nRot !== headK) fail(`${k("rope.dimension_count")} is ${nRot}; ${arch} needs it equal to the head size ${headK}`);
      if (headV !== headK) fail(`${k("attention.value_length")} is ${headV}; ${arch} needs it equal to the key head size ${headK}`);
    }
    const nRotSwa = scalar(meta, k("rope.dimension_count_swa"), fail);
    if (nRotSwa !== undefined) {
      const headKSwa = scalar(meta, k("attention.key_length_swa"), fail) ?? headK;
      if (nRotSwa % 2 !== 0 || nRotSwa > headKSwa) {
        fail(`${k("rope.dimension_count_swa")} is ${nRotSwa}; it must be even and at most the head size ${headKSwa}`);
      }
    }
  }
  const freqBase = scalar(meta, k("rope.freq_base"), fail);
  if (freqBase !== undefined && !(freqBase > 0)) fail(`${k("rope.freq_base")} is ${freqBase}; it must be > 0`);
  const scaling = meta[k("rope.scaling.type")];
  if (scaling !== undefined && (typeof scaling !== "string" || !ROPE_SCALING_TYPES.has(scaling))) {
    fail(`${k("rope.scaling.type")} is ${show(scaling)}; llama.cpp knows ${[...ROPE_SCALING_TYPES].join(", ")}`);
  }

  // Experts: the GGML_ASSERTs of load_hparams, in order.
  const nExpert = scalar(meta, k("expert_count"), fail) ?? 0;
  checkInt(k("expert_count"), nExpert, 0, MAX_EXPERTS, fail, " (llama.cpp's limit)");
  const used = perLayer(meta, k("expert_used_count"), fail) ?? [0];
  for (const u of used) {
    if (nExpert === 0 && u !== 0) fail(`${k("expert_used_count")} is ${u} but ${k("expert_count")} is 0`);
    checkInt(k("expert_used_count"), u, 0, nExpert, fail, ` (${k("expert_count")})`);
  }
  const usedMax = Math.max(...used);
  const groups = scalar(meta, k("expert_group_count"), fail) ?? 0;
  const groupUsed = scalar(meta, k("expert_group_used_count"), fail) ?? 0;
  if (nExpert > 0) {
    if (usedMax === 0) fail(`${k("expert_used_count")} is 0 but the model has ${nExpert} experts`);
    checkInt(k("expert_group_count"), groups, 0, nExpert - 1, fail, ` (fewer than ${k("expert_count")})`);
    if (groups > 1) {
      if (nExpert % groups !== 0) fail(`${k("expert_count")} (${nExpert}) is not a multiple of ${k("expert_group_count")} (${groups})`);
      checkInt(k("expert_group_used_count"), groupUsed, 1, groups - 1, fail, ` (fewer than ${k("expert_group_count")})`);
    }
  } else if (groups !== 0) {
    fail(`${k("expert_group_count")} is ${groups} but ${k("expert_count")} is 0`);
  }
}

/**
 * The vocabulary: llama-vocab.cpp asserts every token string is distinct (an empty one counts as
 * "[EMPTY_<id>]"), and tokenizing with no vocabulary aborts.
 */
function checkTokenizer(path: string, info: GgufInfo, fail: Fail): number {
  const meta = info.metadata;
  const model = meta["tokenizer.ggml.model"];
  if (typeof model !== "string") fail(`tokenizer.ggml.model is ${show(model)}, not a tokenizer name`);
  if (model === "none" || model === "no_vocab") fail(`tokenizer.ggml.model is "${model}": the model has no tokenizer, and safety-lens tokenizes every input`);
  const tokens = meta["tokenizer.ggml.tokens"];
  if (!Array.isArray(tokens) || tokens.length === 0 || typeof tokens[0] !== "string") {
    fail(`tokenizer.ggml.tokens is ${show(tokens)}, not a list of token strings`);
  }
  const list = tokens as string[];
  // One Set build in the usual case; the slower search below names the duplicate.
  if (list.includes("") || new Set(list).size !== list.length) {
    let dup = findDuplicate(list);
    if (dup && list[dup[1]].includes("\ufffd")) {
      // Decoding turned invalid UTF-8 (RWKV-style byte tokens) into U+FFFD: compare raw bytes
      // instead, as latin1 strings (one char per byte).
      const raw = rawStringArray(path, info, "tokenizer.ggml.tokens");
      if (raw) dup = findDuplicate(raw.map((b) => b.toString("latin1")));
    }
    if (dup) {
      const s = list[dup[1]] === "" ? `[EMPTY_${dup[1]}]` : list[dup[1]];
      fail(`tokenizer.ggml.tokens has the string ${JSON.stringify(s)} twice (ids ${dup[0]} and ${dup[1]}); llama.cpp needs distinct tokens`);
    }
  }
  for (const key of ["tokenizer.ggml.scores", "tokenizer.ggml.token_type"]) {
    const v = meta[key];
    if (v !== undefined && (!isNumericArray(v) || v.length < list.length)) {
      fail(`${key} is ${show(v)} for ${list.length} tokens; it needs a number per token`);
    }
  }
  return list.length;
}

/** The first pair of equal tokens as llama.cpp sees them (an empty one is "[EMPTY_<id>]"). */
function findDuplicate(tokens: readonly string[]): [number, number] | undefined {
  const seen = new Map<string, number>();
  for (let i = 0; i < tokens.length; i++) {
    const s = tokens[i] === "" ? `[EMPTY_${i}]` : tokens[i];
    const j = seen.get(s);
    if (j !== undefined) return [j, i];
    seen.set(s, i);
  }
  return undefined;
}

/** Expected shape [ne0, ne1, ...] of the roles whose shape follows from the hyperparameters. */
function expectedShape(name: string, nEmbd: number, nVocab: number, arch: string): number[] | undefined {
  if (name === "output_norm.weight" || /^blk\.\d+\.(attn_norm|ffn_norm)\.weight$/.test(name)) return [nEmbd];
  if (OWN_EMBEDDING_SHAPES.has(arch)) return undefined;
  if (name === "token_embd.weight" || name === "output.weight") return [nEmbd, nVocab];
  return undefined;
}

/** Shapes equal up to trailing 1s (llama.cpp's check_tensor_dims accepts [n, 1] for [n]). */
function sameShape(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 1) !== (b[i] ?? 1)) return false;
  return true;
}

function checkTensors(info: GgufInfo, arch: string, nVocab: number, fail: Fail): void {
  const nLayer = Number(info.metadata[`${arch}.block_count`]);
  const nEmbd = Number(info.metadata[`${arch}.embedding_length`]);
  for (const t of info.tensors) {
    const type = ggmlTypeName(t.type);
    if (!WEIGHT_TYPES.has(t.type)) {
      fail(`tensor ${t.name} has type ${type}, which holds no model weights (float or quantized types only)`);
    }
    // Norm weights and biases meet f32 activations in ggml's elementwise ops, which take f32 only
    // (ggml-cpu binary-ops.cpp aborts otherwise); converters always store 1-D tensors as F32.
    if ((t.shape.length <= 1 || /norm(\.weight)?$/.test(t.name)) && t.type !== GgmlType.F32) {
      fail(`tensor ${t.name} has type ${type}; ${t.shape.length <= 1 ? "1-D tensors" : "norm weights"} must be F32`);
    }
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m && Number(m[1]) >= nLayer) {
      fail(`tensor ${t.name} belongs to layer ${m[1]} but ${arch}.block_count is ${nLayer}`);
    }
    const want = expectedShape(t.name, nEmbd, nVocab, arch);
    if (want && !sameShape(t.shape, want)) {
      fail(`tensor ${t.name} has shape [${t.shape.join(", ")}], expected [${want.join(", ")}] from ${arch}.embedding_length${want.length > 1 ? " and the vocabulary size" : ""}`);
    }
  }
}

/**
 * Refuses a GGUF model file whose header would make llama.cpp abort or crash the process.
 *
 * @throws ModelLoadError MODEL_INVALID naming the file, the key or tensor, and what is wrong.
 */
export function validateModelFile(path: string, info: GgufInfo): void {
  const fail: Fail = (detail) => {
    throw new ModelLoadError("MODEL_INVALID", `${path} is not a valid model: ${detail}`);
  };
  const arch = info.metadata["general.architecture"];
  if (typeof arch !== "string" || arch.length === 0) fail(`general.architecture is ${show(arch)}, not an architecture name`);
  if (info.tensors.length === 0) fail("it has no tensors (a vocabulary-only file?)");
  checkHparams(info, arch as string, fail);
  const nVocab = checkTokenizer(path, info, fail);
  checkTensors(info, arch as string, nVocab, fail);
}

/** Exported for tests: the metadata checks alone, for files without tensors (llama.cpp's vocab files). */
export function validateModelMetadata(path: string, info: GgufInfo): void {
  const fail: Fail = (detail) => {
    throw new ModelLoadError("MODEL_INVALID", `${path} is not a valid model: ${detail}`);
  };
  const arch = info.metadata["general.architecture"];
  if (typeof arch !== "string" || arch.length === 0) fail(`general.architecture is ${show(arch)}, not an architecture name`);
  checkHparams(info, arch as string, fail);
  checkTokenizer(path, info, fail);
}

// ---------------------------------------------------------------------------------------------

/** The raw items of a string-array key, read again from the file (rare: see checkTokenizer). */
function rawStringArray(path: string, info: GgufInfo, key: string): Buffer[] | undefined {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(Math.min(info.dataOffset, info.fileSize));
    readSync(fd, head, 0, head.length, 0);
    return findStringArray(head, key);
  } finally {
    closeSync(fd);
  }
}

const FIXED_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** The items of a string-array metadata key, from the header bytes (already validated by the reader). */
function findStringArray(buf: Buffer, wanted: string): Buffer[] | undefined {
  let p = 24;
  const nKv = Number(buf.readBigUInt64LE(16));
  const skipValue = (type: number): void => {
    if (type === 8) p += 8 + Number(buf.readBigUInt64LE(p));
    else if (type === 9) {
      const itemType = buf.readUInt32LE(p);
      const n = Number(buf.readBigUInt64LE(p + 4));
      p += 12;
      if (FIXED_SIZE[itemType] !== undefined) p += n * FIXED_SIZE[itemType];
      else for (let i = 0; i < n; i++) skipValue(itemType);
    } else p += FIXED_SIZE[type];
  };
  for (let i = 0; i < nKv; i++) {
    const keyLen = Number(buf.readBigUInt64LE(p));
    const key = buf.toString("utf8", p + 8, p + 8 + keyLen);
    p += 8 + keyLen;
    const type = buf.readUInt32LE(p);
    p += 4;
    if (key === wanted && type === 9 && buf.readUInt32LE(p) === 8) {
      const n = Number(buf.readBigUInt64LE(p + 4));
      p += 12;
      const out: Buffer[] = [];
      for (let j = 0; j < n; j++) {
        const len = Number(buf.readBigUInt64LE(p));
        out.push(buf.subarray(p + 8, p + 8 + len));
        p += 8 + len;
      }
      return out;
    }
    skipValue(type);
  }
  return undefined;
}
