import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileFormatError } from "../src/errors";
import { readSafetensors, writeSafetensors, type SafetensorsTensor } from "../src/io/safetensors";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safety-lens-st-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function sample(): SafetensorsTensor[] {
  // A view into a larger buffer checks that byteOffset is honoured.
  const backing = Float32Array.from({ length: 40 }, (_, i) => i * 0.25 - 3);
  return [
    { name: "probe.weight", shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => Math.sin(i) * 1e3) },
    { name: "probe.bias", shape: [3], data: new Float32Array([0.5, -1.25, 3e-8]) },
    { name: "view", shape: [2, 2, 5], data: backing.subarray(7, 27) },
    { name: "scalar", shape: [], data: new Float32Array([42]) },
  ];
}
const META = { format: "safety-lens-probe", layer: "12", note: "ünïcödé ✓" };

async function expectFormatError(p: Promise<unknown>, fragment: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FileFormatError);
  expect((err as Error).message).toContain(fragment);
}

test("round trip", async () => {
  const path = join(dir, "rt.safetensors");
  await writeSafetensors(path, sample(), META);
  const { metadata, tensors } = await readSafetensors(path);
  expect(metadata).toEqual(META);
  expect([...tensors.keys()]).toEqual(sample().map((t) => t.name));
  for (const t of sample()) {
    expect(tensors.get(t.name)?.shape).toEqual(t.shape);
    expect(tensors.get(t.name)?.data).toEqual(t.data);
  }
});

test("header layout follows the spec (and python safetensors loads the file when available)", async () => {
  const path = join(dir, "layout.safetensors");
  const tensors = sample();
  await writeSafetensors(path, tensors, META);
  const bytes = await readFile(path);
  const n = Number(bytes.readBigUInt64LE(0));
  expect(n % 8).toBe(0);
  const headerText = bytes.subarray(8, 8 + n).toString("utf8");
  expect(headerText.startsWith("{")).toBe(true);
  const json = headerText.trimEnd();
  expect(Buffer.byteLength(json)).toBeGreaterThan(n - 8); // padded with fewer than 8 spaces
  expect(headerText.slice(json.length)).toBe(" ".repeat(n - Buffer.byteLength(json)));
  const header = JSON.parse(headerText);
  expect(header.__metadata__).toEqual(META);
  let offset = 0;
  for (const t of tensors) {
    expect(header[t.name]).toEqual({ dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] });
    const raw = bytes.subarray(8 + n + offset, 8 + n + offset + t.data.byteLength);
    const expectedBytes = Buffer.alloc(t.data.byteLength);
    t.data.forEach((v, i) => expectedBytes.writeFloatLE(v, i * 4));
    expect(raw.equals(expectedBytes)).toBe(true);
    offset += t.data.byteLength;
  }
  expect(bytes.length).toBe(8 + n + offset);

  const hasPython = spawnSync("python3", ["-c", "import safetensors.numpy, numpy"], { stdio: "ignore" }).status === 0;
  if (hasPython) {
    const script = [
      "import json, sys",
      "from safetensors.numpy import load_file",
      "from safetensors import safe_open",
      "t = load_file(sys.argv[1])",
      "meta = safe_open(sys.argv[1], framework='numpy').metadata()",
      "print(json.dumps({'meta': meta, 'tensors': {k: {'shape': list(v.shape), 'dtype': str(v.dtype), 'data': v.reshape(-1).astype(float).tolist()} for k, v in t.items()}}))",
    ].join("\n");
    const out = JSON.parse(execFileSync("python3", ["-c", script, path], { encoding: "utf8" }));
    expect(out.meta).toEqual(META);
    for (const t of tensors) {
      expect(out.tensors[t.name].shape).toEqual(t.shape);
      expect(out.tensors[t.name].dtype).toBe("float32");
      expect(Float32Array.from(out.tensors[t.name].data)).toEqual(t.data);
    }
  }
});

test("no metadata, empty tensor list", async () => {
  const path = join(dir, "empty.safetensors");
  await writeSafetensors(path, [], {});
  const { metadata, tensors } = await readSafetensors(path);
  expect(metadata).toEqual({});
  expect(tensors.size).toBe(0);
});

test("writer validates shapes", async () => {
  await expect(
    writeSafetensors(join(dir, "bad.safetensors"), [{ name: "x", shape: [2, 3], data: new Float32Array(5) }], {}),
  ).rejects.toThrow('tensor "x": shape [2, 3] needs 6 values, data has 5');
});

describe("corrupt files", () => {
  async function variant(name: string, edit: (b: Buffer) => Buffer): Promise<string> {
    const good = join(dir, "good.safetensors");
    await writeSafetensors(good, sample(), META);
    const path = join(dir, name);
    await writeFile(path, edit(await readFile(good)));
    return path;
  }
  function withHeader(b: Buffer, mutate: (h: Record<string, any>) => void): Buffer {
    const n = Number(b.readBigUInt64LE(0));
    const h = JSON.parse(b.subarray(8, 8 + n).toString("utf8"));
    mutate(h);
    const json = Buffer.from(JSON.stringify(h));
    if (json.length > n) throw new Error("test header grew");
    const text = Buffer.alloc(n, 0x20);
    json.copy(text);
    return Buffer.concat([b.subarray(0, 8), text, b.subarray(8 + n)]);
  }

  test("header length larger than the file", async () => {
    const p = await variant("len.safetensors", (b) => {
      b.writeBigUInt64LE(1n << 40n, 0);
      return b;
    });
    await expectFormatError(readSafetensors(p), `${p}: header length 1099511627776 is larger than the rest of the file`);
  });

  test("header length off by a few bytes (JSON broken)", async () => {
    const p = await variant("len2.safetensors", (b) => {
      b.writeBigUInt64LE(b.readBigUInt64LE(0) - 16n, 0);
      return b;
    });
    await expectFormatError(readSafetensors(p), "safetensors header is not valid JSON");
  });

  test("too small", async () => {
    const p = join(dir, "tiny.safetensors");
    await writeFile(p, Buffer.from([1, 2, 3]));
    await expectFormatError(readSafetensors(p), "too small to be a safetensors file (3 bytes)");
  });

  test("missing file", async () => {
    await expectFormatError(readSafetensors(join(dir, "missing.safetensors")), "file not found");
  });

  test("unsupported dtype", async () => {
    const p = await variant("dtype.safetensors", (b) => withHeader(b, (h) => (h["probe.bias"].dtype = "F16")));
    await expectFormatError(readSafetensors(p), 'tensor "probe.bias" has dtype "F16"; only F32 is supported');
  });

  test("shape does not match the byte range", async () => {
    const p = await variant("shape.safetensors", (b) => withHeader(b, (h) => (h["probe.weight"].shape = [4, 4])));
    await expectFormatError(readSafetensors(p), 'tensor "probe.weight" has shape [4, 4] (64 bytes of F32) but data_offsets span 48 bytes');
  });

  test("overlapping offsets", async () => {
    const p = await variant("overlap.safetensors", (b) =>
      withHeader(b, (h) => {
        h["probe.bias"].data_offsets = [0, 12];
      }),
    );
    await expectFormatError(readSafetensors(p), "tensor data must be contiguous");
  });

  test("truncated data", async () => {
    const p = await variant("trunc.safetensors", (b) => b);
    const size = (await readFile(p)).length;
    await truncate(p, size - 4);
    await expectFormatError(readSafetensors(p), "(truncated?)");
  });
});
