/**
 * Chat rendering: messages rendered with the model's own chat template, as
 * transformers' apply_chat_template renders them (./template.ts), and the one set of
 * rendering options every part of safety-lens uses (capture's `chat` option, and the
 * input format that probe, ranker and monitor files record).
 */
import { checkTemplateDate, DEFAULT_TEMPLATE_DATE, renderChatTemplate, type ChatMessage } from "./template";

export type { ChatMessage } from "./template";

/** How a string input is rendered as a chat (the `chat` option's object form). */
export interface ChatOptions {
  /** Append the assistant turn's opening (add_generation_prompt), as the safety papers read prompts. Default true. */
  addAssistantPrefix?: boolean;
  /** A system message put before each conversation that has none. */
  systemPrompt?: string;
  /**
   * The date a template reads (strftime_now), "YYYY-MM-DD". Default DEFAULT_TEMPLATE_DATE
   * (2024-06-01), never today: the same input always renders the same text.
   */
  date?: string;
}

export interface PrepareOptions {
  /** Render string inputs as a user message with the model's chat template. Chat message arrays are always rendered. */
  chat?: boolean | ChatOptions;
}

/**
 * How inputs were rendered before their hidden states were read, as a probe, ranker
 * or monitor file records it; the file scores only inputs rendered the same way.
 */
export interface InputFormat {
  chat: boolean;
  addAssistantPrefix: boolean;
  systemPrompt: string | null;
  /** The date the template read (files written before dates were pinned: DEFAULT_TEMPLATE_DATE). */
  date: string;
}

/** Chat template with the assistant prefix, no system prompt, the pinned date: how the safety papers read prompts. */
export const DEFAULT_INPUT_FORMAT: InputFormat = Object.freeze({ chat: true, addAssistantPrefix: true, systemPrompt: null, date: DEFAULT_TEMPLATE_DATE });

/** The `chat` option that renders inputs in this format. */
export function chatOptionOf(f: InputFormat): boolean | ChatOptions {
  if (!f.chat) return false;
  return { addAssistantPrefix: f.addAssistantPrefix, ...(f.systemPrompt ? { systemPrompt: f.systemPrompt } : {}), date: f.date ?? DEFAULT_TEMPLATE_DATE };
}

/** The input format of a `chat` option (what a file trained with it records). */
export function inputFormatOf(chat: boolean | ChatOptions | undefined): InputFormat {
  if (!chat) return { ...DEFAULT_INPUT_FORMAT, chat: false };
  const o = chat === true ? {} : chat;
  return { chat: true, addAssistantPrefix: o.addAssistantPrefix ?? true, systemPrompt: o.systemPrompt ?? null, date: o.date ?? DEFAULT_TEMPLATE_DATE };
}

/** Checks an input format read from a file; `bad` throws the file's error. */
export function readInputFormat(v: unknown, bad: (detail: string) => never): InputFormat {
  const f = v as InputFormat;
  if (!f || typeof f !== "object" || typeof f.chat !== "boolean" || typeof f.addAssistantPrefix !== "boolean" || !(f.systemPrompt === null || typeof f.systemPrompt === "string")) {
    bad("input must give chat, addAssistantPrefix and systemPrompt");
  }
  let date = DEFAULT_TEMPLATE_DATE;
  if (f.date !== undefined) {
    try {
      date = checkTemplateDate(f.date, "input.date");
    } catch (e) {
      bad((e as Error).message);
    }
  }
  return { chat: f.chat, addAssistantPrefix: f.addAssistantPrefix, systemPrompt: f.systemPrompt, date };
}

/** Used when a model has no template of its own (e.g. base models such as stories260K). */
export const FALLBACK_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface RenderOptions {
  bosToken?: string | null;
  eosToken?: string | null;
  addAssistantPrefix?: boolean;
  /** The model's name, named in TEMPLATE_FAILED errors. */
  source?: string;
  /** The date strftime_now reads (default DEFAULT_TEMPLATE_DATE). */
  date?: string;
}

/**
 * The rendered text, the date the template read, and whether a system message was
 * merged into the user turn because the template refuses a system role.
 */
export function renderChat(template: string | null, messages: ChatMessage[], options: RenderOptions = {}): { text: string; date: string; systemMerged: boolean } {
  return renderChatTemplate(template ?? FALLBACK_CHAT_TEMPLATE, messages, options);
}

export function isChatMessages(v: unknown): v is ChatMessage[] {
  return Array.isArray(v) && v.every((m) => m !== null && typeof m === "object" && typeof m.role === "string" && typeof m.content === "string");
}
