/**
 * Options checked before any work starts (sharp's rule: an exact TypeError or RangeError,
 * nothing read, nothing captured), and the rendering a chat, guard and monitor agree on.
 */
import * as fs from "node:fs";
import * as path from "node:path";

import { Chat, createChat, DEFAULT_TEMPLATE_DATE, evaluateMonitor, Guard, loadModel, Model, ModelStateError, Monitor, Probe, trainGuard, trainMonitor } from "../src";
import { DEFAULT_INPUT_FORMAT } from "../src/core/chat";
import { MODEL, tmpDir } from "./helpers";

const LISTS = path.join(__dirname, "..", "samples", "responses.jsonl");
const MISSING = path.join(tmpDir(), "not-there.jsonl");

/** A logistic probe on random rows of `model`'s width, trained as if prompts were rendered on `date`. */
function probeOn(model: Model, date: string): Probe {
  const d = model.info.nEmbd;
  const data = Float32Array.from({ length: 40 * d }, (_, i) => Math.sin(i * 0.37));
  const labels = Uint8Array.from({ length: 40 }, (_, i) => i % 2);
  return Probe.train({ method: "logreg", layers: [2], train: { features: [{ data, rows: 40, cols: d }], labels }, input: { ...DEFAULT_INPUT_FORMAT, date }, model });
}

describe("options are checked before anything is read or captured; rendering agrees", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
  });
  afterAll(() => model.dispose());

  test("trainMonitor and evaluateMonitor: exact errors before the files are opened", async () => {
    // the file does not exist: an option error must come first
    const base = { files: [MISSING] };
    await expect(trainMonitor(model, { ...base, method: "mlp" as "lpm" })).rejects.toThrow(new TypeError('method must be "logreg" or "lpm", got "mlp"'));
    await expect(trainMonitor(model, { ...base, targetFpr: 1.5 })).rejects.toThrow(new RangeError("targetFpr must be between 0 and 1 (exclusive), got 1.5"));
    await expect(trainMonitor(model, { ...base, maxResponseTokens: 0 })).rejects.toThrow(new RangeError("maxResponseTokens must be a positive integer, got 0"));
    await expect(trainMonitor(model, { ...base, onLong: "drop" as "skip" })).rejects.toThrow(new TypeError('onLong must be "skip", "truncate" or "error", got "drop"'));
    await expect(trainMonitor(model, { files: [] })).rejects.toThrow(new TypeError("files must be a non-empty array of file paths"));
    const m = Monitor.fromProbe(probeOn(model, DEFAULT_TEMPLATE_DATE), { threshold: 0.5 });
    await expect(evaluateMonitor(model, m, { ...base, split: "train" as "test" })).rejects.toThrow(new TypeError('split must be "test" or "all", got "train"'));
    await expect(evaluateMonitor(model, m, { ...base, signal: {} as AbortSignal })).rejects.toThrow(new TypeError("signal must be an AbortSignal"));
  });

  test("trainGuard: the methods are checked before the layers are captured", async () => {
    const logs: string[] = [];
    const o = { starter: false, files: [MISSING], onLog: (s: string) => logs.push(s) };
    await expect(trainGuard(model, { ...o, methods: [] })).rejects.toThrow(new TypeError("methods must be a non-empty array of logreg, mlp, lpm, mlpm"));
    await expect(trainGuard(model, { ...o, methods: ["lpm", "svm" as "lpm"] })).rejects.toThrow(new TypeError('methods[1] must be "logreg", "mlp", "lpm" or "mlpm", got "svm"'));
    await expect(trainGuard(model, { ...o, methods: ["lpm", "lpm"] })).rejects.toThrow(new RangeError('methods lists "lpm" twice'));
    await expect(trainGuard(model, { ...o, hardest: -1 })).rejects.toThrow(new RangeError("hardest must be a positive integer, got -1"));
    await expect(trainGuard(model, { files: "mine.jsonl" as unknown as string[] })).rejects.toThrow(new TypeError("files must be an array of file paths"));
    expect(logs).toEqual([]);
  });

  test("captureToFile on a disposed model rejects (never throws synchronously)", async () => {
    const m = await loadModel({ modelPath: MODEL, gpu: false, threads: 1 });
    await m.dispose();
    const out = path.join(tmpDir(), "x.safetensors");
    let p: Promise<unknown> | undefined;
    expect(() => (p = m.captureToFile(["a"], { out, layers: [1] }))).not.toThrow();
    await expect(p).rejects.toBeInstanceOf(ModelStateError);
    expect(fs.existsSync(out)).toBe(false);
  });

  test("Monitor.generate renders as the monitor was trained: chat and monitor cannot be overridden", async () => {
    const m = Monitor.fromProbe(probeOn(model, DEFAULT_TEMPLATE_DATE), { threshold: 0.99 });
    await expect(m.generate(model, "Tell me a story", { chat: false } as object)).rejects.toThrow(
      new TypeError("chat cannot be set here: the monitor renders prompts with the input format it was trained with (monitor.input)"),
    );
    const r = await m.generate(model, "Tell me a story", { maxTokens: 4, temperature: 0 });
    const direct = await model.generate("Tell me a story", { maxTokens: 4, temperature: 0, chat: { date: DEFAULT_TEMPLATE_DATE } });
    expect(r.candidates[0].text).toBe(direct.candidates[0].text);
  });

  test("a chat renders with the date its guard and monitor were trained with: from the guard and monitor, checked against an explicit one; turn times are consistent", async () => {
    const guard = new Guard(model, probeOn(model, "2025-03-01"), { threshold: 1 });
    const monitor = Monitor.fromProbe(probeOn(model, "2025-03-01"), { threshold: 1 });
    const chat = createChat(model, { guard, monitor });
    try {
      expect(chat.date).toBe("2025-03-01");
      const t = await chat.send("Tell me about a cat.", { maxTokens: 6, temperature: 0 });
      expect(t.timeToFirstTokenMs).toBeLessThanOrEqual(t.totalMs);
      expect(t.timeToFirstTokenMs).toBeGreaterThan(0);
      // the history records the date, and a restored chat renders with it
      expect(chat.history.date).toBe("2025-03-01");
      const back = Chat.restore(model, chat.history);
      expect(back.date).toBe("2025-03-01");
      await back.dispose();
      expect(() => Chat.restore(model, { ...chat.history, date: "March 1" })).toThrow(new TypeError('not a chat history: date must be a "YYYY-MM-DD" string'));
    } finally {
      await chat.dispose();
    }
    expect(createChat(model).date).toBe(DEFAULT_TEMPLATE_DATE);
    const other = Monitor.fromProbe(probeOn(model, "2024-01-01"), { threshold: 1 });
    expect(() => createChat(model, { guard, monitor: other })).toThrow(
      new RangeError("the guard, monitor and ranker were trained with different template dates (guard 2025-03-01, monitor 2024-01-01); retrain one so they agree"),
    );
    expect(() => createChat(model, { guard, date: "2026-01-01" })).toThrow(
      new RangeError("date 2026-01-01 differs from the date the guard was trained with (guard 2025-03-01): its features would come from another rendering"),
    );
    expect(() => createChat(model, { date: "2026-13-01" })).toThrow(new RangeError('date must be a "YYYY-MM-DD" calendar date, got "2026-13-01"'));
  });
});
