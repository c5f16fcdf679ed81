import * as tf from '@tensorflow/tfjs';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { writeFileAtomic } from '../../train/runFolder.js';
import { Progress } from '../../train/progress.js';
import { join } from 'node:path';
import { WeightsError } from '../../errors.js';
import type { Module } from '../../nn/module.js';
import { gaussianBlur2d } from '../../nn/layers/smoothing.js';
import type { AnomalyDetector, FitContext, ImageSource, Prediction } from '../types.js';
import type { FeatureBackbone } from '../backbones/index.js';
import type { PatchCoreConfig } from './config.js';
import { approximateGreedyCoreset, randomProjection, takeRows, type VectorSet } from './coreset.js';
import { locallyAwarePatchFeatures } from './patchFeatures.js';
import { nearestNeighbour } from '../../nn/nearestNeighbour.js';
import { reweightedScore } from './nearestNeighbour.js';

/**
 * PatchCore (Roth et al., CVPR 2022): frozen backbone patch features, a coreset memory bank and
 * nearest-neighbour distance. "Training" is fitting the bank; no gradients.
 */
export class PatchCore implements AnomalyDetector {
  private bank: tf.Tensor2D | null = null;
  /** The bank transposed, [D, B]: the layout wasm's matMul is fast on (see nearestNeighbour). */
  private bankT: tf.Tensor2D | null = null;
  private bankSqNorms: tf.Tensor1D | null = null;
  private grid: [number, number] = [0, 0];
  private fitStats: Record<string, number> = {};

  constructor(
    readonly config: PatchCoreConfig,
    readonly backbone: FeatureBackbone,
    /** 'pretrained' or 'random-init', shown in every report. */
    readonly backboneInit: 'pretrained' | 'random-init' = 'pretrained',
    /** Why this backbone (e.g. the shipped Tiny Darknet standing in for WRN-50), for reports. */
    readonly backboneChoice?: string,
  ) {}

  /** Patch features of a batch of [0,1] images: [N*h*w, D]. */
  embed(images: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const feats = this.backbone.extract(images);
      const taps = this.config.layers.map((l) => {
        const t = feats[l];
        if (!t) throw new WeightsError(`backbone ${this.backbone.name} has no feature tap '${l}' (has ${Object.keys(feats).join(', ')})`);
        return t;
      });
      const { features, grid } = locallyAwarePatchFeatures(taps, this.config);
      this.grid = grid;
      return features;
    });
  }

  async fit(train: ImageSource, ctx: FitContext): Promise<void> {
    const c = this.config;
    const t0 = Date.now();
    let bankAll: Float32Array | null = null;
    let rowsPerImage = 0;
    const progress = new Progress({ total: train.length, label: 'patchcore embed', log: ctx.log });
    for (let s = 0; s < train.length; s += c.batchSize) {
      const e = Math.min(train.length, s + c.batchSize);
      const x = train.batch(s, e);
      const f = this.embed(x);
      x.dispose();
      const data = await f.data();
      if (!bankAll) {
        rowsPerImage = f.shape[0] / (e - s);
        bankAll = new Float32Array(train.length * rowsPerImage * c.targetDim);
      }
      bankAll.set(data as Float32Array, s * rowsPerImage * c.targetDim);
      f.dispose();
      progress.update(e);
    }
    progress.end();
    if (!bankAll) throw new Error('PatchCore.fit: empty training set');
    const all: VectorSet = { data: bankAll, rows: train.length * rowsPerImage, dim: c.targetDim };
    const t1 = Date.now();
    const count = Math.max(1, Math.floor(all.rows * c.coresetRatio));
    const rng = ctx.rng.fork('patchcore-coreset');
    const projected = randomProjection(all, c.projectionDim, rng);
    const selected = approximateGreedyCoreset(projected, { count }, rng);
    const bank = takeRows(all, selected);
    this.setBank(bank);
    this.fitStats = {
      trainImages: train.length,
      patchesPerImage: rowsPerImage,
      featuresBeforeCoreset: all.rows,
      memoryBankSize: bank.rows,
      embedSeconds: (t1 - t0) / 1000,
      coresetSeconds: (Date.now() - t1) / 1000,
    };
    ctx.log(
      `[patchcore] coreset ${bank.rows}/${all.rows} (${(c.coresetRatio * 100).toFixed(1)}%) in ${this.fitStats.coresetSeconds.toFixed(1)} s`,
    );
  }

  private setBank(bank: VectorSet): void {
    this.bank?.dispose();
    this.bankT?.dispose();
    this.bankSqNorms?.dispose();
    this.bank = tf.tensor2d(bank.data, [bank.rows, bank.dim]);
    this.bankT = tf.transpose(this.bank) as tf.Tensor2D;
    this.bankSqNorms = tf.tidy(() => tf.sum(tf.square(this.bank as tf.Tensor2D), 1) as tf.Tensor1D);
  }

  predict(images: tf.Tensor4D): Prediction {
    if (!this.bank || !this.bankT || !this.bankSqNorms) throw new Error('PatchCore.predict before fit/load');
    const bankT = this.bankT;
    const norms = this.bankSqNorms;
    const [n, h, w] = images.shape;
    const c = this.config;
    return tf.tidy(() => {
      const f = this.embed(images);
      const { distances, indices } = nearestNeighbour(f, bankT, norms, c.distance);
      const [gh, gw] = this.grid;
      const patchScores = distances.reshape([n, gh, gw]);
      let scores = tf.max(patchScores.reshape([n, gh * gw]), 1) as tf.Tensor1D;
      if (c.reweight) scores = this.reweight(f, distances, indices, n, gh * gw);
      const up = tf.image.resizeBilinear(patchScores.expandDims(3) as tf.Tensor4D, [h, w], false, true);
      const maps = gaussianBlur2d(up, c.blurSigma).squeeze([3]) as tf.Tensor3D;
      return { scores, maps };
    });
  }

  /** Paper eq. 7 (anomalib's softmax form) on each image's most anomalous patch; plain L2 inside. */
  private reweight(f: tf.Tensor2D, distances: tf.Tensor1D, indices: tf.Tensor1D, n: number, per: number): tf.Tensor1D {
    const bank = this.bank as tf.Tensor2D;
    const d = distances.dataSync();
    const idx = indices.dataSync();
    const out = new Float32Array(n);
    const b = this.config.reweightNeighbours;
    for (let i = 0; i < n; i++) {
      let best = i * per;
      for (let j = i * per; j < (i + 1) * per; j++) if (d[j] > d[best]) best = j;
      const sStar = this.config.distance === 'squared-l2' ? Math.sqrt(d[best]) : d[best];
      const nbrDists = tf.tidy(() => {
        const mStar = tf.slice(bank, [idx[best], 0], [1, bank.shape[1]]);
        const toBank = tf.sum(tf.square(tf.sub(bank, mStar)), 1);
        const { indices: nb } = tf.topk(tf.neg(toBank), Math.min(b, bank.shape[0]));
        const q = tf.slice(f, [best, 0], [1, f.shape[1]]);
        return tf.sqrt(tf.sum(tf.square(tf.sub(tf.gather(bank, nb), q)), 1)).dataSync();
      });
      out[i] = reweightedScore(sStar, Array.from(nbrDists));
    }
    return tf.tensor1d(out);
  }

  modules(): Module[] {
    return [this.backbone.module];
  }

  async save(dir: string): Promise<void> {
    if (!this.bank) throw new Error('PatchCore.save before fit');
    mkdirSync(dir, { recursive: true });
    const data = Buffer.from((await this.bank.data()).buffer);
    const meta = { shape: this.bank.shape, grid: this.grid, config: this.config, fitStats: this.fitStats };
    writeFileAtomic(join(dir, 'memory-bank.f32'), data);
    writeFileAtomic(join(dir, 'patchcore.json'), JSON.stringify(meta, null, 1));
  }

  async load(dir: string): Promise<void> {
    const metaPath = join(dir, 'patchcore.json');
    const bankPath = join(dir, 'memory-bank.f32');
    if (!existsSync(metaPath) || !existsSync(bankPath)) {
      throw new WeightsError(`no PatchCore memory bank in ${dir} (expected patchcore.json and memory-bank.f32)`);
    }
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { shape: [number, number]; grid: [number, number]; fitStats: Record<string, number> };
    const buf = readFileSync(bankPath);
    const arr = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    if (arr.length !== meta.shape[0] * meta.shape[1]) {
      throw new WeightsError(`${bankPath}: ${arr.length} values, expected ${meta.shape[0]}x${meta.shape[1]}`);
    }
    this.setBank({ data: arr.slice(), rows: meta.shape[0], dim: meta.shape[1] });
    this.grid = meta.grid;
    this.fitStats = meta.fitStats;
  }

  dispose(): void {
    this.bank?.dispose();
    this.bankT?.dispose();
    this.bankSqNorms?.dispose();
    this.bank = null;
    this.bankT = null;
    this.bankSqNorms = null;
    this.backbone.module.dispose();
  }

  describe(): Record<string, string | number | boolean> {
    return {
      backbone: this.backbone.name,
      backboneInit: this.backboneInit,
      ...(this.backboneChoice ? { backboneChoice: this.backboneChoice } : {}),
      ...this.fitStats,
      distance: this.config.distance,
      reweight: this.config.reweight,
    };
  }
}

