/**
 * Chat-template rendering that equals Hugging Face transformers'
 * `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`
 * byte for byte: Jinja2 semantics (trim_blocks, lstrip_blocks, loop controls,
 * raise_exception, tojson without ASCII escaping, Python str()/== and
 * Undefined) on top of @huggingface/jinja's parser and interpreter, through our
 * patch layer (template-runtime.ts). Conformance is tested against Python's
 * Jinja2 over llama.cpp's template collection (test/templates.test.ts).
 *
 * Two deliberate differences from the clock-reading original:
 * - `strftime_now()` formats a pinned date (`date`, default DEFAULT_TEMPLATE_DATE),
 *   so the same prompt renders the same text every day.
 * - A template that refuses a conversation containing system messages (it calls
 *   raise_exception, e.g. Gemma 2's "System role not supported") is rendered
 *   again with each system message turned into a user message, as node-llama-cpp
 *   does; the result says `systemMerged: true`. If that fails too, the original
 *   refusal is the error. Other errors (syntax, undefined values) never merge.
 *
 * `tools` and `documents` are left undefined (Jinja2's Undefined: empty in loops,
 * false in tests, length 0), as transformers did before tool support (4.42).
 * transformers >= 4.42 passes them as None: on llama.cpp's templates that gives
 * the same text wherever it renders, and only the three tool-use-only templates
 * (Command-R+ tool_use, Hermes 2 Pro / Hermes 3 tool_use) then fail on `for t in None`.
 */
import { InputError } from "../errors";
import { compileTemplate, renderCompiled, TemplateRaisedError, type CompiledTemplate } from "./template-runtime";
import { parseIsoDate } from "./template-python";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | string;
  content: string;
}

/** The date strftime_now() sees when no `date` is given: fixed, so renders never depend on the clock. */
export const DEFAULT_TEMPLATE_DATE = "2024-06-01";

/**
 * How a system message is written into a user message when the template refuses
 * the system role: node-llama-cpp's JinjaTemplateChatWrapper default format.
 * `{{message}}` is replaced by the system text; the result is joined to the
 * following user message with a blank line ("\n\n"), as node-llama-cpp joins
 * adjacent user messages.
 */
export const SYSTEM_MESSAGE_MERGE_FORMAT = "### System message\n\n{{message}}\n\n----";

export interface TemplateRenderOptions {
  /** The model's BOS token text, passed as `bos_token` ("" when absent). */
  bosToken?: string | null;
  /** The model's EOS token text, passed as `eos_token` ("" when absent). */
  eosToken?: string | null;
  /** `add_generation_prompt`: append the assistant prefix (default true). */
  addAssistantPrefix?: boolean;
  /** The date strftime_now() formats, "YYYY-MM-DD" (default DEFAULT_TEMPLATE_DATE; never the clock). */
  date?: string;
  /** Where the template comes from (e.g. the model name), named in errors. */
  source?: string;
}

/** How a rendering was made: record it next to anything derived from the text (probe files, caches). */
export interface TemplateRenderInfo {
  /** The date strftime_now() formatted. */
  date: string;
  /** True when the template refused the system role and the system text was merged into a user message. */
  systemMerged: boolean;
}

export interface TemplateRenderResult extends TemplateRenderInfo {
  /** The rendered prompt. */
  text: string;
}

/** Validates a template date ("YYYY-MM-DD", a real calendar date); returns it. */
export function checkTemplateDate(date: unknown, what = "date"): string {
  if (typeof date !== "string") throw new TypeError(`${what} must be a "YYYY-MM-DD" string, got ${typeof date}`);
  if (parseIsoDate(date) === null) throw new RangeError(`${what} must be a "YYYY-MM-DD" calendar date, got ${JSON.stringify(date)}`);
  return date;
}

/**
 * The conversation with every system message written as a user message
 * (SYSTEM_MESSAGE_MERGE_FORMAT), joined with "\n\n" to the user messages next to
 * it, as node-llama-cpp does for templates without a system role.
 */
export function mergeSystemMessages(messages: readonly ChatMessage[]): ChatMessage[] {
  const [before, after] = SYSTEM_MESSAGE_MERGE_FORMAT.split("{{message}}");
  const out: Array<ChatMessage & { merged?: boolean }> = [];
  for (const m of messages) {
    const fromSystem = m.role === "system";
    const item = fromSystem ? { role: "user", content: before + m.content + after, merged: true } : { ...m };
    const last = out[out.length - 1];
    if (last && last.role === "user" && item.role === "user" && (last.merged || fromSystem)) {
      last.content += "\n\n" + item.content;
      last.merged = true;
    } else {
      out.push(item);
    }
  }
  return out.map((m) => {
    const { merged: _, ...rest } = m;
    return rest;
  });
}

const cache = new Map<string, CompiledTemplate>();
const CACHE_SIZE = 32;

function compiled(template: string): CompiledTemplate {
  let c = cache.get(template);
  if (!c) {
    c = compileTemplate(template);
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    cache.set(template, c);
  }
  return c;
}

function checkMessages(messages: unknown): asserts messages is ChatMessage[] {
  const ok = Array.isArray(messages) && messages.every((m) => m !== null && typeof m === "object" && typeof m.role === "string" && typeof m.content === "string");
  if (!ok) throw new TypeError("messages must be an array of { role: string, content: string } objects");
}

function checkToken(v: unknown, what: string): string {
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw new TypeError(`${what} must be a string or null`);
  return v;
}

/**
 * Renders chat messages with a model's Jinja chat template, as transformers'
 * apply_chat_template does (see the module comment for the pinned date and the
 * system-message merge). Throws `InputError` `TEMPLATE_FAILED` naming `source`
 * and the Jinja error when the template cannot render (syntax errors, errors it
 * raises itself, undefined values Jinja2 refuses); TypeError/RangeError for
 * malformed options.
 */
export function renderChatTemplate(template: string, messages: readonly ChatMessage[], options: TemplateRenderOptions = {}): TemplateRenderResult {
  if (typeof template !== "string") throw new TypeError("template must be a string");
  checkMessages(messages);
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
  const date = options.date === undefined ? DEFAULT_TEMPLATE_DATE : checkTemplateDate(options.date);
  const addAssistantPrefix = options.addAssistantPrefix ?? true;
  if (typeof addAssistantPrefix !== "boolean") throw new TypeError("addAssistantPrefix must be a boolean");
  if (options.source !== undefined && typeof options.source !== "string") throw new TypeError("source must be a string");
  const vars = {
    add_generation_prompt: addAssistantPrefix,
    bos_token: checkToken(options.bosToken, "bosToken"),
    eos_token: checkToken(options.eosToken, "eosToken"),
  };
  const fail = (e: unknown) => {
    const detail = e instanceof Error ? e.message : String(e);
    const where = options.source ? `the chat template of ${options.source}` : "the chat template";
    return new InputError("TEMPLATE_FAILED", `${where} failed to render: ${detail}`, { cause: e });
  };
  let t: CompiledTemplate;
  try {
    t = compiled(template);
  } catch (e) {
    throw fail(e);
  }
  // Messages are converted to fresh template values: a template never reaches the caller's objects.
  const render = (msgs: readonly ChatMessage[]) => renderCompiled(t, { ...vars, messages: msgs }, date);
  try {
    return { text: render(messages), systemMerged: false, date };
  } catch (e) {
    if (e instanceof TemplateRaisedError && messages.some((m) => m.role === "system")) {
      try {
        return { text: render(mergeSystemMessages(messages)), systemMerged: true, date };
      } catch {
        // the merged conversation fails too: report the template's answer to the original one
      }
    }
    throw fail(e);
  }
}
