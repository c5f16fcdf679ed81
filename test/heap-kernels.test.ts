/**
 * SIMD kernels on tfjs-backend-wasm's heap (src/nn/simd/heapKernels.ts): Sum/Mean over leading
 * axes, MaxPoolGrad, and the fused ChannelDot / ChannelAffine / AdamStep behind fused-ops.ts,
 * against the cpu backend or the op chains they replace; no leaks; uninstall restores tfjs' own.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { heapKernelsInstalled, installHeapKernels, uninstallHeapKernels } from '../src/nn/simd/heapKernels.js';
import { adamStep, affineReluGrad, channelAffine, channelDot } from '../src/nn/kernels/fused-ops.js';
import { ReLU, Sequential } from '../src/nn/layers/sequential.js';
import { BatchNorm2d } from '../src/nn/layers/norm.js';
import { Adam, AdamW } from '../src/train/optimizers/adam.js';
import { randn, relErr } from './helpers/numeric.js';

const data = (t: tf.Tensor): Float32Array => t.dataSync() as Float32Array;

/** Runs f on the cpu backend with the same input values; returns plain arrays. */
async function onCpu(f: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend('cpu');
  try {
    return tf.tidy(() => [f()].flat().map((t) => data(t).slice()));
  } finally {
    await tf.setBackend('wasm');
  }
}

beforeAll(async () => {
  await initBackend('wasm');
  registerWasmTrainingKernels();
  expect(installHeapKernels()).toBe(true);
});

afterAll(() => {
  uninstallHeapKernels();
});

describe('Sum and Mean over leading axes', () => {
  const cases: { shape: number[]; axis: number[]; keepDims: boolean }[] = [
    { shape: [4, 9, 11, 6], axis: [0, 1, 2], keepDims: false },
    { shape: [2, 70, 3, 33], axis: [0, 1, 2], keepDims: true },
    { shape: [130, 5], axis: [0], keepDims: false },
    { shape: [3, 200, 1], axis: [0, 1], keepDims: false },
    { shape: [2, 4, 4, 8], axis: [1, 0], keepDims: false },
    // not leading axes: tfjs' own kernel
    { shape: [2, 4, 4, 8], axis: [1, 2], keepDims: false },
    { shape: [2, 4, 4, 8], axis: [0, 1, 2, 3], keepDims: false },
  ];
  it.each(cases)('$shape over $axis (keepDims $keepDims) equals the cpu backend', async ({ shape, axis, keepDims }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const xs = randn(size, 11, 2, 1);
    const f = () => {
      const x = tf.tensor(xs, shape);
      return [tf.sum(x, axis, keepDims), tf.mean(x, axis, keepDims)];
    };
    const want = await onCpu(f);
    tf.tidy(() => {
      const [s, m] = f();
      expect(s.shape).toEqual(tf.sum(tf.zeros(shape), axis, keepDims).shape);
      expect(relErr(data(s), want[0])).toBeLessThan(1e-6);
      expect(relErr(data(m), want[1])).toBeLessThan(1e-6);
    });
  });

  it('is more accurate than a plain float32 running sum over 2^20 rows', () => {
    // Σ of 2^20 copies of 0.1: a sequential float32 sum drifts by ~1e-3 relative; block partials stay close.
    const got = tf.tidy(() => data(tf.sum(tf.fill([1 << 20, 4], 0.1), [0])));
    for (const v of got) expect(Math.abs(v / ((1 << 20) * 0.1) - 1)).toBeLessThan(1e-5);
  });

  it('keeps int32 sums exact (tfjs kernel)', () => {
    const got = tf.tidy(() => Array.from(tf.sum(tf.tensor2d([[1, 2], [3, 4]], [2, 2], 'int32'), [0]).dataSync()));
    expect(got).toEqual([4, 6]);
  });
});

describe('Concat and SplitV', () => {
  it.each([0, 1, 2, 3, -1])('concat and split along axis %i equal the cpu backend, also int32, bool and gradients', async (axis) => {
    const shapes = [[2, 3, 4, 5], [2, 3, 4, 5], [2, 3, 4, 5]].map((s, i) => s.map((d, j) => (j === (axis + 4) % 4 ? d + i : d)));
    const f = () => {
      const xs = shapes.map((sh, i) => tf.tensor(randn(sh.reduce((a, b) => a * b, 1), 40 + i), sh));
      const cat = tf.concat(xs, axis);
      const parts = tf.split(cat, [shapes[0][(axis + 4) % 4], -1, shapes[2][(axis + 4) % 4]], axis);
      const ints = tf.concat(xs.map((t) => tf.cast(tf.mul(t, 10), 'int32')), axis);
      const bools = tf.concat(xs.map((t) => tf.greater(t, 0)), axis);
      const w = tf.tensor(randn(cat.size, 50), cat.shape);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.concat([a, b], axis), tf.slice(w, 0, tf.concat([a, b], axis).shape))))(xs.slice(0, 2));
      return [cat, ...parts, tf.cast(ints, 'float32'), tf.cast(bools, 'float32'), ...g];
    };
    const want = await onCpu(f);
    tf.tidy(() => {
      const got = f();
      got.forEach((t, i) => expect(Array.from(data(t)), `output ${i}`).toEqual(Array.from(want[i])));
    });
  });
});

describe('MaxPoolGrad', () => {
  // tfjs-wasm 4.22's own MaxPoolGrad loses gradient (heapKernels.ts); ours must equal the cpu backend exactly.
  const cases: { shape: [number, number, number, number]; k: number; s: number; pad: 'valid' | 'same'; relu: boolean }[] = [
    { shape: [2, 8, 8, 8], k: 2, s: 2, pad: 'valid', relu: false },
    { shape: [2, 8, 8, 8], k: 2, s: 2, pad: 'valid', relu: true },
    { shape: [1, 9, 7, 6], k: 2, s: 2, pad: 'valid', relu: true },
    { shape: [1, 10, 10, 3], k: 3, s: 2, pad: 'same', relu: false },
    { shape: [2, 6, 6, 5], k: 2, s: 1, pad: 'valid', relu: true },
  ];
  it.each(cases)('$shape k$k s$s $pad relu $relu', async ({ shape, k, s, pad, relu }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const xs = randn(size, 3);
    const f = () => {
      const x0 = tf.tensor4d(xs, shape);
      const x = relu ? tf.relu(x0) : x0;
      const y = tf.maxPool(x, k, s, pad);
      const w = tf.tensor(randn(y.size, 4), y.shape);
      return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, k, s, pad), w)))(x);
    };
    const want = await onCpu(f);
    tf.tidy(() => {
      const got = data(f() as tf.Tensor);
      // Overlapping windows add several gradients into one input in another order than the cpu backend.
      if (s < k) expect(relErr(got, want[0])).toBeLessThan(1e-6);
      else expect(Array.from(got)).toEqual(Array.from(want[0]));
    });
  });
});

describe('fused ops', () => {
  it('channelDot and channelAffine equal their op chains', () => {
    tf.tidy(() => {
      const shape = [3, 5, 7, 10];
      const a = tf.tensor(randn(1050, 1), shape);
      const b = tf.tensor(randn(1050, 2), shape);
      const [u, v, w] = [3, 4, 5].map((s) => tf.tensor1d(randn(10, s)));
      expect(relErr(data(channelDot(a, b)), data(tf.sum(tf.mul(a, b), [0, 1, 2])))).toBeLessThan(1e-6);
      expect(relErr(data(channelDot(a, b, true)), data(tf.mean(tf.mul(a, b), [0, 1, 2])))).toBeLessThan(1e-6);
      expect(data(channelAffine(a, u, b, v, w))).toEqual(data(tf.add(tf.add(tf.mul(a, u), tf.mul(b, v)), w)));
      // same values; −0 and +0 may differ (v + 0 maps −0 to +0)
      const values = (t: tf.Tensor): number[] => Array.from(data(t), (x) => x + 0);
      expect(values(channelAffine(a, u, b, v, w, true))).toEqual(values(tf.relu(tf.add(tf.add(tf.mul(a, u), tf.mul(b, v)), w))));
      expect(values(affineReluGrad(b, a, u, w))).toEqual(values(tf.mul(b, tf.step(tf.add(tf.mul(a, u), w)))));
    });
  });

  it('adamStep is bit-identical to the op chain (Adam with L2, AdamW)', () => {
    tf.tidy(() => {
      const n = 1003;
      const [p, g] = [1, 2].map((s) => tf.tensor1d(randn(n, s)));
      const m = tf.tensor1d(randn(n, 3, 0.1));
      const v = tf.abs(tf.tensor1d(randn(n, 4, 0.01)));
      for (const attrs of [
        { beta1: 0.9, beta2: 0.999, bc2Sqrt: Math.sqrt(1 - 0.999 ** 3), stepSize: 1e-3 / (1 - 0.9 ** 3), eps: 1e-8, weightDecay: 1e-5, decay: 1 },
        { beta1: 0.5, beta2: 0.99, bc2Sqrt: Math.sqrt(1 - 0.99), stepSize: 2e-4 / 0.5, eps: 1e-6, weightDecay: 0, decay: 1 - 2e-4 * 0.01 },
      ]) {
        const fusedOut = adamStep(p, g, m, v, attrs).map(data);
        uninstallHeapKernels();
        const chain = adamStep(p, g, m, v, attrs).map(data);
        installHeapKernels();
        fusedOut.forEach((t, i) => expect(Array.from(t)).toEqual(Array.from(chain[i])));
      }
    });
  });

  it('Adam and AdamW optimizers take identical steps with and without the heap kernels, and leak nothing', () => {
    const run = (Opt: typeof Adam): Float32Array => {
      const w = tf.variable(tf.tensor2d(randn(64, 7), [8, 8]));
      const x = tf.tensor2d(randn(32, 8), [4, 8]);
      const opt = new Opt([w], { lr: 1e-2, weightDecay: 0.01 });
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        opt.minimize(() => tf.sum(tf.square(tf.matMul(x, w))) as tf.Scalar);
        if (i > 0) expect(tf.memory().numTensors).toBe(before + opt.params.length * 2);
      }
      const out = data(w).slice();
      opt.dispose?.();
      tf.dispose([w, x]);
      return out;
    };
    for (const Opt of [Adam, AdamW]) {
      expect(heapKernelsInstalled()).toBe(true);
      const fusedW = run(Opt);
      uninstallHeapKernels();
      const chainW = run(Opt);
      installHeapKernels();
      expect(Array.from(fusedW)).toEqual(Array.from(chainW));
    }
  });

  it.each([false, true])('BatchNorm2d training forward and backward (with ReLU: %s) match the cpu backend; no leak', async (withRelu) => {
    const shape: [number, number, number, number] = [2, 6, 5, 12];
    const xs = randn(720, 8, 2, 3);
    const rs = randn(720, 9);
    const f = () => {
      const bn = new BatchNorm2d(12);
      bn.weight.assign(tf.tensor1d(randn(12, 10, 0.5, 1)));
      const x = tf.tensor4d(xs, shape);
      const r = tf.tensor4d(rs, shape);
      const layer = withRelu ? new Sequential<tf.Tensor4D>([bn, new ReLU()]) : bn;
      const { value, grads } = tf.valueAndGrads((t: tf.Tensor) => tf.sum(tf.mul(layer.forward(t as tf.Tensor4D), r)))([x]);
      const out = [value, grads[0], data(bn.runningVar) && tf.clone(bn.runningVar)];
      bn.dispose();
      return out;
    };
    const want = await onCpu(f);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const got = f().map(data);
      got.forEach((g, i) => expect(relErr(g, want[i]), ['value', 'dx', 'running_var'][i]).toBeLessThan(3e-5));
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});
