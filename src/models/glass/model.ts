import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFeatureStrategy, createImageStrategy, createTextureSource, disposeBatch, type FeatureStrategy, type ImageStrategy } from '../../augment/index.js';
import { ConfigError, TrainingError, WeightsError } from '../../errors.js';
import { noGrad } from '../../nn/gradControl.js';
import { gaussianBlur2d } from '../../nn/layers/smoothing.js';
import { Module } from '../../nn/module.js';
import { readSafetensors, writeSafetensors } from '../../nn/safetensors.js';
import type { JsonValue } from '../../train/checkpoint.js';
import { Adam, AdamW } from '../../train/optimizers/index.js';
import { writeJsonAtomic } from '../../train/runFolder.js';
import { train, type PrepareBatchFn, type StepFn } from '../../train/trainer.js';
import type { Rng } from '../../util/rng.js';
import type { FeatureBackbone } from '../backbones/index.js';
import { locallyAwarePatchFeatures } from '../patchcore/patchFeatures.js';
import type { AnomalyDetector, FitContext, ImageSource, Prediction } from '../types.js';
import type { GlassConfig } from './config.js';
import { GlassAdaptor, GlassDiscriminator } from './network.js';
import { glassLoss, maskToGrid, type GlassLossParts } from './objective.js';

/** One prepared step: the clean images (or their indices into the embedding cache), LAS images, feature mask. */
interface GlassBatch {
  idx: number[];
  /** Clean images, NHWC [0, 1]; null when the clean embeddings are cached. */
  clean: Float32Array | null;
  las: Float32Array;
  /** Feature-level LAS mask, n·P values. */
  mask: Float32Array;
}

/** Holds the per-epoch centre c as a buffer, so checkpoints carry it and a mid-epoch resume is exact. */
class GlassCentre extends Module {
  readonly center: tf.Variable;
  constructor(positions: number, dim: number) {
    super();
    this.center = this.addBuffer('center', tf.zeros([positions, dim]));
  }
}

/**
 * GLASS (Chen et al., ECCV 2024; glass.md): frozen backbone patch features → trainable adaptor →
 * discriminator trained on normal features (label 0), GAS features made by gradient ascent
 * (label 1, glass-gas strategy) and LAS features of images with local synthetic anomalies (their
 * mask, glass-las strategy). Score: D(adaptor(emb(x))) with D in eval mode.
 */
export class Glass implements AnomalyDetector {
  readonly adaptor: GlassAdaptor;
  readonly discriminator: GlassDiscriminator;
  private las: ImageStrategy | null = null;
  private readonly gas: FeatureStrategy;
  private grid: [number, number] | null = null;
  private stats: Record<string, string | number | boolean> = {};
  /** Step losses of the last fit() (only the steps it ran). */
  lossHistory: number[] = [];
  /** Loss parts of the last step (for logs and tests). */
  lastParts: { bce: number; focal: number; radius: number } | null = null;

  constructor(
    readonly config: GlassConfig,
    readonly backbone: FeatureBackbone,
    readonly backboneInit: 'pretrained' | 'random-init' = 'pretrained',
    readonly backboneChoice?: string,
    readonly category?: string,
  ) {
    this.backbone.module.freeze().eval();
    this.adaptor = new GlassAdaptor(config.embedDim);
    this.discriminator = new GlassDiscriminator(config.embedDim, config.discHidden);
    this.discriminator.eval();
    this.gas = createFeatureStrategy('glass-gas', {
      params: {
        mode: config.distribution,
        noiseStd: config.gasNoiseStd,
        steps: config.gasSteps,
        stepSize: config.gasStepSize,
        projectEvery: config.gasProjectEvery,
      },
    });
  }

  /** Patch embedding (glass.md §2, PatchCore's aggregation with GLASS's dims), off the tape: [n·P, D]. */
  embed(images: tf.Tensor4D): tf.Tensor2D {
    return noGrad(() => tf.tidy(() => {
      const feats = this.backbone.extract(images);
      const taps = this.config.layers.map((l) => {
        const t = feats[l];
        if (!t) throw new WeightsError(`backbone ${this.backbone.name} has no feature tap '${l}' (has ${Object.keys(feats).join(', ')})`);
        return t;
      });
      const { features, grid } = locallyAwarePatchFeatures(taps, { patchSize: this.config.patchSize, pretrainDim: this.config.pretrainDim, targetDim: this.config.embedDim });
      this.grid = grid;
      return features;
    }));
  }

  /** The LAS strategy from the registry, built on first use (load()-only use needs no textures). */
  lasStrategy(featureStride: number): ImageStrategy {
    if (!this.las) {
      const c = this.config;
      const s = createImageStrategy(c.anomalyStrategy, {
        params: c.anomalyStrategy === 'glass-las' ? { featureStride, useForeground: c.useForeground } : {},
        textures: createTextureSource(c.texturesDir ?? undefined),
        category: this.category,
      });
      if (s.role !== 'anomaly') throw new ConfigError(`GLASS anomalyStrategy '${c.anomalyStrategy}' has role '${s.role}'; GLASS needs one that synthesises anomalies (glass-las)`);
      this.las = s;
    }
    return this.las;
  }

  /** Grid [gh, gw] of the embedding at input h×w (one forward of a blank image, once). */
  gridFor(h: number, w: number): [number, number] {
    if (!this.grid) tf.dispose(this.embed(tf.zeros([1, h, w, 3])));
    return this.grid as [number, number];
  }

  private discriminate = (x: tf.Tensor2D): tf.Tensor2D => this.discriminator.call(x);

  /** One GLASS objective on prepared tensors (inside the trainer's gradient scope). */
  trainingLoss(clean: tf.Tensor2D, lasEmb: tf.Tensor2D, mask: Float32Array, center: tf.Tensor2D | null, rng: Rng): GlassLossParts {
    const T = this.adaptor.call(clean);
    const F = this.adaptor.call(lasEmb);
    return glassLoss(this.config, this.discriminate, this.gas, { T, F, mask, center }, rng);
  }

  async fit(trainSet: ImageSource, ctx: FitContext): Promise<void> {
    const c = this.config;
    const n = trainSet.length;
    if (n === 0) throw new TrainingError('GLASS.fit: empty training set');
    const { height: h, width: w } = trainSet;
    const [gh, gw] = this.gridFor(h, w);
    const P = gh * gw;
    const D = c.embedDim;
    const bs = Math.min(c.batchSize, n);
    const stepsPerEpoch = Math.ceil(n / bs);
    const t0 = performance.now();

    // Clean embeddings never change (frozen backbone, no augmentation of clean images).
    let cache: Float32Array | null = null;
    if (c.cacheEmbeddings) {
      cache = new Float32Array(n * P * D);
      for (let s = 0; s < n; s += bs) {
        const e = Math.min(n, s + bs);
        const x = trainSet.batch(s, e);
        const f = this.embed(x);
        x.dispose();
        cache.set((await f.data()) as Float32Array, s * P * D);
        f.dispose();
      }
    }
    const cleanEmbedding = (idx: readonly number[], images: Float32Array | null): tf.Tensor2D => {
      if (cache) {
        const rows = new Float32Array(idx.length * P * D);
        idx.forEach((i, k) => rows.set(cache.subarray(i * P * D, (i + 1) * P * D), k * P * D));
        return tf.tensor2d(rows, [idx.length * P, D]);
      }
      return tf.tidy(() => this.embed(tf.tensor4d(images as Float32Array, [idx.length, h, w, 3])));
    };

    const hyper = c.distribution === 'hypersphere';
    const centre = new GlassCentre(P, D);
    // glass.md §3 "Per epoch, first": c = mean over batches of the batch-mean of adaptor(emb(x)).
    const computeCentre = (): void => {
      noGrad(() => {
        let acc: tf.Tensor2D | null = null;
        let batches = 0;
        for (let s = 0; s < n; s += bs) {
          const idx = Array.from({ length: Math.min(n, s + bs) - s }, (_, k) => s + k);
          const bm = tf.tidy(() => {
            const emb = cache ? cleanEmbedding(idx, null) : this.embed(trainSet.batch(s, s + idx.length));
            return tf.mean(this.adaptor.call(emb).reshape([idx.length, P, D]), 0) as tf.Tensor2D;
          });
          const next: tf.Tensor2D = acc ? (tf.add(acc, bm) as tf.Tensor2D) : bm;
          if (acc) { acc.dispose(); bm.dispose(); }
          acc = next;
          batches++;
        }
        const mean = tf.div(acc as tf.Tensor2D, batches);
        centre.center.assign(mean);
        mean.dispose();
        (acc as tf.Tensor2D | null)?.dispose();
      });
    };

    const las = this.lasStrategy(Math.max(1, Math.round(h / gh)));
    const orderRng = ctx.rng.fork('glass-order');
    let order: { epoch: number; idx: number[] } = { epoch: -1, idx: [] };
    const epochOrder = (e: number): number[] => {
      if (order.epoch !== e) order = { epoch: e, idx: orderRng.fork(`epoch-${e}`).shuffle(Array.from({ length: n }, (_, i) => i)) };
      return order.idx;
    };
    const prepareBatch: PrepareBatchFn<GlassBatch> = async (_step, rng, bctx) => {
      const idx = epochOrder(bctx.epoch).slice(bctx.batchInEpoch * bs, (bctx.batchInEpoch + 1) * bs);
      const x01 = tf.tidy(() => tf.concat(idx.map((i) => trainSet.batch(i, i + 1)), 0) as tf.Tensor4D);
      try {
        const batch = await las.generate({ images: x01 }, rng);
        try {
          const [img, m] = await Promise.all([batch.images.data(), batch.masks.data()]);
          return {
            idx,
            clean: cache ? null : ((await x01.data()) as Float32Array),
            las: img as Float32Array,
            mask: maskToGrid(m, idx.length, h, w, gh, gw),
          };
        } finally {
          disposeBatch(batch);
        }
      } finally {
        x01.dispose();
      }
    };
    const stepFn: StepFn<GlassBatch> = (_i, rng, _ctx, b) => {
      const clean = cleanEmbedding(b.idx, b.clean);
      const lasEmb = this.embed(tf.tensor4d(b.las, [b.idx.length, h, w, 3]));
      const parts = this.trainingLoss(clean, lasEmb, b.mask, hyper ? (centre.center as tf.Tensor as tf.Tensor2D) : null, rng);
      this.lastParts = { bce: parts.bce.dataSync()[0], focal: parts.focal.dataSync()[0], radius: parts.radius };
      return parts.total;
    };

    const adaptorOpt = new Adam(this.adaptor.trainableVariables(), { lr: c.adaptorLr, weightDecay: c.adaptorWeightDecay });
    const discOpt = new AdamW(this.discriminator.trainableVariables(), { lr: c.discLr, weightDecay: c.discWeightDecay });
    this.discriminator.train();
    try {
      const result = await train<GlassBatch>({
        modules: { adaptor: this.adaptor, discriminator: this.discriminator, centre },
        optimizers: [adaptorOpt, discOpt],
        epochs: c.epochs,
        stepsPerEpoch,
        stepFn,
        prepareBatch,
        batchSeed: ctx.rng.fork('glass-batches').seed,
        rng: ctx.rng.fork('glass-gas'),
        runDir: ctx.runDir,
        resume: ctx.resume ?? false,
        keepLast: c.keepCheckpoints,
        // A resumed run continues mid-epoch with the checkpointed centre; a new epoch recomputes it.
        onEpochStart: (epoch, e) => {
          if (hyper && e.step === epoch * stepsPerEpoch) computeCentre();
        },
        onEpochEnd: (epoch, e) => {
          const p = this.lastParts;
          if (p) e.log(`[glass] epoch ${epoch + 1}/${c.epochs}: bce ${p.bce.toFixed(4)} focal ${p.focal.toFixed(4)}${hyper ? ` r_t ${p.radius.toFixed(3)}` : ''}`);
        },
        config: { method: 'glass', config: c as unknown as JsonValue, trainImages: n, category: this.category ?? null },
        meter: ctx.meter,
        log: ctx.log,
        label: 'glass',
      });
      this.lossHistory = result.losses;
      const losses = result.losses;
      this.stats = {
        trainImages: n,
        patchGrid: `${gh}x${gw}`,
        stepsPerEpoch,
        stepsRun: result.step,
        resumedFromStep: result.startStep,
        selection: 'last epoch (no test-set selection)',
        ...(losses.length > 0 ? { firstLoss: Number(losses[0].toFixed(5)), lastLoss: Number(losses[losses.length - 1].toFixed(5)) } : {}),
        fitSeconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
      };
    } finally {
      adaptorOpt.dispose();
      discOpt.dispose();
      centre.dispose();
      this.discriminator.eval();
    }
  }

  /**
   * glass.md §4: patch scores D(adaptor(emb(x))) with BatchNorm running statistics; the map is the
   * bilinear (half-pixel) upsample blurred with σ (scipy 'reflect'); the image score is the max of
   * the RAW patch scores, not of the smoothed map.
   */
  predict(images: tf.Tensor4D): Prediction {
    const [n, h, w] = images.shape;
    if (this.discriminator.isTraining) this.discriminator.eval();
    return tf.tidy(() => {
      const f = this.embed(images);
      const [gh, gw] = this.grid as [number, number];
      const s = noGrad(() => this.discriminator.call(this.adaptor.call(f))).reshape([n, gh, gw]);
      const scores = tf.max(s.reshape([n, gh * gw]), 1) as tf.Tensor1D;
      const up = tf.image.resizeBilinear(s.expandDims(3) as tf.Tensor4D, [h, w], false, true);
      const maps = gaussianBlur2d(up, this.config.blurSigma).squeeze([3]) as tf.Tensor3D;
      return { scores, maps };
    });
  }

  modules(): Module[] {
    return [this.backbone.module, this.adaptor, this.discriminator];
  }

  /** adaptor.safetensors + discriminator.safetensors in PyTorch layout (official names) + glass.json. */
  async save(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    for (const [name, m] of [['adaptor', this.adaptor], ['discriminator', this.discriminator]] as const) {
      const sd = m.torchStateDict();
      try {
        writeSafetensors(join(dir, `${name}.safetensors`), sd, { format: 'pt', method: 'glass' });
      } finally {
        for (const t of sd.values()) t.dispose();
      }
    }
    writeJsonAtomic(join(dir, 'glass.json'), { config: this.config, grid: this.grid, stats: this.stats });
  }

  async load(dir: string): Promise<void> {
    const metaPath = join(dir, 'glass.json');
    if (!existsSync(metaPath)) throw new WeightsError(`no GLASS model in ${dir} (expected glass.json, adaptor.safetensors, discriminator.safetensors)`);
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { config?: Partial<GlassConfig>; grid?: [number, number] | null; stats?: Record<string, string | number | boolean> };
    for (const k of ['embedDim', 'discHidden', 'backbone'] as const) {
      if (meta.config?.[k] !== undefined && meta.config[k] !== this.config[k]) {
        throw new WeightsError(`${dir}: saved GLASS has ${k} ${String(meta.config[k])}, this configuration ${String(this.config[k])}`);
      }
    }
    for (const [name, m] of [['adaptor', this.adaptor], ['discriminator', this.discriminator]] as const) {
      const path = join(dir, `${name}.safetensors`);
      if (!existsSync(path)) throw new WeightsError(`no GLASS ${name} weights in ${dir} (expected ${name}.safetensors)`);
      const sd = readSafetensors(path);
      try {
        m.loadTorchStateDict(sd, { source: path });
      } finally {
        for (const t of sd.values()) t.dispose();
      }
    }
    if (meta.grid) this.grid = meta.grid;
    this.stats = meta.stats ?? {};
    this.discriminator.eval();
  }

  dispose(): void {
    this.adaptor.dispose();
    this.discriminator.dispose();
    this.backbone.module.dispose();
  }

  describe(): Record<string, string | number | boolean> {
    const c = this.config;
    return {
      backbone: this.backbone.name,
      backboneInit: this.backboneInit,
      ...(this.backboneChoice ? { backboneChoice: this.backboneChoice } : {}),
      layers: c.layers.join('+'),
      inputSize: c.crop,
      embedDim: c.embedDim,
      trainableParameters: this.adaptor.numParameters() + this.discriminator.numParameters(),
      distribution: c.distribution,
      gasSteps: c.gasSteps,
      las: this.las ? JSON.stringify(this.las.record().params) : c.anomalyStrategy,
      foreground: this.las?.record().foreground ?? (c.useForeground ? 'on' : 'off'),
      ...this.stats,
    };
  }
}
