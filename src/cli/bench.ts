/** `safety-lens bench`: the benchmark (src/tools/bench.ts) from the command line. */
import { parseArgs } from "node:util";

import { common, intOption, print, UsageError } from "./util";

export async function cmdBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...common, synthetic: { type: "string" }, texts: { type: "string" }, repeats: { type: "string" }, only: { type: "string" } },
    strict: true,
  });
  const { runBench, formatBench } = await import("../tools/bench");
  if (values.model && values.synthetic) throw new UsageError("use --model or --synthetic, not both");
  if (values.only !== undefined && !["capture", "generate", "probe", "srr"].includes(values.only)) {
    throw new UsageError(`--only must be capture, generate, probe or srr, got ${JSON.stringify(values.only)}`);
  }
  const result = await runBench({
    modelPath: values.model,
    synthetic: values.synthetic,
    texts: intOption(values.texts, "texts"),
    repeats: intOption(values.repeats, "repeats"),
    threads: intOption(values.threads, "threads"),
    only: values.only as "capture" | "generate" | "probe" | "srr" | undefined,
    log: values.json ? () => undefined : (m: string) => process.stderr.write(`${m}\n`),
  });
  print(values.json, result, formatBench(result));
}
