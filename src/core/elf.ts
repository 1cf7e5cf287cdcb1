/**
 * A structural check of an ELF shared object before dlopen sees it. glibc's dlopen maps a
 * truncated file's segments past its end and the process dies of SIGBUS, and for a file of
 * another architecture it says "cannot open shared object file: No such file or directory".
 * Reading the header and program headers first turns both into a clear reason.
 */
import * as fs from "node:fs";
import * as os from "node:os";

const MACHINES: Record<number, string> = { 3: "x86 (ia32)", 21: "ppc64", 22: "s390x", 40: "arm", 62: "x86-64 (x64)", 183: "aarch64 (arm64)", 243: "riscv", 258: "loongarch" };
const EXPECTED: Record<string, { machine: number; bits: 32 | 64 }> = {
  x64: { machine: 62, bits: 64 },
  arm64: { machine: 183, bits: 64 },
  arm: { machine: 40, bits: 32 },
  ia32: { machine: 3, bits: 32 },
  ppc64: { machine: 21, bits: 64 },
  s390x: { machine: 22, bits: 64 },
  riscv64: { machine: 243, bits: 64 },
  loong64: { machine: 258, bits: 64 },
};
const PT_LOAD = 1;

function machineName(m: number): string {
  return MACHINES[m] ? `${MACHINES[m]}, e_machine ${m}` : `e_machine ${m}`;
}

/** Why this file cannot be a loadable shared object for this process, or null when it looks sound. */
export function elfProblem(file: string, arch: string = process.arch): string | null {
  const fd = fs.openSync(file, "r");
  try {
    return check(fd, fs.fstatSync(fd).size, arch);
  } finally {
    fs.closeSync(fd);
  }
}

function read(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  fs.readSync(fd, buf, 0, length, position);
  return buf;
}

function check(fd: number, size: number, arch: string): string | null {
  const buf = read(fd, 0, Math.min(size, 64));
  if (size < 52 || buf.readUInt32BE(0) !== 0x7f454c46) {
    return `not an ELF shared object (${size} bytes, starting ${JSON.stringify(buf.subarray(0, 8).toString("latin1"))})`;
  }
  const bits = buf[4] === 2 ? 64 : buf[4] === 1 ? 32 : 0;
  const le = buf[5] === 1;
  if (!bits || (buf[5] !== 1 && buf[5] !== 2)) return `a malformed ELF header (class ${buf[4]}, data ${buf[5]})`;
  if (le !== (os.endianness() === "LE")) return `an ELF file of the other byte order (${le ? "little" : "big"}-endian)`;
  const u16 = (o: number) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const off = (o: number) => (bits === 64 ? Number(le ? buf.readBigUInt64LE(o) : buf.readBigUInt64BE(o)) : u32(o));
  const machine = u16(18);
  const want = EXPECTED[arch];
  if (want && (machine !== want.machine || bits !== want.bits)) {
    return `built for another architecture: it is a ${bits}-bit ELF file for ${machineName(machine)}, this process is ${arch}`;
  }
  if (bits === 64 && size < 64) return `truncated: ${size} bytes, shorter than its ELF header`;
  const [phoff, phentsize, phnum] = bits === 64 ? [off(32), u16(54), u16(56)] : [off(28), u16(42), u16(44)];
  const [shoff, shentsize, shnum] = bits === 64 ? [off(40), u16(58), u16(60)] : [off(32), u16(46), u16(48)];
  if (phnum === 0 || phoff + phentsize * phnum > size) return `truncated: its program headers end at byte ${phoff + phentsize * phnum}, the file has ${size} bytes`;
  if (shoff + shentsize * shnum > size) return `truncated: its section headers end at byte ${shoff + shentsize * shnum}, the file has ${size} bytes`;
  const ph = read(fd, phoff, phentsize * phnum);
  const pu32 = (o: number) => (le ? ph.readUInt32LE(o) : ph.readUInt32BE(o));
  const poff = (o: number) => (bits === 64 ? Number(le ? ph.readBigUInt64LE(o) : ph.readBigUInt64BE(o)) : pu32(o));
  for (let i = 0; i < phnum; i++) {
    const p = i * phentsize;
    if (pu32(p) !== PT_LOAD) continue;
    const [offset, filesz] = bits === 64 ? [poff(p + 8), poff(p + 32)] : [poff(p + 4), poff(p + 16)];
    if (offset + filesz > size) return `truncated: segment ${i} ends at byte ${offset + filesz}, the file has ${size} bytes`;
  }
  return null;
}
