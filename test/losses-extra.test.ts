/**
 * BCE on logits (with and without pos_weight, every reduction, |z| up to 120), BCE on
 * probabilities (torch's −100 log clamp at p ∈ {0, 1}), and softmax cross-entropy with integer
 * labels and label smoothing, against torch (fixtures/blocks/losses.json); values and gradients.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { bce, bceWithLogits, crossEntropy, type Reduction } from '../src/nn/losses/index.js';
import { ConfigError } from '../src/errors.js';
import { relErr } from './helpers/numeric.js';

const fx = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'blocks', 'losses.json'), 'utf8'));
const arr = (t: tf.Tensor): number[] => Array.from(t.dataSync());
const REDUCTIONS: Reduction[] = ['mean', 'sum', 'none'];

describe.each(['wasm', 'cpu'])('losses on %s', (backend) => {
  beforeAll(async () => {
    await initBackend('wasm');
    registerWasmTrainingKernels();
    await tf.setBackend(backend);
  });

  it.each(REDUCTIONS.flatMap((r) => [['plain', r], ['pos_weight', r]]))('bceWithLogits %s, reduction %s', (kind, red) => {
    const want = fx[`bce_logits_${kind}_${red}`];
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const z = tf.tensor1d(fx.logits);
      const y = tf.tensor1d(fx.targets);
      const opts = { reduction: red as Reduction, posWeight: kind === 'pos_weight' ? fx.pos_weight : undefined };
      const l = bceWithLogits(z, y, opts);
      expect(arr(l).every(Number.isFinite)).toBe(true);
      expect(relErr(arr(l), want.loss)).toBeLessThan(1e-6);
      const g = tf.grad((t: tf.Tensor) => tf.sum(bceWithLogits(t, y, opts)))(z);
      expect(relErr(arr(g), want.dz)).toBeLessThan(1e-6);
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('bce on probabilities: torch values including p = 0 and 1, gradient in the interior, finite at the ends', () => {
    tf.tidy(() => {
      const p = tf.tensor1d(fx.probs);
      const t = tf.tensor1d(fx.prob_targets);
      expect(relErr(arr(bce(p, t)), fx.bce_probs_mean)).toBeLessThan(1e-6);
      const g = arr(tf.grad((q: tf.Tensor) => bce(q, t))(p));
      expect(g.every(Number.isFinite)).toBe(true);
      // the fixture's gradient is of the mean over the last 15 of our 20 elements
      const n = fx.probs.length;
      expect(relErr(g.slice(5).map((v) => (v * n) / (n - 5)), fx.bce_probs_grad_from5)).toBeLessThan(1e-5);
      // closed form of the element gradient at the clamp: (p − y)/max(p(1 − p), 1e-12)/n
      expect(Math.abs(g[0] / ((0 - 1) / 1e-12 / fx.probs.length) - 1)).toBeLessThan(1e-6);
    });
    expect(() => bce(tf.zeros([2]), tf.zeros([3]))).toThrow(ConfigError);
  });

  it.each(REDUCTIONS.flatMap((r) => [[0, r], [0.1, r]]))('crossEntropy smoothing %s, reduction %s', (eps, red) => {
    const want = fx[`ce_${(eps as number).toFixed(1)}_${red}`];
    tf.tidy(() => {
      const logits = tf.tensor2d(fx.ce_logits, [7, 5]);
      const opts = { labelSmoothing: eps as number, reduction: red as Reduction };
      expect(relErr(arr(crossEntropy(logits, fx.ce_labels, opts)), want.loss)).toBeLessThan(1e-6);
      const g = tf.grad((t: tf.Tensor) => tf.sum(crossEntropy(t as tf.Tensor2D, tf.tensor1d(fx.ce_labels, 'int32'), opts)))(logits);
      expect(relErr(arr(g), want.dlogits)).toBeLessThan(1e-5);
    });
  });

  it('crossEntropy rejects labels outside [0, C) and a length mismatch', () => {
    tf.tidy(() => {
      const logits = tf.zeros([2, 3]) as tf.Tensor2D;
      expect(() => crossEntropy(logits, [0, 3])).toThrow(/label 3 outside \[0, 3\)/);
      expect(() => crossEntropy(logits, [0])).toThrow(ConfigError);
      expect(() => crossEntropy(logits, [0, 1], { labelSmoothing: 2 })).toThrow(ConfigError);
    });
  });
});
