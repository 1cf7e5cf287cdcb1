/** Small file I/O helpers shared by the GGUF, safetensors, cache and JSON writers. */
import { randomBytes } from "node:crypto";
import { open, rename, unlink, type FileHandle } from "node:fs/promises";

/** Largest single read: bigger reads are split. */
const READ_CHUNK = 64 * 1024 * 1024;

/** Writes all of `bytes` at the file handle's position. */
export async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done);
    done += bytesWritten;
  }
}

/** Writes all of `bytes` at file offset `position` (the handle's own position is not used). */
export async function writeAllAt(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * fsyncs a folder so that a file created, renamed or removed in it survives a crash. Best effort:
 * some platforms (Windows) cannot open folders for syncing, which is ignored.
 */
export async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch {
    // not supported here (EISDIR/EPERM/EINVAL on some platforms)
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Reads into `dst` from `position` until it is full or the file ends; returns the bytes read. */
export async function readFully(fh: FileHandle, dst: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < dst.length) {
    const { bytesRead } = await fh.read(dst, done, Math.min(READ_CHUNK, dst.length - done), position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/**
 * Writes a file under a temporary name in the same folder and renames it into
 * place once complete, so readers never see a partial file; on failure the
 * temporary file is removed.
 */
export async function writeFileAtomically(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const fh = await open(tmp, "w");
  try {
    await write(fh);
    await fh.close();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** writeFileAtomically for a text. */
export function writeTextAtomically(path: string, text: string): Promise<void> {
  return writeFileAtomically(path, (fh) => writeAll(fh, Buffer.from(text, "utf8")));
}
