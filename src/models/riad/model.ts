import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TrainingError, WeightsError } from '../../errors.js';
import type { Module } from '../../nn/module.js';
import { readSafetensors, writeSafetensors } from '../../nn/safetensors.js';
import { CheckpointDir, readCheckpoint, readCheckpointHeader, type JsonValue } from '../../train/checkpoint.js';
import { Adam } from '../../train/optimizers/index.js';
import { writeJsonAtomic } from '../../train/runFolder.js';
import { multiStep } from '../../train/schedules.js';
import { train, type PrepareBatchFn, type StepFn, type TrainResult } from '../../train/trainer.js';
import { Rng } from '../../util/rng.js';
import type { AnomalyDetector, FitContext, ImageSource, Prediction } from '../types.js';
import type { RiadConfig } from './config.js';
import { disjointMasks } from '../../augment/riad.js';
import { maskTensors, TrainMaskSampler, type MaskDraw } from './masks.js';
import { RiadUNet } from './network.js';
import { anomalyFromReconstructions, reconstruct, riadLoss, toModelRange } from './objective.js';

/** Early-stopping record kept next to the checkpoints (see `fit`). */
interface ValidationLog {
  entries: { epoch: number; loss: number }[];
  bestEpoch: number | null;
  bestLoss: number | null;
  /** 0-based epoch after which early stopping ended training, or null. */
  stoppedAfterEpoch: number | null;
}

const VALIDATION_LOG = 'riad-validation.json';

/** One prepared training batch: [0, 1] images in epoch order and the batch's mask partition. */
interface RiadBatch {
  images: Float32Array;
  n: number;
  draw: MaskDraw;
}

/**
 * RIAD (Zavrtanik et al., Pattern Recognition 2021; riad.md): a U-Net trained to inpaint images
 * from which disjoint random cell masks were removed; anomalies are where the inpainting's
 * multi-scale gradient-magnitude similarity to the input is low.
 */
export class Riad implements AnomalyDetector {
  readonly net: RiadUNet;
  private readonly sampler: TrainMaskSampler;
  /** Fixed inference partitions per (cell size, draw), built lazily per input size. */
  private evalMasks: { h: number; w: number; masks: tf.Tensor4D[][] } | null = null;
  private stats: Record<string, string | number | boolean> = {};
  /** Step losses of the last fit() call (only the steps it ran, after any resume). */
  lossHistory: number[] = [];
  /** Step the last fit() (re)started from. */
  startStep = 0;

  constructor(readonly config: RiadConfig) {
    this.net = new RiadUNet(config.width);
    this.net.eval();
    this.sampler = new TrainMaskSampler(config.masks.strategy, config.masks.params);
  }

  /** One mask draw (one partition for the whole batch) from the configured strategy; deterministic in `rng`. */
  drawMasks(x01: tf.Tensor4D, rng: Rng): Promise<MaskDraw> {
    return this.sampler.sample(x01, rng);
  }

  /** One training loss on a [0, 1] batch with one mask draw (inside the caller's tidy/grad scope). */
  trainingLoss(x01: tf.Tensor4D, draw: MaskDraw): tf.Scalar {
    return tf.tidy(() => {
      const [, h, w] = x01.shape;
      const x = toModelRange(x01);
      const hidden = maskTensors(draw, h, w);
      const rec = reconstruct((t) => this.net.call(t), x, hidden);
      return riadLoss(x, rec, this.config);
    });
  }

  async fit(trainSet: ImageSource, ctx: FitContext): Promise<void> {
    const c = this.config;
    const n = trainSet.length;
    if (n === 0) throw new TrainingError('RIAD.fit: empty training set');
    const bs = Math.min(c.batchSize, n);
    // DataLoader(shuffle=True, drop_last=False): ceil(n / bs) steps, a smaller last batch.
    const stepsPerEpoch = Math.ceil(n / bs);
    const ckdir = new CheckpointDir(join(ctx.runDir, 'checkpoints'), { keepLast: c.keepCheckpoints });
    const logPath = join(ctx.runDir, VALIDATION_LOG);

    // Early-stopping state lives in a sidecar file written right after each validation: the
    // trainer writes the epoch's checkpoint BEFORE onValidate runs, so state kept in the
    // checkpoint would miss that epoch's result (and the stop decision) on resume.
    const latest = ctx.resume ? ckdir.latest() : null;
    const startStep = latest ? readCheckpointHeader(latest).step : 0;
    let vlog: ValidationLog = { entries: [], bestEpoch: null, bestLoss: null, stoppedAfterEpoch: null };
    if (latest && existsSync(logPath)) {
      const read = JSON.parse(readFileSync(logPath, 'utf8')) as ValidationLog;
      const doneEpochs = Math.floor(startStep / stepsPerEpoch);
      vlog = { ...read, entries: read.entries.filter((e) => e.epoch < doneEpochs) };
    } else if (!ctx.resume) {
      rmSync(logPath, { force: true });
    }
    const alreadyStopped = latest !== null && vlog.stoppedAfterEpoch !== null && vlog.stoppedAfterEpoch < Math.floor(startStep / stepsPerEpoch);
    const epochs = alreadyStopped ? Math.floor(startStep / stepsPerEpoch) : c.epochs;

    const opt = new Adam(this.net.trainableVariables(), { lr: c.lr, weightDecay: c.weightDecay });
    const schedule = multiStep({ baseLr: c.lr, milestones: c.lrMilestones, gamma: c.lrGamma, stepsPerUnit: stepsPerEpoch });
    // Epoch order from a stream keyed by the epoch, so a run resumed mid-epoch sees the same order.
    const orderRng = ctx.rng.fork('riad-order');
    let order: { epoch: number; idx: number[] } = { epoch: -1, idx: [] };
    const epochOrder = (e: number): number[] => {
      if (order.epoch !== e) order = { epoch: e, idx: orderRng.fork(`epoch-${e}`).shuffle(Array.from({ length: n }, (_, i) => i)) };
      return order.idx;
    };
    // The batch (images in epoch order + one mask draw from the strategy) is built asynchronously
    // in the trainer's prepareBatch hook, from a stream that is a pure function of (seed, step).
    const prepareBatch: PrepareBatchFn<RiadBatch> = async (_step, rng, bctx) => {
      const idx = epochOrder(bctx.epoch).slice(bctx.batchInEpoch * bs, (bctx.batchInEpoch + 1) * bs);
      const x01 = tf.tidy(() => (idx.length === 1 ? trainSet.batch(idx[0], idx[0] + 1) : (tf.concat(idx.map((i) => trainSet.batch(i, i + 1))) as tf.Tensor4D)));
      try {
        const draw = await this.drawMasks(x01, rng);
        return { images: (await x01.data()) as Float32Array, n: idx.length, draw };
      } finally {
        x01.dispose();
      }
    };
    const stepFn: StepFn<RiadBatch> = (_i, _rng, _ctx, b) =>
      this.trainingLoss(tf.tensor4d(b.images, [b.n, trainSet.height, trainSet.width, 3]), b.draw);

    const validation = ctx.validation && ctx.validation.length > 0 ? ctx.validation : null;
    const onValidate = validation
      ? async (epoch: number, v: { saveCheckpoint(tag: string): string; log(line: string): void }) => {
          const loss = await this.validationLoss(validation);
          vlog.entries.push({ epoch, loss });
          let note = '';
          if (vlog.bestLoss === null || loss < vlog.bestLoss) {
            vlog.bestLoss = loss;
            vlog.bestEpoch = epoch;
            if (c.restoreBest) v.saveCheckpoint('best');
            note = ' (best)';
          }
          // EarlyStopping(patience, delta 0) of taikiinoue45: stop after `patience` validations without improvement.
          const stop = c.earlyStopPatience > 0 && vlog.bestEpoch !== null && (epoch - vlog.bestEpoch) / c.validateEvery >= c.earlyStopPatience;
          if (stop) vlog.stoppedAfterEpoch = epoch;
          writeJsonAtomic(logPath, vlog);
          v.log(`[riad] epoch ${epoch + 1}: validation loss ${loss.toFixed(5)}${note}`);
          return { stop };
        }
      : undefined;

    this.net.train();
    let result: TrainResult;
    try {
      result = await train({
        modules: { model: this.net },
        optimizers: opt,
        schedule,
        epochs,
        stepsPerEpoch,
        stepFn,
        prepareBatch,
        batchSeed: ctx.rng.fork('riad-batches').seed,
        rng: ctx.rng.fork('riad-masks'),
        runDir: ctx.runDir,
        resume: ctx.resume ?? false,
        keepLast: c.keepCheckpoints,
        onValidate,
        validateEvery: c.validateEvery,
        config: { method: 'riad', config: c as unknown as JsonValue, trainImages: n },
        meter: ctx.meter,
        log: ctx.log,
        label: 'riad',
      });
    } finally {
      opt.dispose();
      this.net.eval();
    }

    let restored = false;
    const bestPath = join(ckdir.dir, 'best.adbck');
    const lastEpoch = Math.floor(result.step / stepsPerEpoch) - 1;
    if (c.restoreBest && vlog.bestEpoch !== null && vlog.bestEpoch !== lastEpoch && existsSync(bestPath)) {
      this.loadCheckpointWeights(bestPath);
      restored = true;
      ctx.log(`[riad] restored the best-validation weights of epoch ${vlog.bestEpoch + 1} (loss ${vlog.bestLoss?.toFixed(5)})`);
    }
    const losses = result.losses;
    this.lossHistory = losses;
    this.startStep = result.startStep;
    this.stats = {
      trainImages: n,
      stepsPerEpoch,
      stepsRun: result.step,
      epochsRun: Number((result.step / stepsPerEpoch).toFixed(2)),
      resumedFromStep: result.startStep,
      stoppedEarly: result.stoppedEarly || alreadyStopped,
      ...(losses.length > 0 ? { firstLoss: Number(losses[0].toFixed(5)), lastLoss: Number(losses[losses.length - 1].toFixed(5)) } : {}),
      ...(vlog.bestEpoch !== null ? { bestValidationEpoch: vlog.bestEpoch + 1, bestValidationLoss: Number((vlog.bestLoss ?? NaN).toFixed(5)) } : {}),
      restoredBest: restored,
    };
  }

  /** Mean training loss over a held-out set, eval-mode BatchNorm, masks from a fixed stream (comparable across epochs). */
  async validationLoss(set: ImageSource): Promise<number> {
    const wasTraining = this.net.isTraining;
    this.net.eval();
    const rng = new Rng(`riad-validation/${this.config.evalSeed}`);
    let sum = 0;
    let count = 0;
    try {
      for (let s = 0; s < set.length; s += this.config.batchSize) {
        const e = Math.min(set.length, s + this.config.batchSize);
        const x = set.batch(s, e);
        const draw = await this.drawMasks(x, rng);
        const loss = tf.tidy(() => this.trainingLoss(x, draw));
        x.dispose();
        sum += (await loss.data())[0] * (e - s);
        count += e - s;
        loss.dispose();
      }
    } finally {
      this.net.train(wasTraining);
    }
    return sum / count;
  }

  private loadCheckpointWeights(path: string): void {
    const { tensors } = readCheckpoint(path);
    try {
      const dict = new Map<string, tf.Tensor>();
      for (const [k, t] of tensors) if (k.startsWith('module.model.')) dict.set(k.slice('module.model.'.length), t);
      this.net.loadStateDict(dict, { source: path });
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  }

  /** Fixed partitions per cell size and draw, identical for every image and call (riad.md §4: seeded). */
  private masksFor(h: number, w: number): tf.Tensor4D[][] {
    if (this.evalMasks && this.evalMasks.h === h && this.evalMasks.w === w) return this.evalMasks.masks;
    this.disposeEvalMasks();
    const c = this.config;
    const masks: tf.Tensor4D[][] = [];
    for (const k of c.testCellSizes) {
      for (let d = 0; d < c.testDraws; d++) {
        const rng = new Rng(`riad-eval/${c.evalSeed}/k${k}/d${d}`);
        const numMasks = this.sampler.numMasks;
        masks.push(tf.tidy(() => maskTensors({ cellSize: k, hidden: disjointMasks(h, w, k, numMasks, rng) }, h, w).map((t) => tf.keep(t))));
      }
    }
    this.evalMasks = { h, w, masks };
    return masks;
  }

  /**
   * riad.md §4: one reconstruction per (k ∈ testCellSizes, draw) from fixed seeded partitions
   * (12 U-Net passes per image with the defaults), combined by anomalyFromReconstructions.
   */
  predict(images: tf.Tensor4D): Prediction {
    const c = this.config;
    const [, h, w] = images.shape;
    if (this.net.isTraining) this.net.eval();
    const draws = this.masksFor(h, w);
    return tf.tidy(() => {
      const x = toModelRange(images);
      const recs = draws.map((hidden) => reconstruct((t) => this.net.call(t), x, hidden));
      return anomalyFromReconstructions(x, recs, c);
    });
  }

  modules(): Module[] {
    return [this.net];
  }

  /** model.safetensors in PyTorch layout and names (loads into taikiinoue45's UNet) + riad.json. */
  async save(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    const sd = this.net.torchStateDict();
    try {
      writeSafetensors(join(dir, 'model.safetensors'), sd, { format: 'pt', method: 'riad' });
    } finally {
      for (const t of sd.values()) t.dispose();
    }
    writeJsonAtomic(join(dir, 'riad.json'), { config: this.config, params: this.net.numParameters(), stats: this.stats });
  }

  async load(dir: string): Promise<void> {
    const path = join(dir, 'model.safetensors');
    if (!existsSync(path)) throw new WeightsError(`no RIAD weights in ${dir} (expected model.safetensors)`);
    const metaPath = join(dir, 'riad.json');
    if (existsSync(metaPath)) {
      const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { config?: { width?: number }; stats?: Record<string, string | number | boolean> };
      if (meta.config?.width !== undefined && meta.config.width !== this.config.width) {
        throw new WeightsError(`${dir}: saved RIAD U-Net has width ${meta.config.width}, this configuration ${this.config.width}`);
      }
      this.stats = meta.stats ?? {};
    }
    const sd = readSafetensors(path);
    try {
      this.net.loadTorchStateDict(sd, { source: path });
    } finally {
      for (const t of sd.values()) t.dispose();
    }
    this.net.eval();
  }

  private disposeEvalMasks(): void {
    if (this.evalMasks) for (const ms of this.evalMasks.masks) tf.dispose(ms);
    this.evalMasks = null;
  }

  dispose(): void {
    this.disposeEvalMasks();
    this.net.dispose();
  }

  describe(): Record<string, string | number | boolean> {
    const c = this.config;
    return {
      network: `U-Net width ${c.width}`,
      parameters: this.net.numParameters(),
      inputSize: c.crop,
      masks: `${c.masks.strategy} ${JSON.stringify(c.masks.params)}`,
      testCellSizes: c.testCellSizes.join(','),
      msgmsColour: c.msgmsColour,
      smoothing: c.smoothing.kind === 'mean' ? `mean ${c.smoothing.size}x${c.smoothing.size}` : `gaussian sigma ${c.smoothing.sigma}`,
      ...this.stats,
    };
  }
}
