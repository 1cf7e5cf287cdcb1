/**
 * Reading Parquet tables (Hugging Face dataset exports) with hyparquet, a pure-JS reader with no
 * dependencies, and hyparquet-compressors for the codecs hyparquet leaves out (ZSTD, GZIP, BROTLI,
 * LZ4; snappy is built in).
 *
 * Both packages are ES modules. This library is CommonJS, so they are loaded lazily, only when a
 * Parquet file is read: with require() where Node can load ES modules that way (20.19+, 22.12+), else
 * with a real dynamic import() (older Node 20 releases, Electron builds on them).
 */
import { readFile } from "node:fs/promises";
import type * as Hyparquet from "hyparquet";
import type * as Compressors from "hyparquet-compressors";
import { DataFormatError } from "../errors";

interface ParquetLib {
  hyparquet: typeof Hyparquet;
  compressors: typeof Compressors.compressors;
}

let lib: Promise<ParquetLib> | null = null;

// A dynamic import() that TypeScript leaves alone (it rewrites import() to require() for CommonJS).
const importEsm = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<unknown>;

async function load(): Promise<ParquetLib> {
  try {
    const hyparquet = require("hyparquet") as typeof Hyparquet;
    const c = require("hyparquet-compressors") as typeof Compressors;
    return { hyparquet, compressors: c.compressors };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ERR_REQUIRE_ESM") throw err;
    const hyparquet = (await importEsm("hyparquet")) as typeof Hyparquet;
    const c = (await importEsm("hyparquet-compressors")) as typeof Compressors;
    return { hyparquet, compressors: c.compressors };
  }
}

function parquetLib(): Promise<ParquetLib> {
  lib ??= load().catch((err: unknown) => {
    lib = null;
    throw new Error(`Cannot load the Parquet reader (hyparquet): ${(err as Error).message}`, { cause: err });
  });
  return lib;
}

export interface ParquetTable {
  /** Top-level column names, in schema order. */
  columns: string[];
  /** Number of rows in the file. */
  rows: number;
  /** Read the named columns as one object per row (INT64 values become numbers when exact, else bigint). */
  read(columns: readonly string[]): Promise<Record<string, unknown>[]>;
}

/**
 * Open a Parquet file (read whole into memory: benchmark files are small) and read its schema.
 *
 * @throws DataFormatError naming the file when it is not a Parquet file or cannot be decoded.
 */
export async function openParquet(file: string): Promise<ParquetTable> {
  const { hyparquet, compressors } = await parquetLib();
  const buf = await readFile(file);
  const data = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  let metadata: Hyparquet.FileMetaData;
  try {
    metadata = hyparquet.parquetMetadata(data);
  } catch (err) {
    throw new DataFormatError(file, null, `not a readable Parquet file: ${(err as Error).message}`);
  }
  const columns = hyparquet.parquetSchema(metadata).children.map((c) => c.element.name);
  return {
    columns,
    rows: Number(metadata.num_rows),
    async read(cols) {
      let rows: Record<string, unknown>[];
      try {
        rows = await hyparquet.parquetReadObjects({ file: data, metadata, columns: [...cols], compressors });
      } catch (err) {
        throw new DataFormatError(file, null, `cannot decode Parquet data: ${(err as Error).message}`);
      }
      for (const row of rows) {
        for (const k of cols) {
          const v = row[k];
          if (typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) row[k] = Number(v);
        }
      }
      return rows;
    },
  };
}
