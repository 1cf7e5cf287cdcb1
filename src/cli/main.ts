#!/usr/bin/env node
/**
 * safety-lens command line: parses the command and hands it to its file in src/cli/
 * (each command is a thin layer over the library). Every command takes --json.
 */
import * as path from "node:path";

import { DEFAULT_MODEL_PATH } from "../core/model";
import { SafetyLensError } from "../errors";
import { UsageError } from "./util";

const USAGE = `safety-lens: hidden states of llama.cpp models, for safety probes, guards, rankers and monitors

Usage:
  safety-lens info    [--json]
  safety-lens demo    [--json]
  safety-lens capture --input FILE.jsonl --layers 4,12,final [--out FILE.safetensors] [--pool last|mean] [--chat]
                      [--field text] [--resume | --overwrite] [--shard i/n] [--split-layers] [--chunk-rows N]
                      [--on-long skip|truncate|error] [--lossy-utf8]
  safety-lens merge   FILE.safetensors... --out FILE.safetensors [--allow-partial]
  safety-lens generate --prompt TEXT [--n 4] [--max-tokens 64] [--temperature 0.8] [--top-p 0.95] [--top-k 40]
                      [--min-p 0.05] [--seed 1] [--stop S]... [--chat] [--layers 6,final [--response last|mean]]
  safety-lens chat    [--probe probe.json] [--monitor monitor.json] [--ranker ranker.json --n 4] [--system-prompt TEXT]
                      [--script TURNS.jsonl] [--context-policy drop-oldest|error] [--max-tokens N] [sampling options]
  safety-lens bench   [--synthetic 24x896] [--texts N] [--repeats N] [--only capture|generate|probe|srr|corpus|chat|monitor|guard]
                      (CPU only, its own context and batch sizes: --gpu, --context-size, --batch-size are refused)

 Prompt probes and the guard (data: JSONL with text, label safe|unsafe, source):
  safety-lens train-probe --data FILE.jsonl... [--method logreg|mlp|lpm|mlpm] [--layer N | --layers a,b]
                      [--threshold 0.5|best-f1|fpr:0.05] [--hidden N] [--l2 X] [--l1 X] [--out probe.json]
  safety-lens eval-probe --probe probe.json --data FILE.jsonl... [--split test|all] [--baseline prompted]
  safety-lens sweep   --data FILE.jsonl... [--method lpm|logreg|mlp] [--svg sweep.svg]
  safety-lens classify --probe probe.json (--prompt TEXT... | --input FILE.jsonl [--field text]) [--on-long ...]
  safety-lens train-guard [--data FILE.jsonl...] [--no-starter] [--target-fpr 0.05] [--methods logreg,mlpm]
                      [--report report.html] [--out guard.json] [data options]
  safety-lens eval-guard --probe guard.json --suite DIR [--limit-per-set N]
  Data options: --seed N, --limit-per-file N, --no-cache, --cache-dir DIR, --no-chat, --no-assistant-prefix,
    --system-prompt TEXT, --date YYYY-MM-DD (how prompts are rendered), --on-long skip|truncate|error, --lossy-utf8

 Response rankers and monitors (data: JSONL lists {prompt, candidates: [{text, label}]}):
  safety-lens train-ranker --data LISTS.jsonl... [--layer N] [--lite] [--width 64] [--heads N] [--tau X] [--epochs 30]
                      [--max-response-tokens 256] [--out ranker.json (also the checkpoint)]
  safety-lens eval-ranker --ranker ranker.json --data LISTS.jsonl... [--split test|all] [--no-logprob]
  safety-lens rank    --ranker ranker.json (--instruction TEXT --candidate TEXT... | --input LISTS.jsonl)
                      [--on-long error|truncate] [--lossy-utf8]
  safety-lens train-monitor --data LISTS.jsonl... [--method logreg] [--layer N | --layers a,b] [--rule ema|mean]
                      [--alpha X] [--window N] [--min-tokens N] [--target-fpr 0.05] [--max-response-tokens N]
                      [--out monitor.json]
  safety-lens eval-monitor --monitor monitor.json --data LISTS.jsonl... [--split test|all]
  List options: --seed N, --limit-per-file N, --max-candidates N, --max-chars N, --test-source S...,
    --on-long skip|truncate|error, --lossy-utf8

 Tools (test models):
  safety-lens synthetic --arch ARCH --layers N --width W --out FILE.gguf [--quant f16|q8_0|q4_k_m] [--vocab NAME]
                      [--vocab-dir DIR] [--heads N] [--heads-kv N] [--head-dim N] [--ffn N] [--ctx N] [--seed N]
                      [--threads N]   random weights, real tensor layout: llama, qwen2, qwen3, gemma2, gemma3,
                      phi3, granite, olmo2, mistral3, smollm3, bert; tokenizer from llama.cpp's bundled vocabs

Common options (every command):
  --model PATH      a GGUF model (default: the embedded ${path.basename(DEFAULT_MODEL_PATH)})
  --threads N       llama.cpp threads (default: physical cores)
  --gpu KIND        auto | cuda | vulkan | metal | false (default auto)
  --context-size N  longest text in tokens (default min(training context, 4096))
  --batch-size N    tokens per decode (default 512)
  --json            machine-readable output on stdout
Errors print "safety-lens: Name: message (code CODE)" and exit 1; usage errors exit 2.
`;

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
        await (await import("./info")).cmdInfo(rest);
        break;
      case "capture":
        await (await import("./capture")).cmdCapture(rest);
        break;
      case "merge":
        await (await import("./merge")).cmdMerge(rest);
        break;
      case "generate":
        await (await import("./generate")).cmdGenerate(rest);
        break;
      case "bench":
        await (await import("./bench")).cmdBench(rest);
        break;
      case "train-probe":
        await (await import("./probe")).cmdTrainProbe(rest);
        break;
      case "eval-probe":
        await (await import("./probe")).cmdEvalProbe(rest);
        break;
      case "sweep":
        await (await import("./probe")).cmdSweep(rest);
        break;
      case "classify":
        await (await import("./probe")).cmdClassify(rest);
        break;
      case "train-ranker":
        await (await import("./srr")).cmdTrainRanker(rest);
        break;
      case "eval-ranker":
        await (await import("./srr")).cmdEvalRanker(rest);
        break;
      case "rank":
        await (await import("./srr")).cmdRank(rest);
        break;
      case "train-monitor":
        await (await import("./monitor")).cmdTrainMonitor(rest);
        break;
      case "eval-monitor":
        await (await import("./monitor")).cmdEvalMonitor(rest);
        break;
      case "train-guard":
        await (await import("./guard")).cmdTrainGuard(rest);
        break;
      case "eval-guard":
        await (await import("./guard")).cmdEvalGuard(rest);
        break;
      case "chat":
        await (await import("./chat")).cmdChat(rest);
        break;
      case "demo":
        await (await import("./demo")).cmdDemo(rest);
        break;
      case "synthetic":
        await (await import("./synthetic")).cmdSynthetic(rest);
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
      // the code after the message: scripts can match it, and the message reads first
      const code = e instanceof SafetyLensError ? ` (code ${e.code})` : "";
      process.stderr.write(`safety-lens: ${err.name}: ${err.message}${code}\n`);
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
