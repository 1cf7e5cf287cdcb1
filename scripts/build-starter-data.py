#!/usr/bin/env python3
"""Rebuild data/starter/ (the starter prompt set shipped in the package) from the shared data folder.

    python3 scripts/build-starter-data.py [SHARED_DATA_DIR] [--out DIR]

SHARED_DATA_DIR defaults to ../shared/data beside the checkout; --out defaults to data/starter in the
checkout. Python 3 standard library only. The output is a pure function of the input files: sampling
ranks records by SHA-256 of a fixed seed and the record id, so every run writes the same bytes.

Writes prompts.jsonl, README.md (composition table, attribution, how it was built) and LICENSES/, and
prints the composition table.
"""
import csv
import hashlib
import json
import os
import re
import shutil
import sys

SEED = "safety-lens-starter-v1"
MAX_CHARS = 2500  # longer texts are left out, not cut: cutting can remove what makes a text unsafe
NEAR_DUP = (4, 5)  # word-set Jaccard >= 4/5 counts as a near duplicate (the shared normalizer's rule)
NC_SOURCES = {"alpaca_instructions", "alpaca_eval"}  # CC BY-NC: never read

# Licence files copied into LICENSES/ (name there -> path under the shared data folder).
LICENCE_FILES = {
    "openai_moderation-LICENSE": "openai_moderation/LICENSE",
    "jbb_artifacts-LICENSE": "jbb_artifacts/LICENSE",
    "red_instruct-LICENSE": "harmfulqa_red_instruct/LICENSE",
    "gptfuzz-LICENSE": "gptfuzz/LICENSE",
    "ailuminate-UPSTREAM_README.md": "ailuminate_demo/UPSTREAM_README.md",
    "ailuminate-LICENSE.md": "ailuminate_demo/LICENSE.md",
    "multijail-LICENSE": "multijail/LICENSE",
    "self_instruct_seed-LICENSE": "self_instruct_seed/LICENSE",
    "mt_bench-LICENSE": "mt_bench/LICENSE",
    "gsm8k-LICENSE": "gsm8k/LICENSE",
}

# One row of the composition table per source, in output order. `take` is a list of
# (label, filter, quota); quota None takes every candidate left after the filters.
MULTIJAIL_LANGS = ["zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv"]
SOURCES = [
    {
        "source": "openai_moderation", "file": "prompts_openai_moderation.jsonl", "kind": "moderation",
        "licence": "MIT", "licence_files": ["openai_moderation-LICENSE"],
        "kinds": "content to moderate (statements and requests); the safe side are hard negatives on sensitive topics",
        "take": [("unsafe", None, None), ("safe", None, None)],  # the starter half only, see build()
        "attribution": "OpenAI moderation evaluation set (Markov et al. 2022, *A Holistic Approach to Undesired Content "
                       "Detection*), `openai/moderation-api-release` @ `f4ab51b`, `data/samples-1680.jsonl.gz`. "
                       "Copyright (c) 2022 OpenAI.",
    },
    {
        "source": "jbb_artifacts", "file": "prompts_jbb_artifacts_attacks.jsonl", "kind": "jailbreak",
        "licence": "MIT", "licence_files": ["jbb_artifacts-LICENSE"],
        "kinds": "jailbreak-wrapped harmful requests (PAIR, GCG, DSN, JailbreakChat, random search)",
        "take": [("unsafe", None, 220)],
        "attribution": "JailbreakBench artifacts (Chao et al. 2024), `JailbreakBench/artifacts` @ `909e68c`, "
                       "`attack-artifacts/`: the adversarial prompts of five attacks against four target models. "
                       "Each artifact is released under MIT by the JailbreakBench team and the artifacts' authors. "
                       "`base` holds the JailbreakBench behaviour (goal) each attack wraps.",
    },
    {
        "source": "harmfulqa", "file": "prompts_red_instruct.jsonl", "kind": "harmful-request",
        "licence": "Apache-2.0", "licence_files": ["red_instruct-LICENSE"],
        "kinds": "harmful questions (many only mildly harmful)",
        "take": [("unsafe", lambda r: r["source"] == "harmfulqa", 100)],
        "attribution": "HarmfulQA (Bhardwaj & Poria 2023, *Red-Teaming LLMs using Chain of Utterances*), "
                       "`declare-lab/red-instruct` @ `73c759c`, `harmful_questions/harmfulqa.json`.",
    },
    {
        "source": "dangerousqa", "file": "prompts_red_instruct.jsonl", "kind": "harmful-request",
        "licence": "Apache-2.0", "licence_files": ["red_instruct-LICENSE"],
        "kinds": "harmful questions",
        "take": [("unsafe", lambda r: r["source"] == "dangerousqa", 80)],
        "attribution": "DangerousQA as redistributed in `declare-lab/red-instruct` @ `73c759c`, "
                       "`harmful_questions/dangerousqa.json` (first published in `SALT-NLP/chain-of-thought-bias`).",
    },
    {
        "source": "catqa", "file": "prompts_red_instruct.jsonl", "kind": "harmful-request",
        "licence": "Apache-2.0", "licence_files": ["red_instruct-LICENSE"],
        "kinds": "harmful questions in 11 harm categories; English, Chinese, Vietnamese",
        "take": [("unsafe", lambda r: r["source"] == "catqa" and "lang" not in r, 110),
                 ("unsafe", lambda r: r["source"] == "catqa" and r.get("lang") == "zh", 35),
                 ("unsafe", lambda r: r["source"] == "catqa" and r.get("lang") == "vi", 35)],
        "attribution": "CategoricalHarmfulQA (Bhardwaj et al. 2024, *Resta*), `declare-lab/red-instruct` @ `73c759c`, "
                       "`harmful_questions/catqa_{english,chinese,vietnamese}.json`.",
    },
    {
        "source": "gptfuzz", "file": "prompts_gptfuzz_questions.jsonl", "kind": "harmful-request",
        "licence": "MIT", "licence_files": ["gptfuzz-LICENSE"],
        "kinds": "harmful questions",
        "take": [("unsafe", None, None)],
        "attribution": "GPTFuzz harmful questions (Yu et al. 2023, *GPTFuzzer*), `sherdencooper/GPTFuzz` @ `1eddeb5`, "
                       "`datasets/questions/question_list.csv`. Copyright (c) 2023 Jiahao Yu.",
    },
    {
        "source": "ailuminate_demo", "file": "prompts_ailuminate_demo.jsonl", "kind": "harmful-request",
        "licence": "CC-BY-4.0", "licence_files": ["ailuminate-UPSTREAM_README.md", "ailuminate-LICENSE.md"],
        "kinds": "hazard prompts (11 hazards, skilled and unskilled personas; some role-play wrapped); English, French",
        "take": [("unsafe", lambda r: "lang" not in r, 110), ("unsafe", lambda r: r.get("lang") == "fr", 55)],
        "attribution": "MLCommons AILuminate v1.0 DEMO prompt sets, `mlcommons/ailuminate` @ `769cc2b`, "
                       "`airr_official_1.0_demo_{en_us,fr_fr}_prompt_set_release.csv`, by MLCommons, licensed under "
                       "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Changes: a sample of the prompts, "
                       "without the specialised-advice (`spc_*`) hazards, labelled `unsafe`.",
    },
    {
        "source": "multijail", "file": "prompts_multijail.jsonl", "kind": "harmful-request",
        "licence": "MIT", "licence_files": ["multijail-LICENSE"],
        "kinds": "harmful requests in 10 languages (en, zh, it, vi, ar, ko, th, bn, sw, jv)",
        "take": [("unsafe", lambda r: "lang" not in r, 40)]
                + [("unsafe", (lambda lang: lambda r: r.get("lang") == lang)(lang), 18) for lang in MULTIJAIL_LANGS],
        "attribution": "MultiJail (Deng et al. 2024, *Multilingual Jailbreak Challenges in Large Language Models*), "
                       "`DAMO-NLP-SG/multilingual-safety-for-LLMs` @ `577ac51`, `data/MultiJail.csv`. "
                       "Copyright (c) 2023 Multilingual NLP Team at Alibaba DAMO Academy.",
    },
    {
        "source": "self_instruct_seed", "file": "prompts_self_instruct_seed.jsonl", "kind": "benign-request",
        "licence": "Apache-2.0", "licence_files": ["self_instruct_seed-LICENSE"],
        "kinds": "everyday instructions",
        "take": [("safe", None, None)],
        "attribution": "Self-Instruct seed tasks (Wang et al. 2023), `yizhongw/self-instruct` @ `0b26cca`, "
                       "`data/seed_tasks.jsonl`.",
    },
    {
        "source": "mt_bench", "file": "prompts_mt_bench.jsonl", "kind": "benign-request",
        "licence": "Apache-2.0", "licence_files": ["mt_bench-LICENSE"],
        "kinds": "writing, role-play, reasoning, maths, coding, extraction, STEM and humanities questions",
        "take": [("safe", None, None)],
        "attribution": "MT-Bench first turns (Zheng et al. 2023), `lm-sys/FastChat` @ `0e6d3e4`, "
                       "`fastchat/llm_judge/data/mt_bench/question.jsonl`.",
    },
    {
        "source": "gsm8k", "file": "prompts_gsm8k.jsonl", "kind": "benign-request",
        "licence": "MIT", "licence_files": ["gsm8k-LICENSE"],
        "kinds": "grade-school maths word problems",
        "take": [("safe", None, 470)],
        "attribution": "GSM8K test questions (Cobbe et al. 2021), `openai/grade-school-math` @ `3101c7d`, "
                       "`grade_school_math/data/test.jsonl`. Copyright (c) 2021 OpenAI.",
    },
]

WORD = re.compile(r"\w+")


def rank(key):
    return hashlib.sha256(f"{SEED}\0{key}".encode("utf-8")).hexdigest()


def norm(text):
    """The key the library's loader de-duplicates on (lower case, whitespace runs collapsed)."""
    return " ".join(text.lower().split())


def words(text):
    return frozenset(WORD.findall(text.lower()))


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_csv(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


class NearDupIndex:
    """Exact (normalized) and near-duplicate (word-set Jaccard >= 4/5) look-ups, by prefix filtering:
    two sets with Jaccard >= t share a token among their first |s| - ceil(t|s|) + 1 tokens in any
    fixed global token order, so only those prefixes are indexed and every candidate is verified."""

    def __init__(self, order):
        self.order = order  # token -> position in the global order (rarest first)
        self.exact = {}
        self.prefix = {}
        self.sets = []
        self.names = []

    def _prefix(self, s):
        toks = sorted(s, key=lambda t: (self.order.get(t, -1), t))
        a, b = NEAR_DUP
        need = (a * len(toks) + b - 1) // b  # ceil(t * |s|)
        return toks[: len(toks) - need + 1]

    def find(self, text):
        key = norm(text)
        if key in self.exact:
            return self.exact[key]
        s = words(text)
        if not s:
            return None
        a, b = NEAR_DUP
        seen = set()
        for tok in self._prefix(s):
            for i in self.prefix.get(tok, ()):
                if i in seen:
                    continue
                seen.add(i)
                other = self.sets[i]
                inter = len(s & other)
                if b * inter >= a * (len(s) + len(other) - inter):
                    return self.names[i]
        return None

    def add(self, text, name):
        self.exact.setdefault(norm(text), name)
        s = words(text)
        if not s:
            return
        i = len(self.sets)
        self.sets.append(s)
        self.names.append(name)
        for tok in self._prefix(s):
            self.prefix.setdefault(tok, []).append(i)


def jbb_index(record_id):
    """JailbreakBench behaviour index of an artifact record (`jbb_artifacts-<method>-<model>-<index>`)."""
    return int(record_id.rsplit("-", 1)[1])


def build(shared):
    norm_dir = os.path.join(shared, "normalized")
    for spec in SOURCES:
        assert spec["source"] not in NC_SOURCES

    # --- Evaluation data the starter set must not touch -------------------------------------------
    # JailbreakBench behaviours: the starter keeps the attacks on half of the 55 behaviours that are
    # JailbreakBench's own ("Original"; the others come from AdvBench and HarmBench, which are
    # evaluation sets themselves); the other behaviours stay unseen.
    jbb = read_csv(os.path.join(shared, "jbb_behaviors", "jailbreakbench.csv"))
    goals = {int(row[""]): row["Goal"] for row in jbb}
    original = sorted((int(row[""]) for row in jbb if row["Source"] == "Original"), key=lambda i: rank(f"jbb-goal-{i}"))
    starter_goals = set(original[: (len(original) + 1) // 2])
    # OpenAI moderation: a seeded half of each label for the starter, the other half left for evaluation.
    oai = read_jsonl(os.path.join(norm_dir, "prompts_openai_moderation.jsonl"))
    oai_starter = set()
    oai_eval = []
    for label in ("unsafe", "safe"):
        recs = sorted((r for r in oai if r["label"] == label), key=lambda r: rank(r["id"]))
        half = (len(recs) + 1) // 2
        oai_starter.update(r["id"] for r in recs[:half])
        oai_eval.extend(r["text"] for r in recs[half:])
    eval_texts = [("advbench", row["goal"]) for row in read_csv(os.path.join(shared, "advbench", "advbench.csv"))]
    eval_texts += [("harmbench", row["Behavior"]) for row in read_csv(os.path.join(shared, "harmbench", "harmbench_behaviors_text_all.csv"))]
    eval_texts += [("jbb_behaviors", goals[i]) for i in sorted(goals) if i not in starter_goals]
    eval_texts += [("openai_moderation (evaluation half)", t) for t in oai_eval]

    # --- Candidates, per source and quota, in seeded order -----------------------------------------
    files = {}
    for spec in SOURCES:
        if spec["file"] not in files:
            files[spec["file"]] = read_jsonl(os.path.join(norm_dir, spec["file"]))
    for r in files["prompts_jbb_artifacts_attacks.jsonl"]:
        r["base"] = goals[jbb_index(r["id"])]
        method = r["id"].split("-")[1]
        # The index must point at the goal the attack wraps: suffix attacks repeat it (two GCG
        # artifacts misspell one word of theirs), so nearly all of its words must be in the text.
        goal_words = words(r["base"])
        if method in ("GCG", "DSN") and 10 * len(goal_words & words(r["text"])) < 9 * len(goal_words):
            raise SystemExit(f"{r['id']}: does not repeat JailbreakBench goal {jbb_index(r['id'])}")

    order_counts = {}
    for _, t in eval_texts:
        for w in words(t):
            order_counts[w] = order_counts.get(w, 0) + 1
    for recs in files.values():
        for r in recs:
            for w in words(r["text"]):
                order_counts[w] = order_counts.get(w, 0) + 1
    order = {w: i for i, w in enumerate(sorted(order_counts, key=lambda w: (order_counts[w], w)))}

    held_out = NearDupIndex(order)
    for name, t in eval_texts:
        held_out.add(t, name)
    # Jailbreaks built on one attack template are near duplicates by word set even when the requests
    # they wrap differ, so they are compared with each other exactly, and with the rest by the rule.
    chosen = NearDupIndex(order)
    chosen_jailbreaks = set()

    out = []
    dropped = {"too long": 0, "near an evaluation text": 0, "near another starter text": 0}
    for spec in SOURCES:
        for label, keep, quota in spec["take"]:
            cands = [r for r in files[spec["file"]] if r["label"] == label and (keep is None or keep(r))]
            if spec["source"] == "openai_moderation":
                cands = [r for r in cands if r["id"] in oai_starter]
            if spec["source"] == "jbb_artifacts":
                cands = [r for r in cands if jbb_index(r["id"]) in starter_goals]
                # Round-robin over attack methods so that no one method dominates.
                by_method = {}
                for r in sorted(cands, key=lambda r: rank(r["id"])):
                    by_method.setdefault(r["id"].split("-")[1], []).append(r)
                cands = [r for k in range(max(map(len, by_method.values()), default=0))
                         for m in sorted(by_method) if k < len(by_method[m]) for r in [by_method[m][k]]]
            else:
                cands.sort(key=lambda r: rank(r["id"]))
            taken = 0
            for r in cands:
                if quota is not None and taken >= quota:
                    break
                if len(r["text"]) > MAX_CHARS:
                    dropped["too long"] += 1
                    continue
                if held_out.find(r["text"]) is not None:
                    dropped["near an evaluation text"] += 1
                    continue
                if chosen.find(r["text"]) is not None or norm(r["text"]) in chosen_jailbreaks:
                    dropped["near another starter text"] += 1
                    continue
                rec = {"id": r["id"], "text": r["text"], "label": label, "source": spec["source"],
                       "category": r.get("category")}
                if "lang" in r:
                    rec["lang"] = r["lang"]
                rec["kind"] = spec["kind"]
                if "base" in r:
                    rec["base"] = r["base"]
                if spec["kind"] == "jailbreak":
                    chosen_jailbreaks.add(norm(r["text"]))
                else:
                    chosen.add(r["text"], r["id"])
                out.append(rec)
                taken += 1
    return out, dropped, {"jbb_goals": sorted(starter_goals), "oai_starter": len(oai_starter), "oai_total": len(oai)}


def table(records):
    rows = []
    for spec in SOURCES:
        recs = [r for r in records if r["source"] == spec["source"]]
        safe = sum(r["label"] == "safe" for r in recs)
        unsafe = len(recs) - safe
        langs = sorted({r.get("lang", "en") for r in recs}, key=lambda l: (l != "en", l))
        files = ", ".join(f"`LICENSES/{f}`" for f in spec["licence_files"])
        rows.append(f"| {spec['source']} | {spec['licence']} | {safe} | {unsafe} | {spec['kinds']} | {', '.join(langs)} | {files} |")
    safe = sum(r["label"] == "safe" for r in records)
    head = ["| source | licence | safe | unsafe | kinds | languages | licence file |",
            "|---|---|---:|---:|---|---|---|"]
    return "\n".join(head + rows + [f"| **total** | | **{safe}** | **{len(records) - safe}** | | | |"])


README = """# Starter prompt set

`prompts.jsonl`: {n} labelled prompts ({safe} safe, {unsafe} unsafe) for training a prompt-safety guard on your own
model, drawn from permissively licensed public sets (MIT, Apache-2.0, CC BY 4.0). Content warning: the unsafe
prompts ask for violent, hateful, sexual and otherwise harmful things; they are here only to train and test safety
classifiers.

Format: one JSON object a line, the library's normalized format (`loadPromptFiles` reads it):
`{{"id", "text", "label": "safe"|"unsafe", "source", "category", "lang"?, "kind", "base"?}}`. `lang` (ISO 639-1)
is present on non-English prompts; `kind` is `moderation`, `jailbreak`, `harmful-request` or `benign-request`;
`base` is, on jailbreak prompts, the JailbreakBench behaviour the attack wraps.

## Composition

{table}

## What is not here

- **No safe prompts in languages other than English.** None of the permissively licensed sets available to us has
  benign non-English prompts (MultiJail, CatQA and AILuminate's French prompts are all harmful). A guard trained on
  this set alone sees non-English text only on the unsafe side and may learn language as a shortcut: add benign
  prompts in the languages you serve before trusting it on them.
- **Few benign everyday requests.** The permissive benign sets are small (Self-Instruct seeds, MT-Bench) or narrow
  (GSM8K maths); Alpaca and AlpacaEval are CC BY-NC and are not used. The safe side is therefore mostly moderation
  texts and maths problems.
- **Hard negatives** (texts that sound risky but are fine) are the safe side of the OpenAI moderation set only;
  the XSTest-style contrast sets are evaluation sets and stay out, and AILuminate's specialised-advice prompts mix
  benign and harmful requests, so they are not used either.

## How it was built

`python3 scripts/build-starter-data.py [SHARED_DATA_DIR] [--out DIR]` rebuilds this folder byte for byte from the
project's shared data folder (`../shared/data` beside the checkout), reading its normalized files
(`normalized/prompts_*.jsonl`), from which the shared normalizer has already removed everything that overlaps its
reserved evaluation sets (exact, case- and punctuation-insensitive, or near-duplicate).

- Sampling is seeded: records are ranked by SHA-256 of `{seed}` and their id, and each source takes the
  first ones of its quota in that order (per language where a source has several; jailbreaks round-robin over
  the attack methods).
- Texts longer than {max_chars} characters are left out, not cut (cutting can remove the part that makes a text
  unsafe): {too_long} left out.
- Duplicates: a text whose normalized form (lower case, whitespace collapsed) equals, or whose word set has a
  Jaccard similarity of at least 0.8 with, an earlier starter text is left out ({near_starter} left out).
  Jailbreaks are compared with each other only exactly: prompts built on one attack template share most of
  their words even when the requests they wrap differ.
- Evaluation sets stay clean: a text equal or near (the same rule) to an AdvBench behaviour, a HarmBench behaviour,
  a JailbreakBench behaviour not chosen below, or a text of the OpenAI moderation evaluation half is left out
  ({near_eval} left out). Two sets are split instead of avoided, so that they can be both trained on and evaluated:
  - OpenAI moderation: a seeded half of each label ({oai_starter} of {oai_total} records) is the starter's pool;
    the other half is for evaluation.
  - JailbreakBench: only attacks on {n_goals} of the 55 behaviours JailbreakBench wrote itself (source
    `Original`) are used; the other behaviours, including all those taken from AdvBench and HarmBench, are
    never wrapped here. The {n_goals} (0-based rows of JBB-Behaviors): {goals}.
  An evaluation that reads these sets (OpenAI moderation, JailbreakBench behaviours) must drop the records that
  equal a starter `text` or `base`; `dropOverlap` in `src/io/suites.ts` does that.
- The latent-prototype paper (arXiv 2502.16174) also counts false positives on benign sets, among them MT-Bench
  and the GSM8K test questions: the starter uses all MT-Bench first turns and part of GSM8K test, so drop them
  (the same way) before such a measurement.

## Attribution and licences

{attribution}

No CC BY-NC data is used. The licence texts are in `LICENSES/` (copied unmodified from the source repositories).
"""


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    shared = os.path.join(os.path.dirname(repo), "shared", "data")
    out_dir = os.path.join(repo, "data", "starter")
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--out" and args:
            out_dir = args.pop(0)
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        elif not a.startswith("-"):
            shared = a
        else:
            print(f"unknown argument {a}\n{__doc__}", file=sys.stderr)
            return 2
    if not os.path.isdir(os.path.join(shared, "normalized")):
        print(f"no shared data folder at {shared} (expected {shared}/normalized)", file=sys.stderr)
        return 1

    records, dropped, info = build(shared)
    safe = sum(r["label"] == "safe" for r in records)
    tab = table(records)
    attribution = "\n".join(f"- **{s['source']}** ({s['licence']}): {s['attribution']}" for s in SOURCES)
    readme = README.format(
        n=len(records), safe=safe, unsafe=len(records) - safe, table=tab, seed=SEED, max_chars=MAX_CHARS,
        too_long=dropped["too long"], near_starter=dropped["near another starter text"],
        near_eval=dropped["near an evaluation text"], oai_starter=info["oai_starter"], oai_total=info["oai_total"],
        n_goals=len(info["jbb_goals"]), goals=", ".join(map(str, info["jbb_goals"])), attribution=attribution)

    os.makedirs(os.path.join(out_dir, "LICENSES"), exist_ok=True)
    with open(os.path.join(out_dir, "prompts.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(readme)
    for name, src in LICENCE_FILES.items():
        shutil.copyfile(os.path.join(shared, src), os.path.join(out_dir, "LICENSES", name))
    print(tab)
    print(f"\n{len(records)} prompts written to {out_dir}; left out: " + ", ".join(f"{v} {k}" for k, v in dropped.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
