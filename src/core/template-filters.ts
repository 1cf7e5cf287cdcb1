/**
 * Jinja2's built-in filters and tests as they behave in Python, for the ones
 * where @huggingface/jinja differs (undefined and none operands, Python str(),
 * json.dumps, integer dict keys, attribute paths, filters mapped by name).
 * Filters not listed here fall back to the library's own.
 */
import type { AnyRuntimeValue } from "@huggingface/jinja/dist/runtime";

import { dictItems, getMember, pyCapitalize } from "./template-methods";
import {
  TemplateRuntimeError, isArray, isDict, numberOf, pyCompare, pyEq, pyJsonDumps, pySplitLines, pyStr, pyStrip, pyTypeName,
} from "./template-python";
import { V, iterate, pyIn, undefinedError } from "./template-values";

type Kwargs = Map<string, AnyRuntimeValue>;
/** Applies another filter by name (map's `map('upper')` form). */
export type NamedFilter = (name: string, v: AnyRuntimeValue, args: AnyRuntimeValue[], kwargs: Kwargs) => AnyRuntimeValue;

const truthy = (v: AnyRuntimeValue) => v.__bool__().value as boolean;
const param = (args: AnyRuntimeValue[], kw: Kwargs, i: number, name: string) => args[i] ?? kw.get(name);

/** Jinja2's ignore_case: strings compare lower-cased unless case_sensitive. */
const sortKey = (v: AnyRuntimeValue, caseSensitive: boolean) => (!caseSensitive && v.type === "StringValue" ? V.str((v.value as string).toLowerCase()) : v);
const cmp = (a: AnyRuntimeValue, b: AnyRuntimeValue) => (pyCompare("<", a, b) ? -1 : pyCompare("<", b, a) ? 1 : 0);

/** Jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0. */
function attrGetter(attr: AnyRuntimeValue | undefined): (item: AnyRuntimeValue) => AnyRuntimeValue {
  if (attr === undefined || attr.type === "NullValue") return (x) => x;
  const parts = attr.type === "StringValue" ? (attr.value as string).split(".").map((p) => (/^\d+$/.test(p) ? V.int(Number(p)) : V.str(p))) : [attr];
  return (item) => parts.reduce((obj, key) => getMember(obj, key, false), item);
}

function lengthOf(v: AnyRuntimeValue): number {
  if (v.type === "UndefinedValue") return 0;
  if (v.type === "StringValue") return Array.from(v.value as string).length;
  if (isArray(v)) return v.value.length;
  if (isDict(v)) return v.value.size;
  throw new TemplateRuntimeError("TypeError", `object of type '${pyTypeName(v)}' has no len()`);
}

function toInt(v: AnyRuntimeValue, dflt: AnyRuntimeValue): AnyRuntimeValue {
  if (v.type === "UndefinedValue") throw undefinedError(v);
  if (v.type === "IntegerValue") return v;
  if (v.type === "BooleanValue") return V.int(numberOf(v));
  if (v.type === "FloatValue") {
    if (!Number.isFinite(v.value)) throw new TemplateRuntimeError(Number.isNaN(v.value) ? "ValueError" : "OverflowError", "cannot convert float to integer");
    return V.int(Math.trunc(v.value as number));
  }
  if (v.type === "StringValue") {
    const s = v.value as string;
    if (/^\s*[+-]?\d+(_\d+)*\s*$/.test(s)) return V.int(Number(s.replace(/_/g, "").trim()));
    const f = parsePyFloat(s);
    if (f !== null && Number.isFinite(f)) return V.int(Math.trunc(f));
    if (f !== null && !Number.isNaN(f)) throw new TemplateRuntimeError("OverflowError", "cannot convert float infinity to integer");
  }
  return dflt;
}

function parsePyFloat(s: string): number | null {
  const t = pyStrip(s, null, "both").replace(/(\d)_(\d)/g, "$1$2");
  if (/^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$/.test(t)) return Number(t);
  if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith("-") ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(t)) return NaN;
  return null;
}

function selectOrReject(seq: AnyRuntimeValue, args: AnyRuntimeValue[], kw: Kwargs, byAttr: boolean, select: boolean): AnyRuntimeValue {
  // Jinja2 iterates only a truthy sequence: none and undefined select nothing.
  if (!truthy(seq)) return V.list([]);
  const get = byAttr ? attrGetter(args[0]) : (x: AnyRuntimeValue) => x;
  const rest = byAttr ? args.slice(1) : args;
  const test = rest[0];
  if (kw.size > 0) throw new TemplateRuntimeError("TypeError", "keyword arguments to select/reject tests are not supported");
  const pass = (item: AnyRuntimeValue) => {
    const v = get(item);
    if (test === undefined) return truthy(v);
    if (test.type !== "StringValue") throw new TemplateRuntimeError("TypeError", "the test name must be a string");
    return runTest(test.value as string, v, rest.slice(1));
  };
  return V.list(iterate(seq).filter((item) => pass(item) === select));
}

export const FILTERS = new Set([
  "length", "count", "list", "string", "join", "trim", "upper", "lower", "capitalize", "items", "tojson", "first", "last",
  "selectattr", "rejectattr", "select", "reject", "map", "default", "d", "indent", "int", "float", "dictsort", "min", "max", "unique", "abs",
]);

export function applyFilter(name: string, v: AnyRuntimeValue, args: AnyRuntimeValue[], kw: Kwargs, named: NamedFilter): AnyRuntimeValue {
  switch (name) {
    case "length":
    case "count":
      return V.int(lengthOf(v));
    case "list":
      return V.list(iterate(v).slice());
    case "string":
      return V.str(pyStr(v));
    case "join": {
      const sep = param(args, kw, 0, "d");
      const get = attrGetter(param(args, kw, 1, "attribute"));
      return V.str(iterate(v).map((x) => pyStr(get(x))).join(sep ? pyStr(sep) : ""));
    }
    case "trim": {
      const chars = param(args, kw, 0, "chars");
      return V.str(pyStrip(pyStr(v), chars && chars.type !== "NullValue" ? pyStr(chars) : null, "both"));
    }
    case "upper": return V.str(pyStr(v).toUpperCase());
    case "lower": return V.str(pyStr(v).toLowerCase());
    case "capitalize": return V.str(pyCapitalize(pyStr(v)));
    case "items":
      if (v.type === "UndefinedValue") return V.list([]);
      if (!isDict(v)) throw new TemplateRuntimeError("TypeError", "Can only get item pairs from a mapping.");
      return V.list(dictItems(v));
    case "tojson": {
      // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
      const ensure = param(args, kw, 0, "ensure_ascii");
      const indent = param(args, kw, 1, "indent");
      const seps = param(args, kw, 2, "separators");
      const sortKeys = param(args, kw, 3, "sort_keys");
      let separators: [string, string] | null = null;
      if (seps && seps.type !== "NullValue") {
        if (!isArray(seps) || seps.value.length !== 2 || seps.value.some((s) => s.type !== "StringValue")) throw new TemplateRuntimeError("TypeError", "separators must be a pair of strings");
        separators = [seps.value[0].value as string, seps.value[1].value as string];
      }
      let ind: number | string | null = null;
      if (indent && indent.type !== "NullValue") {
        if (indent.type === "StringValue") ind = indent.value as string;
        else if (indent.type === "IntegerValue") ind = indent.value as number;
        else throw new TemplateRuntimeError("TypeError", "indent must be an int or a string");
      }
      return V.str(pyJsonDumps(v, { ensureAscii: !!ensure && truthy(ensure), indent: ind, separators, sortKeys: !!sortKeys && truthy(sortKeys) }));
    }
    case "first":
    case "last": {
      const items = iterate(v);
      if (items.length === 0) return V.undef(`No ${name} item, sequence was empty.`);
      return name === "first" ? items[0] : items[items.length - 1];
    }
    case "selectattr": return selectOrReject(v, args, kw, true, true);
    case "rejectattr": return selectOrReject(v, args, kw, true, false);
    case "select": return selectOrReject(v, args, kw, false, true);
    case "reject": return selectOrReject(v, args, kw, false, false);
    case "map": {
      if (!truthy(v)) return V.list([]);
      if (kw.has("attribute")) {
        const get = attrGetter(kw.get("attribute"));
        const dflt = kw.get("default");
        return V.list(iterate(v).map((x) => {
          const r = get(x);
          return r.type === "UndefinedValue" && dflt !== undefined ? dflt : r;
        }));
      }
      const f = args[0];
      if (f?.type !== "StringValue") throw new TemplateRuntimeError("FilterArgumentError", "map requires a filter argument");
      return V.list(iterate(v).map((x) => named(f.value as string, x, args.slice(1), kw)));
    }
    case "default":
    case "d": {
      const dflt = param(args, kw, 0, "default_value") ?? V.str("");
      const boolean = param(args, kw, 1, "boolean");
      return v.type === "UndefinedValue" || (boolean && truthy(boolean) && !truthy(v)) ? dflt : v;
    }
    case "indent": {
      if (v.type === "UndefinedValue") throw undefinedError(v);
      if (v.type !== "StringValue") throw new TemplateRuntimeError("TypeError", `can only indent a str, not ${pyTypeName(v)}`);
      const width = param(args, kw, 0, "width") ?? V.int(4);
      const unit = width.type === "StringValue" ? (width.value as string) : " ".repeat(numberOf(width));
      const first = param(args, kw, 1, "first");
      const blank = param(args, kw, 2, "blank");
      // Jinja2 appends a newline before splitlines(), so a trailing newline survives.
      const lines = pySplitLines((v.value as string) + "\n");
      let out = blank && truthy(blank) ? lines.join("\n" + unit) : lines[0] + (lines.length > 1 ? "\n" + lines.slice(1).map((l) => (l ? unit + l : l)).join("\n") : "");
      if (first && truthy(first)) out = unit + out;
      return V.str(out);
    }
    case "int":
      return toInt(v, param(args, kw, 0, "default") ?? V.int(0));
    case "float": {
      if (v.type === "UndefinedValue") throw undefinedError(v);
      const dflt = param(args, kw, 0, "default") ?? V.float(0);
      if (v.type === "IntegerValue" || v.type === "FloatValue" || v.type === "BooleanValue") return V.float(numberOf(v));
      const f = v.type === "StringValue" ? parsePyFloat(v.value as string) : null;
      return f === null ? dflt : V.float(f);
    }
    case "dictsort": {
      if (!isDict(v)) throw new TemplateRuntimeError("TypeError", `dictsort needs a mapping, not ${pyTypeName(v)}`);
      const cs = param(args, kw, 0, "case_sensitive");
      const by = param(args, kw, 1, "by");
      const reverse = param(args, kw, 2, "reverse");
      const pos = by === undefined || pyStr(by) === "key" ? 0 : pyStr(by) === "value" ? 1 : -1;
      if (pos < 0) throw new TemplateRuntimeError("FilterArgumentError", 'You can only sort by either "key" or "value"');
      const caseSensitive = !!cs && truthy(cs);
      const sign = reverse && truthy(reverse) ? -1 : 1;
      const items = dictItems(v);
      return V.list(items.slice().sort((a, b) => sign * cmp(sortKey((a.value as AnyRuntimeValue[])[pos], caseSensitive), sortKey((b.value as AnyRuntimeValue[])[pos], caseSensitive))));
    }
    case "min":
    case "max": {
      const cs = param(args, kw, 0, "case_sensitive");
      const get = attrGetter(param(args, kw, 1, "attribute"));
      const items = iterate(v);
      if (items.length === 0) return V.undef("No aggregated item, sequence was empty.");
      const key = (x: AnyRuntimeValue) => sortKey(get(x), !!cs && truthy(cs));
      return items.reduce((best, x) => ((name === "min" ? cmp(key(x), key(best)) < 0 : cmp(key(x), key(best)) > 0) ? x : best));
    }
    case "unique": {
      const cs = param(args, kw, 0, "case_sensitive");
      const get = attrGetter(param(args, kw, 1, "attribute"));
      const seen: AnyRuntimeValue[] = [];
      const out: AnyRuntimeValue[] = [];
      for (const x of iterate(v)) {
        const k = sortKey(get(x), !!cs && truthy(cs));
        if (!seen.some((s) => pyEq(s, k))) {
          seen.push(k);
          out.push(x);
        }
      }
      return V.list(out);
    }
    case "abs":
      if (v.type === "IntegerValue" || v.type === "BooleanValue") return V.int(Math.abs(numberOf(v)));
      if (v.type === "FloatValue") return V.float(Math.abs(v.value as number));
      throw new TemplateRuntimeError("TypeError", `bad operand type for abs(): '${pyTypeName(v)}'`);
  }
  throw new TemplateRuntimeError("TemplateAssertionError", `No filter named '${name}'.`);
}

export const TESTS = new Set([
  "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number", "string", "mapping", "iterable",
  "sequence", "callable", "lower", "upper", "odd", "even", "divisibleby", "sameas", "escaped", "in",
  "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=",
]);

function needInt(v: AnyRuntimeValue): number {
  if (v.type === "UndefinedValue") throw undefinedError(v);
  if (v.type !== "IntegerValue" && v.type !== "BooleanValue" && v.type !== "FloatValue") throw new TemplateRuntimeError("TypeError", `unsupported operand type(s) for %: '${pyTypeName(v)}' and 'int'`);
  return numberOf(v);
}

/** Jinja2's test `name` on a value (extra arguments as in `select('equalto', 3)`). */
export function runTest(name: string, v: AnyRuntimeValue, args: AnyRuntimeValue[]): boolean {
  const other = () => {
    if (args[0] === undefined) throw new TemplateRuntimeError("TypeError", `test '${name}' needs an argument`);
    return args[0];
  };
  switch (name) {
    case "defined": return v.type !== "UndefinedValue";
    case "undefined": return v.type === "UndefinedValue";
    case "none": return v.type === "NullValue";
    case "boolean": return v.type === "BooleanValue";
    case "false": return v.type === "BooleanValue" && !v.value;
    case "true": return v.type === "BooleanValue" && !!v.value;
    case "integer": return v.type === "IntegerValue";
    case "float": return v.type === "FloatValue";
    case "number": return v.type === "IntegerValue" || v.type === "FloatValue" || v.type === "BooleanValue";
    case "string": return v.type === "StringValue";
    case "mapping": return isDict(v);
    // Jinja2's Undefined is iterable (empty) and passes the sequence test (it has len and getitem).
    case "iterable":
    case "sequence": return v.type === "StringValue" || isArray(v) || isDict(v) || v.type === "UndefinedValue";
    case "callable": return v.type === "FunctionValue";
    case "lower": case "upper": {
      const s = pyStr(v);
      const cased = s.toLowerCase() !== s.toUpperCase();
      return cased && s === (name === "lower" ? s.toLowerCase() : s.toUpperCase());
    }
    case "odd": return Math.abs(needInt(v) % 2) === 1;
    case "even": return needInt(v) % 2 === 0;
    case "divisibleby": return needInt(v) % needInt(other()) === 0;
    case "sameas": {
      const o = other();
      return o === v || (o.type === v.type && ["NullValue", "BooleanValue", "UndefinedValue"].includes(v.type) && o.value === v.value);
    }
    case "escaped": return false;
    case "in": return pyIn(v, other());
    case "eq": case "equalto": case "==": return pyEq(v, other());
    case "ne": case "!=": return !pyEq(v, other());
    case "lt": case "lessthan": case "<": return pyCompare("<", v, other());
    case "le": case "<=": return pyCompare("<=", v, other());
    case "gt": case "greaterthan": case ">": return pyCompare(">", v, other());
    case "ge": case ">=": return pyCompare(">=", v, other());
  }
  throw new TemplateRuntimeError("TemplateAssertionError", `No test named '${name}'.`);
}
