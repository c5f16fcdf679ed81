import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderSyntheticSample } from '../src/data/synthetic/index.js';
import { computeCostRow } from '../src/energy/costsTable.js';
import { auroc } from '../src/eval/metrics/roc.js';
import {
  PATCHSVDD_PARAMS, PATCHSVDD_PROFILES, PatchEncoderHier, PatchEncoderSmall, PatchSvdd, PositionClassifier, meanImage, patchsvddCostSpec, patchsvddMethod, type PatchSvddConfig,
} from '../src/models/patchsvdd/index.js';
import { arrange2x2 } from '../src/models/patchsvdd/network.js';
import { svddLoss } from '../src/models/patchsvdd/objective.js';
import { buildPatchBatch, positionPair, svddPair, type PatchBatch } from '../src/models/patchsvdd/sampling.js';
import { bankEmbeddings, denseEmbeddings, fuseMaps, makeBank, nearestDistances, spreadPatchScores } from '../src/models/patchsvdd/scoring.js';
import { nearestNeighbour } from '../src/nn/nearestNeighbour.js';
import { arraySource as source } from './helpers/imageSource.js';
import { setInitSeed } from '../src/nn/init.js';
import { getMethod } from '../src/registry.js';
import { setupRuntime } from '../src/runtime.js';
import { CheckpointDir } from '../src/train/checkpoint.js';
import { Adam } from '../src/train/optimizers/index.js';
import { Rng } from '../src/util/rng.js';

// Patch SVDD (patchsvdd.md §7 "Minimum faithful tests" 1–6, except loading the official
// enchier.pkl, not available here; plus the tiny-run, resume and memory checks). wasm
// with the project's kernels; 64² synthetic images and 2–4 samples per stream keep it short.

let root = '';
beforeAll(async () => {
  await setupRuntime('wasm');
  root = mkdtempSync(join(tmpdir(), 'patchsvdd-test-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const dir = (): string => mkdtempSync(join(root, 'run-'));
const quietLog = () => {};


function tiny(over: Partial<PatchSvddConfig> = {}): PatchSvddConfig {
  return { ...PATCHSVDD_PROFILES.cpu, resize: 64, crop: 64, epochs: 2, batchSize: 2, repeat: 1, lr: 1e-3, stride64: 16, stride32: 4, testBatchSize: 4, ...over };
}

const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

describe('Patch SVDD networks (patchsvdd.md §2, §7.1–2)', () => {
  it('f_small: 32×32×3 → 15, 13, 11, 9, 7, 5, 3, 1 → 1×1×64 in (−1, 1); parameter counts 360,832 / 401,984 / 25,864; official names', () => {
    setInitSeed(1);
    const small = new PatchEncoderSmall();
    const sizes: number[] = [];
    tf.tidy(() => {
      let h = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      for (const c of small.convs) {
        h = c.call(h);
        sizes.push(h.shape[1]);
      }
      const y = small.call(tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 2) as tf.Tensor4D);
      expect(y.shape).toEqual([2, 1, 1, 64]);
      expect(tf.max(tf.abs(y)).dataSync()[0]).toBeLessThan(1);
    });
    expect(sizes).toEqual([15, 13, 11, 9, 7, 5, 3, 1]);
    expect(small.numParameters()).toBe(PATCHSVDD_PARAMS.small);
    const big = new PatchEncoderHier();
    expect(big.numParameters()).toBe(401_984);
    const cls = new PositionClassifier();
    expect(cls.numParameters()).toBe(25_864);
    expect(big.numParameters() + 2 * cls.numParameters()).toBe(453_712);
    // Updated parameters: all but the two normalised-linear weights (8 × 128 each).
    const updated = [big, cls, cls].reduce((s, m) => s + m.trainableVariables().reduce((a, v) => a + v.size, 0), 0);
    expect(updated).toBe(PATCHSVDD_PARAMS.updated);
    // State-dict names of the official EncoderHier (enchier.pkl) and PositionClassifier; torch layouts.
    const names = new Map(big.torchStateDict());
    expect([...names.keys()]).toEqual([...Array.from({ length: 8 }, (_, i) => [`enc.conv${i + 1}.weight`, `enc.conv${i + 1}.bias`]).flat(), 'conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias']);
    expect(names.get('enc.conv1.weight')!.shape).toEqual([32, 3, 3, 3]);
    expect(names.get('conv1.weight')!.shape).toEqual([128, 64, 2, 2]);
    expect(cls.namedEntries().map(([k]) => k)).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias', 'fc3.weight', 'fc3.bias']);
    tf.dispose([...names.values()]);
    const y = tf.tidy(() => big.call(tf.randomNormal([3, 64, 64, 3], 0, 1, 'float32', 3) as tf.Tensor4D));
    expect(y.shape).toEqual([3, 1, 1, 64]);
    y.dispose();
    [small, big, cls].forEach((m) => m.dispose());
  });

  it('hierarchy: f_big(p) = head(2×2 map of f_small on the quadrants TL, TR / BL, BR); another quadrant order differs', () => {
    setInitSeed(2);
    const big = new PatchEncoderHier();
    tf.tidy(() => {
      const p = tf.randomNormal([2, 64, 64, 3], 0, 0.5, 'float32', 4) as tf.Tensor4D;
      const q = (r: number, c: number) => big.enc.call(tf.slice(p, [0, r, c, 0], [2, 32, 32, 3]));
      const [tl, tr, bl, br] = [q(0, 0), q(0, 32), q(32, 0), q(32, 32)];
      const direct = big.call(p);
      const exact = maxAbsDiff(direct, big.head(arrange2x2(tl, tr, bl, br)));
      expect(exact).toBeLessThan(2e-7);
      // Swapping TR and BL (row- vs column-major) or mirroring the quadrants changes the embedding
      // by far more than float rounding (at PyTorch's default init embeddings differ by ~1e-4 between patches).
      expect(maxAbsDiff(direct, big.head(arrange2x2(tl, bl, tr, br)))).toBeGreaterThan(2e-5);
      expect(maxAbsDiff(direct, big.head(arrange2x2(tr, tl, br, bl)))).toBeGreaterThan(2e-5);
    });
    big.dispose();
  });

  it('dense scoring encodes every grid patch exactly as cropping it and encoding it alone (K = 64 stride 16, K = 32 stride 4)', () => {
    setInitSeed(3);
    const big = new PatchEncoderHier();
    tf.tidy(() => {
      const h = 100; // not a multiple of the strides: the last rows are covered by no grid patch
      const x = tf.randomNormal([2, h, h, 3], 0, 0.5, 'float32', 5) as tf.Tensor4D;
      const { e64, e32 } = denseEmbeddings(big, x, { stride64: 16, stride32: 4 });
      expect(e64.shape).toEqual([2, 3, 3, 64]);
      expect(e32.shape).toEqual([2, 18, 18, 64]);
      const crops = (k: number, s: number, n: number) => {
        const out: tf.Tensor4D[] = [];
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out.push(tf.slice(x, [0, i * s, j * s, 0], [2, k, k, 3]));
        return tf.stack(out, 1).reshape([-1, k, k, 3]) as tf.Tensor4D;
      };
      const ref64 = big.call(crops(64, 16, 3)).reshape([2, 3, 3, 64]);
      const ref32 = big.enc.call(crops(32, 4, 18)).reshape([2, 18, 18, 64]);
      expect(maxAbsDiff(e64, ref64)).toBeLessThan(1e-5);
      expect(maxAbsDiff(e32, ref32)).toBeLessThan(1e-5);
    });
    big.dispose();
  });

  it('normalised linear: Ŵ = W / ‖W‖ per input (norm over the 8 outputs); W never changes in training, its bias does', () => {
    setInitSeed(4);
    const cls = new PositionClassifier();
    const w0 = cls.fc3.weight.arraySync() as number[][];
    tf.tidy(() => {
      const x = tf.randomNormal([5, 128], 0, 1, 'float32', 6);
      const norms = w0.map((row) => Math.hypot(...row));
      const wHat = tf.tensor2d(w0.map((row, i) => row.map((v) => v / norms[i])));
      expect(maxAbsDiff(cls.fc3.call(x), tf.add(tf.matMul(x, wHat), cls.fc3.bias))).toBeLessThan(1e-5);
    });
    const b0 = Array.from(cls.fc3.bias.dataSync());
    const opt = new Adam(cls.trainableVariables(), { lr: 1e-2 });
    const h1 = tf.randomNormal([8, 64], 0, 1, 'float32', 7);
    const h2 = tf.randomNormal([8, 64], 0, 1, 'float32', 8);
    for (let i = 0; i < 3; i++) opt.minimize(() => tf.tidy(() => tf.mean(tf.square(cls.call(h1, h2))) as tf.Scalar));
    expect(cls.fc3.weight.arraySync()).toEqual(w0);
    expect(Array.from(cls.fc3.bias.dataSync())).not.toEqual(b0);
    tf.dispose([h1, h2]);
    opt.dispose();
    cls.dispose();
  });

  it("Table 6 row: 453,712 parameters under the paper's rule (0.45 M), f_big on one 64² patch 0.113 GMAC (Table 6's 0.12 not reproducible)", async () => {
    const row = await computeCostRow(patchsvddCostSpec);
    expect(Math.round(row.paramsMPaperRule * 1e6)).toBe(453_712);
    expect(Math.floor(row.paramsMPaperRule * 100) / 100).toBe(0.45);
    expect(row.gmac).toBeCloseTo(0.113, 3);
  });
});

describe('Patch SVDD sampling and losses (patchsvdd.md §3, §7.3–4)', () => {
  it('K = 64: position offsets on non-zero axes in [48, 63], SVDD jitter in {−2..2}² \\ {0}; K = 32: [24, 31] and {−1..1}² \\ {0}; clipped into the image', () => {
    for (const [k, lo, hi, j] of [[64, 48, 63, 2], [32, 24, 31, 1]] as const) {
      const rng = new Rng(`sampling-${k}`);
      const offs = new Set<number>();
      const jit = new Set<string>();
      for (let t = 0; t < 3000; t++) {
        const p = positionPair(256, 256, k, rng);
        const [dh, dw] = [p.offset[0], p.offset[1]];
        const [dirH, dirW] = [Math.sign(dh), Math.sign(dw)];
        expect([dirH, dirW]).not.toEqual([0, 0]);
        for (const d of [dh, dw]) if (d !== 0) offs.add(Math.abs(d));
        for (const c of [...p.p1, ...p.p2]) expect(c >= 0 && c <= 256 - k).toBe(true);
        const s = svddPair(256, 256, k, rng);
        jit.add(`${s.jitter[0]},${s.jitter[1]}`);
        for (const c of [...s.p1, ...s.p2]) expect(c >= 0 && c <= 256 - k).toBe(true);
      }
      expect(Math.min(...offs)).toBe(lo);
      expect(Math.max(...offs)).toBe(hi);
      expect(offs.size).toBe(hi - lo + 1);
      const want = new Set<string>();
      for (let a = -j; a <= j; a++) for (let b = -j; b <= j; b++) if (a !== 0 || b !== 0) want.add(`${a},${b}`);
      expect([...jit].sort()).toEqual([...want].sort());
    }
  });

  it('position labels follow the official direction table; batches are a pure function of the rng', () => {
    const rng = new Rng('labels');
    for (let t = 0; t < 200; t++) {
      const p = positionPair(512, 512, 32, rng);
      const dir = [[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1]][p.label];
      expect([Math.sign(p.offset[0]), Math.sign(p.offset[1])]).toEqual(dir);
    }
    const img = { data: [new Float32Array(80 * 80 * 3).map((_, i) => Math.sin(i))], height: 80, width: 80 };
    const a = buildPatchBatch(img, [0, 0, 0], 0.02, new Rng(5));
    const b = buildPatchBatch(img, [0, 0, 0], 0.02, new Rng(5));
    expect(a.x64).toEqual(b.x64);
    expect(a.labels32).toEqual(b.labels32);
    expect(a.x64.length).toBe(4 * 3 * 64 * 64 * 3);
  });

  it('SVDD loss: f(p1) = (3, 4, 0, …), f(p2) = 0 → 5 (not 25); its gradient is finite (0) when f(p1) = f(p2)', () => {
    const h1 = tf.tensor2d([[3, 4, ...new Array(62).fill(0)]]);
    const h2 = tf.zeros([1, 64]);
    expect(svddLoss(h1, h2).dataSync()[0]).toBeCloseTo(5, 6);
    const g = tf.grad((x: tf.Tensor) => svddLoss(x, h2))(h2);
    expect(Array.from(g.dataSync()).every((v) => v === 0)).toBe(true);
    const g2 = tf.grad((x: tf.Tensor) => svddLoss(x, h2))(h1);
    expect(Array.from(g2.dataSync()).slice(0, 3).map((v) => Number(v.toFixed(6)))).toEqual([0.6, 0.8, 0]);
    tf.dispose([h1, h2, g, g2]);
  });
});

describe('Patch SVDD scoring (patchsvdd.md §4, §7.5–6)', () => {
  it('nearestDistances (fused, distance only) equals nearestNeighbour; centred banks give the same distances', () => {
    tf.tidy(() => {
      const q = tf.randomNormal([300, 64], 0.1, 0.05, 'float32', 11) as tf.Tensor2D;
      const e = tf.randomNormal([5000, 64], 0.1, 0.05, 'float32', 12) as tf.Tensor2D;
      const ref = nearestNeighbour(q, tf.transpose(e) as tf.Tensor2D, tf.sum(tf.square(e), 1) as tf.Tensor1D, 'l2', 777).distances;
      const bank = makeBank(e);
      expect(maxAbsDiff(nearestDistances(q, bank, 300 * 700), ref)).toBeLessThan(1e-4);
      expect(maxAbsDiff(bankEmbeddings(bank), e)).toBeLessThan(1e-6);
      tf.dispose([bank.bankTNeg2, bank.sqNorms, bank.centre]);
    });
  });

  it('score spreading: 8×8, K = 4, S = 2, scores 0..8 on a 3×3 grid → the spec rows', () => {
    const m = spreadPatchScores(tf.tensor3d([[[0, 1, 2], [3, 4, 5], [6, 7, 8]]]), 8, 8, 4, 2);
    const rows = m.arraySync()[0];
    expect(rows[0]).toEqual([0, 0, 0.5, 0.5, 1.5, 1.5, 2, 2]);
    expect(rows[2]).toEqual([1.5, 1.5, 2, 2, 3, 3, 3.5, 3.5]);
    expect(rows[7]).toEqual([6, 6, 6.5, 6.5, 7.5, 7.5, 8, 8]);
    // Uncovered pixels (map larger than the grid) are 0, as the official cnt == 0 → 1 rule gives.
    const big = spreadPatchScores(tf.tensor3d([[[2]]]), 5, 5, 4, 2).arraySync()[0];
    expect(big[4]).toEqual([0, 0, 0, 0, 0]);
    expect(big[0]).toEqual([2, 2, 2, 2, 0]);
    m.dispose();
  });

  it('fusion: image score = max(M64 ⊙ M32); with M64 ≡ 1 it is max(M32)', () => {
    tf.tidy(() => {
      const m64 = tf.randomUniform([3, 8, 8], 0, 2, 'float32', 9) as tf.Tensor3D;
      const m32 = tf.randomUniform([3, 8, 8], 0, 2, 'float32', 10) as tf.Tensor3D;
      const f = fuseMaps(m64, m32);
      expect(maxAbsDiff(f.maps, tf.mul(m64, m32))).toBe(0);
      expect(maxAbsDiff(f.scores, tf.max(tf.mul(m64, m32), [1, 2]))).toBe(0);
      const ones = fuseMaps(tf.onesLike(m32) as tf.Tensor3D, m32);
      expect(maxAbsDiff(ones.scores, tf.max(m32, [1, 2]))).toBe(0);
    });
  });
});

describe('Patch SVDD training (tiny configuration)', () => {
  const size = 64;
  const synth = (split: 'train' | 'test', kind: 'good' | 'scratch' | 'hole' | 'color_spot' | 'missing_part', i: number) =>
    renderSyntheticSample('synthetic_texture', split, kind, i, { size }).image;

  it('memory is flat over repeated training steps, predict calls and a whole fit; collapse check errors or warns', async () => {
    setInitSeed(5);
    const m = new PatchSvdd(tiny({ epochs: 1 }));
    const src = source([0, 1, 2, 3].map((i) => synth('train', 'good', i)), size);
    await m.fit(src, { rng: new Rng(1), log: quietLog, runDir: dir() });
    const b = buildPatchBatch({ data: [new Float32Array(size * size * 3).fill(0.1)], height: size, width: size }, [0, 0], 0.02, new Rng(2));
    const opt = new Adam([m.nets.encoder, m.nets.cls64, m.nets.cls32].flatMap((n) => n.trainableVariables()), { lr: 1e-3 });
    opt.minimize(() => m.trainingLoss(b));
    const x = src.batch(0, 3);
    tf.dispose(Object.values(m.predict(x)));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) opt.minimize(() => m.trainingLoss(b));
    for (let i = 0; i < 3; i++) {
      const p = m.predict(x);
      expect(p.maps.shape).toEqual([3, size, size]);
      tf.dispose([p.maps, p.scores]);
    }
    expect(tf.memory().numTensors).toBe(before);
    await m.fit(src, { rng: new Rng(1), log: quietLog, runDir: dir() });
    expect(tf.memory().numTensors).toBe(before);
    opt.dispose();
    // Collapse: a threshold no healthy encoder meets → TrainingError naming λ; 'warn' logs instead.
    const lines: string[] = [];
    const collapsing = new PatchSvdd(tiny({ epochs: 1, collapseVariance: 10 }));
    await expect(collapsing.fit(src, { rng: new Rng(1), log: quietLog, runDir: dir() })).rejects.toThrow(/collapsed after epoch 1.*lambda/);
    const warned = new PatchSvdd(tiny({ epochs: 1, collapseVariance: 10, collapseAction: 'warn' }));
    await warned.fit(src, { rng: new Rng(1), log: (l) => lines.push(l), runDir: dir() });
    expect(lines.some((l) => /WARNING: Patch SVDD encoder collapsed/.test(l))).toBe(true);
    [m, collapsing, warned].forEach((d) => d.dispose());
    x.dispose();
  });

  it('resume: a run killed mid-way continues from its last checkpoint with the uninterrupted losses and scores; save/load round-trips', async () => {
    const src = source([0, 1, 2, 3].map((i) => synth('train', 'good', i)), size);
    const cfg = tiny({ epochs: 2 }); // 4 images, 2 per step → 2 steps per epoch, a checkpoint each epoch
    const build = (seed: number, killAt?: number): PatchSvdd => {
      setInitSeed(seed);
      if (killAt === undefined) return new PatchSvdd(cfg);
      let calls = 0;
      return new (class extends PatchSvdd {
        override trainingLoss(b: PatchBatch): tf.Scalar {
          if (calls++ === killAt) throw new Error(`simulated kill at step ${killAt}`);
          return super.trainingLoss(b);
        }
      })(cfg);
    };
    const ctx = (runDir: string, resume = false) => ({ rng: new Rng(7), log: quietLog, runDir, resume });
    const a = build(11);
    await a.fit(src, ctx(dir()));
    expect(a.lossHistory).toHaveLength(4);
    const probe = src.batch(0, 2);
    const pa = a.predict(probe);
    const scoresA = Array.from(await pa.scores.data());
    const d = dir();
    await expect(build(11, 3).fit(src, ctx(d))).rejects.toThrow(/simulated kill/);
    expect(new CheckpointDir(join(d, 'checkpoints')).latest()).toMatch(/ckpt-000000002\.adbck$/);
    const b = build(99);
    await b.fit(src, ctx(d, true));
    expect(b.startStep).toBe(2);
    expect(b.lossHistory).toEqual(a.lossHistory.slice(2));
    const pb = b.predict(probe);
    expect(Array.from(await pb.scores.data())).toEqual(scoresA);
    // save/load: official-named encoder, classifiers, mean image, banks; identical scores.
    await a.save(join(d, 'model'));
    for (const f of ['encoder.safetensors', 'classifiers.safetensors', 'mean_image.safetensors', 'banks.safetensors', 'patchsvdd.json']) expect(existsSync(join(d, 'model', f))).toBe(true);
    setInitSeed(12);
    const loaded = new PatchSvdd(cfg);
    await loaded.load(join(d, 'model'));
    const pl = loaded.predict(probe);
    expect(Array.from(await pl.scores.data())).toEqual(scoresA);
    await expect(new PatchSvdd(tiny({ crop: 96, resize: 96 })).load(join(d, 'model'))).rejects.toThrow(/mean.*96/);
    tf.dispose([probe, pa.scores, pa.maps, pb.scores, pb.maps, pl.scores, pl.maps]);
    [a, b, loaded].forEach((m) => m.dispose());
  });

  it('tiny run on synthetic textures: the loss on a held-out batch falls, defects score higher than normals', async () => {
    // 96² (more patches per image than 64²), 8 images, 4 per stream, 16 steps at lr 2e-3. With
    // PyTorch's default init the embeddings start bias-dominated, so 16 steps move the position loss
    // only a little (4.188 → 4.141 here) and the scores rely on a barely trained encoder (AUROC
    // 0.79 here; 5e-3 already collapses the encoder, which the collapse check then reports).
    const s96 = 96;
    const synth96 = (split: 'train' | 'test', kind: 'good' | 'scratch' | 'hole' | 'color_spot' | 'missing_part', i: number) =>
      renderSyntheticSample('synthetic_texture', split, kind, i, { size: s96 }).image;
    const train = Array.from({ length: 8 }, (_, i) => synth96('train', 'good', i));
    const good = Array.from({ length: 6 }, (_, i) => synth96('test', 'good', i));
    const bad = (['scratch', 'hole', 'color_spot', 'missing_part'] as const).flatMap((k) => [0, 1].map((i) => synth96('test', k, i)));
    setInitSeed(1);
    const m = new PatchSvdd(tiny({ resize: s96, crop: s96, epochs: 4, batchSize: 4, repeat: 2, lr: 2e-3, stride32: 8 }));
    const src = source(train, s96);
    // Held-out batch: patches of the training images from another stream, standardised with their mean image.
    const mean = await meanImage(src);
    const data = tf.tidy(() => {
      const x = tf.sub(src.batch(0, train.length), mean);
      return Array.from({ length: train.length }, (_, i) => x.slice([i], [1]).dataSync() as Float32Array);
    });
    mean.dispose();
    const held = buildPatchBatch({ data, height: s96, width: s96 }, [0, 1, 2, 3, 4, 5, 6, 7], 0.02, new Rng('held'));
    const lossOf = (b: PatchBatch) => tf.tidy(() => m.trainingLoss(b).dataSync()[0]);
    const before = lossOf(held);
    await m.fit(src, { rng: new Rng(1), log: quietLog, runDir: dir() });
    expect(m.lossHistory).toHaveLength(16);
    const after = lossOf(held);
    expect(after).toBeLessThan(before - 0.02);
    const test = source([...good, ...bad], s96);
    const x = test.batch(0, test.length);
    const p = m.predict(x);
    const auc = auroc(Array.from(await p.scores.data()), [...good.map(() => 0), ...bad.map(() => 1)]);
    expect(auc).toBeGreaterThan(0.7);
    tf.dispose([x, p.scores, p.maps]);
    m.dispose();
  });
});

describe('Patch SVDD method definition', () => {
  it('is registered; profiles resolve; bad options are ConfigErrors naming the field', () => {
    expect(getMethod('patchsvdd').name).toBe('patchsvdd');
    const paper = patchsvddMethod.resolveConfig('paper', {});
    expect(paper).toMatchObject({ crop: 256, epochs: 299, batchSize: 64, repeat: 100, lr: 1e-4, lambda: 1e-3, stride64: 16, stride32: 4 });
    const p = patchsvddMethod.protocol(paper);
    expect(p.data).toMatchObject({ resize: 256, resizeMode: 'squash', crop: null, filter: 'pil-bicubic' });
    expect(patchsvddMethod.resolveConfig('cpu', { imageSize: 96, set: { lambda: '0.01' } })).toMatchObject({ crop: 96, resize: 96, lambda: 0.01 });
    expect(() => patchsvddMethod.resolveConfig('cpu', { set: { stride32: '3' } })).toThrow(/stride32 must be an even/);
    expect(() => patchsvddMethod.resolveConfig('cpu', { imageSize: 48 })).toThrow(/≥ 64/);
    expect(() => patchsvddMethod.resolveConfig('cpu', { backbone: 'resnet18' })).toThrow(/no backbone/);
    expect(() => patchsvddMethod.resolveConfig('cpu', { set: { collapseAction: 'ignore' } })).toThrow(/collapseAction/);
  });
});
