/**
 * Quantizing a GGUF model with libllama's own quantizer (llama_model_quantize, through the
 * addon's QuantizeWorker): the quantized synthetic models of the architecture tests. Tools
 * only: the library never quantizes.
 */
import { randomBytes } from "node:crypto";
import { rename, stat, unlink } from "node:fs/promises";
import * as path from "node:path";

import { ensureLibraries } from "../core/native";
import { ModelLoadError } from "../errors";
import { readGgufInfo } from "../io/gguf";

/** Weight types: llama.cpp's LLAMA_FTYPE_MOSTLY_F16, _Q8_0 and _Q4_K_M (mapped in native/QuantizeWorker.cpp). */
export const QUANT_TYPES = Object.freeze(["f16", "q8_0", "q4_k_m"] as const);
export type QuantType = (typeof QUANT_TYPES)[number];

export interface QuantizeOptions {
  /** Quantizer threads (default 1). */
  threads?: number;
}

/**
 * Writes `output`, a copy of the GGUF model `input` with its matrices in `type` (norms and
 * other 1-D tensors stay F32; llama.cpp chooses per tensor, e.g. Q6_K for the output head
 * in q4_k_m, and falls back to another type where a row is not a multiple of the block).
 * The file appears atomically.
 */
export async function quantizeModel(input: string, output: string, type: QuantType, options: QuantizeOptions = {}): Promise<{ path: string; fileSize: number }> {
  if (typeof input !== "string" || input.length === 0) throw new TypeError("input must be a non-empty string");
  if (typeof output !== "string" || output.length === 0) throw new TypeError("output must be a non-empty string");
  if (!QUANT_TYPES.includes(type)) throw new RangeError(`type must be one of ${QUANT_TYPES.join(", ")}, got ${JSON.stringify(type)}`);
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  if (path.resolve(input) === path.resolve(output)) throw new RangeError("output must differ from input");
  await readGgufInfo(input); // missing / not GGUF / truncated: ModelLoadError before llama.cpp sees it
  const tmp = `${output}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    try {
      await ensureLibraries().quantize(input, tmp, type, threads);
    } catch (e) {
      throw new ModelLoadError("MODEL_LOAD_FAILED", (e as Error).message, { cause: e });
    }
    await rename(tmp, output);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  return { path: output, fileSize: (await stat(output)).size };
}
