/**
 * Streaming JSONL (one JSON object per line) reading with errors that name the file and line.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { TextDecoder } from "node:util";

import { AbortError, DataFormatError } from "../errors";

export interface JsonlRecord {
  /** 1-based line number in the file (blank lines count). */
  line: number;
  value: Record<string, unknown>;
}

export interface ReadJsonlOptions {
  /** Stop reading (throwing AbortError) when this signal aborts. */
  signal?: AbortSignal;
  /**
   * Replace bytes that are not valid UTF-8 with U+FFFD instead of failing. Default false:
   * a line that is not valid UTF-8 is a DataFormatError naming the file and line (silently
   * replaced bytes would change the text a probe is trained on).
   */
  lossyUtf8?: boolean;
}

/** The lines of a file as bytes (split at \n, a trailing \r dropped), without holding the file. */
async function* byteLines(path: string): AsyncGenerator<Buffer> {
  let rest: Buffer | null = null;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    let buf: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
    let from = 0;
    for (let nl = buf.indexOf(10, from); nl >= 0; nl = buf.indexOf(10, from)) {
      const end = nl > from && buf[nl - 1] === 13 ? nl - 1 : nl;
      yield buf.subarray(from, end);
      from = nl + 1;
    }
    rest = from < buf.length ? Buffer.from(buf.subarray(from)) : null;
    buf = Buffer.alloc(0);
  }
  if (rest && rest.length) yield rest[rest.length - 1] === 13 ? rest.subarray(0, rest.length - 1) : rest;
}

/** An fs-style error (code ENOENT / EISDIR) with a readable message for a data file that cannot be read. */
function dataFileError(path: string, code: string, message: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(message);
  err.code = code;
  err.path = path;
  return err;
}

async function checkDataFile(path: string): Promise<void> {
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw dataFileError(path, "EISDIR", `Data file is a directory: ${path}`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw dataFileError(path, "ENOENT", `Data file not found: ${path}`);
    throw err;
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  return `a ${typeof v}`;
}

/**
 * Stream a JSONL file, yielding each non-blank line parsed as a JSON object with its line number.
 *
 * @throws an Error with code "ENOENT" (`Data file not found: <path>`) if the file is missing, and
 *   DataFormatError (`<path>:<line>: ...`) for a line that is not valid JSON or not an object.
 */
export async function* readJsonl(path: string, opts: ReadJsonlOptions = {}): AsyncGenerator<JsonlRecord> {
  await checkDataFile(path);
  const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const lossy = new TextDecoder("utf-8", { ignoreBOM: true });
  let line = 0;
  {
    for await (const bytes of byteLines(path)) {
      line++;
      if (opts.signal?.aborted) throw new AbortError();
      let raw: string;
      try {
        raw = (opts.lossyUtf8 ? lossy : strict).decode(bytes);
      } catch {
        throw new DataFormatError(
          path,
          line,
          "the line is not valid UTF-8; re-encode the file as UTF-8, or read it with lossyUtf8 (CLI: --lossy-utf8) to replace the bad bytes with U+FFFD",
        );
      }
      const text = line === 1 ? raw.replace(/^\uFEFF/, "") : raw;
      if (text.trim() === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new DataFormatError(path, line, `invalid JSON: ${(err as Error).message}`);
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new DataFormatError(path, line, `expected a JSON object, got ${describe(value)}`);
      }
      yield { line, value: value as Record<string, unknown> };
    }
  }
}

export interface ReadTextRecordsOptions {
  /** Field holding the text (default "text"). */
  field?: string;
  /** Field holding the record id (default "id"); absent ids become `<basename>:<line>`. */
  idField?: string;
  signal?: AbortSignal;
  /** See {@link ReadJsonlOptions.lossyUtf8}. */
  lossyUtf8?: boolean;
}

/**
 * Read the texts (and ids) of a JSONL file. Every record must have a non-blank string in `field`;
 * ids may be strings or numbers and default to `<basename>:<line>`.
 *
 * @throws DataFormatError naming file and line for a missing, non-string or empty text, or an id
 *   that is neither a string nor a number.
 */
export async function readTextRecords(
  path: string,
  opts: ReadTextRecordsOptions = {},
): Promise<{ ids: string[]; texts: string[] }> {
  const field = opts.field ?? "text";
  const idField = opts.idField ?? "id";
  const base = basename(path);
  const ids: string[] = [];
  const texts: string[] = [];
  for await (const { line, value } of readJsonl(path, { signal: opts.signal, lossyUtf8: opts.lossyUtf8 })) {
    const text = value[field];
    if (typeof text !== "string") {
      const got = text === undefined ? "" : ` (got ${describe(text)})`;
      throw new DataFormatError(path, line, `missing string field "${field}"${got}`);
    }
    if (text.trim().length === 0) {
      const got = text.length === 0 ? "an empty string" : "only whitespace";
      throw new DataFormatError(path, line, `missing string field "${field}" (got ${got})`);
    }
    const id = value[idField];
    if (id === undefined || id === null) ids.push(`${base}:${line}`);
    else if (typeof id === "string" || typeof id === "number") ids.push(String(id));
    else throw new DataFormatError(path, line, `field "${idField}" must be a string or a number, got ${describe(id)}`);
    texts.push(text);
  }
  return { ids, texts };
}
