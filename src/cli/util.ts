/** Helpers shared by the CLI commands. */
import type { LayerSpec } from "../core/activations";
import { DEFAULT_MODEL_PATH } from "../core/model";
import type { GpuOption } from "../core/native";

/** A usage error: exit code 2 and the message, no stack. */
export class UsageError extends Error {}

export const common = {
  model: { type: "string" },
  threads: { type: "string" },
  gpu: { type: "string" },
  "context-size": { type: "string" },
  "batch-size": { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export function intOption(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}

export function gpuOption(v: string | undefined): GpuOption | undefined {
  if (v === undefined) return undefined;
  if (v === "false" || v === "cpu" || v === "none") return false;
  if (v === "auto" || v === "cuda" || v === "vulkan" || v === "metal") return v;
  throw new UsageError(`--gpu must be auto, cuda, vulkan, metal or false, got ${JSON.stringify(v)}`);
}

export function modelOptions(values: Record<string, unknown>) {
  return {
    modelPath: (values.model as string | undefined) ?? DEFAULT_MODEL_PATH,
    threads: intOption(values.threads as string | undefined, "threads"),
    gpu: gpuOption(values.gpu as string | undefined),
    contextSize: intOption(values["context-size"] as string | undefined, "context-size"),
    batchSize: intOption(values["batch-size"] as string | undefined, "batch-size"),
  };
}

export function parseLayers(spec: string, nLayer: number): LayerSpec[] {
  const out: LayerSpec[] = [];
  for (const part of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (part === "final") out.push("final");
    else if (part === "all") for (let i = 0; i < nLayer; i++) out.push(i);
    else if (/^\d+$/.test(part)) out.push(Number(part));
    else throw new UsageError(`--layers takes layer numbers, "all" and "final" separated by commas; got ${JSON.stringify(part)}`);
  }
  if (out.length === 0) throw new UsageError("--layers is empty");
  return out;
}

export function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
}

export function numOption(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === "" || !Number.isFinite(x)) throw new UsageError(`--${name} must be a number, got ${JSON.stringify(v)}`);
  return x;
}

type Values = Record<string, unknown>;

/** Options of commands that read response lists (SRR, monitors). */
export const listDataOptions = {
  data: { type: "string", multiple: true },
  seed: { type: "string" },
  "limit-per-file": { type: "string" },
  "max-candidates": { type: "string" },
  "max-chars": { type: "string" },
  "test-source": { type: "string", multiple: true },
  "lossy-utf8": { type: "boolean", default: false },
  "on-long": { type: "string", default: "skip" },
} as const;

/** The response-list data options of a parsed command line. */
export function listData(values: Values, log: (m: string) => void) {
  const files = ((values.data as string[] | undefined) ?? []).flatMap((d) => d.split(",")).map((s) => s.trim()).filter(Boolean);
  if (files.length === 0) throw new UsageError("give response lists with --data FILE.jsonl (repeat it, or separate files with commas)");
  return {
    files,
    seed: intOption(values.seed as string | undefined, "seed") ?? 1,
    limitPerFile: intOption(values["limit-per-file"] as string | undefined, "limit-per-file"),
    lossyUtf8: values["lossy-utf8"] === true,
    maxCandidates: intOption(values["max-candidates"] as string | undefined, "max-candidates"),
    maxChars: intOption(values["max-chars"] as string | undefined, "max-chars"),
    testSources: (values["test-source"] as string[] | undefined) ?? undefined,
    onLong: onLongValue(values["on-long"]),
    onLog: log,
  };
}

/** The --on-long option (records longer than the context). */
export const onLongOption = { "on-long": { type: "string", default: "skip" } } as const;

/** Parses --on-long. */
export function onLongValue(v: unknown): "skip" | "truncate" | "error" {
  if (v === "skip" || v === "truncate" || v === "error") return v;
  throw new UsageError(`--on-long must be skip, truncate or error, got ${JSON.stringify(v)}`);
}

/** A logger to stderr, silent with --json. */
export const logger = (json: boolean) => (json ? () => undefined : (m: string) => process.stderr.write(`${m}\n`));
