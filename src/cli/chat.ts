/**
 * `safety-lens chat`: a guarded, monitored terminal chat that streams tokens and shows
 * the guard's and the monitor's verdicts; `--script FILE.jsonl --json` runs scripted
 * turns (one `{"user": "..."}` a line) and prints every turn as JSON.
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

import { type ChatTurn, createChat } from "../chat/chat";
import { loadModel } from "../core/model";
import { Guard } from "../guard";
import { readJsonl } from "../io/jsonl";
import { Monitor } from "../monitor/monitor";
import { Ranker } from "../srr/ranker";
import { common, intOption, modelOptions, numOption, print, UsageError } from "./util";

function turnJson(t: ChatTurn) {
  return {
    user: t.user,
    text: t.text,
    finishReason: t.finishReason,
    prefilledTokens: t.prefilledTokens,
    reusedTokens: t.reusedTokens,
    timeToFirstTokenMs: t.timeToFirstTokenMs,
    totalMs: t.totalMs,
    droppedTurns: t.droppedTurns,
    guard: t.guard && { unsafe: t.guard.unsafe, score: t.guard.score, path: t.guard.path, failedClosed: t.guard.failedClosed },
    monitor: t.monitor && { flagged: t.monitor.flagged, flaggedAt: t.monitor.flaggedAt, aggregate: t.monitor.aggregate, maxScore: Math.max(0, ...Array.from(t.monitor.scores)) },
    chosen: t.chosen,
    candidates: t.candidates.length,
  };
}

function verdictLine(t: ChatTurn): string {
  const parts: string[] = [];
  if (t.guard) parts.push(`guard ${t.guard.unsafe ? "FLAGGED" : "ok"} ${Number.isFinite(t.guard.score) ? t.guard.score.toFixed(3) : "NaN"}${t.guard.path !== "normal" ? ` (${t.guard.path})` : ""}`);
  if (t.monitor) parts.push(`monitor ${t.monitor.flagged ? `FLAGGED at token ${t.monitor.flaggedAt}` : "ok"} ${Number.isFinite(t.monitor.aggregate) ? t.monitor.aggregate.toFixed(3) : "NaN"}`);
  parts.push(`${t.finishReason}, prefilled ${t.prefilledTokens}, reused ${t.reusedTokens}, first token ${t.timeToFirstTokenMs.toFixed(0)} ms`);
  return `[${parts.join(" | ")}]`;
}

export async function cmdChat(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...common,
      probe: { type: "string" },
      monitor: { type: "string" },
      ranker: { type: "string" },
      n: { type: "string" },
      "system-prompt": { type: "string" },
      script: { type: "string" },
      "max-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      "top-k": { type: "string" },
      "min-p": { type: "string" },
      seed: { type: "string" },
      "context-policy": { type: "string", default: "drop-oldest" },
    },
    strict: true,
  });
  if (values["context-policy"] !== "drop-oldest" && values["context-policy"] !== "error") {
    throw new UsageError(`--context-policy must be drop-oldest or error, got ${JSON.stringify(values["context-policy"])}`);
  }
  if (values.json && !values.script) throw new UsageError("--json needs --script FILE.jsonl (the interactive chat prints text)");
  const model = await loadModel(modelOptions(values));
  try {
    const chat = createChat(model, {
      ...(values["system-prompt"] !== undefined ? { systemPrompt: values["system-prompt"] } : {}),
      guard: values.probe ? await Guard.load(model, values.probe) : undefined,
      monitor: values.monitor ? await Monitor.load(values.monitor, model) : undefined,
      ranker: values.ranker ? await Ranker.load(values.ranker, model) : undefined,
      contextPolicy: values["context-policy"] as "drop-oldest" | "error",
      onContextDrop: values.json ? undefined : (e) => process.stderr.write(`[dropped ${e.droppedTurns} old turn(s) to make room]\n`),
      defaults: {
        maxTokens: intOption(values["max-tokens"], "max-tokens") ?? 128,
        temperature: numOption(values.temperature, "temperature"),
        topP: numOption(values["top-p"], "top-p"),
        topK: intOption(values["top-k"], "top-k"),
        minP: numOption(values["min-p"], "min-p"),
        seed: intOption(values.seed, "seed"),
        n: intOption(values.n, "n"),
      },
    });
    if (values.script) {
      const turns: ReturnType<typeof turnJson>[] = [];
      for await (const { line, value } of readJsonl(values.script)) {
        if (typeof value.user !== "string" || value.user.trim() === "") throw new UsageError(`${values.script}:${line}: each line needs {"user": "..."}`);
        const t = await chat.send(value.user, values.json ? {} : { onToken: (e) => e.candidate === 0 && process.stdout.write(e.text) });
        turns.push(turnJson(t));
        if (!values.json) process.stdout.write(`${t.text === t.candidates[t.chosen].text ? "" : `\n(shown instead: ${t.text})`}\n${verdictLine(t)}\n`);
      }
      if (values.json) print(true, { turns, history: chat.history }, "");
      return;
    }
    const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: "you> " });
    process.stdout.write(`chatting with ${model.info.name || model.info.arch} (${model.info.fingerprint}); empty line or Ctrl-D to end\n`);
    rl.prompt();
    for await (const line of rl) {
      const text = line.trim();
      if (text === "") break;
      process.stdout.write("assistant> ");
      let streamed = "";
      const t = await chat.send(text, {
        onToken: (e) => {
          if (e.candidate !== 0) return;
          streamed += e.text;
          process.stdout.write(e.text);
        },
      });
      if (t.text !== streamed) process.stdout.write(`${streamed ? "\n" : ""}${t.text}`);
      process.stdout.write(`\n${verdictLine(t)}\n`);
      rl.prompt();
    }
    rl.close();
    await chat.dispose();
  } finally {
    await model.dispose();
  }
}
