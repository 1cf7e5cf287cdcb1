/**
 * A streaming response monitor: a linear probe (logreg or lpm, one layer) on the hidden
 * state of every generated token, with a streaming rule (see ./rule.ts) and a threshold.
 * During generation the addon scores each token as it is decoded (no extra forward
 * pass) and stops a candidate whose aggregate crosses the threshold (finishReason
 * "flagged"). A monitor file is data: the probe's file inside an envelope of its own,
 * the rule and the threshold, bound to the model's fingerprint.
 *
 *   const monitor = await Monitor.load("monitor.json", model);
 *   const out = await monitor.generate(model, prompt, { maxTokens: 256, action: "refuse" });
 */
import type { CaptureInput, LayerSpec } from "../core/activations";
import type { ChatOptions, InputFormat } from "../core/chat";
import type { GenerateOptions, GenerateResult, GenerationCandidate, StreamMonitorSpec, StreamRule } from "../core/generate";
import type { Model } from "../core/model";
import { ModelFileError } from "../errors";
import { checkModelIdentity, type ModelIdentity, readEnvelope, readJsonFile, writeJsonFile } from "../io/model-file";
import { Probe } from "../probe/probe";
import { replay, type Replay, ruleDefaults, scoreRows } from "./rule";

export const MONITOR_FORMAT = "safety-lens/monitor";
export const MONITOR_VERSION = 1;

/** The default streaming rule: an exponential moving average of the token scores. */
export const DEFAULT_STREAM_RULE: Readonly<Required<StreamRule>> = Object.freeze({ kind: "ema", alpha: 0.3, window: 8, minTokens: 1 });

export const DEFAULT_MONITOR_REFUSAL = "I can't continue with that.";

/**
 * What a flagged candidate becomes: "stop" keeps what was written before the flag,
 * "refuse" replaces it with a refusal, a function returns the text to use.
 */
export type MonitorAction = "stop" | "refuse" | ((candidate: GenerationCandidate, index: number) => string | Promise<string>);

/** generate()'s options but `chat` and `monitor`: the monitor renders the prompt as it was trained to read it. */
export interface MonitorGenerateOptions extends Omit<GenerateOptions, "chat" | "monitor"> {
  action?: MonitorAction;
  /** The refusal of action "refuse". */
  refusal?: string;
}

export class Monitor implements StreamMonitorSpec {
  readonly w: Float32Array;
  readonly b: number;

  private constructor(
    /** The token probe (one layer; logreg or lpm). */
    readonly probe: Probe,
    readonly rule: Required<StreamRule>,
    readonly threshold: number,
    readonly training: Record<string, unknown>,
  ) {
    const lin = probe.linearRule();
    if (!lin) throw new TypeError(`a monitor needs a one-layer logreg or lpm probe, got ${probe.method} on ${probe.layers.length} layer(s)`);
    this.w = lin.w;
    this.b = lin.b;
  }

  /** A monitor from a token-level probe, a rule and a threshold on the rule's aggregate. */
  static fromProbe(probe: Probe, options: { rule?: StreamRule; threshold: number; training?: Record<string, unknown> }): Monitor {
    const rule = ruleDefaults(options.rule ?? DEFAULT_STREAM_RULE);
    checkRule(rule, (m) => {
      throw new RangeError(m);
    });
    if (typeof options.threshold !== "number" || !(options.threshold >= 0 && options.threshold <= 1)) {
      throw new RangeError(`threshold must be between 0 and 1, got ${String(options.threshold)}`);
    }
    return new Monitor(probe, rule, options.threshold, options.training ?? {});
  }

  get layer(): LayerSpec {
    return this.probe.layers[0];
  }

  get method(): string {
    return this.probe.method;
  }

  get input(): InputFormat {
    return this.probe.input;
  }

  get modelInfo(): ModelIdentity {
    return this.probe.modelInfo;
  }

  /** The `chat` option that renders instructions as the monitor was trained. */
  chatOption(): boolean | ChatOptions {
    return this.probe.chatOption();
  }

  /** Token scores of rows [from, to) of a hidden-state matrix at the monitor's layer. */
  scoreTokens(rows: Float32Array, from = 0, to = rows.length / this.modelInfo.nEmbd): Float64Array {
    return scoreRows(this.w, this.b, rows, this.modelInfo.nEmbd, from, to);
  }

  /** The rule over one response's token scores (what generation would have decided). */
  replay(scores: ArrayLike<number>): Replay {
    return replay(scores, this.rule, this.threshold);
  }

  checkModel(model: Pick<Model, "info">, file: string | null = null): void {
    checkModelIdentity("monitor", this.modelInfo, model.info, file);
  }

  /**
   * Generates with the monitor reading every token; a flagged candidate gets the action
   * (default "stop"). The prompt is rendered as the monitor's probe was trained.
   */
  async generate(model: Model, prompt: CaptureInput, options: MonitorGenerateOptions = {}): Promise<GenerateResult> {
    this.checkModel(model);
    const { action, refusal, ...gen } = options as MonitorGenerateOptions & { chat?: unknown; monitor?: unknown };
    if (gen.chat !== undefined) {
      throw new TypeError("chat cannot be set here: the monitor renders prompts with the input format it was trained with (monitor.input)");
    }
    if (gen.monitor !== undefined) throw new TypeError("monitor cannot be set here: this monitor reads the tokens");
    const out = await model.generate(prompt, { ...gen, chat: this.chatOption(), monitor: this });
    return applyAction(model, out, action ?? "stop", refusal ?? DEFAULT_MONITOR_REFUSAL);
  }

  toJSON(): Record<string, unknown> {
    return {
      format: MONITOR_FORMAT,
      version: MONITOR_VERSION,
      model: this.modelInfo,
      rule: this.rule,
      threshold: this.threshold,
      probe: this.probe.toJSON(),
      training: this.training,
    };
  }

  async save(file: string): Promise<void> {
    await writeJsonFile(file, this.toJSON());
  }

  static async load(file: string, model?: Pick<Model, "info">): Promise<Monitor> {
    const m = Monitor.fromJSON(await readJsonFile(file, "monitor"), file);
    if (model) m.checkModel(model, file);
    return m;
  }

  /** Validates a parsed monitor file (every field; the probe inside as a probe file). */
  static fromJSON(json: unknown, file: string | null = null): Monitor {
    const { json: o, model, training, bad } = readEnvelope(json, file, "monitor", MONITOR_FORMAT, MONITOR_VERSION);
    const r = o.rule as Record<string, unknown>;
    if (!r || typeof r !== "object" || Array.isArray(r)) bad("rule missing");
    const rule = { kind: r.kind, alpha: r.alpha, window: r.window, minTokens: r.minTokens } as Required<StreamRule>;
    checkRule(rule, (m) => bad(`rule: ${m}`));
    const threshold = o.threshold;
    if (typeof threshold !== "number" || !(threshold >= 0 && threshold <= 1)) bad("threshold must be a number between 0 and 1");
    let probe: Probe;
    try {
      probe = Probe.fromJSON(o.probe, null);
    } catch (e) {
      if (e instanceof ModelFileError) bad(`probe: ${e.message}`);
      throw e;
    }
    if (probe!.modelInfo.fingerprint !== model.fingerprint || probe!.modelInfo.nEmbd !== model.nEmbd) bad("the probe inside was trained on another model than the monitor names");
    if (probe!.layers.length !== 1 || !probe!.linearRule()) bad(`a monitor's probe must be a one-layer logreg or lpm, got ${probe!.method} on ${probe!.layers.length} layer(s)`);
    return new Monitor(probe!, rule, threshold as number, training);
  }
}

function checkRule(rule: Required<StreamRule>, bad: (m: string) => never): void {
  if (rule.kind !== "ema" && rule.kind !== "mean") bad(`kind must be "ema" or "mean", got ${JSON.stringify(rule.kind)}`);
  if (!(typeof rule.alpha === "number" && rule.alpha > 0 && rule.alpha <= 1)) bad(`alpha must be in (0, 1], got ${String(rule.alpha)}`);
  if (!(Number.isInteger(rule.window) && rule.window >= 1 && rule.window <= 1 << 16)) bad(`window must be a positive integer, got ${String(rule.window)}`);
  if (!(Number.isInteger(rule.minTokens) && rule.minTokens >= 1 && rule.minTokens <= 1 << 20)) bad(`minTokens must be a positive integer, got ${String(rule.minTokens)}`);
}

/** Gives flagged candidates the configured action's text. */
export async function applyAction(model: Model, out: GenerateResult, action: MonitorAction, refusal: string): Promise<GenerateResult> {
  if (action === "stop") return out;
  const candidates = await Promise.all(
    out.candidates.map(async (c, i) => {
      if (c.finishReason !== "flagged") return c;
      const text = action === "refuse" ? refusal : await action(c, i);
      if (typeof text !== "string") throw new TypeError("a monitor action callback must return a string");
      return { ...c, text, tokens: model.tokenizeText(text) };
    }),
  );
  return { ...out, candidates };
}
