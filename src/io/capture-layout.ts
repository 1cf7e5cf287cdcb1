/**
 * What a capture file looks like: file names, shard ranges, the safetensors header a capture writes
 * (metadata keys and their order, the reserved header length) and how it is read back. Shared by
 * the writer (capture-file.ts), the merger (capture-merge.ts) and the reader (capture-reader.ts), so
 * that all three produce and expect byte-for-byte the same headers.
 *
 * Header metadata, in this order (all values are strings, as safetensors requires):
 *   format, model_fingerprint, layers (JSON), pool, total_rows, row_start, row_end, shard ("i/n",
 *   shard files only), source_digest (optional), row_ids (JSON, optional), the caller's extra
 *   metadata (sorted by key), then either `status: "incomplete"` (a file still being written) or
 *   skipped_rows (JSON, global row numbers), token_counts (JSON, optional) and the caller's final
 *   metadata (sorted by key). Row numbers are global: a shard file holds rows [row_start, row_end)
 *   of the input's total_rows.
 */
import { basename, dirname, join } from "node:path";
import { FileFormatError } from "../errors";
import { encodeSafetensorsHeader, type SafetensorsHeader } from "./safetensors";

/** A captured layer: a 0-based block number or "final" (tensor `layer.<n>` / `layer.final`). */
export type CaptureLayer = number | "final";

/** Version 2: the row-range (shard) layout; version 1 files (whole captures) are read as plain layer files. */
export const CAPTURE_FORMAT = "safety-lens.activations/2";
/** Bytes reserved in every header for the caller's final metadata (finish()). */
export const FINAL_METADATA_RESERVE = 4096;
/** The reference safetensors implementation refuses larger headers. */
export const MAX_HEADER_BYTES = 100_000_000;
/** The largest token count the reserved header has room for (int32). */
const WORST_TOKEN_COUNT = "2147483647";

/** What identifies a capture file's content; stored in its header and in the progress file. */
export interface CaptureIdentity {
  fingerprint: string;
  layers: CaptureLayer[];
  pool: string;
  width: number;
  totalRows: number;
  rowStart: number;
  rowEnd: number;
  /** "i/n" for a shard of n > 1, else null. */
  shard: string | null;
  sourceDigest: string | null;
  tokenCounts: boolean;
  /** Ids of rows rowStart..rowEnd-1, or null. */
  rowIds: string[] | null;
  /** Extra metadata, sorted by key. */
  metadata: [string, string][];
}

/** What is only known at the end. */
export interface CaptureFinal {
  skippedRows: number[];
  tokenCounts: ArrayLike<number> | null;
  /** Sorted by key. */
  metadata: [string, string][];
}

const RESERVED_KEYS = new Set([
  "format", "model_fingerprint", "layers", "pool", "total_rows", "row_start", "row_end", "shard",
  "source_digest", "row_ids", "status", "skipped_rows", "token_counts", "__metadata__",
]);
// Integer-like keys would be reordered by JSON.parse, which would break byte-identical rewrites.
const METADATA_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** Validates and sorts caller metadata (extra or final). */
export function metadataEntries(metadata: Record<string, string> | undefined, what: string): [string, string][] {
  if (metadata === undefined) return [];
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    throw new TypeError(`${what} must be an object of strings`);
  }
  const entries = Object.entries(metadata);
  for (const [k, v] of entries) {
    if (!METADATA_KEY.test(k)) throw new TypeError(`${what} key ${JSON.stringify(k)} must match ${METADATA_KEY}`);
    if (RESERVED_KEYS.has(k)) throw new TypeError(`${what} key "${k}" is reserved for the capture file itself`);
    if (typeof v !== "string") throw new TypeError(`${what} "${k}" must be a string, got ${typeof v}`);
  }
  return entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Rows of shard `index` (0-based) of `count` over `rows` rows: [floor(i*N/n), floor((i+1)*N/n)).
 * Shards are contiguous, disjoint, cover [0, N) and differ in size by at most one row.
 */
export function shardRange(index: number, count: number, rows: number): [number, number] {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`shard count must be a positive integer, got ${count}`);
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`shard index must be an integer in 0-${count - 1} for ${count} shards, got ${index}`);
  }
  if (!Number.isSafeInteger(rows) || rows < 0) throw new RangeError(`rows must be a non-negative integer, got ${rows}`);
  // BigInt: i*N can pass 2^53 for huge N and n.
  const at = (i: number) => Number((BigInt(i) * BigInt(rows)) / BigInt(count));
  return [at(index), at(index + 1)];
}

/** Parses a CLI shard "i/n" (0-based i, 0 <= i < n). */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new RangeError(`shard must look like i/n (0-based, e.g. 0/4), got ${JSON.stringify(text)}`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  shardRange(index, count, 0);
  return { index, count };
}

export function tensorName(layer: CaptureLayer): string {
  return `layer.${layer}`;
}

/** `acts.safetensors` + layer 12 -> `acts.layer-12.safetensors` (split-layers mode). */
export function layerFilePath(out: string, layer: CaptureLayer): string {
  const stem = basename(out).replace(/\.safetensors$/i, "");
  return join(dirname(out), `${stem}.layer-${layer}.safetensors`);
}

/** Where a file lives while it is written. */
export function partialPath(path: string): string {
  return `${path}.partial`;
}

/** The progress (sidecar) file of a capture to `out`. */
export function progressPath(out: string): string {
  return `${out}.progress.json`;
}

export function validateLayers(layers: unknown): CaptureLayer[] {
  if (!Array.isArray(layers) || layers.length === 0) throw new TypeError("layers must be a non-empty array of layer numbers or \"final\"");
  const seen = new Set<string>();
  for (const l of layers) {
    if (l !== "final" && !(Number.isSafeInteger(l) && (l as number) >= 0)) {
      throw new TypeError(`layers must be non-negative integers or "final", got ${JSON.stringify(l)}`);
    }
    if (seen.has(String(l))) throw new TypeError(`layer ${l} appears twice in layers`);
    seen.add(String(l));
  }
  return layers as CaptureLayer[];
}

/** Length of the JSON array of the integers [start, end) ("[0,1,...]"), computed, not built. */
export function rangeJsonLength(start: number, end: number): number {
  if (end <= start) return 2;
  let digits = 0;
  for (let lo = 0, d = 1; lo < end; lo = lo === 0 ? 10 : lo * 10, d++) {
    const hi = lo === 0 ? 10 : lo * 10; // numbers with d digits: [lo, hi)
    const a = Math.max(start, lo);
    const b = Math.min(end, hi);
    if (b > a) digits += (b - a) * d;
  }
  return 2 + digits + (end - start - 1);
}

/** The header metadata of a file with identity `id`: partial (`final` null) or finished. */
export function composeMetadata(id: CaptureIdentity, final: CaptureFinal | null): Record<string, string> {
  const m: Record<string, string> = {
    format: CAPTURE_FORMAT,
    model_fingerprint: id.fingerprint,
    layers: JSON.stringify(id.layers),
    pool: id.pool,
    total_rows: String(id.totalRows),
    row_start: String(id.rowStart),
    row_end: String(id.rowEnd),
  };
  if (id.shard !== null) m.shard = id.shard;
  if (id.sourceDigest !== null) m.source_digest = id.sourceDigest;
  if (id.rowIds !== null) m.row_ids = JSON.stringify(id.rowIds);
  for (const [k, v] of id.metadata) m[k] = v;
  if (final === null) {
    m.status = "incomplete";
    return m;
  }
  m.skipped_rows = JSON.stringify(final.skippedRows);
  if (id.tokenCounts) m.token_counts = `[${Array.from(final.tokenCounts ?? [], String).join(",")}]`;
  for (const [k, v] of final.metadata) m[k] = v;
  return m;
}

/** The tensors of a file with identity `id`, in data order. */
export function tensorsOf(id: CaptureIdentity): { name: string; shape: [number, number] }[] {
  return id.layers.map((l) => ({ name: tensorName(l), shape: [id.rowEnd - id.rowStart, id.width] }));
}

/**
 * The JSON header length reserved for `id`: room for the worst case of what finish() adds (every
 * row skipped, every token count at 2^31-1) plus FINAL_METADATA_RESERVE bytes of final metadata.
 * A function of the identity alone, so a resumed run, an uninterrupted one and a merge of shards
 * all reserve the same length and write the same bytes.
 */
export function reservedHeaderLength(id: CaptureIdentity): number {
  const rows = id.rowEnd - id.rowStart;
  const worst = composeMetadata(id, null);
  delete worst.status;
  // Digits, commas and brackets need no JSON escaping: empty values plus their computed lengths.
  worst.skipped_rows = "";
  let extra = rangeJsonLength(id.rowStart, id.rowEnd);
  if (id.tokenCounts) {
    worst.token_counts = "";
    extra += rows === 0 ? 2 : 2 + rows * WORST_TOKEN_COUNT.length + rows - 1;
  }
  const natural = encodeSafetensorsHeader(tensorsOf(id), worst).length - 8;
  const length = Math.ceil((natural + extra + FINAL_METADATA_RESERVE) / 8) * 8;
  if (length > MAX_HEADER_BYTES) {
    throw new RangeError(
      `a capture file of ${rows} rows needs a ${length}-byte header, over safetensors' ${MAX_HEADER_BYTES}-byte limit; capture it in shards`,
    );
  }
  return length;
}

/** Encodes the header of `id` (partial when `final` is null) at its reserved length. */
export function encodeCaptureHeader(id: CaptureIdentity, final: CaptureFinal | null, length = reservedHeaderLength(id)): Buffer {
  return encodeSafetensorsHeader(tensorsOf(id), composeMetadata(id, final), length);
}

/** A capture file's header, parsed. */
export interface ParsedCaptureHeader {
  identity: CaptureIdentity;
  /** False while the file is being written (status "incomplete"). */
  complete: boolean;
  /** Null when not complete. */
  final: CaptureFinal | null;
}

function jsonField<T>(path: string, m: Record<string, string>, key: string, check: (v: unknown) => v is T, what: string): T {
  let v: unknown;
  try {
    v = JSON.parse(m[key]);
  } catch {
    throw new FileFormatError(path, `metadata "${key}" is not valid JSON`);
  }
  if (!check(v)) throw new FileFormatError(path, `metadata "${key}" must be ${what}`);
  return v;
}

const isIntArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

function intField(path: string, m: Record<string, string>, key: string): number {
  const v = m[key];
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new FileFormatError(path, `metadata "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

/**
 * Reads a capture file's identity back from its header.
 *
 * @throws FileFormatError naming the file and the field when it is not a capture file (another
 *   format, missing or malformed keys, tensors that do not match the layers and row range).
 */
export function parseCaptureHeader(path: string, header: SafetensorsHeader): ParsedCaptureHeader {
  const m = header.metadata;
  if (m.format !== CAPTURE_FORMAT) {
    throw new FileFormatError(path, `not a safety-lens capture file (metadata "format" is ${JSON.stringify(m.format ?? null)}, expected "${CAPTURE_FORMAT}")`);
  }
  for (const key of ["model_fingerprint", "layers", "pool", "total_rows", "row_start", "row_end"]) {
    if (m[key] === undefined) throw new FileFormatError(path, `capture file lacks metadata "${key}"`);
  }
  const layers = jsonField(path, m, "layers", (v): v is CaptureLayer[] => Array.isArray(v) && v.length > 0 && v.every((l) => l === "final" || (Number.isSafeInteger(l) && l >= 0)), "a non-empty array of layers");
  const totalRows = intField(path, m, "total_rows");
  const rowStart = intField(path, m, "row_start");
  const rowEnd = intField(path, m, "row_end");
  if (rowStart > rowEnd || rowEnd > totalRows) throw new FileFormatError(path, `row range [${rowStart}, ${rowEnd}) does not fit in total_rows ${totalRows}`);
  const rows = rowEnd - rowStart;
  const rowIds = m.row_ids === undefined ? null : jsonField(path, m, "row_ids", isStringArray, "a JSON array of strings");
  if (rowIds && rowIds.length !== rows) throw new FileFormatError(path, `metadata "row_ids" has ${rowIds.length} ids for ${rows} rows`);
  if (header.entries.length !== layers.length) {
    throw new FileFormatError(path, `has ${header.entries.length} tensors but metadata "layers" lists ${layers.length}`);
  }
  let width = -1;
  header.entries.forEach((e, i) => {
    if (e.name !== tensorName(layers[i])) throw new FileFormatError(path, `tensor ${i} is "${e.name}", expected "${tensorName(layers[i])}"`);
    if (e.shape.length !== 2 || e.shape[0] !== rows) throw new FileFormatError(path, `tensor "${e.name}" has shape [${e.shape.join(", ")}], expected [${rows}, width]`);
    if (width === -1) width = e.shape[1];
    if (e.shape[1] !== width) throw new FileFormatError(path, `tensor "${e.name}" has width ${e.shape[1]}, the others ${width}`);
  });
  const complete = m.status !== "incomplete";
  const extras: [string, string][] = [];
  const finals: [string, string][] = [];
  let afterSkipped = false;
  for (const [k, v] of Object.entries(m)) {
    if (k === "skipped_rows") afterSkipped = true;
    if (RESERVED_KEYS.has(k)) continue;
    (afterSkipped ? finals : extras).push([k, v]);
  }
  const identity: CaptureIdentity = {
    fingerprint: m.model_fingerprint,
    layers,
    pool: m.pool,
    width,
    totalRows,
    rowStart,
    rowEnd,
    shard: m.shard ?? null,
    sourceDigest: m.source_digest ?? null,
    tokenCounts: complete ? m.token_counts !== undefined : false,
    rowIds,
    metadata: extras,
  };
  if (!complete) return { identity, complete, final: null };
  if (m.skipped_rows === undefined) throw new FileFormatError(path, `capture file lacks metadata "skipped_rows"`);
  const skippedRows = jsonField(path, m, "skipped_rows", isIntArray, "a JSON array of row numbers");
  if (skippedRows.some((r) => r < rowStart || r >= rowEnd)) throw new FileFormatError(path, `metadata "skipped_rows" lists a row outside [${rowStart}, ${rowEnd})`);
  let tokenCounts: number[] | null = null;
  if (m.token_counts !== undefined) {
    tokenCounts = jsonField(path, m, "token_counts", isIntArray, "a JSON array of counts");
    if (tokenCounts.length !== rows) throw new FileFormatError(path, `metadata "token_counts" has ${tokenCounts.length} counts for ${rows} rows`);
  }
  return { identity, complete, final: { skippedRows, tokenCounts, metadata: finals } };
}

/** A difference between two identities: the header field and a phrase for messages. */
export interface IdentityDifference {
  field: string;
  what: string;
  there: string;
  here: string;
}

/** The first field in which `there` (existing) and `here` (requested) differ, or null. */
export function diffIdentity(there: CaptureIdentity, here: CaptureIdentity, opts: { ignore?: readonly string[] } = {}): IdentityDifference | null {
  const checks: [string, string, unknown, unknown][] = [
    ["model_fingerprint", "another model", there.fingerprint, here.fingerprint],
    ["layers", "other layers", there.layers, here.layers],
    ["pool", "another pool", there.pool, here.pool],
    ["width", "another width", there.width, here.width],
    ["total_rows", "another row count", there.totalRows, here.totalRows],
    ["source_digest", "another input file", there.sourceDigest, here.sourceDigest],
    ["row_range", "another shard", [there.rowStart, there.rowEnd], [here.rowStart, here.rowEnd]],
    ["shard", "another shard", there.shard, here.shard],
    ["token_counts", "token counts recorded differently", there.tokenCounts, here.tokenCounts],
    ["row_ids", "other row ids", there.rowIds, here.rowIds],
  ];
  const keys = new Set([...there.metadata.map(([k]) => k), ...here.metadata.map(([k]) => k)]);
  const get = (id: CaptureIdentity, k: string) => id.metadata.find(([key]) => key === k)?.[1] ?? null;
  for (const k of [...keys].sort()) checks.push([k, `other metadata "${k}"`, get(there, k), get(here, k)]);
  for (const [field, what, a, b] of checks) {
    if (opts.ignore?.includes(field)) continue;
    const sa = JSON.stringify(a);
    const sb = JSON.stringify(b);
    if (sa !== sb) return { field, what, there: abbreviate(sa), here: abbreviate(sb) };
  }
  return null;
}

function abbreviate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
