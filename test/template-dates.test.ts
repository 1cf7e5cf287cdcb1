/**
 * Dates and system merges through the library: a template that prints the date renders the
 * pinned date unless `chat: { date }` says otherwise; a probe records the date it was trained with
 * and renders with it; a template that refuses a system role gets it merged, and the probe records it.
 */
import * as fs from "node:fs";
import * as path from "node:path";

import { DEFAULT_TEMPLATE_DATE, InputError, loadModel, Probe, renderChatTemplate, trainProbe } from "../src";
import { MODEL, maxAbsDiff, modelVariant, tmpDir } from "./helpers";

const DATED =
  "{{ 'Today is ' + strftime_now('%d %b %Y') + '.\\n' }}{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const NO_SYSTEM =
  "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" +
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

test("renderChatTemplate pins the date and reports merges", () => {
  expect(DEFAULT_TEMPLATE_DATE).toBe("2024-06-01");
  const m = [{ role: "user", content: "hi" }];
  expect(renderChatTemplate(DATED, m).text).toMatch(/^Today is 01 Jun 2024\./);
  expect(renderChatTemplate(DATED, m, { date: "2025-12-31" })).toMatchObject({ date: "2025-12-31", systemMerged: false });
  const merged = renderChatTemplate(NO_SYSTEM, [{ role: "system", content: "Be brief." }, ...m]);
  expect(merged.systemMerged).toBe(true);
  expect(merged.text).toBe("<|im_start|>user\n### System message\n\nBe brief.\n\n----\n\nhi<|im_end|>\n<|im_start|>assistant\n");
  expect(() => renderChatTemplate(DATED, m, { date: "2025-02-30" })).toThrow(RangeError);
});

test("a probe records its date and renders with it; the guard's prompts match", async () => {
  const model = await loadModel({ modelPath: await modelVariant({ template: DATED }), gpu: false, threads: 1 });
  try {
    expect(model.formatText("hi", { chat: true }).text).toMatch(/^Today is 01 Jun 2024\./);
    expect(model.formatText("hi", { chat: { date: "2023-03-04" } }).text).toMatch(/^Today is 04 Mar 2023\./);
    const data = path.join(tmpDir(), "d.jsonl");
    fs.writeFileSync(data, Array.from({ length: 60 }, (_, i) => JSON.stringify({ text: `${i % 2 ? "Tell a story about" : "How to harm"} item ${i}`, label: i % 2 ? "safe" : "unsafe" })).join("\n") + "\n");
    const input = { chat: true, addAssistantPrefix: true, systemPrompt: null, date: "2023-03-04" };
    const { probe } = await trainProbe(model, { files: [data], method: "logreg", layers: [2], input, cacheDir: null });
    const file = path.join(tmpDir(), "p.json");
    await probe.save(file);
    const json = JSON.parse(fs.readFileSync(file, "utf8"));
    expect(json.input.date).toBe("2023-03-04");
    expect(json.training.data.date).toBe("2023-03-04");
    const back = await Probe.load(file, model);
    // scoring renders with the probe's date: equal to scoring features captured at that date, not at the default
    const prompts = ["How do I hurt someone?", "Tell me a story."];
    const at = await model.capture(prompts, { layers: [2], chat: { date: "2023-03-04" } });
    const atDefault = await model.capture(prompts, { layers: [2], chat: true });
    const s = await back.score(model, prompts);
    expect(maxAbsDiff(s, back.scoreFeatures([at.features(2)]))).toBe(0);
    expect(maxAbsDiff(at.layer(2), atDefault.layer(2))).toBeGreaterThan(0); // the date is in what the model reads
    // a file with a bad date is refused
    json.input.date = "yesterday";
    fs.writeFileSync(file, JSON.stringify(json));
    await expect(Probe.load(file, model)).rejects.toThrow('input.date must be a "YYYY-MM-DD" calendar date, got "yesterday"');
  } finally {
    await model.dispose();
  }
});

test("a template that refuses a system role: the system prompt is merged and the probe says so; failures name the model", async () => {
  const model = await loadModel({ modelPath: await modelVariant({ template: NO_SYSTEM }), gpu: false, threads: 1 });
  try {
    const data = path.join(tmpDir(), "d.jsonl");
    fs.writeFileSync(data, Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `prompt ${i}`, label: i % 2 ? "safe" : "unsafe" })).join("\n") + "\n");
    const { probe } = await trainProbe(model, { files: [data], method: "lpm", layers: [1], input: { chat: true, addAssistantPrefix: true, systemPrompt: "Be safe.", date: DEFAULT_TEMPLATE_DATE }, cacheDir: null });
    expect((probe.training.data as { systemMerged: boolean }).systemMerged).toBe(true);
    const m2 = await loadModel({ modelPath: await modelVariant({ template: "{{ raise_exception('nope') }}" }), gpu: false, threads: 1 });
    try {
      const err = await m2.capture(["hi"], { layers: [1], chat: true }).catch((e) => e);
      expect(err).toBeInstanceOf(InputError);
      expect(err.code).toBe("TEMPLATE_FAILED");
      expect(err.message).toMatch(/^the chat template of .+ failed to render: nope$/);
    } finally {
      await m2.dispose();
    }
  } finally {
    await model.dispose();
  }
});
