/**
 * The standard prompt-safety benchmarks as their authors publish them: which files they come in,
 * which columns they need and how a row becomes a labelled prompt. Used by `readSuiteDir`.
 */

export type SuiteKind = "harmful" | "benign" | "mixed";

export interface SuiteRecord {
  text: string;
  label: "safe" | "unsafe";
  category?: string;
  /** ISO 639-1 code, on non-English prompts of multilingual sets. */
  lang?: string;
}

/** One row of a table, keyed by the file's own column names. */
export type Row = Record<string, unknown>;

/** A row the spec leaves out, with the reason (counted per set). */
export interface Drop {
  drop: string;
}

/** A row the spec cannot interpret: a DataFormatError at that row. */
export interface Bad {
  bad: string;
}

export type Format = "csv" | "tsv" | "txt" | "jsonl" | "parquet";

export interface SuiteSpec {
  /** Set name (`nameFor` may refine it from the file name). */
  name: string;
  /** Human-readable name for messages. */
  title: string;
  formats: readonly Format[];
  /** File names as published; such a file with a column missing is a DataFormatError. */
  files?: RegExp;
  /** Columns needed, as published; a list is alternatives (any one of them). Matched without regard to case. */
  needs: readonly (string | readonly string[])[];
  /** Recognise a file by its columns (lower-cased) when its name is not a published one. */
  signature?: (cols: ReadonlySet<string>) => boolean;
  /** The set's kind; absent: from the labels read (all unsafe: harmful, all safe: benign, else mixed). */
  kind?: SuiteKind | ((file: string) => SuiteKind);
  nameFor?: (file: string) => string;
  /** Map a row (`get` reads a needed or optional column without regard to case) to records. */
  map: (get: (col: string) => unknown, file: string) => SuiteRecord | SuiteRecord[] | Drop | Bad;
}

function str(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "string" ? v : String(v);
}

function text(v: unknown): string | Drop {
  const t = str(v);
  return t.trim() === "" ? { drop: "empty text" } : t;
}

function flag(v: unknown): boolean {
  return v === true || v === 1 || v === "1" || v === "True" || v === "true" || v === "1.0" || v === 1n;
}

function plain(label: "safe" | "unsafe", t: string | Drop, category?: unknown): SuiteRecord | Drop {
  if (typeof t !== "string") return t;
  const c = str(category).trim();
  return c ? { text: t, label, category: c } : { text: t, label };
}

const has = (cols: ReadonlySet<string>, ...names: string[]) => names.every((n) => cols.has(n));

const OAI_FLAGS = ["S", "H", "V", "HR", "SH", "S3", "H2", "V2"];
const MULTIJAIL_LANGS = ["en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv"];

export const SUITES: readonly SuiteSpec[] = [
  {
    name: "xstest",
    title: "XSTest",
    formats: ["csv", "parquet"],
    files: /^xstest(_v2)?_prompts\.csv$/i,
    needs: ["prompt", "label"],
    signature: (c) => has(c, "prompt", "type", "label", "focus"),
    kind: "mixed",
    map: (get) => {
      const label = str(get("label"));
      if (label !== "safe" && label !== "unsafe") return { bad: `label must be "safe" or "unsafe", got ${JSON.stringify(label)}` };
      return plain(label, text(get("prompt")), get("type"));
    },
  },
  {
    name: "simplesafetytests",
    title: "SimpleSafetyTests",
    formats: ["csv", "parquet"],
    files: /^(simplesafetytests.*|sst_test_cases)\.csv$/i,
    needs: [["prompts_final", "prompt"]],
    signature: (c) => c.has("harm_area") && (c.has("prompts_final") || c.has("prompt")),
    kind: "harmful",
    map: (get) => plain("unsafe", text(get("prompts_final") ?? get("prompt")), get("harm_area")),
  },
  {
    name: "strongreject",
    title: "StrongREJECT",
    formats: ["csv", "parquet"],
    files: /^strongreject.*\.csv$/i,
    needs: ["forbidden_prompt"],
    signature: (c) => c.has("forbidden_prompt"),
    kind: "harmful",
    nameFor: (f) => (/small/i.test(f) ? "strongreject-small" : "strongreject"),
    map: (get) => plain("unsafe", text(get("forbidden_prompt")), get("category")),
  },
  {
    name: "jbb",
    title: "JailbreakBench behaviours",
    formats: ["csv", "parquet"],
    files: /^((harmful|benign)-behaviors|jailbreakbench)\.csv$/i,
    needs: ["Goal"],
    signature: (c) => has(c, "goal", "target", "behavior", "category"),
    kind: (f) => (/benign/i.test(f) ? "benign" : "harmful"),
    nameFor: (f) => (/benign/i.test(f) ? "jbb-benign" : "jbb-harmful"),
    map: (get, f) => plain(/benign/i.test(f) ? "safe" : "unsafe", text(get("goal")), get("category")),
  },
  {
    name: "maliciousinstruct",
    title: "MaliciousInstruct",
    formats: ["txt"],
    files: /^maliciousinstruct\.txt$/i,
    needs: ["line"],
    kind: "harmful",
    map: (get) => plain("unsafe", text(get("line"))),
  },
  {
    name: "harmbench",
    title: "HarmBench",
    formats: ["csv", "parquet"],
    files: /^harmbench_(behaviors_text_)?(all|test|val)\.csv$/i,
    needs: ["Behavior", "FunctionalCategory"],
    signature: (c) => has(c, "behavior", "functionalcategory"),
    kind: "harmful",
    nameFor: (f) => {
      const m = /_(test|val)\.\w+$/i.exec(f);
      return m ? `harmbench-${m[1].toLowerCase()}` : "harmbench";
    },
    // Contextual behaviours are written out HarmBench's way: the context, a rule, the request.
    map: (get) => {
      const behavior = text(get("behavior"));
      if (typeof behavior !== "string") return behavior;
      const context = str(get("contextstring")).trim();
      return plain("unsafe", context ? `${context}\n\n---\n\n${behavior}` : behavior, get("functionalcategory"));
    },
  },
  {
    name: "advbench",
    title: "AdvBench",
    formats: ["csv", "parquet"],
    files: /^(harmful_behaviors|advbench)\.csv$/i,
    needs: ["goal"],
    signature: (c) => has(c, "goal", "target") && !c.has("behavior"),
    kind: "harmful",
    map: (get) => plain("unsafe", text(get("goal"))),
  },
  {
    name: "multijail",
    title: "MultiJail",
    formats: ["csv", "parquet"],
    files: /^multijail\.csv$/i,
    needs: ["en"],
    signature: (c) => has(c, "en", "zh", "sw", "jv"),
    kind: "harmful",
    map: (get) => {
      const out: SuiteRecord[] = [];
      for (const lang of MULTIJAIL_LANGS) {
        const t = str(get(lang));
        if (t.trim() === "") continue;
        const r: SuiteRecord = { text: t, label: "unsafe" };
        const tags = str(get("tags")).trim();
        if (tags) r.category = tags;
        if (lang !== "en") r.lang = lang;
        out.push(r);
      }
      return out.length ? out : { drop: "empty text" };
    },
  },
  {
    name: "openai-moderation",
    title: "OpenAI moderation evaluation set",
    formats: ["jsonl", "parquet", "csv"],
    files: /^samples-1680\.jsonl(\.gz)?$/i,
    needs: ["prompt"],
    signature: (c) => has(c, "prompt", "s", "h", "v", "hr", "sh"),
    kind: "mixed",
    // Unsafe when any annotated category flag is 1; a missing flag means "not annotated".
    map: (get) => {
      const flagged = OAI_FLAGS.filter((k) => flag(get(k)));
      return plain(flagged.length ? "unsafe" : "safe", text(get("prompt")), flagged.join(","));
    },
  },
  {
    name: "wildguardtest",
    title: "WildGuardMix",
    formats: ["parquet", "csv", "jsonl"],
    needs: ["prompt", "prompt_harm_label"],
    signature: (c) => has(c, "prompt", "prompt_harm_label"),
    kind: "mixed",
    nameFor: (f) => (/train/i.test(f) ? "wildguardtrain" : "wildguardtest"),
    map: (get) => {
      const l = str(get("prompt_harm_label"));
      if (l === "") return { drop: "no prompt_harm_label" };
      if (l !== "harmful" && l !== "unharmful") return { bad: `prompt_harm_label must be "harmful" or "unharmful", got ${JSON.stringify(l)}` };
      return plain(l === "harmful" ? "unsafe" : "safe", text(get("prompt")), get("subcategory"));
    },
  },
  {
    name: "toxicchat",
    title: "ToxicChat",
    formats: ["parquet", "csv", "jsonl"],
    needs: ["user_input", "toxicity"],
    signature: (c) => has(c, "user_input", "toxicity"),
    kind: "mixed",
    // category marks the human-annotated rows (the subset the latent-prototype paper reports) and jailbreaks.
    map: (get) => {
      const parts = [flag(get("human_annotation")) ? "human-annotated" : "not-human-annotated"];
      if (flag(get("jailbreaking"))) parts.push("jailbreaking");
      return plain(flag(get("toxicity")) ? "unsafe" : "safe", text(get("user_input")), parts.join("|"));
    },
  },
  {
    name: "aegis",
    title: "Aegis 1.0",
    formats: ["parquet", "csv", "jsonl"],
    needs: ["text", "text_type", "labels_0", "labels_1", "labels_2"],
    signature: (c) => has(c, "text", "text_type", "labels_0"),
    kind: "mixed",
    // User messages only; unsafe when at most one of the first three annotators said "Safe" (the
    // latent-prototype paper's rule).
    map: (get) => {
      if (str(get("text_type")) !== "user_message") return { drop: "not a user message" };
      const votes = ["labels_0", "labels_1", "labels_2"].map((k) => str(get(k)));
      const safe = votes.filter((v) => v === "Safe").length;
      const cats = [...new Set(votes.filter((v) => v !== "" && v !== "Safe"))].join("|");
      return plain(safe <= 1 ? "unsafe" : "safe", text(get("text")), cats);
    },
  },
  {
    name: "aegis2",
    title: "Aegis 2.0",
    formats: ["parquet", "csv", "jsonl"],
    needs: ["prompt", "prompt_label"],
    signature: (c) => has(c, "prompt", "prompt_label"),
    kind: "mixed",
    map: (get) => {
      const l = str(get("prompt_label"));
      if (l !== "safe" && l !== "unsafe") return { bad: `prompt_label must be "safe" or "unsafe", got ${JSON.stringify(l)}` };
      // Prompts taken from a suicide-detection corpus are published as the placeholder "REDACTED".
      if (str(get("prompt")).trim() === "REDACTED") return { drop: "redacted prompt" };
      return plain(l, text(get("prompt")), get("violated_categories"));
    },
  },
  {
    name: "wildjailbreak",
    title: "WildJailbreak evaluation set",
    formats: ["tsv", "csv", "parquet"],
    needs: ["adversarial", "label"],
    signature: (c) => has(c, "adversarial", "label", "data_type"),
    kind: "mixed",
    map: (get) => {
      const l = str(get("label"));
      if (l !== "0" && l !== "1") return { bad: `label must be 0 or 1, got ${JSON.stringify(l)}` };
      return plain(l === "1" ? "unsafe" : "safe", text(get("adversarial")), get("data_type"));
    },
  },
  {
    // Our own normalized JSONL (and the same columns in other formats), named after the file.
    name: "normalized",
    title: "normalized prompt file",
    formats: ["jsonl", "parquet", "csv"],
    needs: ["text", "label"],
    signature: (c) => has(c, "text", "label"),
    nameFor: (f) => f.replace(/\.(jsonl(\.gz)?|parquet|csv|tsv)$/i, ""),
    map: (get) => {
      const l = get("label");
      if (l !== "safe" && l !== "unsafe") return { bad: `label must be "safe" or "unsafe", got ${JSON.stringify(l)}` };
      const r = plain(l, text(get("text")), get("category"));
      const lang = get("lang");
      if ("text" in r && typeof lang === "string" && lang !== "") r.lang = lang;
      return r;
    },
  },
];
