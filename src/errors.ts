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
  | "TEXT_EMPTY"
  | "TEXT_TOO_LONG"
  | "TEMPLATE_FAILED"
  | "ABORTED"
  | "DECODE_FAILED"
  | "DATA_FORMAT"
  | "FILE_FORMAT"
  | "PROBE_INVALID"
  | "PROBE_MODEL_MISMATCH";

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

/** The model was disposed, or is busy with another capture. */
export class ModelStateError extends SafetyLensError {}

/** A text cannot be captured: empty, longer than the context, or a chat template that fails to render. */
export class InputError extends SafetyLensError {}

/** The operation was cancelled through its AbortSignal. */
export class AbortError extends SafetyLensError {
  constructor(message = "The operation was aborted") {
    super("ABORTED", message);
  }
}

/** llama.cpp failed while evaluating a batch. */
export class DecodeError extends SafetyLensError {}

/** A data file (JSONL) has a malformed line; the message names the file and line. */
export class DataFormatError extends SafetyLensError {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, detail: string) {
    super("DATA_FORMAT", `${file}:${line}: ${detail}`);
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

/** A probe or ranker file is malformed, or was trained on another model. */
export class ProbeFileError extends SafetyLensError {
  readonly file: string | null;
  constructor(code: "PROBE_INVALID" | "PROBE_MODEL_MISMATCH", file: string | null, detail: string) {
    super(code, file ? `${file}: ${detail}` : detail);
    this.file = file;
  }
}
