/**
 * The two-step guard (arXiv 2502.16174): a probe scores the prompt from the
 * hidden state of the generation's own prefill (no extra forward pass); a
 * flagged prompt goes to a safe path, anything else is generated untouched.
 *
 *   const guard = await Guard.load(model, "probe.json");
 *   await guard.check(prompt);           // { unsafe, score, layers }
 *   await guard.generate(prompt, opts);  // flagged -> safe path, else normal generation
 */
import type { Activations, CaptureInput, LayerSpec } from "./core/activations";
import type { ChatMessage } from "./core/chat";
import type { GenerateOptions, GenerateResult } from "./core/generate";
import type { Model } from "./core/model";
import { flagged } from "./probe/metrics";
import { Probe } from "./probe/probe";

export const DEFAULT_REFUSAL = "I can't help with that request.";
export const DEFAULT_SAFETY_SYSTEM_PROMPT =
  "You are a helpful and harmless assistant. Refuse requests that could cause harm, and explain briefly why you cannot help.";

export interface GuardVerdict {
  unsafe: boolean;
  /** P(unsafe) from the probe; NaN when the probe or the hidden state is damaged */
  score: number;
  /** True when the score was NaN and the prompt was flagged for that reason (fail closed). */
  failedClosed: boolean;
  threshold: number;
  layers: LayerSpec[];
}

export type SafePath =
  | "refuse"
  | "regenerate"
  | ((prompt: CaptureInput, verdict: GuardVerdict) => string | GenerateResult | Promise<string | GenerateResult>);

export interface GuardOptions {
  /** What a flagged prompt gets. Default "refuse". */
  safePath?: SafePath;
  /** The text of the refusal ("refuse"). */
  refusal?: string;
  /** The system prompt of the second generation ("regenerate"). */
  safetySystemPrompt?: string;
  /** Override the probe's threshold. */
  threshold?: number;
}

export interface GuardedResult extends GenerateResult {
  /** path "aborted": the signal fired before the prompt was checked (nothing was generated). */
  guard: GuardVerdict & { path: "normal" | "refused" | "regenerated" | "callback" | "aborted" };
}

export class Guard {
  readonly threshold: number;
  /** What a flagged prompt gets. */
  readonly safePath: SafePath;
  /** The refusal of safe path "refuse". */
  readonly refusal: string;
  /** The system prompt of safe path "regenerate". */
  readonly safetySystemPrompt: string;

  constructor(
    readonly model: Model,
    readonly probe: Probe,
    options: GuardOptions = {},
  ) {
    probe.checkModel(model);
    if (options.threshold !== undefined && !(typeof options.threshold === "number" && options.threshold >= 0 && options.threshold <= 1)) {
      throw new RangeError(`threshold must be between 0 and 1, got ${options.threshold}`);
    }
    const sp = options.safePath ?? "refuse";
    if (!(sp === "refuse" || sp === "regenerate" || typeof sp === "function")) throw new TypeError('safePath must be "refuse", "regenerate" or a function');
    this.safePath = sp;
    this.threshold = options.threshold ?? probe.threshold;
    this.refusal = options.refusal ?? DEFAULT_REFUSAL;
    this.safetySystemPrompt = options.safetySystemPrompt ?? DEFAULT_SAFETY_SYSTEM_PROMPT;
  }

  /** Loads a probe file (checked against the model) and makes a guard. */
  static async load(model: Model, probeFile: string, options: GuardOptions = {}): Promise<Guard> {
    return new Guard(model, await Probe.load(probeFile, model), options);
  }

  /** The verdict on a prompt's hidden state (an Activations holding the probe's layers, e.g. from a prefill). */
  verdictOf(hidden: Activations): GuardVerdict {
    return this.verdict(this.probe.scoreVectors(this.probe.layers.map((l) => hidden.get(l, 0))));
  }

  private verdict(score: number): GuardVerdict {
    return { unsafe: flagged(score, this.threshold), score, failedClosed: Number.isNaN(score), threshold: this.threshold, layers: [...this.probe.layers] };
  }

  /** Scores one prompt (one capture of the probe's layers, early exit after the deepest). */
  async check(prompt: CaptureInput, options: { signal?: AbortSignal } = {}): Promise<GuardVerdict> {
    const [score] = await this.probe.score(this.model, [prompt], options);
    return this.verdict(score);
  }

  /** Scores many prompts in batches. */
  async checkMany(prompts: readonly CaptureInput[], options: { signal?: AbortSignal } = {}): Promise<GuardVerdict[]> {
    const scores = await this.probe.score(this.model, prompts, options);
    return Array.from(scores, (s) => this.verdict(s));
  }

  /**
   * Two-step generation. The prompt is rendered as the probe was trained
   * (chat template, assistant prefix, system prompt); its hidden state comes
   * from the generation's own prefill; a flagged prompt never gets a token
   * sampled and goes to the safe path.
   */
  async generate(prompt: CaptureInput, options: GenerateOptions = {}): Promise<GuardedResult> {
    const probeLayers = [...this.probe.layers];
    const userLayers = options.capture?.layers ?? [];
    const layers = [...probeLayers, ...userLayers.filter((l) => !probeLayers.includes(l))];
    let verdict: GuardVerdict | null = null;
    const userHook = options.onPromptHidden;
    const result = await this.model.generate(prompt, {
      ...options,
      chat: this.probe.chatOption(),
      capture: { layers, prompt: true, response: options.capture ? (options.capture.response ?? "last") : false },
      onPromptHidden: async (hidden) => {
        verdict = this.verdict(this.probe.scoreVectors(probeLayers.map((l) => hidden.layer(l))));
        if (verdict.unsafe) return { stop: true };
        return userHook ? userHook(hidden) : undefined;
      },
    });
    const v = verdict as GuardVerdict | null;
    if (!v) {
      // aborted during the prefill, before the prompt could be checked: nothing was generated,
      // and an unchecked prompt counts as flagged (fail closed)
      const unchecked: GuardVerdict = { unsafe: true, score: NaN, failedClosed: true, threshold: this.threshold, layers: probeLayers };
      return { ...result, guard: { ...unchecked, path: "aborted" } };
    }
    if (!v.unsafe) return { ...result, guard: { ...v, path: "normal" } };
    // safe path
    if (this.safePath === "refuse") {
      return {
        ...result,
        candidates: result.candidates.map((c) => ({ ...c, text: this.refusal, tokens: this.model.tokenizeText(this.refusal) })),
        guard: { ...v, path: "refused" },
      };
    }
    if (this.safePath === "regenerate") {
      const messages: ChatMessage[] = typeof prompt === "string" ? [{ role: "user", content: prompt }] : prompt.filter((m) => m.role !== "system");
      const second = await this.model.generate([{ role: "system", content: this.safetySystemPrompt }, ...messages], { ...options, onPromptHidden: undefined });
      return { ...second, guard: { ...v, path: "regenerated" } };
    }
    const out = await this.safePath(prompt, v);
    if (typeof out === "string") {
      return {
        ...result,
        candidates: result.candidates.map((c) => ({ ...c, text: out, tokens: this.model.tokenizeText(out) })),
        guard: { ...v, path: "callback" },
      };
    }
    return { ...out, guard: { ...v, path: "callback" } };
  }
}
