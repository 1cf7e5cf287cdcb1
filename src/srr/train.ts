/**
 * Training the SRR ranker: AdamW on mini-batches of lists (shuffled with the seed),
 * decoupled weight decay on the weight matrices, optional early stopping on the
 * validation loss (the best parameters are kept).
 */
import { adamStep, EarlyStopping } from "../math/optim";
import { Rng } from "../math/rng";
import {
  checkConfig,
  checkList,
  checkParams,
  FIELD_OF,
  lossCore,
  rankerBlockShapes,
  type RankerConfig,
  type RankerParams,
  type RankList,
  toP64,
  Workspace,
} from "./network";

export interface TrainRankerOptions {
  epochs?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  seed?: number;
  /** Validation lists: early stopping on validation loss, best parameters kept. */
  val?: RankList[];
  /** Epochs without a validation improvement before stopping (default 5). */
  patience?: number;
  onEpoch?: (e: { epoch: number; trainLoss: number; valLoss?: number }) => void;
  /**
   * Called with the best parameters so far whenever they change (each validation
   * improvement; every epoch without validation lists): where a caller checkpoints them.
   */
  onImprove?: (params: RankerParams, e: { epoch: number; trainLoss: number; valLoss?: number }) => void;
}

export interface TrainRankerSummary {
  /** Training lists used (with at least one safe and one unsafe candidate). */
  lists: number;
  /** Training lists skipped for lacking a safe or an unsafe candidate. */
  skipped: number;
  /** Validation lists skipped for the same reason (only when val was given). */
  valSkipped?: number;
  /** Epochs run. */
  epochs: number;
  /** Epoch (1-based) whose parameters are returned. */
  bestEpoch: number;
  /** Mean training loss (train mode, dropout on) during bestEpoch. */
  trainLoss: number;
  /** Validation loss (inference mode) after bestEpoch. */
  valLoss?: number;
  seconds: number;
}

/** Defaults for everything but d; ff defaults to 2 * width. */

/** Blocks that get decoupled weight decay (the weight matrices). */
const DECAYED = new Set(["proj.w", "attn.wq", "attn.wk", "attn.wv", "attn.wo", "ff.w1", "ff.w2"]);

function trainable(list: RankList): boolean {
  if (!list.safe) return false;
  let s = 0;
  for (let i = 0; i < list.m; i++) if (list.safe[i]) s++;
  return s > 0 && s < list.m;
}

/**
 * AdamW training on mini-batches of lists (shuffled with the seed), optional early
 * stopping on validation loss. Returns new parameter blocks (the input is not modified).
 */
export function trainRanker(
  config: RankerConfig,
  params: RankerParams,
  lists: RankList[],
  opts: TrainRankerOptions = {},
): { params: RankerParams; summary: TrainRankerSummary } {
  const t0 = Date.now();
  checkConfig(config);
  checkParams(config, params);
  const epochs = opts.epochs ?? 30;
  const batchSize = opts.batchSize ?? 16;
  const lr = opts.lr ?? 1e-3;
  const wd = opts.weightDecay ?? 1e-4;
  const patience = opts.patience ?? 5;
  if (!(Number.isInteger(epochs) && epochs >= 0)) throw new RangeError(`trainRanker: epochs must be a non-negative integer, got ${epochs}`);
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new RangeError(`trainRanker: batchSize must be a positive integer, got ${batchSize}`);

  const train: RankList[] = [];
  for (const l of lists) {
    checkList(config, l, false);
    if (trainable(l)) train.push(l);
  }
  const skipped = lists.length - train.length;
  let val: RankList[] | undefined;
  let valSkipped: number | undefined;
  if (opts.val) {
    val = [];
    for (const l of opts.val) {
      checkList(config, l, false);
      if (trainable(l)) val.push(l);
    }
    valSkipped = opts.val.length - val.length;
    if (val.length === 0) val = undefined;
  }

  const names = rankerBlockShapes(config).map(([name]) => name);
  const P = toP64(config, params);
  const mom = toP64(config, null);
  const vel = toP64(config, null);
  const G = toP64(config, null);
  const ws = new Workspace(config);
  const rng = new Rng(opts.seed ?? 1);
  const order = new Uint32Array(train.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  const decayed = { lr, weightDecay: wd };
  const plain = { lr };

  const snapshot = (): RankerParams => {
    const out: RankerParams = {};
    for (const name of names) out[name] = Float32Array.from(P[FIELD_OF[name]]);
    return out;
  };
  const stopper = new EarlyStopping(patience, snapshot());
  let bestTrain = NaN;
  let lastTrain = NaN;
  let step = 0;
  let ran = 0;

  for (let epoch = 1; epoch <= epochs && train.length > 0; epoch++) {
    ran = epoch;
    rng.shuffle(order);
    let lossSum = 0;
    for (let b0 = 0; b0 < train.length; b0 += batchSize) {
      const batch: RankList[] = [];
      for (let i = b0; i < Math.min(train.length, b0 + batchSize); i++) batch.push(train[order[i]]);
      for (const name of names) G[FIELD_OF[name]].fill(0);
      const loss = lossCore(config, P, batch, G, rng, ws);
      lossSum += loss * batch.length;
      step++;
      for (const name of names) {
        const f = FIELD_OF[name];
        adamStep(P[f], G[f], mom[f], vel[f], step, DECAYED.has(name) ? decayed : plain);
      }
      // keep the master weights exactly representable as the Float32 parameters
      for (const name of names) {
        const p = P[FIELD_OF[name]];
        for (let i = 0; i < p.length; i++) p[i] = Math.fround(p[i]);
      }
    }
    const trainLoss = lossSum / train.length;
    lastTrain = trainLoss;
    const valLoss = val ? lossCore(config, P, val, null, null, ws) : undefined;
    opts.onEpoch?.({ epoch, trainLoss, valLoss });
    if (valLoss !== undefined) {
      const improved = valLoss < stopper.bestLoss;
      const stop = stopper.observe(valLoss, epoch, snapshot);
      if (improved) {
        bestTrain = trainLoss;
        opts.onImprove?.(stopper.best, { epoch, trainLoss, valLoss });
      }
      if (stop) break;
    } else if (opts.onImprove) {
      opts.onImprove(snapshot(), { epoch, trainLoss });
    }
  }
  const best = val ? stopper.best : snapshot();
  const bestEpoch = val ? stopper.bestEpoch : ran;
  if (!val) bestTrain = lastTrain;
  const summary: TrainRankerSummary = {
    lists: train.length,
    skipped,
    epochs: ran,
    bestEpoch,
    trainLoss: bestTrain,
    seconds: (Date.now() - t0) / 1000,
  };
  if (opts.val) summary.valSkipped = valSkipped;
  if (val && stopper.bestEpoch > 0) summary.valLoss = stopper.bestLoss;
  return { params: best, summary };
}
