/** Plumbing shared by the image strategies: input reading, per-sample RNG streams, output assembly, blending. */
import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../errors.js';
import { Rng } from '../util/rng.js';
import { type Img, luma } from './image.js';
import type { AnomalyBatch, AugmentInput, SampleMeta } from './types.js';

export interface BatchArrays {
  data: Float32Array;
  n: number;
  h: number;
  w: number;
  c: number;
  /** N·H·W foreground values when given. */
  fg?: Float32Array;
}

/** Reads the input batch into typed arrays (validates shapes). */
export async function readInput(strategy: string, input: AugmentInput): Promise<BatchArrays> {
  const { images, foreground } = input;
  if (images.rank !== 4) throw new ConfigError(`strategy ${strategy}: images must be NHWC (rank 4), got rank ${images.rank}`);
  const [n, h, w, c] = images.shape;
  if (c !== 1 && c !== 3) throw new ConfigError(`strategy ${strategy}: images must have 1 or 3 channels, got ${c}`);
  const data = (await images.data()) as Float32Array;
  let fg: Float32Array | undefined;
  if (foreground) {
    const s = foreground.shape;
    if (s[0] !== n || s[1] !== h || s[2] !== w || s[3] !== 1) {
      throw new ConfigError(`strategy ${strategy}: foreground must be [${n}, ${h}, ${w}, 1], got [${s.join(', ')}]`);
    }
    fg = (await foreground.data()) as Float32Array;
  }
  return { data, n, h, w, c, fg };
}

/**
 * One independent stream per input sample, keyed by a value drawn from `rng` (so successive calls
 * differ, the same seed repeats, and the draws of one sample never shift another's).
 */
export function sampleRngs(rng: Rng, n: number): Rng[] {
  const key = rng.int(0, 2 ** 31 - 1);
  return Array.from({ length: n }, (_, i) => new Rng(`${rng.seed}|${key}|${i}`));
}

/** Collects M output samples and builds the batch tensors once. */
export class BatchBuilder {
  private readonly images: Float32Array;
  private readonly clean: Float32Array;
  private readonly masks: Float32Array;
  private readonly labels: Float32Array;
  readonly source: Int32Array;
  readonly meta: SampleMeta[];

  constructor(
    readonly m: number,
    readonly h: number,
    readonly w: number,
    readonly c: number,
  ) {
    this.images = new Float32Array(m * h * w * c);
    this.clean = new Float32Array(m * h * w * c);
    this.masks = new Float32Array(m * h * w);
    this.labels = new Float32Array(m);
    this.source = new Int32Array(m);
    this.meta = new Array<SampleMeta>(m);
  }

  set(i: number, sample: { image: Float32Array; clean: Float32Array; mask: Float32Array; label: number; source: number; meta: SampleMeta }): void {
    const size = this.h * this.w * this.c;
    this.images.set(sample.image, i * size);
    this.clean.set(sample.clean, i * size);
    this.masks.set(sample.mask, i * this.h * this.w);
    this.labels[i] = sample.label;
    this.source[i] = sample.source;
    this.meta[i] = sample.meta;
  }

  build(): AnomalyBatch {
    const shape: [number, number, number, number] = [this.m, this.h, this.w, this.c];
    return {
      images: tf.tensor4d(this.images, shape),
      clean: tf.tensor4d(this.clean, shape),
      masks: tf.tensor4d(this.masks, [this.m, this.h, this.w, 1]),
      labels: tf.tensor1d(this.labels),
      source: this.source,
      meta: this.meta,
    };
  }
}

/** A 3-channel texture brought to `c` channels (luma for gray images). */
export function matchChannels(tex: Float32Array, hw: number, c: number): Float32Array {
  if (c === 3) return tex;
  const out = new Float32Array(hw);
  for (let i = 0; i < hw; i++) out[i] = luma(tex[i * 3], tex[i * 3 + 1], tex[i * 3 + 2]);
  return out;
}

/**
 * The texture blend of DRAEM/GLASS/DiffusionAD (draem.md §3 step 3, glass.md §3, diffusionad.md §3):
 * out = I·(1−M) + (1−β)·A·M + β·I·M, with β the weight of the ORIGINAL image. Outside the mask
 * the image is copied bit-exactly.
 */
export function blendTexture(img: Float32Array, tex: Float32Array, mask: Float32Array, beta: number, c: number): Float32Array {
  const out = img.slice();
  for (let p = 0; p < mask.length; p++) {
    if (mask[p] === 0) continue;
    for (let k = 0; k < c; k++) {
      const i = p * c + k;
      out[i] = (1 - beta) * tex[i] + beta * img[i];
    }
  }
  return out;
}

export function anyNonZero(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return true;
  return false;
}

export function multiplyInPlace(a: Float32Array, b: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] *= b[i];
  return a;
}

/** Wraps a typed-array slice as an Img without copying. */
export function asImg(data: Float32Array, h: number, w: number, c: number): Img {
  return { data, h, w, c };
}
