/**
 * Guarded chat sessions: multi-turn conversations that keep their KV cache between
 * turns (each turn prefills only what changed), with the guard checking every turn
 * from its own prefill, a streaming monitor reading every generated token, and
 * best-of-n with the ranker, all from the generating model's own forward passes.
 *
 *   const chat = createChat(model, { systemPrompt, guard, monitor, ranker, contextPolicy: "drop-oldest" });
 *   const turn = await chat.send("How do I pick a lock?", { maxTokens: 256, signal, onToken });
 *   turn.text; turn.guard; turn.monitor; turn.finishReason;
 *   const saved = chat.history;            // plain JSON
 *   const again = Chat.restore(model, saved, { guard, monitor });
 */
import type { Activations, LayerSpec } from "../core/activations";
import type { ChatMessage } from "../core/chat";
import { checkTemplateDate, DEFAULT_TEMPLATE_DATE } from "../core/template";
import { parseIsoDate } from "../core/template-python";
import type { FinishReason, GenerateCaptureOptions, GenerateOptions, GenerationCandidate, MonitorReport, TokenEvent } from "../core/generate";
import { kInternal, type Model } from "../core/model";
import type { Session, SessionTurnResult } from "../core/session";
import { AbortError, ModelStateError } from "../errors";
import type { Guard, GuardVerdict } from "../guard";
import { applyAction, DEFAULT_MONITOR_REFUSAL, type Monitor, type MonitorAction } from "../monitor/monitor";
import type { RankResult, Ranker } from "../srr/ranker";

export const CHAT_FORMAT = "safety-lens/chat";
export const CHAT_VERSION = 1;

/** A conversation as plain JSON, for apps that persist it. */
export interface ChatHistory {
  format: typeof CHAT_FORMAT;
  version: typeof CHAT_VERSION;
  systemPrompt: string | null;
  /** user, assistant, user, assistant, ... */
  messages: ChatMessage[];
  /** Turns before this index are no longer shown to the model (dropped for room). */
  windowStart: number;
  /** The date the chat template read (histories saved before it was recorded: none; the restored chat then chooses as a new one does). */
  date?: string;
}

export type ContextPolicy = "drop-oldest" | "error";

export interface ChatSessionOptions {
  systemPrompt?: string;
  /**
   * The date the chat template reads ("YYYY-MM-DD"). Default: the date the guard, monitor
   * and ranker were trained with (they must agree), else DEFAULT_TEMPLATE_DATE. A date that
   * differs from theirs is a RangeError: their features would come from another rendering.
   */
  date?: string;
  /** Checks every turn's prompt from its own prefill; a flagged turn takes the guard's safe path. */
  guard?: Guard;
  /** Reads every generated token; a flagged response gets `monitorAction`. */
  monitor?: Monitor;
  /** What a flagged response becomes (default "refuse"). */
  monitorAction?: MonitorAction;
  /** The refusal of monitorAction "refuse". */
  monitorRefusal?: string;
  /** Best-of-n: the ranker picks the safest of n candidates (n defaults to 4 with a ranker). */
  ranker?: Ranker;
  /**
   * When a turn does not fit the context: "drop-oldest" (default) keeps the system prompt and
   * drops whole oldest turns from what the model sees, "error" refuses the turn before anything
   * changes (ModelStateError CONTEXT_FULL).
   */
  contextPolicy?: ContextPolicy;
  /** Called when turns are dropped for room. */
  onContextDrop?: (event: { droppedTurns: number; turnsInView: number }) => void;
  /** Generation defaults for every turn (maxTokens, temperature, ...). */
  defaults?: ChatSendOptions;
}

export type ChatSendOptions = Omit<GenerateOptions, "chat" | "capture" | "monitor" | "onPromptHidden" | "onToken"> & {
  onToken?: (event: TokenEvent) => void;
  /** Hidden states to capture besides what the guard and ranker read (prompt and response, as generate's). */
  capture?: GenerateCaptureOptions;
};

export interface ChatTurn {
  user: string;
  /** What the assistant said (recorded in the history). */
  text: string;
  finishReason: FinishReason;
  /** The guard's verdict on this turn and its path. */
  guard: (GuardVerdict & { path: "normal" | "refused" | "regenerated" | "callback" | "aborted" }) | null;
  /** The monitor's report on the kept candidate. */
  monitor: MonitorReport | null;
  /** Best-of-n: the ranking of the candidates. */
  ranking: RankResult | null;
  /** Every candidate of the turn. */
  candidates: GenerationCandidate[];
  /** Which candidate was kept. */
  chosen: number;
  /** Tokens prefilled this turn, and tokens reused from the KV cache of earlier turns. */
  prefilledTokens: number;
  reusedTokens: number;
  /** From send() to the first streamed token (or to the end when none was streamed). */
  timeToFirstTokenMs: number;
  totalMs: number;
  /** Oldest turns dropped from the model's view to make room this turn. */
  droppedTurns: number;
}

/** Opens a chat session on a model (see {@link Chat}). */
export function createChat(model: Model, options: ChatSessionOptions = {}): Chat {
  return new Chat(model, options);
}

/** A chat session: a conversation, the KV cache that holds it, and its checks. */
export class Chat {
  private readonly session: Session;
  private readonly messages: ChatMessage[] = [];
  private windowStart = 0;
  private readonly options: ChatSessionOptions;
  readonly systemPrompt: string | null;
  /** The date the chat template reads. */
  readonly date: string;

  constructor(
    readonly model: Model,
    options: ChatSessionOptions = {},
  ) {
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    if (options.systemPrompt !== undefined && typeof options.systemPrompt !== "string") throw new TypeError("systemPrompt must be a string");
    const policy = options.contextPolicy ?? "drop-oldest";
    if (policy !== "drop-oldest" && policy !== "error") throw new TypeError(`contextPolicy must be "drop-oldest" or "error", got ${JSON.stringify(policy)}`);
    options.guard?.probe.checkModel(model);
    options.monitor?.checkModel(model);
    options.ranker?.checkModel(model);
    this.date = chatDate(options);
    this.options = { ...options, contextPolicy: policy };
    this.systemPrompt = options.systemPrompt ?? null;
    this.session = model[kInternal].sessions().openSession();
  }

  /** A chat that continues a saved history (the next turn prefills it in full once). */
  static restore(model: Model, history: ChatHistory, options: Omit<ChatSessionOptions, "systemPrompt"> = {}): Chat {
    const h = checkHistory(history);
    const chat = new Chat(model, {
      ...(h.date !== undefined ? { date: h.date } : {}),
      ...options,
      ...(h.systemPrompt !== null ? { systemPrompt: h.systemPrompt } : {}),
    });
    chat.messages.push(...h.messages.map((m) => ({ ...m })));
    chat.windowStart = h.windowStart;
    return chat;
  }

  /** The conversation as plain JSON (a copy). */
  get history(): ChatHistory {
    return {
      format: CHAT_FORMAT,
      version: CHAT_VERSION,
      systemPrompt: this.systemPrompt,
      messages: this.messages.map((m) => ({ role: m.role, content: m.content })),
      windowStart: this.windowStart,
      date: this.date,
    };
  }

  /** Tokens of this chat held in the model's chat context. */
  get cachedTokens(): number {
    return this.session.tokens.length;
  }

  get isDisposed(): boolean {
    return this.session.disposed;
  }

  /** What the model sees for a turn: the system prompt, the turns in view, the new user message. */
  private view(user: string, windowStart: number, systemPrompt: string | null): ChatMessage[] {
    const out: ChatMessage[] = [];
    if (systemPrompt !== null) out.push({ role: "system", content: systemPrompt });
    out.push(...this.messages.slice(windowStart * 2));
    out.push({ role: "user", content: user });
    return out;
  }

  /**
   * One turn: renders the conversation, reuses the KV cache of its unchanged prefix,
   * checks the prompt with the guard, generates (n candidates with the ranker), with the
   * monitor reading each token. The turn is recorded in the history with what the
   * assistant said (a refusal when the guard or monitor stepped in). A turn that fails or
   * is aborted before any text leaves the history as it was.
   */
  async send(content: string, options: ChatSendOptions = {}): Promise<ChatTurn> {
    const callSite = new Error();
    if (this.session.disposed) throw new ModelStateError("MODEL_DISPOSED", "this chat is disposed");
    if (typeof content !== "string" || content.trim() === "") throw new TypeError("content must be a non-empty string");
    if (this.model.isDisposed) throw new ModelStateError("MODEL_DISPOSED", "the model is disposed");
    if (options.signal?.aborted) throw new AbortError();
    const t0 = performance.now();
    let firstTokenAt = 0;
    const o: ChatSendOptions = { ...this.options.defaults, ...options };
    const { guard, monitor, ranker } = this.options;
    const n = o.n ?? (ranker ? 4 : 1);
    const userCapture = o.capture;
    const promptLayers: LayerSpec[] = [...(guard ? guard.probe.layers : []), ...(ranker ? [ranker.layer] : []), ...(userCapture?.layers ?? [])].filter(
      (l, i, a) => a.indexOf(l) === i,
    );
    const response = ranker ? ("last" as const) : (userCapture?.response ?? (userCapture ? ("last" as const) : false));
    let verdict: GuardVerdict | null = null;
    const userOnToken = o.onToken;
    const gen: GenerateOptions = {
      ...o,
      chat: { date: this.date },
      n,
      ...(promptLayers.length ? { capture: { layers: promptLayers, prompt: true, response } } : {}),
      ...(monitor ? { monitor } : {}),
      onToken: (e) => {
        if (!firstTokenAt) firstTokenAt = performance.now();
        userOnToken?.(e);
      },
      ...(guard
        ? {
            onPromptHidden: (hidden: Activations) => {
              verdict = guard.verdictOf(hidden);
              return verdict.unsafe ? { stop: true } : undefined;
            },
          }
        : {}),
    };

    // fit the context: drop whole oldest turns (or refuse) before anything changes
    const internals = this.model[kInternal];
    let windowStart = this.windowStart;
    let job = internals.generationJob(this.view(content, windowStart, this.systemPrompt), gen);
    const turnsHeld = this.messages.length / 2;
    while (!this.session.fits(job.tokens.length, job.o.n, job.o.maxTokens)) {
      if (this.options.contextPolicy === "error" || windowStart >= turnsHeld) {
        throw new ModelStateError(
          "CONTEXT_FULL",
          `this turn does not fit the chat context (${job.tokens.length} prompt tokens + ${job.o.n} x ${job.o.maxTokens}, ` +
            `${this.model.info.contextSize} cells in all, shared by every open chat)` +
            (this.options.contextPolicy === "error" ? "; contextPolicy is \"error\"" : ": even with every earlier turn dropped"),
        );
      }
      windowStart++;
      job = internals.generationJob(this.view(content, windowStart, this.systemPrompt), gen);
    }
    const dropped = windowStart - this.windowStart;
    if (dropped > 0) this.options.onContextDrop?.({ droppedTurns: dropped, turnsInView: turnsHeld - windowStart });

    const choose = ranker ? (run: { result: { candidates: GenerationCandidate[] } }) => ranker.rankCandidates(run.result.candidates).best : pickUnflagged;
    let run: SessionTurnResult = await this.session.turn(callSite, { job, choose });
    let ranking = ranker && run.native ? ranker.rankCandidates(run.result.candidates) : null;
    let chosen = run.kept;
    let cand = run.result.candidates[chosen];
    let text = cand.text;
    let finishReason: FinishReason = cand.finishReason;
    let guardInfo: ChatTurn["guard"] = null;
    const v = verdict as GuardVerdict | null;
    if (guard) {
      if (!v) {
        guardInfo = { unsafe: true, score: NaN, failedClosed: true, threshold: guard.threshold, layers: [...guard.probe.layers], path: "aborted" };
      } else if (!v.unsafe) {
        guardInfo = { ...v, path: "normal" };
      } else if (guard.safePath === "refuse") {
        guardInfo = { ...v, path: "refused" };
        text = guard.refusal;
      } else if (guard.safePath === "regenerate") {
        // the same turn again under the guard's safety system prompt (a full prefill: the prefix changed)
        const safeJob = internals.generationJob(this.view(content, windowStart, guard.safetySystemPrompt), { ...gen, onPromptHidden: undefined });
        run = await this.session.turn(callSite, { job: safeJob, choose });
        ranking = ranker && run.native ? ranker.rankCandidates(run.result.candidates) : null;
        chosen = run.kept;
        cand = run.result.candidates[chosen];
        text = cand.text;
        finishReason = cand.finishReason;
        guardInfo = { ...v, path: "regenerated" };
      } else {
        const r = await guard.safePath(this.view(content, windowStart, this.systemPrompt), v);
        text = typeof r === "string" ? r : r.candidates[0]?.text ?? "";
        guardInfo = { ...v, path: "callback" };
      }
    }
    if (finishReason === "flagged") {
      const refusal = this.options.monitorRefusal ?? DEFAULT_MONITOR_REFUSAL;
      const acted = await applyAction(this.model, { ...run.result, candidates: [cand] }, this.options.monitorAction ?? "refuse", refusal);
      text = acted.candidates[0].text;
    }
    const totalMs = performance.now() - t0;
    const turn: ChatTurn = {
      user: content,
      text,
      finishReason,
      guard: guardInfo,
      monitor: cand.monitor ?? null,
      ranking,
      candidates: run.result.candidates,
      chosen,
      prefilledTokens: run.prefilledTokens,
      reusedTokens: run.reusedTokens,
      timeToFirstTokenMs: firstTokenAt ? Math.min(firstTokenAt - t0, totalMs) : totalMs,
      totalMs,
      droppedTurns: dropped,
    };
    // record the turn: an abort before any text leaves the history as it was
    if (!(finishReason === "aborted" && text === "")) {
      this.messages.push({ role: "user", content }, { role: "assistant", content: text });
      this.windowStart = windowStart;
    }
    return turn;
  }

  /** Frees the chat's sequence in the model's chat context (idempotent). */
  async dispose(): Promise<void> {
    await this.session.dispose();
  }

  async [Symbol.asyncDispose ?? Symbol.for("nodejs.asyncDispose")](): Promise<void> {
    await this.dispose();
  }
}

/**
 * The date a chat renders with: the `date` option, else the one its guard, monitor and
 * ranker read prompts with (only those trained on chat-rendered input read a date).
 */
function chatDate(o: ChatSessionOptions): string {
  const trained: [string, string][] = [];
  if (o.guard?.probe.input.chat) trained.push(["guard", o.guard.probe.input.date]);
  if (o.monitor?.input.chat) trained.push(["monitor", o.monitor.input.date]);
  if (o.ranker?.input.chat) trained.push(["ranker", o.ranker.input.date]);
  const list = () => trained.map(([who, d]) => `${who} ${d}`).join(", ");
  if (o.date !== undefined) {
    const date = checkTemplateDate(o.date);
    const other = trained.find(([, d]) => d !== date);
    if (other) throw new RangeError(`date ${date} differs from the date the ${other[0]} was trained with (${list()}): its features would come from another rendering`);
    return date;
  }
  if (new Set(trained.map(([, d]) => d)).size > 1) {
    throw new RangeError(`the guard, monitor and ranker were trained with different template dates (${list()}); retrain one so they agree`);
  }
  return trained[0]?.[1] ?? DEFAULT_TEMPLATE_DATE;
}

/** Without a ranker: the first candidate that was not flagged, else candidate 0. */
function pickUnflagged(run: { result: { candidates: GenerationCandidate[] } }): number {
  const i = run.result.candidates.findIndex((c) => c.finishReason !== "flagged");
  return i < 0 ? 0 : i;
}

/** Validates a saved history (it is data: every field is checked). */
function checkHistory(h: unknown): ChatHistory {
  const bad = (m: string): never => {
    throw new TypeError(`not a chat history: ${m}`);
  };
  if (h === null || typeof h !== "object" || Array.isArray(h)) bad("expected an object");
  const o = h as Record<string, unknown>;
  if (o.format !== CHAT_FORMAT) bad(`format must be "${CHAT_FORMAT}", got ${JSON.stringify(o.format)}`);
  if (o.version !== CHAT_VERSION) bad(`unsupported version ${JSON.stringify(o.version)} (this safety-lens reads version ${CHAT_VERSION})`);
  if (!(o.systemPrompt === null || typeof o.systemPrompt === "string")) bad("systemPrompt must be a string or null");
  const msgs = o.messages;
  if (!Array.isArray(msgs) || msgs.length % 2 !== 0) bad("messages must be user/assistant pairs");
  (msgs as unknown[]).forEach((m, i) => {
    const r = m as Record<string, unknown>;
    const role = i % 2 === 0 ? "user" : "assistant";
    if (!r || typeof r !== "object" || r.role !== role || typeof r.content !== "string") bad(`messages[${i}] must be { role: "${role}", content: string }`);
  });
  const ws = o.windowStart;
  if (!Number.isInteger(ws) || (ws as number) < 0 || (ws as number) > (msgs as unknown[]).length / 2) bad("windowStart must be a turn index");
  if (o.date !== undefined && (typeof o.date !== "string" || parseIsoDate(o.date) === null)) bad('date must be a "YYYY-MM-DD" string');
  return o as unknown as ChatHistory;
}
