import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgmlType, ggufFingerprint, readGgufInfo, readGgufMetadataEntries } from "../src/io/gguf";
import { readGgufTensorF32 } from "../src/tools/gguf-writer";
import { CHATML_TEMPLATE, createSyntheticModel, extractLlamaVocab } from "../src/tools/synthetic";

const STORIES = join(__dirname, "..", "models", "stories260K.gguf");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safety-lens-synth-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("tiny qwen2 model has llama.cpp's tensor layout and the vocab's tokenizer", async () => {
  const out = join(dir, "tiny.gguf");
  const result = await createSyntheticModel({ out, layers: 2, width: 64, heads: 4, headsKv: 2, ffn: 128, vocabGguf: STORIES });
  const info = await readGgufInfo(out);
  const m = info.metadata;

  expect(m["general.architecture"]).toBe("qwen2");
  expect(m["general.name"]).toBe("synthetic-qwen2-2x64");
  expect(m["qwen2.block_count"]).toBe(2);
  expect(m["qwen2.embedding_length"]).toBe(64);
  expect(m["qwen2.feed_forward_length"]).toBe(128);
  expect(m["qwen2.attention.head_count"]).toBe(4);
  expect(m["qwen2.attention.head_count_kv"]).toBe(2);
  expect(m["qwen2.context_length"]).toBe(4096);
  expect(m["qwen2.rope.freq_base"]).toBe(1000000);
  expect(m["qwen2.attention.layer_norm_rms_epsilon"]).toBeCloseTo(1e-6, 12);

  // Every tokenizer.* key is copied with its type and value; ChatML is added since the vocab has no template.
  const source = await readGgufMetadataEntries(STORIES, (k) => k.startsWith("tokenizer."));
  const copied = await readGgufMetadataEntries(out, (k) => k.startsWith("tokenizer."));
  expect(copied.filter((e) => e.key !== "tokenizer.chat_template")).toEqual(source);
  expect(m["tokenizer.chat_template"]).toBe(CHATML_TEMPLATE);

  const nVocab = 512;
  const kvDim = (64 / 4) * 2;
  const expected: Array<[string, number[], GgmlType]> = [["token_embd.weight", [64, nVocab], GgmlType.F16]];
  for (let l = 0; l < 2; l++) {
    expected.push(
      [`blk.${l}.attn_norm.weight`, [64], GgmlType.F32],
      [`blk.${l}.attn_q.weight`, [64, 64], GgmlType.F16],
      [`blk.${l}.attn_q.bias`, [64], GgmlType.F32],
      [`blk.${l}.attn_k.weight`, [64, kvDim], GgmlType.F16],
      [`blk.${l}.attn_k.bias`, [kvDim], GgmlType.F32],
      [`blk.${l}.attn_v.weight`, [64, kvDim], GgmlType.F16],
      [`blk.${l}.attn_v.bias`, [kvDim], GgmlType.F32],
      [`blk.${l}.attn_output.weight`, [64, 64], GgmlType.F16],
      [`blk.${l}.ffn_norm.weight`, [64], GgmlType.F32],
      [`blk.${l}.ffn_gate.weight`, [64, 128], GgmlType.F16],
      [`blk.${l}.ffn_up.weight`, [64, 128], GgmlType.F16],
      [`blk.${l}.ffn_down.weight`, [128, 64], GgmlType.F16],
    );
  }
  expected.push(["output_norm.weight", [64], GgmlType.F32]);
  expect(info.tensors.map((t) => [t.name, t.shape, t.type])).toEqual(expected);
  expect(info.tensors.some((t) => t.name === "output.weight")).toBe(false); // tied embeddings

  expect(info.expectedSize).toBe(info.fileSize);
  expect(result.fileSize).toBe(info.fileSize);
  expect(result).toMatchObject({ layers: 2, width: 64, ffn: 128, heads: 4, headsKv: 2, nVocab });
  expect(result.nParams).toBe(expected.reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0));

  // Norms are ones; weights look like N(0, 0.02^2).
  expect(await readGgufTensorF32(out, info, "blk.1.ffn_norm.weight")).toEqual(new Float32Array(64).fill(1));
  const w = await readGgufTensorF32(out, info, "token_embd.weight");
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < w.length; i++) {
    sum += w[i];
    sq += w[i] * w[i];
  }
  const mean = sum / w.length;
  expect(Math.abs(mean)).toBeLessThan(0.001);
  expect(Math.sqrt(sq / w.length - mean * mean)).toBeCloseTo(0.02, 3);
});

test("defaults follow Qwen2.5-0.5B and output is deterministic per seed", async () => {
  const a = join(dir, "a.gguf");
  const b = join(dir, "b.gguf");
  const c = join(dir, "c.gguf");
  const res = await createSyntheticModel({ out: a, layers: 1, width: 896, vocabGguf: STORIES, seed: 5 });
  expect(res).toMatchObject({ heads: 14, headsKv: 2, ffn: 4864, ctx: 4096 });
  await createSyntheticModel({ out: b, layers: 1, width: 896, vocabGguf: STORIES, seed: 5 });
  await createSyntheticModel({ out: c, layers: 1, width: 896, vocabGguf: STORIES, seed: 6 });
  const fp = async (p: string): Promise<string> => ggufFingerprint(p, await readGgufInfo(p));
  expect(await fp(a)).toBe(await fp(b));
  expect(await fp(a)).not.toBe(await fp(c));
  const info = await readGgufInfo(a);
  expect(info.tensors.find((t) => t.name === "blk.0.attn_k.weight")?.shape).toEqual([896, 128]);
  expect(info.tensors.find((t) => t.name === "blk.0.ffn_down.weight")?.shape).toEqual([4864, 896]);
});

test("invalid shapes are rejected", async () => {
  const out = join(dir, "bad.gguf");
  await expect(createSyntheticModel({ out, width: 64, heads: 3, vocabGguf: STORIES })).rejects.toThrow(
    "width 64 is not divisible by heads 3",
  );
  await expect(createSyntheticModel({ out, width: 64, heads: 4, headsKv: 3, vocabGguf: STORIES })).rejects.toThrow(
    "heads 4 is not divisible by headsKv 3",
  );
  await expect(createSyntheticModel({ out, layers: 0, vocabGguf: STORIES })).rejects.toThrow("layers must be a positive integer");
  await expect(stat(out)).rejects.toThrow();
});

test("extractLlamaVocab pulls a vocab GGUF out of node-llama-cpp's llama.cpp bundle", async () => {
  const vocabDir = join(dir, "vocab");
  const path = await extractLlamaVocab("qwen2", vocabDir);
  expect(path).toBe(join(vocabDir, "ggml-vocab-qwen2.gguf"));
  const info = await readGgufInfo(path);
  expect(info.metadata["tokenizer.ggml.pre"]).toBe("qwen2");
  expect((info.metadata["tokenizer.ggml.tokens"] as string[]).length).toBe(151936);
  expect(info.tensors.length).toBe(0);
  const mtime = (await stat(path)).mtimeMs;
  expect(await extractLlamaVocab("qwen2", vocabDir)).toBe(path); // cached
  expect((await stat(path)).mtimeMs).toBe(mtime);
  await expect(extractLlamaVocab("../etc", vocabDir)).rejects.toThrow('invalid vocab name "../etc"');
  await expect(extractLlamaVocab("no-such-vocab", vocabDir)).rejects.toThrow("cannot extract ggml-vocab-no-such-vocab.gguf");
});
