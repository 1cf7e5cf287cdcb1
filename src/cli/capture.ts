/** `safety-lens capture`: a JSONL file's texts into a safetensors file of hidden states. */
import * as path from "node:path";
import { parseArgs } from "node:util";

import type { LayerSpec } from "../core/activations";
import { loadModel, type Model } from "../core/model";
import { readTextRecords } from "../io/jsonl";
import { writeSafetensors } from "../io/safetensors";
import { ProgressBar } from "./progress";
import { common, modelOptions, parseLayers, print, UsageError } from "./util";

export interface CaptureFileResult {
  out: string;
  rows: number;
  layers: LayerSpec[];
  nEmbd: number;
  pool: string;
  chat: boolean;
  tokens: number;
  seconds: number;
  tokensPerSec: number;
  fingerprint: string;
}

/** Captures a JSONL file's texts into a safetensors file (shared by `capture` and `demo`). */
export async function captureFile(
  model: Model,
  opts: { input: string; field?: string; layers: LayerSpec[]; pool: "last" | "mean"; chat: boolean; out: string; quiet?: boolean },
): Promise<CaptureFileResult & { ids: string[]; data: Map<LayerSpec, Float32Array> }> {
  const { ids, texts } = await readTextRecords(opts.input, { field: opts.field ?? "text" });
  if (texts.length === 0) throw new UsageError(`${opts.input} has no records`);
  const bar = new ProgressBar("capture");
  const t0 = performance.now();
  const acts = await model.capture(texts, {
    layers: opts.layers,
    pool: opts.pool,
    chat: opts.chat,
    onProgress: opts.quiet ? undefined : (p) => bar.update(p.textsDone, p.texts, `texts, ${p.tokensDone} tokens`),
  });
  const seconds = (performance.now() - t0) / 1000;
  if (!opts.quiet) bar.done();
  const tokens = acts.tokenCounts.reduce((a, b) => a + b, 0);
  await writeSafetensors(
    opts.out,
    opts.layers.map((l) => ({ name: `layer.${l}`, shape: [acts.rows, acts.nEmbd], data: acts.layer(l) })),
    {
      format: "safety-lens.activations/1",
      model_fingerprint: model.info.fingerprint,
      model_path: model.info.path,
      model_arch: model.info.arch,
      layers: JSON.stringify(opts.layers),
      pool: opts.pool,
      chat: String(opts.chat),
      source: path.resolve(opts.input),
      row_ids: JSON.stringify(ids),
      token_counts: JSON.stringify(Array.from(acts.tokenCounts)),
    },
  );
  const data = new Map<LayerSpec, Float32Array>(opts.layers.map((l) => [l, acts.layer(l)]));
  return {
    out: path.resolve(opts.out),
    rows: acts.rows,
    layers: opts.layers,
    nEmbd: acts.nEmbd,
    pool: opts.pool,
    chat: opts.chat,
    tokens,
    seconds,
    tokensPerSec: tokens / seconds,
    fingerprint: model.info.fingerprint,
    ids,
    data,
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
    },
    strict: true,
  });
  if (!values.input) throw new UsageError("capture needs --input FILE.jsonl");
  if (!values.layers) throw new UsageError("capture needs --layers, e.g. --layers 4,12,final");
  if (values.pool !== "last" && values.pool !== "mean") throw new UsageError(`--pool must be last or mean, got ${JSON.stringify(values.pool)}`);
  const out = values.out ?? values.input.replace(/\.jsonl?$/i, "") + ".safetensors";
  const model = await loadModel(modelOptions(values));
  try {
    const layers = parseLayers(values.layers, model.info.nLayer);
    const { ids: _ids, data: _data, ...r } = await captureFile(model, {
      input: values.input,
      field: values.field,
      layers,
      pool: values.pool,
      chat: values.chat,
      out,
      quiet: values.json,
    });
    print(
      values.json,
      r,
      `wrote ${r.out}: ${r.layers.length} tensors [${r.rows}, ${r.nEmbd}] (${r.layers.map((l) => `layer.${l}`).join(", ")}), ` +
        `${r.tokens} tokens in ${r.seconds.toFixed(2)} s (${Math.round(r.tokensPerSec)} tokens/s)`,
    );
  } finally {
    await model.dispose();
  }
}
