/**
 * The envelope every safety-lens model file shares (probes, rankers, monitors): JSON
 * with `format`, `version`, the identity of the model it was trained on, how inputs
 * were rendered, and `training` notes. A model file is data: every field is checked,
 * nothing is evaluated. Reading and writing are atomic; errors are ModelFileError.
 */
import { closeSync, fsyncSync, openSync, promises as fsp, renameSync, writeSync } from "node:fs";

import { ModelFileError, type ModelFileKind } from "../errors";
import { writeTextAtomically } from "./fileio";

/** Identifies the model whose hidden states a file was trained on. */
export interface ModelIdentity {
  fingerprint: string;
  name: string;
  arch: string;
  nLayer: number;
  nEmbd: number;
}

/** The identity fields of a loaded model's info. */
export function identityOf(info: ModelIdentity): ModelIdentity {
  return { fingerprint: info.fingerprint, name: info.name, arch: info.arch, nLayer: info.nLayer, nEmbd: info.nEmbd };
}

/** Reads and parses a JSON file; a missing, unreadable or invalid file is a ModelFileError (PROBE_INVALID). */
export async function readJsonFile(file: string, kind: ModelFileKind): Promise<unknown> {
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFileError("PROBE_INVALID", file, code === "ENOENT" ? `${kind} file not found` : `cannot read the ${kind} file (${code})`, kind);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFileError("PROBE_INVALID", file, `not valid JSON (${(e as Error).message})`, kind);
  }
}

/** Writes JSON atomically (temporary file, then rename). */
export function writeJsonFile(file: string, value: unknown): Promise<void> {
  return writeTextAtomically(file, `${JSON.stringify(value)}\n`);
}

/** writeJsonFile from synchronous code (a training loop's checkpoint): temporary file, fsync, rename. */
export function writeJsonFileSync(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.checkpoint.tmp`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, `${JSON.stringify(value)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** A parsed model file whose envelope (format, version, model identity) was checked. */
export interface Envelope {
  /** The whole JSON object. */
  json: Record<string, unknown>;
  model: ModelIdentity;
  training: Record<string, unknown>;
  /** Throws ModelFileError PROBE_INVALID naming the file. */
  bad: (detail: string) => never;
}

/** Checks a parsed file's envelope: a JSON object of this format and version naming a model. */
export function readEnvelope(json: unknown, file: string | null, kind: ModelFileKind, format: string, version: number): Envelope {
  const bad = (detail: string): never => {
    throw new ModelFileError("PROBE_INVALID", file, detail, kind);
  };
  if (json === null || typeof json !== "object" || Array.isArray(json)) bad(`a ${kind} file is a JSON object`);
  const o = json as Record<string, unknown>;
  if (o.format !== format) bad(`not a safety-lens ${kind} (format ${JSON.stringify(o.format)}, expected "${format}")`);
  if (o.version !== version) bad(`unsupported ${kind} version ${JSON.stringify(o.version)} (this safety-lens reads version ${version})`);
  const m = o.model as Record<string, unknown>;
  if (!m || typeof m !== "object" || typeof m.fingerprint !== "string" || !Number.isInteger(m.nEmbd) || !Number.isInteger(m.nLayer) || (m.nEmbd as number) < 1 || (m.nLayer as number) < 1) {
    bad("model must give fingerprint, nEmbd and nLayer");
  }
  const model: ModelIdentity = { fingerprint: m.fingerprint as string, name: String(m.name ?? ""), arch: String(m.arch ?? ""), nLayer: m.nLayer as number, nEmbd: m.nEmbd as number };
  const training = o.training && typeof o.training === "object" && !Array.isArray(o.training) ? (o.training as Record<string, unknown>) : {};
  return { json: o, model, training, bad };
}

/**
 * Throws ModelFileError PROBE_MODEL_MISMATCH unless `model` is the one the file was
 * trained on: same fingerprint, and the same width and depth (a file edited to claim
 * another fingerprint must still fit the model's shapes).
 */
export function checkModelIdentity(kind: ModelFileKind, trained: ModelIdentity, model: ModelIdentity, file: string | null = null): void {
  if (model.fingerprint !== trained.fingerprint) {
    throw new ModelFileError(
      "PROBE_MODEL_MISMATCH",
      file,
      `this ${kind} was trained on model ${trained.name} (${trained.fingerprint}), not on ${model.name} (${model.fingerprint}); ` +
        `hidden states of different models are not comparable: train a ${kind} for this model`,
      kind,
    );
  }
  if (model.nEmbd !== trained.nEmbd || model.nLayer !== trained.nLayer) {
    throw new ModelFileError(
      "PROBE_INVALID",
      file,
      `this ${kind} claims model ${trained.fingerprint} with ${trained.nLayer} layers of width ${trained.nEmbd}, but that model has ${model.nLayer} layers of width ${model.nEmbd}`,
      kind,
    );
  }
}
