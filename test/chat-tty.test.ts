/**
 * `safety-lens chat` on a real terminal: driven through tmux (a pseudo-terminal, as a user types),
 * the prompt appears, each answer streams after "assistant> " with its verdict line, the second turn
 * reuses the first turn's cache, and an empty line ends the program.
 */
import { execFileSync } from "node:child_process";
import * as path from "node:path";

const CLI = path.join(__dirname, "..", "dist", "cli", "main.js");
const SOCKET = `safety-lens-test-${process.pid}`;

function tmux(...args: string[]): string {
  return execFileSync("tmux", ["-L", SOCKET, ...args], { encoding: "utf8" });
}

/** The pane's text (with scrollback), or "" once the session is gone. */
function pane(): string {
  try {
    return tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "chat").replace(/[ \t]+$/gm, "");
  } catch {
    return "";
  }
}

async function waitFor(test: (text: string) => boolean, what: string, ms = 60_000): Promise<string> {
  const t0 = Date.now();
  for (;;) {
    const text = pane();
    if (test(text)) return text;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}; the pane shows:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function sessionAlive(): boolean {
  try {
    tmux("has-session", "-t", "chat");
    return true;
  } catch {
    return false;
  }
}

afterAll(() => {
  try {
    tmux("kill-server");
  } catch {
    // already gone
  }
});

test("an interactive chat in a terminal: prompt, streamed answers with verdicts, cache reuse, empty line ends it", async () => {
  // a wide pane, and remain-on-exit so the last output can still be read
  tmux("new-session", "-d", "-s", "chat", "-x", "200", "-y", "50", `${process.execPath} ${CLI} chat --threads 1 --max-tokens 8 --temperature 0; sleep 30`);
  await waitFor((t) => /you>$/m.test(t), "the first prompt");
  expect(pane()).toMatch(/^chatting with .+ \(gguf-[0-9a-f]+\); empty line or Ctrl-D to end$/m);

  tmux("send-keys", "-t", "chat", "Tell me about a cat.", "Enter");
  const first = await waitFor((t) => (t.match(/\[length, prefilled \d+, reused \d+, first token \d+ ms\]/g) ?? []).length === 1 && /you>$/m.test(t), "the first answer");
  // the answer streamed on the line after the typed question, then its verdict line
  expect(first).toMatch(/you> Tell me about a cat\.\nassistant> \S.*\n\[length, prefilled \d+, reused 0, first token \d+ ms\]\nyou>/);

  tmux("send-keys", "-t", "chat", "What did the cat eat?", "Enter");
  const second = await waitFor((t) => (t.match(/\[length, prefilled \d+, reused \d+, first token \d+ ms\]/g) ?? []).length === 2 && /you>$/m.test(t), "the second answer");
  const reused = [...second.matchAll(/\[length, prefilled (\d+), reused (\d+), first token \d+ ms\]/g)].map((m) => Number(m[2]));
  expect(reused[0]).toBe(0);
  expect(reused[1]).toBeGreaterThan(0); // the second turn prefilled only its new tokens

  // an empty line ends the chat: the program exits (the shell's sleep keeps the pane readable)
  tmux("send-keys", "-t", "chat", "", "Enter");
  const t0 = Date.now();
  for (;;) {
    const pids = tmux("list-panes", "-t", "chat", "-F", "#{pane_current_command}").trim();
    if (pids === "sleep") break;
    if (Date.now() - t0 > 30_000) throw new Error(`the chat did not exit: the pane runs ${pids}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(sessionAlive()).toBe(true);
}, 120_000);
