/**
 * Reading the standard prompt-safety benchmarks from the files their authors publish (CSV, TSV, text,
 * JSONL, gzipped JSONL, Parquet), recognised by file name and columns (see `suite-specs.ts`).
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { parse } from "csv-parse/sync";
import { AbortError, DataFormatError } from "../errors";
import { readJsonl } from "./jsonl";
import { normalizeText } from "./records";
import { openParquet } from "./parquet";
import { SUITES, type Format, type Row, type SuiteKind, type SuiteRecord, type SuiteSpec } from "./suite-specs";

export { SUITES } from "./suite-specs";
export type { SuiteKind, SuiteRecord, SuiteSpec } from "./suite-specs";

export interface SuiteSet {
  /** Short name, e.g. "xstest", "jbb-harmful", "harmbench-test"; unique within one folder. */
  name: string;
  /** The benchmark's name for people, e.g. "XSTest". */
  title: string;
  /** The file read (as joined from the folder given). */
  file: string;
  kind: SuiteKind;
  records: SuiteRecord[];
  /** Rows left out, per reason (e.g. WildGuardTest rows without a prompt label). */
  dropped: { reason: string; count: number }[];
}

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface ReadSuiteOptions {
  signal?: AbortSignal;
}

interface Table {
  /** Column names as in the file. */
  columns: string[];
  /** The line of the header (CSV/TSV: 1), for column errors; null where there is none (Parquet). */
  headerLine: number | null;
  /** Rows with their line (1-based; for Parquet the row number, reported as "row N"). */
  rows: { row: Row; line: number }[];
  /** Whether `line` is a line of the file (false: a Parquet row number). */
  lines: boolean;
}

function formatOf(name: string): Format | null {
  const n = name.toLowerCase();
  if (n.endsWith(".csv")) return "csv";
  if (n.endsWith(".tsv")) return "tsv";
  if (n.endsWith(".txt")) return "txt";
  if (n.endsWith(".jsonl") || n.endsWith(".jsonl.gz")) return "jsonl";
  if (n.endsWith(".parquet")) return "parquet";
  return null;
}

function readDelimited(file: string, content: string, delimiter: string): Table {
  let parsed: { record: string[]; info: { lines: number } }[];
  try {
    parsed = parse(content, { bom: true, delimiter, skip_empty_lines: true, info: true }) as unknown as typeof parsed;
  } catch (err) {
    const e = err as Error & { lines?: number };
    throw new DataFormatError(file, typeof e.lines === "number" ? e.lines : null, `invalid ${delimiter === "\t" ? "TSV" : "CSV"}: ${e.message}`);
  }
  if (parsed.length === 0) return { columns: [], headerLine: 1, rows: [], lines: true };
  const columns = parsed[0].record;
  const rows = parsed.slice(1).map(({ record, info }) => {
    const row: Row = {};
    columns.forEach((c, i) => (row[c] = record[i]));
    return { row, line: info.lines };
  });
  return { columns, headerLine: 1, rows, lines: true };
}

async function readJsonlTable(file: string, signal?: AbortSignal): Promise<Table> {
  const rows: { row: Row; line: number }[] = [];
  if (file.toLowerCase().endsWith(".gz")) {
    let content: string;
    try {
      content = gunzipSync(await readFile(file)).toString("utf8");
    } catch (err) {
      throw new DataFormatError(file, null, `cannot decompress: ${(err as Error).message}`);
    }
    content.split("\n").forEach((raw, i) => {
      const t = (i === 0 ? raw.replace(/^\uFEFF/, "") : raw).trim();
      if (t === "") return;
      let value: unknown;
      try {
        value = JSON.parse(t);
      } catch (err) {
        throw new DataFormatError(file, i + 1, `invalid JSON: ${(err as Error).message}`);
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new DataFormatError(file, i + 1, "expected a JSON object");
      rows.push({ row: value as Row, line: i + 1 });
    });
  } else {
    for await (const { line, value } of readJsonl(file, { signal })) rows.push({ row: value, line });
  }
  return { columns: rows.length ? Object.keys(rows[0].row) : [], headerLine: rows.length ? rows[0].line : 1, rows, lines: true };
}

async function readTable(file: string, format: Format, signal?: AbortSignal): Promise<Table> {
  switch (format) {
    case "csv":
    case "tsv":
      return readDelimited(file, await readFile(file, "utf8"), format === "tsv" ? "\t" : ",");
    case "txt": {
      const rows: { row: Row; line: number }[] = [];
      (await readFile(file, "utf8")).split(/\r?\n/).forEach((l, i) => {
        if (l.trim() !== "") rows.push({ row: { line: i === 0 ? l.replace(/^\uFEFF/, "") : l }, line: i + 1 });
      });
      return { columns: ["line"], headerLine: null, rows, lines: true };
    }
    case "jsonl":
      return readJsonlTable(file, signal);
    case "parquet": {
      const table = await openParquet(file);
      const rows = (await table.read(table.columns)).map((row, i) => ({ row, line: i + 1 }));
      return { columns: table.columns, headerLine: null, rows, lines: false };
    }
  }
}

function lowerMap(columns: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const c of columns) if (!m.has(c.toLowerCase())) m.set(c.toLowerCase(), c);
  return m;
}

function needText(spec: SuiteSpec): string {
  return spec.needs.map((n) => (typeof n === "string" ? n : n.join(" or "))).join(", ");
}

function kindOf(spec: SuiteSpec, name: string, records: readonly SuiteRecord[]): SuiteKind {
  if (typeof spec.kind === "function") return spec.kind(name);
  if (spec.kind) return spec.kind;
  const unsafe = records.filter((r) => r.label === "unsafe").length;
  return unsafe === records.length && unsafe > 0 ? "harmful" : unsafe === 0 && records.length > 0 ? "benign" : "mixed";
}

/** Turn a table into a set with `spec`, checking its columns (and, in JSONL, each record's fields). */
function applySpec(spec: SuiteSpec, file: string, table: Table): Omit<SuiteSet, "name"> {
  const name = basename(file);
  const cols = lowerMap(table.columns);
  const perRow = table.columns.length > 0 && formatOf(name) === "jsonl";
  const where = (line: number) => (table.lines ? line : null);
  const detailAt = (line: number, d: string) => (table.lines ? d : `row ${line}: ${d}`);
  for (const need of spec.needs) {
    const alts = typeof need === "string" ? [need] : need;
    if (!alts.some((a) => cols.has(a.toLowerCase()))) {
      throw new DataFormatError(file, table.headerLine, `missing column "${alts.join('" or "')}" (${spec.title} needs ${needText(spec)})`);
    }
  }
  const records: SuiteRecord[] = [];
  const dropped = new Map<string, number>();
  for (const { row, line } of table.rows) {
    const keys = perRow ? lowerMap(Object.keys(row)) : cols;
    if (perRow) {
      for (const need of spec.needs) {
        const alts = typeof need === "string" ? [need] : need;
        if (!alts.some((a) => keys.has(a.toLowerCase()))) throw new DataFormatError(file, line, `missing field "${alts.join('" or "')}"`);
      }
    }
    const get = (c: string): unknown => {
      const k = keys.get(c.toLowerCase());
      return k === undefined ? undefined : row[k];
    };
    const out = spec.map(get, name);
    if ("bad" in out) throw new DataFormatError(file, where(line), detailAt(line, out.bad));
    if ("drop" in out) dropped.set(out.drop, (dropped.get(out.drop) ?? 0) + 1);
    else if (Array.isArray(out)) records.push(...out);
    else records.push(out);
  }
  return {
    title: spec.title,
    file,
    kind: kindOf(spec, name, records),
    records,
    dropped: [...dropped].map(([reason, count]) => ({ reason, count })),
  };
}

/**
 * Read every standard prompt-safety benchmark file in `dir` (not its subfolders).
 *
 * A file is recognised by its published name (e.g. `xstest_prompts.csv`,
 * `harmbench_behaviors_text_all.csv`, `MaliciousInstruct.txt`) or, failing that, by its columns (how
 * Hugging Face exports such as WildGuardTest, ToxicChat, Aegis or OpenAI moderation in Parquet are
 * told apart); files that are neither are listed in `skipped` with the reason.
 *
 * @throws DataFormatError naming the file (and line) when a recognised file lacks a column the
 *   benchmark needs or has a malformed row; an Error with code ENOENT / ENOTDIR when `dir` is not a
 *   folder; AbortError when the signal fires.
 */
export async function readSuiteDir(dir: string, opts: ReadSuiteOptions = {}): Promise<{ sets: SuiteSet[]; skipped: SkippedFile[] }> {
  if (typeof dir !== "string" || dir.length === 0) throw new TypeError("dir must be a folder path");
  let entries: string[];
  try {
    entries = (await readdir(dir)).sort();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT" || e.code === "ENOTDIR") {
      const out: NodeJS.ErrnoException = new Error(e.code === "ENOENT" ? `Benchmark folder not found: ${dir}` : `Not a folder: ${dir}`);
      out.code = e.code;
      out.path = dir;
      throw out;
    }
    throw err;
  }
  const sets: SuiteSet[] = [];
  const skipped: SkippedFile[] = [];
  const names = new Map<string, number>();
  for (const entry of entries) {
    if (opts.signal?.aborted) throw new AbortError();
    const file = join(dir, entry);
    if ((await stat(file)).isDirectory()) {
      skipped.push({ file, reason: "a folder (subfolders are not searched)" });
      continue;
    }
    const format = formatOf(entry);
    if (format === null) {
      skipped.push({ file, reason: "not a benchmark file type (.csv, .tsv, .txt, .jsonl, .jsonl.gz, .parquet)" });
      continue;
    }
    const byName = SUITES.find((s) => s.files?.test(entry) && s.formats.includes(format));
    if (format === "txt" && !byName) {
      skipped.push({ file, reason: "a text file that is not a known benchmark (MaliciousInstruct.txt)" });
      continue;
    }
    const table = await readTable(file, format, opts.signal);
    if (table.columns.length === 0 && !byName) {
      skipped.push({ file, reason: "empty file" });
      continue;
    }
    const lc = new Set(table.columns.map((c) => c.toLowerCase()));
    const spec = byName ?? SUITES.find((s) => s.signature && s.formats.includes(format) && s.signature(lc));
    if (!spec) {
      skipped.push({ file, reason: `columns not recognised as a known benchmark: ${table.columns.map((c) => JSON.stringify(c)).join(", ")}` });
      continue;
    }
    const set = applySpec(spec, file, table);
    let name = spec.nameFor ? spec.nameFor(entry) : spec.name;
    const seen = names.get(name) ?? 0;
    names.set(name, seen + 1);
    if (seen > 0) name = `${name}-${seen + 1}`;
    sets.push({ name, ...set });
  }
  return { sets, skipped };
}

/**
 * The set without the records whose text (normalized as the prompt loader does: lower case,
 * whitespace collapsed) is among `texts`, counted in `dropped` as "also in the training data". For a
 * guard trained on the starter set, pass its prompts' `text` and `base` fields.
 */
export function dropOverlap(set: SuiteSet, texts: Iterable<string>): SuiteSet {
  const keys = new Set<string>();
  for (const t of texts) keys.add(normalizeText(t));
  const records = set.records.filter((r) => !keys.has(normalizeText(r.text)));
  const n = set.records.length - records.length;
  return { ...set, records, dropped: n > 0 ? [...set.dropped, { reason: "also in the training data", count: n }] : set.dropped };
}
