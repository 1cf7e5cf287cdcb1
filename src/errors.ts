/**
 * Typed errors. Every error safety-lens throws on purpose is one of these (or a
 * plain TypeError/RangeError for a malformed option), with a message that says
 * what was wrong and, where it helps, what to do about it.
 */

export type SafetyLensErrorCode =
  | "MODEL_NOT_FOUND"
  | "MODEL_INVALID"
  | "MODEL_LOAD_FAILED"
  | "BACKEND_UNAVAILABLE"
  | "NATIVE_ADDON_MISSING"
  | "NATIVE_ADDON_LOAD_FAILED"
  | "MODEL_DISPOSED"
  | "MODEL_BUSY"
  | "CONTEXT_FULL"
  | "TEXT_EMPTY"
  | "TEXT_TOO_LONG"
  | "TEMPLATE_FAILED"
  | "LAYERS_UNSUPPORTED"
  | "ABORTED"
  | "DECODE_FAILED"
  | "DATA_FORMAT"
  | "FILE_FORMAT"
  | "PROBE_INVALID"
  | "PROBE_MODEL_MISMATCH"
  | CaptureFileErrorCode;

/** Codes of {@link CaptureFileError}. */
export type CaptureFileErrorCode =
  | "RESUME_MISMATCH"
  | "RESUME_INVALID"
  | "CAPTURE_IN_PROGRESS"
  | "CAPTURE_INCOMPLETE"
  | "CAPTURE_CLOSED"
  | "MERGE_MISMATCH"
  | "MERGE_RANGES"
  | "DISK_FULL";

export class SafetyLensError extends Error {
  readonly code: SafetyLensErrorCode;
  constructor(code: SafetyLensErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The model file is missing, unreadable, not GGUF, truncated, or llama.cpp refused it. */
export class ModelLoadError extends SafetyLensError {}

/** The requested GPU backend (or the native addon itself) cannot be used on this machine. */
export class BackendError extends SafetyLensError {}

/** The model was disposed, is busy with another job, or its chat context is full (CONTEXT_FULL). */
export class ModelStateError extends SafetyLensError {}

/** A text cannot be captured: empty, longer than the context, or a chat template that fails to render. */
export class InputError extends SafetyLensError {}

/**
 * The model cannot give the hidden states asked for (code LAYERS_UNSUPPORTED): llama.cpp's
 * compute graph for its architecture names no l_out-<n> (layer output) or no result_norm
 * ("final") tensor. Found when the model loads; capture and generation refuse before any decode.
 */
export class CaptureError extends SafetyLensError {}

/** The operation was cancelled through its AbortSignal. */
export class AbortError extends SafetyLensError {
  constructor(message = "The operation was aborted") {
    super("ABORTED", message);
  }
}

/** llama.cpp failed while evaluating a batch. */
export class DecodeError extends SafetyLensError {}

/**
 * A data file (JSONL, CSV, Parquet) is malformed; the message names the file and, where the problem
 * has one (not a Parquet schema), the line.
 */
export class DataFormatError extends SafetyLensError {
  readonly file: string;
  readonly line: number | null;
  constructor(file: string, line: number | null, detail: string) {
    super("DATA_FORMAT", line === null ? `${file}: ${detail}` : `${file}:${line}: ${detail}`);
    this.file = file;
    this.line = line;
  }
}

/** A binary file we read or write (GGUF, safetensors) is malformed. */
export class FileFormatError extends SafetyLensError {
  readonly file: string;
  constructor(file: string, detail: string) {
    super("FILE_FORMAT", `${file}: ${detail}`);
    this.file = file;
  }
}

/** What a safety-lens model file holds. */
export type ModelFileKind = "probe" | "ranker" | "monitor";

/**
 * A probe, ranker or monitor file is malformed (code PROBE_INVALID), or was trained on
 * another model (PROBE_MODEL_MISMATCH); `kind` says which kind of file it is.
 */
export class ModelFileError extends SafetyLensError {
  readonly file: string | null;
  readonly kind: ModelFileKind;
  constructor(code: "PROBE_INVALID" | "PROBE_MODEL_MISMATCH", file: string | null, detail: string, kind: ModelFileKind = "probe") {
    super(code, file ? `${file}: ${detail}` : detail);
    this.file = file;
    this.kind = kind;
  }
}

/** The earlier name of {@link ModelFileError}, kept so `instanceof ProbeFileError` goes on working. */
export const ProbeFileError = ModelFileError;
export type ProbeFileError = ModelFileError;

/**
 * A capture output file (see src/io/capture-file.ts) cannot be resumed, finished or merged, or the
 * disk filled up. Codes:
 * - `RESUME_MISMATCH`: the capture in progress (or the finished file) was made with another
 *   request; `field` names what differs (model_fingerprint, layers, pool, ...). Nothing was changed.
 * - `RESUME_INVALID`: the partial file or progress file is not what a capture leaves (not
 *   safetensors, truncated, a progress file without its data file ...). Nothing was changed.
 * - `CAPTURE_IN_PROGRESS`: a new capture would overwrite an unfinished one; resume it or overwrite.
 * - `CAPTURE_INCOMPLETE`: finish() while rows are still missing.
 * - `CAPTURE_CLOSED`: the writer was finished or closed.
 * - `MERGE_MISMATCH`: merge inputs disagree; `field` names what differs.
 * - `MERGE_RANGES`: merge inputs overlap, leave a gap, or do not cover all rows.
 * - `DISK_FULL`: ENOSPC/EDQUOT; the rows completed so far are kept and a resumed run continues.
 */
export class CaptureFileError extends SafetyLensError {
  readonly file: string;
  /** The header or request field that differs, for the mismatch codes. */
  readonly field: string | null;
  constructor(code: CaptureFileErrorCode, file: string, detail: string, options?: { field?: string; cause?: unknown }) {
    super(code, `${file}: ${detail}`, { cause: options?.cause });
    this.file = file;
    this.field = options?.field ?? null;
  }
}
