import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import type { Module } from '../../nn/module.js';

/**
 * Input normalisation of a backbone, applied to NHWC RGB images in [0, 1]: x' = (x - mean) / std.
 * torchvision/timm: ImageNet mean/std; Keras MobileNet: x/127.5 - 1 on 0..255 = (x - 0.5) / 0.5;
 * Darknet: identity.
 */
export interface Normalization {
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
  readonly description: string;
}

export const IMAGENET_NORMALIZATION: Normalization = {
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  description: 'ImageNet mean (0.485, 0.456, 0.406) / std (0.229, 0.224, 0.225) on [0,1] RGB',
};

export const SYMMETRIC_NORMALIZATION: Normalization = {
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
  description: 'Keras MobileNet: x/127.5 - 1 on 0..255 (= 2x - 1 on [0,1])',
};

export const UNIT_NORMALIZATION: Normalization = {
  mean: [0, 0, 0],
  std: [1, 1, 1],
  description: 'Darknet: RGB in [0,1] unchanged',
};

/** (x - mean) / std over the channel axis of an NHWC batch; a new tensor. */
export function normalizeInput(x: tf.Tensor4D, n: Normalization): tf.Tensor4D {
  return tf.tidy(() => {
    const identity = n.mean.every((m) => m === 0) && n.std.every((s) => s === 1);
    if (identity) return x.clone();
    // Multiply by 1/std (as a float32 constant) rather than divide: same as torchvision to ~1 ulp.
    const mean = tf.tensor1d([...n.mean]);
    const inv = tf.tensor1d(n.std.map((s) => 1 / s));
    return tf.mul(tf.sub(x, mean), inv) as tf.Tensor4D;
  });
}

/**
 * What anomaly-detection methods need from a pretrained CNN: named intermediate feature maps of
 * images given as NHWC RGB in [0, 1], the backbone applying its own normalisation.
 */
export interface FeatureExtractor {
  /** Registry name, e.g. 'wide_resnet50_2'. */
  readonly name: string;
  /** Names of the maps `extract` returns, finest first. */
  readonly featureLayers: readonly string[];
  /** Output stride of every tap this instance can produce (featureLayers included). */
  readonly strides: Readonly<Record<string, number>>;
  /** Channel count of every tap this instance can produce. */
  readonly channels: Readonly<Record<string, number>>;
  readonly normalization: Normalization;
  /** The network holding the weights (for parameter counts, MAC meters, dispose). */
  readonly module: Module;
  /**
   * Feature maps of `x` (NHWC, RGB in [0,1]) for every name in `featureLayers` (or `layers` when
   * given). New tensors, owned by the caller; nothing else is left allocated.
   */
  extract(x: tf.Tensor4D, layers?: readonly string[]): Record<string, tf.Tensor4D>;
}

/** Alias used by method code (PatchCore). */
export type FeatureBackbone = FeatureExtractor;

/** Picks `names` out of `all` and disposes the rest; throws on an unknown name. */
export function pickFeatures(
  all: Record<string, tf.Tensor4D>,
  names: readonly string[],
  owner: string,
): Record<string, tf.Tensor4D> {
  const out: Record<string, tf.Tensor4D> = {};
  for (const n of names) {
    const t = all[n];
    if (!t) {
      for (const v of Object.values(all)) v.dispose();
      throw new ConfigError(`${owner}: no feature '${n}' (available: ${Object.keys(all).join(', ')})`);
    }
    out[n] = t;
  }
  for (const [k, v] of Object.entries(all)) if (!(k in out)) v.dispose();
  return out;
}
