/**
 * Training kernels for the wasm backend (src/nn/kernels): every gradient computed on wasm (where the
 * conv backprop kernels are ours, built from forward convolutions) must match the cpu backend's own
 * reference kernels to a relative error of 1e-4. Shapes are small because cpu's kernels are naive.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { installSimdConvKernels, uninstallSimdConvKernels } from '../src/nn/kernels/conv2d-simd.js';
import {
  conv2dFilterGrad,
  conv2dInputGrad,
  depthwiseFilterGrad,
  depthwiseInputGrad,
  geometryFromConvInfo,
} from '../src/nn/kernels/conv-math.js';
import { isOurs } from '../src/nn/kernels/kernel-util.js';
import { Conv2d, ConvTranspose2d } from '../src/nn/layers/conv.js';
import { randn, relErr } from './helpers/numeric.js';

const TOL = 1e-4;
type Backend = 'cpu' | 'wasm';

interface GradResult {
  y: Float32Array;
  grads: Float32Array[];
}

type Fn = (...xs: tf.Tensor[]) => tf.Tensor;

/**
 * On `backend`: y = fn(inputs), then the gradients of sum(y ⊙ r) for a fixed random r (seeded by
 * y's size, so identical on every backend) with respect to every input.
 */
async function gradsOn(backend: Backend, fn: Fn, inputs: { data: Float32Array; shape: number[] }[]): Promise<GradResult> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.data, i.shape));
    const y = fn(...xs);
    const r = tf.tensor(randn(y.size, 7 + y.size), y.shape);
    const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(fn(...a), r)))(xs);
    return { y: y.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

function input(shape: number[], seed: number): { data: Float32Array; shape: number[] } {
  return { data: randn(shape.reduce((a, b) => a * b, 1), seed), shape };
}

async function expectSameGrads(fn: Fn, inputs: { data: Float32Array; shape: number[] }[], ref: Fn = fn): Promise<void> {
  const want = await gradsOn('cpu', ref, inputs);
  const got = await gradsOn('wasm', fn, inputs);
  expect(relErr(got.y, want.y)).toBeLessThanOrEqual(TOL);
  got.grads.forEach((g, i) => expect(relErr(g, want.grads[i]), `gradient of input ${i}`).toBeLessThanOrEqual(TOL));
}

/** Dilated filter with explicit zeros: conv(x, w, dilation d) == conv(x, dilateFilter(w, d)). Differentiable in w. */
function dilateFilter(w: tf.Tensor4D, d: number): tf.Tensor4D {
  const [kh, kw, ci, co] = w.shape;
  const z = tf.pad(tf.reshape(w, [kh, 1, kw, 1, ci, co]), [[0, 0], [0, d - 1], [0, 0], [0, d - 1], [0, 0], [0, 0]]);
  return tf.slice(tf.reshape<tf.Rank.R4>(z, [kh * d, kw * d, ci, co]), [0, 0, 0, 0], [(kh - 1) * d + 1, (kw - 1) * d + 1, ci, co]);
}

beforeAll(async () => {
  await initBackend('wasm');
  registerWasmTrainingKernels();
  registerWasmTrainingKernels(); // idempotent
  // The default wasm path: every gradient conv below runs on the SIMD GEMM (src/nn/simd), with
  // 2 threads so the threaded split is exercised too; minMacs 0 so even these small convolutions
  // take it. test/simd-conv.test.ts covers the engine's own geometry cases.
  await installSimdConvKernels(2, { minMacs: 0 });
});

afterAll(() => uninstallSimdConvKernels());

describe('registration', () => {
  it('registers the missing wasm kernels once, and keeps wasm native ones', () => {
    for (const k of ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput', 'UnsortedSegmentSum', 'Einsum', 'BatchMatMul']) {
      expect(isOurs(tf.getKernel(k, 'wasm')), k).toBe(true);
    }
    expect(isOurs(tf.getKernel('DepthwiseConv2dNative', 'wasm'))).toBe(false);
    expect(isOurs(tf.getKernel('Conv2D', 'wasm'))).toBe(true); // the SIMD GEMM conv (installed above)
    expect(tf.getKernel('Conv2DBackpropFilter', 'cpu')).toBeDefined();
    expect(isOurs(tf.getKernel('Conv2DBackpropFilter', 'cpu'))).toBe(false);
    expect(isOurs(tf.getGradient('Conv2D'))).toBe(true);
  });
});

describe('forward-conv gradient formulas on the cpu backend vs cpu native gradients', () => {
  // The formulas are backend-agnostic tf code; check them where the reference is tfjs' own kernels,
  // including shapes the layers never produce (stride 3, even kernels, tfjs 'same' asymmetry,
  // explicit asymmetric pads, unused trailing rows), both input-gradient algorithms.
  const pads = ['same', 'valid', [[0, 0], [2, 0], [1, 3], [0, 0]]] as const;
  const cases: { k: number; s: number; h: number; pad: (typeof pads)[number]; dw: boolean }[] = [];
  for (const k of [2, 3, 4]) {
    for (const s of [1, 2, 3]) {
      for (const pad of pads) cases.push({ k, s, h: 7 + k + s, pad, dw: (k + s) % 2 === 0 });
    }
  }
  it('matches on all cases', async () => {
    await tf.setBackend('cpu');
    for (const { k, s, h, pad, dw } of cases) {
      tf.tidy(() => {
        const x = tf.tensor4d(randn(2 * h * (h + 1) * 3, h), [2, h, h + 1, 3]);
        const w = tf.tensor4d(randn(k * k * 3 * 2, k), [k, k, 3, 2]);
        const $pad = typeof pad === 'string' ? pad : (pad as unknown as tf.backend_util.ExplicitPadding);
        const f = (a: tf.Tensor, b: tf.Tensor): tf.Tensor4D => (dw
          ? tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, s, $pad)
          : tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, s, $pad));
        const y = f(x, w);
        const r = tf.tensor4d(randn(y.size, 3), y.shape);
        const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), r)))([x, w]);
        const geo = geometryFromConvInfo(tf.backend_util.computeConv2DInfo(x.shape, w.shape, s, 1, $pad, undefined, dw));
        const label = JSON.stringify({ k, s, h, pad, dw });
        for (const polyphase of [true, false]) {
          const mx = dw ? depthwiseInputGrad(r, w, x.shape, geo, { polyphase }) : conv2dInputGrad(r, w, x.shape, geo, { polyphase });
          expect(relErr(mx.dataSync() as Float32Array, gx.dataSync() as Float32Array), `dx ${label} polyphase=${polyphase}`).toBeLessThanOrEqual(TOL);
        }
        const mw = dw ? depthwiseFilterGrad(x, r, w.shape, geo) : conv2dFilterGrad(x, r, w.shape, geo);
        expect(relErr(mw.dataSync() as Float32Array, gw.dataSync() as Float32Array), `dw ${label}`).toBeLessThanOrEqual(TOL);
      });
    }
  });
});

describe('conv2d gradients: wasm vs cpu', () => {
  const cases: { k: number; s: number; pad: 'same' | 'valid' | 'explicit'; h: number }[] = [];
  for (const k of [1, 3, 7]) {
    for (const s of [1, 2]) {
      for (const pad of ['same', 'valid', 'explicit'] as const) {
        for (const h of [9, 12]) cases.push({ k, s, pad, h });
      }
    }
  }
  it.each(cases)('k=$k stride=$s pad=$pad H=$h', async ({ k, s, pad, h }) => {
    // Explicit padding is applied with tf.pad (wasm rejects explicit pad arrays); asymmetric on purpose.
    const p = [k >> 1, (k >> 1) + 1, 1, k >> 1];
    const fn: Fn = (x, w) => pad === 'explicit'
      ? tf.conv2d(tf.pad(x as tf.Tensor4D, [[0, 0], [p[0], p[1]], [p[2], p[3]], [0, 0]]), w as tf.Tensor4D, s, 'valid')
      : tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, pad);
    await expectSameGrads(fn, [input([2, h, h + 1, 3], k * 100 + s * 10 + h), input([k, k, 3, 5], 17 + k)]);
  });

  it('dilation 2 (stride 1): matches cpu and an explicit zero-dilated filter', async () => {
    for (const pad of ['same', 'valid'] as const) {
      const fn: Fn = (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, pad, 'NHWC', 2);
      const ref: Fn = (x, w) => tf.conv2d(x as tf.Tensor4D, dilateFilter(w as tf.Tensor4D, 2), 1, pad);
      const ins = [input([2, 11, 10, 4], 5), input([3, 3, 4, 6], 6)];
      await expectSameGrads(fn, ins); // our dilated gradient on both backends
      await expectSameGrads(fn, ins, ref); // against cpu's native kernels on the undilated equivalent
    }
  });

  it('fused conv2d (bias + relu) gradient runs on wasm kernels', async () => {
    const fn: Fn = (x, w, b) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides: 2, pad: 'same', bias: b, activation: 'relu' });
    await expectSameGrads(fn, [input([2, 10, 10, 3], 1), input([3, 3, 3, 4], 2), input([4], 3)]);
  });
});

describe('grouped and depthwise conv via the Conv2d layer: wasm vs cpu', () => {
  async function layerGrads(backend: Backend, layer: Conv2d | ConvTranspose2d, wData: Float32Array, x: { data: Float32Array; shape: number[] }): Promise<GradResult> {
    await tf.setBackend(backend);
    layer.weight.assign(tf.tensor(wData, layer.weight.shape));
    return tf.tidy(() => {
      const xv = tf.variable(tf.tensor4d(x.data, x.shape as [number, number, number, number]));
      const y = layer.forward(xv);
      const r = tf.tensor(randn(y.size, 11), y.shape);
      const vars = [layer.weight, ...(layer.bias ? [layer.bias] : []), xv];
      const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.forward(xv), r)) as tf.Scalar, vars);
      const out = { y: y.dataSync() as Float32Array, grads: vars.map((v) => grads[v.name].dataSync() as Float32Array) };
      xv.dispose();
      return out;
    });
  }

  async function compareLayer(layer: Conv2d | ConvTranspose2d, xShape: number[]): Promise<void> {
    const wData = randn(layer.weight.size, layer.weight.size);
    const x = input(xShape, 99);
    const want = await layerGrads('cpu', layer, wData, x);
    const got = await layerGrads('wasm', layer, wData, x);
    expect(relErr(got.y, want.y)).toBeLessThanOrEqual(TOL);
    got.grads.forEach((g, i) => expect(relErr(g, want.grads[i]), `grad ${i}`).toBeLessThanOrEqual(TOL));
  }

  it.each([
    { name: 'groups 2, stride 1', cin: 4, cout: 6, k: 3, groups: 2, stride: 1, h: 10 },
    { name: 'groups 2, stride 2', cin: 4, cout: 6, k: 3, groups: 2, stride: 2, h: 11 },
    { name: 'depthwise m=1, stride 1', cin: 5, cout: 5, k: 3, groups: 5, stride: 1, h: 12 },
    { name: 'depthwise m=1, stride 2, 7x7', cin: 4, cout: 4, k: 7, groups: 4, stride: 2, h: 13 },
    { name: 'depthwise m=2, stride 1', cin: 3, cout: 6, k: 3, groups: 3, stride: 1, h: 9 },
    { name: 'depthwise m=2, stride 2', cin: 3, cout: 6, k: 5, groups: 3, stride: 2, h: 12 },
  ])('$name', async ({ cin, cout, k, groups, stride, h }) => {
    const layer = new Conv2d(cin, cout, k, { stride, padding: k >> 1, groups });
    await compareLayer(layer, [2, h, h + 1, cin]);
    layer.dispose();
  });

  it('depthwise dilation 2: wasm vs cpu vs explicit zero-dilated filter', async () => {
    const fn: Fn = (x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same', 'NHWC', 2);
    const ref: Fn = (x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, dilateFilter(w as tf.Tensor4D, 2), 1, 'same');
    const ins = [input([2, 10, 9, 3], 21), input([3, 3, 3, 2], 22)];
    await expectSameGrads(fn, ins);
    await expectSameGrads(fn, ins, ref);
  });

  it('depthwise with tfjs same padding (asymmetric at stride 2)', async () => {
    const fn: Fn = (x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same');
    await expectSameGrads(fn, [input([2, 12, 11, 4], 31), input([3, 3, 4, 2], 32)]);
  });

  it('ConvTranspose2d stride 2, padding 1, outputPadding 1', async () => {
    for (const k of [3, 4]) {
      const layer = new ConvTranspose2d(4, 3, k, { stride: 2, padding: 1, outputPadding: 1 });
      await compareLayer(layer, [2, 7, 8, 4]);
      layer.dispose();
    }
  });

  it('conv2dTranspose with same padding, stride 2 (forward is our Conv2DBackpropInput kernel)', async () => {
    const fn: Fn = (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 14, 16, 3], 2, 'same');
    await expectSameGrads(fn, [input([2, 7, 8, 5], 41), input([3, 3, 3, 5], 42)]);
  });
});

describe('gather gradient (UnsortedSegmentSum) and einsum: wasm vs cpu', () => {
  it('gather along axis 0 and 1 with repeated indices', async () => {
    for (const axis of [0, 1]) {
      const idx = axis === 0 ? [3, 0, 3, 5, 1, 3] : [2, 2, 0, 1];
      const fn: Fn = (x) => tf.gather(x, tf.tensor1d(idx, 'int32'), axis);
      await expectSameGrads(fn, [input([6, 4, 3], 50 + axis)]);
    }
  });

  it('unsortedSegmentSum forward drops out-of-range ids like TensorFlow', async () => {
    const run = async (b: Backend) => {
      await tf.setBackend(b);
      return tf.tidy(() => tf.unsortedSegmentSum(tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]]), tf.tensor1d([1, 1, 0, 2], 'int32'), 3).arraySync());
    };
    expect(await run('wasm')).toEqual(await run('cpu'));
    await tf.setBackend('wasm');
    const dropped = tf.tidy(() => tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3]), tf.tensor1d([0, -1, 5], 'int32'), 2).arraySync());
    expect(dropped).toEqual([1, 0]);
  });

  // Each einsum is checked (value and gradients, ours on wasm) against the same contraction written
  // with tfjs' native ops on cpu; tfjs-core itself has no einsum gradient.
  const T = (t: tf.Tensor): tf.Tensor2D => t as tf.Tensor2D;
  it.each([
    ['ij,jk->ik', [[3, 4], [4, 5]], (a: tf.Tensor, b: tf.Tensor) => tf.matMul(T(a), T(b))],
    ['bij,bjk->bik', [[2, 3, 4], [2, 4, 5]], (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D)],
    ['bhqd,bhkd->bhqk', [[2, 2, 3, 4], [2, 2, 5, 4]], (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a as tf.Tensor4D, b as tf.Tensor4D, false, true)],
    ['ij,ij->i', [[3, 4], [3, 4]], (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(a, b), 1)],
    ['i,j->ij', [[3], [4]], (a: tf.Tensor, b: tf.Tensor) => tf.mul(tf.reshape(a, [-1, 1]), tf.reshape(b, [1, -1]))],
    ['ijk,jl->li', [[2, 3, 4], [3, 5]], (a: tf.Tensor, b: tf.Tensor) => tf.transpose(tf.matMul(T(tf.sum(a, 2)), T(b)))],
    ['ij->ji', [[3, 4]], (a: tf.Tensor) => tf.transpose(a)],
    ['ijk->k', [[2, 3, 4]], (a: tf.Tensor) => tf.sum(a, [0, 1])],
    ['ij->', [[3, 4]], (a: tf.Tensor) => tf.sum(a)],
  ] as [string, number[][], Fn][])('einsum %s (value and gradient)', async (eq, shapes, ref) => {
    const fn: Fn = (...xs) => tf.einsum(eq, ...xs);
    await expectSameGrads(fn, shapes.map((s, i) => input(s, 60 + i)), ref);
  });
});

describe('matMul (wasm BatchMatMul wrapper): values and gradients vs cpu', () => {
  it.each([
    { a: [6, 5], b: [5, 4], ta: false, tb: false },
    { a: [5, 6], b: [5, 4], ta: true, tb: false },
    { a: [6, 5], b: [4, 5], ta: false, tb: true },
    { a: [5, 6], b: [4, 5], ta: true, tb: true },
    { a: [3, 6, 5], b: [3, 5, 4], ta: false, tb: false },
    { a: [2, 3, 6, 5], b: [2, 3, 4, 5], ta: false, tb: true },
  ])('a=$a b=$b transposeA=$ta transposeB=$tb', async ({ a, b, ta, tb }) => {
    const fn: Fn = (x, y) => tf.matMul(x, y, ta, tb);
    await expectSameGrads(fn, [input(a, a.length * 10 + a[0]), input(b, 3 + b[0])]);
  });

  // Batched A times a shared B: tfjs-core's MatMul gradient does not support this broadcast on any
  // backend, so only values are compared (this is the case the wrapper turns into one 2D product).
  it.each([
    { a: [3, 6, 5], b: [5, 4], ta: false, tb: false },
    { a: [3, 6, 5], b: [4, 5], ta: false, tb: true },
    { a: [3, 6, 5], b: [1, 5, 4], ta: false, tb: false },
    { a: [3, 5, 6], b: [5, 4], ta: true, tb: false },
  ])('broadcast values a=$a b=$b transposeA=$ta transposeB=$tb', async ({ a, b, ta, tb }) => {
    const run = async (be: Backend) => {
      await tf.setBackend(be);
      return tf.tidy(() => {
        const out = tf.matMul(tf.tensor(input(a, 1).data, a), tf.tensor(input(b, 2).data, b), ta, tb);
        return { shape: out.shape, data: out.dataSync() as Float32Array };
      });
    };
    const want = await run('cpu');
    const got = await run('wasm');
    expect(got.shape).toEqual(want.shape);
    expect(relErr(got.data, want.data)).toBeLessThanOrEqual(TOL);
  });
});

describe('memory', () => {
  it('tf.memory() is flat across repeated gradient calls on wasm', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor4d(randn(2 * 12 * 12 * 4, 1), [2, 12, 12, 4]);
    const w = tf.tensor4d(randn(3 * 3 * 4 * 6, 2), [3, 3, 4, 6]);
    const wd = tf.tensor4d(randn(3 * 3 * 4 * 2, 3), [3, 3, 4, 2]);
    const wt = tf.tensor4d(randn(4 * 4 * 3 * 4, 4), [4, 4, 3, 4]);
    const idx = tf.tensor1d([1, 1, 0], 'int32');
    const step = (): void => {
      const gs = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => {
        const a4 = a as tf.Tensor4D;
        const y1 = tf.conv2d(a4, b as tf.Tensor4D, 2, 'same');
        const y2 = tf.depthwiseConv2d(a4, c as tf.Tensor4D, 1, 'same', 'NHWC', 2);
        const y3 = tf.conv2dTranspose(a4, d as tf.Tensor4D, [2, 24, 24, 3], 2, 'same');
        const y4 = tf.gather(a, idx, 3);
        const y5 = tf.einsum('nhwc,nhwd->cd', a, a);
        return tf.addN([tf.sum(y1), tf.sum(y2), tf.sum(y3), tf.sum(y4), tf.sum(y5)]);
      })([x, w, wd, wt]);
      tf.dispose(gs);
    };
    step();
    const before = tf.memory();
    for (let i = 0; i < 3; i++) step();
    const after = tf.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numBytes).toBe(before.numBytes);
    tf.dispose([x, w, wd, wt, idx]);
  });
});
