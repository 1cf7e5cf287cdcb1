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

import type { Features, LayerSpec, PreparedTexts } from "../core/activations";
import type { GenerateOptions } from "../core/generate";
import { evaluate } from "../core/internal";
import { loadModel, type Model } from "../core/model";
import { physicalCoreCount } from "../core/native";
import { Guard } from "../guard";
import { readTextRecords } from "../io/jsonl";
import { Probe } from "../probe/probe";
import { initRanker, type RankList } from "../srr/network";
import { defaultRankerLayer, Ranker } from "../srr/ranker";
import { trainRanker } from "../srr/train";
import { med, measure, median, ratioOf, type Rounds, type Spread } from "./bench-util";
import { benchChat, benchCorpus, benchGuard, benchMonitor, type ChatBench, type CorpusBench, corpusChild, formatApp, type GuardBench, type MonitorBench } from "./bench-app";
import { createSyntheticModel, extractLlamaVocab } from "./synthetic";

const ROOT = path.join(__dirname, "..", "..");

export interface BenchOptions {
  modelPath?: string;
  /** "<layers>x<width>", default "24x896" when no modelPath is given. */
  synthetic?: string;
  texts?: number;
  repeats?: number;
  threads?: number;
  /** Run one section only. */
  only?: BenchSection;
  /** Tokens generated per candidate in the generation section. Default 64. */
  genTokens?: number;
  log?: (msg: string) => void;
}

export const BENCH_SECTIONS = ["capture", "generate", "probe", "srr", "corpus", "chat", "monitor", "guard"] as const;
export type BenchSection = (typeof BENCH_SECTIONS)[number];

export interface GenerationBench {
  prompt: string;
  promptTokens: number;
  maxTokens: number;
  repeats: number;
  captureLayers: LayerSpec[];
  /** generated tokens / wall time of the whole call (prefill included), greedy, end-of-sequence ignored */
  offTokensPerSec: number;
  onTokensPerSec: number;
  nodeLlamaCppTokensPerSec: number | null;
  n4TotalTokensPerSec: number;
  /** median llama_decode time per step; capture on decodes one step more (the final token, for its hidden state) */
  msPerStep: { off: number; on: number; n4: number };
  ratios: { onOverOff: number; onOverOffPerStep: number; oursOverNodeLlamaCpp: number | null; n4OverSingle: number };
  spread: Record<string, Spread>;
  targets: { captureWithin3pct: boolean; within5pctOfNodeLlamaCpp: boolean | null; n4AtLeast2_5x: boolean };
}

export interface CaptureBench {
  texts: number;
  tokens: number;
  floorTokensPerSec: number;
  capture4TokensPerSec: number;
  capture4Layers: LayerSpec[];
  capture4EarlyExitTokensPerSec: number;
  earlyExitTokensPerSec: number;
  earlyExitLayer: number;
  finalTokensPerSec: number;
  finalOneByOneTokensPerSec: number;
  nodeLlamaCppEmbeddingTokensPerSec: number | null;
  ratios: {
    capture4TimeOverFloor: number;
    earlyExitTimeOverFloor: number;
    earlyExitTarget: number;
    finalOverNodeLlamaCpp: number | null;
    finalOneByOneOverNodeLlamaCpp: number | null;
  };
  /** Every ratio as the median of per-round ratios with its min and max over the rounds. */
  spread: Record<string, Spread>;
  targets: { capture4Overhead3pct: boolean; earlyExit: boolean; finalVsNodeLlamaCpp1_2x: boolean | null };
}

export interface ProbeBench {
  features: { rows: number; cols: number };
  logregTrainSeconds: number;
  lpmTrainSeconds: number;
  mlpTrainSeconds: { rows: number; seconds: number };
  scoreOnePromptMs: { logreg: number; lpm: number; mlp: number };
  scoreSpreadMs: Record<string, Spread>;
  guard: { maxTokens: number; plainMs: number; guardedMs: number; overhead: number; overheadMin: number; overheadMax: number };
  targets: { logregUnder10s: boolean; lpmUnder3s: boolean; scoreUnder0_1ms: boolean; guardOverheadUnder2pct: boolean };
}

export interface SrrBench {
  lists: number;
  candidates: number;
  d: number;
  epochs: number;
  fullTrainSeconds: number;
  liteTrainSeconds: number;
  bestOfN: {
    n: number;
    maxTokens: number;
    generateMs: number;
    rankMs: number;
    rankOverhead: number;
    plainGenerateMs: number;
    totalOverhead: number;
    totalOverheadMin: number;
    totalOverheadMax: number;
  };
  targets: { rankOverheadUnder1pct: boolean };
}

export interface BenchResult extends Partial<CaptureBench> {
  machine: { cpu: string; logicalCores: number; physicalCores: number; memoryGiB: number; os: string; node: string };
  model: { path: string; arch: string; nLayer: number; nEmbd: number; nParams: number; synthetic: boolean };
  threads: number;
  repeats: number;
  nodeLlamaCppError?: string;
  generation?: GenerationBench;
  probe?: ProbeBench;
  srr?: SrrBench;
  corpus?: CorpusBench;
  chat?: ChatBench;
  monitor?: MonitorBench;
  guard?: GuardBench;
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

// TypeScript compiles import() to require() under CommonJS; node-llama-cpp is ESM-only.
const importEsm = new Function("s", "return import(s)") as (s: string) => Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** node-llama-cpp's getEmbeddingFor, one text at a time (its API), on the same tokens. */
async function nodeLlamaCppEmbedder(modelPath: string, contextSize: number, threads: number) {
  const { getLlama, LlamaLogLevel, LlamaChatSession } = await importEsm("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const ctx = await model.createEmbeddingContext({ contextSize, threads, batchSize: 512 });
  const genCtx = await model.createContext({ contextSize, threads, batchSize: 512 });
  return {
    /** greedy generation of maxTokens tokens after the prompt tokens, in a fresh sequence */
    async generate(prompt: Int32Array, maxTokens: number): Promise<number> {
      const seq = genCtx.getSequence();
      let count = 0;
      try {
        for await (const _t of seq.evaluate(Array.from(prompt), { temperature: 0 })) {
          if (++count >= maxTokens) break;
        }
      } finally {
        seq.dispose();
      }
      return count;
    },
    /** One LlamaChatSession through the turns, greedy: each turn's time to its first token (ms). */
    async chatTtft(turns: string[], maxTokens: number): Promise<number[]> {
      const seq = genCtx.getSequence();
      const session = new LlamaChatSession({ contextSequence: seq, autoDisposeSequence: false });
      const out: number[] = [];
      try {
        for (const t of turns) {
          const t0 = performance.now();
          let first = 0;
          await session.prompt(t, {
            maxTokens,
            temperature: 0,
            onToken: () => {
              if (!first) first = performance.now();
            },
          });
          out.push((first || performance.now()) - t0);
        }
      } finally {
        session.dispose();
        seq.dispose();
      }
      return out;
    },
    async embedAll(p: PreparedTexts): Promise<void> {
      for (let i = 0; i + 1 < p.offsets.length; i++) {
        await ctx.getEmbeddingFor(Array.from(p.tokens.subarray(p.offsets[i], p.offsets[i + 1])));
      }
    },
    async dispose() {
      await genCtx.dispose();
      await ctx.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

type Nlc = Awaited<ReturnType<typeof nodeLlamaCppEmbedder>>;

async function benchCapture(model: Model, texts: string[], nlc: Nlc | null, repeats: number, log: (m: string) => void): Promise<CaptureBench> {
  const { nLayer } = model.info;
  const prepared = model.prepare(texts);
  const tokens = prepared.tokens.length;
  log(`capture: ${texts.length} texts, ${tokens} tokens`);
  const capture4Layers: LayerSpec[] = [0, 1, 2, 3].map((k) => Math.floor((nLayer * (k + 1)) / 4) - 1);
  const earlyExitLayer = Math.floor(nLayer / 2) - 1;
  const runs: Record<string, () => Promise<unknown>> = {
    floor: () => evaluate(model, prepared),
    capture4: () => model.capture(prepared, { layers: capture4Layers, earlyExit: false }),
    capture4Early: () => model.capture(prepared, { layers: capture4Layers }),
    earlyExit: () => model.capture(prepared, { layers: [earlyExitLayer] }),
    final: () => model.capture(prepared, { layers: ["final"] }),
    finalOneByOne: async () => {
      for (let i = 0; i + 1 < prepared.offsets.length; i++) {
        const len = prepared.offsets[i + 1] - prepared.offsets[i];
        await model.capture({ tokens: prepared.tokens.subarray(prepared.offsets[i], prepared.offsets[i + 1]), offsets: Uint32Array.of(0, len) }, { layers: ["final"] });
      }
    },
  };
  if (nlc) runs.nodeLlamaCpp = () => nlc.embedAll(prepared);
  const t = await measure(runs, repeats, log);
  const tps = (k: string) => tokens / med(t, k);
  const nlcTps = nlc ? tps("nodeLlamaCpp") : null;
  const earlyExitTarget = (earlyExitLayer + 1) / nLayer + 0.05;
  const spread: Record<string, Spread> = {
    capture4TimeOverFloor: ratioOf(t.capture4, t.floor),
    capture4EarlyTimeOverFloor: ratioOf(t.capture4Early, t.floor),
    earlyExitTimeOverFloor: ratioOf(t.earlyExit, t.floor),
    ...(nlc ? { finalOverNodeLlamaCpp: ratioOf(t.nodeLlamaCpp, t.final), finalOneByOneOverNodeLlamaCpp: ratioOf(t.nodeLlamaCpp, t.finalOneByOne) } : {}),
  };
  const ratios = {
    capture4TimeOverFloor: spread.capture4TimeOverFloor.median,
    earlyExitTimeOverFloor: spread.earlyExitTimeOverFloor.median,
    earlyExitTarget,
    finalOverNodeLlamaCpp: nlc ? spread.finalOverNodeLlamaCpp.median : null,
    finalOneByOneOverNodeLlamaCpp: nlc ? spread.finalOneByOneOverNodeLlamaCpp.median : null,
  };
  return {
    texts: texts.length,
    tokens,
    floorTokensPerSec: tps("floor"),
    capture4TokensPerSec: tps("capture4"),
    capture4Layers,
    capture4EarlyExitTokensPerSec: tps("capture4Early"),
    earlyExitTokensPerSec: tps("earlyExit"),
    earlyExitLayer,
    finalTokensPerSec: tps("final"),
    finalOneByOneTokensPerSec: tps("finalOneByOne"),
    nodeLlamaCppEmbeddingTokensPerSec: nlcTps,
    ratios,
    spread,
    targets: {
      capture4Overhead3pct: ratios.capture4TimeOverFloor <= 1.03,
      earlyExit: ratios.earlyExitTimeOverFloor <= earlyExitTarget,
      finalVsNodeLlamaCpp1_2x: ratios.finalOverNodeLlamaCpp === null ? null : ratios.finalOverNodeLlamaCpp >= 1.2,
    },
  };
}

async function benchGeneration(model: Model, prompt: string, maxTokens: number, nlc: Nlc | null, repeats: number, log: (m: string) => void): Promise<GenerationBench> {
  const { nLayer } = model.info;
  const promptTokens = model.tokenize(prompt);
  const captureLayers: LayerSpec[] = [Math.floor(nLayer / 4), "final"];
  const greedy = { maxTokens, temperature: 0, ignoreEos: true };
  log(`generation: ${promptTokens.length}-token prompt, ${maxTokens} tokens per candidate, greedy`);
  // per decode step (llama_decode time / steps), besides the whole call's wall time
  const stepMs: Record<string, number[]> = { off: [], on: [], n4: [] };
  const gen = (k: string, o: GenerateOptions) => async () => {
    const r = await model.generate(prompt, o);
    stepMs[k].push(r.timings.decodeMs / r.timings.steps);
  };
  const runs: Record<string, () => Promise<unknown>> = {
    off: gen("off", greedy),
    on: gen("on", { ...greedy, capture: { layers: captureLayers, prompt: true, response: "last" } }),
    n4: gen("n4", { ...greedy, n: 4 }),
  };
  if (nlc) runs.nodeLlamaCpp = () => nlc.generate(promptTokens, maxTokens);
  const t = await measure(runs, repeats, log);
  const off = maxTokens / med(t, "off");
  const on = maxTokens / med(t, "on");
  const n4 = (4 * maxTokens) / med(t, "n4");
  const nlcTps = nlc ? maxTokens / med(t, "nodeLlamaCpp") : null;
  const steps = (k: string) => stepMs[k].slice(1); // the first entry is the warm-up
  const step = (k: string) => median(steps(k));
  const spread: Record<string, Spread> = {
    onOverOff: ratioOf(t.off, t.on),
    onOverOffPerStep: ratioOf(steps("off"), steps("on")),
    n4OverSingle: ratioOf(t.off, t.n4, 4),
    ...(nlc ? { oursOverNodeLlamaCpp: ratioOf(t.nodeLlamaCpp, t.off) } : {}),
  };
  const ratios = {
    onOverOff: spread.onOverOff.median,
    onOverOffPerStep: spread.onOverOffPerStep.median,
    oursOverNodeLlamaCpp: nlc ? spread.oursOverNodeLlamaCpp.median : null,
    n4OverSingle: spread.n4OverSingle.median,
  };
  return {
    prompt,
    promptTokens: promptTokens.length,
    maxTokens,
    repeats,
    captureLayers,
    offTokensPerSec: off,
    onTokensPerSec: on,
    nodeLlamaCppTokensPerSec: nlcTps,
    n4TotalTokensPerSec: n4,
    msPerStep: { off: step("off"), on: step("on"), n4: step("n4") },
    ratios,
    spread,
    targets: {
      captureWithin3pct: ratios.onOverOff >= 0.97,
      within5pctOfNodeLlamaCpp: ratios.oursOverNodeLlamaCpp === null ? null : ratios.oursOverNodeLlamaCpp >= 0.95,
      n4AtLeast2_5x: ratios.n4OverSingle >= 2.5,
    },
  };
}

/** Planted-direction features: rows x cols, a third unsafe. */
function plantedFeatures(rows: number, cols: number, seed: number): { X: Features; y: Uint8Array } {
  let st = seed >>> 0;
  const rnd = () => ((st = (st * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const data = new Float32Array(rows * cols);
  const y = new Uint8Array(rows);
  for (let i = 0; i < rows; i++) {
    y[i] = i % 3 === 0 ? 1 : 0;
    for (let j = 0; j < cols; j++) data[i * cols + j] = rnd() + (j % 97 === 5 ? (y[i] ? 0.3 : -0.3) : 0);
  }
  return { X: { data, rows, cols }, y };
}

async function benchProbe(model: Model, prompt: string, repeats: number, log: (m: string) => void): Promise<ProbeBench> {
  const cols = model.info.nEmbd;
  const rows = 20000;
  log(`probe: training on ${rows} x ${cols} planted-direction features`);
  const { X, y } = plantedFeatures(rows, cols, 1);
  const time = (fn: () => unknown) => {
    const t0 = performance.now();
    fn();
    return (performance.now() - t0) / 1000;
  };
  const layer = Math.floor(model.info.nLayer / 2);
  let logreg!: Probe;
  let lpm!: Probe;
  let mlp!: Probe;
  const logregTrainSeconds = time(() => (logreg = Probe.train({ method: "logreg", layers: [layer], train: { features: [X], labels: y }, model })));
  const lpmTrainSeconds = time(() => (lpm = Probe.train({ method: "lpm", layers: [layer], train: { features: [X], labels: y }, model })));
  const mlpRows = 5000;
  const small = { data: X.data.subarray(0, mlpRows * cols), rows: mlpRows, cols };
  const mlpSeconds = time(() => (mlp = Probe.train({ method: "mlp", layers: [layer], train: { features: [small], labels: y.subarray(0, mlpRows) }, model })));
  log(`  logreg ${logregTrainSeconds.toFixed(2)} s, lpm ${lpmTrainSeconds.toFixed(2)} s, mlp (${mlpRows} rows) ${mlpSeconds.toFixed(2)} s`);
  // ms per prompt: 5000 prompts per round and method, the methods alternating, median over rounds
  const perPrompt = (p: Probe) => {
    const n = 5000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) p.scoreVectors([X.data.subarray((i % rows) * cols, ((i % rows) + 1) * cols)]);
    return (performance.now() - t0) / n;
  };
  const probes = { logreg, lpm, mlp };
  for (const p of Object.values(probes)) for (let i = 0; i < 1000; i++) p.scoreVectors([X.data.subarray(0, cols)]);
  const scoreRounds: Record<string, number[]> = { logreg: [], lpm: [], mlp: [] };
  for (let r = 0; r < Math.max(repeats, 7); r++) for (const [k, p] of r % 2 ? Object.entries(probes).reverse() : Object.entries(probes)) scoreRounds[k].push(perPrompt(p));
  const scoreOnePromptMs = { logreg: median(scoreRounds.logreg), lpm: median(scoreRounds.lpm), mlp: median(scoreRounds.mlp) };
  const scoreSpreadMs = Object.fromEntries(Object.entries(scoreRounds).map(([k, v]) => [k, { median: median(v), min: Math.min(...v), max: Math.max(...v) }]));
  // guard overhead: the same generation with and without the guard (a probe that passes everything)
  const guard = new Guard(model, lpm, { threshold: 1 });
  const maxTokens = 32;
  const opts = { maxTokens, temperature: 0, ignoreEos: true, chat: lpm.chatOption() };
  const t = await measure(
    { plain: () => model.generate(prompt, opts), guarded: () => guard.generate(prompt, { maxTokens, temperature: 0, ignoreEos: true }) },
    repeats,
    log,
  );
  const guardRatio = ratioOf(t.guarded, t.plain);
  const overhead = guardRatio.median - 1;
  return {
    features: { rows, cols },
    logregTrainSeconds,
    lpmTrainSeconds,
    mlpTrainSeconds: { rows: mlpRows, seconds: mlpSeconds },
    scoreOnePromptMs,
    scoreSpreadMs,
    guard: { maxTokens, plainMs: med(t, "plain") * 1000, guardedMs: med(t, "guarded") * 1000, overhead, overheadMin: guardRatio.min - 1, overheadMax: guardRatio.max - 1 },
    targets: {
      logregUnder10s: logregTrainSeconds < 10,
      lpmUnder3s: lpmTrainSeconds < 3,
      // every method's scoring time, the MLP's too
      scoreUnder0_1ms: Math.max(scoreOnePromptMs.logreg, scoreOnePromptMs.lpm, scoreOnePromptMs.mlp) < 0.1,
      guardOverheadUnder2pct: overhead < 0.02,
    },
  };
}

async function benchSrr(model: Model, prompt: string, repeats: number, log: (m: string) => void): Promise<SrrBench> {
  const d = model.info.nEmbd;
  const lists = 300;
  const m = 16;
  const epochs = 30;
  // planted lists: safe candidates lean along one direction
  let st = 7;
  const rnd = () => ((st = (Math.imul(st, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const mk = (): RankList => {
    const u = Float32Array.from({ length: d }, rnd);
    const v = new Float32Array(m * d);
    const safe = new Uint8Array(m);
    for (let i = 0; i < m; i++) {
      safe[i] = i % 2;
      for (let j = 0; j < d; j++) v[i * d + j] = rnd() + (j === 3 ? (safe[i] ? 3 : -3) : 0);
    }
    return { u, v, m, safe };
  };
  const train = Array.from({ length: lists }, mk);
  log(`srr: training on ${lists} lists x ${m} candidates x ${d}, ${epochs} epochs (full, then lite)`);
  const timeTrain = (lite: boolean) => {
    const { config, params } = initRanker({ d, lite }, 1);
    const t0 = performance.now();
    trainRanker(config, params, train, { epochs, seed: 1 });
    return (performance.now() - t0) / 1000;
  };
  const fullTrainSeconds = timeTrain(false);
  const liteTrainSeconds = timeTrain(true);
  log(`  full ${fullTrainSeconds.toFixed(1)} s, lite ${liteTrainSeconds.toFixed(1)} s`);
  // best-of-N: ranking cost against the generation it ranks
  const { ranker } = Ranker.fromLists(model, train.slice(0, 20), undefined, { layer: defaultRankerLayer(model.info.nLayer), epochs: 1 });
  const n = 4;
  const maxTokens = 32;
  const gen = { n, maxTokens, temperature: 0.8, seed: 1, ignoreEos: true };
  const rankMs: number[] = [];
  const genMs: number[] = [];
  const t = await measure(
    {
      plain: () => model.generate(prompt, { ...gen, chat: ranker.chatOption() }),
      safest: async () => {
        const r = await ranker.generateSafest(model, prompt, gen);
        rankMs.push(r.rankMs);
        genMs.push(r.timings.totalMs);
      },
    },
    repeats,
    log,
  );
  const rank = median(rankMs.slice(1));
  const generateMs = median(genMs.slice(1));
  return {
    lists,
    candidates: m,
    d,
    epochs,
    fullTrainSeconds,
    liteTrainSeconds,
    bestOfN: {
      n,
      maxTokens,
      generateMs,
      rankMs: rank,
      rankOverhead: rank / generateMs,
      plainGenerateMs: med(t, "plain") * 1000,
      totalOverhead: ratioOf(t.safest, t.plain).median - 1,
      totalOverheadMin: ratioOf(t.safest, t.plain).min - 1,
      totalOverheadMax: ratioOf(t.safest, t.plain).max - 1,
    },
    targets: { rankOverheadUnder1pct: rank / generateMs < 0.01 },
  };
}

export async function runBench(opts: BenchOptions = {}): Promise<BenchResult> {
  const log = opts.log ?? (() => undefined);
  const synthetic = !opts.modelPath;
  const modelPath = opts.modelPath ?? (await ensureSyntheticModel(opts.synthetic ?? "24x896", log));
  const threads = opts.threads ?? physicalCoreCount();
  const repeats = opts.repeats ?? 7;
  const { texts: all } = await readTextRecords(path.join(ROOT, "samples", "prompts.jsonl"));
  const texts = Array.from({ length: opts.texts ?? 24 }, (_, i) => all[(i * 7) % all.length]);
  const genRepeats = opts.repeats ?? 7;

  const model: Model = await loadModel({ modelPath, threads, gpu: false });
  const info = model.info;
  log(`model ${info.name} (${info.nLayer} layers x ${info.nEmbd}), ${threads} threads, ${repeats} repeats`);
  let nlc: Nlc | null = null;
  let nlcError: string | undefined;
  try {
    nlc = await nodeLlamaCppEmbedder(modelPath, info.contextSize, threads);
  } catch (e) {
    nlcError = (e as Error).message;
    log(`node-llama-cpp unavailable: ${nlcError}`);
  }
  try {
    const want = (k: BenchSection) => !opts.only || opts.only === k;
    const capture = want("capture") ? await benchCapture(model, texts, nlc, repeats, log) : {};
    const generation = want("generate") ? await benchGeneration(model, texts[0], opts.genTokens ?? 64, nlc, genRepeats, log) : undefined;
    const probe = want("probe") ? await benchProbe(model, texts[0], genRepeats, log) : undefined;
    const srr = want("srr") ? await benchSrr(model, texts[0], genRepeats, log) : undefined;
    const corpus = want("corpus") ? await benchCorpus(modelPath, path.join(ROOT, "models", "stories260K.gguf"), log) : undefined;
    const chat = want("chat") ? await benchChat(model, nlc, Math.min(genRepeats, 5), log) : undefined;
    const monitor = want("monitor") ? await benchMonitor(model, texts[0], genRepeats, log) : undefined;
    const guard = want("guard") ? await benchGuard(model, log) : undefined;
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
      threads,
      repeats,
      ...capture,
      ...(nlcError ? { nodeLlamaCppError: nlcError } : {}),
      ...(generation ? { generation } : {}),
      ...(probe ? { probe } : {}),
      ...(srr ? { srr } : {}),
      ...(corpus ? { corpus } : {}),
      ...(chat ? { chat } : {}),
      ...(monitor ? { monitor } : {}),
      ...(guard ? { guard } : {}),
    };
  } finally {
    if (nlc) await nlc.dispose();
    await model.dispose();
  }
}

export function formatBench(r: BenchResult): string {
  const row = (name: string, v: number, ratio: string) => `| ${name.padEnd(50)} | ${v.toFixed(1).padStart(9)} | ${ratio.padStart(24)} |`;
  const head = (first: string) => [`| ${first.padEnd(50)} | ${"tokens/s".padStart(9)} | ${"ratio".padStart(24)} |`, `|${"-".repeat(52)}|${"-".repeat(10)}:|${"-".repeat(25)}:|`];
  const f = (x: number) => x.toFixed(3);
  const met = (b: boolean | null | undefined) => (b === null || b === undefined ? "not measured" : b ? "met" : "MISSED");
  const lines = [
    `machine: ${r.machine.cpu}, ${r.machine.physicalCores} physical cores, ${r.machine.memoryGiB} GiB, ${r.machine.os}, Node ${r.machine.node}`,
    `model: ${r.model.synthetic ? "synthetic random-weight " : ""}${r.model.arch} ${r.model.nLayer}x${r.model.nEmbd} (${(r.model.nParams / 1e6).toFixed(0)}M params); ${r.threads} threads`,
  ];
  if (r.floorTokensPerSec !== undefined && r.ratios && r.targets) {
    lines.push(
      "",
      `capture: ${r.texts} texts, ${r.tokens} tokens, median of ${r.repeats}`,
      ...head("capture"),
      row("llama_decode, no callback (floor)", r.floorTokensPerSec, "time 1.000"),
      row(`capture 4 layers [${r.capture4Layers!.join(",")}], full pass`, r.capture4TokensPerSec!, `time ${f(r.ratios.capture4TimeOverFloor)} (≤1.03)`),
      row("capture 4 layers, early exit", r.capture4EarlyExitTokensPerSec!, `time ${f(r.floorTokensPerSec / r.capture4EarlyExitTokensPerSec!)}`),
      row(`capture layer ${r.earlyExitLayer}, early exit`, r.earlyExitTokensPerSec!, `time ${f(r.ratios.earlyExitTimeOverFloor)} (≤${f(r.ratios.earlyExitTarget)})`),
      row('capture "final", batched', r.finalTokensPerSec!, r.ratios.finalOverNodeLlamaCpp === null ? "n/a" : `${f(r.ratios.finalOverNodeLlamaCpp)}x nlc (≥1.2)`),
      row('capture "final", one text per call', r.finalOneByOneTokensPerSec!, r.ratios.finalOneByOneOverNodeLlamaCpp === null ? "n/a" : `${f(r.ratios.finalOneByOneOverNodeLlamaCpp)}x nlc`),
      r.nodeLlamaCppEmbeddingTokensPerSec === null || r.nodeLlamaCppEmbeddingTokensPerSec === undefined
        ? `| node-llama-cpp getEmbeddingFor: unavailable (${r.nodeLlamaCppError}) |`
        : row("node-llama-cpp getEmbeddingFor (nlc)", r.nodeLlamaCppEmbeddingTokensPerSec, "1.000x nlc"),
      `targets: capture overhead ≤3% ${met(r.targets.capture4Overhead3pct)}; early exit ${met(r.targets.earlyExit)}; final ≥1.2x node-llama-cpp ${met(r.targets.finalVsNodeLlamaCpp1_2x)}`,
    );
  }
  const g = r.generation;
  if (g) {
    lines.push(
      "",
      `generation: ${g.promptTokens}-token prompt, ${g.maxTokens} tokens per candidate, greedy, median of ${g.repeats} (tokens/s of the whole call, prefill included)`,
      ...head("generation"),
      row("generate, capture off", g.offTokensPerSec, "1.000"),
      row(`generate, capture [${g.captureLayers.join(",")}] prompt + response`, g.onTokensPerSec, `${f(g.ratios.onOverOff)} of off (≥0.97)`),
      row("  per decode step, capture on (steps/s)", 1000 / g.msPerStep.on, `${f(g.ratios.onOverOffPerStep)} (${g.msPerStep.off.toFixed(1)} vs ${g.msPerStep.on.toFixed(1)})`),
      g.nodeLlamaCppTokensPerSec === null ? "| node-llama-cpp generation: unavailable |" : row("node-llama-cpp evaluate, greedy (nlc)", g.nodeLlamaCppTokensPerSec, `ours ${f(g.ratios.oursOverNodeLlamaCpp!)}x (≥0.95)`),
      row("generate n=4 in parallel, total", g.n4TotalTokensPerSec, `${f(g.ratios.n4OverSingle)}x single (≥2.5)`),
      `targets: capture within 3% ${met(g.targets.captureWithin3pct)}; within 5% of node-llama-cpp ${met(g.targets.within5pctOfNodeLlamaCpp)}; n=4 ≥2.5x ${met(g.targets.n4AtLeast2_5x)}`,
    );
  }
  const p = r.probe;
  if (p) {
    lines.push(
      "",
      `probes: ${p.features.rows} x ${p.features.cols} features`,
      `| probe job | seconds or ms | target |`,
      `|---|---:|---|`,
      `| train logreg (L-BFGS) | ${p.logregTrainSeconds.toFixed(2)} s | < 10 s ${met(p.targets.logregUnder10s)} |`,
      `| train lpm (native scatter + Cholesky) | ${p.lpmTrainSeconds.toFixed(2)} s | < 3 s ${met(p.targets.lpmUnder3s)} |`,
      `| train mlp (${p.mlpTrainSeconds.rows} rows, early stopping) | ${p.mlpTrainSeconds.seconds.toFixed(2)} s | |`,
      `| score one prompt's features: logreg / lpm / mlp | ${p.scoreOnePromptMs.logreg.toFixed(4)} / ${p.scoreOnePromptMs.lpm.toFixed(4)} / ${p.scoreOnePromptMs.mlp.toFixed(4)} ms | < 0.1 ms ${met(p.targets.scoreUnder0_1ms)} |`,
      `| guarded generation vs plain (${p.guard.maxTokens} tokens) | ${p.guard.guardedMs.toFixed(0)} vs ${p.guard.plainMs.toFixed(0)} ms: ${(p.guard.overhead * 100).toFixed(2)}% | < 2% ${met(p.targets.guardOverheadUnder2pct)} |`,
    );
  }
  const q = r.srr;
  if (q) {
    lines.push(
      "",
      `safety representation ranking: ${q.lists} lists x ${q.candidates} candidates x ${q.d}, ${q.epochs} epochs`,
      `| srr job | measured | target |`,
      `|---|---:|---|`,
      `| train the full ranker (encoder layer) | ${q.fullTrainSeconds.toFixed(1)} s (${((q.fullTrainSeconds / q.epochs) * 1000).toFixed(0)} ms/epoch) | |`,
      `| train the lite ranker (projection + cosine) | ${q.liteTrainSeconds.toFixed(1)} s | |`,
      `| best-of-${q.bestOfN.n}: ranking vs its generation (${q.bestOfN.maxTokens} tokens) | ${q.bestOfN.rankMs.toFixed(2)} vs ${q.bestOfN.generateMs.toFixed(0)} ms: ${(q.bestOfN.rankOverhead * 100).toFixed(3)}% | < 1% ${met(q.targets.rankOverheadUnder1pct)} |`,
      `| best-of-${q.bestOfN.n} in all vs plain n=${q.bestOfN.n} generation (capture + final decode step + ranking) | ${(q.bestOfN.totalOverhead * 100).toFixed(1)}% | |`,
    );
  }
  lines.push(...formatApp(r));
  return lines.join("\n");
}

if (require.main === module && process.argv[2] === "--corpus-child") {
  corpusChild(process.argv.slice(3)).catch((e) => {
    process.stderr.write(`corpus child failed: ${(e as Error).stack}\n`);
    process.exitCode = 1;
  });
} else if (require.main === module) {
  const json = process.argv.includes("--json");
  const only = process.argv.includes("--only") ? (process.argv[process.argv.indexOf("--only") + 1] as BenchSection) : undefined;
  if (only !== undefined && !BENCH_SECTIONS.includes(only)) throw new RangeError(`--only takes ${BENCH_SECTIONS.join(", ")}`);
  runBench({ only, log: json ? () => undefined : (m) => process.stderr.write(`${m}\n`) })
    .then((r) => {
      process.stdout.write(`${formatBench(r)}\n\n${JSON.stringify(r)}\n`);
    })
    .catch((e) => {
      process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
      process.exitCode = 1;
    });
}
