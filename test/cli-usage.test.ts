/** The --help text names every option some command accepts (read from the commands' own option tables). */
import * as fs from "node:fs";
import * as path from "node:path";

import { main } from "../src/cli/main";

test("--help lists every option and every command", async () => {
  let text = "";
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => ((text += s), true)) as typeof process.stdout.write;
  try {
    expect(await main(["--help"])).toBe(0);
  } finally {
    process.stdout.write = write;
  }
  const dir = path.join(__dirname, "..", "src", "cli");
  const options = new Set<string>();
  for (const f of fs.readdirSync(dir)) {
    const src = fs.readFileSync(path.join(dir, f), "utf8");
    for (const m of src.matchAll(/"?([a-z][a-z0-9-]*)"?: \{ type: "(?:string|boolean)"/g)) options.add(m[1]);
  }
  options.delete("help");
  expect(options.size).toBeGreaterThan(60);
  const missing = [...options].filter((o) => !new RegExp(`--${o}\\b`).test(text));
  expect(missing).toEqual([]);
  const commands = [...fs.readFileSync(path.join(dir, "main.ts"), "utf8").matchAll(/case "([a-z-]+)":/g)].map((m) => m[1]);
  expect(commands.length).toBeGreaterThan(15);
  expect(commands.filter((c) => !text.includes(`safety-lens ${c} `))).toEqual([]);
});
