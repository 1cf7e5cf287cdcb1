/**
 * validateModelFile: real models pass (the embedded one, synthetic qwen2 models, the metadata of
 * llama.cpp's vocab files), and each rule refuses its corrupt value with MODEL_INVALID naming the
 * file and the key or tensor.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import * as path from "node:path";
import { ModelLoadError } from "../src/errors";
import { GgmlType, readGgufInfo, type GgufInfo } from "../src/io/gguf";
import { validateModelFile, validateModelMetadata } from "../src/io/gguf-validate";
import { createSyntheticModel } from "../src/tools/synthetic";
import { MODEL, tmpDir } from "./helpers";

let dir: string;
let base: GgufInfo;
beforeAll(async () => {
  dir = tmpDir("safety-lens-validate-");
  base = await readGgufInfo(MODEL);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A deep-enough copy of the embedded model's info with edits applied. */
function variant(edit: (meta: GgufInfo["metadata"], tensors: GgufInfo["tensors"]) => void): GgufInfo {
  const metadata = { ...base.metadata };
  metadata["tokenizer.ggml.tokens"] = [...(base.metadata["tokenizer.ggml.tokens"] as string[])];
  const tensors = base.tensors.map((t) => ({ ...t, shape: [...t.shape] }));
  edit(metadata, tensors);
  return { ...base, metadata, tensors };
}
const tensor = (ts: GgufInfo["tensors"], name: string) => ts.find((t) => t.name === name)!;

function refusal(info: GgufInfo): string {
  try {
    validateModelFile("/models/x.gguf", info);
  } catch (e) {
    expect(e).toBeInstanceOf(ModelLoadError);
    expect((e as ModelLoadError).code).toBe("MODEL_INVALID");
    const m = (e as Error).message;
    expect(m.startsWith("/models/x.gguf is not a valid model: ")).toBe(true);
    return m.slice("/models/x.gguf is not a valid model: ".length);
  }
  return "accepted";
}

test("the embedded model passes", () => {
  expect(() => validateModelFile(MODEL, base)).not.toThrow();
});

test("synthetic qwen2 models pass (GQA, biases, F16 weights; the embedded and qwen2 tokenizers)", async () => {
  const a = path.join(dir, "a.gguf");
  await createSyntheticModel({ out: a, layers: 2, width: 64, heads: 4, headsKv: 2, ffn: 128, vocabGguf: MODEL });
  const infoA = await readGgufInfo(a);
  expect(() => validateModelFile(a, infoA)).not.toThrow();
  const b = path.join(dir, "b.gguf");
  await createSyntheticModel({ out: b, layers: 3, width: 96, heads: 3, headsKv: 1, ffn: 256, vocabGguf: MODEL, ctx: 512 });
  const infoB = await readGgufInfo(b);
  expect(() => validateModelFile(b, infoB)).not.toThrow();
});

test("llama.cpp's vocab files: their metadata passes, and as models they are refused for having no tensors", async () => {
  const bundle = path.join(__dirname, "..", "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle");
  const git = path.join(dir, "llama.git");
  execFileSync("git", ["clone", "-q", "--bare", bundle, git]);
  const names = execFileSync("git", ["--git-dir", git, "ls-tree", "--name-only", "HEAD", "models/"]).toString().split("\n").filter((n) => /ggml-vocab-.*\.gguf$/.test(n));
  expect(names.length).toBeGreaterThanOrEqual(15);
  const archs: string[] = [];
  for (const name of names) {
    const file = path.join(dir, path.basename(name));
    writeFileSync(file, execFileSync("git", ["--git-dir", git, "show", `HEAD:${name}`], { maxBuffer: 1 << 28 }));
    const info = await readGgufInfo(file);
    archs.push(String(info.metadata["general.architecture"]));
    expect(() => validateModelMetadata(file, info)).not.toThrow();
    expect(() => validateModelFile(file, info)).toThrow(`${file} is not a valid model: it has no tensors (a vocabulary-only file?)`);
    await rm(file);
  }
  // Several architectures and tokenizers: MoE (gemma4, nomic-bert-moe), per-layer head counts, BERT, GQA.
  expect(new Set(archs).size).toBeGreaterThanOrEqual(10);
}, 120_000);

describe("hyperparameters", () => {
  test.each<[string, (m: GgufInfo["metadata"]) => void, string]>([
    ["block_count 0", (m) => (m["llama.block_count"] = 0), "llama.block_count is 0; it must be an integer from 1 to 512 (llama.cpp's limit)"],
    ["block_count 513", (m) => (m["llama.block_count"] = 513), "llama.block_count is 513; it must be an integer from 1 to 512 (llama.cpp's limit)"],
    ["block_count missing", (m) => delete m["llama.block_count"], "llama.block_count is missing"],
    ["block_count a string", (m) => (m["llama.block_count"] = "5"), 'llama.block_count is "5", not a number'],
    ["nextn layers > block_count", (m) => (m["llama.nextn_predict_layers"] = 6), "llama.nextn_predict_layers is 6; it must be an integer from 0 to 5 (llama.block_count)"],
    ["embedding_length 0", (m) => (m["llama.embedding_length"] = 0), "llama.embedding_length is 0; it must be an integer from 1 to 2147483647"],
    ["context_length 8", (m) => (m["llama.context_length"] = 8), "llama.context_length is 8; it must be an integer from 16 to 4294967295"],
    ["rms epsilon NaN", (m) => (m["llama.attention.layer_norm_rms_epsilon"] = NaN), "llama.attention.layer_norm_rms_epsilon is NaN; it must be a finite number"],
    ["rms epsilon negative", (m) => (m["llama.attention.layer_norm_rms_epsilon"] = -1e-5), "llama.attention.layer_norm_rms_epsilon is -0.00001; an epsilon must be >= 0"],
    ["layer norm epsilon inf", (m) => (m["llama.attention.layer_norm_epsilon"] = Infinity), "llama.attention.layer_norm_epsilon is Infinity; it must be a finite number"],
    ["rope freq_base 0", (m) => (m["llama.rope.freq_base"] = 0), "llama.rope.freq_base is 0; it must be > 0"],
    ["rope scaling factor NaN", (m) => (m["llama.rope.scaling.factor"] = NaN), "llama.rope.scaling.factor is NaN; it must be a finite number"],
    ["rope scaling type unknown", (m) => (m["llama.rope.scaling.type"] = "cubic"), 'llama.rope.scaling.type is "cubic"; llama.cpp knows none, linear, yarn, longrope'],
    ["rope dims odd", (m) => (m["llama.rope.dimension_count"] = 7), "llama.rope.dimension_count is 7; it must be even and at most the head size 8"],
    ["rope dims > head size", (m) => (m["llama.rope.dimension_count"] = 16), "llama.rope.dimension_count is 16; it must be even and at most the head size 8"],
    // llama's (and qwen2's, ...) graph builder asserts the rope covers the whole head, and K and V heads are equal
    ["rope dims < head size", (m) => (m["llama.rope.dimension_count"] = 6), "llama.rope.dimension_count is 6; llama needs it equal to the head size 8"],
    ["value head size differs", (m) => (m["llama.attention.value_length"] = 4), "llama.attention.value_length is 4; llama needs it equal to the key head size 8"],
    ["heads not a multiple of kv heads", (m) => (m["llama.attention.head_count_kv"] = 3), "llama.attention.head_count (8) is not a multiple of llama.attention.head_count_kv (3)"],
    ["per-layer kv heads", (m) => (m["llama.attention.head_count_kv"] = Uint32Array.of(4, 4, 3, 4, 4)), "llama.attention.head_count (8) is not a multiple of llama.attention.head_count_kv (3) in layer 2"],
    ["more heads than embedding width", (m) => ((m["llama.attention.head_count"] = 128), (m["llama.attention.head_count_kv"] = 128)), "llama.attention.head_count (128) is larger than llama.embedding_length (64): the head size would be 0"],
    ["head count negative", (m) => (m["llama.attention.head_count"] = -8), "llama.attention.head_count is -8; it must be an integer from 0 to 2147483647"],
    ["expert_count > 1024", (m) => (m["llama.expert_count"] = 2048), "llama.expert_count is 2048; it must be an integer from 0 to 1024 (llama.cpp's limit)"],
    ["experts used > experts", (m) => ((m["llama.expert_count"] = 8), (m["llama.expert_used_count"] = 9)), "llama.expert_used_count is 9; it must be an integer from 0 to 8 (llama.expert_count)"],
    ["experts but none used", (m) => (m["llama.expert_count"] = 8), "llama.expert_used_count is 0 but the model has 8 experts"],
    ["used experts without experts", (m) => (m["llama.expert_used_count"] = 2), "llama.expert_used_count is 2 but llama.expert_count is 0"],
    ["expert groups not dividing", (m) => ((m["llama.expert_count"] = 8), (m["llama.expert_used_count"] = 2), (m["llama.expert_group_count"] = 3), (m["llama.expert_group_used_count"] = 1)), "llama.expert_count (8) is not a multiple of llama.expert_group_count (3)"],
    ["expert groups used >= groups", (m) => ((m["llama.expert_count"] = 8), (m["llama.expert_used_count"] = 2), (m["llama.expert_group_count"] = 4), (m["llama.expert_group_used_count"] = 4)), "llama.expert_group_used_count is 4; it must be an integer from 1 to 3 (fewer than llama.expert_group_count)"],
    ["architecture missing", (m) => delete m["general.architecture"], "general.architecture is missing, not an architecture name"],
  ])("%s", (_name, edit, message) => {
    expect(refusal(variant((m) => edit(m)))).toBe(message);
  });

  test("accepted: context_length 0 (unknown), epsilon 0, MoE that adds up, per-layer head counts", () => {
    expect(refusal(variant((m) => (m["llama.context_length"] = 0)))).toBe("accepted");
    expect(refusal(variant((m) => (m["llama.attention.layer_norm_rms_epsilon"] = 0)))).toBe("accepted");
    expect(refusal(variant((m) => ((m["llama.expert_count"] = 8), (m["llama.expert_used_count"] = 2), (m["llama.expert_group_count"] = 4), (m["llama.expert_group_used_count"] = 2))))).toBe("accepted");
    expect(refusal(variant((m) => (m["llama.attention.head_count_kv"] = Uint32Array.of(4, 8, 2, 1, 0))))).toBe("accepted");
  });
});

describe("tokenizer", () => {
  test.each<[string, (m: GgufInfo["metadata"]) => void, string]>([
    ["no tokenizer", (m) => (m["tokenizer.ggml.model"] = "none"), 'tokenizer.ggml.model is "none": the model has no tokenizer, and safety-lens tokenizes every input'],
    ["tokenizer model missing", (m) => delete m["tokenizer.ggml.model"], "tokenizer.ggml.model is missing, not a tokenizer name"],
    ["tokens missing", (m) => delete m["tokenizer.ggml.tokens"], "tokenizer.ggml.tokens is missing, not a list of token strings"],
    ["tokens empty", (m) => (m["tokenizer.ggml.tokens"] = []), "tokenizer.ggml.tokens is an array of 0, not a list of token strings"],
    ["duplicate token", (m) => ((m["tokenizer.ggml.tokens"] as string[])[300] = (m["tokenizer.ggml.tokens"] as string[])[299]), 'tokenizer.ggml.tokens has the string "ing" twice (ids 299 and 300); llama.cpp needs distinct tokens'],
    ["an empty token equal to llama.cpp's stand-in", (m) => ((m["tokenizer.ggml.tokens"] as string[])[7] = "", ((m["tokenizer.ggml.tokens"] as string[])[9] = "[EMPTY_7]")), 'tokenizer.ggml.tokens has the string "[EMPTY_7]" twice (ids 7 and 9); llama.cpp needs distinct tokens'],
    ["scores too short", (m) => (m["tokenizer.ggml.scores"] = new Float32Array(511)), "tokenizer.ggml.scores is an array of 511 for 512 tokens; it needs a number per token"],
    ["token types not numbers", (m) => (m["tokenizer.ggml.token_type"] = ["a"]), "tokenizer.ggml.token_type is an array of 1 for 512 tokens; it needs a number per token"],
  ])("%s", (_name, edit, message) => {
    expect(refusal(variant((m) => edit(m)))).toBe(message);
  });

  test("two empty tokens are distinct for llama.cpp ([EMPTY_i]), and so accepted", () => {
    expect(refusal(variant((m) => (((m["tokenizer.ggml.tokens"] as string[])[7] = ""), ((m["tokenizer.ggml.tokens"] as string[])[8] = ""))))).toBe("accepted");
  });

  test("tokens that differ only in invalid UTF-8 bytes are told apart by their raw bytes", async () => {
    // Tokens 3 and 4 are "<0x00>" and "<0x01>": make them "\x80" + "0x00>" and "\x81" + "0x00>" (both decode to "\ufffd0x00>").
    const buf = readFileSync(MODEL);
    const at3 = buf.indexOf("<0x00>");
    const at4 = buf.indexOf("<0x01>");
    const edit = (second: number) => {
      const b = Buffer.from(buf);
      b[at3] = 0x80;
      b[at4] = second;
      b[at4 + 4] = "0".charCodeAt(0);
      return b;
    };
    const distinct = path.join(dir, "raw-distinct.gguf");
    writeFileSync(distinct, edit(0x81));
    const info = await readGgufInfo(distinct);
    expect((info.metadata["tokenizer.ggml.tokens"] as string[]).slice(3, 5)).toEqual(["\ufffd0x00>", "\ufffd0x00>"]);
    expect(() => validateModelFile(distinct, info)).not.toThrow();
    const same = path.join(dir, "raw-same.gguf");
    writeFileSync(same, edit(0x80));
    const infoSame = await readGgufInfo(same);
    expect(() => validateModelFile(same, infoSame)).toThrow(`${same} is not a valid model: tokenizer.ggml.tokens has the string "\ufffd0x00>" twice (ids 3 and 4)`);
  });
});

describe("tensors", () => {
  test.each<[string, (t: GgufInfo["tensors"]) => void, string]>([
    ["weight I32", (t) => (tensor(t, "blk.2.attn_q.weight").type = GgmlType.I32), "tensor blk.2.attn_q.weight has type I32, which holds no model weights (float or quantized types only)"],
    ["token_embd I32", (t) => (tensor(t, "token_embd.weight").type = GgmlType.I32), "tensor token_embd.weight has type I32, which holds no model weights (float or quantized types only)"],
    ["weight F64", (t) => (tensor(t, "output.weight").type = GgmlType.F64), "tensor output.weight has type F64, which holds no model weights (float or quantized types only)"],
    ["weight Q8_K (an activation format)", (t) => (tensor(t, "blk.0.ffn_up.weight").type = GgmlType.Q8_K), "tensor blk.0.ffn_up.weight has type Q8_K, which holds no model weights (float or quantized types only)"],
    ["weight of an unknown type", (t) => (tensor(t, "blk.0.ffn_up.weight").type = 99), "tensor blk.0.ffn_up.weight has type type 99, which holds no model weights (float or quantized types only)"],
    ["norm F16", (t) => (tensor(t, "blk.4.ffn_norm.weight").type = GgmlType.F16), "tensor blk.4.ffn_norm.weight has type F16; 1-D tensors must be F32"],
    ["2-D norm Q8_0", (t) => ((tensor(t, "output_norm.weight").shape = [32, 2]), (tensor(t, "output_norm.weight").type = GgmlType.Q8_0)), "tensor output_norm.weight has type Q8_0; norm weights must be F32"],
    ["layer beyond block_count", (t) => (tensor(t, "blk.4.ffn_norm.weight").name = "blk.5.ffn_norm.weight"), "tensor blk.5.ffn_norm.weight belongs to layer 5 but llama.block_count is 5"],
    ["token_embd rows != vocabulary", (t) => (tensor(t, "token_embd.weight").shape = [64, 511]), "tensor token_embd.weight has shape [64, 511], expected [64, 512] from llama.embedding_length and the vocabulary size"],
    ["output width", (t) => (tensor(t, "output.weight").shape = [32, 512]), "tensor output.weight has shape [32, 512], expected [64, 512] from llama.embedding_length and the vocabulary size"],
    ["attn_norm width", (t) => (tensor(t, "blk.3.attn_norm.weight").shape = [63]), "tensor blk.3.attn_norm.weight has shape [63], expected [64] from llama.embedding_length"],
    ["output_norm 2-D", (t) => (tensor(t, "output_norm.weight").shape = [64, 2]), "tensor output_norm.weight has shape [64, 2], expected [64] from llama.embedding_length"],
  ])("%s", (_name, edit, message) => {
    expect(refusal(variant((_m, t) => edit(t)))).toBe(message);
  });

  test("accepted: quantized and half-precision weights, [n, 1] for [n]", () => {
    for (const type of [GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.IQ4_XS, GgmlType.MXFP4]) {
      expect(refusal(variant((_m, t) => (tensor(t, "blk.0.attn_q.weight").type = type)))).toBe("accepted");
    }
    expect(refusal(variant((_m, t) => (tensor(t, "output_norm.weight").shape = [64, 1])))).toBe("accepted");
  });
});

test("a file without tensors is refused as a model", () => {
  expect(refusal(variant((_m, t) => t.splice(0)))).toBe("it has no tensors (a vocabulary-only file?)");
});
