import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createImageStrategy, disposeBatch, type ImageStrategy } from '../../augment/index.js';
import { ConfigError, TrainingError, WeightsError } from '../../errors.js';
import { crossEntropy } from '../../nn/losses/crossEntropy.js';
import type { Module } from '../../nn/module.js';
import { readSafetensors, writeSafetensors } from '../../nn/safetensors.js';
import type { JsonValue } from '../../train/checkpoint.js';
import { SGD } from '../../train/optimizers/sgd.js';
import { writeJsonAtomic } from '../../train/runFolder.js';
import { cosineAnnealing } from '../../train/schedules.js';
import { train, type PrepareBatchFn, type StepFn, type TrainResult } from '../../train/trainer.js';
import type { Rng } from '../../util/rng.js';
import type { AnomalyDetector, FitContext, ImageSource, Prediction } from '../types.js';
import type { ResNet } from '../backbones/resnet.js';
import { CUTPASTE_VARIANTS, numClasses, type CutPasteConfig } from './config.js';
import { GaussianDensity } from './density.js';
import { CutPasteNet } from './network.js';

/** One prepared step: the views of `sources` images, view-major ([normal ×n, CutPaste ×n, (Scar ×n)]), [0, 1] RGB. */
export interface CutPasteBatch {
  images: Float32Array;
  labels: number[];
  /** Samples (views) in the batch. */
  n: number;
  h: number;
  w: number;
}

const WEIGHTS_FILE = 'model.safetensors';
const DENSITY_FILE = 'density.safetensors';
const META_FILE = 'cutpaste.json';

/** Config fields that change the training trajectory (hashed into checkpoints). */
function trainingConfig(c: CutPasteConfig): JsonValue {
  return {
    method: 'cutpaste',
    crop: c.crop,
    epochs: c.epochs,
    stepsPerEpoch: c.stepsPerEpoch,
    batchSize: c.batchSize,
    variant: c.variant,
    augmentParams: c.augmentParams as JsonValue,
    headLayers: c.headLayers,
    backboneInit: c.backboneInit,
    freezeBackboneSteps: c.freezeBackboneSteps,
    lr: c.lr,
    momentum: c.momentum,
    weightDecay: c.weightDecay,
  };
}

/** @throws ConfigError naming the field for a config that cannot run. */
export function validateConfig(c: CutPasteConfig): void {
  const posInt = (v: number, what: string): void => {
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`CutPaste: ${what} must be a positive integer, got ${v}`);
  };
  posInt(c.crop, 'crop');
  posInt(c.epochs, 'epochs');
  posInt(c.stepsPerEpoch, 'stepsPerEpoch');
  posInt(c.batchSize, 'batchSize');
  posInt(c.evalBatchSize, 'evalBatchSize');
  posInt(c.checkpointEveryEpochs, 'checkpointEveryEpochs');
  posInt(c.keepCheckpoints, 'keepCheckpoints');
  if (c.resize !== c.crop) throw new ConfigError('CutPaste: resize and crop must be equal (cutpaste.md §2 resizes the whole image, no crop)');
  if (c.crop < 32) throw new ConfigError(`CutPaste: input ${c.crop} is too small for ResNet-18 (stride 32); use at least 32`);
  if (!(CUTPASTE_VARIANTS as readonly string[]).includes(c.variant)) {
    throw new ConfigError(`CutPaste: variant '${c.variant}' is not one of ${CUTPASTE_VARIANTS.join(', ')} (registered in src/augment/cutpaste.ts)`);
  }
  if (c.augmentParams.includeNormal === false) throw new ConfigError('CutPaste: augmentParams.includeNormal must stay true (the normal view is class 0 of the loss, eq. 1)');
  if (!Number.isInteger(c.headLayers) || c.headLayers < 0) throw new ConfigError(`CutPaste: headLayers must be a non-negative integer, got ${c.headLayers}`);
  if (c.backboneInit !== 'scratch' && c.backboneInit !== 'imagenet') throw new ConfigError(`CutPaste: backboneInit must be 'scratch' or 'imagenet', got '${c.backboneInit}'`);
  if (!Number.isInteger(c.freezeBackboneSteps) || c.freezeBackboneSteps < 0) throw new ConfigError(`CutPaste: freezeBackboneSteps must be a non-negative integer, got ${c.freezeBackboneSteps}`);
  if (!(c.lr > 0) || !(c.momentum >= 0) || !(c.weightDecay >= 0)) throw new ConfigError('CutPaste: lr must be > 0, momentum and weightDecay >= 0');
  if (c.mapLayer !== 'layer3' && c.mapLayer !== 'layer4') throw new ConfigError(`CutPaste: mapLayer must be 'layer3' or 'layer4', got '${c.mapLayer}'`);
  // Unknown strategy parameters fail here, not after minutes of decoding.
  createImageStrategy(c.variant, { params: c.augmentParams });
}

/**
 * CutPaste (Li et al., CVPR 2021; cutpaste.md): a ResNet-18 trained to tell normal images from
 * CutPaste / CutPaste-Scar augmented ones (3-way by default); anomalies score by a Gaussian
 * density (Ledoit–Wolf) fitted on the encoder's pooled features of the normal training images.
 * The anomaly map is the same estimator on one stage's spatial features (README.md "Localisation").
 */
export class CutPaste implements AnomalyDetector {
  readonly net: CutPasteNet;
  readonly strategy: ImageStrategy;
  /** Image-level GDE on pooled layer4 features (null until fitted or loaded). */
  imageDensity: GaussianDensity | null = null;
  /** Shared GDE over the spatial positions of `config.mapLayer` (the anomaly map). */
  mapDensity: GaussianDensity | null = null;
  /** Step losses and training accuracies of the last fit() call (only the steps it ran). */
  lossHistory: number[] = [];
  accuracyHistory: number[] = [];
  startStep = 0;
  private stats: Record<string, string | number | boolean> = {};

  constructor(
    readonly config: CutPasteConfig,
    backbone: ResNet,
    /** What the backbone started from, for reports: 'scratch', 'pretrained' or 'random-init' (ImageNet asked for, not found). */
    readonly backboneInit: 'scratch' | 'pretrained' | 'random-init' = 'scratch',
  ) {
    validateConfig(config);
    this.net = new CutPasteNet(backbone, config.headLayers, numClasses(config.variant));
    this.net.eval();
    this.strategy = createImageStrategy(config.variant, { params: config.augmentParams });
  }

  /** The steps the backbone stays frozen (Runinho's freeze_resnet; only for ImageNet-initialised backbones). */
  get frozenSteps(): number {
    return this.backboneInit === 'pretrained' ? this.config.freezeBackboneSteps : 0;
  }

  /**
   * Source-image indices of a step: the train set in a fresh shuffled order per pass, batches
   * taken consecutively across passes (Runinho's endless DataLoader); a pure function of (rng seed, step).
   */
  static sourceIndices(step: number, batchSize: number, n: number, orderRng: Rng): number[] {
    const orders = new Map<number, number[]>();
    const out: number[] = [];
    for (let j = 0; j < batchSize; j++) {
      const pos = step * batchSize + j;
      const pass = Math.floor(pos / n);
      let order = orders.get(pass);
      if (!order) {
        order = orderRng.fork(`pass-${pass}`).shuffle(Array.from({ length: n }, (_, i) => i));
        orders.set(pass, order);
      }
      out.push(order[pos % n]);
    }
    return out;
  }

  /** The views of a [0, 1] batch from the registry strategy (cutpaste.md §3, §7.3), as JS arrays. */
  async makeBatch(x01: tf.Tensor4D, rng: Rng): Promise<CutPasteBatch> {
    const b = await this.strategy.generate({ images: x01 }, rng);
    try {
      const [n, h, w] = b.images.shape;
      const [images, labels] = await Promise.all([b.images.data() as Promise<Float32Array>, b.labels.data()]);
      return { images, labels: Array.from(labels), n, h, w };
    } finally {
      disposeBatch(b);
    }
  }

  /** Mean cross-entropy over all views (eq. 1; 3-way: one CE over {normal, CutPaste, Scar}) and the logits. */
  trainingLoss(b: CutPasteBatch): { loss: tf.Scalar; logits: tf.Tensor2D } {
    return tf.tidy(() => {
      const x = tf.tensor4d(b.images, [b.n, b.h, b.w, 3]);
      const { logits } = this.net.forward(x);
      return { loss: crossEntropy(logits, b.labels) as tf.Scalar, logits };
    });
  }

  async fit(trainSet: ImageSource, ctx: FitContext): Promise<void> {
    const c = this.config;
    const n = trainSet.length;
    if (n === 0) throw new TrainingError('CutPaste.fit: the training set is empty');
    if (trainSet.height !== c.crop || trainSet.width !== c.crop) {
      throw new ConfigError(`CutPaste.fit: training images are ${trainSet.width}x${trainSet.height}, the config expects ${c.crop}x${c.crop}`);
    }
    const totalSteps = c.epochs * c.stepsPerEpoch;
    const orderRng = ctx.rng.fork('cutpaste-order');
    const prepareBatch: PrepareBatchFn<CutPasteBatch> = async (step, rng) => {
      const idx = CutPaste.sourceIndices(step, c.batchSize, n, orderRng);
      const x01 = tf.tidy(() => tf.concat(idx.map((i) => trainSet.batch(i, i + 1))) as tf.Tensor4D);
      try {
        return await this.makeBatch(x01, rng);
      } finally {
        x01.dispose();
      }
    };
    // Accuracy is read after each step from a tensor kept out of the step's tidy (like DRAEM's terms).
    let pendingCorrect: tf.Scalar | null = null;
    const accuracies: number[] = [];
    const stepFn: StepFn<CutPasteBatch> = (_s, _rng, _ctx, b) => {
      const { loss, logits } = this.trainingLoss(b);
      pendingCorrect?.dispose();
      pendingCorrect = tf.keep(tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), tf.tensor1d(b.labels, 'int32')), 'float32')) as tf.Scalar));
      return loss;
    };
    const frozen = this.frozenSteps;
    const setFrozen = (nextStep: number): void => {
      const want = nextStep < frozen;
      if (want && !this.net.resnet18.isFrozen) this.net.resnet18.freeze();
      else if (!want && this.net.resnet18.isFrozen) this.net.resnet18.unfreeze();
    };

    const opt = new SGD(this.net.trainableVariables(), { lr: c.lr, momentum: c.momentum, weightDecay: c.weightDecay });
    ctx.log(
      `[cutpaste] ${n} train images, ${c.batchSize} per step × ${this.strategy.outputsPerInput} views (${c.variant}), ` +
        `${c.epochs} × ${c.stepsPerEpoch} steps, ${c.crop}², ResNet-18 ${this.backboneInit} + ${c.headLayers}-layer head (${this.net.numParameters().toLocaleString('en-US')} parameters)`,
    );
    this.net.train();
    let result: TrainResult;
    try {
      result = await train({
        modules: { model: this.net },
        optimizers: opt,
        // One cosine cycle to 0 over all steps (cutpaste.md §3; Runinho's CosineAnnealingLR(T_max = steps) stepped per step).
        schedule: cosineAnnealing({ baseLr: c.lr, tMax: totalSteps }),
        epochs: c.epochs,
        stepsPerEpoch: c.stepsPerEpoch,
        stepFn,
        prepareBatch,
        batchSeed: ctx.rng.fork('cutpaste-views').seed,
        rng: ctx.rng.fork('cutpaste-trainer'),
        runDir: ctx.runDir,
        resume: ctx.resume ?? false,
        checkpointEvery: c.stepsPerEpoch * c.checkpointEveryEpochs,
        keepLast: c.keepCheckpoints,
        config: trainingConfig(c),
        meter: ctx.meter,
        log: ctx.log,
        label: 'cutpaste',
        onEpochStart: (_e, ectx) => setFrozen(ectx.step),
        onStep: (info) => {
          setFrozen(info.step + 1);
          if (!pendingCorrect) return;
          accuracies.push(pendingCorrect.dataSync()[0]);
          pendingCorrect.dispose();
          pendingCorrect = null;
        },
        onEpochEnd: (epoch, ectx) => {
          const a = accuracies.slice(-c.stepsPerEpoch);
          if (a.length > 0) ectx.log(`[cutpaste] epoch ${epoch + 1}: training accuracy ${(100 * a.reduce((s, v) => s + v, 0) / a.length).toFixed(1)} % (last ${a.length} steps)`);
        },
      });
    } finally {
      (pendingCorrect as tf.Scalar | null)?.dispose();
      opt.dispose();
      if (this.net.resnet18.isFrozen) this.net.resnet18.unfreeze();
      this.net.eval();
    }
    this.lossHistory = result.losses;
    this.accuracyHistory = accuracies;
    this.startStep = result.startStep;

    // The last step's model (no selection on the test set: cutpaste.md §6), GDE on all train images.
    const tg = performance.now();
    this.fitDensity(trainSet);
    const losses = result.losses;
    const tail = accuracies.slice(-Math.min(20, accuracies.length));
    this.stats = {
      trainImages: n,
      stepsRun: result.step,
      resumedFromStep: result.startStep,
      ...(losses.length > 0 ? { firstLoss: Number(losses[0].toFixed(5)), lastLoss: Number(losses[losses.length - 1].toFixed(5)) } : {}),
      ...(tail.length > 0 ? { finalTrainAccuracy: Number((tail.reduce((s, v) => s + v, 0) / tail.length).toFixed(4)) } : {}),
      imageShrinkage: Number((this.imageDensity?.shrinkage ?? NaN).toFixed(6)),
      mapShrinkage: Number((this.mapDensity?.shrinkage ?? NaN).toFixed(6)),
      densitySeconds: Number(((performance.now() - tg) / 1000).toFixed(2)),
    };
  }

  /**
   * cutpaste.md §4: features of every training image with the test transform (no augmentation),
   * eval-mode BatchNorm: the image GDE on pooled features, the map GDE on all spatial positions.
   */
  fitDensity(set: ImageSource): void {
    const c = this.config;
    if (this.net.isTraining) this.net.eval();
    const pooled: tf.Tensor2D[] = [];
    const spatial: tf.Tensor2D[] = [];
    try {
      for (let s = 0; s < set.length; s += c.evalBatchSize) {
        const x = set.batch(s, Math.min(set.length, s + c.evalBatchSize));
        const f = this.net.features(x, c.mapLayer);
        x.dispose();
        pooled.push(f.embeds);
        spatial.push(tf.tidy(() => f.spatial.reshape([-1, f.spatial.shape[3]]) as tf.Tensor2D));
        f.spatial.dispose();
      }
      const all = tf.concat(pooled) as tf.Tensor2D;
      const allSpatial = tf.concat(spatial) as tf.Tensor2D;
      try {
        this.imageDensity = GaussianDensity.fit(all, { l2Normalize: c.l2Normalize });
        this.mapDensity = GaussianDensity.fit(allSpatial, { l2Normalize: c.l2Normalize });
      } finally {
        all.dispose();
        allSpatial.dispose();
      }
    } finally {
      tf.dispose([...pooled, ...spatial]);
    }
  }

  /** Image score = Mahalanobis distance of the pooled feature; map = per-position distances, bilinearly upsampled to the input. */
  predict(images: tf.Tensor4D): Prediction {
    const imageDensity = this.imageDensity;
    const mapDensity = this.mapDensity;
    if (!imageDensity || !mapDensity) throw new TrainingError('CutPaste.predict: the Gaussian density is not fitted; call fit() or load() first');
    if (this.net.isTraining) this.net.eval();
    const [n, h, w] = images.shape;
    return tf.tidy(() => {
      const f = this.net.features(images, this.config.mapLayer);
      const [, fh, fw, fc] = f.spatial.shape;
      const scores = imageDensity.score(f.embeds);
      const local = mapDensity.score(f.spatial.reshape([-1, fc]) as tf.Tensor2D).reshape([n, fh, fw, 1]) as tf.Tensor4D;
      const maps = tf.image.resizeBilinear(local, [h, w], false, true).reshape([n, h, w]) as tf.Tensor3D;
      return { scores, maps };
    });
  }

  modules(): Module[] {
    return [this.net];
  }

  /** model.safetensors (PyTorch layout, Runinho's ProjectionNet names), density.safetensors (μ, Σ⁻¹), cutpaste.json. */
  async save(dir: string): Promise<void> {
    if (!this.imageDensity || !this.mapDensity) throw new TrainingError('CutPaste.save: nothing fitted to save');
    mkdirSync(dir, { recursive: true });
    const sd = this.net.torchStateDict();
    const dens = new Map([...this.imageDensity.tensors('image'), ...this.mapDensity.tensors(`map.${this.config.mapLayer}`)]);
    try {
      writeSafetensors(join(dir, WEIGHTS_FILE), sd, { format: 'pt', method: 'cutpaste' });
      writeSafetensors(join(dir, DENSITY_FILE), dens, { method: 'cutpaste', l2Normalize: String(this.config.l2Normalize) });
    } finally {
      tf.dispose([...sd.values(), ...dens.values()]);
    }
    writeJsonAtomic(join(dir, META_FILE), { config: this.config, backboneInit: this.backboneInit, params: this.net.numParameters(), stats: this.stats });
  }

  async load(dir: string): Promise<void> {
    const wPath = join(dir, WEIGHTS_FILE);
    const dPath = join(dir, DENSITY_FILE);
    if (!existsSync(wPath) || !existsSync(dPath)) throw new WeightsError(`no CutPaste model in ${dir} (expected ${WEIGHTS_FILE} and ${DENSITY_FILE})`);
    const metaPath = join(dir, META_FILE);
    if (existsSync(metaPath)) {
      const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { config?: Partial<CutPasteConfig>; stats?: Record<string, string | number | boolean> };
      for (const k of ['headLayers', 'variant', 'mapLayer', 'l2Normalize'] as const) {
        if (meta.config?.[k] !== undefined && meta.config[k] !== this.config[k]) {
          throw new WeightsError(`${dir}: saved CutPaste model has ${k} = ${String(meta.config[k])}, this configuration ${String(this.config[k])}`);
        }
      }
      this.stats = meta.stats ?? {};
    }
    const sd = readSafetensors(wPath);
    try {
      this.net.loadTorchStateDict(sd, { source: wPath });
    } finally {
      tf.dispose([...sd.values()]);
    }
    const dens = readSafetensors(dPath);
    try {
      this.imageDensity = GaussianDensity.fromTensors(dens, 'image', this.config.l2Normalize, dPath);
      this.mapDensity = GaussianDensity.fromTensors(dens, `map.${this.config.mapLayer}`, this.config.l2Normalize, dPath);
    } finally {
      tf.dispose([...dens.values()]);
    }
    this.net.eval();
  }

  dispose(): void {
    this.net.dispose();
  }

  describe(): Record<string, string | number | boolean> {
    const c = this.config;
    return {
      network: `ResNet-18 + ${c.headLayers}-layer head, ${numClasses(c.variant)} classes`,
      parameters: this.net.numParameters(),
      backboneInit: this.backboneInit,
      inputSize: c.crop,
      variant: c.variant,
      steps: c.epochs * c.stepsPerEpoch,
      sourcesPerStep: c.batchSize,
      density: `Gaussian (Ledoit–Wolf) on ${c.l2Normalize ? 'L2-normalised ' : ''}pooled layer4 features`,
      anomalyMap: `shared Gaussian on ${c.mapLayer} spatial features, bilinear upsampling`,
      ...this.stats,
    };
  }
}
