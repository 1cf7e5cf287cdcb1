/**
 * Sequences that outlive one generation: the mechanics under chat sessions.
 *
 * Chats run on their own llama.cpp context (the model's capture context clears its KV
 * cache for every batch). Each chat holds one sequence of that context; a turn renders
 * the whole conversation, keeps the cells of the longest prefix the sequence already
 * holds (a template that rewrites earlier turns simply gives a shorter prefix, down to
 * a full prefill), prefills the rest, and decodes candidates in temporary sequences
 * that share the prompt's cells. The chosen candidate's cells are then moved into the
 * chat's sequence, so the next turn starts from there.
 *
 * The cells of all chats share the context's capacity (`contextSize` tokens); a turn
 * that would not fit is refused before anything changes (ModelStateError CONTEXT_FULL),
 * so a caller can drop old turns and try again.
 */
import { ModelStateError } from "../errors";
import { type GenerationJob, type GenerationRun, runGeneration } from "./generate";
import type { NativeContext } from "./native";

/** What a SessionHost needs from its model. */
export interface SessionHostModel {
  readonly contextSize: number;
  readonly sequences: number;
  /** The chat context (created on first use). */
  context(): Promise<NativeContext>;
  /** Runs one native job as the model's only job (typed errors, the caller's stack). */
  exclusive<T>(callSite: Error, job: Promise<T>): Promise<T>;
}

/** The chat sequences of one model: which ids are free, and how many cells each holds. */
export class SessionHost {
  private readonly free: number[];
  private readonly held = new Map<number, number>();

  constructor(readonly model: SessionHostModel) {
    this.free = Array.from({ length: model.sequences }, (_, i) => model.sequences - 1 - i);
  }

  /** Cells held by every open session. */
  get used(): number {
    let n = 0;
    for (const v of this.held.values()) n += v;
    return n;
  }

  get capacity(): number {
    return this.model.contextSize;
  }

  get open(): number {
    return this.held.size;
  }

  /** Opens a session (one sequence); ModelStateError CONTEXT_FULL when every sequence is taken. */
  openSession(): Session {
    const seq = this.take();
    this.held.set(seq, 0);
    return new Session(this, seq);
  }

  /** @internal */
  take(): number {
    const seq = this.free.pop();
    if (seq === undefined) {
      throw new ModelStateError(
        "CONTEXT_FULL",
        `all ${this.model.sequences} sequences of the chat context are in use (open chats and their candidates); dispose a chat or load the model with more sequences`,
      );
    }
    return seq;
  }

  /** @internal */
  give(seq: number): void {
    this.free.push(seq);
  }

  /** @internal */
  setHeld(seq: number, cells: number): void {
    this.held.set(seq, cells);
  }

  /** @internal */
  release(seq: number): void {
    this.held.delete(seq);
    this.give(seq);
  }
}

/** A turn of a session: the conversation's tokens and how to generate from them. */
export interface SessionTurn {
  job: Omit<GenerationJob, "ctx" | "placement">;
  /** Which candidate's cells to keep, once the result is known (default 0). */
  choose?: (run: GenerationRun) => number;
}

export interface SessionTurnResult extends GenerationRun {
  /** Tokens whose cells were reused from earlier turns. */
  reusedTokens: number;
  /** Tokens prefilled this turn. */
  prefilledTokens: number;
  /** The candidate whose cells the session kept. */
  kept: number;
}

/** One chat's sequence: the tokens its cells hold, and turns that reuse them. */
export class Session {
  private cached = new Int32Array(0);
  private closed = false;

  constructor(
    private readonly host: SessionHost,
    readonly seq: number,
  ) {}

  /** Tokens whose cells the sequence holds (positions 0..n-1). */
  get tokens(): Int32Array {
    return this.cached;
  }

  get disposed(): boolean {
    return this.closed;
  }

  /** Length of the common prefix of what the sequence holds and these tokens. */
  commonPrefix(tokens: Int32Array): number {
    const n = Math.min(tokens.length, this.cached.length);
    let p = 0;
    while (p < n && tokens[p] === this.cached[p]) p++;
    return p;
  }

  /**
   * Cells this turn would hold at most, counting every other session's: the prompt, and
   * n candidates of maxTokens each.
   */
  cellsNeeded(promptTokens: number, n: number, maxTokens: number): number {
    return this.host.used - this.cached.length + promptTokens + n * maxTokens;
  }

  /** Whether a turn of this size fits the chat context now. */
  fits(promptTokens: number, n: number, maxTokens: number): boolean {
    return this.cellsNeeded(promptTokens, n, maxTokens) <= this.host.capacity;
  }

  /**
   * Runs one turn: reuses the cached prefix, prefills the rest, generates, keeps the
   * chosen candidate's cells. On failure the sequence is emptied (the next turn prefills
   * in full); nothing else changes.
   */
  async turn(callSite: Error, t: SessionTurn): Promise<SessionTurnResult> {
    if (this.closed) throw new ModelStateError("MODEL_DISPOSED", "this chat is disposed");
    const { job } = t;
    const n = job.o.n;
    if (!this.fits(job.tokens.length, n, job.o.maxTokens)) {
      throw new ModelStateError(
        "CONTEXT_FULL",
        `the chat context is full: this turn needs up to ${job.tokens.length} + ${n} x ${job.o.maxTokens} cells, other chats hold ` +
          `${this.host.used - this.cached.length}, and the context holds ${this.host.capacity}`,
      );
    }
    // at least the last token is decoded again: its logits start the generation
    const reused = Math.min(this.commonPrefix(job.tokens), job.tokens.length - 1);
    const temps: number[] = [];
    try {
      for (let c = 1; c < n; c++) temps.push(this.host.take());
    } catch (e) {
      for (const s of temps) this.host.give(s);
      throw e;
    }
    const seqs = Int32Array.from([this.seq, ...temps]);
    const ctx = await this.host.model.context();
    let run: GenerationRun;
    try {
      run = await this.host.model.exclusive(callSite, runGeneration({ ...job, ctx, placement: { seq: this.seq, pos0: reused, seqs } }));
    } catch (e) {
      this.reset(ctx, temps);
      throw e;
    }
    let kept = 0;
    if (run.native) {
      kept = t.choose ? t.choose(run) : 0;
      const cand = run.native.candidates[kept];
      if (kept !== 0) {
        // the chosen candidate's own cells join the chat's sequence; its prompt cells are shared already
        ctx.seqRemove(this.seq, job.tokens.length, -1);
        ctx.seqCopy(seqs[kept], this.seq, job.tokens.length, -1);
      }
      const next = new Int32Array(job.tokens.length + cand.cached.length);
      next.set(job.tokens);
      next.set(cand.cached, job.tokens.length);
      this.cached = next;
    } else {
      this.cached = run.prefilled ? job.tokens.slice() : job.tokens.slice(0, reused);
    }
    for (const s of temps) {
      ctx.seqRemove(s, -1, -1);
      this.host.give(s);
    }
    this.host.setHeld(this.seq, this.cached.length);
    return { ...run, reusedTokens: reused, prefilledTokens: job.tokens.length - reused, kept };
  }

  /** Forgets the cached cells (the next turn prefills in full). */
  async forget(): Promise<void> {
    if (this.closed) return;
    const ctx = await this.host.model.context();
    this.reset(ctx, []);
  }

  private reset(ctx: NativeContext, temps: number[]): void {
    try {
      ctx.seqRemove(this.seq, -1, -1);
      for (const s of temps) ctx.seqRemove(s, -1, -1);
    } catch {
      // the context is busy or gone: its cells go with it
    }
    for (const s of temps) this.host.give(s);
    this.cached = new Int32Array(0);
    this.host.setHeld(this.seq, 0);
  }

  /** Frees the sequence (idempotent). */
  async dispose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      const ctx = await this.host.model.context();
      ctx.seqRemove(this.seq, -1, -1);
    } catch {
      // the model is disposed: its context went with it
    }
    this.host.release(this.seq);
  }
}
