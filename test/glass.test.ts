import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFeatureStrategy } from '../src/augment/registry.js';
import { disposeBatch } from '../src/augment/types.js';
import { SYNTHETIC_DEFECTS, renderSyntheticSample } from '../src/data/synthetic/index.js';
import { computeCostRow } from '../src/energy/costsTable.js';
import { ConfigError, WeightsError } from '../src/errors.js';
import { auroc } from '../src/eval/metrics/index.js';
import { createBackbone, type FeatureBackbone } from '../src/models/backbones/index.js';
import { UNIT_NORMALIZATION } from '../src/models/backbones/common.js';
import {
  GLASS_PROFILES,
  Glass,
  GlassAdaptor,
  GlassDiscriminator,
  glassCostSpec,
  glassFocalLoss,
  glassLoss,
  glassMethod,
  glassTrainableParams,
  maskToGrid,
  quantileLinear,
  type GlassConfig,
} from '../src/models/glass/index.js';
import { activeTapeLength } from '../src/nn/gradControl.js';
import { setInitSeed } from '../src/nn/init.js';
import { Module } from '../src/nn/module.js';
import { getMethod } from '../src/registry.js';
import { InMemoryImageSource } from '../src/run/imageSource.js';
import { setupRuntime } from '../src/runtime.js';
import { Rng } from '../src/util/rng.js';

// GLASS (glass.md §7 "Minimum faithful test" + the learning/resume/memory checks). Tiny
// Darknet (shipped) at 64², a 64-d embedding: the tiny run takes seconds on two cores.

let root = '';
beforeAll(async () => {
  await setupRuntime('wasm');
  root = mkdtempSync(join(tmpdir(), 'glass-test-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const quietLog = (): void => {};
const runDir = (name: string): string => mkdtempSync(join(root, `${name}-`));

function tiny(over: Partial<GlassConfig> = {}): GlassConfig {
  return {
    ...GLASS_PROFILES.cpu,
    backbone: 'tiny_darknet',
    layers: ['leaky_re_lu_10', 'leaky_re_lu_14'],
    resize: 64,
    crop: 64,
    pretrainDim: 64,
    embedDim: 64,
    discHidden: 64,
    epochs: 3,
    batchSize: 4,
    gasSteps: 5,
    blurSigma: 1,
    adaptorLr: 1e-3,
    discLr: 5e-3,
    ...over,
  };
}

async function build(config: GlassConfig, seed = 1, category?: string): Promise<Glass> {
  // A fresh backbone per model: Glass.dispose() frees its backbone. createBackbone reseeds the
  // init stream, so the adaptor/discriminator seed is set after it (as glassMethod.create).
  const bb = (await createBackbone(config.backbone, { init: 'pretrained', seed: 0, featureLayers: config.layers })).module;
  setInitSeed(seed);
  return new Glass(config, bb, 'pretrained', undefined, category);
}

type SyntheticCategory = 'synthetic_object' | 'synthetic_texture';

function syntheticTrain(n: number, size: number, cat: SyntheticCategory = 'synthetic_object'): InMemoryImageSource {
  const ids = Array.from({ length: n }, (_, i) => `s${i}`);
  const imgs = ids.map((_, i) => ({ data: renderSyntheticSample(cat, 'train', 'good', i, { size, seed: 5 }).image, h: size, w: size, c: 3 as const }));
  return new InMemoryImageSource(ids, imgs);
}

/** A backbone whose taps are constant maps: layer2[c, y, x] = c (512 ch, 36²), layer3 = 1000 + c (1024 ch, 18²). */
class ConstantTaps extends Module implements FeatureBackbone {
  readonly name = 'constant';
  readonly featureLayers = ['layer2', 'layer3'];
  readonly strides = { layer2: 8, layer3: 16 };
  readonly channels = { layer2: 512, layer3: 1024 };
  readonly normalization = UNIT_NORMALIZATION;
  get module(): Module {
    return this;
  }
  extract(x: tf.Tensor4D): Record<string, tf.Tensor4D> {
    const n = x.shape[0];
    const map = (side: number, ch: number, offset: number) =>
      tf.tidy(() => tf.add(tf.range(0, ch), offset).reshape([1, 1, 1, ch]).tile([n, side, side, 1]) as tf.Tensor4D);
    return { layer2: map(36, 512, 0), layer3: map(18, 1024, 1000) };
  }
}

describe('GLASS networks and embedding (glass.md §2, §7.1-7.2)', () => {
  it('embedding layout: dims 0-767 from layer2, 768-1535 from layer3, [B·1296, 1536]', () => {
    const g = new Glass(GLASS_PROFILES.paper, new ConstantTaps());
    const before = tf.memory().numTensors;
    const f = tf.tidy(() => g.embed(tf.zeros([1, 288, 288, 3])));
    expect(f.shape).toEqual([1296, 1536]);
    const row = tf.tidy(() => f.slice([10 * 36 + 17, 0], [1, 1536]).dataSync());
    const expected = (k: number): number => {
      const [start, len, off] = k < 768 ? [6 * k, 6, 0] : [12 * (k - 768), 12, 1000];
      let s = 0;
      for (let e = start; e < start + len; e++) s += Math.floor(e / 9);
      return off + s / len;
    };
    let worst = 0;
    for (let k = 0; k < 1536; k++) worst = Math.max(worst, Math.abs(row[k] - expected(k)));
    expect(worst).toBeLessThan(1e-3);
    // A border row differs (zero padding), so the check above is not vacuous.
    const corner = tf.tidy(() => f.slice([0, 0], [1, 1536]).dataSync());
    expect(Math.abs(corner[100] - expected(100))).toBeGreaterThan(1);
    f.dispose();
    expect(tf.memory().numTensors).toBe(before);
    g.adaptor.dispose();
    g.discriminator.dispose();
  });

  it('adaptor + discriminator: 3,937,792 parameters with the official state-dict names', () => {
    expect(glassTrainableParams(1536, 1024)).toBe(3_937_792);
    const a = new GlassAdaptor(1536);
    const d = new GlassDiscriminator(1536, 1024);
    expect(a.numParameters()).toBe(2_360_832);
    expect(d.numParameters()).toBe(1_576_960);
    expect(a.namedParameters().map(([n]) => n)).toEqual(['layers.0fc.weight', 'layers.0fc.bias']);
    expect(d.namedEntries().map(([n]) => n)).toEqual([
      'body.block1.0.weight', 'body.block1.0.bias', 'body.block1.1.weight', 'body.block1.1.bias',
      'body.block1.1.running_mean', 'body.block1.1.running_var', 'body.block1.1.num_batches_tracked', 'tail.0.weight',
    ]);
    // Xavier-normal: std √(2/(1536+1536)) ≈ 0.0255 for the adaptor weight.
    const std = tf.tidy(() => tf.moments(a.fc.weight).variance.sqrt().dataSync()[0]);
    expect(std).toBeGreaterThan(0.0245);
    expect(std).toBeLessThan(0.0265);
    const out = tf.tidy(() => d.eval().call(tf.randomNormal([5, 1536], 0, 1, 'float32', 3)));
    expect(out.shape).toEqual([5, 1]);
    const v = out.dataSync();
    expect(Array.from(v).every((p) => p > 0 && p < 1)).toBe(true);
    out.dispose();
    a.dispose();
    d.dispose();
  });

  it('Table 6 row: 70.46 M under the paper rule (WRN-50-2 + discriminator, no adaptor); our GMAC at 288²', async () => {
    const row = await computeCostRow(getMethod('glass').costSpec ?? glassCostSpec, 64);
    expect(Math.round(row.paramsMPaperRule * 1e6)).toBe(70_460_200);
    expect(Math.floor(row.paramsMPaperRule * 100) / 100).toBe(70.46);
    // Every counted layer scales with the pixel count (rows = (s/8)²): 288² is 20.25× 64².
    // TABLE6.md: backbone to layer3 at 288² ≈ 15.19 G, adaptor + discriminator over 1296 rows 5.10 G.
    expect(row.gmacPtflops * 20.25).toBeGreaterThan(19.5);
    expect(row.gmacPtflops * 20.25).toBeLessThan(21.0);
  }, 60_000);
});

describe('GLASS pieces (glass.md §3-4, §7.3-7.5)', () => {
  it('quantileLinear matches torch.quantile (linear interpolation)', () => {
    expect(quantileLinear([1, 2, 3, 4], 0.75)).toBeCloseTo(3.25, 12);
    expect(quantileLinear([5, 1, 3], 0.5)).toBe(3);
    expect(quantileLinear([0, 10], 0.25)).toBeCloseTo(2.5, 12);
    expect(() => quantileLinear([], 0.5)).toThrow(ConfigError);
  });

  it('maskToGrid is the 8×8 max-pool of the pixel mask (and adaptive for other sizes)', () => {
    const m = new Float32Array(2 * 16 * 16);
    m[0 * 256 + 9 * 16 + 3] = 1; // image 0 → cell (1, 0)
    m[1 * 256 + 15 * 16 + 15] = 1; // image 1 → cell (1, 1)
    expect(Array.from(maskToGrid(m, 2, 16, 16, 2, 2))).toEqual([0, 0, 1, 0, 0, 0, 0, 1]);
    // 10 px onto 3 cells: cell 1 spans rows [3, 7), so pixel row 6 marks cells 1 and (overlap) not 2.
    const odd = new Float32Array(10 * 10);
    odd[6 * 10 + 0] = 1;
    expect(Array.from(maskToGrid(odd, 1, 10, 10, 3, 3))).toEqual([0, 0, 0, 1, 0, 0, 1, 0, 0]);
  });

  it('focal loss: closed form on two rows; OHEM weights select rows', () => {
    const s = tf.tensor1d([0.9, 0.2]);
    const t = tf.tensor1d([1, 1]);
    const pt = (p: number) => 1e-5 * (1 - p) + (1 - 1e-5) * p + 1e-5;
    const l = (p: number) => -((1 - pt(p)) ** 2) * Math.log(pt(p));
    expect(glassFocalLoss(s, t, tf.tensor1d([1, 1]), 2).dataSync()[0]).toBeCloseTo((l(0.9) + l(0.2)) / 2, 5);
    expect(glassFocalLoss(s, t, tf.tensor1d([0, 1]), 2).dataSync()[0]).toBeCloseTo(l(0.2), 5);
  });

  it('GAS inside a training step: radius bands hold, ascent raises BCE(D(G),1), nothing left on the tape, memory flat', () => {
    setInitSeed(4);
    const d = new GlassDiscriminator(32, 16).train();
    const T = tf.randomNormal([64, 32], 0, 1, 'float32', 9) as tf.Tensor2D;
    const center = tf.randomNormal([16, 32], 0, 1, 'float32', 10) as tf.Tensor2D;
    const call = (x: tf.Tensor2D) => d.call(x);
    const bceOne = (G: tf.Tensor2D) => tf.tidy(() => -tf.mean(tf.log(d.call(tf.concat([T, G])).slice([64, 0], [64, 1]))).dataSync()[0]);
    for (const mode of ['manifold', 'hypersphere'] as const) {
      const gas = createFeatureStrategy('glass-gas', { params: { mode, steps: 10 } });
      const noiseOnly = createFeatureStrategy('glass-gas', { params: { mode, steps: 0 } });
      const ctx = mode === 'hypersphere' ? { center, radius: 2 } : {};
      const before = tf.memory().numTensors;
      let tape = -1;
      let G: tf.Tensor2D | null = null;
      // variableGrads as the trainer: GAS inside must not nest onto the outer tape.
      const { value, grads } = tf.variableGrads(() => {
        G = tf.keep(gas.perturb(T, call, new Rng(1), ctx));
        tape = activeTapeLength();
        return tf.mean(d.call(T)) as tf.Scalar;
      });
      expect(tape).toBeLessThan(30);
      value.dispose();
      tf.dispose(grads);
      const g = G as unknown as tf.Tensor2D;
      const anchor = mode === 'manifold' ? T : tf.tile(center, [4, 1]);
      const norms = tf.tidy(() => tf.norm(tf.sub(g, anchor), 'euclidean', 1).dataSync());
      const [lo, hi] = mode === 'manifold' ? [0.5, 1.0] : [2, 4];
      expect(Math.min(...norms)).toBeGreaterThanOrEqual(lo - 1e-4);
      expect(Math.max(...norms)).toBeLessThanOrEqual(hi + 1e-4);
      d.eval();
      const g0 = noiseOnly.perturb(T, call, new Rng(1), ctx);
      const lossAscent = bceOne(g);
      const lossNoise = bceOne(g0);
      d.train();
      if (mode === 'manifold') expect(lossAscent).toBeGreaterThan(lossNoise);
      g.dispose();
      g0.dispose();
      if (anchor !== T) anchor.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
    tf.dispose([T, center]);
    d.dispose();
  });

  it('the objective is finite, differentiable into both networks, and hypersphere pushes LAS rows to [2r, 4r]', () => {
    setInitSeed(6);
    const c = tiny({ distribution: 'hypersphere', embedDim: 32, discHidden: 16, gasSteps: 5 });
    const a = new GlassAdaptor(32);
    const d = new GlassDiscriminator(32, 16).train();
    const gas = createFeatureStrategy('glass-gas', { params: { mode: 'hypersphere', steps: 5 } });
    const emb = tf.randomNormal([32, 32], 0, 1, 'float32', 1) as tf.Tensor2D;
    const las = tf.randomNormal([32, 32], 0, 1.5, 'float32', 2) as tf.Tensor2D;
    const center = tf.zeros([16, 32]) as tf.Tensor2D;
    const mask = new Float32Array(32).map((_, i) => (i % 3 === 0 ? 1 : 0));
    const before = tf.memory().numTensors;
    let radius = 0;
    for (let rep = 0; rep < 3; rep++) {
      const { value, grads } = tf.variableGrads(() => {
        const parts = glassLoss(c, (x) => d.call(x), gas, { T: a.call(emb) as tf.Tensor2D, F: a.call(las) as tf.Tensor2D, mask, center }, new Rng(rep));
        radius = parts.radius;
        return parts.total;
      });
      expect(Number.isFinite(value.dataSync()[0])).toBe(true);
      expect(Object.keys(grads).length).toBe(a.trainableVariables().length + d.trainableVariables().length);
      value.dispose();
      tf.dispose(grads);
    }
    expect(radius).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([emb, las, center]);
    a.dispose();
    d.dispose();
  });
});

describe('GLASS config (glass.md §2-3)', () => {
  it('per-category table, wood/toothbrush resize, Tiny Darknet override, bad values', () => {
    expect(glassMethod.resolveConfig('paper', {}, { category: 'bottle' }).distribution).toBe('hypersphere');
    expect(glassMethod.resolveConfig('paper', {}, { category: 'carpet' }).distribution).toBe('manifold');
    expect(glassMethod.resolveConfig('paper', {}, { category: 'wood' }).resize).toBe(329);
    expect(glassMethod.resolveConfig('paper', {}, { category: 'bottle' }).resize).toBe(288);
    expect(glassMethod.resolveConfig('paper', { set: { distribution: 'manifold' } }, { category: 'bottle' }).distribution).toBe('manifold');
    const td = glassMethod.resolveConfig('cpu', { backbone: 'tiny_darknet' }, {});
    expect(td.backbone).toBe('tiny_darknet');
    expect(td.layers).toEqual(['leaky_re_lu_10', 'leaky_re_lu_14']);
    const p = glassMethod.resolveConfig('paper', {});
    expect([p.crop, p.epochs, p.batchSize, p.embedDim, p.discHidden, p.gasSteps, p.adaptorLr, p.discLr, p.discWeightDecay]).toEqual([288, 640, 8, 1536, 1024, 20, 1e-4, 2e-4, 0.01]);
    expect(() => glassMethod.resolveConfig('paper', { set: { distribution: 'sphere' } })).toThrow(ConfigError);
    expect(() => glassMethod.resolveConfig('paper', { set: { anomalyStrategy: 'glass-gas' } })).toThrow(ConfigError);
    expect(() => glassMethod.resolveConfig('paper', { epochs: 0 })).toThrow(ConfigError);
    expect(() => glassMethod.resolveConfig('gpu', {})).toThrow(ConfigError);
  });
});

describe('GLASS training and scoring (glass.md §3-4, §7.5-7.6)', () => {
  it('scoring: image score = max of raw patch scores; a constant map stays constant; memory flat', async () => {
    const g = await build(tiny());
    const x = tf.randomUniform([2, 64, 64, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    g.gridFor(64, 64);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const { scores, maps } = g.predict(x);
      expect(maps.shape).toEqual([2, 64, 64]);
      const patch = tf.tidy(() => g.discriminator.call(g.adaptor.call(g.embed(x))).reshape([2, 64]).max(1).dataSync());
      const s = scores.dataSync();
      expect(s[0]).toBeCloseTo(patch[0], 6);
      expect(s[1]).toBeCloseTo(patch[1], 6);
      tf.dispose([scores, maps]);
    }
    expect(tf.memory().numTensors).toBe(before);
    // Blur of a constant upsampled map ('reflect' border) keeps it constant.
    const { gaussianBlur2d } = await import('../src/nn/layers/smoothing.js');
    const flat = tf.tidy(() => gaussianBlur2d(tf.image.resizeBilinear(tf.fill([1, 8, 8, 1], 0.3) as tf.Tensor4D, [64, 64], false, true), 1).dataSync());
    expect(Math.max(...flat) - Math.min(...flat)).toBeLessThan(1e-6);
    x.dispose();
    g.dispose();
  });

  // 32 steps of a 64-d GLASS on Tiny Darknet features is far from converged: measured image
  // AUROC 0.813, pixel AUROC 0.860 for this seed (init seeds 1-2: 0.81 / 0.81 in hypersphere
  // mode, 0.76 / 0.86 in manifold mode); a sign or embedding bug gives <= 0.5.
  it('learns on synthetic textures: loss falls, defects outscore normals (image AUROC > 0.75, pixel > 0.8); save/load gives the same scores', async () => {
    const size = 64;
    const cat = 'synthetic_texture';
    const cfg = tiny({ epochs: 8, distribution: 'hypersphere' });
    const g = await build(cfg, 1, cat);
    const train = syntheticTrain(16, size, cat);
    // Warm-up: the grid probe and the texture source's first use allocate once.
    g.gridFor(size, size);
    const warm = train.batch(0, 1);
    disposeBatch(await g.lasStrategy(8).generate({ images: warm }, new Rng(0)));
    warm.dispose();
    const before = tf.memory().numTensors;
    await g.fit(train, { rng: new Rng(3), log: quietLog, runDir: runDir('learn') });
    expect(tf.memory().numTensors).toBe(before);
    const h = g.lossHistory;
    const first = (h[0] + h[1] + h[2] + h[3]) / 4;
    const last = (h[h.length - 1] + h[h.length - 2] + h[h.length - 3] + h[h.length - 4]) / 4;
    expect(last).toBeLessThan(first * 0.9);
    const good = Array.from({ length: 12 }, (_, i) => renderSyntheticSample(cat, 'test', 'good', i, { size, seed: 5 }).image);
    const badS = SYNTHETIC_DEFECTS.flatMap((k) => [0, 1, 2].map((i) => renderSyntheticSample(cat, 'test', k, i, { size, seed: 5 })));
    const all = [...good, ...badS.map((b) => b.image)];
    const x = tf.tensor4d(Float32Array.from(all.flatMap((a) => Array.from(a))), [all.length, size, size, 3]);
    const { scores, maps } = g.predict(x);
    const s = Array.from(scores.dataSync());
    const a = auroc(s, all.map((_, i) => (i < good.length ? 0 : 1)));
    expect(a).toBeGreaterThan(0.75);
    const mp = maps.dataSync();
    const pv: number[] = [];
    const pl: number[] = [];
    for (let i = 0; i < all.length; i++) {
      for (let j = 0; j < size * size; j++) {
        pv.push(mp[i * size * size + j]);
        pl.push(i < good.length ? 0 : ((badS[i - good.length].mask as Uint8Array)[j] > 0 ? 1 : 0));
      }
    }
    expect(auroc(pv, pl)).toBeGreaterThan(0.8);
    const dir = runDir('saved');
    await g.save(dir);
    const g2 = await build(cfg, 99);
    g2.gridFor(size, size);
    await g2.load(dir);
    const s2 = g2.predict(x);
    expect(Array.from(s2.scores.dataSync()).map((v, i) => Math.abs(v - s[i])).reduce((m, v) => Math.max(m, v), 0)).toBeLessThan(1e-5);
    const other = await build(tiny({ embedDim: 32, pretrainDim: 32 }), 1);
    await expect(other.load(dir)).rejects.toThrow(WeightsError);
    tf.dispose([x, scores, maps, s2.scores, s2.maps]);
    g.dispose();
    g2.dispose();
    other.dispose();
  }, 120_000);

  it('resume: runs killed at an epoch boundary and mid-epoch continue with the uninterrupted losses (hypersphere, centre checkpointed)', async () => {
    const data = syntheticTrain(8, 64); // 2 steps per epoch, a checkpoint each epoch
    const cfg = tiny({ distribution: 'hypersphere', epochs: 2, gasSteps: 2 });
    const full = await build(cfg, 2, 'bottle');
    await full.fit(data, { rng: new Rng(5), log: quietLog, runDir: runDir('full') });
    expect(full.lossHistory).toHaveLength(4);
    for (const killAt of [2, 3]) {
      const dir = runDir(`kill${killAt}`);
      const bb = (await createBackbone(cfg.backbone, { init: 'pretrained', seed: 0, featureLayers: cfg.layers })).module;
      setInitSeed(2);
      let calls = 0;
      const killed = new (class extends Glass {
        override trainingLoss(...args: Parameters<Glass['trainingLoss']>): ReturnType<Glass['trainingLoss']> {
          if (calls++ === killAt) throw new Error(`simulated kill at step ${killAt}`);
          return super.trainingLoss(...args);
        }
      })(cfg, bb, 'pretrained', undefined, 'bottle');
      await expect(killed.fit(data, { rng: new Rng(5), log: quietLog, runDir: dir })).rejects.toThrow(/simulated kill/);
      killed.dispose();
      const resumed = await build(cfg, 77, 'bottle');
      await resumed.fit(data, { rng: new Rng(5), log: quietLog, runDir: dir, resume: true });
      expect(resumed.describe().resumedFromStep).toBe(2);
      expect(resumed.lossHistory).toHaveLength(2);
      expect(resumed.lossHistory[0]).toBeCloseTo(full.lossHistory[2], 5);
      expect(resumed.lossHistory[1]).toBeCloseTo(full.lossHistory[3], 5);
      resumed.dispose();
    }
    full.dispose();
  }, 120_000);
});

