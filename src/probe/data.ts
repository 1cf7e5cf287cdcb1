/**
 * Labelled prompt data for probe training: reading normalized JSONL files (one
 * `{ id, text, label: "safe" | "unsafe", source, ... }` object per line), de-duplicating them,
 * and a deterministic, stratified train / validation / test split.
 */
import { basename } from "node:path";
import { DataFormatError } from "../errors";
import { readJsonl } from "../io/jsonl";
import { describe, normalizeText, recordIdAndSource, splitBounds, type SplitOptions, type Splits, unitHash } from "../io/records";

export type { SplitOptions, Splits };

export interface PromptRecord {
  /** The record's id (numbers become strings); `<basename>:<line>` when the file gives none. */
  id: string;
  text: string;
  /** 1 = unsafe, 0 = safe. */
  label: 0 | 1;
  /** The record's `source` field, or the file's basename. */
  source: string;
  /** The file the record came from, as passed to {@link loadPromptFiles}. */
  file: string;
  /** 1-based line number in that file. */
  line: number;
}

export interface LoadPromptStats {
  /** Valid records read, before de-duplication. */
  read: number;
  /** Records dropped because an earlier record had the same normalized text and label. */
  duplicates: number;
  /** Distinct normalized texts dropped because they appear with both labels (all their records go). */
  conflicts: number;
  /** Records kept from each file (keyed by the path as given). */
  perFile: Record<string, number>;
}

export interface LoadPromptOptions {
  /** Read at most this many records (non-blank lines) from each file. */
  limitPerFile?: number;
  signal?: AbortSignal;
  /** Replace bytes that are not valid UTF-8 instead of failing (see readJsonl). */
  lossyUtf8?: boolean;
}

function parseRecord(file: string, base: string, line: number, value: Record<string, unknown>): PromptRecord {
  const text = value.text;
  if (text === undefined) throw new DataFormatError(file, line, 'missing field "text"');
  if (typeof text !== "string" || text.trim().length === 0) {
    throw new DataFormatError(file, line, `text must be a non-empty string, got ${describe(text)}`);
  }
  const label = value.label;
  if (label === undefined) throw new DataFormatError(file, line, 'missing field "label" (must be "safe" or "unsafe")');
  if (label !== "safe" && label !== "unsafe") {
    throw new DataFormatError(file, line, `label must be "safe" or "unsafe", got ${describe(label)}`);
  }
  const { id, source } = recordIdAndSource(value, file, line, base);
  return { id, text, label: label === "unsafe" ? 1 : 0, source, file, line };
}

/**
 * Read labelled prompts from normalized JSONL files, in the order given (files, then lines).
 *
 * De-duplication is by normalized text (see {@link normalizeText}): the first record of a text is
 * kept, later ones with the same label are dropped (counted in `duplicates`), and a text that
 * appears with both labels is dropped altogether (counted once in `conflicts`).
 *
 * @throws DataFormatError (`<file>:<line>: <problem>`) for a line that is not a JSON object, or
 *   whose text, label, id or source is malformed; an Error with code ENOENT for a missing file.
 */
export async function loadPromptFiles(
  files: readonly string[],
  opts: LoadPromptOptions = {},
): Promise<{ records: PromptRecord[]; stats: LoadPromptStats }> {
  if (!Array.isArray(files) || !files.every((f) => typeof f === "string" && f.length > 0)) {
    throw new TypeError("files must be an array of file paths");
  }
  const limit = opts.limitPerFile;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new RangeError(`limitPerFile must be a positive integer, got ${String(limit)}`);
  }
  const all: PromptRecord[] = [];
  for (const file of files) {
    const base = basename(file);
    let n = 0;
    for await (const { line, value } of readJsonl(file, { signal: opts.signal, lossyUtf8: opts.lossyUtf8 })) {
      all.push(parseRecord(file, base, line, value));
      if (limit !== undefined && ++n >= limit) break;
    }
  }

  // First pass: the labels each normalized text appears with.
  const labelsByText = new Map<string, number>(); // bit 0: safe seen, bit 1: unsafe seen
  const keys = all.map((r) => normalizeText(r.text));
  keys.forEach((k, i) => labelsByText.set(k, (labelsByText.get(k) ?? 0) | (all[i].label === 1 ? 2 : 1)));

  const records: PromptRecord[] = [];
  const perFile: Record<string, number> = {};
  for (const f of files) perFile[f] = 0;
  const seen = new Set<string>();
  let duplicates = 0;
  let conflicts = 0;
  for (const [k, bits] of labelsByText) if (bits === 3) conflicts++;
  all.forEach((r, i) => {
    const k = keys[i];
    if (labelsByText.get(k) === 3) return;
    if (seen.has(k)) {
      duplicates++;
      return;
    }
    seen.add(k);
    records.push(r);
    perFile[r.file]++;
  });
  return { records, stats: { read: all.length, duplicates, conflicts, perFile } };
}

/**
 * Split records into train / validation / test, stratified by label.
 *
 * Each record goes by a seeded hash of its id alone, so an id's split does not depend on which other
 * records are present or on their order, and each label is split in the given proportions (in
 * expectation). The one exception: a label with at least 3 records whose hash left a split (with a
 * non-zero fraction) without any of them gets one moved there, from the split that holds most,
 * choosing the record whose hash lies nearest to the empty split's interval. Records keep their
 * input order within each split.
 */
export function splitRecords<T extends { id: string; label: 0 | 1 }>(records: readonly T[], opts: SplitOptions = {}): Splits<T> {
  if (!Array.isArray(records)) throw new TypeError("records must be an array");
  const { seed, hi } = splitBounds(opts);
  // Split k covers [lo[k], hi[k]) of the unit interval.
  const lo = [0, hi[0], hi[1]];
  const bucketOf = (u: number): number => (u < hi[0] ? 0 : u < hi[1] ? 1 : 2);

  const n = records.length;
  const u = new Float64Array(n);
  const bucket = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const r = records[i];
    if (r.label !== 0 && r.label !== 1) throw new TypeError(`records[${i}].label must be 0 or 1, got ${String(r.label)}`);
    u[i] = unitHash(`safety-lens-split\0${seed}`, String(r.id));
    bucket[i] = bucketOf(u[i]);
  }

  for (const label of [0, 1] as const) {
    const idx: number[] = [];
    for (let i = 0; i < n; i++) if (records[i].label === label) idx.push(i);
    if (idx.length < 3) continue;
    for (let k = 0; k < 3; k++) {
      if (hi[k] === lo[k]) continue; // a split with fraction 0 gets nothing
      const counts = [0, 0, 0];
      for (const i of idx) counts[bucket[i]]++;
      if (counts[k] > 0) continue;
      const donor = counts.indexOf(Math.max(...counts)); // >= 2 records since >= 3 records in <= 2 splits
      const dist = (i: number) => (u[i] < lo[k] ? lo[k] - u[i] : u[i] - hi[k]);
      let best = -1;
      for (const i of idx) {
        if (bucket[i] !== donor) continue;
        if (best < 0 || dist(i) < dist(best) || (dist(i) === dist(best) && String(records[i].id) < String(records[best].id))) best = i;
      }
      bucket[best] = k;
    }
  }

  const out: Splits<T> = { train: [], val: [], test: [] };
  const names = ["train", "val", "test"] as const;
  for (let i = 0; i < n; i++) out[names[bucket[i]]].push(records[i]);
  return out;
}

/** The labels (1 = unsafe) as a Uint8Array. */
export function labelsOf(records: readonly { label: 0 | 1 }[]): Uint8Array {
  const y = new Uint8Array(records.length);
  for (let i = 0; i < records.length; i++) y[i] = records[i].label;
  return y;
}

/** The records' sources, in order. */
export function sourcesOf(records: readonly { source: string }[]): string[] {
  return records.map((r) => r.source);
}
