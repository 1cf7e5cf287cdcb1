import { mkdtemp, readFile, rm, truncate, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelLoadError } from "../src/errors";
import { GgmlType, ggufFingerprint, GgufValueType, readGgufInfo, readGgufMetadataEntries } from "../src/io/gguf";
import {
  f16ToF32,
  f32ToF16,
  readGgufTensorF32,
  writeGguf,
  type GgufMetadataEntryInput,
  type GgufTensorInput,
} from "../src/tools/gguf-writer";

const STORIES = join(__dirname, "..", "models", "stories260K.gguf");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safety-lens-gguf-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const T = GgufValueType;

/** Metadata with every scalar type and several array types. */
function sampleMetadata(): GgufMetadataEntryInput[] {
  return [
    { key: "general.architecture", type: T.STRING, value: "llama" },
    { key: "test.u8", type: T.UINT8, value: 255 },
    { key: "test.i8", type: T.INT8, value: -128 },
    { key: "test.u16", type: T.UINT16, value: 65535 },
    { key: "test.i16", type: T.INT16, value: -32768 },
    { key: "test.u32", type: T.UINT32, value: 4294967295 },
    { key: "test.i32", type: T.INT32, value: -2147483648 },
    { key: "test.f32", type: T.FLOAT32, value: 0.5 },
    { key: "test.bool_t", type: T.BOOL, value: true },
    { key: "test.bool_f", type: T.BOOL, value: false },
    { key: "test.str", type: T.STRING, value: "héllo ✓ 世界" },
    { key: "test.empty_str", type: T.STRING, value: "" },
    { key: "test.u64", type: T.UINT64, value: 123456789012 },
    { key: "test.u64_big", type: T.UINT64, value: 18446744073709551615n },
    { key: "test.i64", type: T.INT64, value: -9007199254740991 },
    { key: "test.f64", type: T.FLOAT64, value: Math.PI },
    { key: "tokenizer.ggml.tokens", type: T.ARRAY, itemType: T.STRING, value: ["<s>", "</s>", "Ġhello", "世界", ""] },
    { key: "tokenizer.ggml.token_type", type: T.ARRAY, itemType: T.INT32, value: new Int32Array([3, 3, 1, 1, -1]) },
    { key: "tokenizer.ggml.scores", type: T.ARRAY, itemType: T.FLOAT32, value: [0, -1.5, 2.25, 1e-3, 7] },
    { key: "tokenizer.ggml.merges", type: T.ARRAY, itemType: T.STRING, value: ["Ġ h", "e llo"] },
    { key: "test.bools", type: T.ARRAY, itemType: T.BOOL, value: [true, false, true] },
    { key: "test.u8s", type: T.ARRAY, itemType: T.UINT8, value: [0, 1, 255] },
    { key: "test.i16s", type: T.ARRAY, itemType: T.INT16, value: new Int16Array([-2, 2]) },
    { key: "test.u64s", type: T.ARRAY, itemType: T.UINT64, value: [1, 2n ** 63n] },
    { key: "test.f64s", type: T.ARRAY, itemType: T.FLOAT64, value: new Float64Array([1.25, -2.5]) },
    { key: "test.empty", type: T.ARRAY, itemType: T.UINT32, value: [] },
    {
      key: "test.nested",
      type: T.ARRAY,
      itemType: T.ARRAY,
      value: [
        { itemType: T.STRING, value: ["a", "b"] },
        { itemType: T.INT8, value: new Int8Array([-1]) },
      ],
    },
  ];
}

function ramp(n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (i - n / 2) * scale);
}

function sampleTensors(): { tensors: GgufTensorInput[]; expected: Map<string, Float32Array> } {
  const a = ramp(15, 0.125); // exactly representable in F32 and F16
  const b = ramp(32, 0.013); // F16 rounding applies
  const cBits = f32ToF16(ramp(6, 0.5));
  const d = ramp(1000, 0.001);
  const tensors: GgufTensorInput[] = [
    { name: "a.f32", shape: [5, 3], type: GgmlType.F32, data: a },
    { name: "b.f16", shape: [8, 4], type: GgmlType.F16, data: b },
    { name: "c.f16bits", shape: [6], type: GgmlType.F16, data: cBits },
    {
      name: "d.chunks",
      shape: [10, 10, 10],
      type: GgmlType.F32,
      // Uneven chunks, reusing one buffer, from a generator.
      data: function* () {
        const buf = new Float32Array(300);
        for (let i = 0; i < 1000; i += 300) {
          const n = Math.min(300, 1000 - i);
          buf.set(d.subarray(i, i + n));
          yield buf.subarray(0, n);
        }
      },
    },
    { name: "e.scalar", shape: [1], type: GgmlType.F16, data: new Float32Array([3]) },
  ];
  const expected = new Map<string, Float32Array>([
    ["a.f32", a],
    ["b.f16", f16ToF32(f32ToF16(b))],
    ["c.f16bits", f16ToF32(cBits)],
    ["d.chunks", d],
    ["e.scalar", new Float32Array([3])],
  ]);
  return { tensors, expected };
}

async function writeSample(name: string): Promise<string> {
  const path = join(dir, name);
  await writeGguf(path, { metadata: sampleMetadata(), tensors: sampleTensors().tensors });
  return path;
}

describe("f16 conversion", () => {
  test("known values round to nearest even", () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00],
      [-1e9, 0xfc00],
      [Infinity, 0x7c00],
      [2 ** -14, 0x0400],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie -> even (0)
      [1.5 * 2 ** -25, 0x0001],
      [1e-9, 0x0000],
      [1 + 2 ** -11, 0x3c00], // tie -> even
      [1 + 3 * 2 ** -11, 0x3c02], // tie -> even (up)
    ];
    const out = f32ToF16(Float32Array.from(cases, (c) => c[0]));
    expect(Array.from(out)).toEqual(cases.map((c) => c[1]));
    expect(f32ToF16(new Float32Array([NaN]))[0] & 0x7c00).toBe(0x7c00);
    expect(f32ToF16(new Float32Array([NaN]))[0] & 0x03ff).not.toBe(0);
  });

  test("every finite float16 survives f16 -> f32 -> f16", () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const back = f32ToF16(f16ToF32(all));
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x03ff) !== 0) continue; // NaN payloads may change
      if (back[h] !== h) throw new Error(`f16 ${h.toString(16)} came back as ${back[h].toString(16)}`);
    }
    expect(f16ToF32(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001]))).toEqual(
      new Float32Array([1, -2, 65504, 2 ** -24]),
    );
  });
});

describe("GGUF round trip", () => {
  test("metadata of every type and tensors come back", async () => {
    const path = await writeSample("roundtrip.gguf");
    const info = await readGgufInfo(path);
    expect(info.version).toBe(3);
    expect(info.alignment).toBe(32);
    expect(info.dataOffset % 32).toBe(0);
    expect(info.expectedSize).toBeLessThanOrEqual(info.fileSize);

    const m = info.metadata;
    expect(m["general.architecture"]).toBe("llama");
    expect(m["test.u8"]).toBe(255);
    expect(m["test.i8"]).toBe(-128);
    expect(m["test.u16"]).toBe(65535);
    expect(m["test.i16"]).toBe(-32768);
    expect(m["test.u32"]).toBe(4294967295);
    expect(m["test.i32"]).toBe(-2147483648);
    expect(m["test.f32"]).toBe(0.5);
    expect(m["test.bool_t"]).toBe(true);
    expect(m["test.bool_f"]).toBe(false);
    expect(m["test.str"]).toBe("héllo ✓ 世界");
    expect(m["test.empty_str"]).toBe("");
    expect(m["test.u64"]).toBe(123456789012);
    expect(m["test.u64_big"]).toBe(18446744073709551615n);
    expect(m["test.i64"]).toBe(-9007199254740991);
    expect(m["test.f64"]).toBe(Math.PI);
    expect(m["tokenizer.ggml.tokens"]).toEqual(["<s>", "</s>", "Ġhello", "世界", ""]);
    expect(m["tokenizer.ggml.token_type"]).toEqual(new Int32Array([3, 3, 1, 1, -1]));
    expect(m["tokenizer.ggml.scores"]).toEqual(new Float32Array([0, -1.5, 2.25, 1e-3, 7]));
    expect(m["tokenizer.ggml.merges"]).toEqual(["Ġ h", "e llo"]);
    expect(m["test.bools"]).toEqual([true, false, true]);
    expect(m["test.u8s"]).toEqual(new Uint8Array([0, 1, 255]));
    expect(m["test.i16s"]).toEqual(new Int16Array([-2, 2]));
    expect(m["test.u64s"]).toEqual(new BigUint64Array([1n, 2n ** 63n]));
    expect(m["test.f64s"]).toEqual(new Float64Array([1.25, -2.5]));
    expect(m["test.empty"]).toEqual(new Uint32Array(0));
    expect(m["test.nested"]).toEqual([
      { itemType: T.STRING, value: ["a", "b"] },
      { itemType: T.INT8, value: new Int8Array([-1]) },
    ]);

    const { tensors, expected } = sampleTensors();
    expect(info.tensors.map((t) => [t.name, t.shape, t.type])).toEqual(tensors.map((t) => [t.name, [...t.shape], t.type]));
    for (const t of info.tensors) {
      expect(t.offset % 32).toBe(0);
      expect(await readGgufTensorF32(path, info, t.name)).toEqual(expected.get(t.name));
    }
    expect(info.tensors.find((t) => t.name === "b.f16")?.nbytes).toBe(64);
  });

  test("typed metadata entries copy verbatim into a new file", async () => {
    const src = await writeSample("copy-src.gguf");
    const entries = await readGgufMetadataEntries(src);
    expect(entries.map((e) => e.key)).toEqual(sampleMetadata().map((e) => e.key));
    expect(entries.find((e) => e.key === "tokenizer.ggml.token_type")).toMatchObject({ type: T.ARRAY, itemType: T.INT32 });
    expect(entries.find((e) => e.key === "test.u64")).toMatchObject({ type: T.UINT64, value: 123456789012 });

    const tokOnly = await readGgufMetadataEntries(src, (k) => k.startsWith("tokenizer."));
    expect(tokOnly.map((e) => e.key)).toEqual([
      "tokenizer.ggml.tokens",
      "tokenizer.ggml.token_type",
      "tokenizer.ggml.scores",
      "tokenizer.ggml.merges",
    ]);

    const dst = join(dir, "copy-dst.gguf");
    await writeGguf(dst, { metadata: entries, tensors: sampleTensors().tensors });
    expect(await readFile(dst)).toEqual(await readFile(src));
  });

  test("a metadata-only file ends right after the header", async () => {
    const path = join(dir, "meta-only.gguf");
    const { fileSize } = await writeGguf(path, { metadata: sampleMetadata(), tensors: [] });
    const info = await readGgufInfo(path);
    expect(info.fileSize).toBe(fileSize);
    expect(info.expectedSize).toBe(fileSize);
    expect(info.tensors).toEqual([]);
    expect(info.metadata["tokenizer.ggml.merges"]).toEqual(["Ġ h", "e llo"]);
  });

  test("ordered Map metadata, alignment and version options", async () => {
    const path = join(dir, "map.gguf");
    const metadata = new Map([
      ["general.architecture", { type: T.STRING, value: "llama" }],
      ["x.ids", { type: T.ARRAY, itemType: T.UINT32, value: new Uint32Array([7, 8]) }],
    ]);
    await writeGguf(path, {
      metadata,
      tensors: [{ name: "w", shape: [3], type: GgmlType.F32, data: new Float32Array([1, 2, 3]) }],
      alignment: 64,
      version: 2,
    });
    const info = await readGgufInfo(path);
    expect(info.version).toBe(2);
    expect(info.alignment).toBe(64);
    expect(info.metadata["general.alignment"]).toBe(64);
    expect(info.dataOffset % 64).toBe(0);
    expect(info.metadata["x.ids"]).toEqual(new Uint32Array([7, 8]));
    expect(await readGgufTensorF32(path, info, "w")).toEqual(new Float32Array([1, 2, 3]));
  });

  test("the writer rejects bad input and leaves no file behind", async () => {
    const path = join(dir, "bad-write.gguf");
    await expect(
      writeGguf(path, { metadata: [{ key: "k", type: T.UINT8, value: 256 }], tensors: [] }),
    ).rejects.toThrow(RangeError);
    await expect(
      writeGguf(path, {
        metadata: [],
        tensors: [{ name: "w", shape: [4], type: GgmlType.F32, data: new Float32Array(3) }],
      }),
    ).rejects.toThrow('GGUF tensor "w": got 3 elements, its shape [4] needs 4');
    await expect(
      writeGguf(path, {
        metadata: [],
        tensors: [{ name: "w", shape: [2], type: GgmlType.F32, data: new Uint16Array(2) }],
      }),
    ).rejects.toThrow("needs type F16");
    await expect(readGgufInfo(path)).rejects.toThrow(`Model file not found: ${path}`);
  });
});

describe("GGUF validation errors", () => {
  async function expectLoadError(p: Promise<unknown>, code: string, message: string | RegExp): Promise<void> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as ModelLoadError).code).toBe(code);
    if (typeof message === "string") expect((err as Error).message).toBe(message);
    else expect((err as Error).message).toMatch(message);
  }
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  test("missing file", async () => {
    const p = join(dir, "nope.gguf");
    await expectLoadError(readGgufInfo(p), "MODEL_NOT_FOUND", `Model file not found: ${p}`);
  });

  test("a directory", async () => {
    const p = join(dir, "a-dir.gguf");
    await mkdir(p);
    await expectLoadError(readGgufInfo(p), "MODEL_NOT_FOUND", `Model path is a directory, not a GGUF file: ${p}`);
  });

  test("bad magic", async () => {
    const p = join(dir, "bad-magic.gguf");
    await writeFile(p, Buffer.from("PK\x03\x04 this is a zip file, not a model"));
    await expectLoadError(readGgufInfo(p), "MODEL_INVALID", `${p} is not a GGUF file (bad magic bytes)`);
  });

  test("empty file", async () => {
    const p = join(dir, "empty.gguf");
    await writeFile(p, Buffer.alloc(0));
    await expectLoadError(readGgufInfo(p), "MODEL_INVALID", `${p} is truncated: the file has only 0 bytes`);
  });

  test("unsupported version", async () => {
    const p = await writeSample("v1.gguf");
    const bytes = await readFile(p);
    bytes.writeUInt32LE(1, 4);
    await writeFile(p, bytes);
    await expectLoadError(readGgufInfo(p), "MODEL_INVALID", new RegExp(`^${esc(p)} has unsupported GGUF version 1 `));
  });

  test("header cut short", async () => {
    const p = await writeSample("cut-header.gguf");
    const info = await readGgufInfo(p);
    // Descending: truncate() to a larger size would pad with zeros instead of cutting.
    for (const cut of [info.dataOffset - 40, Math.floor(info.dataOffset / 2), 200, 30, 10]) {
      await truncate(p, cut);
      await expectLoadError(readGgufInfo(p), "MODEL_INVALID", new RegExp(`^${esc(p)} is truncated: `));
    }
  });

  test("tensor data cut short", async () => {
    const p = await writeSample("cut-data.gguf");
    const info = await readGgufInfo(p);
    const need = info.expectedSize! - info.dataOffset;
    await truncate(p, info.expectedSize! - 10);
    await expectLoadError(
      readGgufInfo(p),
      "MODEL_INVALID",
      new RegExp(`^${esc(p)} is truncated: expected at least ${need} bytes of tensor data, file has ${need - 10} `),
    );
  });

  test("absurd lengths and counts fail fast without huge allocations", async () => {
    const p = await writeSample("absurd.gguf");
    const good = await readFile(p);
    // First key's length field is at byte 24.
    const longKey = Buffer.from(good);
    longKey.writeBigUInt64LE(1n << 50n, 24);
    await writeFile(p, longKey);
    await expectLoadError(readGgufInfo(p), "MODEL_INVALID", /is truncated: metadata key #0 at byte 24 has length 1125899906842624/);
    // Metadata count.
    const manyKv = Buffer.from(good);
    manyKv.writeBigUInt64LE(1n << 60n, 16);
    await writeFile(p, manyKv);
    await expectLoadError(readGgufInfo(p), "MODEL_INVALID", /is truncated: header declares 1152921504606846976 metadata entries/);
    // Array count of tokenizer.ggml.tokens: find its item type + count right after the key.
    const key = Buffer.from("tokenizer.ggml.tokens");
    const at = good.indexOf(key) + key.length + 4 /* value type */ + 4; /* item type */
    const bigArray = Buffer.from(good);
    bigArray.writeBigUInt64LE(1n << 40n, at);
    await writeFile(p, bigArray);
    await expectLoadError(readGgufInfo(p), "MODEL_INVALID", /is truncated: metadata value "tokenizer.ggml.tokens" declares 1099511627776 items/);
    // Unknown value type.
    const badType = Buffer.from(good);
    badType.writeUInt32LE(77, at - 8);
    await writeFile(p, badType);
    await expectLoadError(readGgufInfo(p), "MODEL_INVALID", `${p} is corrupt: metadata key "tokenizer.ggml.tokens" has unknown value type 77`);
  });
});

describe("ggufFingerprint", () => {
  test("stable across reads, sensitive to tensor bytes", async () => {
    const p = await writeSample("fp.gguf");
    const info = await readGgufInfo(p);
    const a = await ggufFingerprint(p, info);
    expect(a).toMatch(/^gguf-[0-9a-f]{16}$/);
    expect(await ggufFingerprint(p, await readGgufInfo(p))).toBe(a);

    const bytes = await readFile(p);
    bytes[info.dataOffset + info.tensors[1].offset + 3] ^= 0x01;
    const q = join(dir, "fp2.gguf");
    await writeFile(q, bytes);
    expect(await ggufFingerprint(q, await readGgufInfo(q))).not.toBe(a);
  });

  test("samples large data sections", async () => {
    const p = join(dir, "fp-large.gguf");
    const n = 3 << 20; // 12 MiB of F32, more than 32 x 64 KiB
    const data = ramp(n, 1e-6);
    await writeGguf(p, { metadata: [], tensors: [{ name: "big", shape: [n], type: GgmlType.F32, data }] });
    const info = await readGgufInfo(p);
    const a = await ggufFingerprint(p, info);
    expect(await ggufFingerprint(p, info)).toBe(a);
    // The first sample starts at the data section: a change there is detected.
    const bytes = await readFile(p);
    bytes[info.dataOffset + 5] ^= 0xff;
    await writeFile(p, bytes);
    expect(await ggufFingerprint(p, info)).not.toBe(a);
  });
});

describe("real model", () => {
  test("stories260K.gguf", async () => {
    const info = await readGgufInfo(STORIES);
    expect(info.metadata["general.architecture"]).toBe("llama");
    expect(info.metadata["llama.block_count"]).toBe(5);
    expect(info.tensors.length).toBeGreaterThan(0);
    expect(info.expectedSize).toBeDefined();
    expect(info.expectedSize!).toBeLessThanOrEqual(info.fileSize);
    const tokens = info.metadata["tokenizer.ggml.tokens"] as string[];
    expect(tokens.length).toBe(512);
    const embd = info.tensors.find((t) => t.name === "token_embd.weight");
    expect(embd?.shape).toEqual([64, 512]);
    expect(await ggufFingerprint(STORIES, info)).toBe(await ggufFingerprint(STORIES, info));
  });
});
