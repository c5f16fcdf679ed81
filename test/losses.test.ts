import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DRAEM_SSIM, RIAD_SSIM, ssimLoss, ssimMap } from '../src/nn/losses/ssim.js';
import { gmsMap, msgmsLoss, msgmsMap } from '../src/nn/losses/msgms.js';
import { focalLoss, focalLossFromLogits } from '../src/nn/losses/focalLoss.js';
import {
  BorderMode, gaussianBlur2d, gaussianKernel1d, meanFilter2d, resizeBilinear, scipyGaussianRadius, separableByConv, separableByMatMul,
} from '../src/nn/layers/smoothing.js';

// Fixtures: test/fixtures/make_loss_fixtures.py (PyTorch restatements of the reference formulas,
// scikit-image structural_similarity, scipy.ndimage.gaussian_filter). Tensors stored NCHW.
const fx = (name: string): unknown => JSON.parse(readFileSync(join(__dirname, 'fixtures', 'losses', name), 'utf8'));

/** NCHW flat → NHWC tensor. */
function nhwc(data: number[], shape: number[]): tf.Tensor4D {
  return tf.tidy(() => tf.transpose(tf.tensor4d(data, shape as [number, number, number, number]), [0, 2, 3, 1]));
}
function toNchw(t: tf.Tensor): Float32Array {
  return tf.tidy(() => tf.transpose(t, [0, 3, 1, 2]).dataSync() as Float32Array);
}
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

interface SsimCase { name: string; variant: 'draem' | 'riad'; shape: number[]; x: number[]; y: number[]; map: number[]; loss: number; grad_x: number[]; skimage_interior_mean?: number }

describe('SSIM (draem.md §3, riad.md §3)', () => {
  const cases = fx('ssim.json') as SsimCase[];
  for (const c of cases) {
    it(`${c.name}: map, loss and input gradient match PyTorch to 1e-4`, () => {
      const opts = c.variant === 'draem' ? DRAEM_SSIM : RIAD_SSIM;
      const x = nhwc(c.x, c.shape);
      const y = nhwc(c.y, c.shape);
      const m = ssimMap(x, y, opts);
      expect(maxAbsDiff(toNchw(m), c.map)).toBeLessThan(1e-4);
      const loss = ssimLoss(x, y, opts);
      expect(Math.abs(loss.dataSync()[0] - c.loss)).toBeLessThan(1e-5);
      const g = tf.grad((a: tf.Tensor) => ssimLoss(a as tf.Tensor4D, y, opts))(x);
      const gmax = Math.max(...c.grad_x.map(Math.abs));
      expect(maxAbsDiff(toNchw(g), c.grad_x) / gmax).toBeLessThan(1e-3);
      if (c.skimage_interior_mean !== undefined) {
        // scikit-image (gaussian_weights, σ 1.5, population covariance, data_range 1) agrees
        // wherever the window does not reach the border handling.
        const [n, ch, h, w] = c.shape;
        const interior = tf.tidy(() => tf.mean(tf.slice(m, [0, 5, 5, 0], [n, h - 10, w - 10, ch])).dataSync()[0]);
        expect(Math.abs(interior - c.skimage_interior_mean)).toBeLessThan(1e-4);
      }
      tf.dispose([x, y, m, loss, g]);
    });
  }

  it('SSIM loss of an image with itself is 0 (draem.md §7.2); range 2 for [-1,1] inputs', () => {
    const x = tf.randomUniform([1, 12, 12, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    expect(Math.abs(ssimLoss(x, x, DRAEM_SSIM).dataSync()[0])).toBeLessThan(1e-6);
    expect(Math.abs(ssimLoss(x, x, RIAD_SSIM).dataSync()[0])).toBeLessThan(1e-6);
  });
});

interface MsgmsCase { name: string; shape: number[]; scales: number; x: number[]; y: number[]; loss: number; map: number[]; grad_x: number[] }

describe('MSGMS (riad.md §3-4)', () => {
  for (const c of fx('msgms.json') as MsgmsCase[]) {
    it(`${c.name}: loss, map and input gradient match PyTorch`, () => {
      const x = nhwc(c.x, c.shape);
      const y = nhwc(c.y, c.shape);
      const loss = msgmsLoss(x, y, { numScales: c.scales });
      expect(Math.abs(loss.dataSync()[0] - c.loss)).toBeLessThan(1e-5);
      const m = msgmsMap(x, y, { numScales: c.scales });
      expect(m.shape).toEqual([c.shape[0], c.shape[2], c.shape[3], 1]);
      expect(maxAbsDiff(toNchw(m), c.map)).toBeLessThan(1e-4);
      const g = tf.grad((a: tf.Tensor) => msgmsLoss(a as tf.Tensor4D, y, { numScales: c.scales }))(x);
      const gmax = Math.max(...c.grad_x.map(Math.abs));
      expect(maxAbsDiff(toNchw(g), c.grad_x) / gmax).toBeLessThan(1e-3);
      tf.dispose([x, y, loss, m, g]);
    });
  }

  it('MSGMS(I, I) = 0 and flat vs gradient g gives GMS = c/(g²+c) (riad.md §7.4)', () => {
    const x = tf.randomUniform([1, 16, 16, 3], -1, 1, 'float32', 5) as tf.Tensor4D;
    expect(Math.abs(msgmsLoss(x, x).dataSync()[0])).toBeLessThan(1e-6);
    // A horizontal ramp of slope s has Prewitt responses gx = x[j−1] − x[j+1] = −2s and gy = 0
    // away from the border, so against a flat image GMS = c / (g² + c) with g = 2s.
    const s = 0.05;
    const ramp = tf.tidy(() => tf.mul(tf.range(0, 9), s).reshape([1, 1, 9, 1]).tile([1, 9, 1, 1]) as tf.Tensor4D);
    const flat = tf.zeros([1, 9, 9, 1]) as tf.Tensor4D;
    const center = gmsMap(flat, ramp).dataSync()[4 * 9 + 4];
    const g = 2 * s;
    expect(center).toBeCloseTo(0.0026 / (g * g + 0.0026), 4);
  });
});

interface FocalFx { shape: number[]; logits: number[]; probs: number[]; target: number[]; draem_loss: number; draem_grad_p: number[]; kornia_loss: number; kornia_grad_logits: number[]; spec_single: number }

describe('focal loss (draem.md §3)', () => {
  const f = fx('focal.json') as FocalFx;
  const [n, , h, w] = f.shape;
  it('DRAEM focal on softmax probabilities: value and gradient', () => {
    const p = nhwc(f.probs, f.shape);
    const t = tf.tensor3d(f.target, [n, h, w]);
    expect(Math.abs(focalLoss(p, t).dataSync()[0] - f.draem_loss)).toBeLessThan(1e-6);
    const g = tf.grad((a: tf.Tensor) => focalLoss(a as tf.Tensor4D, t))(p);
    expect(maxAbsDiff(toNchw(g), f.draem_grad_p)).toBeLessThan(1e-5);
    // mask given as [N,H,W,1] floats works the same
    expect(Math.abs(focalLoss(p, t.expandDims(3)).dataSync()[0] - f.draem_loss)).toBeLessThan(1e-6);
  });

  it('spec §7.2 single pixel P = (0.9, 0.1), target 0 ≈ 0.0010535', () => {
    const p = tf.tensor4d([0.9, 0.1], [1, 1, 1, 2]);
    const v = focalLoss(p, tf.zeros([1, 1, 1])).dataSync()[0];
    const pt = 0.9 * (1 - 1e-5) + 0.1 * 1e-5 + 1e-5;
    expect(v).toBeCloseTo(-((1 - pt) ** 2) * Math.log(pt), 7);
    expect(v).toBeCloseTo(f.spec_single, 7);
    expect(v).toBeCloseTo(0.0010535, 6);
  });

  it('kornia focal on logits (anomalib variant): value and gradient', () => {
    const l = nhwc(f.logits, f.shape);
    const t = tf.tensor3d(f.target, [n, h, w]);
    expect(Math.abs(focalLossFromLogits(l, t).dataSync()[0] - f.kornia_loss)).toBeLessThan(1e-6);
    const g = tf.grad((a: tf.Tensor) => focalLossFromLogits(a as tf.Tensor4D, t))(l);
    expect(maxAbsDiff(toNchw(g), f.kornia_grad_logits)).toBeLessThan(1e-5);
  });
});

interface SmoothFx {
  gaussian: { name: string; shape: number[]; sigma: number; mode: string; truncate: number; x: number[]; y: number[] }[];
  mean21: { shape: number[]; x: number[]; y: number[] };
}

describe('smoothing (patchcore.md §4, draem.md §4)', () => {
  const s = fx('smoothing.json') as SmoothFx;
  const scipyToOurs: Record<string, BorderMode> = { reflect: 'symmetric', mirror: 'reflect', nearest: 'edge', wrap: 'wrap', constant: 'constant' };
  for (const c of s.gaussian) {
    it(`gaussianBlur2d matches scipy.ndimage.gaussian_filter: ${c.name}`, () => {
      const x = tf.tensor4d(c.x, c.shape as [number, number, number, number]);
      const y = gaussianBlur2d(x, c.sigma, { mode: scipyToOurs[c.mode], truncate: c.truncate });
      expect(y.shape).toEqual(c.shape);
      expect(maxAbsDiff(y.dataSync(), c.y)).toBeLessThan(1e-5);
      tf.dispose([x, y]);
    });
  }

  it('PatchCore kernel: σ = 4 → 33 taps, default mode is scipy reflect', () => {
    expect(scipyGaussianRadius(4)).toBe(16);
    expect(gaussianKernel1d(4).length).toBe(33);
    const k = gaussianKernel1d(4);
    expect(k.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    const c = s.gaussian.find((g) => g.name === 'reflect_s4');
    if (!c) throw new Error('fixture missing');
    const y = gaussianBlur2d(tf.tensor4d(c.x, c.shape as [number, number, number, number]), 4);
    expect(maxAbsDiff(y.dataSync(), c.y)).toBeLessThan(1e-5);
  });

  it('meanFilter2d(21) = avg_pool2d(21, 1, 10) with padding counted', () => {
    const x = tf.tensor4d(s.mean21.x, s.mean21.shape as [number, number, number, number]);
    expect(maxAbsDiff(meanFilter2d(x, 21).dataSync(), s.mean21.y)).toBeLessThan(1e-6);
  });

  it('DRAEM image-score checks (draem.md §7.4): centred 21×21 square → 1, corner hot pixel → 1/441', () => {
    const sq = tf.tidy(() => tf.pad(tf.ones([1, 21, 21, 1]), [[0, 0], [20, 19], [20, 19], [0, 0]]) as tf.Tensor4D);
    expect(tf.max(meanFilter2d(sq, 21)).dataSync()[0]).toBe(1);
    const hot = tf.buffer([1, 60, 60, 1]);
    hot.set(1, 0, 0, 0, 0);
    expect(tf.max(meanFilter2d(hot.toTensor() as tf.Tensor4D, 21)).dataSync()[0]).toBeCloseTo(1 / 441, 9);
  });

  it('resizeBilinear: forward = tf.image.resizeBilinear, gradient = finite differences (both backends, non-square)', async () => {
    for (const backend of ['wasm', 'cpu']) {
      await tf.setBackend(backend);
      for (const ac of [false, true]) {
        const x = tf.randomUniform([1, 3, 5, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
        const wts = tf.randomUniform([1, 6, 10, 2], 0, 1, 'float32', 2);
        const f = (a: tf.Tensor) => tf.sum(tf.mul(resizeBilinear(a as tf.Tensor4D, [6, 10], ac), wts));
        const ref = tf.image.resizeBilinear(x, [6, 10], ac, !ac);
        expect(maxAbsDiff(resizeBilinear(x, [6, 10], ac).dataSync(), ref.dataSync())).toBe(0);
        const g = tf.grad(f)(x).dataSync();
        // The op is linear: f(x + e_i) − f(x) is exactly the i-th gradient component (up to rounding).
        const base = f(x).dataSync()[0];
        const xs = x.dataSync() as Float32Array;
        for (const i of [0, 7, 16, 29]) {
          const b = tf.buffer(x.shape, 'float32', xs.slice());
          const loc = b.indexToLoc(i);
          b.set(b.get(...loc) + 1, ...loc);
          expect(Math.abs(f(b.toTensor()).dataSync()[0] - base - g[i])).toBeLessThan(1e-4);
        }
      }
    }
    await tf.setBackend('wasm');
  });

  it('no tensors leak from losses and filters', () => {
    const x = tf.randomUniform([1, 16, 16, 3]) as tf.Tensor4D;
    const y = tf.randomUniform([1, 16, 16, 3]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.dispose([ssimLoss(x, y, DRAEM_SSIM), msgmsLoss(x, y), msgmsMap(x, y), gaussianBlur2d(x, 4), meanFilter2d(x, 5)]);
      tf.dispose(tf.grad((a: tf.Tensor) => tf.add(ssimLoss(a as tf.Tensor4D, y, DRAEM_SSIM), msgmsLoss(a as tf.Tensor4D, y)))(x));
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each([
    { shape: [2, 19, 23, 1] as [number, number, number, number], kh: 11, kw: 11 },
    { shape: [1, 17, 12, 3] as [number, number, number, number], kh: 5, kw: 3 },
  ])('separable filter: banded-matrix matMuls equal the 1-channel convolutions, values and gradients ($shape)', ({ shape, kh, kw }) => {
    const x = tf.randomUniform(shape) as tf.Tensor4D;
    const th = gaussianKernel1d(1.5, kh);
    const tw = gaussianKernel1d(2, kw);
    const r = tf.randomNormal([shape[0], shape[1] - kh + 1, shape[2] - kw + 1, shape[3]]);
    const run = (f: typeof separableByConv) => tf.tidy(() => {
      const y = f(x, th, tw);
      const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, th, tw), r)))(x);
      return [y.shape, y.dataSync(), g.dataSync()] as const;
    });
    const [shapeA, ya, ga] = run(separableByMatMul);
    const [shapeB, yb, gb] = run(separableByConv);
    expect(shapeA).toEqual(shapeB);
    for (let i = 0; i < ya.length; i++) expect(ya[i]).toBeCloseTo(yb[i], 5);
    for (let i = 0; i < ga.length; i++) expect(ga[i]).toBeCloseTo(gb[i], 5);
    tf.dispose([x, r]);
  });
});
