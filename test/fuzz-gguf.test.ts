/**
 * GGUF fuzzing: corrupted copies of the embedded model (llama architecture) and of a tiny
 * synthetic qwen2 model are loaded (one text captured, two tokens generated) in child processes;
 * every one must end in a typed error or a successful capture, never a signal death or a hang.
 *
 * FUZZ_COUNT=3000 npx jest test/fuzz-gguf.test.ts runs a larger campaign (default: CI's size);
 * FUZZ_SEED picks another deterministic sample; FUZZ_REPORT=file.json writes every result;
 * FUZZ_LIB=/other/dist/index.js runs the children on another build (e.g. main's, for a baseline).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import * as path from "node:path";
import { abortReason, isFailure, runCampaign, runChild, summarize, type MutantResult } from "./fuzz/campaign";
import { enumerateMutations, sampleMutations, scanGguf, structuralMutations, type Mutation } from "./fuzz/mutate";
import { GgmlType, ggmlBlockInfo, GgufValueType, readGgufInfo, readGgufMetadataEntries, type GgufMetadataEntry } from "../src/io/gguf";
import { f32ToF16, readGgufTensorF32, writeGguf, type GgufTensorInput } from "../src/tools/gguf-writer";
import { createSyntheticModel } from "../src/tools/synthetic";
import { MODEL, tmpDir } from "./helpers";

const COUNT = Number(process.env.FUZZ_COUNT ?? 400);
/** Share of the campaign spent on the qwen2 model. */
const QWEN2_SHARE = 0.25;
const SEED = Number(process.env.FUZZ_SEED ?? 1);
const PARALLEL = 2;
const TIMEOUT_MS = 30_000;

const original = readFileSync(MODEL);
const layout = scanGguf(original);
let dir: string;
let qwen2: string;

beforeAll(async () => {
  dir = tmpDir("safety-lens-fuzz-");
  qwen2 = path.join(dir, "qwen2.gguf");
  await createSyntheticModel({ out: qwen2, layers: 2, width: 64, heads: 4, headsKv: 2, ffn: 128, vocabGguf: MODEL, ctx: 512 });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function kv(key: string) {
  const e = layout.kvs.find((k) => k.key === key);
  if (!e) throw new Error(`no key ${key}`);
  return e;
}
function tensor(name: string) {
  const t = layout.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor ${name}`);
  return t;
}

/** Two vocabulary strings of equal length that differ in one byte: changing it makes them equal. */
function oneByteDuplicate(): Mutation {
  const strings = kv("tokenizer.ggml.tokens").arr!.strings!;
  for (let i = 0; i < strings.length; i++) {
    for (let j = i + 1; j < strings.length; j++) {
      const a = original.subarray(strings[i].at, strings[i].at + strings[i].len);
      const b = original.subarray(strings[j].at, strings[j].at + strings[j].len);
      if (a.length !== b.length) continue;
      let diff = -1;
      let n = 0;
      for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) (diff = k), n++;
      if (n === 1) {
        const at = strings[j].at + diff;
        const v = a[diff];
        return { group: "regression", id: `tokenizer.ggml.tokens[${j}] byte ${diff} -> equals [${i}] "${a}"`, apply: (buf) => (buf[at] = v) };
      }
    }
  }
  throw new Error("no one-byte-apart token pair");
}

/** The crash classes found on main (issue: reliability item 3), each with the text its refusal must contain. */
const REGRESSIONS: Array<[Mutation, RegExp]> = [
  [{ group: "regression", id: "llama.block_count = 0", apply: (b) => b.writeUInt32LE(0, kv("llama.block_count").valueAt) }, /llama\.block_count/],
  [{ group: "regression", id: "llama.block_count = 0xffffffff", apply: (b) => b.writeUInt32LE(0xffffffff, kv("llama.block_count").valueAt) }, /llama\.block_count/],
  [{ group: "regression", id: "llama.block_count = 600", apply: (b) => b.writeUInt32LE(600, kv("llama.block_count").valueAt) }, /llama\.block_count/],
  [{ group: "regression", id: "layer_norm_rms_epsilon = NaN", apply: (b) => b.writeFloatLE(NaN, kv("llama.attention.layer_norm_rms_epsilon").valueAt) }, /layer_norm_rms_epsilon/],
  [{ group: "regression", id: "layer_norm_rms_epsilon = -1", apply: (b) => b.writeFloatLE(-1, kv("llama.attention.layer_norm_rms_epsilon").valueAt) }, /layer_norm_rms_epsilon/],
  [{ group: "regression", id: "blk.2.attn_q.weight type F32 -> I32", apply: (b) => b.writeUInt32LE(GgmlType.I32, tensor("blk.2.attn_q.weight").typeAt) }, /blk\.2\.attn_q\.weight.*I32/],
  [{ group: "regression", id: "blk.0.ffn_down.weight type F32 -> I32", apply: (b) => b.writeUInt32LE(GgmlType.I32, tensor("blk.0.ffn_down.weight").typeAt) }, /blk\.0\.ffn_down\.weight.*I32/],
  [{ group: "regression", id: "output.weight type F32 -> I32", apply: (b) => b.writeUInt32LE(GgmlType.I32, tensor("output.weight").typeAt) }, /output\.weight.*I32/],
  [{ group: "regression", id: "token_embd.weight type F32 -> I32", apply: (b) => b.writeUInt32LE(GgmlType.I32, tensor("token_embd.weight").typeAt) }, /token_embd\.weight.*I32/],
  [{ group: "regression", id: "output_norm.weight type F32 -> I32", apply: (b) => b.writeUInt32LE(GgmlType.I32, tensor("output_norm.weight").typeAt) }, /output_norm\.weight.*I32/],
  [{ group: "regression", id: "blk.1.attn_norm.weight type F32 -> I32", apply: (b) => b.writeUInt32LE(GgmlType.I32, tensor("blk.1.attn_norm.weight").typeAt) }, /blk\.1\.attn_norm\.weight.*I32/],
  [{ group: "regression", id: "last tensor (blk.4.ffn_norm.weight) type F32 -> F16", apply: (b) => b.writeUInt32LE(GgmlType.F16, tensor("blk.4.ffn_norm.weight").typeAt) }, /blk\.4\.ffn_norm\.weight.*F16/],
  [oneByteDuplicate(), /tokenizer\.ggml\.tokens.*(duplicate|twice)/],
  [{ group: "regression", id: "llama.context_length = 1", apply: (b) => b.writeUInt32LE(1, kv("llama.context_length").valueAt) }, /llama\.context_length/],
];

/** The qwen2 model rewritten with metadata set or added and tensors retyped (F32 <-> F16). */
async function qwen2Variant(
  name: string,
  edit: { set?: Record<string, GgufMetadataEntry["value"]>; add?: GgufMetadataEntry[]; retype?: Record<string, GgmlType> },
): Promise<string> {
  const info = await readGgufInfo(qwen2);
  const metadata = (await readGgufMetadataEntries(qwen2))
    .map((e) => (edit.set && e.key in edit.set ? { ...e, value: edit.set[e.key] } : e))
    .concat(edit.add ?? []);
  const tensors: GgufTensorInput[] = [];
  for (const t of info.tensors) {
    const type = edit.retype?.[t.name] ?? t.type;
    const data = await readGgufTensorF32(qwen2, info, t.name);
    tensors.push({ name: t.name, shape: t.shape, type, data: type === GgmlType.F16 ? f32ToF16(data) : data });
  }
  const out = path.join(dir, `qwen2-${name}.gguf`);
  await writeGguf(out, { metadata, tensors });
  return out;
}

const u32 = (key: string, value: number): GgufMetadataEntry => ({ key, type: GgufValueType.UINT32, value });

/** Crashes on main that need a qwen2-style model (no typed n_rot check, biases) or keys the embedded model lacks. */
const QWEN2_REGRESSIONS: Array<[string, Parameters<typeof qwen2Variant>[1], RegExp]> = [
  ["rope.dimension_count 7", { add: [u32("qwen2.rope.dimension_count", 7)] }, /qwen2\.rope\.dimension_count is 7/],
  ["rope.dimension_count 32 > head size 16", { add: [u32("qwen2.rope.dimension_count", 32)] }, /qwen2\.rope\.dimension_count is 32/],
  ["rope.scaling.type unknown", { add: [{ key: "qwen2.rope.scaling.type", type: GgufValueType.STRING, value: "cubic" }] }, /qwen2\.rope\.scaling\.type/],
  ["attn_q.bias F16", { retype: { "blk.0.attn_q.bias": GgmlType.F16 } }, /blk\.0\.attn_q\.bias has type F16/],
  ["expert_used_count without experts", { add: [u32("qwen2.expert_used_count", 2)] }, /qwen2\.expert_used_count is 2 but qwen2\.expert_count is 0/],
  ["experts but none used", { add: [u32("qwen2.expert_count", 4)] }, /qwen2\.expert_used_count is 0/],
  ["nextn_predict_layers > block_count", { add: [u32("qwen2.nextn_predict_layers", 3)] }, /qwen2\.nextn_predict_layers is 3/],
];

function describeFailure(r: MutantResult): string {
  const o = r.outcome;
  const why = o.kind === "crash" || o.kind === "hang" || o.kind === "died" ? abortReason(o.stderr) : o.kind === "untyped" ? `${o.name}: ${o.message}` : "";
  return `${r.mutation.id}: ${o.kind}${o.kind === "crash" ? ` ${o.signal}` : ""} ${why}`;
}

test("the unmodified model loads and captures in the child", async () => {
  expect(await runChild(MODEL, TIMEOUT_MS)).toEqual({ kind: "ok" });
});

test("a context smaller than the default 64 sequences loads and captures (was a GGML_ASSERT abort in llama-context)", async () => {
  expect(await runChild(MODEL, TIMEOUT_MS, { contextSize: 16 })).toEqual({ kind: "ok" });
});

test("regressions: each crash class found on main is refused with MODEL_INVALID naming the field", async () => {
  const results = await runCampaign(original, REGRESSIONS.map(([m]) => m), { dir, parallel: PARALLEL, timeoutMs: TIMEOUT_MS });
  const wrong: string[] = [];
  results.forEach((r, i) => {
    const o = r.outcome;
    const re = REGRESSIONS[i][1];
    if (o.kind !== "typed" || o.code !== "MODEL_INVALID" || !re.test(o.message) || !o.message.includes(dir)) {
      wrong.push(o.kind === "typed" ? `${r.mutation.id}: ${o.code} ${o.message}` : describeFailure(r));
    }
  });
  expect(wrong).toEqual([]);
});

test("regressions on a qwen2 model: each is refused with MODEL_INVALID naming the field", async () => {
  const wrong: string[] = [];
  const files = await Promise.all(QWEN2_REGRESSIONS.map(([name, edit]) => qwen2Variant(name.replace(/\W+/g, "-"), edit)));
  expect(await runChild(qwen2, TIMEOUT_MS)).toEqual({ kind: "ok" });
  for (let i = 0; i < files.length; i += PARALLEL) {
    const outcomes = await Promise.all(files.slice(i, i + PARALLEL).map((f) => runChild(f, TIMEOUT_MS)));
    outcomes.forEach((o, j) => {
      const [name, , re] = QWEN2_REGRESSIONS[i + j];
      if (o.kind !== "typed" || o.code !== "MODEL_INVALID" || !re.test(o.message)) {
        wrong.push(`${name}: ${o.kind === "typed" ? `${o.code} ${o.message}` : `${o.kind} ${"stderr" in o ? abortReason(o.stderr) : ""}`}`);
      }
    });
  }
  expect(wrong).toEqual([]);
});

test(`campaign: ${COUNT} seeded mutants of the header, metadata, tensor infos and data end in a typed error or a capture`, async () => {
  const t0 = Date.now();
  const subjects: Array<[string, Buffer, number]> = [
    ["stories260K", original, COUNT - Math.round(COUNT * QWEN2_SHARE)],
    ["qwen2", readFileSync(qwen2), Math.round(COUNT * QWEN2_SHARE)],
  ];
  const results: MutantResult[] = [];
  let enumerated = 0;
  for (const [name, file, count] of subjects) {
    const lay = scanGguf(file);
    const all = [...enumerateMutations(file, lay, SEED), ...structuralMutations(file, lay, ggmlBlockInfo)];
    enumerated += all.length;
    const mutants = sampleMutations(all, count, SEED).map((m) => ({ ...m, id: `${name}: ${m.id}` }));
    results.push(...(await runCampaign(file, mutants, { dir, parallel: PARALLEL, timeoutMs: TIMEOUT_MS })));
  }
  const seconds = (Date.now() - t0) / 1000;
  const counts = summarize(results);
  const failures = results.filter((r) => isFailure(r.outcome));
  console.log(
    `GGUF fuzz: ${results.length} mutants (of ${enumerated} enumerated, seed ${SEED}) in ${seconds.toFixed(1)} s\n` +
      Object.entries(counts)
        .sort()
        .map(([k, v]) => `  ${k}: ${v}`)
        .join("\n") +
      (failures.length ? `\nfailures:\n${failures.map((r) => "  " + describeFailure(r)).join("\n")}` : ""),
  );
  if (process.env.FUZZ_REPORT) {
    const rows = results.map((r) => ({ id: r.mutation.id, group: r.mutation.group, ms: r.ms, ...r.outcome }));
    writeFileSync(path.resolve(process.env.FUZZ_REPORT), JSON.stringify({ seed: SEED, count: results.length, enumerated, seconds, counts, rows }, null, 1));
  }
  expect(results).toHaveLength(COUNT);
  expect(failures.map(describeFailure)).toEqual([]);
}, 30 * 60_000);
