/**
 * Deterministic GGUF mutations for the fuzz test: a byte-offset map of a GGUF file (written here
 * independently of src/gguf.ts, which is part of what is tested) and an enumeration of in-place
 * byte edits of its header, metadata, tensor infos and tensor data.
 */
import { rng } from "../helpers";

/** GGUF value types (gguf_type). */
const T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STR: 8, ARR: 9, U64: 10, I64: 11, F64: 12 } as const;
const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const TYPE_NAME = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"];

export interface StringField {
  /** Offset of the u64 length. */
  lenAt: number;
  /** Offset of the bytes. */
  at: number;
  len: number;
}

export interface KvField {
  key: string;
  keyField: StringField;
  typeAt: number;
  type: number;
  /** Scalar value offset, or the string's field. */
  valueAt: number;
  str?: StringField;
  /** Arrays: item type offset, count offset, item type, items (offsets of numeric items or string fields). */
  arr?: { itemTypeAt: number; countAt: number; itemType: number; count: number; itemsAt: number; strings?: StringField[] };
}

export interface TensorField {
  name: string;
  nameField: StringField;
  nDimsAt: number;
  dims: number[];
  dimsAt: number[];
  typeAt: number;
  type: number;
  offsetAt: number;
  offset: number;
}

export interface GgufLayout {
  kvs: KvField[];
  tensors: TensorField[];
  dataOffset: number;
  alignment: number;
}

/** Walks a well-formed GGUF file and records where every field lies. */
export function scanGguf(buf: Buffer): GgufLayout {
  let p = 24;
  const str = (): StringField => {
    const len = Number(buf.readBigUInt64LE(p));
    const f = { lenAt: p, at: p + 8, len };
    p += 8 + len;
    return f;
  };
  const text = (f: StringField) => buf.toString("utf8", f.at, f.at + f.len);
  const nTensors = Number(buf.readBigUInt64LE(8));
  const nKv = Number(buf.readBigUInt64LE(16));
  const kvs: KvField[] = [];
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const keyField = str();
    const key = text(keyField);
    const typeAt = p;
    const type = buf.readUInt32LE(p);
    p += 4;
    const kv: KvField = { key, keyField, typeAt, type, valueAt: p };
    if (type === T.STR) kv.str = str();
    else if (type === T.ARR) {
      const itemTypeAt = p;
      const itemType = buf.readUInt32LE(p);
      const countAt = p + 4;
      const count = Number(buf.readBigUInt64LE(p + 4));
      p += 12;
      const itemsAt = p;
      if (itemType === T.STR) {
        const strings: StringField[] = [];
        for (let j = 0; j < count; j++) strings.push(str());
        kv.arr = { itemTypeAt, countAt, itemType, count, itemsAt, strings };
      } else {
        if (!(itemType in SCALAR_BYTES)) throw new Error(`scanGguf: nested arrays are not handled (${key})`);
        p += count * SCALAR_BYTES[itemType];
        kv.arr = { itemTypeAt, countAt, itemType, count, itemsAt };
      }
    } else {
      if (key === "general.alignment") alignment = buf.readUInt32LE(p);
      p += SCALAR_BYTES[type];
    }
    kvs.push(kv);
  }
  const tensors: TensorField[] = [];
  for (let i = 0; i < nTensors; i++) {
    const nameField = str();
    const nDimsAt = p;
    const nDims = buf.readUInt32LE(p);
    p += 4;
    const dims: number[] = [];
    const dimsAt: number[] = [];
    for (let d = 0; d < nDims; d++) {
      dimsAt.push(p);
      dims.push(Number(buf.readBigUInt64LE(p)));
      p += 8;
    }
    const typeAt = p;
    const type = buf.readUInt32LE(p);
    const offsetAt = p + 4;
    const offset = Number(buf.readBigUInt64LE(p + 4));
    p += 12;
    tensors.push({ name: text(nameField), nameField, nDimsAt, dims, dimsAt, typeAt, type, offsetAt, offset });
  }
  const dataOffset = Math.ceil(p / alignment) * alignment;
  return { kvs, tensors, dataOffset, alignment };
}

// ---------------------------------------------------------------------------------------------


export interface Mutation {
  /** Category, for balanced sampling and reporting. */
  group: string;
  /** What was changed, human-readable and stable (it names the mutant in failures). */
  id: string;
  /** Edits buf in place, or returns a new file as a Buffer (structural edits); other results are ignored. */
  apply(buf: Buffer): unknown;
}

const U64_HUGE = [0xffffffffn, 0x100000000n, 0x7fffffffffffffffn, 0xffffffffffffffffn];

function setU32(at: number, v: number) {
  return (b: Buffer) => b.writeUInt32LE(v >>> 0, at);
}
function setU64(at: number, v: bigint) {
  return (b: Buffer) => b.writeBigUInt64LE(BigInt.asUintN(64, v), at);
}

/** Scalar values to try for one GGUF numeric type, as [label, writer]. */
function scalarEdits(type: number, at: number): Array<[string, (b: Buffer) => void]> {
  const ints: Array<[string, bigint]> = [
    ["0", 0n],
    ["1", 1n],
    ["2", 2n],
    ["-1", -1n],
    ["max", -1n >> 1n],
  ];
  const out: Array<[string, (b: Buffer) => void]> = [];
  const intWriter = (bytes: number) => (v: bigint) => (b: Buffer) => {
    const u = BigInt.asUintN(bytes * 8, v);
    for (let i = 0; i < bytes; i++) b[at + i] = Number((u >> BigInt(8 * i)) & 0xffn);
  };
  switch (type) {
    case T.U8:
    case T.I8:
    case T.U16:
    case T.I16:
    case T.U32:
    case T.I32:
    case T.U64:
    case T.I64: {
      const bytes = SCALAR_BYTES[type];
      const w = intWriter(bytes);
      for (const [label, v] of ints) out.push([label, w(label === "max" ? (1n << BigInt(bytes * 8 - 1)) - 1n : v)]);
      if (bytes >= 4) out.push(["65536", w(65536n)], ["1e6", w(1000000n)]);
      break;
    }
    case T.F32:
    case T.F64: {
      const vals: Array<[string, number]> = [
        ["0", 0],
        ["1", 1],
        ["-1", -1],
        ["NaN", NaN],
        ["inf", Infinity],
        ["-inf", -Infinity],
        ["1e30", 1e30],
        ["-1e-5", -1e-5],
        ["1e-45", 1e-45],
      ];
      for (const [label, v] of vals) {
        out.push([label, type === T.F32 ? (b) => b.writeFloatLE(v, at) : (b) => b.writeDoubleLE(v, at)]);
      }
      break;
    }
    case T.BOOL:
      out.push(["0", (b) => (b[at] = 0)], ["1", (b) => (b[at] = 1)], ["2", (b) => (b[at] = 2)], ["255", (b) => (b[at] = 255)]);
      break;
  }
  return out;
}

/** Edits of a string field: its length and its bytes. */
function stringEdits(f: StringField, r: () => number): Array<[string, (b: Buffer) => void]> {
  const out: Array<[string, (b: Buffer) => void]> = [
    ["len=0", setU64(f.lenAt, 0n)],
    ["len-1", setU64(f.lenAt, BigInt(Math.max(0, f.len - 1)))],
    ["len+1", setU64(f.lenAt, BigInt(f.len + 1))],
    ["len=huge", setU64(f.lenAt, U64_HUGE[Math.floor(r() * U64_HUGE.length)])],
  ];
  if (f.len > 0) {
    const i = Math.floor(r() * f.len);
    const v = Math.floor(r() * 256);
    out.push([`byte[${i}]=0x${v.toString(16)}`, (b) => (b[f.at + i] = v)]);
    out.push([`byte[${f.len - 1}]^1`, (b) => (b[f.at + f.len - 1] ^= 1)]);
    out.push(["byte[0]=0", (b) => (b[f.at] = 0)]);
    out.push(["byte[0]=0xff", (b) => (b[f.at] = 0xff)]);
  }
  return out;
}

/**
 * Every mutation of the file, grouped. Randomness (which element, which byte) comes from the seed,
 * so the list is the same for the same file and seed.
 */
export function enumerateMutations(buf: Buffer, layout: GgufLayout, seed: number): Mutation[] {
  const r = rng(seed);
  const out: Mutation[] = [];
  const add = (group: string, id: string, apply: (b: Buffer) => void) => out.push({ group, id, apply });

  // Header.
  for (const v of [0, 1, 2, 4, 0x03000000, 0xffffffff]) add("header", `version=${v}`, setU32(4, v));
  const nT = layout.tensors.length;
  const nKv = layout.kvs.length;
  for (const v of [0n, BigInt(nT - 1), BigInt(nT + 1), ...U64_HUGE]) add("header", `tensor_count=${v}`, setU64(8, v));
  for (const v of [0n, BigInt(nKv - 1), BigInt(nKv + 1), ...U64_HUGE]) add("header", `kv_count=${v}`, setU64(16, v));
  add("header", "magic[0]^1", (b) => (b[0] ^= 1));

  // Metadata.
  for (const kv of layout.kvs) {
    const k = kv.key;
    for (const [label, f] of stringEdits(kv.keyField, r)) add("kv-key", `key ${k}: ${label}`, f);
    for (let t = 0; t <= 13; t++) if (t !== kv.type) add("kv-type", `key ${k}: type ${TYPE_NAME[kv.type]}->${TYPE_NAME[t] ?? t}`, setU32(kv.typeAt, t));
    add("kv-type", `key ${k}: type=0xffffffff`, setU32(kv.typeAt, 0xffffffff));
    if (kv.str) for (const [label, f] of stringEdits(kv.str, r)) add("kv-value", `key ${k}: string ${label}`, f);
    else if (!kv.arr) for (const [label, f] of scalarEdits(kv.type, kv.valueAt)) add("kv-value", `key ${k}: ${TYPE_NAME[kv.type]} ${label}`, f);
    if (kv.arr) {
      const a = kv.arr;
      for (const v of [0n, 1n, BigInt(a.count - 1), BigInt(a.count + 1), BigInt(a.count * 2), ...U64_HUGE]) {
        add("kv-array", `key ${k}: count=${v}`, setU64(a.countAt, v));
      }
      for (let t = 0; t <= 13; t++) if (t !== a.itemType) add("kv-array", `key ${k}: item type ${TYPE_NAME[a.itemType]}->${TYPE_NAME[t] ?? t}`, setU32(a.itemTypeAt, t));
      // A handful of elements, chosen by the seed.
      for (let n = 0; n < 12 && a.count > 0; n++) {
        const i = Math.floor(r() * a.count);
        if (a.strings) {
          const s = a.strings[i];
          for (const [label, f] of stringEdits(s, r)) add("kv-element", `key ${k}[${i}]: ${label}`, f);
          // Duplicate: overwrite element i with another element of the same byte length.
          const same = a.strings.map((x, j) => [x, j] as const).filter(([x, j]) => j !== i && x.len === s.len);
          if (same.length > 0) {
            const [src, j] = same[Math.floor(r() * same.length)];
            add("kv-element", `key ${k}[${i}]: = [${j}] (duplicate string)`, (b) => b.copy(b, s.at, src.at, src.at + src.len));
          }
        } else {
          const size = SCALAR_BYTES[a.itemType];
          for (const [label, f] of scalarEdits(a.itemType, a.itemsAt + i * size)) add("kv-element", `key ${k}[${i}]: ${label}`, f);
        }
      }
    }
  }

  // Tensor infos.
  for (const t of layout.tensors) {
    const nm = t.name;
    for (const [label, f] of stringEdits(t.nameField, r)) add("tensor-name", `tensor ${nm}: name ${label}`, f);
    // Rename to another tensor's name of the same length (e.g. blk.0 -> blk.4): a duplicate or a missing role.
    const sameLen = layout.tensors.filter((o) => o !== t && o.nameField.len === t.nameField.len);
    if (sameLen.length) {
      const o = sameLen[Math.floor(r() * sameLen.length)];
      add("tensor-name", `tensor ${nm}: renamed to ${o.name}`, (b) => b.write(o.name, t.nameField.at, "utf8"));
    }
    const m = /^blk\.(\d)\./.exec(nm);
    if (m) add("tensor-name", `tensor ${nm}: layer index -> 9`, (b) => (b[t.nameField.at + 4] = 0x39));
    for (const v of [0, 1, 2, 3, 4, 5, 0xffffffff]) if (v !== t.dims.length) add("tensor-ndims", `tensor ${nm}: n_dims=${v}`, setU32(t.nDimsAt, v));
    t.dimsAt.forEach((at, d) => {
      const ne = t.dims[d];
      for (const v of [0n, 1n, BigInt(ne - 1), BigInt(ne + 1), BigInt(ne * 2), BigInt(Math.max(1, ne >> 1)), ...U64_HUGE]) {
        if (v !== BigInt(ne)) add("tensor-dim", `tensor ${nm}: ne[${d}] ${ne}->${v}`, setU64(at, v));
      }
    });
    for (let ty = 0; ty <= 43; ty++) if (ty !== t.type) add("tensor-type", `tensor ${nm}: type ${t.type}->${ty}`, setU32(t.typeAt, ty));
    for (const ty of [100, 0xffffffff]) add("tensor-type", `tensor ${nm}: type ${t.type}->${ty}`, setU32(t.typeAt, ty));
    const al = layout.alignment;
    const offs: bigint[] = [0n, BigInt(t.offset + al), BigInt(Math.max(0, t.offset - al)), BigInt(t.offset + 1), ...U64_HUGE];
    const other = layout.tensors[Math.floor(r() * layout.tensors.length)];
    offs.push(BigInt(other.offset));
    for (const v of offs) if (v !== BigInt(t.offset)) add("tensor-offset", `tensor ${nm}: offset ${t.offset}->${v}`, setU64(t.offsetAt, v));
  }

  // Tensor data: a few values overwritten with NaN / inf / huge / random bytes.
  const sorted = [...layout.tensors].sort((a, b) => a.offset - b.offset);
  sorted.forEach((t, i) => {
    const start = layout.dataOffset + t.offset;
    const end = i + 1 < sorted.length ? layout.dataOffset + sorted[i + 1].offset : buf.length;
    const words = Math.floor((end - start) / 4);
    if (words <= 0) return;
    const fills: Array<[string, (b: Buffer, at: number) => void]> = [
      ["NaN", (b, at) => b.writeUInt32LE(0x7fc00000, at)],
      ["inf", (b, at) => b.writeUInt32LE(0x7f800000, at)],
      ["-inf", (b, at) => b.writeUInt32LE(0xff800000, at)],
      ["3e38", (b, at) => b.writeFloatLE(3e38, at)],
      ["0xffffffff", (b, at) => b.writeUInt32LE(0xffffffff, at)],
    ];
    for (const [label, fill] of fills) {
      const n = 1 + Math.floor(r() * 8);
      const at = Array.from({ length: n }, () => start + 4 * Math.floor(r() * words));
      add("data", `data of ${t.name}: ${n} value(s) = ${label}`, (b) => at.forEach((a) => fill(b, a)));
    }
    const all = start;
    add("data", `data of ${t.name}: all NaN`, (b) => {
      for (let a = all; a + 4 <= end; a += 4) b.writeUInt32LE(0x7fc00000, a);
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Structural mutations: the file is written anew, tensor infos and data consistent with each other,
// so that llama.cpp's own offset and size checks pass and the change reaches its loader and graph.

interface TensorSpec {
  name: string;
  dims: number[];
  type: number;
  data: Buffer;
}

/** Re-serializes the file with another tensor list (metadata bytes copied verbatim). */
export function rebuild(buf: Buffer, layout: GgufLayout, tensors: TensorSpec[]): Buffer {
  const kvStart = 24;
  const kvEnd = layout.tensors.length ? layout.tensors[0].nameField.lenAt : layout.dataOffset;
  const parts: Buffer[] = [];
  const head = Buffer.alloc(24);
  buf.copy(head, 0, 0, 24);
  head.writeBigUInt64LE(BigInt(tensors.length), 8);
  parts.push(head, buf.subarray(kvStart, kvEnd));
  const al = layout.alignment;
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(off);
    off = Math.ceil((off + t.data.length) / al) * al;
  }
  tensors.forEach((t, i) => {
    const name = Buffer.from(t.name, "utf8");
    const info = Buffer.alloc(8 + name.length + 4 + 8 * t.dims.length + 12);
    let p = info.writeBigUInt64LE(BigInt(name.length), 0);
    p += name.copy(info, p);
    p = info.writeUInt32LE(t.dims.length, p);
    for (const d of t.dims) p = info.writeBigUInt64LE(BigInt(d), p);
    p = info.writeUInt32LE(t.type, p);
    info.writeBigUInt64LE(BigInt(offsets[i]), p);
    parts.push(info);
  });
  const headerLen = parts.reduce((a, b) => a + b.length, 0);
  parts.push(Buffer.alloc(Math.ceil(headerLen / al) * al - headerLen));
  tensors.forEach((t, i) => {
    parts.push(t.data);
    const end = i + 1 < tensors.length ? offsets[i + 1] : off;
    parts.push(Buffer.alloc(end - offsets[i] - t.data.length));
  });
  return Buffer.concat(parts);
}

/** `bytes` bytes made by repeating src (so float data stays mostly finite). */
function cyclic(src: Buffer, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  for (let p = 0; p < bytes; p += src.length) src.copy(out, p, 0, Math.min(src.length, bytes - p));
  return out;
}

/**
 * Retyped, reshaped, dropped and extra tensors, each as a consistent file. `blockOf` gives
 * [elements, bytes] per block of a ggml type (undefined for an unknown type).
 */
export function structuralMutations(
  buf: Buffer,
  layout: GgufLayout,
  blockOf: (type: number) => readonly [number, number] | undefined,
): Mutation[] {
  const out: Mutation[] = [];
  const specs = (): TensorSpec[] => {
    const sizes = layout.tensors.map((t) => {
      const [be, bb] = blockOf(t.type)!;
      return (t.dims.reduce((a, b) => a * b, 1) / be) * bb;
    });
    return layout.tensors.map((t, i) => ({
      name: t.name,
      dims: [...t.dims],
      type: t.type,
      data: buf.subarray(layout.dataOffset + t.offset, layout.dataOffset + t.offset + sizes[i]),
    }));
  };
  const bytesOf = (type: number, dims: number[]): number | undefined => {
    const b = blockOf(type);
    if (!b || dims[0] % b[0] !== 0) return undefined;
    return (dims.reduce((a, x) => a * x, 1) / b[0]) * b[1];
  };
  layout.tensors.forEach((t, i) => {
    for (let ty = 0; ty <= 42; ty++) {
      const n = bytesOf(ty, t.dims);
      if (ty === t.type || n === undefined) continue;
      out.push({
        group: "tensor-retype",
        id: `tensor ${t.name}: retyped ${t.type}->${ty} (data resized)`,
        apply: (b) => {
          const s = specs();
          s[i] = { ...s[i], type: ty, data: cyclic(s[i].data, n) };
          return rebuild(b, layout, s);
        },
      });
    }
    const shapes: number[][] = [];
    if (t.dims.length === 2) shapes.push([t.dims[1], t.dims[0]], [t.dims[0], t.dims[1] - 1], [t.dims[0], t.dims[1] * 2]);
    shapes.push([t.dims[0] * 2, ...t.dims.slice(1)], [Math.max(1, t.dims[0] >> 1), ...t.dims.slice(1)], [...t.dims, 2]);
    for (const dims of shapes) {
      const n = bytesOf(t.type, dims);
      if (n === undefined) continue;
      out.push({
        group: "tensor-reshape",
        id: `tensor ${t.name}: reshaped [${t.dims}]->[${dims}] (data resized)`,
        apply: (b) => {
          const s = specs();
          s[i] = { ...s[i], dims, data: cyclic(s[i].data, n) };
          return rebuild(b, layout, s);
        },
      });
    }
    out.push({
      group: "tensor-drop",
      id: `tensor ${t.name}: dropped`,
      apply: (b) => rebuild(b, layout, specs().filter((_, j) => j !== i)),
    });
  });
  // A layer more than block_count says, and the last layer missing entirely.
  const last = Math.max(...layout.tensors.map((t) => Number(/^blk\.(\d+)\./.exec(t.name)?.[1] ?? -1)));
  out.push({
    group: "tensor-drop",
    id: `extra layer blk.${last + 1} (copy of blk.${last})`,
    apply: (b) => {
      const s = specs();
      const extra = s.filter((t) => t.name.startsWith(`blk.${last}.`)).map((t) => ({ ...t, name: t.name.replace(`blk.${last}.`, `blk.${last + 1}.`) }));
      return rebuild(b, layout, [...s, ...extra]);
    },
  });
  out.push({
    group: "tensor-drop",
    id: `layer blk.${last} dropped entirely`,
    apply: (b) => rebuild(b, layout, specs().filter((t) => !t.name.startsWith(`blk.${last}.`))),
  });
  return out;
}

/**
 * Takes `count` mutations round-robin across groups, each group in a seeded shuffled order, so a
 * small campaign covers every kind of field and a larger one extends the smaller (same prefix).
 */
export function sampleMutations(all: Mutation[], count: number, seed: number): Mutation[] {
  const r = rng(seed ^ 0x5bd1e995);
  const groups = new Map<string, Mutation[]>();
  for (const m of all) {
    const g = groups.get(m.group) ?? [];
    g.push(m);
    groups.set(m.group, g);
  }
  for (const g of groups.values()) {
    for (let i = g.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [g[i], g[j]] = [g[j], g[i]];
    }
  }
  const lists = [...groups.values()];
  const out: Mutation[] = [];
  for (let round = 0; out.length < count && lists.some((g) => round < g.length); round++) {
    for (const g of lists) if (round < g.length && out.length < count) out.push(g[round]);
  }
  return out;
}
