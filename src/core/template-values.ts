/**
 * Template values for the patch layer over @huggingface/jinja: constructors for
 * the library's value classes (it exports its interpreter but not them), and the
 * Python semantics of iteration, `in` and dict lookup with integer keys.
 */
import { Environment } from "@huggingface/jinja";
import type { AnyRuntimeValue } from "@huggingface/jinja/dist/runtime";

import { TemplateRuntimeError, dictKeyValues, isArray, isDict, numberOf, pyEq, pyStr, pyTypeName, tupleLike } from "./template-python";

// Constructors taken from converted samples.
type Ctor<T> = new (value?: T) => AnyRuntimeValue;
const sample = new Environment();
const ctor = <T>(v: unknown): Ctor<T> => sample.set(`v${sample.variables.size}`, v).constructor as Ctor<T>;
const StringCtor = ctor<string>("");
const IntegerCtor = ctor<number>(1);
const FloatCtor = ctor<number>(0.5);
const BooleanCtor = ctor<boolean>(true);
const NullCtor = ctor<null>(null);
const UndefinedCtor = ctor<undefined>(undefined);
const ArrayCtor = ctor<AnyRuntimeValue[]>([]);
const ObjectCtor = ctor<Map<string, AnyRuntimeValue>>({});
const FunctionCtor = ctor<(args: AnyRuntimeValue[], scope: Environment) => AnyRuntimeValue>(() => 0);

const undefinedHints = new WeakMap<object, string>();

/** Value constructors shared by the patch modules. */
export const V = {
  str: (s: string) => new StringCtor(s),
  int: (n: number) => new IntegerCtor(n),
  float: (n: number) => new FloatCtor(n),
  num: (n: number, float: boolean) => (float ? new FloatCtor(n) : new IntegerCtor(n)),
  bool: (b: boolean) => new BooleanCtor(b),
  none: () => new NullCtor(null),
  undef: (hint: string) => {
    const u = new UndefinedCtor(undefined);
    undefinedHints.set(u, hint);
    return u;
  },
  list: (items: AnyRuntimeValue[]) => new ArrayCtor(items),
  tuple: (items: AnyRuntimeValue[]) => {
    const t = new ArrayCtor(items);
    tupleLike.add(t);
    return t;
  },
  /** A dict; keys that are not strings are encoded (ints only) and remembered. */
  dict: (entries: Array<[AnyRuntimeValue, AnyRuntimeValue]>) => {
    const map = new Map<string, AnyRuntimeValue>();
    const orig = new Map<string, AnyRuntimeValue>();
    for (const [k, v] of entries) {
      if (k.type === "StringValue") {
        if (orig.has(k.value as string)) throw new TemplateRuntimeError("TypeError", `dicts mixing the key ${pyStr(k)} with the string '${k.value}' are not supported`);
        map.set(k.value as string, v);
      } else if (k.type === "IntegerValue" || k.type === "BooleanValue") {
        const code = String(numberOf(k));
        if (map.has(code) && !orig.has(code)) throw new TemplateRuntimeError("TypeError", `dicts mixing the key ${pyStr(k)} with the string '${code}' are not supported`);
        map.set(code, v);
        if (!orig.has(code)) orig.set(code, k);
      } else {
        throw new TemplateRuntimeError("TypeError", `dict keys of type '${pyTypeName(k)}' are not supported in chat templates`);
      }
    }
    const d = new ObjectCtor(map);
    if (orig.size > 0) dictKeyValues.set(d, orig);
    return d;
  },
  fn: (f: (args: AnyRuntimeValue[], kwargs: Map<string, AnyRuntimeValue>) => AnyRuntimeValue) =>
    new FunctionCtor((args: AnyRuntimeValue[]) => {
      const last = args[args.length - 1];
      if (last?.type === "KeywordArgumentsValue") return f(args.slice(0, -1), last.value as Map<string, AnyRuntimeValue>);
      return f(args, new Map());
    }),
};

/** Jinja2's UndefinedError for a use of an undefined value that Jinja2 refuses. */
export function undefinedError(u: AnyRuntimeValue): TemplateRuntimeError {
  return new TemplateRuntimeError("UndefinedError", undefinedHints.get(u) ?? "value is undefined");
}

/** The items a Python for-loop over the value visits (an undefined value is empty, as in Jinja2). */
export function iterate(v: AnyRuntimeValue): AnyRuntimeValue[] {
  if (v.type === "UndefinedValue") return [];
  if (v.type === "StringValue") return Array.from(v.value as string, (c) => V.str(c));
  if (isArray(v)) return v.value;
  if (isDict(v)) {
    const orig = dictKeyValues.get(v);
    return Array.from((v.value as Map<string, AnyRuntimeValue>).keys(), (k) => orig?.get(k) ?? V.str(k));
  }
  throw new TemplateRuntimeError("TypeError", `'${pyTypeName(v)}' object is not iterable`);
}

/** Python's `x in seq`. */
export function pyIn(x: AnyRuntimeValue, seq: AnyRuntimeValue): boolean {
  if (seq.type === "UndefinedValue") return false;
  if (seq.type === "StringValue") {
    if (x.type !== "StringValue") throw new TemplateRuntimeError("TypeError", `'in <string>' requires string as left operand, not ${pyTypeName(x)}`);
    return (seq.value as string).includes(x.value as string);
  }
  if (isArray(seq)) return seq.value.some((e) => pyEq(x, e));
  if (isDict(seq)) return dictGet(seq, x) !== undefined;
  throw new TemplateRuntimeError("TypeError", `argument of type '${pyTypeName(seq)}' is not iterable`);
}

/** d[key] for a dict value, or undefined when the key is absent. */
export function dictGet(d: AnyRuntimeValue & { value: Map<string, AnyRuntimeValue> }, key: AnyRuntimeValue): AnyRuntimeValue | undefined {
  const orig = dictKeyValues.get(d);
  if (key.type === "StringValue") return orig?.has(key.value as string) ? undefined : d.value.get(key.value as string);
  if (key.type === "IntegerValue" || key.type === "BooleanValue") {
    const code = String(numberOf(key));
    return orig?.has(code) ? d.value.get(code) : undefined;
  }
  if (key.type === "FloatValue" && Number.isInteger(key.value)) return dictGet(d, V.int(key.value as number));
  return undefined;
}

/** A plain JS value (messages, flags, token strings) as a template value. */
export function toRuntime(v: unknown): AnyRuntimeValue {
  return new Environment().set("v", v);
}
