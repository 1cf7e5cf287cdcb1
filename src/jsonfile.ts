/** Reading the JSON files safety-lens writes (probes, rankers), with typed errors. */
import { promises as fsp } from "node:fs";

import { ProbeFileError } from "./errors";
import { writeTextAtomically } from "./fileio";

/** Reads and parses a JSON file; a missing, unreadable or invalid file is a ProbeFileError (PROBE_INVALID). */
export async function readJsonFile(file: string, what: "probe" | "ranker"): Promise<unknown> {
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ProbeFileError("PROBE_INVALID", file, code === "ENOENT" ? `${what} file not found` : `cannot read the ${what} file (${code})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ProbeFileError("PROBE_INVALID", file, `not valid JSON (${(e as Error).message})`);
  }
}

/** Writes JSON atomically (temporary file, then rename). */
export function writeJsonFile(file: string, value: unknown): Promise<void> {
  return writeTextAtomically(file, `${JSON.stringify(value)}\n`);
}
