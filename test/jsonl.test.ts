import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataFormatError } from "../src/errors";
import { readJsonl, readTextRecords, type JsonlRecord } from "../src/io/jsonl";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safety-lens-jsonl-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
}

async function collect(path: string): Promise<JsonlRecord[]> {
  const out: JsonlRecord[] = [];
  for await (const r of readJsonl(path)) out.push(r);
  return out;
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

test("good file with blank lines, CRLF and a BOM", async () => {
  const p = await file(
    "good.jsonl",
    '\uFEFF{"id": "a", "text": "hello"}\r\n\r\n   \n{"text": "no id", "label": 1}\n{"id": 7, "text": "numeric id"}\n\n',
  );
  const records = await collect(p);
  expect(records).toEqual([
    { line: 1, value: { id: "a", text: "hello" } },
    { line: 4, value: { text: "no id", label: 1 } },
    { line: 5, value: { id: 7, text: "numeric id" } },
  ]);
  expect(await readTextRecords(p)).toEqual({
    ids: ["a", "good.jsonl:4", "7"],
    texts: ["hello", "no id", "numeric id"],
  });
});

test("custom field names", async () => {
  const p = await file("custom.jsonl", '{"prompt": "x", "uid": "u1"}\n{"prompt": "y"}\n');
  expect(await readTextRecords(p, { field: "prompt", idField: "uid" })).toEqual({
    ids: ["u1", "custom.jsonl:2"],
    texts: ["x", "y"],
  });
});

test("bad JSON on line 3 reports file:3", async () => {
  const p = await file("bad.jsonl", '{"text": "a"}\n\n{"text": "b",}\n{"text": "c"}\n');
  const err = await caught(collect(p));
  expect(err).toBeInstanceOf(DataFormatError);
  expect((err as DataFormatError).line).toBe(3);
  expect((err as DataFormatError).file).toBe(p);
  expect((err as Error).message).toMatch(new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3: invalid JSON: `));
  expect(await caught(readTextRecords(p))).toBeInstanceOf(DataFormatError);
});

test("a line that is not an object", async () => {
  const p = await file("array.jsonl", '{"text": "a"}\n[1, 2]\n');
  const err = await caught(collect(p));
  expect(err).toBeInstanceOf(DataFormatError);
  expect((err as Error).message).toBe(`${p}:2: expected a JSON object, got an array`);
  const q = await file("null.jsonl", "null\n");
  expect((await caught(collect(q)) as Error).message).toBe(`${q}:1: expected a JSON object, got null`);
});

test("missing, non-string and empty text fields", async () => {
  const missing = await file("missing.jsonl", '{"text": "a"}\n{"id": "b"}\n');
  const e1 = await caught(readTextRecords(missing));
  expect(e1).toBeInstanceOf(DataFormatError);
  expect((e1 as Error).message).toBe(`${missing}:2: missing string field "text"`);

  const numeric = await file("numeric.jsonl", '{"text": 5}\n');
  expect((await caught(readTextRecords(numeric)) as Error).message).toBe(`${numeric}:1: missing string field "text" (got a number)`);

  const empty = await file("emptytext.jsonl", '{"text": "ok"}\n\n{"text": ""}\n');
  expect((await caught(readTextRecords(empty)) as Error).message).toBe(`${empty}:3: missing string field "text" (got an empty string)`);

  const badId = await file("badid.jsonl", '{"text": "ok", "id": {"x": 1}}\n');
  expect((await caught(readTextRecords(badId)) as Error).message).toBe(`${badId}:1: field "id" must be a string or a number, got an object`);
});

test("empty file gives no records", async () => {
  const p = await file("empty.jsonl", "");
  expect(await collect(p)).toEqual([]);
  expect(await readTextRecords(p)).toEqual({ ids: [], texts: [] });
});

test("missing file", async () => {
  const p = join(dir, "nope.jsonl");
  const err = (await caught(collect(p))) as NodeJS.ErrnoException;
  expect(err).toBeInstanceOf(Error);
  expect(err.code).toBe("ENOENT");
  expect(err.message).toBe(`Data file not found: ${p}`);
  expect(((await caught(readTextRecords(p))) as Error).message).toBe(`Data file not found: ${p}`);
});

test("large file streams", async () => {
  const lines = Array.from({ length: 20000 }, (_, i) => JSON.stringify({ id: `r${i}`, text: `text number ${i}` }));
  const p = await file("large.jsonl", lines.join("\n"));
  const { ids, texts } = await readTextRecords(p);
  expect(ids.length).toBe(20000);
  expect(ids[19999]).toBe("r19999");
  expect(texts[12345]).toBe("text number 12345");
});
