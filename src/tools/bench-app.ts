/**
 * The application-level benchmarks: corpus capture to disk (rows/s and peak memory as the
 * corpus grows), chat time to first token over turns (KV reuse against re-prefilling the
 * conversation and against node-llama-cpp's LlamaChatSession), the streaming monitor's cost
 * per decode step and per chat turn, and the time of train-guard on the bench model.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";

import { Chat, createChat } from "../chat/chat";
import type { Model } from "../core/model";
import { readTextRecords } from "../io/jsonl";
import { Monitor } from "../monitor/monitor";
import { Probe } from "../probe/probe";
import { STARTER_DATA, trainGuard } from "../probe/train-guard";
import { measure, median, peakRssMiB, ratioOf, type Spread } from "./bench-util";

const execFileAsync = promisify(execFile);
const ROOT = path.join(__dirname, "..", "..");

/** What node-llama-cpp's side of the chat comparison needs (see bench.ts). */
export interface NlcChat {
  /** Time to first token of each turn of one LlamaChatSession, in ms. */
  chatTtft(turns: string[], maxTokens: number): Promise<number[]>;
}

export interface CorpusRun {
  model: string;
  rows: number;
  layers: number;
  width: number;
  tokens: number;
  seconds: number;
  rowsPerSec: number;
  tokensPerSec: number;
  fileMiB: number;
  /** The child process's peak resident memory (getrusage maxrss). */
  peakRssMiB: number;
}

/** The capture writer alone (synthetic rows, no model): how the file side scales. */
export interface WriterRun {
  rows: number;
  tensors: number;
  width: number;
  fileMiB: number;
  writeMiBps: number;
  peakRssMiB: number;
}

export interface CorpusBench {
  runs: CorpusRun[];
  writer: WriterRun[];
  /** Writer peak RSS at the largest corpus over the smallest. */
  writerRssGrowth: number;
  /** Peak RSS of the largest run over the smallest, on the same model. */
  rssGrowth: number;
  targets: { memoryFlat: boolean; writerMemoryFlat: boolean };
}

export interface ChatBench {
  turns: number;
  maxTokens: number;
  rounds: number;
  /** Median time to first token per turn (ms). */
  ttftMs: { reuse: number[]; rePrefill: number[]; nodeLlamaCpp: number[] | null };
  /** Tokens prefilled and reused per turn with KV reuse (first round). */
  prefilled: number[];
  reused: number[];
  /** Per-round ratio re-prefill / reuse and node-llama-cpp / reuse, at the last turn. */
  lastTurn: { rePrefillOverReuse: Spread; nodeLlamaCppOverReuse: Spread | null };
  targets: { reuseFasterAtLastTurn: boolean };
}

export interface MonitorBench {
  maxTokens: number;
  rounds: number;
  msPerStep: { plain: number; monitored: number };
  /** Monitored / plain per decode step, per round. */
  perStep: Spread;
  /** Monitored / plain for the whole generate call. */
  perCall: Spread;
  /** A chat turn with the monitor / without, whole send(). */
  chatTurn: Spread;
  targets: { perStepUnder2pct: boolean };
}

export interface GuardBench {
  prompts: number;
  seconds: number;
  chosen: string;
  valFpr: number;
}

/** Runs in a child process: one corpus capture, then prints its report and peak RSS. */
export async function corpusChild(args: string[]): Promise<void> {
  const [modelPath, rowsArg, layersArg, out] = args;
  const { loadModel } = await import("../core/model");
  const rows = Number(rowsArg);
  const { texts } = await readTextRecords(STARTER_DATA);
  const records = Array.from({ length: rows }, (_, i) => `${texts[i % texts.length]} (${Math.floor(i / texts.length)})`);
  const model = await loadModel({ modelPath, gpu: false, contextSize: 512 });
  try {
    const n = model.info.nLayer;
    const layers = Array.from({ length: Number(layersArg) }, (_, k) => Math.floor((n * (k + 1)) / (Number(layersArg) + 1)));
    const t0 = performance.now();
    const r = await model.captureToFile(records, { out, layers, overwrite: true });
    const seconds = (performance.now() - t0) / 1000;
    const size = fs.statSync(out).size;
    const report: CorpusRun = {
      model: path.basename(modelPath),
      rows: r.rows,
      layers: layers.length,
      width: model.info.nEmbd,
      tokens: r.tokens,
      seconds,
      rowsPerSec: r.rows / seconds,
      tokensPerSec: r.tokens / seconds,
      fileMiB: size / 2 ** 20,
      peakRssMiB: peakRssMiB(),
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await model.dispose();
    fs.rmSync(out, { force: true });
  }
}

export async function benchCorpus(benchModel: string, embedded: string, log: (m: string) => void): Promise<CorpusBench> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "safety-lens-corpus-"));
  const runs: CorpusRun[] = [];
  const plan: [string, number, number][] = [
    [embedded, 1000, 2],
    [embedded, 4000, 2],
    [embedded, 16000, 2],
    [benchModel, 300, 4],
  ];
  try {
    for (const [m, rows, layers] of plan) {
      const { stdout } = await execFileAsync(process.execPath, [path.join(__dirname, "bench.js"), "--corpus-child", m, String(rows), String(layers), path.join(dir, "c.safetensors")], {
        maxBuffer: 1 << 20,
      });
      const r = JSON.parse(stdout.trim().split("\n").pop()!) as CorpusRun;
      log(`  corpus ${r.model}: ${r.rows} rows x ${r.layers} layers x ${r.width}: ${r.rowsPerSec.toFixed(0)} rows/s, ${r.tokensPerSec.toFixed(0)} tokens/s, ${r.fileMiB.toFixed(1)} MiB, peak RSS ${r.peakRssMiB.toFixed(0)} MiB`);
      runs.push(r);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // the writer at the issue's scale: 1k, 10k, 50k rows x 25 tensors x 896 (50k rows is a 4.3 GB file)
  const writer: WriterRun[] = [];
  const wdir = fs.mkdtempSync(path.join(os.tmpdir(), "safety-lens-writer-"));
  try {
    for (const rows of [1000, 10000, 50000]) {
      const { stdout } = await execFileAsync(process.execPath, [path.join(__dirname, "capture-io-bench.js"), "write", "--rows", String(rows), "--tensors", "25", "--width", "896", "--dir", wdir, "--reuse"], {
        maxBuffer: 1 << 20,
      });
      const w = JSON.parse(stdout.trim().split("\n").pop()!) as WriterRun;
      log(`  writer: ${w.rows} rows x ${w.tensors} x ${w.width}: ${w.fileMiB.toFixed(0)} MiB at ${w.writeMiBps.toFixed(0)} MiB/s, peak RSS ${w.peakRssMiB.toFixed(0)} MiB`);
      writer.push(w);
      fs.rmSync(wdir, { recursive: true, force: true });
      fs.mkdirSync(wdir);
    }
  } finally {
    fs.rmSync(wdir, { recursive: true, force: true });
  }
  const same = runs.filter((r) => r.model === runs[0].model);
  const rssGrowth = same[same.length - 1].peakRssMiB / same[0].peakRssMiB;
  const writerRssGrowth = writer[writer.length - 1].peakRssMiB / writer[0].peakRssMiB;
  return { runs, rssGrowth, writer, writerRssGrowth, targets: { memoryFlat: rssGrowth < 1.25, writerMemoryFlat: writerRssGrowth < 1.25 } };
}

/** Eight short user turns (safe starter prompts). */
async function chatTurns(n: number): Promise<string[]> {
  const { texts } = await readTextRecords(path.join(ROOT, "samples", "prompts.jsonl"));
  return texts.filter((t) => t.length < 120).slice(0, n);
}

export async function benchChat(model: Model, nlc: NlcChat | null, rounds: number, log: (m: string) => void): Promise<ChatBench> {
  const turns = await chatTurns(8);
  const maxTokens = 32;
  const send = { maxTokens, temperature: 0, ignoreEos: true };
  log(`chat: ${turns.length} turns, ${maxTokens} tokens each; time to first token with KV reuse, re-prefilled, node-llama-cpp`);
  const ttft: Record<string, number[][]> = { reuse: [], rePrefill: [], nodeLlamaCpp: [] };
  let prefilled: number[] = [];
  let reused: number[] = [];
  const reuse = async () => {
    const chat = createChat(model);
    const row: number[] = [];
    const pre: number[] = [];
    const re: number[] = [];
    try {
      for (const t of turns) {
        const turn = await chat.send(t, send);
        row.push(turn.timeToFirstTokenMs);
        pre.push(turn.prefilledTokens);
        re.push(turn.reusedTokens);
      }
      return { row, pre, re, history: chat.history };
    } finally {
      await chat.dispose();
    }
  };
  // the reference conversation: re-prefill replays its history turn by turn
  const reference = await reuse();
  prefilled = reference.pre;
  reused = reference.re;
  const rePrefill = async () => {
    const row: number[] = [];
    for (let k = 0; k < turns.length; k++) {
      const history = { ...reference.history, messages: reference.history.messages.slice(0, 2 * k) };
      const chat = Chat.restore(model, history);
      try {
        row.push((await chat.send(turns[k], send)).timeToFirstTokenMs);
      } finally {
        await chat.dispose();
      }
    }
    return row;
  };
  const variants: [string, () => Promise<number[]>][] = [
    ["reuse", async () => (await reuse()).row],
    ["rePrefill", rePrefill],
    ...(nlc ? [["nodeLlamaCpp", () => nlc.chatTtft(turns, maxTokens)] as [string, () => Promise<number[]>]] : []),
  ];
  for (let r = 0; r < rounds; r++) {
    for (const [k, fn] of r % 2 ? [...variants].reverse() : variants) ttft[k].push(await fn());
    log(`  round ${r + 1}/${rounds}: last-turn TTFT ${variants.map(([k]) => `${k} ${ttft[k][r][turns.length - 1].toFixed(1)} ms`).join(", ")}`);
  }
  const perTurn = (k: string) => turns.map((_, i) => median(ttft[k].map((row) => row[i])));
  const last = (k: string) => ttft[k].map((row) => row[turns.length - 1]);
  const rePrefillOverReuse = ratioOf(last("rePrefill"), last("reuse"));
  return {
    turns: turns.length,
    maxTokens,
    rounds,
    ttftMs: { reuse: perTurn("reuse"), rePrefill: perTurn("rePrefill"), nodeLlamaCpp: nlc ? perTurn("nodeLlamaCpp") : null },
    prefilled,
    reused,
    lastTurn: { rePrefillOverReuse, nodeLlamaCppOverReuse: nlc ? ratioOf(last("nodeLlamaCpp"), last("reuse")) : null },
    targets: { reuseFasterAtLastTurn: rePrefillOverReuse.median > 1 },
  };
}

/** A monitor that reads every token and never fires (threshold 1), on a logistic probe of planted features. */
function passiveMonitor(model: Model): Monitor {
  const d = model.info.nEmbd;
  const rows = 400;
  const data = new Float32Array(rows * d);
  const y = new Uint8Array(rows);
  let st = 3;
  for (let i = 0; i < rows; i++) {
    y[i] = i % 2;
    for (let j = 0; j < d; j++) data[i * d + j] = ((st = (Math.imul(st, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1 + (j === 1 ? (y[i] ? 0.5 : -0.5) : 0);
  }
  const probe = Probe.train({ method: "logreg", layers: [Math.floor(model.info.nLayer / 2)], train: { features: [{ data, rows, cols: d }], labels: y }, model });
  return Monitor.fromProbe(probe, { threshold: 1 });
}

export async function benchMonitor(model: Model, prompt: string, rounds: number, log: (m: string) => void): Promise<MonitorBench> {
  const monitor = passiveMonitor(model);
  const maxTokens = 64;
  const greedy = { maxTokens, temperature: 0, ignoreEos: true };
  log(`monitor: ${maxTokens} tokens greedy, with and without a streaming monitor on layer ${String(monitor.layer)}`);
  const stepMs: Record<string, number[]> = { plain: [], monitored: [] };
  const gen = (k: string, o: object) => async () => {
    const r = await model.generate(prompt, { ...greedy, ...o });
    stepMs[k].push(r.timings.decodeMs / r.timings.steps);
  };
  const t = await measure({ plain: gen("plain", {}), monitored: gen("monitored", { monitor }) }, rounds, log);
  const steps = (k: string) => stepMs[k].slice(1);
  const turn = (withMonitor: boolean) => async () => {
    const chat = createChat(model, withMonitor ? { monitor } : {});
    try {
      await chat.send(prompt, greedy);
    } finally {
      await chat.dispose();
    }
  };
  const c = await measure({ plain: turn(false), monitored: turn(true) }, rounds, log);
  const perStep = ratioOf(steps("monitored"), steps("plain"));
  return {
    maxTokens,
    rounds,
    msPerStep: { plain: median(steps("plain")), monitored: median(steps("monitored")) },
    perStep,
    perCall: ratioOf(t.monitored, t.plain),
    chatTurn: ratioOf(c.monitored, c.plain),
    targets: { perStepUnder2pct: perStep.median < 1.02 },
  };
}

export async function benchGuard(model: Model, log: (m: string) => void): Promise<GuardBench> {
  log("train-guard: the starter data on the bench model (every layer captured once, then the sweep and the methods)");
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "safety-lens-guard-"));
  try {
    const g = await trainGuard(model, { cacheDir, onLog: (m) => log(`  ${m}`) });
    const prompts = g.data.train + g.data.val + g.data.test;
    return { prompts, seconds: g.seconds, chosen: `${g.probe.method} [${g.probe.layers.join(",")}]`, valFpr: g.validation.fpr };
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
}

const pct = (s: Spread) => `${((s.median - 1) * 100).toFixed(2)}% (rounds ${((s.min - 1) * 100).toFixed(2)}..${((s.max - 1) * 100).toFixed(2)}%)`;
const x = (s: Spread) => `${s.median.toFixed(2)}x (rounds ${s.min.toFixed(2)}..${s.max.toFixed(2)})`;
const met = (b: boolean) => (b ? "met" : "MISSED");

export function formatApp(r: { corpus?: CorpusBench; chat?: ChatBench; monitor?: MonitorBench; guard?: GuardBench }): string[] {
  const lines: string[] = [];
  if (r.corpus) {
    lines.push("", "corpus capture to disk (captureToFile, chunks of 256 rows, fsync'd; a child process per run)", "| model | rows | layers x width | rows/s | tokens/s | file | peak RSS |", "|---|---:|---|---:|---:|---:|---:|");
    for (const c of r.corpus.runs) lines.push(`| ${c.model} | ${c.rows} | ${c.layers} x ${c.width} | ${c.rowsPerSec.toFixed(0)} | ${c.tokensPerSec.toFixed(0)} | ${c.fileMiB.toFixed(1)} MiB | ${c.peakRssMiB.toFixed(0)} MiB |`);
    lines.push(`target: peak memory flat as the corpus grows 16x (largest / smallest ${r.corpus.rssGrowth.toFixed(3)}, < 1.25) ${met(r.corpus.targets.memoryFlat)}`);
    lines.push("", "the capture writer alone (synthetic rows, 25 tensors x 896, chunks of 256, fsync'd)", "| rows | file | write MiB/s | peak RSS |", "|---:|---:|---:|---:|");
    for (const w of r.corpus.writer) lines.push(`| ${w.rows} | ${w.fileMiB.toFixed(0)} MiB | ${w.writeMiBps.toFixed(0)} | ${w.peakRssMiB.toFixed(0)} MiB |`);
    lines.push(`target: writer memory flat from 1k to 50k rows (${r.corpus.writerRssGrowth.toFixed(3)}, < 1.25) ${met(r.corpus.targets.writerMemoryFlat)}`);
  }
  if (r.chat) {
    const c = r.chat;
    lines.push("", `chat: time to first token per turn (ms, median of ${c.rounds} rounds; ${c.maxTokens} tokens per answer)`, "| turn | prefilled / reused tokens | KV reuse | re-prefill | node-llama-cpp LlamaChatSession |", "|---:|---:|---:|---:|---:|");
    for (let i = 0; i < c.turns; i++) {
      lines.push(`| ${i + 1} | ${c.prefilled[i]} / ${c.reused[i]} | ${c.ttftMs.reuse[i].toFixed(1)} | ${c.ttftMs.rePrefill[i].toFixed(1)} | ${c.ttftMs.nodeLlamaCpp ? c.ttftMs.nodeLlamaCpp[i].toFixed(1) : "n/a"} |`);
    }
    lines.push(
      `turn ${c.turns}: re-prefill / reuse ${x(c.lastTurn.rePrefillOverReuse)}; node-llama-cpp / reuse ${c.lastTurn.nodeLlamaCppOverReuse ? x(c.lastTurn.nodeLlamaCppOverReuse) : "n/a"}; target: reuse faster than re-prefill at the last turn ${met(c.targets.reuseFasterAtLastTurn)}`,
    );
  }
  if (r.monitor) {
    const m = r.monitor;
    lines.push(
      "",
      `streaming monitor (${m.maxTokens} tokens greedy, ${m.rounds} rounds, per-round ratios monitored / plain)`,
      `| measure | overhead |`,
      `|---|---:|`,
      `| per decode step (${m.msPerStep.monitored.toFixed(2)} vs ${m.msPerStep.plain.toFixed(2)} ms) | ${pct(m.perStep)} |`,
      `| whole generate call | ${pct(m.perCall)} |`,
      `| chat.send, one turn | ${pct(m.chatTurn)} |`,
      `target: < 2% per decode step ${met(m.targets.perStepUnder2pct)}`,
    );
  }
  if (r.guard) {
    lines.push("", `train-guard on the starter data (${r.guard.prompts} prompts): ${r.guard.seconds.toFixed(0)} s; chose ${r.guard.chosen}, validation FPR ${(r.guard.valFpr * 100).toFixed(1)}%`);
  }
  return lines;
}

