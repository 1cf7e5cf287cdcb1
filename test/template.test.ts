/** core/template's API: pinned date, system-message merge, typed errors, bounded work. */
import { FALLBACK_CHAT_TEMPLATE, renderChat } from "../src/core/chat";
import {
  DEFAULT_TEMPLATE_DATE, SYSTEM_MESSAGE_MERGE_FORMAT, checkTemplateDate, mergeSystemMessages, renderChatTemplate, type ChatMessage,
} from "../src/core/template";
import { InputError } from "../src/errors";

const USER: ChatMessage[] = [{ role: "user", content: "hi" }];
const SYS_USER: ChatMessage[] = [{ role: "system", content: "Be brief." }, { role: "user", content: "hi" }];
/** Refuses the system role the way Gemma 2's template does, and requires alternating roles. */
const NO_SYSTEM =
  "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" +
  "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('roles must alternate') }}{% endif %}" +
  "<turn>{{ m['role'] }}\n{{ m['content'] | trim }}<end>\n{% endfor %}{% if add_generation_prompt %}<turn>model\n{% endif %}";

function failure(f: () => unknown): InputError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).code).toBe("TEMPLATE_FAILED");
    return e as InputError;
  }
  throw new Error("expected TEMPLATE_FAILED");
}

describe("pinned date", () => {
  const T = "{{ strftime_now('%Y-%m-%d|%d %b %Y|%B %-d, %Y') }}";
  test("strftime_now reads DEFAULT_TEMPLATE_DATE, never the clock", () => {
    expect(DEFAULT_TEMPLATE_DATE).toBe("2024-06-01");
    const r = renderChatTemplate(T, USER);
    expect(r).toEqual({ text: "2024-06-01|01 Jun 2024|June 1, 2024", systemMerged: false, date: "2024-06-01" });
    expect(renderChatTemplate(T, USER, { date: "2025-02-03" })).toEqual({ text: "2025-02-03|03 Feb 2025|February 3, 2025", systemMerged: false, date: "2025-02-03" });
  });

  test("a malformed date is a TypeError or RangeError naming the option", () => {
    expect(() => renderChatTemplate(T, USER, { date: "2024-02-30" })).toThrow(new RangeError('date must be a "YYYY-MM-DD" calendar date, got "2024-02-30"'));
    expect(() => renderChatTemplate(T, USER, { date: "2024-6-1" })).toThrow(RangeError);
    expect(() => renderChatTemplate(T, USER, { date: 20240601 as unknown as string })).toThrow(new TypeError('date must be a "YYYY-MM-DD" string, got number'));
    expect(checkTemplateDate("2000-02-29")).toBe("2000-02-29");
    expect(() => checkTemplateDate("1900-02-29", "probe.template.date")).toThrow('probe.template.date must be a "YYYY-MM-DD" calendar date, got "1900-02-29"');
  });
});

describe("system role refused", () => {
  test("the system text is merged into the first user message, as node-llama-cpp does", () => {
    expect(SYSTEM_MESSAGE_MERGE_FORMAT).toBe("### System message\n\n{{message}}\n\n----");
    const r = renderChatTemplate(NO_SYSTEM, SYS_USER, { bosToken: "<bos>" });
    expect(r.systemMerged).toBe(true);
    expect(r.text).toBe("<bos><turn>user\n### System message\n\nBe brief.\n\n----\n\nhi<end>\n<turn>model\n");
    // without a system message nothing is merged
    expect(renderChatTemplate(NO_SYSTEM, USER)).toEqual({ text: "<turn>user\nhi<end>\n<turn>model\n", systemMerged: false, date: DEFAULT_TEMPLATE_DATE });
  });

  test("mergeSystemMessages joins the system text to the user messages next to it, and leaves the input alone", () => {
    const sys = (t: string) => `### System message\n\n${t}\n\n----`;
    const input: ChatMessage[] = [{ role: "system", content: "a" }, { role: "system", content: "b" }, { role: "user", content: "u" }, { role: "assistant", content: "r" }, { role: "user", content: "v" }];
    const copy = JSON.parse(JSON.stringify(input));
    expect(mergeSystemMessages(input)).toEqual([{ role: "user", content: `${sys("a")}\n\n${sys("b")}\n\nu` }, { role: "assistant", content: "r" }, { role: "user", content: "v" }]);
    expect(input).toEqual(copy);
    expect(mergeSystemMessages([{ role: "system", content: "a" }, { role: "assistant", content: "r" }])).toEqual([{ role: "user", content: sys("a") }, { role: "assistant", content: "r" }]);
    expect(mergeSystemMessages([{ role: "user", content: "u" }, { role: "system", content: "a" }])).toEqual([{ role: "user", content: `u\n\n${sys("a")}` }]);
    expect(mergeSystemMessages([{ role: "user", content: "u" }, { role: "user", content: "w" }])).toEqual([{ role: "user", content: "u" }, { role: "user", content: "w" }]);
  });

  test("when the merged conversation fails too, the template's answer to the original one is reported", () => {
    const msgs: ChatMessage[] = [{ role: "system", content: "s" }, { role: "assistant", content: "a" }, { role: "assistant", content: "b" }];
    expect(failure(() => renderChatTemplate(NO_SYSTEM, msgs, { source: "gemma" })).message).toBe("the chat template of gemma failed to render: System role not supported");
  });

  test("only errors the template raises itself lead to a merge", () => {
    const t = "{% if messages[0].role == 'system' %}{{ messages[0].nope.x }}{% endif %}{{ messages[-1].content }}";
    expect(failure(() => renderChatTemplate(t, SYS_USER)).message).toBe("the chat template failed to render: UndefinedError: 'dict object' has no attribute 'nope'");
  });
});

describe("errors", () => {
  test("TEMPLATE_FAILED names the template's source and the Jinja error", () => {
    expect(failure(() => renderChatTemplate("{% if %}", USER, { source: "qwen2.5-0.5b" })).message).toMatch(/^the chat template of qwen2\.5-0\.5b failed to render: .+/);
    expect(failure(() => renderChatTemplate("{{ raise_exception('no ' ~ messages[0].content) }}", USER)).message).toBe("the chat template failed to render: no hi");
    expect(failure(() => renderChatTemplate("{{ tools|tojson }}", USER)).message).toBe("the chat template failed to render: TypeError: Object of type Undefined is not JSON serializable");
  });

  test("malformed arguments are TypeErrors", () => {
    expect(() => renderChatTemplate(5 as unknown as string, USER)).toThrow(new TypeError("template must be a string"));
    expect(() => renderChatTemplate("x", "hi" as unknown as ChatMessage[])).toThrow(new TypeError("messages must be an array of { role: string, content: string } objects"));
    expect(() => renderChatTemplate("x", [{ role: 1, content: "a" }] as unknown as ChatMessage[])).toThrow(TypeError);
    expect(() => renderChatTemplate("x", USER, { addAssistantPrefix: "yes" as unknown as boolean })).toThrow(new TypeError("addAssistantPrefix must be a boolean"));
    expect(() => renderChatTemplate("x", USER, { bosToken: 1 as unknown as string })).toThrow(new TypeError("bosToken must be a string or null"));
  });

  test("templates that would hang, recurse for ever or exhaust memory fail quickly instead", () => {
    const start = Date.now();
    expect(failure(() => renderChatTemplate("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", USER)).message).toMatch(/ran for more than 2000000 steps/);
    expect(failure(() => renderChatTemplate("{% for i in range(100000) %}{{ i }}{% endfor %}{% for m in messages * 100000 %}{% endfor %}", USER)).message).toMatch(/steps/);
    expect(failure(() => renderChatTemplate("{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}", USER)).message).toMatch(/RecursionError/);
    expect(failure(() => renderChatTemplate("{{ 'x' * 100000000 }}", USER)).message).toMatch(/MemoryError/);
    expect(failure(() => renderChatTemplate("{{ range(10000000)|length }}", USER)).message).toMatch(/OverflowError/);
    expect(Date.now() - start).toBeLessThan(10000);
  });
});

describe("rendering", () => {
  test("bos/eos tokens and the assistant prefix", () => {
    const t = "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
    expect(renderChatTemplate(t, USER, { bosToken: "<s>", eosToken: "</s>" }).text).toBe("<s>user:hi</s>assistant:");
    expect(renderChatTemplate(t, USER, { bosToken: null, addAssistantPrefix: false }).text).toBe("user:hi");
  });

  test("renderChat: ChatML for models without a template; the date and whether the system text was merged", () => {
    expect(renderChat(null, USER)).toEqual({ text: "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", date: "2024-06-01", systemMerged: false });
    expect(renderChat(null, USER).text).toBe("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    expect(renderChat(FALLBACK_CHAT_TEMPLATE, SYS_USER, { addAssistantPrefix: false }).text).toBe("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n");
    expect(renderChat(NO_SYSTEM, SYS_USER)).toEqual({ text: "<turn>user\n### System message\n\nBe brief.\n\n----\n\nhi<end>\n<turn>model\n", date: "2024-06-01", systemMerged: true });
  });

  test("a template cannot change the caller's messages", () => {
    const msgs: ChatMessage[] = [{ role: "user", content: "hi" }];
    renderChatTemplate("{% set ns = namespace(m=messages[0]) %}{% set ns.m = 1 %}{{ messages[0].content }}", msgs);
    expect(msgs).toEqual([{ role: "user", content: "hi" }]);
  });
});
