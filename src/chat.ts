/**
 * Chat messages rendered with the model's own chat template (@huggingface/jinja,
 * as node-llama-cpp does).
 */
import { Template } from "@huggingface/jinja";

import { InputError } from "./errors";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | string;
  content: string;
}

/** Used when a model has no template of its own (e.g. base models such as stories260K). */
export const FALLBACK_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const compiled = new Map<string, Template>();

export interface RenderOptions {
  bosToken?: string | null;
  eosToken?: string | null;
  addAssistantPrefix?: boolean;
}

export function renderChat(template: string | null, messages: ChatMessage[], options: RenderOptions = {}): string {
  const source = template ?? FALLBACK_CHAT_TEMPLATE;
  let t = compiled.get(source);
  try {
    if (!t) {
      t = new Template(source);
      compiled.set(source, t);
    }
    return t.render({
      messages,
      add_generation_prompt: options.addAssistantPrefix ?? true,
      bos_token: options.bosToken ?? "",
      eos_token: options.eosToken ?? "",
    });
  } catch (e) {
    throw new InputError("TEMPLATE_FAILED", `the chat template failed to render: ${(e as Error).message}`, { cause: e });
  }
}

export function isChatMessages(v: unknown): v is ChatMessage[] {
  return Array.isArray(v) && v.every((m) => m !== null && typeof m === "object" && typeof m.role === "string" && typeof m.content === "string");
}
