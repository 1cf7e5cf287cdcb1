/** `safety-lens bench`: the benchmark (src/tools/bench.ts) from the command line. */
import { parseArgs } from "node:util";

import { common, intOption, print, UsageError } from "./util";

export async function cmdBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...common, synthetic: { type: "string" }, texts: { type: "string" }, repeats: { type: "string" }, only: { type: "string" } },
    strict: true,
  });
  const { runBench, formatBench, BENCH_SECTIONS } = await import("../tools/bench");
  for (const k of ["gpu", "context-size", "batch-size"] as const) {
    if (values[k] !== undefined) {
      throw new UsageError(`bench does not take --${k}: it runs on the CPU with its own context and batch sizes, the same for safety-lens and node-llama-cpp`);
    }
  }
  if (values.model && values.synthetic) throw new UsageError("use --model or --synthetic, not both");
  if (values.only !== undefined && !(BENCH_SECTIONS as readonly string[]).includes(values.only)) {
    throw new UsageError(`--only must be one of ${BENCH_SECTIONS.join(", ")}, got ${JSON.stringify(values.only)}`);
  }
  const result = await runBench({
    modelPath: values.model,
    synthetic: values.synthetic,
    texts: intOption(values.texts, "texts"),
    repeats: intOption(values.repeats, "repeats"),
    threads: intOption(values.threads, "threads"),
    only: values.only as (typeof BENCH_SECTIONS)[number] | undefined,
    log: values.json ? () => undefined : (m: string) => process.stderr.write(`${m}\n`),
  });
  print(values.json, result, formatBench(result));
}
