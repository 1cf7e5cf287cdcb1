/**
 * What capture reads and returns: layer and pooling choices, inputs, and the
 * Activations container (one Float32Array per captured layer, row-major).
 */
import type { ChatMessage, PrepareOptions } from "./chat";

/** A layer number (the output of that transformer block) or "final" (after the final norm). */
export type LayerSpec = number | "final";
export type Pool = "last" | "mean" | "tokens";
export type CaptureInput = string | ChatMessage[];

/** n x d row-major feature matrix (one row per text, or per token). */
export interface Features {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** Tokenized inputs, ready for capture. */
export interface PreparedTexts {
  tokens: Int32Array;
  /** texts + 1 offsets into tokens. */
  offsets: Uint32Array;
}

export interface CaptureProgressInfo {
  textsDone: number;
  texts: number;
  tokensDone: number;
  tokens: number;
}

export interface CaptureOptions extends PrepareOptions {
  /** Layers to read: 0-based layer numbers (the output of that transformer block) and/or "final" (after the final norm). */
  layers: LayerSpec[];
  /** "last" token (default), "mean" over all tokens, or every token ("tokens", with offsets). */
  pool?: Pool;
  /** Stop the forward pass once the deepest requested layer is read. Default true; values are the same either way. */
  earlyExit?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: CaptureProgressInfo) => void;
}

/** Captured hidden states: one Float32Array per layer, row-major. */
export class Activations {
  /** For pool "tokens": offsets[i]..offsets[i+1] are text i's rows. For "last"/"mean": 0..texts. */
  readonly offsets: Uint32Array;
  constructor(
    readonly layers: readonly LayerSpec[],
    readonly pool: Pool,
    readonly nEmbd: number,
    readonly count: number,
    /** Tokens in each text. */
    readonly tokenCounts: Uint32Array,
    private readonly data: Float32Array[],
    offsets: Uint32Array,
  ) {
    this.offsets = offsets;
  }

  /** Rows per layer: the number of texts, or of tokens for pool "tokens". */
  get rows(): number {
    return this.pool === "tokens" ? this.offsets[this.count] : this.count;
  }

  /** All rows of one layer (rows x nEmbd, row-major); a view, not a copy. */
  layer(layer: LayerSpec): Float32Array {
    const i = this.layers.indexOf(layer);
    if (i < 0) throw new RangeError(`layer ${JSON.stringify(layer)} was not captured (captured: ${this.layers.map((l) => JSON.stringify(l)).join(", ")})`);
    return this.data[i];
  }

  /** One layer as a feature matrix (a view). */
  features(layer: LayerSpec): Features {
    return { data: this.layer(layer), rows: this.rows, cols: this.nEmbd };
  }

  /** Text i's vector (pool last/mean) or its tokens' rows (pool tokens); a view. */
  get(layer: LayerSpec, text: number): Float32Array {
    if (!Number.isInteger(text) || text < 0 || text >= this.count) throw new RangeError(`text index ${text} is out of range 0..${this.count - 1}`);
    const d = this.layer(layer);
    const n = this.nEmbd;
    if (this.pool === "tokens") return d.subarray(this.offsets[text] * n, this.offsets[text + 1] * n);
    return d.subarray(text * n, (text + 1) * n);
  }
}

/** A short description of a bad option value for TypeError messages. */
import { describeOption } from "./validate";

export { describeOption };

/**
 * Checks a layer list against a model's depth; returns the layers and their codes for
 * the addon (-1 = final). Throws TypeError/RangeError naming the bad entry.
 */
export function checkLayers(layers: unknown, nLayer: number): { specs: LayerSpec[]; codes: Int32Array } {
  if (!Array.isArray(layers) || layers.length === 0) throw new TypeError('layers must be a non-empty array of layer numbers or "final"');
  const codes = new Int32Array(layers.length);
  const seen = new Set<LayerSpec>();
  layers.forEach((l, i) => {
    if (l === "final") codes[i] = -1;
    else if (typeof l === "number" && Number.isInteger(l)) {
      if (l < 0 || l >= nLayer) {
        throw new RangeError(`layer ${l} is out of range: the model has ${nLayer} layers (0-${nLayer - 1}); use "final" for the output after the final norm`);
      }
      codes[i] = l;
    } else throw new TypeError(`layers[${i}] must be a layer number or "final", got ${describeOption(l)}`);
    if (seen.has(l)) throw new RangeError(`layer ${JSON.stringify(l)} is listed twice`);
    seen.add(l);
  });
  return { specs: layers.slice() as LayerSpec[], codes };
}
