/**
 * New nn blocks against PyTorch (test/fixtures/make_blocks_fixtures.py → fixtures/blocks/):
 * BatchNorm1d (train steps with running statistics, eval), GELU (erf, tanh), SiLU, LeakyReLU,
 * timm-style Attention (forward and gradients, with and without a mask); seeded Dropout
 * (inverted scaling, reproducible, resumable, eval identity). No leaks.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { installEagerBackprop } from '../src/nn/backprop.js';
import { Attention, BatchNorm1d, Dropout, GELU, LeakyReLU, SiLU, gelu, setInitSeed } from '../src/nn/index.js';
import { checkpoint } from '../src/nn/checkpoint.js';
import { TrainingError, ConfigError } from '../src/errors.js';
import { relErr } from './helpers/numeric.js';

const FIX = join(import.meta.dirname, 'fixtures', 'blocks');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const load = (name: string): any => JSON.parse(readFileSync(join(FIX, name), 'utf8'));
const arr = (t: tf.Tensor): number[] => Array.from(t.dataSync());
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
/** torch Linear [out, in] gradient/weight → ours [in, out], flattened. */
const torchLinear = (v: number[], out: number, inp: number): number[] => {
  const r: number[] = new Array(v.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) r[i * out + o] = v[o * inp + i];
  return r;
};

beforeAll(async () => {
  await initBackend('wasm');
  registerWasmTrainingKernels();
  installEagerBackprop();
});

describe('BatchNorm1d (torch.nn.BatchNorm1d)', () => {
  const fx = load('batchnorm1d.json');
  it.each(['nc', 'ncl'])('%s: train-step outputs and parameter gradients equal torch; no leak', (name) => {
    const f = fx[name];
    const shape = f.shape as number[];
    const bn = new BatchNorm1d(shape[1]);
    tf.tidy(() => {
      bn.weight.assign(tf.tensor1d(f.weight));
      bn.bias.assign(tf.tensor1d(f.bias));
    });
    const before = tf.memory().numTensors;
    for (const s of f.steps) {
      tf.tidy(() => {
        const x = tf.tensor(s.x, shape);
        const r = tf.tensor(s.r, shape);
        let y: number[] = [];
        const { value, grads } = tf.variableGrads(() => {
          const out = bn.call(x);
          y = arr(out);
          return tf.sum(tf.mul(out, r)) as tf.Scalar;
        }, [bn.weight, bn.bias]);
        void value;
        expect(maxAbs(y, s.y)).toBeLessThan(2e-5);
        expect(relErr(arr(grads[bn.weight.name]), s.dweight)).toBeLessThan(1e-5);
        expect(relErr(arr(grads[bn.bias.name]), s.dbias)).toBeLessThan(1e-5);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
    bn.dispose();
  });

  it.each(['nc', 'ncl'])('%s: dx, running statistics and eval match torch step by step', (name) => {
    const f = fx[name];
    const shape = f.shape as number[];
    const bn = new BatchNorm1d(shape[1]);
    tf.tidy(() => {
      bn.weight.assign(tf.tensor1d(f.weight));
      bn.bias.assign(tf.tensor1d(f.bias));
    });
    for (const s of f.steps) {
      tf.tidy(() => {
        const x = tf.tensor(s.x, shape);
        const r = tf.tensor(s.r, shape);
        const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(bn.call(t), r)))(x);
        expect(relErr(arr(dx), s.dx)).toBeLessThan(1e-4);
        expect(relErr(arr(bn.runningMean), s.running_mean)).toBeLessThan(1e-6);
        expect(relErr(arr(bn.runningVar), s.running_var)).toBeLessThan(1e-6);
      });
    }
    expect(bn.numBatchesTracked.dataSync()[0]).toBe(f.num_batches_tracked);
    bn.eval();
    tf.tidy(() => {
      expect(maxAbs(arr(bn.call(tf.tensor(f.eval.x, shape))), f.eval.y)).toBeLessThan(2e-5);
    });
    expect(bn.namedEntries().map(([n]) => n)).toEqual(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    bn.dispose();
  });

  it('rejects a wrong channel count and a single value per channel in training', () => {
    const bn = new BatchNorm1d(3);
    expect(() => bn.call(tf.zeros([2, 4]))).toThrow(ConfigError);
    expect(() => bn.call(tf.zeros([1, 3]))).toThrow(TrainingError);
    bn.dispose();
  });
});

describe('activations', () => {
  const fx = load('activations.json');
  const cases: [string, () => { call(x: tf.Tensor): tf.Tensor; dispose(): void }][] = [
    ['gelu', () => new GELU()],
    ['gelu_tanh', () => new GELU('tanh')],
    ['silu', () => new SiLU()],
    ['leaky_relu_0.2', () => new LeakyReLU(0.2)],
  ];
  it.each(cases)('%s: values and gradients equal torch', (name, make) => {
    const layer = make();
    tf.tidy(() => {
      const x = tf.tensor1d(fx.x);
      const { value, grad } = tf.valueAndGrad((t: tf.Tensor) => tf.sum(layer.call(t)))(x);
      void value;
      expect(maxAbs(arr(layer.call(x)), fx[name].y)).toBeLessThan(2e-6 * 6);
      expect(maxAbs(arr(grad), fx[name].dx)).toBeLessThan(1e-5);
    });
    layer.dispose();
  });

  it('the exact and tanh GELU differ where they should (the test tells them apart)', () => {
    tf.tidy(() => {
      const x = tf.tensor1d(fx.x);
      expect(maxAbs(arr(gelu(x)), fx.gelu_tanh.y)).toBeGreaterThan(1e-4);
    });
    expect(() => new GELU('fast' as 'tanh')).toThrow(ConfigError);
  });
});

describe('Dropout', () => {
  it('zeroes about p of the values, scales the rest by 1/(1-p), identity in eval', () => {
    const d = new Dropout(0.25, { seed: 'a' });
    tf.tidy(() => {
      const y = arr(d.call(tf.ones([100, 100])));
      const zeros = y.filter((v) => v === 0).length;
      expect(Math.abs(zeros / 1e4 - 0.25)).toBeLessThan(0.02); // 5σ ≈ 0.022
      expect(y.filter((v) => v !== 0).every((v) => Math.abs(v - 1 / 0.75) < 1e-6)).toBe(true);
      d.eval();
      expect(arr(d.call(tf.tensor1d([1, 2, 3])))).toEqual([1, 2, 3]);
    });
  });

  it('is reproducible for a seed, differs across calls, and resumes from its state', () => {
    const a = new Dropout(0.5, { seed: 7 });
    const b = new Dropout(0.5, { seed: 7 });
    const c = new Dropout(0.5, { seed: 8 });
    tf.tidy(() => {
      const x = tf.ones([64]);
      const a1 = arr(a.call(x));
      const a2 = arr(a.call(x));
      expect(arr(b.call(x))).toEqual(a1);
      expect(a2).not.toEqual(a1);
      expect(arr(c.call(x))).not.toEqual(a1);
      // resume: a fresh layer with a's state draws a's next mask
      const state = a.state();
      expect(state).toEqual({ seed: '7', calls: 2 });
      const a3 = arr(a.call(x));
      const resumed = new Dropout(0.5);
      resumed.setState(state);
      expect(arr(resumed.call(x))).toEqual(a3);
      // seed from setInitSeed when none is given
      setInitSeed(5);
      const s1 = arr(new Dropout(0.5).call(x));
      setInitSeed(5);
      expect(arr(new Dropout(0.5).call(x))).toEqual(s1);
    });
  });

  it('gradient is the same mask and scale; p = 1 zeroes; bad p and checkpointing are errors', () => {
    const d = new Dropout(0.3, { seed: 'g' });
    tf.tidy(() => {
      const x = tf.tensor1d(Array.from({ length: 50 }, (_, i) => i + 1));
      const st = d.state();
      const y = arr(d.call(x));
      d.setState(st);
      const g = arr(tf.grad((t: tf.Tensor) => tf.sum(d.call(t)))(x));
      y.forEach((v, i) => expect(g[i]).toBeCloseTo(v === 0 ? 0 : 1 / 0.7, 5));
      expect(arr(new Dropout(1).call(x)).every((v) => v === 0)).toBe(true);
    });
    expect(() => new Dropout(1.5)).toThrow(ConfigError);
    const x = tf.variable(tf.ones([4]), true, 'dropout_ckpt_x');
    expect(() => tf.variableGrads(() => tf.sum(checkpoint((t: tf.Tensor) => d.call(t), [x as tf.Tensor], d)) as tf.Scalar, [x])).toThrow(TrainingError);
    x.dispose();
  });
});

describe('Attention (timm fused qkv)', () => {
  const fx = load('attention.json');
  it.each(['plain', 'masked'])('%s: forward and gradients equal torch', (name) => {
    const f = fx[name];
    const { B, N, C, heads } = f;
    const att = new Attention(C, heads);
    expect(att.namedParameters().map(([n]) => n)).toEqual(['qkv.weight', 'qkv.bias', 'proj.weight', 'proj.bias']);
    const dict = new Map<string, tf.Tensor>([
      ['qkv.weight', tf.tensor2d(f['qkv.weight'], [3 * C, C])],
      ['qkv.bias', tf.tensor1d(f['qkv.bias'])],
      ['proj.weight', tf.tensor2d(f['proj.weight'], [C, C])],
      ['proj.bias', tf.tensor1d(f['proj.bias'])],
    ]);
    att.loadTorchStateDict(dict);
    dict.forEach((t) => t.dispose());
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.tensor3d(f.x, [B, N, C]);
      const r = tf.tensor3d(f.r, [B, N, C]);
      const mask = f.mask ? tf.tensor2d(f.mask, [N, N]).cast('bool') : null;
      const run = (t: tf.Tensor3D) => (mask ? att.callWithMask(t, mask) : att.call(t));
      expect(maxAbs(arr(run(x)), f.y)).toBeLessThan(1e-5);
      const vars = att.trainableVariables();
      const { grads } = tf.variableGrads(() => tf.sum(tf.mul(run(x), r)) as tf.Scalar, vars);
      expect(relErr(arr(grads[att.qkv.weight.name]), torchLinear(f['dqkv.weight'], 3 * C, C))).toBeLessThan(1e-4);
      expect(relErr(arr(grads[(att.qkv.bias as tf.Variable).name]), f['dqkv.bias'])).toBeLessThan(1e-4);
      expect(relErr(arr(grads[att.proj.weight.name]), torchLinear(f['dproj.weight'], C, C))).toBeLessThan(1e-4);
      expect(relErr(arr(grads[(att.proj.bias as tf.Variable).name]), f['dproj.bias'])).toBeLessThan(1e-4);
      const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(run(t as tf.Tensor3D), r)))(x);
      expect(relErr(arr(dx), f.dx)).toBeLessThan(1e-4);
      if (mask) expect(maxAbs(arr(att.call(x)), f.y)).toBeGreaterThan(1e-3); // the mask matters
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(() => new Attention(10, 3)).toThrow(ConfigError);
    att.dispose();
  });
});
