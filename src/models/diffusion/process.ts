import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import type { Rng } from '../../util/rng.js';
import type { NoiseSchedule } from './schedule.js';

/**
 * The Gaussian diffusion process on NHWC image batches: forward sampling, the DDPM posterior,
 * x̂_0 from a noise prediction, DDPM ancestral and DDIM updates, and the conditioned update both
 * anomaly methods build on. Coefficients come from the float64 schedule and enter the graph as
 * per-sample float32 [B,1,1,1] constants; every function is tf.tidy'd and returns new tensors.
 * `t` is one timestep for the whole batch or one per sample (0-based; −1 allowed where ᾱ is read).
 */
export type Timesteps = number | readonly number[];

/** N(0, I) noise of `shape` from the seeded stream `rng` (one tfjs op seed per draw). */
export function gaussianNoise(shape: number[], rng: Rng): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', rng.tfSeed());
}

function perSample(batch: number, t: Timesteps, f: (t: number) => number, what: string): tf.Tensor4D {
  const ts = typeof t === 'number' ? new Array<number>(batch).fill(t) : t;
  if (ts.length !== batch) throw new ConfigError(`${what}: ${ts.length} timesteps for a batch of ${batch}`);
  return tf.tensor4d(Float32Array.from(ts, f), [batch, 1, 1, 1]);
}

/** A per-sample coefficient c(t) as a [B,1,1,1] tensor (computed in float64, cast once). */
export function coefficient(x: tf.Tensor, t: Timesteps, c: (t: number) => number, what = 'diffusion coefficient'): tf.Tensor4D {
  // Rank 4 only: a [B,1,1,1] coefficient would broadcast against another rank into a B×N tensor.
  if (x.rank !== 4) throw new ConfigError(`${what}: expected an NHWC batch [B, H, W, C], got shape [${x.shape}]`);
  return perSample(x.shape[0], t, c, what);
}

/**
 * q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) sampled by reparametrisation (Ho et al. 2020, eq. 4):
 * x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε (ddad.md §3, diffusionad.md §3 step 2).
 */
export function qSample(s: NoiseSchedule, x0: tf.Tensor, t: Timesteps, noise: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const a = coefficient(x0, t, (k) => Math.sqrt(s.alphaBar(k)), 'qSample');
    const b = coefficient(x0, t, (k) => Math.sqrt(1 - s.alphaBar(k)), 'qSample');
    return tf.add(tf.mul(a, x0), tf.mul(b, noise));
  });
}

/**
 * x̂_0 = (x_t − √(1 − ᾱ_t)·ε̂)/√ᾱ_t, the inverse of eq. 4 (Ho et al. eq. 15; DDIM eq. 9), with an
 * optional clamp (DiffusionAD clamps to [−1, 1], diffusionad.md §3 steps 4 and 7; DDAD does not).
 */
export function predictX0(s: NoiseSchedule, xt: tf.Tensor, t: Timesteps, eps: tf.Tensor, clip?: readonly [number, number]): tf.Tensor {
  return tf.tidy(() => {
    const a = coefficient(xt, t, (k) => 1 / Math.sqrt(s.alphaBar(k)), 'predictX0');
    const b = coefficient(xt, t, (k) => Math.sqrt(1 - s.alphaBar(k)) / Math.sqrt(s.alphaBar(k)), 'predictX0');
    const x0 = tf.sub(tf.mul(a, xt), tf.mul(b, eps));
    return clip ? tf.clipByValue(x0, clip[0], clip[1]) : x0;
  });
}

/** Posterior q(x_{t−1} | x_t, x_0) coefficients (Ho et al. 2020, eq. 7), with ᾱ_{−1} = 1. */
export interface PosteriorCoefficients {
  /** μ̃ = coefX0·x_0 + coefXt·x_t, coefX0 = √ᾱ_{t−1}·β_t/(1 − ᾱ_t), coefXt = √α_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t). */
  coefX0: number;
  coefXt: number;
  /** β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t (0 at t = 0). */
  variance: number;
}

export function posteriorCoefficients(s: NoiseSchedule, t: number): PosteriorCoefficients {
  const ab = s.alphaBar(t);
  const abPrev = s.alphaBar(t - 1);
  const beta = s.beta(t);
  return {
    coefX0: (Math.sqrt(abPrev) * beta) / (1 - ab),
    coefXt: (Math.sqrt(1 - beta) * (1 - abPrev)) / (1 - ab),
    variance: ((1 - abPrev) / (1 - ab)) * beta,
  };
}

/** μ̃_t(x_t, x_0) and β̃_t per sample (eq. 7). */
export function posteriorMeanVariance(s: NoiseSchedule, x0: tf.Tensor, xt: tf.Tensor, t: Timesteps): { mean: tf.Tensor; variance: tf.Tensor4D } {
  return tf.tidy(() => {
    const c0 = coefficient(x0, t, (k) => posteriorCoefficients(s, k).coefX0, 'posterior');
    const ct = coefficient(x0, t, (k) => posteriorCoefficients(s, k).coefXt, 'posterior');
    const variance = coefficient(x0, t, (k) => posteriorCoefficients(s, k).variance, 'posterior');
    return { mean: tf.add(tf.mul(c0, x0), tf.mul(ct, xt)), variance };
  });
}

/**
 * One DDPM ancestral step x_t → x_{t−1} (Ho et al. Algorithm 2): x_{t−1} = μ̃_t(x_t, x̂_0(ε̂)) + σ_t·z,
 * σ_t² = β̃_t ('posterior', guided-diffusion's "fixed small") or β_t ('beta', "fixed large");
 * no noise at t = 0. With x̂_0 unclamped this equals 1/√α_t·(x_t − β_t/√(1 − ᾱ_t)·ε̂) + σ_t z.
 */
export function ddpmStep(
  s: NoiseSchedule,
  xt: tf.Tensor,
  t: Timesteps,
  eps: tf.Tensor,
  noise: tf.Tensor | null,
  opts: { variance?: 'posterior' | 'beta'; clip?: readonly [number, number] } = {},
): tf.Tensor {
  return tf.tidy(() => {
    const x0 = predictX0(s, xt, t, eps, opts.clip);
    const { mean } = posteriorMeanVariance(s, x0, xt, t);
    if (!noise) return mean;
    const sigma = coefficient(xt, t, (k) => (k === 0 ? 0 : Math.sqrt(opts.variance === 'beta' ? s.beta(k) : posteriorCoefficients(s, k).variance)), 'ddpmStep');
    return tf.add(mean, tf.mul(sigma, noise));
  });
}

/** σ_t(η) of DDIM (Song et al. 2021, eq. 16) for a step t → t' (t' < t, ᾱ_{−1} = 1). */
export function ddimSigma(s: NoiseSchedule, t: number, tNext: number, eta: number): number {
  const at = s.alphaBar(t);
  const an = s.alphaBar(tNext);
  return eta * Math.sqrt(((1 - at / an) * (1 - an)) / (1 - at));
}

/**
 * x_{t'} = √ᾱ_{t'}·x̂_0 + √(1 − ᾱ_{t'} − σ²)·ε̂ + σ·z (DDIM, Song et al. 2021, eq. 12), σ = ddimSigma.
 * η = 0 is deterministic (z unused, may be null). This is also DDAD's update (ddad.md §4: c1 = σ,
 * c2 = √(1 − ᾱ_{t'} − c1²)), with ε̂ its conditioned noise.
 */
export function ddimUpdate(s: NoiseSchedule, x0: tf.Tensor, eps: tf.Tensor, t: number, tNext: number, eta: number, noise: tf.Tensor | null): tf.Tensor {
  return tf.tidy(() => {
    const an = s.alphaBar(tNext);
    const c1 = ddimSigma(s, t, tNext, eta);
    const c2 = Math.sqrt(Math.max(1 - an - c1 * c1, 0));
    const det = tf.add(tf.mul(Math.sqrt(an), x0), tf.mul(c2, eps));
    if (c1 === 0) return det;
    if (!noise) throw new ConfigError(`ddimUpdate: η = ${eta} > 0 needs noise z`);
    return tf.add(det, tf.mul(c1, noise));
  });
}

/** One DDIM step: x̂_0 from ε̂ (eq. 9), then eq. 12. Returns both. */
export function ddimStep(
  s: NoiseSchedule,
  xt: tf.Tensor,
  eps: tf.Tensor,
  t: number,
  tNext: number,
  eta: number,
  noise: tf.Tensor | null,
  opts: { clip?: readonly [number, number] } = {},
): { x0: tf.Tensor; xNext: tf.Tensor } {
  return tf.tidy(() => {
    const x0 = predictX0(s, xt, t, eps, opts.clip);
    return { x0, xNext: ddimUpdate(s, x0, eps, t, tNext, eta, noise) };
  });
}

/** (t, t') pairs of a skipping DDIM chain. */
export interface StepPair {
  t: number;
  tNext: number;
}

/**
 * DDAD's sampler chain (reconstruction.py; ddad.md §4): seq = range(0, stop, stride), walked in
 * reverse, each t paired with the previous entry or −1: stop 250, stride 25 gives 225→200, …,
 * 25→0, 0→−1 (10 evaluations; the noise is added at t = stop, the first evaluation is at
 * stop − stride, a quirk kept on purpose). stride 1, stop T is the full DDPM-length chain.
 */
export function skipSequence(stop: number, stride: number): StepPair[] {
  if (!Number.isInteger(stop) || stop < 1) throw new ConfigError(`skipSequence: stop must be a positive integer, got ${stop}`);
  if (!Number.isInteger(stride) || stride < 1) throw new ConfigError(`skipSequence: stride must be a positive integer, got ${stride}`);
  const seq: number[] = [];
  for (let t = 0; t < stop; t += stride) seq.push(t);
  const pairs: StepPair[] = [];
  for (let i = seq.length - 1; i >= 0; i--) pairs.push({ t: seq[i], tNext: i === 0 ? -1 : seq[i - 1] });
  return pairs;
}

/**
 * Conditioned noise estimate (DDAD, Mousakhan et al. 2023, reconstruction.py; ddad.md §4):
 *   y_t = √ᾱ_t·y + √(1 − ᾱ_t)·ε̂,   ε̃ = ε̂ − w·√(1 − ᾱ_t)·(y_t − x_t).
 * The same form is DiffusionAD's norm guidance (diffusionad.md §3 steps 5–6) with y = x̂_0 of the
 * big-t branch: ε* = ê_s − w·√(1 − ᾱ_s)·(x̃_s − x_s), x̃_s = √ᾱ_s·x̂0_b + √(1 − ᾱ_s)·ê_s.
 */
export function conditionedEpsilon(s: NoiseSchedule, xt: tf.Tensor, y: tf.Tensor, eps: tf.Tensor, t: Timesteps, w: number): { yt: tf.Tensor; eps: tf.Tensor } {
  return tf.tidy(() => {
    const a = coefficient(xt, t, (k) => Math.sqrt(s.alphaBar(k)), 'conditionedEpsilon');
    const b = coefficient(xt, t, (k) => Math.sqrt(1 - s.alphaBar(k)), 'conditionedEpsilon');
    const yt = tf.add(tf.mul(a, y), tf.mul(b, eps));
    return { yt, eps: tf.sub(eps, tf.mul(tf.mul(b, w), tf.sub(yt, xt))) };
  });
}

/**
 * One step of DDAD's conditioned sampler (ddad.md §4): ε̃ from conditionedEpsilon, x̂_0 =
 * (x_t − √(1 − ᾱ_t)·ε̃)/√ᾱ_t (no clamp), x_{t'} = ddimUpdate(x̂_0, ε̃, η, z). The last step (t' = −1)
 * returns x̂_0 exactly (σ = 0 and √(1 − ᾱ_{−1}) = 0).
 */
export function conditionedDdimStep(
  s: NoiseSchedule,
  args: { xt: tf.Tensor; y: tf.Tensor; eps: tf.Tensor; t: number; tNext: number; w: number; eta: number; noise: tf.Tensor | null },
): { yt: tf.Tensor; epsHat: tf.Tensor; x0: tf.Tensor; xNext: tf.Tensor } {
  return tf.tidy(() => {
    const { yt, eps: epsHat } = conditionedEpsilon(s, args.xt, args.y, args.eps, args.t, args.w);
    const x0 = predictX0(s, args.xt, args.t, epsHat);
    const xNext = ddimUpdate(s, x0, epsHat, args.t, args.tNext, args.eta, args.noise);
    return { yt, epsHat, x0, xNext };
  });
}
