/**
 * Chat sessions: KV reuse between turns equals a fresh generation on the whole rendered
 * conversation, templates that rewrite history fall back, restore, abort, dispose,
 * several chats, context policies, the guard per turn, and the streaming monitor.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

import { Chat, createChat, type ChatTurn } from "../src/chat/chat";
import { loadModel, type Model, ModelFileError, ModelStateError, Probe } from "../src";
import type { ChatMessage } from "../src/core/chat";
import { Monitor } from "../src/monitor/monitor";
import { replay } from "../src/monitor/rule";
import { Guard } from "../src/guard";
import { DEFAULT_INPUT_FORMAT } from "../src/core/chat";
import { MODEL, maxAbsDiff, modelVariant, tmpDir } from "./helpers";

const SYSTEM = "You tell short stories.";
const USERS = ["Tell me about a cat.", "What did the cat eat?", "And then what happened?", "Who was its friend?"];
const GEN = { maxTokens: 10, temperature: 0 } as const;

/** A fresh generate on the messages a turn showed the model; compared with the turn. */
async function expectEqualsFresh(model: Model, turn: ChatTurn, shown: ChatMessage[]): Promise<void> {
  const fresh = await model.generate(shown, { ...GEN, capture: { layers: [2, "final"] } });
  const a = turn.candidates[turn.chosen];
  const b = fresh.candidates[0];
  expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
  expect(a.text).toBe(b.text);
  for (const l of [2, "final"] as const) {
    expect(maxAbsDiff(a.hidden.prompt!.layer(l), b.hidden.prompt!.layer(l))).toBeLessThan(1e-4);
    expect(maxAbsDiff(a.hidden.response!.layer(l), b.hidden.response!.layer(l))).toBeLessThan(1e-4);
  }
}

describe("chat sessions", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
  });
  afterAll(() => model.dispose());

  test("each turn prefills only its new tokens and equals a fresh generate on the whole conversation", async () => {
    const chat = createChat(model, { systemPrompt: SYSTEM });
    try {
      for (let k = 0; k < USERS.length; k++) {
        const before = chat.history.messages;
        const turn = await chat.send(USERS[k], { ...GEN, capture: { layers: [2, "final"] } });
        const shown = [{ role: "system", content: SYSTEM }, ...before, { role: "user", content: USERS[k] }];
        const rendered = model.tokenize(shown, { chat: { addAssistantPrefix: true } });
        expect(turn.prefilledTokens + turn.reusedTokens).toBe(rendered.length);
        if (k === 0) expect(turn.reusedTokens).toBe(0);
        // the earlier turns' tokens (prompts and answers) stay cached: only the new message is prefilled
        else expect(turn.prefilledTokens).toBeLessThan(rendered.length / 2);
        await expectEqualsFresh(model, turn, shown);
      }
      expect(chat.history.messages).toHaveLength(2 * USERS.length);
    } finally {
      await chat.dispose();
    }
  });

  test("a template that rewrites earlier turns falls back to a longer prefill and stays correct", async () => {
    // the first line counts the messages: every turn changes the rendering from its first tokens on
    const template =
      "{{ 'Messages: ' + (messages|length|string) + '\\n' }}{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    const m2 = await loadModel({ modelPath: await modelVariant({ template }), gpu: false, threads: 1 });
    const chat = createChat(m2);
    try {
      for (let k = 0; k < 3; k++) {
        const before = chat.history.messages;
        const turn = await chat.send(USERS[k], { ...GEN, capture: { layers: [2, "final"] } });
        // only the tokens before the message count survive: nearly the whole conversation is prefilled again
        const rendered = m2.tokenize([...before, { role: "user", content: USERS[k] }], { chat: { addAssistantPrefix: true } }).length;
        const prefix = m2.tokenize("Messages: ", { chat: false }).length;
        if (k > 0) expect(turn.reusedTokens).toBeLessThanOrEqual(prefix);
        expect(turn.prefilledTokens).toBe(rendered - turn.reusedTokens);
        await expectEqualsFresh(m2, turn, [...before, { role: "user", content: USERS[k] }]);
      }
    } finally {
      await chat.dispose();
      await m2.dispose();
    }
  });

  test("a chat restored from its history continues exactly as the original", async () => {
    const a = createChat(model, { systemPrompt: SYSTEM });
    await a.send(USERS[0], GEN);
    await a.send(USERS[1], GEN);
    const saved = JSON.parse(JSON.stringify(a.history));
    const b = Chat.restore(model, saved);
    try {
      const ta = await a.send(USERS[2], GEN);
      const tb = await b.send(USERS[2], GEN);
      expect(tb.text).toBe(ta.text);
      expect(Array.from(tb.candidates[0].tokens)).toEqual(Array.from(ta.candidates[0].tokens));
      expect(tb.reusedTokens).toBe(0); // a restored chat prefills once
      expect(b.history).toEqual(a.history);
      expect(() => Chat.restore(model, { ...saved, messages: [{ role: "user", content: 5 }, saved.messages[1]] })).toThrow(
        new TypeError('not a chat history: messages[0] must be { role: "user", content: string }'),
      );
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });

  test("an abort mid-turn keeps the partial answer and leaves a usable session", async () => {
    const chat = createChat(model, { systemPrompt: SYSTEM });
    try {
      const ac = new AbortController();
      let n = 0;
      const t = await chat.send(USERS[0], {
        maxTokens: 200, // room for the abort to land: onToken runs on the event loop while the worker goes on
        temperature: 0,
        signal: ac.signal,
        onToken: () => {
          if (++n === 3) ac.abort();
        },
      });
      expect(t.finishReason).toBe("aborted");
      expect(t.candidates[0].tokens.length).toBeGreaterThanOrEqual(3);
      expect(t.candidates[0].tokens.length).toBeLessThan(200);
      expect(chat.history.messages[1].content).toBe(t.text);
      // aborted before anything was generated: the history does not change
      const ac2 = new AbortController();
      ac2.abort();
      await expect(chat.send(USERS[1], { ...GEN, signal: ac2.signal })).rejects.toMatchObject({ code: "ABORTED" });
      expect(chat.history.messages).toHaveLength(2);
      const before = chat.history.messages;
      const next = await chat.send(USERS[1], { ...GEN, capture: { layers: [2, "final"] } });
      await expectEqualsFresh(model, next, [{ role: "system", content: SYSTEM }, ...before, { role: "user", content: USERS[1] }]);
    } finally {
      await chat.dispose();
    }
  });

  test("several chats on one model keep their own caches; running out of sequences is CONTEXT_FULL", async () => {
    const m2 = await loadModel({ modelPath: MODEL, gpu: false, threads: 1, sequences: 3 });
    try {
      const a = createChat(m2, { systemPrompt: SYSTEM });
      const b = createChat(m2);
      const a1 = await a.send(USERS[0], GEN);
      const b1 = await b.send(USERS[1], GEN);
      const a2 = await a.send(USERS[2], GEN); // b's turn in between: a's cache is still there
      expect(a2.reusedTokens).toBeGreaterThan(a1.prefilledTokens);
      expect(b1.reusedTokens).toBe(0);
      const c = createChat(m2);
      expect(() => createChat(m2)).toThrow(ModelStateError);
      // 3 sequences, 3 chats: a turn with n = 2 needs a temporary one
      await expect(c.send(USERS[0], { ...GEN, n: 2 })).rejects.toMatchObject({ code: "CONTEXT_FULL" });
      expect(c.history.messages).toHaveLength(0);
      await b.dispose();
      const c1 = await c.send(USERS[0], { ...GEN, n: 2 });
      expect(c1.candidates).toHaveLength(2);
      await a.dispose();
      await c.dispose();
    } finally {
      await m2.dispose();
    }
  });

  test("context policies: drop-oldest drops whole turns and says so; error refuses before anything changes", async () => {
    const m2 = await loadModel({ modelPath: MODEL, gpu: false, threads: 1, contextSize: 256 });
    try {
      const drops: number[] = [];
      const chat = createChat(m2, { systemPrompt: SYSTEM, onContextDrop: (e) => drops.push(e.droppedTurns) });
      const strict = createChat(m2, { systemPrompt: SYSTEM, contextPolicy: "error" });
      let dropped = 0;
      for (let k = 0; k < 8; k++) {
        const t = await chat.send(`${USERS[k % USERS.length]} Tell it with many details, please.`, { maxTokens: 24, temperature: 0 });
        dropped += t.droppedTurns;
      }
      expect(dropped).toBeGreaterThan(0);
      expect(drops.reduce((x, y) => x + y, 0)).toBe(dropped);
      expect(chat.history.windowStart).toBe(dropped);
      expect(chat.history.messages).toHaveLength(16); // the history keeps every turn
      // the turns in view still equal a fresh generation on what the model saw
      const h = chat.history;
      const shown = [{ role: "system", content: SYSTEM }, ...h.messages.slice(h.windowStart * 2), { role: "user", content: USERS[0] }];
      const seen = await chat.send(USERS[0], { ...GEN, capture: { layers: [2, "final"] } });
      if (seen.droppedTurns === 0) await expectEqualsFresh(m2, seen, shown);
      // "error": the same pressure is refused, the history unchanged
      await chat.dispose();
      let refused: unknown = null;
      for (let k = 0; k < 8 && !refused; k++) {
        const before = strict.history;
        try {
          await strict.send(`${USERS[k % USERS.length]} Tell it with many details, please.`, { maxTokens: 24, temperature: 0 });
        } catch (e) {
          refused = e;
          expect(strict.history).toEqual(before);
        }
      }
      expect(refused).toBeInstanceOf(ModelStateError);
      expect((refused as ModelStateError).code).toBe("CONTEXT_FULL");
      await strict.dispose();
    } finally {
      await m2.dispose();
    }
  });

  test("dispose with open chats: sends are refused, disposing the chats is harmless", async () => {
    const m2 = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
    const a = createChat(m2);
    const b = createChat(m2);
    await a.send(USERS[0], GEN);
    await m2.dispose();
    await expect(a.send(USERS[1], GEN)).rejects.toMatchObject({ code: "MODEL_DISPOSED" });
    await expect(b.send(USERS[1], GEN)).rejects.toMatchObject({ code: "MODEL_DISPOSED" });
    await a.dispose();
    await b.dispose();
    await expect(a.send(USERS[1], GEN)).rejects.toMatchObject({ code: "MODEL_DISPOSED" });
  });
});

/** A logistic probe at `layer` that fires on a planted direction: hidden states of the response tokens from position 6 on. */
async function plantedMonitor(model: Model, prompt: string, layer: number, threshold: number) {
  const g = await model.generate(prompt, { maxTokens: 24, temperature: 0 });
  const R = g.candidates[0].tokens;
  const head = model.tokenize(prompt);
  const all = new Int32Array(head.length + R.length);
  all.set(head);
  all.set(R, head.length);
  const acts = await model.capture({ tokens: all, offsets: Uint32Array.of(0, all.length) }, { layers: [layer], pool: "tokens" });
  const other = await model.capture(["The dog ran to the park and played with a ball.", "Lily liked to read books."], { layers: [layer], pool: "tokens" });
  const d = model.info.nEmbd;
  const rows: Float32Array[] = [];
  const y: number[] = [];
  for (let t = 0; t < R.length; t++) {
    rows.push(acts.layer(layer).slice((head.length + t) * d, (head.length + t + 1) * d));
    y.push(t >= 6 ? 1 : 0);
  }
  for (let r = 0; r < other.rows; r++) {
    rows.push(other.layer(layer).slice(r * d, (r + 1) * d));
    y.push(0);
  }
  const data = new Float32Array(rows.length * d);
  rows.forEach((r, i) => data.set(r, i * d));
  const probe = Probe.train({ method: "logreg", layers: [layer], train: { features: [{ data, rows: rows.length, cols: d }], labels: Uint8Array.from(y) },
    input: { ...DEFAULT_INPUT_FORMAT, chat: false }, // its rows were read from the text as given
    model,
  });
  const monitor = Monitor.fromProbe(probe, { rule: { kind: "ema", alpha: 0.5 }, threshold });
  const scores = monitor.scoreTokens(acts.layer(layer), head.length, all.length);
  return { monitor, scores, tokens: R };
}

describe("the streaming monitor", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
  });
  afterAll(() => model.dispose());

  test("flags a planted direction within a few tokens, exactly where the TypeScript replay does", async () => {
    const prompt = "Once upon a time";
    const { monitor, scores, tokens } = await plantedMonitor(model, prompt, 3, 0.7);
    const want = replay(scores, monitor.rule, monitor.threshold);
    expect(want.flaggedAt).toBeGreaterThanOrEqual(6);
    expect(want.flaggedAt).toBeLessThanOrEqual(9);
    const streamed: number[] = [];
    const out = await model.generate(prompt, { maxTokens: 24, temperature: 0, monitor, onToken: (e) => streamed.push(e.token) });
    const c = out.candidates[0];
    expect(c.finishReason).toBe("flagged");
    expect(c.monitor!.flaggedAt).toBe(want.flaggedAt);
    // the token that crossed is neither kept nor streamed
    expect(Array.from(c.tokens)).toEqual(Array.from(tokens.subarray(0, want.flaggedAt)));
    expect(streamed).toEqual(Array.from(c.tokens));
    expect(maxAbsDiff(c.monitor!.scores, Float32Array.from(scores.subarray(0, want.flaggedAt + 1)))).toBeLessThan(1e-4);
    // mean rule as well
    const mean = Monitor.fromProbe(monitor.probe, { rule: { kind: "mean", window: 3 }, threshold: 0.7 });
    const wantMean = replay(scores, mean.rule, mean.threshold);
    const outMean = await model.generate(prompt, { maxTokens: 24, temperature: 0, monitor: mean });
    expect(outMean.candidates[0].monitor!.flaggedAt).toBe(wantMean.flaggedAt);
    // actions: refuse replaces the text, a callback supplies it
    const refused = await monitor.generate(model, prompt, { maxTokens: 24, temperature: 0, action: "refuse", refusal: "No." });
    expect(refused.candidates[0]).toMatchObject({ finishReason: "flagged", text: "No." });
    const called = await monitor.generate(model, prompt, { maxTokens: 24, temperature: 0, action: (cand) => `[${cand.tokens.length} tokens withheld]` });
    expect(called.candidates[0].text).toBe(`[${want.flaggedAt} tokens withheld]`);
  });

  test("in a chat, a flagged answer is replaced by the refusal in the history", async () => {
    const chat = createChat(model, {});
    try {
      const shown = [{ role: "user", content: USERS[0] }];
      const text = model.formatText(shown, { chat: { addAssistantPrefix: true } }).text;
      const { monitor } = await plantedMonitor(model, text, 3, 0.7);
      const chat2 = createChat(model, { monitor, monitorAction: "refuse", monitorRefusal: "I can't continue with that." });
      const t = await chat2.send(USERS[0], { maxTokens: 24, temperature: 0 });
      expect(t.finishReason).toBe("flagged");
      expect(t.text).toBe("I can't continue with that.");
      expect(chat2.history.messages[1].content).toBe("I can't continue with that.");
      const next = await chat2.send(USERS[1], GEN);
      expect(next.reusedTokens).toBeGreaterThan(0);
      await chat2.dispose();
    } finally {
      await chat.dispose();
    }
  });

  test("a monitor file round-trips, is refused for another model and when damaged", async () => {
    const { monitor } = await plantedMonitor(model, "Once upon a time", 3, 0.7);
    const dir = tmpDir();
    const f = path.join(dir, "monitor.json");
    await monitor.save(f);
    const back = await Monitor.load(f, model);
    expect(back.threshold).toBe(monitor.threshold);
    expect(maxAbsDiff(back.w, monitor.w)).toBe(0);
    const other = await loadModel({ modelPath: await modelVariant({ template: "{{ messages[0]['content'] }}" }), gpu: false, threads: 1 });
    try {
      const err = await Monitor.load(f, other).catch((e) => e);
      expect(err).toBeInstanceOf(ModelFileError);
      expect(err.code).toBe("PROBE_MODEL_MISMATCH");
      expect(err.kind).toBe("monitor");
    } finally {
      await other.dispose();
    }
    const json = JSON.parse(fs.readFileSync(f, "utf8"));
    for (const [edit, msg] of [
      [(j: any) => (j.rule.alpha = 0), "rule: alpha must be in (0, 1], got 0"],
      [(j: any) => (j.threshold = 2), "threshold must be a number between 0 and 1"],
      [(j: any) => (j.probe.weights.w[0] = 1e308), "probe: weights.w must be 64 finite numbers"],
    ] as const) {
      const j = JSON.parse(JSON.stringify(json));
      edit(j);
      fs.writeFileSync(f, JSON.stringify(j));
      const e = await Monitor.load(f, model).catch((x) => x);
      expect(e).toBeInstanceOf(ModelFileError);
      expect(e.message).toBe(`${f}: ${msg}`);
    }
  });
});

describe("the guard per chat turn", () => {
  test("a vetoed turn records the refusal and the next turn goes on", async () => {
    const model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
    try {
      // a guard that flags everything: threshold 0
      const d = model.info.nEmbd;
      const X = new Float32Array(40 * d).map((_, i) => Math.sin(i));
      const probe = Probe.train({ method: "logreg", layers: [2], train: { features: [{ data: X, rows: 40, cols: d }], labels: Uint8Array.from({ length: 40 }, (_, i) => i % 2) }, model });
      const flagAll = new Guard(model, probe, { threshold: 0, refusal: "I won't." });
      const chat = createChat(model, { guard: flagAll });
      const t = await chat.send(USERS[0], GEN);
      expect(t.guard).toMatchObject({ unsafe: true, path: "refused" });
      expect(t.finishReason).toBe("vetoed");
      expect(t.text).toBe("I won't.");
      expect(chat.history.messages).toEqual([
        { role: "user", content: USERS[0] },
        { role: "assistant", content: "I won't." },
      ]);
      await chat.dispose();
      const passAll = new Guard(model, probe, { threshold: 1 });
      const chat2 = createChat(model, { guard: passAll });
      const t2 = await chat2.send(USERS[0], GEN);
      expect(t2.guard).toMatchObject({ unsafe: false, path: "normal" });
      expect(t2.candidates[0].tokens.length).toBe(GEN.maxTokens);
      await chat2.dispose();
    } finally {
      await model.dispose();
    }
  });
});

describe("safety-lens chat (CLI)", () => {
  const CLI = path.join(__dirname, "..", "dist", "cli", "main.js");
  test("--script --json prints every turn; the interactive chat streams and shows verdicts", async () => {
    const dir = tmpDir();
    const script = path.join(dir, "script.jsonl");
    fs.writeFileSync(script, USERS.slice(0, 3).map((u) => JSON.stringify({ user: u })).join("\n") + "\n");
    const run = (args: string[], input = "") =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        const p = spawn(process.execPath, [CLI, ...args]);
        let out = "";
        let err = "";
        p.stdout.on("data", (b) => (out += b));
        p.stderr.on("data", (b) => (err += b));
        p.on("close", (code) => resolve({ code: code ?? -1, out, err }));
        p.stdin.end(input);
      });
    const r = await run(["chat", "--script", script, "--json", "--threads", "1", "--max-tokens", "8", "--temperature", "0"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.turns).toHaveLength(3);
    for (const k of ["user", "text", "prefilledTokens", "reusedTokens", "timeToFirstTokenMs", "guard", "monitor", "finishReason"]) expect(j.turns[0]).toHaveProperty(k);
    expect(j.turns[1].reusedTokens).toBeGreaterThan(0);
    const i = await run(["chat", "--threads", "1", "--max-tokens", "6", "--temperature", "0"], `${USERS[0]}\n${USERS[1]}\n\n`);
    expect(i.code).toBe(0);
    expect(i.out).toContain("assistant> ");
    expect(i.out.match(/\[length, prefilled \d+, reused \d+, first token \d+ ms\]/g)).toHaveLength(2);
    const bad = await run(["chat", "--json"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--json needs --script FILE.jsonl");
  });
});
