/**
 * A patch layer over @huggingface/jinja that makes chat templates render the way
 * Jinja2 renders them inside transformers' apply_chat_template.
 *
 * The library's parser and interpreter are used as they are; our subclass
 * overrides only the public `evaluate` and takes over the node types whose
 * semantics differ from Jinja2's (Python str() of printed values, ==, in, +, %,
 * for-loops over undefined/strings/dicts, filters, tests, attribute access, str
 * and dict methods, integer dict keys). Everything else is delegated to the
 * library, with already-evaluated operands handed back as VALUE nodes.
 */
import { Environment, Interpreter, parse, tokenize } from "@huggingface/jinja";
import type { Program, Statement } from "@huggingface/jinja/dist/ast";
import type { AnyRuntimeValue } from "@huggingface/jinja/dist/runtime";

import { applyFilter, FILTERS, runTest, TESTS } from "./template-filters";
import { getMember } from "./template-methods";
import { TemplateRuntimeError, isArray, isDict, isTuple, numberOf, pyCompare, pyEq, pyStr, pyTypeName, strftimePinned } from "./template-python";
import { V, iterate, pyIn, toRuntime, undefinedError } from "./template-values";

/** What raise_exception() throws: the template itself refused the input. */
export class TemplateRaisedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TemplateRaisedError";
  }
}

const VALUE = "SafetyLensValue";
type Node = Statement & Record<string, unknown>;
const valueNode = (value: AnyRuntimeValue): Statement => ({ type: VALUE, value }) as unknown as Statement;

/** A parsed template and the expression nodes whose values are printed. */
export interface CompiledTemplate {
  program: Program;
  printed: WeakSet<object>;
}

const STATEMENTS = new Set(["Set", "If", "For", "Macro", "CallStatement", "FilterStatement", "Break", "Continue", "Comment", "Program"]);

function markPrinted(body: Statement[] | null | undefined, printed: WeakSet<object>): void {
  for (const n of body ?? []) {
    const node = n as Node;
    if (!STATEMENTS.has(node.type)) printed.add(node);
    for (const k of ["body", "alternate", "defaultBlock"]) if (Array.isArray(node[k])) markPrinted(node[k] as Statement[], printed);
  }
}

/** Parses a template as transformers does (trim_blocks, lstrip_blocks). Throws the parser's error. */
export function compileTemplate(source: string): CompiledTemplate {
  const program = parse(tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
  const printed = new WeakSet<object>();
  markPrinted(program.body, printed);
  return { program, printed };
}

/** Jinja2's sandbox refuses ranges longer than this (MAX_RANGE). */
const MAX_RANGE = 100000;

function pyRange(args: AnyRuntimeValue[]): AnyRuntimeValue {
  for (const a of args) if (a.type !== "IntegerValue" && a.type !== "BooleanValue") throw new TemplateRuntimeError("TypeError", `'${pyTypeName(a)}' object cannot be interpreted as an integer`);
  const n = args.map(numberOf);
  const [start, stop, step] = n.length === 1 ? [0, n[0], 1] : [n[0], n[1], n[2] ?? 1];
  if (n.length === 0 || n.length > 3) throw new TemplateRuntimeError("TypeError", `range expected 1 to 3 arguments, got ${n.length}`);
  if (step === 0) throw new TemplateRuntimeError("ValueError", "range() arg 3 must not be zero");
  const len = Math.max(0, Math.ceil((stop - start) / step));
  if (len > MAX_RANGE) throw new TemplateRuntimeError("OverflowError", `Range too big. The sandbox blocks ranges larger than MAX_RANGE (${MAX_RANGE}).`);
  return V.list(Array.from({ length: len }, (_, i) => V.int(start + i * step)));
}

/** Renders a compiled template with the given variables; `date` pins strftime_now. */
export function renderCompiled(t: CompiledTemplate, vars: Record<string, unknown>, date: string): string {
  const env = new Environment();
  for (const [k, v] of [["true", true], ["false", false], ["none", null], ["True", true], ["False", false], ["None", null]] as const) env.set(k, v);
  env.setVariable("raise_exception", V.fn((args) => {
    throw new TemplateRaisedError(args.length > 0 ? pyStr(args[0]) : "");
  }));
  env.setVariable("strftime_now", V.fn((args) => {
    if (args[0]?.type !== "StringValue") throw new TemplateRuntimeError("TypeError", "strftime_now() takes a format string");
    return V.str(strftimePinned(date, args[0].value as string));
  }));
  env.setVariable("range", V.fn((args) => pyRange(args)));
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) env.setVariable(k, toRuntime(v));
  return new PatchedInterpreter(env, t.printed).run(t.program).value as string;
}

/**
 * Most evaluation steps one render may take: real chat templates take thousands, so a template that
 * loops for ever (or 1e10 times) fails in about a second instead of hanging the caller.
 */
export const MAX_TEMPLATE_STEPS = 2_000_000;
/** Deepest nesting of evaluations (macro recursion): Python would raise RecursionError, JS would overflow its stack. */
const MAX_DEPTH = 400;
/** Steps charged per loop iteration beyond its body's own: the library's per-iteration scope setup. */
const LOOP_ITERATION_STEPS = 20;

class PatchedInterpreter extends Interpreter {
  private steps = 0;
  private depth = 0;

  constructor(env: Environment, private readonly printed: WeakSet<object>) {
    super(env);
  }

  override evaluate(statement: Statement | undefined, environment: Environment): AnyRuntimeValue {
    if (!statement) return super.evaluate(statement, environment);
    if (++this.steps > MAX_TEMPLATE_STEPS) throw this.tooLong();
    const node = statement as Node;
    if (++this.depth > MAX_DEPTH) throw new TemplateRuntimeError("RecursionError", `the template nests deeper than ${MAX_DEPTH} levels`);
    let v: AnyRuntimeValue;
    try {
      v = this.evaluateNode(node, environment);
    } finally {
      this.depth--;
    }
    // A list costs a step per item, so loops with empty bodies and huge ranges are bounded too.
    if (isArray(v) && (this.steps += v.value.length) > MAX_TEMPLATE_STEPS) throw this.tooLong();
    return this.printed.has(node) ? V.str(pyStr(v)) : v;
  }

  private tooLong(): Error {
    return new TemplateRuntimeError("RuntimeError", `the template ran for more than ${MAX_TEMPLATE_STEPS} steps`);
  }

  private evaluateNode(node: Node, env: Environment): AnyRuntimeValue {
    switch (node.type) {
      case VALUE:
        return node.value as AnyRuntimeValue;
      case "Identifier": {
        const v = super.evaluate(node, env);
        return v.type === "UndefinedValue" ? V.undef(`'${node.value as string}' is undefined`) : v;
      }
      case "ObjectLiteral": {
        const entries: Array<[AnyRuntimeValue, AnyRuntimeValue]> = [];
        for (const [k, v] of node.value as Map<Statement, Statement>) entries.push([this.evaluate(k, env), this.evaluate(v, env)]);
        return V.dict(entries);
      }
      case "MemberExpression":
        return this.member(node, env);
      case "CallExpression": {
        const fn = this.evaluate(node.callee as Statement, env);
        if (fn.type === "UndefinedValue") throw undefinedError(fn);
        if (fn.type !== "FunctionValue") throw new TemplateRuntimeError("TypeError", `'${pyTypeName(fn)}' object is not callable`);
        return super.evaluate({ ...node, callee: valueNode(fn) } as Statement, env);
      }
      case "For":
        return this.forLoop(node, env);
      case "BinaryExpression":
        return this.binary(node, env);
      case "FilterExpression": {
        const operand = this.evaluate(node.operand as Statement, env);
        return this.filter(operand, node.filter as Node, env);
      }
      case "TestExpression": {
        const name = (node.test as Node).value as string;
        if (!TESTS.has(name)) return super.evaluate({ ...node, operand: valueNode(this.evaluate(node.operand as Statement, env)) } as Statement, env);
        const result = runTest(name, this.evaluate(node.operand as Statement, env), []);
        return V.bool(node.negate ? !result : result);
      }
      default:
        return super.evaluate(node, env);
    }
  }

  private args(nodes: Statement[], env: Environment): [AnyRuntimeValue[], Map<string, AnyRuntimeValue>] {
    const args: AnyRuntimeValue[] = [];
    const kwargs = new Map<string, AnyRuntimeValue>();
    for (const a of nodes as Node[]) {
      if (a.type === "KeywordArgumentExpression") kwargs.set((a.key as Node).value as string, this.evaluate(a.value as Statement, env));
      else if (a.type === "SpreadExpression") args.push(...iterate(this.evaluate(a.argument as Statement, env)));
      else if (a.type === "KeywordSpreadExpression") {
        const d = this.evaluate(a.argument as Statement, env);
        if (!isDict(d)) throw new TemplateRuntimeError("TypeError", `argument after ** must be a mapping, not ${pyTypeName(d)}`);
        for (const [k, v] of d.value) kwargs.set(k, v);
      } else args.push(this.evaluate(a, env));
    }
    return [args, kwargs];
  }

  /** Applies a filter node (`x|name` or `x|name(args)`) to an evaluated operand. */
  private filter(operand: AnyRuntimeValue, filterNode: Node, env: Environment): AnyRuntimeValue {
    const call = filterNode.type === "CallExpression";
    const name = ((call ? filterNode.callee : filterNode) as Node).value as string;
    const [args, kwargs] = call ? this.args(filterNode.args as Statement[], env) : [[], new Map<string, AnyRuntimeValue>()];
    return this.namedFilter(name, operand, args, kwargs, env);
  }

  private namedFilter(name: string, operand: AnyRuntimeValue, args: AnyRuntimeValue[], kwargs: Map<string, AnyRuntimeValue>, env: Environment): AnyRuntimeValue {
    if (FILTERS.has(name)) return applyFilter(name, operand, args, kwargs, (n, v, a, k) => this.namedFilter(n, v, a, k, env));
    // Not patched: the library's own filter, on the already-evaluated operand.
    const argNodes = [...args.map(valueNode), ...Array.from(kwargs, ([k, v]) => ({ type: "KeywordArgumentExpression", key: { type: "Identifier", value: k }, value: valueNode(v) }))];
    const filter = argNodes.length > 0 ? { type: "CallExpression", callee: { type: "Identifier", value: name }, args: argNodes } : { type: "Identifier", value: name };
    return super.evaluate({ type: "FilterExpression", operand: valueNode(operand), filter } as unknown as Statement, env);
  }

  private member(node: Node, env: Environment): AnyRuntimeValue {
    const obj = this.evaluate(node.object as Statement, env);
    const prop = node.property as Node;
    if (node.computed && prop.type === "SliceExpression") {
      if (obj.type === "UndefinedValue") throw undefinedError(obj);
      return super.evaluate({ ...node, object: valueNode(obj) } as Statement, env);
    }
    let key: AnyRuntimeValue;
    if (node.computed) key = this.evaluate(prop, env);
    else if (prop.type === "IntegerLiteral") key = V.int(prop.value as number);
    else key = V.str(prop.value as string);
    return getMember(obj, key, !node.computed);
  }

  private forLoop(node: Node, env: Environment): AnyRuntimeValue {
    // Evaluate the iterable here so an undefined one loops zero times, strings loop over characters and
    // dicts over their (possibly integer) keys; the library then runs the loop over a plain list.
    const select = (node.iterable as Node).type === "SelectExpression" ? (node.iterable as Node) : null;
    const source = this.evaluate((select ? select.lhs : node.iterable) as Statement, env);
    const items = iterate(source);
    if ((this.steps += items.length * LOOP_ITERATION_STEPS) > MAX_TEMPLATE_STEPS) throw this.tooLong();
    const list = V.list(items);
    const iterable = select ? { ...select, lhs: valueNode(list) } : valueNode(list);
    return super.evaluate({ ...node, iterable } as Statement, env);
  }

  private binary(node: Node, env: Environment): AnyRuntimeValue {
    const op = (node.operator as Node).value as string;
    if (op === "and" || op === "or") return super.evaluate(node, env);
    const a = this.evaluate(node.left as Statement, env);
    const b = this.evaluate(node.right as Statement, env);
    switch (op) {
      case "~": return V.str(pyStr(a) + pyStr(b));
      case "==": return V.bool(pyEq(a, b));
      case "!=": return V.bool(!pyEq(a, b));
      case "in": return V.bool(pyIn(a, b));
      case "not in": return V.bool(!pyIn(a, b));
    }
    if (a.type === "UndefinedValue") throw undefinedError(a);
    if (b.type === "UndefinedValue") throw undefinedError(b);
    if (op === "<" || op === "<=" || op === ">" || op === ">=") return V.bool(pyCompare(op, a, b));
    return arithmetic(op, a, b);
  }
}

/** Most characters or items a string/list repetition may produce (a template cannot exhaust memory). */
const MAX_REPEAT = 1 << 24;

function arithmetic(op: string, a: AnyRuntimeValue, b: AnyRuntimeValue): AnyRuntimeValue {
  const numeric = (x: AnyRuntimeValue) => x.type === "IntegerValue" || x.type === "FloatValue" || x.type === "BooleanValue";
  const unsupported = () => new TemplateRuntimeError("TypeError", `unsupported operand type(s) for ${op}: '${pyTypeName(a)}' and '${pyTypeName(b)}'`);
  if (numeric(a) && numeric(b)) {
    const x = numberOf(a), y = numberOf(b);
    const float = a.type === "FloatValue" || b.type === "FloatValue";
    const zero = (what: string) => new TemplateRuntimeError("ZeroDivisionError", what);
    switch (op) {
      case "+": return V.num(x + y, float);
      case "-": return V.num(x - y, float);
      case "*": return V.num(x * y, float);
      case "/":
        if (y === 0) throw zero("division by zero");
        return V.float(x / y);
      case "//":
        if (y === 0) throw zero(float ? "float floor division by zero" : "integer division or modulo by zero");
        return V.num(Math.floor(x / y), float);
      case "%":
        if (y === 0) throw zero(float ? "float modulo" : "integer modulo by zero");
        return V.num(x - y * Math.floor(x / y), float);
      case "**":
        if (x === 0 && y < 0) throw zero("0.0 cannot be raised to a negative power");
        return V.num(x ** y, float || y < 0);
    }
    throw unsupported();
  }
  if (op === "+") {
    if (a.type === "StringValue" && b.type === "StringValue") return V.str((a.value as string) + (b.value as string));
    if (isArray(a) && isArray(b) && isTuple(a) === isTuple(b)) return (isTuple(a) ? V.tuple : V.list)([...a.value, ...b.value]);
    if (a.type === "StringValue" || isArray(a)) throw new TemplateRuntimeError("TypeError", `can only concatenate ${pyTypeName(a)} (not "${pyTypeName(b)}") to ${pyTypeName(a)}`);
    throw unsupported();
  }
  if (op === "*") {
    const [seq, n] = a.type === "IntegerValue" || a.type === "BooleanValue" ? [b, numberOf(a)] : [a, b.type === "IntegerValue" || b.type === "BooleanValue" ? numberOf(b) : NaN];
    if (!Number.isNaN(n) && (seq.type === "StringValue" || isArray(seq))) {
      const count = Math.max(0, n);
      const unit = seq.type === "StringValue" ? (seq.value as string).length : (seq.value as AnyRuntimeValue[]).length;
      if (unit * count > MAX_REPEAT) throw new TemplateRuntimeError("MemoryError", `repetition of ${unit} x ${count} is too large`);
      if (seq.type === "StringValue") return V.str((seq.value as string).repeat(count));
      const items = seq.value as AnyRuntimeValue[];
      return (isTuple(seq) ? V.tuple : V.list)(Array.from({ length: count }, () => items).flat());
    }
  }
  if (op === "%" && a.type === "StringValue") throw new TemplateRuntimeError("NotImplementedError", "printf-style '%' string formatting is not supported in chat templates");
  throw unsupported();
}
