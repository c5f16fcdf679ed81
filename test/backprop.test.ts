/**
 * src/nn/backprop.ts: engine.gradients that frees gradients and saved tensors as the backward pass
 * goes gives bit-identical gradients to tfjs' own, lowers the peak memory of a deep chain, leaks
 * nothing, leaves the caller's dy alone, and keeps higher-order gradients working.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { installEagerBackprop, uninstallEagerBackprop } from '../src/nn/backprop.js';
import { BatchNorm2d } from '../src/nn/layers/norm.js';
import { Conv2d } from '../src/nn/layers/conv.js';
import { ReLU, Sequential } from '../src/nn/layers/sequential.js';
import { checkpoint } from '../src/nn/checkpoint.js';
import { setInitSeed } from '../src/nn/init.js';
import { randn } from './helpers/numeric.js';

beforeAll(async () => {
  await initBackend('wasm');
  registerWasmTrainingKernels();
});

afterAll(() => uninstallEagerBackprop());

/** Runs f with tfjs' own engine.gradients, then with ours; returns both results. */
function both<T>(f: () => T): { tfjs: T; eager: T } {
  uninstallEagerBackprop();
  const tfjs = f();
  installEagerBackprop();
  try {
    return { tfjs, eager: f() };
  } finally {
    uninstallEagerBackprop();
  }
}

describe.each(['wasm', 'cpu'])('eager backprop on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  it('gives bit-identical gradients through convs, fused BN+ReLU, pooling, concat/split, shared inputs, a checkpoint', () => {
    setInitSeed(3);
    const block = new Sequential<tf.Tensor4D>([new Conv2d(3, 8, 3, { padding: 1 }), new BatchNorm2d(8), new ReLU()]);
    const head = new Conv2d(16, 4, 1);
    const x = tf.variable(tf.tensor4d(randn(2 * 8 * 8 * 3, 1), [2, 8, 8, 3]), true, `bp_x_${backend}`);
    const vars = [x, ...block.trainableVariables(), ...head.trainableVariables()];
    const loss = (): tf.Scalar => {
      const a = checkpoint((t: tf.Tensor4D) => block.forward(t), [x as tf.Tensor4D], block);
      const p = tf.maxPool(a, 2, 2, 'valid');
      const [p1, p2] = tf.split(p, 2, 3);
      const cat = tf.concat([p, tf.mul(p1, p2), tf.sub(p2, p1)], 3) as tf.Tensor4D; // 8 + 4 + 4 channels
      const h = head.forward(cat);
      return tf.add(tf.sum(tf.square(h)), tf.sum(tf.mul(x, x))) as tf.Scalar; // x used twice
    };
    const run = () => tf.tidy(() => {
      const { value, grads } = tf.variableGrads(loss, vars);
      return [value, ...vars.map((v) => grads[v.name])].map((t) => Array.from(t.dataSync()));
    });
    const { tfjs, eager } = both(run);
    expect(eager).toEqual(tfjs);
    block.dispose();
    head.dispose();
    x.dispose();
  });

  it('frees as it goes: a deep chain peaks lower; nothing leaks; the caller dy survives; the result is usable', async () => {
    // activations (1024 × 64 floats = 256 KB each) dominate the weights (16 KB each)
    const x = tf.tensor2d(randn(1024 * 64, 2), [1024, 64]);
    const ws = Array.from({ length: 12 }, (_, i) => tf.tensor2d(randn(64 * 64, 10 + i, 0.15), [64, 64]));
    const dy = tf.onesLike(x);
    const f = (t: tf.Tensor): tf.Tensor => ws.reduce((h, w) => tf.relu(tf.matMul(h, w)), t);
    /** Live bytes at the backward pass's last kernel (tfjs still holds every activation and its gradient there). */
    const measure = async (): Promise<{ peak: number; grad: number[] }> => {
      const before = tf.memory().numTensors;
      let grad: number[] = [];
      const prof = await tf.profile(() => {
        const [g] = tf.grads((t: tf.Tensor) => tf.sum(tf.mul(f(t), dy)))([x], undefined);
        grad = Array.from(g.dataSync().slice(0, 64));
        g.dispose();
      });
      expect(tf.memory().numTensors).toBe(before);
      return { peak: prof.kernels[prof.kernels.length - 1].totalBytesSnapshot, grad };
    };
    uninstallEagerBackprop();
    const tfjs = await measure();
    installEagerBackprop();
    const eager = await measure();
    // user-provided dy to tf.grads is left alone
    const [gx] = tf.grads((t: tf.Tensor) => f(t))([x], tf.onesLike(f(x)));
    expect(gx.isDisposed).toBe(false);
    gx.dispose();
    uninstallEagerBackprop();
    expect(eager.grad).toEqual(tfjs.grad);
    // 12 layers × (saved activations + their gradients) of 256 KB each vs what is left to free
    expect(tfjs.peak).toBeGreaterThan(8e6);
    expect(eager.peak).toBeLessThan(0.5 * tfjs.peak);
    expect(dy.isDisposed).toBe(false);
    tf.dispose([x, dy, ...ws]);
  });

  it('saved tensors share memory with what they save (wasm Identity refcounts instead of copying)', () => {
    const b = tf.backend() as unknown as { refCount?(d: tf.DataId): number };
    const x = tf.tensor1d([1, 2, 3]);
    const y = tf.clone(x);
    expect(y.dataId === x.dataId).toBe(backend === 'wasm' || backend === 'cpu');
    if (b.refCount) expect(b.refCount(x.dataId)).toBe(2);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    y.dispose();
  });

  it('keeps higher-order gradients (gradient of a gradient) working', () => {
    installEagerBackprop();
    try {
      const d2 = tf.tidy(() => {
        const g = (t: tf.Tensor) => tf.grad((u: tf.Tensor) => tf.sum(tf.mul(tf.mul(u, u), u)))(t);
        return Array.from(tf.grad((t: tf.Tensor) => tf.sum(g(t)))(tf.tensor1d([1, 2, -3])).dataSync());
      });
      expect(d2).toEqual([6, 12, -18]); // d/dx Σ 3x² = 6x
    } finally {
      uninstallEagerBackprop();
    }
  });
});
