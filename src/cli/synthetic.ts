/** `safety-lens synthetic`: a random-weight GGUF of one architecture and quantization (src/tools/synthetic.ts). */
import { parseArgs } from "node:util";

import { intOption, print, UsageError } from "./util";

export async function cmdSynthetic(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      arch: { type: "string" },
      layers: { type: "string" },
      width: { type: "string" },
      quant: { type: "string" },
      vocab: { type: "string" },
      "vocab-dir": { type: "string" },
      heads: { type: "string" },
      "heads-kv": { type: "string" },
      "head-dim": { type: "string" },
      ffn: { type: "string" },
      ctx: { type: "string" },
      seed: { type: "string" },
      threads: { type: "string" },
      out: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  const { SYNTHETIC_ARCHS } = await import("../tools/arch-specs");
  const { QUANT_TYPES } = await import("../tools/quantize");
  const { createSyntheticModel } = await import("../tools/synthetic");
  if (!values.out) throw new UsageError("synthetic needs --out FILE.gguf");
  if (!values.arch) throw new UsageError(`synthetic needs --arch (${SYNTHETIC_ARCHS.join(", ")})`);
  if (!SYNTHETIC_ARCHS.includes(values.arch)) throw new UsageError(`--arch must be one of ${SYNTHETIC_ARCHS.join(", ")}, got ${JSON.stringify(values.arch)}`);
  const quant = values.quant ?? "f16";
  if (!(QUANT_TYPES as readonly string[]).includes(quant)) throw new UsageError(`--quant must be one of ${QUANT_TYPES.join(", ")}, got ${JSON.stringify(quant)}`);
  const info = await createSyntheticModel({
    out: values.out,
    arch: values.arch,
    quant: quant as (typeof QUANT_TYPES)[number],
    layers: intOption(values.layers, "layers"),
    width: intOption(values.width, "width"),
    vocab: values.vocab,
    vocabDir: values["vocab-dir"],
    heads: intOption(values.heads, "heads"),
    headsKv: intOption(values["heads-kv"], "heads-kv"),
    headDim: intOption(values["head-dim"], "head-dim"),
    ffn: intOption(values.ffn, "ffn"),
    ctx: intOption(values.ctx, "ctx"),
    seed: intOption(values.seed, "seed"),
    threads: intOption(values.threads, "threads"),
  });
  const text = [
    `wrote ${info.path}: ${info.arch} ${info.layers} x ${info.width}, ${info.quant}, ${(info.fileSize / 1e6).toFixed(1)} MB`,
    `heads ${info.heads} (KV ${info.headsKv}) x ${info.headDim}, ffn ${info.ffn}, context ${info.ctx}, ${(info.nParams / 1e6).toFixed(1)}M parameters`,
    `tokenizer from ${info.vocabGguf} (${info.nVocab} tokens)`,
  ].join("\n");
  print(values.json, info, text);
}
