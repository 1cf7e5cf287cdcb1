/**
 * Test helpers: Python's Jinja2 set up as transformers sets it up
 * (test/oracle/render_templates.py), and llama.cpp's chat templates read from
 * node-llama-cpp's bundled llama.cpp release (never committed here).
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

import { tmpDir } from "./helpers";

const ORACLE = path.join(__dirname, "oracle", "render_templates.py");
const BUNDLE = path.join(__dirname, "..", "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle");

export interface OracleJob {
  id: string;
  template: string;
  messages: Array<Record<string, unknown>>;
  tools_none?: boolean;
  variables?: Record<string, unknown>;
}

export interface OracleResult {
  id: string;
  text?: string;
  error?: { type: string; message: string; raised: boolean };
}

export interface OracleReply {
  python: string;
  jinja2: string;
  results: OracleResult[];
}

/** Debian's /usr/bin/python3 when its python3-jinja2 is installed, else `python3` with jinja2; a clear error otherwise. */
export function findPython(): string {
  const tried: string[] = [];
  for (const cmd of ["/usr/bin/python3", "python3"]) {
    const r = spawnSync(cmd, ["-c", "import jinja2"], { encoding: "utf8" });
    if (r.status === 0) return cmd;
    tried.push(`${cmd}: ${r.error ? r.error.message : (r.stderr || "").trim().split("\n").pop()}`);
  }
  throw new Error(
    "The chat-template conformance tests need Python 3 with Jinja2 as the reference renderer " +
      "(Debian/Ubuntu: apt-get install python3-jinja2; elsewhere: pip install jinja2). Tried " + tried.join("; "),
  );
}

/** Renders every job in one Python process. */
export function runOracle(python: string, jobs: OracleJob[], options: { date: string; bos: string; eos: string; addGenerationPrompt?: boolean }): OracleReply {
  const request = { date: options.date, bos_token: options.bos, eos_token: options.eos, add_generation_prompt: options.addGenerationPrompt ?? true, jobs };
  const r = spawnSync(python, [ORACLE], { input: JSON.stringify(request), encoding: "utf8", maxBuffer: 1 << 28, timeout: 120000 });
  if (r.status !== 0) throw new Error(`the Jinja2 oracle failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}`);
  const reply = JSON.parse(r.stdout) as OracleReply;
  if (reply.results.length !== jobs.length) throw new Error(`the oracle answered ${reply.results.length} of ${jobs.length} jobs`);
  return reply;
}

/** llama.cpp's models/templates/*.jinja (name -> source), read from node-llama-cpp's git bundle into a temp dir. */
export function extractTemplates(): Map<string, string> {
  const dir = tmpDir("safety-lens-templates-");
  try {
    const git = path.join(dir, "llama.git");
    execFileSync("git", ["clone", "-q", "--bare", BUNDLE, git], { stdio: "pipe" });
    const tar = execFileSync("git", ["--git-dir", git, "archive", "HEAD", "models/templates"], { maxBuffer: 1 << 28 });
    execFileSync("tar", ["-x", "-C", dir], { input: tar });
    const tdir = path.join(dir, "models", "templates");
    const out = new Map<string, string>();
    for (const f of fs.readdirSync(tdir).filter((f) => f.endsWith(".jinja")).sort()) out.set(f.replace(/\.jinja$/, ""), fs.readFileSync(path.join(tdir, f), "utf8"));
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
