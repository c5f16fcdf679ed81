import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, TrainingError, WeightsError } from '../../errors.js';
import type { Module } from '../../nn/module.js';
import { readSafetensors, writeSafetensors } from '../../nn/safetensors.js';
import type { JsonValue } from '../../train/checkpoint.js';
import { Adam } from '../../train/optimizers/index.js';
import { writeJsonAtomic } from '../../train/runFolder.js';
import { train, type PrepareBatchFn, type StepFn, type TrainResult } from '../../train/trainer.js';
import { Rng } from '../../util/rng.js';
import type { AnomalyDetector, FitContext, ImageSource, Prediction } from '../types.js';
import type { PatchSvddConfig } from './config.js';
import { BIG_PATCH, EMBED_DIM, PatchEncoderHier, PositionClassifier, SMALL_PATCH } from './network.js';
import { patchSvddLoss } from './objective.js';
import { buildPatchBatch, cropInto, randomCoord, type PatchBatch, type PatchImages } from './sampling.js';
import { bankFromCentred, centredEmbeddings, checkStrides, denseEmbeddings, fuseMaps, makeBank, nearestDistances, spreadPatchScores, type MemoryBank } from './scoring.js';

/** Probe patches per scale for the collapse check. */
const PROBE_PATCHES = 64;

/** Networks of the method, named as in the checkpoints (official names under each). */
export interface PatchSvddNets {
  encoder: PatchEncoderHier;
  cls64: PositionClassifier;
  cls32: PositionClassifier;
}

/** Mean per-dimension variance of f_big and f_small embeddings of the probe patches (collapse check). */
export interface EmbeddingSpread {
  var64: number;
  var32: number;
}

/**
 * Patch SVDD (Yi & Yoon, ACCV 2020; patchsvdd.md): a hierarchical patch encoder trained from scratch
 * with SVDD' (nearby patches embed close) and relative-position classification; a test patch scores
 * its L2 distance to the nearest train-patch embedding, per-pixel maps at K = 64 and 32 are
 * multiplied, the image score is the max.
 */
export class PatchSvdd implements AnomalyDetector {
  readonly nets: PatchSvddNets;
  /** Per-pixel, per-channel mean of the training images in [0, 1], [1, H, W, 3] (patchsvdd.md §2). */
  private mean: tf.Tensor4D | null = null;
  private bank64: MemoryBank | null = null;
  private bank32: MemoryBank | null = null;
  private stats: Record<string, string | number | boolean> = {};
  /** Step losses of the last fit() call (only the steps it ran, after any resume). */
  lossHistory: number[] = [];
  /** Step the last fit() (re)started from. */
  startStep = 0;
  /** Collapse-check values per epoch of the last fit() call. */
  spreadHistory: EmbeddingSpread[] = [];

  constructor(readonly config: PatchSvddConfig) {
    checkStrides(config, config.crop);
    this.nets = { encoder: new PatchEncoderHier(), cls64: new PositionClassifier(), cls32: new PositionClassifier() };
  }

  /** x − M (= (255x − 255M)/255, the official standardisation) for [0, 1] images [B, H, W, 3]. */
  standardise(x01: tf.Tensor4D): tf.Tensor4D {
    if (!this.mean) throw new TrainingError('PatchSvdd: no mean image (fit or load first)');
    const [, h, w] = x01.shape;
    const [, mh, mw] = this.mean.shape;
    if (h !== mh || w !== mw) throw new ConfigError(`PatchSvdd: images are ${h}×${w}, the model's mean image ${mh}×${mw} (input size ${this.config.crop})`);
    return tf.sub(x01, this.mean);
  }

  /** The training loss of one prepared batch (inside the caller's gradient scope). */
  trainingLoss(b: PatchBatch): tf.Scalar {
    return tf.tidy(() => patchSvddLoss(this.nets, b, this.config.lambda).total);
  }

  async fit(trainSet: ImageSource, ctx: FitContext): Promise<void> {
    const c = this.config;
    const n = trainSet.length;
    if (n === 0) throw new TrainingError('PatchSvdd.fit: empty training set');
    if (trainSet.height < BIG_PATCH || trainSet.width < BIG_PATCH) {
      throw new ConfigError(`PatchSvdd.fit: images are ${trainSet.height}×${trainSet.width}; at least ${BIG_PATCH}×${BIG_PATCH} is needed for the 64-px patches`);
    }
    this.setMean(await meanImage(trainSet));
    const images = await this.standardisedImages(trainSet);

    // Official loader: one epoch = repeat·N items per stream, shuffled, batch b, last batch partial.
    const items = n * c.repeat;
    const bs = Math.min(c.batchSize, items);
    const stepsPerEpoch = Math.ceil(items / bs);
    const orderRng = ctx.rng.fork('patchsvdd-order');
    let order: { epoch: number; idx: number[] } = { epoch: -1, idx: [] };
    const epochOrder = (e: number): number[] => {
      if (order.epoch !== e) order = { epoch: e, idx: orderRng.fork(`epoch-${e}`).shuffle(Array.from({ length: items }, (_, i) => i % n)) };
      return order.idx;
    };
    // The four streams are drawn in the trainer's prepareBatch hook from the per-step stream (a pure
    // function of seed and step), so prefetching and resuming never change a batch.
    const prepareBatch: PrepareBatchFn<PatchBatch> = (_step, rng, bctx) =>
      buildPatchBatch(images, epochOrder(bctx.epoch).slice(bctx.batchInEpoch * bs, (bctx.batchInEpoch + 1) * bs), c.noiseSigma, rng);
    const stepFn: StepFn<PatchBatch> = (_i, _rng, _ctx, b) => this.trainingLoss(b);

    const probes = probePatches(images);
    this.spreadHistory = [];
    const onEpochEnd = async (epoch: number, ectx: { log(line: string): void }) => {
      const s = this.embeddingSpread(probes);
      this.spreadHistory.push(s);
      ectx.log(`[patchsvdd] epoch ${epoch + 1}: embedding variance f_big ${s.var64.toExponential(3)}, f_small ${s.var32.toExponential(3)}`);
      if (s.var64 < c.collapseVariance && s.var32 < c.collapseVariance) {
        const msg = `Patch SVDD encoder collapsed after epoch ${epoch + 1}: embedding variance ${s.var64.toExponential(2)} (f_big) / ${s.var32.toExponential(2)} (f_small) < collapseVariance ${c.collapseVariance}; `
          + `every patch maps to the same point, so scores would be constant (AUROC 0.5). λ = ${c.lambda} is too large for this category (patchsvdd.md §3): retry with a smaller one, e.g. --set lambda=${c.lambda / 10}`;
        if (c.collapseAction === 'error') throw new TrainingError(msg);
        ectx.log(`[patchsvdd] WARNING: ${msg}`);
      }
    };

    const modules = [this.nets.encoder, this.nets.cls64, this.nets.cls32];
    // The normalised-linear weights are non-trainable parameters: not in this list, as in torch
    // where they get no .grad and Adam skips them (451,664 of 453,712 parameters are updated).
    const opt = new Adam(modules.flatMap((m) => m.trainableVariables()), { lr: c.lr });
    let result: TrainResult;
    try {
      result = await train({
        modules: { encoder: this.nets.encoder, cls64: this.nets.cls64, cls32: this.nets.cls32 },
        optimizers: opt,
        epochs: c.epochs,
        stepsPerEpoch,
        stepFn,
        prepareBatch,
        batchSeed: ctx.rng.fork('patchsvdd-batches').seed,
        rng: ctx.rng.fork('patchsvdd-step'),
        runDir: ctx.runDir,
        resume: ctx.resume ?? false,
        keepLast: c.keepCheckpoints,
        onEpochEnd,
        config: { method: 'patchsvdd', config: trainingConfig(c), trainImages: n },
        meter: ctx.meter,
        log: ctx.log,
        label: 'patchsvdd',
      });
    } catch (e) {
      tf.dispose([probes.x64, probes.x32]);
      throw e;
    } finally {
      opt.dispose();
    }

    // Last-epoch model, as the official script keeps it; no selection on test data (patchsvdd.md §6).
    const tb = performance.now();
    await this.buildBanks(trainSet);
    const bankSeconds = (performance.now() - tb) / 1000;
    const final = this.embeddingSpread(probes);
    tf.dispose([probes.x64, probes.x32]);
    const losses = result.losses;
    this.lossHistory = losses;
    this.startStep = result.startStep;
    this.stats = {
      trainImages: n,
      stepsPerEpoch,
      stepsRun: result.step,
      resumedFromStep: result.startStep,
      ...(losses.length > 0 ? { firstLoss: Number(losses[0].toFixed(5)), lastLoss: Number(losses[losses.length - 1].toFixed(5)) } : {}),
      embeddingVariance64: Number(final.var64.toExponential(4)),
      embeddingVariance32: Number(final.var32.toExponential(4)),
      bank64: this.bank64?.bankTNeg2.shape[1] ?? 0,
      bank32: this.bank32?.bankTNeg2.shape[1] ?? 0,
      bankSeconds: Number(bankSeconds.toFixed(1)),
    };
    ctx.log(`[patchsvdd] memory banks: ${this.stats.bank64} f_big and ${this.stats.bank32} f_small embeddings of ${n} train images (${bankSeconds.toFixed(1)} s)`);
  }

  /** Mean per-dimension variance of the probes' embeddings at both scales. */
  embeddingSpread(probes: { x64: tf.Tensor4D; x32: tf.Tensor4D }): EmbeddingSpread {
    const v = tf.tidy(() => {
      const spread = (e: tf.Tensor) => tf.mean(tf.moments(e.reshape([-1, EMBED_DIM]), 0).variance);
      return tf.stack([spread(this.nets.encoder.call(probes.x64)), spread(this.nets.encoder.enc.call(probes.x32))]).dataSync();
    });
    return { var64: v[0], var32: v[1] };
  }

  private setMean(m: tf.Tensor4D): void {
    this.mean?.dispose();
    this.mean = m;
  }

  /** Standardised copies (HWC float32) of every training image, for the patch sampler. */
  private async standardisedImages(set: ImageSource): Promise<PatchImages> {
    const data: Float32Array[] = [];
    for (let i = 0; i < set.length; i++) {
      const x = set.batch(i, i + 1);
      const s = this.standardise(x);
      data.push((await s.data()) as Float32Array);
      tf.dispose([x, s]);
    }
    return { data, height: set.height, width: set.width };
  }

  /** Memory banks of all train-patch embeddings at both scales (patchsvdd.md §4). */
  private async buildBanks(set: ImageSource): Promise<void> {
    this.disposeBanks();
    const e64: tf.Tensor2D[] = [];
    const e32: tf.Tensor2D[] = [];
    try {
      for (let s = 0; s < set.length; s += this.config.testBatchSize) {
        const x = set.batch(s, Math.min(set.length, s + this.config.testBatchSize));
        const e = tf.tidy(() => {
          const d = denseEmbeddings(this.nets.encoder, this.standardise(x), this.config);
          return [d.e64.reshape([-1, EMBED_DIM]) as tf.Tensor2D, d.e32.reshape([-1, EMBED_DIM]) as tf.Tensor2D];
        });
        x.dispose();
        e64.push(e[0]);
        e32.push(e[1]);
        await tf.nextFrame();
      }
      const all = (parts: tf.Tensor2D[]): MemoryBank => {
        const cat = parts.length === 1 ? parts[0] : (tf.concat(parts) as tf.Tensor2D);
        const bank = makeBank(cat);
        if (cat !== parts[0]) cat.dispose();
        return bank;
      };
      this.bank64 = all(e64);
      this.bank32 = all(e32);
    } finally {
      tf.dispose([...e64, ...e32]);
    }
  }

  /**
   * patchsvdd.md §4: dense patch embeddings (K = 64 stride `stride64`, K = 32 stride `stride32`),
   * L2 distance to the nearest train-patch embedding, count-normalised spreading to pixels,
   * M64 ⊙ M32, image score = max. Maps are at the input size.
   */
  predict(images: tf.Tensor4D): Prediction {
    if (!this.bank64 || !this.bank32) throw new TrainingError('PatchSvdd.predict before fit/load');
    const [b, h, w] = images.shape;
    const { bank64, bank32 } = this;
    return tf.tidy(() => {
      const { e64, e32 } = denseEmbeddings(this.nets.encoder, this.standardise(images), this.config);
      const score = (e: tf.Tensor4D, bank: MemoryBank) => nearestDistances(e.reshape([-1, EMBED_DIM]) as tf.Tensor2D, bank).reshape([b, e.shape[1], e.shape[2]]) as tf.Tensor3D;
      const m64 = spreadPatchScores(score(e64, bank64), h, w, BIG_PATCH, this.config.stride64);
      const m32 = spreadPatchScores(score(e32, bank32), h, w, SMALL_PATCH, this.config.stride32);
      return fuseMaps(m64, m32);
    });
  }

  modules(): Module[] {
    return [this.nets.encoder];
  }

  /**
   * encoder.safetensors (PyTorch layout, the official EncoderHier state-dict names of
   * `ckpts/<class>/enchier.pkl`), classifiers.safetensors (cls_64.*, cls_32.*), mean_image.safetensors
   * ([H, W, 3] on the 0–1 scale: the official get_mean / 255), banks.safetensors (centred embeddings [B, 64] + centre),
   * patchsvdd.json (config, training summary).
   */
  async save(dir: string): Promise<void> {
    if (!this.mean || !this.bank64 || !this.bank32) throw new TrainingError('PatchSvdd.save before fit');
    mkdirSync(dir, { recursive: true });
    const write = (file: string, sd: Map<string, tf.Tensor>) => {
      try {
        writeSafetensors(join(dir, file), sd, { format: 'pt', method: 'patchsvdd' });
      } finally {
        for (const t of sd.values()) t.dispose();
      }
    };
    write('encoder.safetensors', this.nets.encoder.torchStateDict());
    const cls = new Map<string, tf.Tensor>();
    for (const [name, m] of [['cls_64', this.nets.cls64], ['cls_32', this.nets.cls32]] as const) for (const [k, t] of m.torchStateDict()) cls.set(`${name}.${k}`, t);
    write('classifiers.safetensors', cls);
    // [0, 1] scale, exactly what scoring subtracts (×255 and back would round; official get_mean is ×255 of it).
    write('mean_image.safetensors', new Map([['mean', this.mean.squeeze([0])]]));
    // Centred embeddings + centre (embedding = bank + centre): reloads bit-exactly (recentring would round).
    write('banks.safetensors', new Map<string, tf.Tensor>([
      ['bank64', centredEmbeddings(this.bank64)], ['centre64', this.bank64.centre.clone()],
      ['bank32', centredEmbeddings(this.bank32)], ['centre32', this.bank32.centre.clone()],
    ]));
    writeJsonAtomic(join(dir, 'patchsvdd.json'), { config: this.config, params: this.nets.encoder.numParameters(), stats: this.stats });
  }

  async load(dir: string): Promise<void> {
    const need = (file: string) => {
      const p = join(dir, file);
      if (!existsSync(p)) throw new WeightsError(`no Patch SVDD ${file} in ${dir}`);
      return p;
    };
    const paths = { enc: need('encoder.safetensors'), cls: need('classifiers.safetensors'), mean: need('mean_image.safetensors'), banks: need('banks.safetensors') };
    const take = <T>(path: string, f: (sd: Map<string, tf.Tensor>) => T): T => {
      const sd = readSafetensors(path);
      try {
        return f(sd);
      } finally {
        for (const t of sd.values()) t.dispose();
      }
    };
    take(paths.enc, (sd) => this.nets.encoder.loadTorchStateDict(sd, { source: paths.enc }));
    take(paths.cls, (sd) => {
      for (const [name, m] of [['cls_64', this.nets.cls64], ['cls_32', this.nets.cls32]] as const) {
        const part = new Map([...sd].filter(([k]) => k.startsWith(`${name}.`)).map(([k, t]) => [k.slice(name.length + 1), t] as [string, tf.Tensor]));
        m.loadTorchStateDict(part, { source: paths.cls });
      }
    });
    take(paths.mean, (sd) => {
      const m = sd.get('mean');
      const s = this.config.crop;
      if (!m || m.rank !== 3 || m.shape[0] !== s || m.shape[1] !== s || m.shape[2] !== 3) {
        throw new WeightsError(`${paths.mean}: expected 'mean' [${s}, ${s}, 3] for input size ${s}, got ${m ? `[${m.shape}]` : 'none'}`);
      }
      this.setMean(m.expandDims(0) as tf.Tensor4D);
    });
    take(paths.banks, (sd) => {
      const get = (k: string) => {
        const t = sd.get(k);
        if (!t || t.rank !== 2 || t.shape[1] !== EMBED_DIM) throw new WeightsError(`${paths.banks}: expected '${k}' [B, ${EMBED_DIM}], got ${t ? `[${t.shape}]` : 'none'}`);
        return t as tf.Tensor2D;
      };
      const centre = (k: string) => {
        const t = sd.get(k);
        if (!t || t.rank !== 1 || t.shape[0] !== EMBED_DIM) throw new WeightsError(`${paths.banks}: expected '${k}' [${EMBED_DIM}], got ${t ? `[${t.shape}]` : 'none'}`);
        return t as tf.Tensor1D;
      };
      this.disposeBanks();
      this.bank64 = bankFromCentred(get('bank64'), centre('centre64'));
      this.bank32 = bankFromCentred(get('bank32'), centre('centre32'));
    });
    const meta = join(dir, 'patchsvdd.json');
    if (existsSync(meta)) this.stats = (JSON.parse(readFileSync(meta, 'utf8')) as { stats?: Record<string, string | number | boolean> }).stats ?? {};
  }

  private disposeBanks(): void {
    for (const b of [this.bank64, this.bank32]) if (b) tf.dispose([b.bankTNeg2, b.sqNorms, b.centre]);
    this.bank64 = null;
    this.bank32 = null;
  }

  dispose(): void {
    this.disposeBanks();
    this.mean?.dispose();
    this.mean = null;
    this.nets.encoder.dispose();
    this.nets.cls64.dispose();
    this.nets.cls32.dispose();
  }

  describe(): Record<string, string | number | boolean> {
    const c = this.config;
    return {
      network: 'f_big (f_small + 2×2 head) + 2 position classifiers',
      parameters: this.nets.encoder.numParameters() + this.nets.cls64.numParameters() + this.nets.cls32.numParameters(),
      inputSize: c.crop,
      lambda: c.lambda,
      strides: `K64 s${c.stride64}, K32 s${c.stride32}`,
      ...this.stats,
    };
  }
}

/** Fields that change what training computes (hashed into checkpoints; scoring-only fields left out). */
function trainingConfig(c: PatchSvddConfig): JsonValue {
  return { crop: c.crop, epochs: c.epochs, batchSize: c.batchSize, repeat: c.repeat, lr: c.lr, lambda: c.lambda, noiseSigma: c.noiseSigma };
}

/** Per-pixel, per-channel mean of a set's images, [1, H, W, 3] in [0, 1] (official get_mean over the train split). */
export async function meanImage(set: ImageSource): Promise<tf.Tensor4D> {
  let sum = tf.zeros([1, set.height, set.width, 3]) as tf.Tensor4D;
  for (let s = 0; s < set.length; s += 16) {
    const x = set.batch(s, Math.min(set.length, s + 16));
    const next = tf.tidy(() => tf.add(sum, tf.sum(x, 0, true)) as tf.Tensor4D);
    tf.dispose([x, sum]);
    sum = next;
    await tf.nextFrame();
  }
  const mean = tf.div(sum, set.length) as tf.Tensor4D;
  sum.dispose();
  return mean;
}

/** Fixed probe patches (64 per scale, one stream independent of the seed) from the standardised images. */
function probePatches(images: PatchImages): { x64: tf.Tensor4D; x32: tf.Tensor4D } {
  const rng = new Rng('patchsvdd-collapse-probe');
  const cut = (k: number) => {
    const out = new Float32Array(PROBE_PATCHES * k * k * 3);
    for (let i = 0; i < PROBE_PATCHES; i++) cropInto(images.data[i % images.data.length], images.width, randomCoord(images.height, images.width, k, rng), k, out, i * k * k * 3);
    return tf.tensor4d(out, [PROBE_PATCHES, k, k, 3]);
  };
  return { x64: cut(BIG_PATCH), x32: cut(SMALL_PATCH) };
}
