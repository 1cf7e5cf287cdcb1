import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { GgmlType, GgufValueType, readGgufInfo, readGgufMetadataEntries } from "../src/io/gguf";
import { readGgufTensorF32, writeGguf, type GgufTensorInput } from "../src/tools/gguf-writer";

export const MODEL = path.join(__dirname, "..", "models", "stories260K.gguf");

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

export function tmpDir(prefix = "safety-lens-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export const STORIES = [
  "Once upon a time there was a little cat.",
  "The dog ran to the park.",
  "Lily liked to play in the park with her friend Tom every day after school, and they would run and jump and laugh until the sun went down and their moms called them home for dinner.",
  "Hi",
  "Tom had a big red ball. He threw it high in the sky and it came down in the tree. Tom was sad.",
];

/**
 * A copy of the embedded model with another chat template (tokenizer.chat_template)
 * and/or end-of-sequence token (stories260K ends its stories with BOS, id 1, and
 * never samples its EOS, id 2).
 */
export async function modelVariant(
  opts: { template?: string; eosId?: number; tensor?: (name: string, data: Float32Array) => void },
  dir = tmpDir(),
): Promise<string> {
  const info = await readGgufInfo(MODEL);
  const drop = new Set([opts.template !== undefined ? "tokenizer.chat_template" : "", opts.eosId !== undefined ? "tokenizer.ggml.eos_token_id" : ""]);
  const meta = (await readGgufMetadataEntries(MODEL)).filter((e) => !drop.has(e.key));
  if (opts.template !== undefined) meta.push({ key: "tokenizer.chat_template", type: GgufValueType.STRING, value: opts.template });
  if (opts.eosId !== undefined) meta.push({ key: "tokenizer.ggml.eos_token_id", type: GgufValueType.UINT32, value: opts.eosId });
  const tensors: GgufTensorInput[] = [];
  for (const t of info.tensors) {
    const data = await readGgufTensorF32(MODEL, info, t.name);
    opts.tensor?.(t.name, data);
    tensors.push({ name: t.name, shape: t.shape, type: GgmlType.F32, data });
  }
  const out = path.join(dir, "variant.gguf");
  await writeGguf(out, { metadata: meta, tensors });
  return out;
}

/** Reference scatter by the definition (triple loop); for tests. */
export function scatterNaive(X: { data: Float32Array; rows: number; cols: number }, rowsSubset: Uint32Array | undefined | null, center: Float64Array): Float64Array {
  const d = X.cols;
  const S = new Float64Array(d * d);
  const n = rowsSubset ? rowsSubset.length : X.rows;
  for (let k = 0; k < n; k++) {
    const off = (rowsSubset ? rowsSubset[k] : k) * d;
    for (let i = 0; i < d; i++) {
      const xi = X.data[off + i] - center[i];
      for (let j = 0; j < d; j++) S[i * d + j] += xi * (X.data[off + j] - center[j]);
    }
  }
  return S;
}

/** mulberry32: a small seeded generator in [0, 1), so that a failing fuzz case or kill point can be replayed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
