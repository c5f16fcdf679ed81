import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng.js';
import { ConfigError } from '../errors.js';

/**
 * Seed source for parameter initialisation. Layers draw their tfjs op seeds from here in
 * construction order, so `setInitSeed(seed)` before building a network makes its weights
 * reproducible without threading an Rng through every constructor.
 */
let initRng = new Rng('init');

export function setInitSeed(seed: number | string): void {
  initRng = new Rng(`init/${seed}`);
}

export function nextInitSeed(): number {
  return initRng.tfSeed();
}

/** U(-bound, bound): PyTorch's default for conv/linear (kaiming_uniform with a=sqrt(5) gives 1/sqrt(fan_in)). */
export function uniformInit(shape: number[], bound: number): tf.Tensor {
  return tf.randomUniform(shape, -bound, bound, 'float32', nextInitSeed());
}

/** Kaiming normal, fan_out, ReLU gain: torchvision's ResNet conv init. */
export function kaimingNormalFanOut(shape: number[], fanOut: number): tf.Tensor {
  return tf.randomNormal(shape, 0, Math.sqrt(2 / fanOut), 'float32', nextInitSeed());
}

export function normalInit(shape: number[], std: number, mean = 0): tf.Tensor {
  return tf.randomNormal(shape, mean, std, 'float32', nextInitSeed());
}

/** Xavier/Glorot uniform. */
export function xavierUniform(shape: number[], fanIn: number, fanOut: number, gain = 1): tf.Tensor {
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniformInit(shape, bound);
}

/**
 * timm's trunc_normal_(std, a, b): N(mean, std²) restricted to [a, b] (absolute bounds, as timm),
 * by rejection with a seedrandom stream seeded from the init seed (reproducible under
 * setInitSeed). Dinomaly's bottleneck and decoder Linears: std 0.01, [−0.03, 0.03] (dinomaly.md §2).
 */
export function truncNormalInit(shape: number[], std: number, a: number, b: number, mean = 0): tf.Tensor {
  if (!(std > 0) || !(a < b) || mean + 6 * std < a || mean - 6 * std > b) {
    throw new ConfigError(`truncNormalInit: need std > 0 and [${a}, ${b}] overlapping N(${mean}, ${std}²)`);
  }
  const rng = new Rng(`trunc_normal/${nextInitSeed()}`);
  const n = shape.reduce((s, d) => s * d, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let x: number;
    do x = rng.normal(mean, std);
    while (x < a || x > b);
    v[i] = x;
  }
  return tf.tensor(v, shape);
}
