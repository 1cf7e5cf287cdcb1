/**
 * Python semantics that chat templates rely on and that @huggingface/jinja does
 * not reproduce exactly: str()/repr() of values, ==, json.dumps, str.format,
 * str.strip/split with Python's whitespace, and strftime on a pinned date.
 * Written from Python's documented behaviour (checked against CPython by
 * test/template-runtime.test.ts through the Jinja2 oracle).
 */
import type { AnyRuntimeValue } from "@huggingface/jinja/dist/runtime";

/** An error a template operation raises, phrased the way Python/Jinja2 phrases it. */
export class TemplateRuntimeError extends Error {
  constructor(kind: string, message: string) {
    super(`${kind}: ${message}`);
    this.name = kind;
  }
}

/** Arrays that stand for Python tuples (the library's unpacking only accepts its ArrayValue type). */
export const tupleLike = new WeakSet<object>();

/** Keys of a dict whose keys are not all strings: encoded key -> original key value. */
export const dictKeyValues = new WeakMap<object, Map<string, AnyRuntimeValue>>();

export function pyTypeName(v: AnyRuntimeValue): string {
  switch (v.type) {
    case "StringValue": return "str";
    case "IntegerValue": return "int";
    case "FloatValue": return "float";
    case "BooleanValue": return "bool";
    case "NullValue": return "NoneType";
    case "UndefinedValue": return "Undefined";
    case "TupleValue": return "tuple";
    case "ArrayValue": return tupleLike.has(v) ? "tuple" : "list";
    case "ObjectValue":
    case "KeywordArgumentsValue": return "dict";
    case "NamespaceValue": return "Namespace";
    case "FunctionValue": return "function";
    default: return v.type;
  }
}

export function isTuple(v: AnyRuntimeValue): boolean {
  return v.type === "TupleValue" || (v.type === "ArrayValue" && tupleLike.has(v));
}

export function isArray(v: AnyRuntimeValue): v is AnyRuntimeValue & { value: AnyRuntimeValue[] } {
  return v.type === "ArrayValue" || v.type === "TupleValue";
}

export function isDict(v: AnyRuntimeValue): v is AnyRuntimeValue & { value: Map<string, AnyRuntimeValue> } {
  return v.type === "ObjectValue" || v.type === "KeywordArgumentsValue";
}

/** An int's digits; beyond 2^53 the exact value of the double, as Python prints the (exact) int. */
export function intStr(n: number): string {
  return Number.isSafeInteger(n) || !Number.isFinite(n) ? String(n) : BigInt(n).toString();
}

/** Python's repr() of a float. */
export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: exponent form outside 1e-4 <= |x| < 1e16.
  const [mant, expStr] = x.toExponential().split("e");
  const exp = Number(expStr);
  if (exp < -4 || exp >= 16) {
    const sign = exp < 0 ? "-" : "+";
    return `${mant}e${sign}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  const s = x.toFixed(Math.max(0, (mant.replace("-", "").replace(".", "").length - 1) - exp));
  return s.includes(".") ? s : `${s}.0`;
}

const NON_PRINTABLE = /[\p{C}\p{Z}]/u;

/** Python's repr() of a str. */
export function strRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch !== " " && NON_PRINTABLE.test(ch)) {
      out += c < 0x100 ? `\\x${c.toString(16).padStart(2, "0")}` : c < 0x10000 ? `\\u${c.toString(16).padStart(4, "0")}` : `\\U${c.toString(16).padStart(8, "0")}`;
    } else out += ch;
  }
  return out + quote;
}

/** Python's str() of a template value (what {{ x }} prints). */
export function pyStr(v: AnyRuntimeValue): string {
  switch (v.type) {
    case "StringValue": return v.value as string;
    case "UndefinedValue": return "";
    default: return pyRepr(v);
  }
}

/** Python's repr() of a template value. */
export function pyRepr(v: AnyRuntimeValue): string {
  switch (v.type) {
    case "StringValue": return strRepr(v.value as string);
    case "IntegerValue": return intStr(v.value as number);
    case "FloatValue": return floatRepr(v.value as number);
    case "BooleanValue": return v.value ? "True" : "False";
    case "NullValue": return "None";
    case "UndefinedValue": return "Undefined";
    case "ArrayValue":
    case "TupleValue": {
      const items = (v.value as AnyRuntimeValue[]).map(pyRepr);
      if (!isTuple(v)) return `[${items.join(", ")}]`;
      return items.length === 1 ? `(${items[0]},)` : `(${items.join(", ")})`;
    }
    case "ObjectValue":
    case "KeywordArgumentsValue": {
      const map = v.value as Map<string, AnyRuntimeValue>;
      const orig = dictKeyValues.get(v);
      const parts = Array.from(map, ([k, val]) => `${orig?.has(k) ? pyRepr(orig.get(k)!) : strRepr(k)}: ${pyRepr(val)}`);
      return `{${parts.join(", ")}}`;
    }
    case "NamespaceValue": {
      const map = v.value as Map<string, AnyRuntimeValue>;
      return `<Namespace {${Array.from(map, ([k, val]) => `${strRepr(k)}: ${pyRepr(val)}`).join(", ")}}>`;
    }
    default: return `<${v.type}>`;
  }
}

function isNumberLike(v: AnyRuntimeValue): boolean {
  return v.type === "IntegerValue" || v.type === "FloatValue" || v.type === "BooleanValue";
}

export function numberOf(v: AnyRuntimeValue): number {
  return v.type === "BooleanValue" ? (v.value ? 1 : 0) : (v.value as number);
}

/** Python's == (Jinja2's Undefined equals only another Undefined). */
export function pyEq(a: AnyRuntimeValue, b: AnyRuntimeValue): boolean {
  if (isNumberLike(a) && isNumberLike(b)) return numberOf(a) === numberOf(b);
  if (a.type === "UndefinedValue" || b.type === "UndefinedValue") return a.type === b.type;
  if (a.type === "NullValue" || b.type === "NullValue") return a.type === b.type;
  if (a.type === "StringValue" && b.type === "StringValue") return a.value === b.value;
  if (isArray(a) && isArray(b)) {
    if (isTuple(a) !== isTuple(b) || a.value.length !== b.value.length) return false;
    return a.value.every((x, i) => pyEq(x, b.value[i]));
  }
  if (isDict(a) && isDict(b)) {
    if (a.value.size !== b.value.size) return false;
    const ak = dictKeyValues.get(a), bk = dictKeyValues.get(b);
    for (const [k, x] of a.value) {
      const y = b.value.get(k);
      if (y === undefined || !pyEq(x, y)) return false;
      const ka = ak?.get(k), kb = bk?.get(k);
      if ((ka?.type ?? "StringValue") !== (kb?.type ?? "StringValue")) return false;
    }
    return true;
  }
  return a === b;
}

/** Python's <, <=, >, >= (numbers, strings, lists and tuples of them). */
export function pyCompare(op: string, a: AnyRuntimeValue, b: AnyRuntimeValue): boolean {
  const c = pyCmp(op, a, b);
  switch (op) {
    case "<": return c < 0;
    case "<=": return c <= 0;
    case ">": return c > 0;
    default: return c >= 0;
  }
}

function pyCmp(op: string, a: AnyRuntimeValue, b: AnyRuntimeValue): number {
  if (isNumberLike(a) && isNumberLike(b)) {
    const x = numberOf(a), y = numberOf(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.type === "StringValue" && b.type === "StringValue") return codePointCompare(a.value as string, b.value as string);
  if (isArray(a) && isArray(b) && isTuple(a) === isTuple(b)) {
    const n = Math.min(a.value.length, b.value.length);
    for (let i = 0; i < n; i++) if (!pyEq(a.value[i], b.value[i])) return pyCmp(op, a.value[i], b.value[i]);
    return a.value.length - b.value.length;
  }
  throw new TemplateRuntimeError("TypeError", `'${op}' not supported between instances of '${pyTypeName(a)}' and '${pyTypeName(b)}'`);
}

export function codePointCompare(a: string, b: string): number {
  const x = Array.from(a), y = Array.from(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** Characters Python's str.isspace() accepts (str.strip()/split() without arguments use these). */
const PY_WHITESPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

export function pyStrip(s: string, chars: string | null, where: "both" | "left" | "right"): string {
  const set = new Set(Array.from(chars ?? PY_WHITESPACE));
  const cps = Array.from(s);
  let i = 0, j = cps.length;
  if (where !== "right") while (i < j && set.has(cps[i])) i++;
  if (where !== "left") while (j > i && set.has(cps[j - 1])) j--;
  return cps.slice(i, j).join("");
}

/** Python's str.split(sep=None, maxsplit=-1). */
export function pySplit(s: string, sep: string | null, maxsplit: number): string[] {
  if (sep !== null) {
    if (sep === "") throw new TemplateRuntimeError("ValueError", "empty separator");
    const parts = s.split(sep);
    if (maxsplit < 0 || parts.length <= maxsplit + 1) return parts;
    return [...parts.slice(0, maxsplit), parts.slice(maxsplit).join(sep)];
  }
  const out: string[] = [];
  const isWs = (c: string) => PY_WHITESPACE.includes(c);
  let i = 0;
  while (i < s.length) {
    while (i < s.length && isWs(s[i])) i++;
    if (i >= s.length) break;
    if (maxsplit >= 0 && out.length === maxsplit) {
      out.push(s.slice(i));
      break;
    }
    let j = i;
    while (j < s.length && !isWs(s[j])) j++;
    out.push(s.slice(i, j));
    i = j;
  }
  return out;
}

/** Python's str.splitlines() (the line breaks Jinja2's indent filter splits on). */
export function pySplitLines(s: string): string[] {
  const lines = s.split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/**
 * Python's str.format() with plain fields: {}, {0}, {name}, {!r}/{!s} and doubled
 * braces. Format specs (":>10") are refused with a clear error rather than guessed.
 */
export function pyFormat(fmt: string, args: AnyRuntimeValue[], kwargs: Map<string, AnyRuntimeValue>): string {
  let out = "";
  let auto = 0;
  let mode: "auto" | "manual" | null = null;
  for (let i = 0; i < fmt.length; i++) {
    const ch = fmt[i];
    if (ch === "}") {
      if (fmt[i + 1] !== "}") throw new TemplateRuntimeError("ValueError", "Single '}' encountered in format string");
      out += "}";
      i++;
      continue;
    }
    if (ch !== "{") {
      out += ch;
      continue;
    }
    if (fmt[i + 1] === "{") {
      out += "{";
      i++;
      continue;
    }
    const end = fmt.indexOf("}", i);
    if (end < 0) throw new TemplateRuntimeError("ValueError", "Single '{' encountered in format string");
    const field = fmt.slice(i + 1, end);
    i = end;
    const m = /^([^!:]*)(?:!([rsa]))?(?::(.*))?$/s.exec(field);
    if (!m) throw new TemplateRuntimeError("ValueError", `unsupported format field {${field}}`);
    const [, name, conv, spec] = m;
    if (spec) throw new TemplateRuntimeError("ValueError", `format spec ':${spec}' is not supported in chat templates`);
    let value: AnyRuntimeValue | undefined;
    if (name === "") {
      if (mode === "manual") throw new TemplateRuntimeError("ValueError", "cannot switch from manual field specification to automatic field numbering");
      mode = "auto";
      value = args[auto++];
      if (value === undefined) throw new TemplateRuntimeError("IndexError", `Replacement index ${auto - 1} out of range for positional args tuple`);
    } else if (/^\d+$/.test(name)) {
      if (mode === "auto") throw new TemplateRuntimeError("ValueError", "cannot switch from automatic field numbering to manual field specification");
      mode = "manual";
      value = args[Number(name)];
      if (value === undefined) throw new TemplateRuntimeError("IndexError", `Replacement index ${name} out of range for positional args tuple`);
    } else if (/^[A-Za-z_]\w*$/.test(name)) {
      value = kwargs.get(name);
      if (value === undefined) throw new TemplateRuntimeError("KeyError", `'${name}'`);
    } else {
      throw new TemplateRuntimeError("ValueError", `format field {${name}} is not supported in chat templates`);
    }
    out += conv === "r" || conv === "a" ? pyRepr(value) : pyStr(value);
  }
  return out;
}

export interface JsonOptions {
  indent: number | string | null;
  separators: [string, string] | null;
  sortKeys: boolean;
  ensureAscii: boolean;
}

/** Python's json.dumps(x, ensure_ascii=..., indent=..., separators=..., sort_keys=...). */
export function pyJsonDumps(v: AnyRuntimeValue, o: JsonOptions): string {
  const indentUnit = o.indent === null ? null : typeof o.indent === "number" ? " ".repeat(Math.max(0, o.indent)) : o.indent;
  const [itemSep, keySep] = o.separators ?? (indentUnit === null ? [", ", ": "] : [",", ": "]);
  const str = (s: string) => {
    const j = JSON.stringify(s);
    return o.ensureAscii ? j.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`) : j;
  };
  const enc = (x: AnyRuntimeValue, depth: number): string => {
    switch (x.type) {
      case "StringValue": return str(x.value as string);
      case "IntegerValue": return intStr(x.value as number);
      case "FloatValue": {
        const n = x.value as number;
        return Number.isNaN(n) ? "NaN" : !Number.isFinite(n) ? (n > 0 ? "Infinity" : "-Infinity") : floatRepr(n);
      }
      case "BooleanValue": return x.value ? "true" : "false";
      case "NullValue": return "null";
    }
    const nl = indentUnit === null ? "" : "\n" + indentUnit.repeat(depth + 1);
    const close = indentUnit === null ? "" : "\n" + indentUnit.repeat(depth);
    if (isArray(x)) {
      if (x.value.length === 0) return "[]";
      return "[" + nl + x.value.map((e) => enc(e, depth + 1)).join(itemSep + nl) + close + "]";
    }
    if (isDict(x)) {
      const orig = dictKeyValues.get(x);
      let entries = Array.from(x.value, ([k, val]) => ({ key: orig?.get(k) ?? null, k, val }));
      if (entries.length === 0) return "{}";
      if (o.sortKeys) {
        entries = entries.slice().sort((a, b) => {
          if ((a.key?.type ?? "StringValue") !== (b.key?.type ?? "StringValue")) {
            throw new TemplateRuntimeError("TypeError", "'<' not supported between instances of 'int' and 'str'");
          }
          return a.key ? numberOf(a.key) - numberOf(b.key!) : codePointCompare(a.k, b.k);
        });
      }
      return "{" + nl + entries.map((e) => `${str(e.k)}${keySep}${enc(e.val, depth + 1)}`).join(itemSep + nl) + close + "}";
    }
    throw new TemplateRuntimeError("TypeError", `Object of type ${pyTypeName(x)} is not JSON serializable`);
  };
  return enc(v, 0);
}

const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/** A "YYYY-MM-DD" date as numbers, or null when it is not a real calendar date. */
export function parseIsoDate(s: string): { year: number; month: number; day: number } | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const d = new Date(Date.UTC(year, month - 1, day));
  if (year < 1 || d.getUTCFullYear() !== year || d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day) return null;
  return { year, month, day };
}

/**
 * Python's datetime.strftime (glibc directives, C locale) for midnight of a
 * pinned date: what strftime_now() returns when the clock is replaced by that date.
 */
export function strftimePinned(date: string, fmt: string): string {
  const p = parseIsoDate(date);
  if (!p) throw new TemplateRuntimeError("ValueError", `invalid pinned date ${JSON.stringify(date)}`);
  const { year, month, day } = p;
  const t = Date.UTC(year, month - 1, day);
  const monday0 = (new Date(t).getUTCDay() + 6) % 7; // Monday = 0, as Python's weekday()
  const yday = Math.round((t - Date.UTC(year, 0, 1)) / 86400000); // 0-based
  const sunday0 = (monday0 + 1) % 7;
  const pad = (n: number, w = 2, c = "0") => String(n).padStart(w, c);
  const iso = isoWeek(year, yday, monday0);
  const field = (d: string): [number, number] | string => {
    switch (d) {
      case "a": return DAYS[monday0].slice(0, 3);
      case "A": return DAYS[monday0];
      case "b": case "h": return MONTHS[month - 1].slice(0, 3);
      case "B": return MONTHS[month - 1];
      case "C": return [Math.floor(year / 100), 2];
      case "d": return [day, 2];
      case "e": return pad(day, 2, " ");
      case "G": return [iso.year, 4];
      case "H": case "M": case "S": return [0, 2];
      case "I": return [12, 2];
      case "j": return [yday + 1, 3];
      case "m": return [month, 2];
      case "p": return "AM";
      case "u": return [monday0 + 1, 1];
      case "U": return [Math.floor((yday + 7 - sunday0) / 7), 2];
      case "V": return [iso.week, 2];
      case "w": return [sunday0, 1];
      case "W": return [Math.floor((yday + 7 - monday0) / 7), 2];
      case "y": return [year % 100, 2];
      case "Y": return [year, 1];
      case "Z": case "z": return ""; // a naive datetime has no zone
      case "n": return "\n";
      case "t": return "\t";
      case "%": return "%";
      case "c": return `${DAYS[monday0].slice(0, 3)} ${MONTHS[month - 1].slice(0, 3)} ${pad(day, 2, " ")} 00:00:00 ${year}`;
      case "D": case "x": return `${pad(month)}/${pad(day)}/${pad(year % 100)}`;
      case "F": return `${year}-${pad(month)}-${pad(day)}`;
      case "R": return "00:00";
      case "T": case "X": return "00:00:00";
      default: throw new TemplateRuntimeError("ValueError", `strftime directive %${d} is not supported`);
    }
  };
  return fmt.replace(/%(-?)(.)/gs, (_, noPad: string, d: string) => {
    const f = field(d);
    if (typeof f === "string") return noPad && d === "e" ? f.trimStart() : f;
    return noPad ? String(f[0]) : pad(f[0], f[1]);
  });
}

function isoWeek(year: number, yday: number, monday0: number): { year: number; week: number } {
  const week = Math.floor((yday - monday0 + 10) / 7);
  if (week < 1) {
    const prev = year - 1;
    const prevDays = isLeap(prev) ? 366 : 365;
    return isoWeek(prev, yday + prevDays, monday0);
  }
  const days = isLeap(year) ? 366 : 365;
  if (week === 53 && yday - monday0 + 3 >= days) return { year: year + 1, week: 1 };
  return { year, week };
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}
