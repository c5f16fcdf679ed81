import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createImageStrategy, createTextureSource, disposeBatch, type ImageStrategy, type StrategyRecord } from '../../augment/index.js';
import { ConfigError, TrainingError, WeightsError } from '../../errors.js';
import { draemWeightsInit } from '../../nn/layers/unetBlocks.js';
import type { Module } from '../../nn/module.js';
import { readSafetensors, writeSafetensors } from '../../nn/safetensors.js';
import type { JsonValue } from '../../train/checkpoint.js';
import { Adam } from '../../train/optimizers/index.js';
import { writeJsonAtomic } from '../../train/runFolder.js';
import { draemSchedule } from '../../train/schedules.js';
import { train, type StepContext, type TrainResult } from '../../train/trainer.js';
import type { Rng } from '../../util/rng.js';
import type { AnomalyDetector, FitContext, ImageSource, Prediction } from '../types.js';
import type { DraemConfig } from './config.js';
import { draemLoss } from './loss.js';
import { DRAEM_CHECKPOINTING, DiscriminativeSubNetwork, ReconstructiveSubNetwork, draemForward, type DraemNetworks } from './network.js';
import { anomalyMap, imageScores } from './scoring.js';

/** One prepared training batch (JS memory; turned into tensors inside the step). */
interface PreparedBatch {
  n: number;
  /** I_a: images with synthetic anomalies, [n,H,W,3]. */
  images: Float32Array;
  /** I: the aligned clean image (reconstruction target), [n,H,W,3]. */
  clean: Float32Array;
  /** M_a: [n,H,W,1] of 0/1. */
  masks: Float32Array;
  anomalous: number;
}

/** Test/diagnostic hooks (not part of the config). */
export interface DraemHooks {
  /** Called at the start of every training step, inside the step; throwing aborts the run like a crash. */
  beforeStep?: (ctx: StepContext) => void;
}

/** What the last fit() did, for logs, reports and tests. */
export interface DraemFitSummary {
  startStep: number;
  totalSteps: number;
  stepsPerEpoch: number;
  /** Total loss of every step this call ran, in order. */
  losses: number[];
  /** Mean L2, SSIM and focal terms of each epoch this call ran (partial epochs included). */
  epochTerms: { epoch: number; l2: number; ssim: number; focal: number; total: number }[];
  resumedFrom: string | null;
  seconds: number;
}

const WEIGHT_FILES = { reconstructive: 'reconstructive.safetensors', discriminative: 'discriminative.safetensors' } as const;
const META_FILE = 'draem.json';

/** Config fields that change the training trajectory (hashed into checkpoints; bookkeeping fields are not). */
function trainingConfig(c: DraemConfig): JsonValue {
  return {
    method: 'draem',
    resize: c.resize,
    crop: c.crop,
    epochs: c.epochs,
    batchSize: c.batchSize,
    lr: c.lr,
    lrSchedule: c.lrSchedule,
    reconstructiveWidth: c.reconstructiveWidth,
    discriminativeWidth: c.discriminativeWidth,
    anomalyStrategy: c.anomalyStrategy,
    anomalyParams: c.anomalyParams as JsonValue,
    texturesDir: c.texturesDir,
  };
}

/**
 * DRAEM (Zavrtanik et al., ICCV 2021; draem.md): a reconstructive autoencoder and a
 * discriminative U-Net trained jointly on simulated anomalies; the anomaly map is the
 * segmenter's softmax anomaly channel and the image score the max of its mean-filtered map.
 */
export class Draem implements AnomalyDetector {
  readonly nets: DraemNetworks;
  private strategy: ImageStrategy | null = null;
  private summary: DraemFitSummary | null = null;
  private trained = false;

  constructor(
    readonly config: DraemConfig,
    private readonly hooks: DraemHooks = {},
  ) {
    validateConfig(config);
    // train_DRAEM.py: model.apply(weights_init) on both networks (conv N(0, 0.02), BN γ ~ N(1, 0.02), β = 0).
    const reconstructive = new ReconstructiveSubNetwork(config.reconstructiveWidth);
    const discriminative = new DiscriminativeSubNetwork(config.discriminativeWidth);
    draemWeightsInit(reconstructive);
    draemWeightsInit(discriminative);
    reconstructive.setCheckpointing(config.gradientCheckpointing);
    discriminative.setCheckpointing(config.gradientCheckpointing);
    this.nets = { reconstructive, discriminative };
  }

  /** The anomaly simulator, built from the registry on first use (so load()-only use needs no textures). */
  anomalyStrategy(): ImageStrategy {
    if (!this.strategy) {
      const c = this.config;
      const s = createImageStrategy(c.anomalyStrategy, {
        params: c.anomalyParams,
        textures: createTextureSource(c.texturesDir ?? undefined),
      });
      if (s.role !== 'anomaly') {
        throw new ConfigError(`DRAEM anomalyStrategy '${c.anomalyStrategy}' hides pixels for inpainting (role '${s.role}'); DRAEM needs a strategy that synthesises anomalies, e.g. 'draem' or 'perlin'`);
      }
      this.strategy = s;
    }
    return this.strategy;
  }

  get lastFit(): DraemFitSummary | null {
    return this.summary;
  }

  /**
   * The official training loop (train_DRAEM.py, draem.md §3) on the shared trainer: an epoch is
   * ⌈N/B⌉ steps over N samples whose indices are drawn uniformly WITH replacement (the official
   * dataset ignores its index); each batch goes through the anomaly simulator; one Adam over both
   * networks; MultiStepLR per epoch. Batches are a pure function of (run seed, step), so a resumed
   * run sees exactly the batches the uninterrupted run would have.
   *
   * The simulator is asynchronous (it reads tensors and texture files) while the trainer's step is
   * synchronous, so it runs in the trainer's prepareBatch hook: batch s+1 is synthesised (as
   * Float32Arrays) while step s trains, one batch ahead instead of a whole epoch in memory.
   */
  async fit(trainSet: ImageSource, ctx: FitContext): Promise<void> {
    const c = this.config;
    if (trainSet.length === 0) throw new TrainingError('DRAEM.fit: the training set is empty');
    if (trainSet.height !== c.crop || trainSet.width !== c.crop) {
      throw new ConfigError(`DRAEM.fit: training images are ${trainSet.width}x${trainSet.height}, the config expects ${c.crop}x${c.crop}`);
    }
    const t0 = performance.now();
    const n = trainSet.length;
    const stepsPerEpoch = Math.ceil(n / c.batchSize);
    const totalSteps = stepsPerEpoch * c.epochs;
    const dataSeed = ctx.rng.fork('draem-data').seed;
    const strategy = this.anomalyStrategy();
    const batchSize = (step: number): number => Math.min(c.batchSize, n - (step % stepsPerEpoch) * c.batchSize);

    const { reconstructive, discriminative } = this.nets;
    reconstructive.train();
    discriminative.train();
    const optimizer = new Adam([...reconstructive.trainableVariables(), ...discriminative.trainableVariables()], { lr: c.lr });
    const schedule = draemSchedule({ baseLr: c.lr, epochs: c.epochs, stepsPerEpoch, paper: c.lrSchedule === 'paper' });

    // Loss terms are kept out of the step's tidy and read (synchronously) after it, for the epoch log.
    let pendingTerms: tf.Tensor1D | null = null;
    const termSums = new Map<number, { l2: number; ssim: number; focal: number; total: number; k: number }>();
    const h = c.crop;

    ctx.meter?.start('train');
    let result: TrainResult;
    try {
      ctx.log(
        `[draem] ${n} train images, ${stepsPerEpoch} steps/epoch × ${c.epochs} epochs, batch ${c.batchSize}, ${h}², ` +
          `widths ${c.reconstructiveWidth}/${c.discriminativeWidth} (${(this.numParameters() / 1e6).toFixed(2)} M params), ` +
          `anomalies '${strategy.name}' (${describeTextures(strategy.record())})`,
      );
      result = await train({
        modules: { reconstructive, discriminative },
        optimizers: optimizer,
        schedule,
        epochs: c.epochs,
        stepsPerEpoch,
        rng: ctx.rng.fork('draem-trainer'),
        runDir: ctx.runDir,
        resume: ctx.resume ?? false,
        checkpointEvery: stepsPerEpoch * c.checkpointEveryEpochs,
        keepLast: c.keepCheckpoints,
        config: trainingConfig(c),
        log: ctx.log,
        label: 'draem',
        // Same per-step streams as before the hook existed (`${dataSeed}/step-${s}`): same batches.
        batchSeed: dataSeed,
        prepareBatch: (step, rng) => this.synthesise(trainSet, strategy, rng, batchSize(step)),
        stepFn: (_step, _rng, sctx, b) => {
          this.hooks.beforeStep?.(sctx);
          const shape: [number, number, number, number] = [b.n, h, h, 3];
          const images = tf.tensor4d(b.images, shape);
          const clean = tf.tensor4d(b.clean, shape);
          const masks = tf.tensor4d(b.masks, [b.n, h, h, 1]);
          const { reconstruction, probs } = draemForward(this.nets, images);
          const terms = draemLoss(reconstruction, clean, probs, masks);
          pendingTerms?.dispose();
          pendingTerms = tf.keep(tf.stack([terms.l2, terms.ssim, terms.focal, terms.total]) as tf.Tensor1D);
          return terms.total;
        },
        onStep: (info) => {
          if (!pendingTerms) return;
          const v = pendingTerms.dataSync();
          pendingTerms.dispose();
          pendingTerms = null;
          const s = termSums.get(info.epoch) ?? { l2: 0, ssim: 0, focal: 0, total: 0, k: 0 };
          s.l2 += v[0];
          s.ssim += v[1];
          s.focal += v[2];
          s.total += v[3];
          s.k += 1;
          termSums.set(info.epoch, s);
        },
        onEpochEnd: (epoch, ectx) => {
          const s = termSums.get(epoch);
          if (s) {
            ectx.log(
              `[draem] epoch ${epoch + 1}/${c.epochs}: loss ${(s.total / s.k).toFixed(4)} ` +
                `(L2 ${(s.l2 / s.k).toFixed(4)}, SSIM ${(s.ssim / s.k).toFixed(4)}, focal ${(s.focal / s.k).toFixed(4)}), lr ${optimizer.lr.toExponential(1)}`,
            );
          }
        },
      });
    } finally {
      if (pendingTerms) (pendingTerms as tf.Tensor).dispose();
      optimizer.dispose();
      await ctx.meter?.stop('train');
    }
    reconstructive.eval();
    discriminative.eval();
    this.trained = true;
    this.summary = {
      startStep: result.startStep,
      totalSteps,
      stepsPerEpoch,
      losses: result.losses,
      epochTerms: [...termSums.entries()].map(([epoch, s]) => ({
        epoch, l2: s.l2 / s.k, ssim: s.ssim / s.k, focal: s.focal / s.k, total: s.total / s.k,
      })),
      resumedFrom: result.resumedFrom,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  /**
   * One batch: `count` indices drawn uniformly with replacement, then the anomaly simulator.
   * Deterministic in `rng` (the strategy derives per-sample streams from it).
   */
  private async synthesise(trainSet: ImageSource, strategy: ImageStrategy, rng: Rng, count: number): Promise<PreparedBatch> {
    const picks = Array.from({ length: count }, () => rng.int(0, trainSet.length));
    const images = tf.tidy(() => {
      const parts = picks.map((i) => trainSet.batch(i, i + 1));
      return tf.concat(parts, 0) as tf.Tensor4D;
    });
    const batch = await strategy.generate({ images }, rng);
    images.dispose();
    try {
      const [a, cl, m, l] = await Promise.all([batch.images.data(), batch.clean.data(), batch.masks.data(), batch.labels.data()]);
      let anomalous = 0;
      for (let i = 0; i < l.length; i++) if (l[i] > 0) anomalous++;
      return { n: batch.images.shape[0], images: a as Float32Array, clean: cl as Float32Array, masks: m as Float32Array, anomalous };
    } finally {
      disposeBatch(batch);
    }
  }

  /**
   * Scores a batch with BN running statistics (model.eval(), test_DRAEM.py): maps = P[:, 1] at the
   * input resolution, scores = max of the mean-filtered map (draem.md §4).
   */
  predict(images: tf.Tensor4D): Prediction {
    const { reconstructive, discriminative } = this.nets;
    const wasTraining = reconstructive.isTraining || discriminative.isTraining;
    reconstructive.eval();
    discriminative.eval();
    try {
      return tf.tidy(() => {
        const { probs } = draemForward(this.nets, images);
        const maps = anomalyMap(probs);
        const scores = imageScores(maps, this.config.scoreFilterSize);
        return { scores, maps };
      });
    } finally {
      if (wasTraining) {
        reconstructive.train();
        discriminative.train();
      }
    }
  }

  modules(): Module[] {
    return [this.nets.reconstructive, this.nets.discriminative];
  }

  numParameters(): number {
    return this.nets.reconstructive.numParameters() + this.nets.discriminative.numParameters();
  }

  /**
   * Writes both networks as safetensors in PyTorch layout with the official state-dict names
   * (reconstructive = train_DRAEM.py's `model`, discriminative = `model_seg`), plus draem.json.
   */
  async save(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    for (const [key, net] of Object.entries(this.nets) as [keyof DraemNetworks, Module][]) {
      const sd = net.torchStateDict();
      try {
        writeSafetensors(join(dir, WEIGHT_FILES[key]), sd, { format: 'pt', method: 'draem', network: key });
      } finally {
        for (const t of sd.values()) t.dispose();
      }
    }
    writeJsonAtomic(join(dir, META_FILE), { method: 'draem', config: this.config, trained: this.trained, summary: this.summary });
  }

  async load(dir: string): Promise<void> {
    const metaPath = join(dir, META_FILE);
    if (existsSync(metaPath)) {
      const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { config?: Partial<DraemConfig> };
      const saved = meta.config;
      if (saved && (saved.reconstructiveWidth !== this.config.reconstructiveWidth || saved.discriminativeWidth !== this.config.discriminativeWidth)) {
        throw new WeightsError(
          `${metaPath}: saved DRAEM has widths ${saved.reconstructiveWidth}/${saved.discriminativeWidth}, this config ${this.config.reconstructiveWidth}/${this.config.discriminativeWidth}; load it with the profile it was trained with`,
        );
      }
    }
    for (const [key, net] of Object.entries(this.nets) as [keyof DraemNetworks, Module][]) {
      const path = join(dir, WEIGHT_FILES[key]);
      if (!existsSync(path)) throw new WeightsError(`DRAEM.load: ${path} not found (expected ${Object.values(WEIGHT_FILES).join(' and ')} written by save())`);
      const sd = readSafetensors(path);
      try {
        net.loadTorchStateDict(sd, { source: path });
      } finally {
        for (const t of sd.values()) t.dispose();
      }
    }
    this.nets.reconstructive.eval();
    this.nets.discriminative.eval();
    this.trained = true;
  }

  dispose(): void {
    this.nets.reconstructive.dispose();
    this.nets.discriminative.dispose();
  }

  describe(): Record<string, string | number | boolean> {
    const c = this.config;
    const out: Record<string, string | number | boolean> = {
      inputSize: c.crop,
      reconstructiveWidth: c.reconstructiveWidth,
      discriminativeWidth: c.discriminativeWidth,
      parameters: this.numParameters(),
      epochs: c.epochs,
      batchSize: c.batchSize,
      lr: c.lr,
      lrSchedule: c.lrSchedule,
      anomalyStrategy: c.anomalyStrategy,
      textures: c.texturesDir ?? 'procedural',
      scoreFilter: `${c.scoreFilterSize}x${c.scoreFilterSize} mean, max`,
      gradientCheckpointing: c.gradientCheckpointing,
    };
    if (this.summary) {
      out.trainSteps = this.summary.totalSteps;
      out.trainSeconds = Number(this.summary.seconds.toFixed(1));
      const last = this.summary.epochTerms.at(-1);
      if (last) out.finalEpochLoss = Number(last.total.toFixed(5));
      if (this.summary.resumedFrom) out.resumedFrom = this.summary.resumedFrom;
    }
    return out;
  }
}

function describeTextures(r: StrategyRecord): string {
  const t = r.textureSource;
  if (!t) return 'no textures';
  return t.kind === 'folder' ? `${t.files} texture images from ${t.dir}` : `procedural textures: ${t.families.join(', ')}`;
}

/** @throws ConfigError for values the networks or the loop cannot take. */
export function validateConfig(c: DraemConfig): void {
  if (c.resize !== c.crop) throw new ConfigError(`DRAEM resizes straight to the network input (draem.md §2): resize (${c.resize}) must equal crop (${c.crop})`);
  if (!Number.isInteger(c.crop) || c.crop < 32 || c.crop % 32 !== 0) {
    throw new ConfigError(`DRAEM input size ${c.crop}: must be a multiple of 32 (the segmenter pools 5 times), e.g. 64, 96, 128, 256`);
  }
  if (!Number.isInteger(c.epochs) || c.epochs < 1) throw new ConfigError(`DRAEM epochs must be a positive integer, got ${c.epochs}`);
  if (!Number.isInteger(c.batchSize) || c.batchSize < 1) throw new ConfigError(`DRAEM batchSize must be a positive integer, got ${c.batchSize}`);
  if (!(c.lr > 0)) throw new ConfigError(`DRAEM lr must be > 0, got ${c.lr}`);
  if (c.lrSchedule !== 'official' && c.lrSchedule !== 'paper') throw new ConfigError(`DRAEM lrSchedule must be 'official' or 'paper', got '${String(c.lrSchedule)}'`);
  if (!(DRAEM_CHECKPOINTING as readonly string[]).includes(c.gradientCheckpointing)) {
    throw new ConfigError(`DRAEM gradientCheckpointing must be one of ${DRAEM_CHECKPOINTING.join(', ')}, got '${String(c.gradientCheckpointing)}'`);
  }
  if (!Number.isInteger(c.checkpointEveryEpochs) || c.checkpointEveryEpochs < 1) {
    throw new ConfigError(`DRAEM checkpointEveryEpochs must be a positive integer, got ${c.checkpointEveryEpochs}`);
  }
  if (!Number.isInteger(c.scoreFilterSize) || c.scoreFilterSize < 1 || c.scoreFilterSize % 2 !== 1) {
    throw new ConfigError(`DRAEM scoreFilterSize must be a positive odd integer, got ${c.scoreFilterSize}`);
  }
}
