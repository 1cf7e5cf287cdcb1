import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const MODEL = path.join(__dirname, "..", "models", "stories260K.gguf");

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

export function tmpDir(prefix = "safety-lens-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export const STORIES = [
  "Once upon a time there was a little cat.",
  "The dog ran to the park.",
  "Lily liked to play in the park with her friend Tom every day after school, and they would run and jump and laugh until the sun went down and their moms called them home for dinner.",
  "Hi",
  "Tom had a big red ball. He threw it high in the sky and it came down in the tree. Tom was sad.",
];
