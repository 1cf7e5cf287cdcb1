/** `safety-lens merge`: joins capture shards into one file, in row order, checking that they belong together. */
import * as path from "node:path";
import { parseArgs } from "node:util";

import { mergeCaptureFiles } from "../io/capture-file";
import { print, UsageError } from "./util";

export async function cmdMerge(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { out: { type: "string" }, "allow-partial": { type: "boolean", default: false }, json: { type: "boolean", default: false } },
    allowPositionals: true,
    strict: true,
  });
  if (!values.out) throw new UsageError("merge needs --out FILE.safetensors");
  if (positionals.length === 0) throw new UsageError("merge needs the shard files: safety-lens merge a.safetensors b.safetensors ... --out all.safetensors");
  const r = await mergeCaptureFiles(positionals, values.out, { allowPartial: values["allow-partial"] });
  print(values.json, { ...r, out: path.resolve(values.out) }, `wrote ${path.resolve(values.out)} from ${positionals.length} file(s)`);
}
