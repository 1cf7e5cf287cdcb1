/**
 * Helpers every labelled-data loader shares (prompt files, response lists): value
 * descriptions for error messages, text normalisation for de-duplication, record
 * ids and sources, and seeded hash splits.
 */
import { createHash } from "node:crypto";

import { DataFormatError } from "../errors";

/** A short description of a bad value for data error messages. */
export function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (typeof v === "string") {
    if (v.length === 0) return "an empty string";
    if (v.trim().length === 0) return "only whitespace";
    return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  }
  if (Array.isArray(v)) return v.length === 0 ? "an empty array" : "an array";
  if (typeof v === "object") return "an object";
  return String(v);
}

/** The text used for de-duplication: lower-case, whitespace runs collapsed to one space, trimmed. */
export function normalizeText(text: string): string {
  return text.toLowerCase().replace(/\s+/g, " ").trim();
}

/**
 * A record's `id` (string or number; default `<basename>:<line>`) and `source`
 * (default the file's basename), shared by the prompt and response-list loaders.
 */
export function recordIdAndSource(value: Record<string, unknown>, file: string, line: number, base: string): { id: string; source: string } {
  const rawId = value.id;
  let id: string;
  if (rawId === undefined || rawId === null) id = `${base}:${line}`;
  else if (typeof rawId === "number" || (typeof rawId === "string" && rawId.length > 0)) id = String(rawId);
  else throw new DataFormatError(file, line, `id must be a non-empty string or a number, got ${describe(rawId)}`);
  const rawSource = value.source;
  let source: string;
  if (rawSource === undefined || rawSource === null || rawSource === "") source = base;
  else if (typeof rawSource === "string") source = rawSource;
  else throw new DataFormatError(file, line, `source must be a string, got ${describe(rawSource)}`);
  return { id, source };
}

export interface SplitOptions {
  /** Seed of the id hash (default 1): another seed gives another split. */
  seed?: number;
  /** Train, validation and test fractions (default [0.7, 0.15, 0.15]); normalized to sum to 1. */
  fractions?: readonly [number, number, number] | readonly number[];
}

export interface Splits<T> {
  train: T[];
  val: T[];
  test: T[];
}

/** A number in [0, 1) from a tag and a key (48 bits of SHA-256 of `tag\0key`). */
export function unitHash(tag: string, key: string): number {
  const h = createHash("sha256").update(`${tag}\0${key}`).digest();
  return h.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * Checks split options and returns the seed and each split's upper bound on the
 * unit interval (train [0, hi[0]), val [hi[0], hi[1]), test [hi[1], 1)).
 */
export function splitBounds(opts: SplitOptions): { seed: number; hi: [number, number, number] } {
  const seed = opts.seed ?? 1;
  if (typeof seed !== "number" || !Number.isFinite(seed)) throw new TypeError(`seed must be a finite number, got ${String(seed)}`);
  const fr = opts.fractions ?? [0.7, 0.15, 0.15];
  if (!Array.isArray(fr) || fr.length !== 3 || !fr.every((f) => typeof f === "number" && Number.isFinite(f) && f >= 0)) {
    throw new RangeError("fractions must be three non-negative numbers: [train, val, test]");
  }
  const sum = fr[0] + fr[1] + fr[2];
  if (!(sum > 0)) throw new RangeError("fractions must not all be 0");
  return { seed, hi: [fr[0] / sum, (fr[0] + fr[1]) / sum, 1] };
}
