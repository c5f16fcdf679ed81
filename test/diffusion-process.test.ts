/**
 * Diffusion core (src/models/diffusion): schedules against closed forms and the specs' reference
 * values (ddad.md §7.1, diffusionad.md §7.1), q(x_t|x_0) by Monte Carlo, x̂_0 / DDIM inversion,
 * the DDPM posterior on hand-computed numbers, DDAD's conditioned step (ddad.md §7.2–3) and
 * DiffusionAD's norm-guided step (diffusionad.md §7.2), the DDIM skip chain, the sinusoidal
 * timestep embedding. No leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { ConfigError } from '../src/errors.js';
import { Rng } from '../src/util/rng.js';
import {
  LINEAR_1E4_2E2_T1000,
  NoiseSchedule,
  conditionedDdimStep,
  conditionedEpsilon,
  ddimSigma,
  ddimStep,
  ddpmStep,
  gaussianNoise,
  posteriorCoefficients,
  posteriorMeanVariance,
  predictX0,
  qSample,
  skipSequence,
  timestepEmbedding,
} from '../src/models/diffusion/index.js';

const linear = NoiseSchedule.fromConfig(LINEAR_1E4_2E2_T1000);
const arr = (t: tf.Tensor): number[] => Array.from(t.dataSync());
const full = (v: number, shape = [2, 3, 3, 2]): tf.Tensor => tf.fill(shape, v);

beforeAll(async () => {
  await initBackend('wasm');
});

describe('noise schedules', () => {
  it('linear 1e-4..0.02, T=1000: ᾱ_t equals the specs’ reference values and the float64 product', () => {
    const ref: [number, number][] = [[0, 0.9999], [25, 0.990965], [200, 0.656347], [225, 0.588678], [250, 0.521423], [300, 0.394011], [400, 0.193572]];
    for (const [t, v] of ref) expect(Math.abs(linear.alphaBar(t) - v)).toBeLessThan(1e-6);
    expect(linear.alphaBar(999) / 4.04e-5).toBeCloseTo(1, 2);
    expect(linear.alphaBar(-1)).toBe(1);
    expect(linear.beta(0)).toBe(1e-4);
    expect(linear.beta(999)).toBe(0.02);
    // Closed form of the product, with each β_i = 1e-4 + i·(0.02 − 1e-4)/999 (np.linspace).
    let p = 1;
    for (let i = 0; i <= 617; i++) p *= 1 - (1e-4 + (i * (0.02 - 1e-4)) / 999);
    expect(Math.abs(linear.alphaBar(617) - p) / p).toBeLessThan(1e-12);
    expect(() => linear.alphaBar(1000)).toThrow(ConfigError);
    expect(() => linear.alphaBar(-2)).toThrow(ConfigError);
  });

  it('cosine (Nichol & Dhariwal eq. 17): ᾱ_t = f((t+1)/T)/f(0) where β is not capped; β capped at 0.999', () => {
    const T = 1000;
    const s = NoiseSchedule.fromConfig({ kind: 'cosine', timesteps: T });
    const f = (u: number): number => Math.cos(((u + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    for (const t of [0, 1, 10, 250, 500, 900, 990]) expect(Math.abs(s.alphaBar(t) - f((t + 1) / T) / f(0)) / (f((t + 1) / T) / f(0))).toBeLessThan(1e-9);
    expect(s.beta(T - 1)).toBe(0.999); // f(1) = 0 would make β = 1
    for (let t = 1; t < T; t++) expect(s.alphaBars[t]).toBeLessThan(s.alphaBars[t - 1]);
  });

  it('bad configurations are ConfigErrors', () => {
    expect(() => NoiseSchedule.fromConfig({ kind: 'linear', timesteps: 0 })).toThrow(ConfigError);
    expect(() => NoiseSchedule.fromConfig({ kind: 'linear', timesteps: 10, betaStart: 0.5, betaEnd: 0.1 })).toThrow(ConfigError);
    expect(() => NoiseSchedule.fromConfig({ kind: 'quadratic' as 'linear', timesteps: 10 })).toThrow(/linear' or 'cosine/);
  });
});

describe('forward process and posterior', () => {
  it('q(x_t|x_0) sampling has mean √ᾱ_t·x_0 and variance 1 − ᾱ_t (Monte Carlo, 4 standard errors)', () => {
    const n = 200_000;
    const t = 300;
    const ab = linear.alphaBar(t);
    const before = tf.memory().numTensors;
    const v = tf.tidy(() => arr(qSample(linear, tf.fill([4, 250, 200, 1], 0.5), t, gaussianNoise([4, 250, 200, 1], new Rng('q-sample')))));
    expect(tf.memory().numTensors).toBe(before);
    const mean = v.reduce((a, b) => a + b, 0) / n;
    const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
    const sd = Math.sqrt(1 - ab);
    expect(Math.abs(mean - Math.sqrt(ab) * 0.5)).toBeLessThan((4 * sd) / Math.sqrt(n));
    expect(Math.abs(variance - (1 - ab))).toBeLessThan(4 * (1 - ab) * Math.sqrt(2 / n));
    // Seeded: the same stream gives the same noise.
    const a = tf.tidy(() => arr(gaussianNoise([5], new Rng(7))));
    const b = tf.tidy(() => arr(gaussianNoise([5], new Rng(7))));
    expect(a).toEqual(b);
    expect(() => tf.tidy(() => qSample(linear, tf.ones([5]), 3, tf.ones([5])))).toThrow(/NHWC/);
  });

  it('per-sample timesteps: each sample gets its own ᾱ_t', () => {
    const x = tf.tidy(() => arr(qSample(linear, tf.ones([2, 1, 1, 1]), [0, 999], tf.zeros([2, 1, 1, 1]))));
    expect(x[0]).toBeCloseTo(Math.sqrt(0.9999), 6);
    expect(x[1]).toBeCloseTo(Math.sqrt(linear.alphaBar(999)), 6);
    expect(() => tf.tidy(() => qSample(linear, tf.ones([2, 1, 1, 1]), [0], tf.zeros([2, 1, 1, 1])))).toThrow(ConfigError);
  });

  it('DDPM posterior (Ho et al. eq. 7) on a 3-step schedule, computed by hand', () => {
    const s = new NoiseSchedule(Float64Array.from([0.1, 0.2, 0.3])); // ᾱ = 0.9, 0.72, 0.504
    const p = posteriorCoefficients(s, 2);
    expect(p.coefX0).toBeCloseTo(0.5132226637644296, 12); // √0.72·0.3/0.496
    expect(p.coefXt).toBeCloseTo(0.47230807949504267, 12); // √0.7·0.28/0.496
    expect(p.variance).toBeCloseTo(0.16935483870967744, 12); // 0.28/0.496·0.3
    const p0 = posteriorCoefficients(s, 0); // ᾱ_{−1} = 1: the posterior at t = 0 is x_0 itself
    expect(p0.coefX0).toBeCloseTo(1, 12);
    expect(p0.coefXt).toBe(0);
    expect(p0.variance).toBe(0);
    const { mean, variance } = tf.tidy(() => {
      const r = posteriorMeanVariance(s, full(1, [1, 1, 1, 1]), full(2, [1, 1, 1, 1]), 2);
      return { mean: arr(r.mean), variance: arr(r.variance) };
    });
    expect(mean[0]).toBeCloseTo(1.457838822754515, 5);
    expect(variance[0]).toBeCloseTo(0.16935483870967744, 6);
  });

  it('DDPM step: equals Algorithm 2’s 1/√α_t·(x_t − β_t/√(1−ᾱ_t)·ε̂) + σ_t z, no noise at t = 0', () => {
    const s = new NoiseSchedule(Float64Array.from([0.1, 0.2, 0.3]));
    const [xt, eps, z] = [0.7, -0.4, 1.3];
    const got = tf.tidy(() => arr(ddpmStep(s, full(xt, [1, 1, 1, 1]), 2, full(eps, [1, 1, 1, 1]), full(z, [1, 1, 1, 1]))))[0];
    const want = (1 / Math.sqrt(0.7)) * (xt - (0.3 / Math.sqrt(1 - 0.504)) * eps) + Math.sqrt(0.16935483870967744) * z;
    expect(got).toBeCloseTo(want, 5);
    const large = tf.tidy(() => arr(ddpmStep(s, full(xt, [1, 1, 1, 1]), 2, full(eps, [1, 1, 1, 1]), full(z, [1, 1, 1, 1]), { variance: 'beta' })))[0];
    expect(large - (want - Math.sqrt(0.16935483870967744) * z)).toBeCloseTo(Math.sqrt(0.3) * z, 5);
    const atZero = tf.tidy(() => arr(ddpmStep(s, full(xt, [1, 1, 1, 1]), 0, full(eps, [1, 1, 1, 1]), full(z, [1, 1, 1, 1]))))[0];
    expect(atZero).toBeCloseTo((xt - Math.sqrt(0.1) * eps) / Math.sqrt(0.9), 5);
  });
});

describe('DDIM', () => {
  it('η = 0: x_0 → x_t (true ε) → one DDIM step recovers x_0 to 1e-5 (to t′ = −1) and q(x_0, 0, ε) at t′ = 0', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const shape = [2, 4, 4, 3];
      const x0 = tf.randomUniform(shape, -1, 1, 'float32', 11);
      const eps = gaussianNoise(shape, new Rng('ddim-eps'));
      for (const t of [10, 500, 999]) {
        const xt = qSample(linear, x0, t, eps);
        const toStart = ddimStep(linear, xt, eps, t, -1, 0, null);
        // At t = 999, 1/√ᾱ ≈ 157 amplifies float32 rounding of x_t: tolerance scales with it.
        const tol = 1e-5 * Math.max(1, 1 / Math.sqrt(linear.alphaBar(t)) / 10);
        expect(tf.max(tf.abs(tf.sub(toStart.x0, x0))).dataSync()[0]).toBeLessThan(tol);
        expect(tf.max(tf.abs(tf.sub(toStart.xNext, x0))).dataSync()[0]).toBeLessThan(tol);
        const toZero = ddimStep(linear, xt, eps, t, 0, 0, null).xNext;
        expect(tf.max(tf.abs(tf.sub(toZero, qSample(linear, x0, 0, eps)))).dataSync()[0]).toBeLessThan(tol);
      }
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('σ_t(η) of eq. 16 and the need for z when η > 0', () => {
    const at = linear.alphaBar(225);
    const an = linear.alphaBar(200);
    expect(ddimSigma(linear, 225, 200, 1)).toBeCloseTo(Math.sqrt(((1 - at / an) * (1 - an)) / (1 - at)), 12);
    expect(ddimSigma(linear, 225, 200, 0)).toBe(0);
    expect(ddimSigma(linear, 0, -1, 1)).toBe(0);
    expect(() => tf.tidy(() => ddimStep(linear, full(0), full(0), 225, 200, 1, null))).toThrow(/needs noise/);
  });

  it('skip sequence as DDAD’s range(0, 250, 25): 225→200, …, 25→0, 0→−1', () => {
    const pairs = skipSequence(250, 25);
    expect(pairs.length).toBe(10);
    expect(pairs[0]).toEqual({ t: 225, tNext: 200 });
    expect(pairs[8]).toEqual({ t: 25, tNext: 0 });
    expect(pairs[9]).toEqual({ t: 0, tNext: -1 });
    expect(skipSequence(5, 1).map((p) => p.t)).toEqual([4, 3, 2, 1, 0]);
    expect(skipSequence(10, 4)).toEqual([{ t: 8, tNext: 4 }, { t: 4, tNext: 0 }, { t: 0, tNext: -1 }]);
    expect(() => skipSequence(250, 0)).toThrow(ConfigError);
  });
});

describe('conditioned updates', () => {
  it('DDAD step (ddad.md §7.2): ε ≡ 0.1, x_t ≡ 0.2, y ≡ 0.5, w = 2, 225 → 200, z = 0', () => {
    const r = tf.tidy(() => {
      const o = conditionedDdimStep(linear, { xt: full(0.2), y: full(0.5), eps: full(0.1), t: 225, tNext: 200, w: 2, eta: 1, noise: full(0) });
      return { yt: arr(o.yt), eps: arr(o.epsHat), x0: arr(o.x0), x: arr(o.xNext) };
    });
    for (const v of r.yt) expect(Math.abs(v - 0.447761)).toBeLessThan(1e-5);
    for (const v of r.eps) expect(Math.abs(v + 0.2178)).toBeLessThan(1e-5);
    for (const v of r.x0) expect(Math.abs(v - 0.442728)).toBeLessThan(1e-5);
    for (const v of r.x) expect(Math.abs(v - 0.248153)).toBeLessThan(1e-5);
    const c1 = ddimSigma(linear, 225, 200, 1);
    expect(Math.abs(c1 - 0.293493)).toBeLessThan(1e-5);
    expect(Math.abs(Math.sqrt(1 - linear.alphaBar(200) - c1 * c1) - 0.507459)).toBeLessThan(1e-5);
  });

  it('DDAD §7.3: w = 0, η = 0 equals plain DDIM; ε ≡ 0 over the 10-step chain returns x_start/√ᾱ_225', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const xt = tf.randomNormal([1, 3, 3, 3], 0, 1, 'float32', 3);
      const eps = tf.randomNormal([1, 3, 3, 3], 0, 1, 'float32', 4);
      const c = conditionedDdimStep(linear, { xt, y: tf.randomNormal([1, 3, 3, 3], 0, 1, 'float32', 5), eps, t: 225, tNext: 200, w: 0, eta: 0, noise: null });
      const d = ddimStep(linear, xt, eps, 225, 200, 0, null);
      expect(tf.max(tf.abs(tf.sub(c.xNext, d.xNext))).dataSync()[0]).toBeLessThan(1e-6);

      const start = tf.randomNormal([1, 3, 3, 3], 0, 1, 'float32', 6);
      let x = start;
      let last: tf.Tensor = start;
      for (const { t, tNext } of skipSequence(250, 25)) {
        const o = conditionedDdimStep(linear, { xt: x, y: start, eps: tf.zerosLike(x), t, tNext, w: 0, eta: 1, noise: tf.zerosLike(x) });
        x = o.xNext;
        last = o.x0;
      }
      const want = tf.div(start, Math.sqrt(linear.alphaBar(225)));
      expect(tf.max(tf.abs(tf.sub(x, want))).dataSync()[0]).toBeLessThan(1e-5);
      expect(tf.max(tf.abs(tf.sub(last, x))).dataSync()[0]).toBe(0); // the last step returns x̂_0 exactly
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('DiffusionAD norm-guided step (diffusionad.md §7.2) from the same pieces', () => {
    const r = tf.tidy(() => {
      const x0 = full(0.6);
      const xs = qSample(linear, x0, 200, full(0.3));
      const xb = qSample(linear, x0, 400, full(-0.5));
      const x0b = predictX0(linear, xb, 400, full(-0.4), [-1, 1]);
      const g = conditionedEpsilon(linear, xs, x0b, full(0.25), 200, 1);
      const rec = predictX0(linear, xs, 200, g.eps, [-1, 1]);
      return [xs, xb, x0b, g.yt, g.eps, rec].map((t) => arr(t)[0]);
    });
    const want = [0.661957, -0.185026, 0.395891, 0.467287, 0.364119, 0.553604];
    r.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThan(1e-5));
  });
});

describe('sinusoidal timestep embedding', () => {
  it('[sin | cos] of t·10000^(−i/half), as the reference PositionalEmbedding; cos-first on request', () => {
    const e = tf.tidy(() => arr(timestepEmbedding([0, 3], 8)));
    const sin3 = [0.1411200080598672, 0.2955202066613396, 0.02999550020249566, 0.002999995500002025];
    const cos3 = [-0.9899924966004454, 0.955336489125606, 0.9995500337489875, 0.999995500003375];
    expect(e.slice(0, 8)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    e.slice(8).forEach((v, i) => expect(Math.abs(v - [...sin3, ...cos3][i])).toBeLessThan(1e-6));
    const c = tf.tidy(() => arr(timestepEmbedding([3], 8, { order: 'cos-sin' })));
    c.forEach((v, i) => expect(Math.abs(v - [...cos3, ...sin3][i])).toBeLessThan(1e-6));
    // max period: f_1 = maxPeriod^(−1/half)
    const m = tf.tidy(() => arr(timestepEmbedding([2], 4, { maxPeriod: 100 })));
    expect(m[1]).toBeCloseTo(Math.sin(2 / 10), 6);
    expect(() => timestepEmbedding([1], 7)).toThrow(ConfigError);
  });

  it('large t (999) in float32 stays within float32 rounding of the float64 value', () => {
    const e = tf.tidy(() => arr(timestepEmbedding([999], 128)));
    for (let i = 0; i < 64; i++) {
      const a = 999 * Math.exp((-Math.log(10000) * i) / 64);
      expect(Math.abs(e[i] - Math.sin(a))).toBeLessThan(2e-4);
      expect(Math.abs(e[64 + i] - Math.cos(a))).toBeLessThan(2e-4);
    }
  });
});
