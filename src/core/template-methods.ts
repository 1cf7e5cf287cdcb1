/**
 * Attribute access and the str/dict methods chat templates call, with Python's
 * semantics (the library's own string builtins ignore arguments such as
 * strip's `chars` and lack format/join).
 */
import type { AnyRuntimeValue } from "@huggingface/jinja/dist/runtime";

import { TemplateRuntimeError, dictKeyValues, isArray, isDict, numberOf, pyFormat, pySplit, pyStr, pyStrip, pyTypeName } from "./template-python";
import { V, dictGet, iterate, undefinedError } from "./template-values";

type Dict = AnyRuntimeValue & { value: Map<string, AnyRuntimeValue> };

export const STRING_METHODS = new Set([
  "strip", "lstrip", "rstrip", "split", "rsplit", "format", "join", "upper", "lower", "capitalize", "title",
  "startswith", "endswith", "replace", "count", "find", "rfind", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper",
]);

export const DICT_METHODS = new Set(["get", "items", "keys", "values"]);

function arg(args: AnyRuntimeValue[], kwargs: Map<string, AnyRuntimeValue>, i: number, name: string): AnyRuntimeValue | undefined {
  return args[i] ?? kwargs.get(name);
}

function optStr(v: AnyRuntimeValue | undefined, what: string): string | null {
  if (v === undefined || v.type === "NullValue") return null;
  if (v.type !== "StringValue") throw new TemplateRuntimeError("TypeError", `${what} must be None or str, not ${pyTypeName(v)}`);
  return v.value as string;
}

function optInt(v: AnyRuntimeValue | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (v.type !== "IntegerValue" && v.type !== "BooleanValue") throw new TemplateRuntimeError("TypeError", `${what} must be an integer, not ${pyTypeName(v)}`);
  return numberOf(v);
}

function reqStr(v: AnyRuntimeValue | undefined, what: string): string {
  if (v?.type !== "StringValue") throw new TemplateRuntimeError("TypeError", `${what} must be str, not ${v ? pyTypeName(v) : "nothing"}`);
  return v.value as string;
}

/** Python's str.capitalize(): first character upper, the rest lower. */
export function pyCapitalize(s: string): string {
  const [first = "", ...rest] = Array.from(s);
  return first.toUpperCase() + rest.join("").toLowerCase();
}

function pyTitle(s: string): string {
  let out = "";
  let prevCased = false;
  for (const ch of s) {
    const cased = ch.toLowerCase() !== ch.toUpperCase();
    out += cased ? (prevCased ? ch.toLowerCase() : ch.toUpperCase()) : ch;
    prevCased = cased;
  }
  return out;
}

function pyReplace(s: string, old: string, rep: string, count: number): string {
  if (count === 0) return s;
  if (old === "") {
    const cps = Array.from(s);
    let out = "";
    let n = 0;
    for (let i = 0; i <= cps.length; i++) {
      if (count < 0 || n < count) {
        out += rep;
        n++;
      }
      if (i < cps.length) out += cps[i];
    }
    return out;
  }
  const parts = s.split(old);
  if (count < 0 || parts.length - 1 <= count) return parts.join(rep);
  return parts.slice(0, count + 1).join(rep) + old + parts.slice(count + 1).join(old);
}

function cpIndex(s: string, utf16: number): number {
  return utf16 < 0 ? -1 : Array.from(s.slice(0, utf16)).length;
}

function cased(s: string): boolean {
  return s.toLowerCase() !== s.toUpperCase();
}

export function callStringMethod(s: string, name: string, args: AnyRuntimeValue[], kw: Map<string, AnyRuntimeValue>): AnyRuntimeValue {
  switch (name) {
    case "strip": return V.str(pyStrip(s, optStr(arg(args, kw, 0, "chars"), "strip arg"), "both"));
    case "lstrip": return V.str(pyStrip(s, optStr(arg(args, kw, 0, "chars"), "lstrip arg"), "left"));
    case "rstrip": return V.str(pyStrip(s, optStr(arg(args, kw, 0, "chars"), "rstrip arg"), "right"));
    case "split":
    case "rsplit": {
      const sep = optStr(arg(args, kw, 0, "sep"), "sep");
      const max = optInt(arg(args, kw, 1, "maxsplit"), -1, "maxsplit");
      if (name === "split" || max < 0) return V.list(pySplit(s, sep, max).map(V.str));
      // rsplit with a limit: split the reversed string, then reverse back.
      const rev = (x: string) => Array.from(x).reverse().join("");
      return V.list(pySplit(rev(s), sep === null ? null : rev(sep), max).map(rev).reverse().map(V.str));
    }
    case "format": return V.str(pyFormat(s, args, kw));
    case "join": {
      const items = iterate(args[0] ?? V.undef("join() takes exactly one argument"));
      return V.str(items.map((x, i) => {
        if (x.type !== "StringValue") throw new TemplateRuntimeError("TypeError", `sequence item ${i}: expected str instance, ${pyTypeName(x)} found`);
        return x.value as string;
      }).join(s));
    }
    case "upper": return V.str(s.toUpperCase());
    case "lower": return V.str(s.toLowerCase());
    case "capitalize": return V.str(pyCapitalize(s));
    case "title": return V.str(pyTitle(s));
    case "startswith":
    case "endswith": {
      const p = arg(args, kw, 0, "prefix");
      const options = p && isArray(p) ? p.value.map((x) => reqStr(x, `tuple for ${name}`)) : [reqStr(p, `${name} first arg`)];
      return V.bool(options.some((o) => (name === "startswith" ? s.startsWith(o) : s.endsWith(o))));
    }
    case "replace": return V.str(pyReplace(s, reqStr(args[0], "replace() arg 1"), reqStr(args[1], "replace() arg 2"), optInt(arg(args, kw, 2, "count"), -1, "count")));
    case "count": {
      const sub = reqStr(args[0], "count() arg");
      return V.int(sub === "" ? Array.from(s).length + 1 : s.split(sub).length - 1);
    }
    case "find": return V.int(cpIndex(s, s.indexOf(reqStr(args[0], "find() arg"))));
    case "rfind": return V.int(cpIndex(s, s.lastIndexOf(reqStr(args[0], "rfind() arg"))));
    case "isdigit": return V.bool(/^\p{Nd}+$/u.test(s));
    case "isalpha": return V.bool(/^\p{L}+$/u.test(s));
    case "isalnum": return V.bool(/^[\p{L}\p{N}]+$/u.test(s));
    case "isspace": return V.bool(s.length > 0 && pyStrip(s, null, "both") === "");
    case "islower": return V.bool(cased(s) && s === s.toLowerCase());
    case "isupper": return V.bool(cased(s) && s === s.toUpperCase());
  }
  throw new TemplateRuntimeError("AttributeError", `'str' object has no attribute '${name}'`);
}

/** The (key, value) pairs of a dict, keys as template values. */
export function dictItems(d: Dict): AnyRuntimeValue[] {
  const orig = dictKeyValues.get(d);
  return Array.from(d.value, ([k, v]) => V.tuple([orig?.get(k) ?? V.str(k), v]));
}

export function callDictMethod(d: Dict, name: string, args: AnyRuntimeValue[], kw: Map<string, AnyRuntimeValue>): AnyRuntimeValue {
  switch (name) {
    case "get": {
      const key = arg(args, kw, 0, "key");
      if (key === undefined) throw new TemplateRuntimeError("TypeError", "get expected at least 1 argument, got 0");
      return dictGet(d, key) ?? arg(args, kw, 1, "default") ?? V.none();
    }
    case "items": return V.list(dictItems(d));
    case "keys": return V.list(iterate(d));
    case "values": return V.list(Array.from(d.value.values()));
  }
  throw new TemplateRuntimeError("AttributeError", `'dict' object has no attribute '${name}'`);
}

/**
 * obj.name (dotted) or obj[key] as Jinja2's sandbox resolves them: attributes
 * (methods) first for dotted access, items first for subscripts; a miss is an
 * Undefined that remembers why, and any use of an undefined's attribute raises.
 */
export function getMember(obj: AnyRuntimeValue, key: AnyRuntimeValue, dotted: boolean): AnyRuntimeValue {
  const name = key.type === "StringValue" ? (key.value as string) : null;
  const miss = (what: string) => V.undef(`'${what}' has no attribute ${name !== null ? `'${name}'` : pyStr(key)}`);
  switch (obj.type) {
    case "UndefinedValue":
      throw undefinedError(obj);
    case "StringValue": {
      if (key.type === "IntegerValue") {
        const cps = Array.from(obj.value as string);
        const n = key.value as number;
        const i = n < 0 ? cps.length + n : n;
        return i >= 0 && i < cps.length ? V.str(cps[i]) : V.undef(`string index ${n} out of range`);
      }
      if (name !== null && STRING_METHODS.has(name)) return V.fn((args, kw) => callStringMethod(obj.value as string, name, args, kw));
      return miss("str object");
    }
    case "ArrayValue":
    case "TupleValue": {
      const items = obj.value as AnyRuntimeValue[];
      if (key.type === "IntegerValue" || key.type === "BooleanValue") {
        const n = numberOf(key);
        const i = n < 0 ? items.length + n : n;
        return i >= 0 && i < items.length ? items[i] : V.undef(`${pyTypeName(obj)} object has no element ${n}`);
      }
      return miss(`${pyTypeName(obj)} object`);
    }
    case "ObjectValue":
    case "KeywordArgumentsValue": {
      const d = obj as Dict;
      const method = name !== null && DICT_METHODS.has(name) ? V.fn((args, kw) => callDictMethod(d, name, args, kw)) : undefined;
      if (dotted && method) return method;
      return dictGet(d, key) ?? method ?? miss("dict object");
    }
    case "NamespaceValue":
      return (name !== null ? (obj.value as Map<string, AnyRuntimeValue>).get(name) : undefined) ?? miss("Namespace object");
    case "NullValue":
      return miss("None");
    default:
      return isDict(obj) ? miss("dict object") : miss(`${pyTypeName(obj)} object`);
  }
}
