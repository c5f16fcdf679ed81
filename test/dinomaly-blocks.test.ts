/**
 * Dinomaly's trainable blocks (src/models/dinomaly/, dinomaly.md §2 and §7): the ELU+1 linear
 * attention in Q(KV) form against its direct row-normalised form (§7.1), the decoder block against
 * a plain-torch restatement of Block(attn=LinearAttention2) (test/fixtures/make_vit_fixtures.py),
 * the noisy bottleneck (dropout in training only), parameter counts (§2: bottleneck 4,722,432,
 * decoder block 7,087,872, trainable 61,425,408), gradients flow, no leaks.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { ConfigError } from '../src/errors.js';
import type { StateDict } from '../src/nn/module.js';
import { LinearAttention, linearAttention, linearAttentionDirect } from '../src/models/dinomaly/linearAttention.js';
import { LinearAttentionBlock } from '../src/models/dinomaly/decoderBlock.js';
import { NoisyBottleneck } from '../src/models/dinomaly/bottleneck.js';
import { applyDinomalyInit } from '../src/models/dinomaly/init.js';
import { setInitSeed, truncNormalInit } from '../src/nn/init.js';

const FIX = join(import.meta.dirname, 'fixtures', 'vit');
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

beforeAll(async () => {
  await initBackend('wasm');
});

describe('linear attention (ELU+1 kernel, Q(KV) order)', () => {
  it('equals row-normalised φ(Q)φ(K)ᵀ V for N=5, 1 head, d=4 (spec §7.1, tol 1e-6)', () => {
    const [q, k, v] = [1, 2, 3].map((s) => tf.randomNormal([1, 1, 5, 4], 0, 1, 'float32', s));
    const before = tf.memory().numTensors;
    const a = linearAttention(q, k, v);
    const b = linearAttentionDirect(q, k, v);
    expect(a.shape).toEqual([1, 1, 5, 4]);
    expect(maxAbs(a.dataSync(), b.dataSync())).toBeLessThan(1e-6);
    tf.dispose([a, b]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([q, k, v]);
  });

  it('batched multi-head with eps matches the direct form; eps changes the result; no softmax/scale involved', () => {
    const [q, k, v] = [4, 5, 6].map((s) => tf.randomNormal([2, 3, 7, 4], 0, 2, 'float32', s));
    const a = linearAttention(q, k, v, 1e-6);
    const b = linearAttentionDirect(q, k, v, 1e-6);
    expect(maxAbs(a.dataSync(), b.dataSync())).toBeLessThan(1e-5);
    const big = linearAttention(q, k, v, 10);
    expect(maxAbs(big.dataSync(), a.dataSync())).toBeGreaterThan(1e-3);
    // a convex combination of the value rows: stays inside their per-channel range
    const vmin = tf.min(v, -2, true);
    const vmax = tf.max(v, -2, true);
    expect(tf.all(tf.logicalAnd(tf.greaterEqual(a, tf.sub(vmin, 1e-5)), tf.lessEqual(a, tf.add(vmax, 1e-5)))).dataSync()[0]).toBe(1);
    tf.dispose([q, k, v, a, b, big, vmin, vmax]);
  });

  it('LinearAttention rejects a head count that does not divide the width', () => {
    expect(() => new LinearAttention(10, 3)).toThrow(ConfigError);
  });
});

describe('decoder block (Block with LinearAttention2, LN eps 1e-8)', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const fx: any = JSON.parse(readFileSync(join(FIX, 'linear_attention_block.json'), 'utf8'));

  function fixtureDict(): StateDict {
    const d: StateDict = new Map();
    (fx.params as [string, number[]][]).forEach(([name, shape], k) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const v = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const w = Math.sin(0.37 * i + 1.3 * k);
        v[i] = /norm[12]\.weight$/.test(name) ? 1 + 0.2 * w : 0.3 * w;
      }
      d.set(name, tf.tensor(v, shape));
    });
    return d;
  }

  it('equals the torch reference to 1e-5 and loads the original names strictly; no leak', () => {
    const blk = new LinearAttentionBlock(fx.dim, fx.heads);
    const d = fixtureDict();
    blk.loadTorchStateDict(d, { strict: true, source: 'fixture' });
    for (const t of d.values()) t.dispose();
    const x = tf.tensor3d(fx.x, fx.shape);
    const before = tf.memory().numTensors;
    const y = blk.call(x);
    expect(maxAbs(y.dataSync(), fx.y)).toBeLessThan(1e-5);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    blk.dispose();
  });

  it('gradients reach every parameter', () => {
    const blk = new LinearAttentionBlock(8, 2);
    const x = tf.randomNormal([1, 5, 8], 0, 1, 'float32', 7) as tf.Tensor3D;
    const { grads, value } = tf.variableGrads(() => tf.sum(tf.square(blk.call(x))) as tf.Scalar, blk.trainableVariables());
    expect(Object.keys(grads).length).toBe(blk.trainableVariables().length);
    for (const g of Object.values(grads)) expect(tf.sum(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([x, value, ...Object.values(grads)]);
    blk.dispose();
  });
});

describe('noisy bottleneck (bMlp) and Dinomaly sizes', () => {
  it('parameter counts: bottleneck 4,722,432, decoder block 7,087,872, trainable 61,425,408 (spec §2)', () => {
    const b = new NoisyBottleneck(768, 3072, 0.2, { seed: 1 });
    const blk = new LinearAttentionBlock(768, 12);
    expect(b.numParameters()).toBe(4_722_432);
    expect(blk.numParameters()).toBe(7_087_872);
    expect(b.numParameters() + 8 * blk.numParameters()).toBe(61_425_408);
    expect(b.namedParameters().map(([n]) => n)).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
    b.dispose();
    blk.dispose();
  });

  it('dropout only in training: eval is the plain MLP, training drops ~20 % at each of the three places, reproducibly', () => {
    const mk = (): NoisyBottleneck => new NoisyBottleneck(16, 64, 0.2, { seed: 3 });
    const b = mk();
    const x = tf.randomNormal([4, 10, 16], 0, 1, 'float32', 11);
    b.eval();
    const ev = b.call(x);
    const plain = tf.tidy(() => {
      const h = tf.matMul(x.reshape([-1, 16]), b.fc1.weight).add(b.fc1.bias as tf.Tensor);
      const g = tf.mul(tf.mul(0.5, h), tf.add(1, tf.erf(tf.mul(h, Math.SQRT1_2))));
      return tf.matMul(g, b.fc2.weight).add(b.fc2.bias as tf.Tensor).reshape([4, 10, 16]);
    });
    expect(maxAbs(ev.dataSync(), plain.dataSync())).toBeLessThan(1e-5);
    b.train();
    const tr = b.call(x);
    const zeros = Array.from(tr.dataSync()).filter((v) => v === 0).length / tr.size;
    expect(zeros).toBeGreaterThan(0.12);
    expect(zeros).toBeLessThan(0.28);
    const b2 = mk().train();
    const sd = b.stateDict();
    b2.loadStateDict(sd);
    for (const t of sd.values()) t.dispose();
    const tr2 = b2.call(x);
    expect(maxAbs(tr.dataSync(), tr2.dataSync())).toBe(0);
    tf.dispose([x, ev, plain, tr, tr2]);
    b.dispose();
    b2.dispose();
  });
});

describe('Dinomaly init (trunc normal std 0.01 in [-0.03, 0.03], biases 0, LN 1/0)', () => {
  it('truncNormalInit: inside the bounds, std of the truncated law, reproducible under setInitSeed; bad bounds throw', () => {
    setInitSeed(5);
    const t = truncNormalInit([200, 100], 0.01, -0.03, 0.03);
    setInitSeed(5);
    const u = truncNormalInit([200, 100], 0.01, -0.03, 0.03);
    const v = t.dataSync();
    expect(maxAbs(v, u.dataSync())).toBe(0);
    let mn = Infinity;
    let mx = -Infinity;
    let s2 = 0;
    for (const x of v) {
      mn = Math.min(mn, x);
      mx = Math.max(mx, x);
      s2 += x * x;
    }
    expect(mn).toBeGreaterThanOrEqual(-0.03);
    expect(mx).toBeLessThanOrEqual(0.03);
    expect(mx).toBeGreaterThan(0.025); // the tails reach near the cut
    // std of N(0, 0.01²) cut at ±3σ: 0.01·sqrt(1 − 2·3·φ(3)/(2Φ(3) − 1)) = 0.009865
    expect(Math.sqrt(s2 / v.length)).toBeCloseTo(0.009865, 4);
    tf.dispose([t, u]);
    expect(() => truncNormalInit([2], 0.01, 0.03, -0.03)).toThrow(ConfigError);
  });

  it('applyDinomalyInit sets every Linear and LayerNorm of a decoder block and bottleneck', () => {
    setInitSeed(9);
    const blk = new LinearAttentionBlock(16, 2);
    const b = new NoisyBottleneck(16, 64, 0.2, { seed: 1 });
    tf.tidy(() => blk.norm1.weight.assign(tf.fill([16], 3)));
    applyDinomalyInit(blk);
    applyDinomalyInit(b);
    for (const [name, v] of [...blk.namedParameters(), ...b.namedParameters()]) {
      const d = v.dataSync();
      if (name.endsWith('norm1.weight') || name.endsWith('norm2.weight')) expect([...d].every((x) => x === 1)).toBe(true);
      else if (name.endsWith('bias')) expect([...d].every((x) => x === 0)).toBe(true);
      else expect([...d].every((x) => Math.abs(x) <= 0.03) && d.some((x) => x !== 0)).toBe(true);
    }
    blk.dispose();
    b.dispose();
  });
});
