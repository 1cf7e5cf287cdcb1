#!/usr/bin/env node
/**
 * safety-lens command line: parses the command and hands it to its file in src/cli/
 * (each command is a thin layer over the library). Every command takes --json.
 */
import * as path from "node:path";

import { DEFAULT_MODEL_PATH } from "../core/model";
import { SafetyLensError } from "../errors";
import { UsageError } from "./util";

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
