#!/usr/bin/env node
/**
 * safety-lens command line. Every command takes --json for machine-readable output.
 *
 *   safety-lens info    [--model PATH]
 *   safety-lens capture [--model PATH] --input FILE.jsonl --layers 4,12,final [--pool last|mean] [--chat] [--out FILE.safetensors]
 *   safety-lens bench   [--model PATH | --synthetic 24x896]
 *   safety-lens demo
 */
import * as path from "node:path";
import { parseArgs } from "node:util";

import { UsageError, common, intOption, modelOptions, numOption, parseLayers, print } from "./cli-util";
import { SafetyLensError } from "./errors";
import { readTextRecords } from "./jsonl";
import { DEFAULT_MODEL_PATH, LayerSpec, loadModel, Model } from "./model";
import { runtimeInfo } from "./core/runtime-info";
import { GpuOption, ensureLibraries } from "./native";
import { ProgressBar } from "./progress";
import { writeSafetensors } from "./safetensors";

const USAGE = `safety-lens: hidden states of llama.cpp models, for safety probes and rankers

Usage:
  safety-lens info    [--model PATH] [--json]
  safety-lens capture [--model PATH] --input FILE.jsonl --layers 4,12,final [--pool last|mean]
                      [--chat] [--field text] [--out FILE.safetensors] [--json]
  safety-lens generate [--model PATH] --prompt TEXT [--n 4] [--max-tokens 64] [--temperature 0.8]
                      [--top-p 0.95] [--top-k 40] [--min-p 0.05] [--seed 1] [--stop S]... [--chat]
                      [--layers 6,final [--response last|mean]] [--json]
  safety-lens bench   [--model PATH | --synthetic 24x896] [--texts N] [--only capture|generate|probe|srr] [--json]
  safety-lens train-probe --data FILE.jsonl... [--method logreg|mlp|lpm|mlpm] [--layer N | --layers a,b]
                      [--threshold 0.5|best-f1|fpr:0.05] [--seed 1] [--out probe.json] [--json]
  safety-lens eval-probe --probe probe.json --data FILE.jsonl... [--split test|all] [--baseline prompted] [--json]
  safety-lens sweep   --data FILE.jsonl... [--method lpm|logreg|mlp] [--svg sweep.svg] [--json]
  safety-lens classify --probe probe.json (--prompt TEXT... | --input FILE.jsonl) [--json]
  safety-lens train-ranker --data LISTS.jsonl... [--layer N] [--lite] [--width 64] [--epochs 30] [--test-source S]
                      [--max-candidates N] [--max-chars N] [--out ranker.json] [--json]
  safety-lens eval-ranker --ranker ranker.json --data LISTS.jsonl... [--split test|all] [--json]
  safety-lens rank    --ranker ranker.json (--instruction TEXT --candidate TEXT... | --input LISTS.jsonl) [--json]
  safety-lens demo    [--json]

Data options (train-probe, eval-probe, sweep): --seed N, --limit-per-file N, --no-cache, --cache-dir DIR,
  --no-chat, --no-assistant-prefix, --system-prompt TEXT (how prompts are rendered before reading them)

Common options:
  --model PATH      a GGUF model (default: the embedded ${path.basename(DEFAULT_MODEL_PATH)})
  --threads N       llama.cpp threads (default: physical cores)
  --gpu KIND        auto | cuda | vulkan | metal | false (default auto)
  --context-size N  longest text in tokens (default min(training context, 4096))
  --json            machine-readable output on stdout
`;

async function cmdInfo(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: common, strict: true });
  const model = await loadModel(modelOptions(values));
  try {
    const devices = ensureLibraries().devices();
    const runtime = runtimeInfo();
    const { chatTemplate, ...rest } = model.info;
    const value = { ...rest, chatTemplate, devicesAvailable: devices, runtime };
    const text = [
      `model        ${model.info.path}`,
      `architecture ${model.info.arch} (${model.info.description})`,
      `name         ${model.info.name}`,
      `layers       ${model.info.nLayer} (capture 0..${model.info.nLayer - 1} and "final")`,
      `width        ${model.info.nEmbd}`,
      `parameters   ${model.info.nParams}`,
      `context      ${model.info.contextSize} (trained ${model.info.nCtxTrain})`,
      `vocabulary   ${model.info.nVocab}`,
      `chat template ${chatTemplate ? "from the model" : "none (a ChatML fallback is used)"}`,
      `fingerprint  ${model.info.fingerprint}`,
      `backend      ${model.info.backend}${model.info.devices.length ? ` (${model.info.devices.join(", ")})` : ""}, ${model.info.threads} threads`,
      `devices      ${devices.map((d) => `${d.name} [${d.type}]`).join(", ")}`,
      `addon        ${runtime.addon.kind === "built" ? "built here" : "prebuilt"}: ${runtime.addon.path}`,
      ...runtime.addon.skipped.map((s) => `             (skipped ${s.path}: ${s.reason})`),
      `llama.cpp    ${runtime.llamaCpp.release ?? "unknown release"} (node-llama-cpp ${runtime.llamaCpp.nodeLlamaCpp ?? "?"}): ${runtime.llamaCpp.libraries}`,
      ...runtime.backends.map((b, i) =>
        `${i === 0 ? "backends     " : "             "}${b.name}: ${b.available ? `yes (${b.devices.join(", ")})` : `no: ${b.reason}`}`),
    ].join("\n");
    print(values.json, value, text);
  } finally {
    await model.dispose();
  }
}

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

async function cmdCapture(argv: string[]): Promise<void> {
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

async function cmdGenerate(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...common,
      prompt: { type: "string" },
      n: { type: "string" },
      "max-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      "top-k": { type: "string" },
      "min-p": { type: "string" },
      seed: { type: "string" },
      stop: { type: "string", multiple: true },
      chat: { type: "boolean", default: false },
      layers: { type: "string" },
      response: { type: "string", default: "last" },
    },
    strict: true,
  });
  if (values.prompt === undefined) throw new UsageError("generate needs --prompt TEXT");
  if (values.response !== "last" && values.response !== "mean") throw new UsageError(`--response must be last or mean, got ${JSON.stringify(values.response)}`);
  const model = await loadModel(modelOptions(values));
  try {
    const n = intOption(values.n, "n") ?? 1;
    const layers = values.layers ? parseLayers(values.layers, model.info.nLayer) : undefined;
    const streaming = !values.json && n === 1 && !!process.stdout.isTTY;
    const out = await model.generate(values.prompt, {
      n,
      maxTokens: intOption(values["max-tokens"], "max-tokens") ?? 64,
      temperature: numOption(values.temperature, "temperature"),
      topP: numOption(values["top-p"], "top-p"),
      topK: intOption(values["top-k"], "top-k"),
      minP: numOption(values["min-p"], "min-p"),
      seed: intOption(values.seed, "seed"),
      stop: values.stop,
      chat: values.chat,
      capture: layers ? { layers, response: values.response as "last" | "mean" } : undefined,
      onToken: streaming ? (e) => process.stdout.write(e.text) : undefined,
    });
    const hidden = (a: import("./model").Activations | null) =>
      a && layers ? Object.fromEntries(layers.map((l) => [String(l), Array.from(a.layer(l))])) : undefined;
    const value = {
      prompt: out.prompt,
      promptTokens: out.promptTokens,
      seed: out.seed,
      timings: out.timings,
      promptHidden: hidden(out.candidates[0]?.hidden.prompt ?? null),
      candidates: out.candidates.map((c) => ({
        text: c.text,
        tokens: c.tokens.length,
        finishReason: c.finishReason,
        responseHidden: hidden(c.hidden.response),
      })),
    };
    if (values.json) print(true, value, "");
    else if (streaming) process.stdout.write(`\n[${out.candidates[0].finishReason}, ${out.candidates[0].tokens.length} tokens, seed ${out.seed}]\n`);
    else {
      const lines = out.candidates.map((c, i) => `--- candidate ${i} (${c.finishReason}, ${c.tokens.length} tokens)\n${c.text}`);
      print(false, value, `${lines.join("\n")}\n[seed ${out.seed}, ${(out.timings.totalMs / 1000).toFixed(2)} s]`);
    }
  } finally {
    await model.dispose();
  }
}

async function cmdBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...common, synthetic: { type: "string" }, texts: { type: "string" }, repeats: { type: "string" }, only: { type: "string" } },
    strict: true,
  });
  const { runBench, formatBench } = await import("./bench");
  if (values.model && values.synthetic) throw new UsageError("use --model or --synthetic, not both");
  if (values.only !== undefined && !["capture", "generate", "probe", "srr"].includes(values.only)) {
    throw new UsageError(`--only must be capture, generate, probe or srr, got ${JSON.stringify(values.only)}`);
  }
  const result = await runBench({
    modelPath: values.model,
    synthetic: values.synthetic,
    texts: intOption(values.texts, "texts"),
    repeats: intOption(values.repeats, "repeats"),
    threads: intOption(values.threads, "threads"),
    only: values.only as "capture" | "generate" | "probe" | "srr" | undefined,
    log: values.json ? () => undefined : (m: string) => process.stderr.write(`${m}\n`),
  });
  print(values.json, result, formatBench(result));
}

async function cmdDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: common, strict: true });
  const { runDemo } = await import("./demo");
  await runDemo({ ...modelOptions(values), json: values.json });
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (!cmd || cmd === "help" || cmd === "--help" || cmd === "-h") {
      process.stdout.write(USAGE);
      return cmd ? 0 : 2;
    }
    if (rest.includes("--help") || rest.includes("-h")) {
      process.stdout.write(USAGE);
      return 0;
    }
    switch (cmd) {
      case "info":
        await cmdInfo(rest);
        break;
      case "capture":
        await cmdCapture(rest);
        break;
      case "generate":
        await cmdGenerate(rest);
        break;
      case "bench":
        await cmdBench(rest);
        break;
      case "train-probe":
        await (await import("./cli-probe")).cmdTrainProbe(rest);
        break;
      case "eval-probe":
        await (await import("./cli-probe")).cmdEvalProbe(rest);
        break;
      case "sweep":
        await (await import("./cli-probe")).cmdSweep(rest);
        break;
      case "classify":
        await (await import("./cli-probe")).cmdClassify(rest);
        break;
      case "train-ranker":
        await (await import("./cli-srr")).cmdTrainRanker(rest);
        break;
      case "eval-ranker":
        await (await import("./cli-srr")).cmdEvalRanker(rest);
        break;
      case "rank":
        await (await import("./cli-srr")).cmdRank(rest);
        break;
      case "demo":
        await cmdDemo(rest);
        break;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(cmd)}; run safety-lens --help`);
    }
    return 0;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (e instanceof UsageError || (err.code && String(err.code).startsWith("ERR_PARSE_ARGS"))) {
      process.stderr.write(`safety-lens: ${err.message}\n`);
      return 2;
    }
    if (e instanceof SafetyLensError || e instanceof TypeError || e instanceof RangeError || err.code === "ENOENT") {
      process.stderr.write(`safety-lens: ${err.name}: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`safety-lens: ${err.stack ?? err.message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
