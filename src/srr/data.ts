/**
 * Response-ranking data (safe response ranking): reading normalized JSONL files with one instruction
 * per line and its candidate responses,
 *
 * ```json
 * {"id": "...", "prompt": "...", "source": "...", "category": "...",
 *  "candidates": [{"text": "...", "label": "unsafe", ...}, {"text": "...", "label": "safe"}]}
 * ```
 *
 * and splitting the lists by instruction (seeded hash of the normalized prompt) or by source.
 * Extra keys (`category`, candidates' `model`, `method`, ...) are ignored.
 */
import { basename } from "node:path";
import { DataFormatError } from "../errors";
import { readJsonl } from "../io/jsonl";
import { describe, normalizeText, recordIdAndSource, splitBounds, type SplitOptions, type Splits, unitHash } from "../io/records";

export interface RankCandidate {
  /** The response text (truncated when `maxChars` was given). */
  text: string;
  /** true for a "safe" candidate, false for an "unsafe" one. */
  safe: boolean;
}

/** One instruction and its candidate responses. */
export interface RankItem {
  /** The record's id (numbers become strings); `<basename>:<line>` when the file gives none. */
  id: string;
  prompt: string;
  /** The record's `source` field, or the file's basename. */
  source: string;
  /** Candidates in file order (minus dropped duplicates and, with `maxCandidates`, unchosen ones). */
  candidates: RankCandidate[];
  /** The file the record came from, as passed to {@link loadResponseFiles}. */
  file: string;
  /** 1-based line number in that file. */
  line: number;
}

export interface LoadResponseOptions {
  /** Replace bytes that are not valid UTF-8 instead of failing (see readJsonl). */
  lossyUtf8?: boolean;
  /** Read at most this many lists (non-blank lines) from each file. */
  limitPerFile?: number;
  /**
   * Keep at most this many candidates per list: a deterministic subset (chosen by a hash of the
   * candidate text, so independent of file order) that keeps both labels when the list has both and
   * `maxCandidates >= 2`, each label getting about its share of the list. Kept candidates stay in
   * file order.
   */
  maxCandidates?: number;
  /**
   * Truncate candidate texts to this many characters (UTF-16 code units, never splitting a surrogate
   * pair). De-duplication happens after truncation. Default: no truncation.
   */
  maxChars?: number;
  signal?: AbortSignal;
}

export interface LoadResponseStats {
  /** Valid lists (non-blank lines) read. */
  read: number;
  /** Lists returned: `read` minus lists left with no candidate (all their texts conflicted). */
  lists: number;
  /** Candidates in the returned lists. */
  candidates: number;
  /** Candidates dropped because an earlier candidate of the same list had the same text and label. */
  duplicates: number;
  /** Distinct texts dropped from a list (all their copies) because they appear there with both labels. */
  conflicts: number;
  /** Returned lists with at least one safe and one unsafe candidate. */
  withBoth: number;
  /** Returned lists whose candidates are all safe. */
  onlySafe: number;
  /** Returned lists whose candidates are all unsafe. */
  onlyUnsafe: number;
  /** Returned lists per source. */
  perSource: Record<string, number>;
}

function checkPositiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
    throw new RangeError(`${name} must be a positive integer, got ${String(v)}`);
  }
}

/** The first `max` UTF-16 code units of `text`, one less if that would split a surrogate pair. */
function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

interface ParsedList {
  id: string;
  prompt: string;
  source: string;
  candidates: RankCandidate[];
}

function parseList(file: string, base: string, line: number, value: Record<string, unknown>): ParsedList {
  const prompt = value.prompt;
  if (prompt === undefined) throw new DataFormatError(file, line, 'missing field "prompt"');
  if (typeof prompt !== "string" || prompt.trim().length === 0) {
    throw new DataFormatError(file, line, `prompt must be a non-empty string, got ${describe(prompt)}`);
  }
  const cands = value.candidates;
  if (cands === undefined) throw new DataFormatError(file, line, 'missing field "candidates"');
  if (!Array.isArray(cands) || cands.length === 0) {
    throw new DataFormatError(file, line, `candidates must be a non-empty array, got ${describe(cands)}`);
  }
  const candidates: RankCandidate[] = cands.map((c: unknown, i) => {
    if (c === null || typeof c !== "object" || Array.isArray(c)) {
      throw new DataFormatError(file, line, `candidates[${i}] must be an object, got ${describe(c)}`);
    }
    const { text, label } = c as Record<string, unknown>;
    if (typeof text !== "string" || text.trim().length === 0) {
      throw new DataFormatError(file, line, `candidates[${i}].text must be a non-empty string, got ${describe(text)}`);
    }
    if (label !== "safe" && label !== "unsafe") {
      throw new DataFormatError(file, line, `candidates[${i}].label must be "safe" or "unsafe", got ${describe(label)}`);
    }
    return { text, safe: label === "safe" };
  });
  const { id, source } = recordIdAndSource(value, file, line, base);
  return { id, prompt, source, candidates };
}

/**
 * Drop exact-duplicate texts: the first candidate with a text is kept and later ones with the same
 * label dropped; a text that appears with both labels is dropped altogether.
 */
function dedupe(cands: readonly RankCandidate[]): { kept: RankCandidate[]; duplicates: number; conflicts: number } {
  const labels = new Map<string, number>(); // bit 0: safe seen, bit 1: unsafe seen
  for (const c of cands) labels.set(c.text, (labels.get(c.text) ?? 0) | (c.safe ? 1 : 2));
  let conflicts = 0;
  for (const bits of labels.values()) if (bits === 3) conflicts++;
  const seen = new Set<string>();
  const kept: RankCandidate[] = [];
  let duplicates = 0;
  for (const c of cands) {
    if (labels.get(c.text) === 3) continue;
    if (seen.has(c.text)) {
      duplicates++;
      continue;
    }
    seen.add(c.text);
    kept.push(c);
  }
  return { kept, duplicates, conflicts };
}

/**
 * A deterministic subset of at most `max` candidates (texts are distinct): both labels kept when
 * present and `max >= 2`, each label getting its proportional share (rounded, at least 1), the
 * candidates of a label chosen by the lowest hash of their text. The subset keeps the input order.
 */
function subset(cands: readonly RankCandidate[], max: number): RankCandidate[] {
  if (cands.length <= max) return cands.slice();
  const h = cands.map((c) => unitHash("safety-lens-srr-subset", c.text));
  const byHash = (idx: number[]) => idx.sort((a, b) => h[a] - h[b] || a - b);
  const safeIdx = byHash(cands.flatMap((c, i) => (c.safe ? [i] : [])));
  const unsafeIdx = byHash(cands.flatMap((c, i) => (c.safe ? [] : [i])));
  let chosen: number[];
  if (safeIdx.length === 0 || unsafeIdx.length === 0 || max < 2) {
    chosen = byHash(cands.map((_, i) => i)).slice(0, max);
  } else {
    let nSafe = Math.round((max * safeIdx.length) / cands.length);
    nSafe = Math.min(Math.max(nSafe, 1), max - 1, safeIdx.length);
    const nUnsafe = Math.min(max - nSafe, unsafeIdx.length);
    nSafe = Math.min(max - nUnsafe, safeIdx.length);
    chosen = [...safeIdx.slice(0, nSafe), ...unsafeIdx.slice(0, nUnsafe)];
  }
  return chosen.sort((a, b) => a - b).map((i) => cands[i]);
}

/** Whether the item has at least one safe and one unsafe candidate. */
export function hasBothLabels(item: { candidates: readonly { safe: boolean }[] }): boolean {
  let s = false;
  let u = false;
  for (const c of item.candidates) {
    if (c.safe) s = true;
    else u = true;
    if (s && u) return true;
  }
  return false;
}

/**
 * Read response lists from normalized JSONL files, in the order given (files, then lines).
 *
 * Each line needs a non-empty string `prompt` and a non-empty array `candidates` of objects with a
 * non-empty string `text` and a `label` of exactly "safe" or "unsafe"; `id` (string or number) and
 * `source` (string) are optional. Per list: texts are truncated (`maxChars`), exact-duplicate texts
 * dropped (a text that appears with both labels goes entirely), then subsampled (`maxCandidates`); a
 * list left without candidates is dropped. Lists are not de-duplicated across files: the same
 * instruction may come with other candidates from another source (see {@link splitByInstruction}).
 *
 * @throws DataFormatError (`<file>:<line>: <problem>`, e.g.
 *   `candidates[3].label must be "safe" or "unsafe", got "ok"`) for a malformed line; an Error with
 *   code ENOENT for a missing file; RangeError for a bad option.
 */
export async function loadResponseFiles(
  files: readonly string[],
  opts: LoadResponseOptions = {},
): Promise<{ items: RankItem[]; stats: LoadResponseStats }> {
  if (!Array.isArray(files) || !files.every((f) => typeof f === "string" && f.length > 0)) {
    throw new TypeError("files must be an array of file paths");
  }
  const { limitPerFile, maxCandidates, maxChars } = opts;
  checkPositiveInt("limitPerFile", limitPerFile);
  checkPositiveInt("maxCandidates", maxCandidates);
  checkPositiveInt("maxChars", maxChars);

  const items: RankItem[] = [];
  const stats: LoadResponseStats = {
    read: 0,
    lists: 0,
    candidates: 0,
    duplicates: 0,
    conflicts: 0,
    withBoth: 0,
    onlySafe: 0,
    onlyUnsafe: 0,
    perSource: {},
  };
  for (const file of files) {
    const base = basename(file);
    let n = 0;
    for await (const { line, value } of readJsonl(file, { signal: opts.signal, lossyUtf8: opts.lossyUtf8 })) {
      const parsed = parseList(file, base, line, value);
      stats.read++;
      let cands = parsed.candidates;
      if (maxChars !== undefined) cands = cands.map((c) => ({ text: truncate(c.text, maxChars), safe: c.safe }));
      const d = dedupe(cands);
      stats.duplicates += d.duplicates;
      stats.conflicts += d.conflicts;
      cands = maxCandidates !== undefined ? subset(d.kept, maxCandidates) : d.kept;
      if (cands.length > 0) {
        const item: RankItem = { ...parsed, candidates: cands, file, line };
        items.push(item);
        stats.lists++;
        stats.candidates += cands.length;
        stats.perSource[item.source] = (stats.perSource[item.source] ?? 0) + 1;
        if (hasBothLabels(item)) stats.withBoth++;
        else if (cands[0].safe) stats.onlySafe++;
        else stats.onlyUnsafe++;
      }
      if (limitPerFile !== undefined && ++n >= limitPerFile) break;
    }
  }
  return { items, stats };
}

/**
 * Split lists into train / validation / test by a seeded hash of the normalized prompt
 * ({@link normalizeText}: lower-case, whitespace collapsed), so all lists of one instruction land in
 * the same split, whichever file or source they come from, independently of order and of the other
 * lists. Not stratified; each split gets its fraction of the distinct instructions in expectation.
 * Lists keep their input order within each split.
 */
export function splitByInstruction<T extends { prompt: string }>(items: readonly T[], opts: SplitOptions = {}): Splits<T> {
  if (!Array.isArray(items)) throw new TypeError("items must be an array");
  const {
    seed,
    hi: [hi0, hi1],
  } = splitBounds(opts);
  const out: Splits<T> = { train: [], val: [], test: [] };
  const memo = new Map<string, number>();
  for (const item of items) {
    const key = normalizeText(item.prompt);
    let u = memo.get(key);
    if (u === undefined) {
      u = unitHash(`safety-lens-srr-split\0${seed}`, key);
      memo.set(key, u);
    }
    (u < hi0 ? out.train : u < hi1 ? out.val : out.test).push(item);
  }
  return out;
}

export interface SplitBySourceOptions {
  /** Remove test lists whose normalized prompt also occurs in a train list (default false). */
  dropSharedPrompts?: boolean;
}

/**
 * Cross-source split: lists from `trainSources` go to train, lists from `testSources` to test, others
 * are left out. Some sources share instructions (the JailbreakBench artifacts and the
 * refusal-direction completions answer the same JBB goals): `sharedPrompts` counts the test lists
 * whose normalized prompt occurs in train, and `dropSharedPrompts` removes them.
 *
 * @throws RangeError when a source is in both lists, or is named but has no lists.
 */
export function splitBySource<T extends { prompt: string; source: string }>(
  items: readonly T[],
  trainSources: readonly string[],
  testSources: readonly string[],
  opts: SplitBySourceOptions = {},
): { train: T[]; test: T[]; sharedPrompts: number } {
  if (!Array.isArray(items)) throw new TypeError("items must be an array");
  const trainSet = new Set(trainSources);
  const testSet = new Set(testSources);
  const both = [...trainSet].filter((s) => testSet.has(s));
  if (both.length > 0) throw new RangeError(`sources in both train and test: ${both.join(", ")}`);
  const present = new Set(items.map((it) => it.source));
  const missing = [...trainSet, ...testSet].filter((s) => !present.has(s));
  if (missing.length > 0) {
    throw new RangeError(`no lists for source(s) ${missing.join(", ")} (present: ${[...present].sort().join(", ") || "none"})`);
  }
  const train = items.filter((it) => trainSet.has(it.source));
  const trainPrompts = new Set(train.map((it) => normalizeText(it.prompt)));
  let test = items.filter((it) => testSet.has(it.source));
  const shared = test.filter((it) => trainPrompts.has(normalizeText(it.prompt)));
  if (opts.dropSharedPrompts) test = test.filter((it) => !trainPrompts.has(normalizeText(it.prompt)));
  return { train, test, sharedPrompts: shared.length };
}
