/**
 * `npm run bench` / `safety-lens bench`: capture speed against plain llama_decode
 * and against node-llama-cpp's embedding call, on the same texts in one run.
 *
 * Default model: a random-weight GGUF with real shapes (24 layers x 896, like
 * Qwen2.5-0.5B; tokenizer from llama.cpp's ggml-vocab-qwen2.gguf), generated
 * once into .bench/. Its compute cost equals a trained model's of that shape.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { readTextRecords } from "./jsonl";
import { LayerSpec, loadModel, Model, PreparedTexts } from "./model";
import { physicalCoreCount } from "./native";
import { createSyntheticModel, extractLlamaVocab } from "./synthetic";

const ROOT = path.join(__dirname, "..");

export interface BenchOptions {
  modelPath?: string;
  /** "<layers>x<width>", default "24x896" when no modelPath is given. */
  synthetic?: string;
  texts?: number;
  repeats?: number;
  threads?: number;
  log?: (msg: string) => void;
}

export interface BenchResult {
  machine: { cpu: string; logicalCores: number; physicalCores: number; memoryGiB: number; os: string; node: string };
  model: { path: string; arch: string; nLayer: number; nEmbd: number; nParams: number; synthetic: boolean };
  texts: number;
  tokens: number;
  threads: number;
  repeats: number;
  floorTokensPerSec: number;
  capture4TokensPerSec: number;
  capture4Layers: LayerSpec[];
  capture4EarlyExitTokensPerSec: number;
  earlyExitTokensPerSec: number;
  earlyExitLayer: number;
  finalTokensPerSec: number;
  finalOneByOneTokensPerSec: number;
  nodeLlamaCppEmbeddingTokensPerSec: number | null;
  nodeLlamaCppError?: string;
  ratios: {
    capture4TimeOverFloor: number;
    earlyExitTimeOverFloor: number;
    earlyExitTarget: number;
    finalOverNodeLlamaCpp: number | null;
    finalOneByOneOverNodeLlamaCpp: number | null;
  };
  targets: { capture4Overhead3pct: boolean; earlyExit: boolean; finalVsNodeLlamaCpp1_2x: boolean | null };
}

export async function ensureSyntheticModel(spec: string, log: (m: string) => void): Promise<string> {
  const m = /^(\d+)x(\d+)$/.exec(spec);
  if (!m) throw new RangeError(`synthetic model spec must look like 24x896, got ${JSON.stringify(spec)}`);
  const [layers, width] = [Number(m[1]), Number(m[2])];
  const dir = path.join(ROOT, ".bench");
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, `synthetic-qwen2-${layers}x${width}.gguf`);
  if (fs.existsSync(out)) return out;
  log(`generating a random-weight ${layers}x${width} qwen2 GGUF (once) into ${out} ...`);
  const vocab = await extractLlamaVocab("qwen2", dir);
  const t0 = Date.now();
  const info = await createSyntheticModel({ out, layers, width, vocabGguf: vocab, seed: 1 });
  log(`  ${(info.fileSize / 2 ** 20).toFixed(0)} MiB, ${(info.nParams / 1e6).toFixed(0)}M parameters, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

// TypeScript compiles import() to require() under CommonJS; node-llama-cpp is ESM-only.
const importEsm = new Function("s", "return import(s)") as (s: string) => Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** node-llama-cpp's getEmbeddingFor, one text at a time (its API), on the same tokens. */
async function nodeLlamaCppEmbedder(modelPath: string, contextSize: number, threads: number) {
  const { getLlama, LlamaLogLevel } = await importEsm("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const ctx = await model.createEmbeddingContext({ contextSize, threads, batchSize: 512 });
  return {
    async embedAll(p: PreparedTexts): Promise<void> {
      for (let i = 0; i + 1 < p.offsets.length; i++) {
        await ctx.getEmbeddingFor(Array.from(p.tokens.subarray(p.offsets[i], p.offsets[i + 1])));
      }
    },
    async dispose() {
      await ctx.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

export async function runBench(opts: BenchOptions = {}): Promise<BenchResult> {
  const log = opts.log ?? (() => undefined);
  const synthetic = !opts.modelPath;
  const modelPath = opts.modelPath ?? (await ensureSyntheticModel(opts.synthetic ?? "24x896", log));
  const threads = opts.threads ?? physicalCoreCount();
  const nTexts = opts.texts ?? 32;
  const repeats = opts.repeats ?? 3;
  const { texts: all } = await readTextRecords(path.join(ROOT, "samples", "prompts.jsonl"));
  const texts = Array.from({ length: nTexts }, (_, i) => all[(i * 7) % all.length]);

  const model: Model = await loadModel({ modelPath, threads, gpu: false });
  const { nLayer } = model.info;
  const prepared = model.prepare(texts);
  const tokens = prepared.tokens.length;
  log(`model ${model.info.name} (${nLayer} layers x ${model.info.nEmbd}), ${nTexts} texts, ${tokens} tokens, ${threads} threads, ${repeats} repeats`);

  const capture4Layers: LayerSpec[] = [0, 1, 2, 3].map((k) => Math.floor((nLayer * (k + 1)) / 4) - 1);
  const earlyExitLayer = Math.floor(nLayer / 2) - 1;
  let nlc: Awaited<ReturnType<typeof nodeLlamaCppEmbedder>> | null = null;
  let nlcError: string | undefined;
  try {
    nlc = await nodeLlamaCppEmbedder(modelPath, model.info.contextSize, threads);
  } catch (e) {
    nlcError = (e as Error).message;
    log(`node-llama-cpp unavailable: ${nlcError}`);
  }

  const runs: Record<string, () => Promise<unknown>> = {
    floor: () => model.evaluate(prepared),
    capture4: () => model.capture(prepared, { layers: capture4Layers, earlyExit: false }),
    capture4Early: () => model.capture(prepared, { layers: capture4Layers }),
    earlyExit: () => model.capture(prepared, { layers: [earlyExitLayer] }),
    final: () => model.capture(prepared, { layers: ["final"] }),
    finalOneByOne: async () => {
      for (let i = 0; i < nTexts; i++) {
        const one: PreparedTexts = { tokens: prepared.tokens.subarray(prepared.offsets[i], prepared.offsets[i + 1]), offsets: new Uint32Array([0, prepared.offsets[i + 1] - prepared.offsets[i]]) };
        await model.capture(one, { layers: ["final"] });
      }
    },
  };
  if (nlc) runs.nodeLlamaCpp = () => nlc!.embedAll(prepared);

  // warm-up, then interleaved repeats so drift hits every variant alike
  for (const fn of Object.values(runs)) await fn();
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(runs).map((k) => [k, []]));
  for (let r = 0; r < repeats; r++) {
    for (const [k, fn] of Object.entries(runs)) times[k].push(await timeIt(fn));
    log(`  repeat ${r + 1}/${repeats}: ${Object.entries(times).map(([k, v]) => `${k} ${v[r].toFixed(2)}s`).join(", ")}`);
  }
  if (nlc) await nlc.dispose();
  const t = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  const tps = (k: string) => tokens / t[k];
  const info = model.info;
  await model.dispose();

  const nlcTps = nlc ? tps("nodeLlamaCpp") : null;
  const earlyExitTarget = (earlyExitLayer + 1) / nLayer + 0.05;
  const ratios = {
    capture4TimeOverFloor: t.capture4 / t.floor,
    earlyExitTimeOverFloor: t.earlyExit / t.floor,
    earlyExitTarget,
    finalOverNodeLlamaCpp: nlcTps ? tps("final") / nlcTps : null,
    finalOneByOneOverNodeLlamaCpp: nlcTps ? tps("finalOneByOne") / nlcTps : null,
  };
  return {
    machine: {
      cpu: os.cpus()[0]?.model ?? "unknown",
      logicalCores: os.cpus().length,
      physicalCores: physicalCoreCount(),
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      node: process.version,
    },
    model: { path: info.path, arch: info.arch, nLayer: info.nLayer, nEmbd: info.nEmbd, nParams: info.nParams, synthetic },
    texts: nTexts,
    tokens,
    threads,
    repeats,
    floorTokensPerSec: tps("floor"),
    capture4TokensPerSec: tps("capture4"),
    capture4Layers,
    capture4EarlyExitTokensPerSec: tps("capture4Early"),
    earlyExitTokensPerSec: tps("earlyExit"),
    earlyExitLayer,
    finalTokensPerSec: tps("final"),
    finalOneByOneTokensPerSec: tps("finalOneByOne"),
    nodeLlamaCppEmbeddingTokensPerSec: nlcTps,
    ...(nlcError ? { nodeLlamaCppError: nlcError } : {}),
    ratios,
    targets: {
      capture4Overhead3pct: ratios.capture4TimeOverFloor <= 1.03,
      earlyExit: ratios.earlyExitTimeOverFloor <= earlyExitTarget,
      finalVsNodeLlamaCpp1_2x: ratios.finalOverNodeLlamaCpp === null ? null : ratios.finalOverNodeLlamaCpp >= 1.2,
    },
  };
}

export function formatBench(r: BenchResult): string {
  const row = (name: string, v: number, ratio: string) => `| ${name.padEnd(44)} | ${v.toFixed(1).padStart(9)} | ${ratio.padStart(22)} |`;
  const f = (x: number) => x.toFixed(3);
  const lines = [
    `machine: ${r.machine.cpu}, ${r.machine.physicalCores} physical cores, ${r.machine.memoryGiB} GiB, ${r.machine.os}, Node ${r.machine.node}`,
    `model: ${r.model.synthetic ? "synthetic random-weight " : ""}${r.model.arch} ${r.model.nLayer}x${r.model.nEmbd} (${(r.model.nParams / 1e6).toFixed(0)}M params); ${r.texts} texts, ${r.tokens} tokens; ${r.threads} threads; median of ${r.repeats}`,
    "",
    `| ${"run".padEnd(44)} | ${"tokens/s".padStart(9)} | ${"ratio".padStart(22)} |`,
    `|${"-".repeat(46)}|${"-".repeat(10)}:|${"-".repeat(23)}:|`,
    row("llama_decode, no callback (floor)", r.floorTokensPerSec, "time 1.000"),
    row(`capture 4 layers [${r.capture4Layers.join(",")}], full pass`, r.capture4TokensPerSec, `time ${f(r.ratios.capture4TimeOverFloor)} (≤1.03)`),
    row(`capture 4 layers, early exit`, r.capture4EarlyExitTokensPerSec, `time ${f(r.floorTokensPerSec / r.capture4EarlyExitTokensPerSec)}`),
    row(`capture layer ${r.earlyExitLayer}, early exit`, r.earlyExitTokensPerSec, `time ${f(r.ratios.earlyExitTimeOverFloor)} (≤${f(r.ratios.earlyExitTarget)})`),
    row(`capture "final", batched`, r.finalTokensPerSec, r.ratios.finalOverNodeLlamaCpp === null ? "n/a" : `${f(r.ratios.finalOverNodeLlamaCpp)}x nlc (≥1.2)`),
    row(`capture "final", one text per call`, r.finalOneByOneTokensPerSec, r.ratios.finalOneByOneOverNodeLlamaCpp === null ? "n/a" : `${f(r.ratios.finalOneByOneOverNodeLlamaCpp)}x nlc`),
    r.nodeLlamaCppEmbeddingTokensPerSec === null
      ? `| node-llama-cpp getEmbeddingFor: unavailable (${r.nodeLlamaCppError}) |`
      : row("node-llama-cpp getEmbeddingFor (nlc)", r.nodeLlamaCppEmbeddingTokensPerSec, "1.000x nlc"),
    "",
    `targets: capture overhead ≤3% ${r.targets.capture4Overhead3pct ? "met" : "MISSED"}; early exit ${r.targets.earlyExit ? "met" : "MISSED"}; final ≥1.2x node-llama-cpp ${r.targets.finalVsNodeLlamaCpp1_2x === null ? "not measured" : r.targets.finalVsNodeLlamaCpp1_2x ? "met" : "MISSED"}`,
  ];
  return lines.join("\n");
}

if (require.main === module) {
  const json = process.argv.includes("--json");
  runBench({ log: json ? () => undefined : (m) => process.stderr.write(`${m}\n`) })
    .then((r) => {
      process.stdout.write(`${formatBench(r)}\n\n${JSON.stringify(r)}\n`);
    })
    .catch((e) => {
      process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
      process.exitCode = 1;
    });
}
