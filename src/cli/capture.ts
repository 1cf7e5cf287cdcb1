/**
 * `safety-lens capture`: a JSONL file's texts into a safetensors file of hidden states,
 * written chunk by chunk (memory bounded by the chunk), resumable (--resume), shardable
 * (--shard i/n), one file per layer on request (--split-layers).
 */
import * as path from "node:path";
import { parseArgs } from "node:util";

import type { LayerSpec } from "../core/activations";
import type { CaptureToFileReport, OnLong } from "../core/corpus";
import { loadModel, type Model } from "../core/model";
import { readTextRecords } from "../io/jsonl";
import { ProgressBar } from "./progress";
import { common, intOption, modelOptions, parseLayers, print, UsageError } from "./util";

export interface CaptureFileResult extends CaptureToFileReport {
  layers: LayerSpec[];
  nEmbd: number;
  pool: string;
  chat: boolean;
  tokensPerSec: number;
  fingerprint: string;
}

/** Captures a JSONL file's texts into a file (shared by `capture` and `demo`). */
export async function captureFile(
  model: Model,
  opts: {
    input: string;
    field?: string;
    layers: LayerSpec[];
    pool: "last" | "mean";
    chat: boolean;
    out: string;
    quiet?: boolean;
    resume?: boolean;
    overwrite?: boolean;
    shard?: string;
    splitLayers?: boolean;
    onLong?: OnLong;
    chunkRows?: number;
    lossyUtf8?: boolean;
  },
): Promise<CaptureFileResult> {
  const { ids, texts } = await readTextRecords(opts.input, { field: opts.field ?? "text", lossyUtf8: opts.lossyUtf8 });
  if (texts.length === 0) throw new UsageError(`${opts.input} has no records`);
  const bar = new ProgressBar("capture");
  const r = await model.captureToFile(texts, {
    out: opts.out,
    layers: opts.layers,
    pool: opts.pool,
    chat: opts.chat,
    ids,
    sourceFile: opts.input,
    metadata: { source: path.resolve(opts.input) },
    resume: opts.resume,
    overwrite: opts.overwrite,
    shard: opts.shard,
    splitLayers: opts.splitLayers,
    onLong: opts.onLong,
    chunkRows: opts.chunkRows,
    onProgress: opts.quiet
      ? undefined
      : (p) =>
          bar.update(
            p.rowsDone,
            p.rows,
            `rows, ${Math.round(p.rowsPerSec)} rows/s, ${Math.round(p.tokensPerSec)} tokens/s, ETA ${Number.isFinite(p.etaSec) ? `${Math.round(p.etaSec)} s` : "?"}`,
          ),
  });
  if (!opts.quiet) bar.done();
  return {
    ...r,
    out: path.resolve(r.out),
    files: r.files.map((f) => path.resolve(f)),
    layers: opts.layers,
    nEmbd: model.info.nEmbd,
    pool: opts.pool,
    chat: opts.chat,
    tokensPerSec: r.seconds > 0 ? r.tokens / r.seconds : 0,
    fingerprint: model.info.fingerprint,
  };
}

export async function cmdCapture(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...common,
      input: { type: "string" },
      layers: { type: "string" },
      pool: { type: "string", default: "last" },
      chat: { type: "boolean", default: false },
      field: { type: "string", default: "text" },
      out: { type: "string" },
      resume: { type: "boolean", default: false },
      overwrite: { type: "boolean", default: false },
      shard: { type: "string" },
      "split-layers": { type: "boolean", default: false },
      "on-long": { type: "string", default: "skip" },
      "chunk-rows": { type: "string" },
      "lossy-utf8": { type: "boolean", default: false },
    },
    strict: true,
  });
  if (!values.input) throw new UsageError("capture needs --input FILE.jsonl");
  if (!values.layers) throw new UsageError("capture needs --layers, e.g. --layers 4,12,final");
  if (values.pool !== "last" && values.pool !== "mean") throw new UsageError(`--pool must be last or mean, got ${JSON.stringify(values.pool)}`);
  const onLong = values["on-long"];
  if (onLong !== "skip" && onLong !== "truncate" && onLong !== "error") throw new UsageError(`--on-long must be skip, truncate or error, got ${JSON.stringify(onLong)}`);
  if (values.resume && values.overwrite) throw new UsageError("--resume and --overwrite cannot both be given");
  const out = values.out ?? values.input.replace(/\.jsonl?$/i, "") + ".safetensors";
  const model = await loadModel(modelOptions(values));
  try {
    const layers = parseLayers(values.layers, model.info.nLayer);
    const r = await captureFile(model, {
      input: values.input,
      field: values.field,
      layers,
      pool: values.pool,
      chat: values.chat,
      out,
      quiet: values.json,
      resume: values.resume,
      overwrite: values.overwrite,
      shard: values.shard,
      splitLayers: values["split-layers"],
      onLong,
      chunkRows: intOption(values["chunk-rows"], "chunk-rows"),
      lossyUtf8: values["lossy-utf8"],
    });
    print(
      values.json,
      r,
      `wrote ${r.files.join(", ")}: ${r.layers.length} tensors [${r.rows}, ${r.nEmbd}] (${r.layers.map((l) => `layer.${l}`).join(", ")}), rows ${r.rowStart}-${r.rowEnd - 1}` +
        `${r.skipped ? `, ${r.skipped} skipped (longer than the context)` : ""}${r.truncated ? `, ${r.truncated} truncated` : ""}${r.resumed ? ", resumed" : ""}; ` +
        `${r.tokens} tokens in ${r.seconds.toFixed(2)} s (${Math.round(r.tokensPerSec)} tokens/s)`,
    );
  } finally {
    await model.dispose();
  }
}
