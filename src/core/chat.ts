/**
 * Chat rendering: messages rendered with the model's own chat template, as
 * transformers' apply_chat_template renders them (./template.ts), and the one set of
 * rendering options every part of safety-lens uses (capture's `chat` option, and the
 * input format that probe, ranker and monitor files record).
 */
import { renderChatTemplate, type ChatMessage } from "./template";

export type { ChatMessage } from "./template";

/** How a string input is rendered as a chat (the `chat` option's object form). */
export interface ChatOptions {
  /** Append the assistant turn's opening (add_generation_prompt), as the safety papers read prompts. Default true. */
  addAssistantPrefix?: boolean;
  /** A system message put before each conversation that has none. */
  systemPrompt?: string;
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
}

/** Chat template with the assistant prefix, no system prompt: how the safety papers read prompts. */
export const DEFAULT_INPUT_FORMAT: InputFormat = Object.freeze({ chat: true, addAssistantPrefix: true, systemPrompt: null });

/** The `chat` option that renders inputs in this format. */
export function chatOptionOf(f: InputFormat): boolean | ChatOptions {
  if (!f.chat) return false;
  return { addAssistantPrefix: f.addAssistantPrefix, ...(f.systemPrompt ? { systemPrompt: f.systemPrompt } : {}) };
}

/** Checks an input format read from a file; `bad` throws the file's error. */
export function readInputFormat(v: unknown, bad: (detail: string) => never): InputFormat {
  const f = v as InputFormat;
  if (!f || typeof f !== "object" || typeof f.chat !== "boolean" || typeof f.addAssistantPrefix !== "boolean" || !(f.systemPrompt === null || typeof f.systemPrompt === "string")) {
    bad("input must give chat, addAssistantPrefix and systemPrompt");
  }
  return { chat: f.chat, addAssistantPrefix: f.addAssistantPrefix, systemPrompt: f.systemPrompt };
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
}

/** The rendered text (strftime_now sees DEFAULT_TEMPLATE_DATE; a refused system message is merged into the user turn). */
export function renderChat(template: string | null, messages: ChatMessage[], options: RenderOptions = {}): string {
  return renderChatTemplate(template ?? FALLBACK_CHAT_TEMPLATE, messages, options).text;
}

export function isChatMessages(v: unknown): v is ChatMessage[] {
  return Array.isArray(v) && v.every((m) => m !== null && typeof m === "object" && typeof m.role === "string" && typeof m.content === "string");
}
