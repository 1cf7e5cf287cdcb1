/**
 * The option checks every public call shares, so that bad input gets the same exact
 * TypeError (wrong kind) or RangeError (right kind, out of range) wherever it is passed,
 * before any work or any native call starts.
 */

/** A value as error messages show it: a short string quoted, else its kind and value. */
export function describeOption(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  return typeof v === "object" ? "an object" : `${typeof v} ${String(v)}`;
}

/** An integer in [min, max]. */
export function checkInt(name: string, v: unknown, min: number, max: number, maxNote = ""): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`${name} must be an integer, got ${describeOption(v)}`);
  if (v < min || v > max) throw new RangeError(`${name} must be between ${min} and ${max}${maxNote}, got ${v}`);
  return v;
}

/** An optional integer >= 1. */
export function checkPositiveIntOpt(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`${name} must be an integer, got ${describeOption(v)}`);
  if (v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** An optional number strictly between 0 and 1. */
export function checkFractionOpt(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || Number.isNaN(v)) throw new TypeError(`${name} must be a number, got ${describeOption(v)}`);
  if (!(v > 0 && v < 1)) throw new RangeError(`${name} must be between 0 and 1 (exclusive), got ${v}`);
  return v;
}

/** One of a fixed set of strings (undefined allowed when optional). */
export function checkOneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    const names = allowed.map((a) => `"${a}"`);
    const list = names.length > 1 ? `${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}` : names[0];
    throw new TypeError(`${name} must be ${list}, got ${describeOption(v)}`);
  }
  return v as T;
}

/** An optional AbortSignal. */
export function checkSignalOpt(v: unknown, name = "signal"): AbortSignal | undefined {
  if (v !== undefined && !(v instanceof AbortSignal)) throw new TypeError(`${name} must be an AbortSignal`);
  return v as AbortSignal | undefined;
}

/** An optional callback. */
export function checkFunctionOpt(name: string, v: unknown): void {
  if (v !== undefined && typeof v !== "function") throw new TypeError(`${name} must be a function`);
}

/** An array of file paths (non-empty unless `allowEmpty`). */
export function checkFiles(v: unknown, name = "files", allowEmpty = false): string[] {
  if (!Array.isArray(v)) throw new TypeError(`${name} must be ${allowEmpty ? "an" : "a non-empty"} array of file paths`);
  if (v.length === 0 && !allowEmpty) throw new TypeError(`${name} must be a non-empty array of file paths`);
  v.forEach((f, i) => {
    if (typeof f !== "string" || f.length === 0) throw new TypeError(`${name}[${i}] must be a file path, got ${describeOption(f)}`);
  });
  return v as string[];
}
