import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImageStrategy } from '../src/augment/registry.js';
import { renderSyntheticSample } from '../src/data/synthetic/index.js';
import { computeCostRow } from '../src/energy/costsTable.js';
import { auroc } from '../src/eval/metrics/roc.js';
import { RIAD_PROFILES, Riad, RiadUNet, riadCostSpec, riadMethod, riadUNetParams, type RiadConfig } from '../src/models/riad/index.js';
import { TrainMaskSampler, type MaskDraw } from '../src/models/riad/masks.js';
import { disjointMasks } from '../src/augment/riad.js';
import { anomalyFromReconstructions, medianBlur3, msgmsAnomalyMap, reconstruct, riadLossTerms } from '../src/models/riad/objective.js';
import { arraySource as source } from './helpers/imageSource.js';
import { setInitSeed } from '../src/nn/init.js';
import { getMethod } from '../src/registry.js';
import { setupRuntime } from '../src/runtime.js';
import { CheckpointDir } from '../src/train/checkpoint.js';
import { Adam } from '../src/train/optimizers/index.js';
import { Rng } from '../src/util/rng.js';

// RIAD (riad.md §7 "Minimum faithful test" + the memory/resume/tiny-run checks). Runs on
// wasm with the project's training kernels; tiny networks (width 4–8) at 32² keep it < 90 s.

let root = '';
beforeAll(async () => {
  await setupRuntime('wasm');
  root = mkdtempSync(join(tmpdir(), 'riad-test-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function dir(): string {
  return mkdtempSync(join(root, 'run-'));
}


const quietLog = () => {};

/** A tiny configuration: 32², width 4–8, cell sizes scaled to the image. */
function tiny(over: Partial<RiadConfig> = {}): RiadConfig {
  return {
    ...RIAD_PROFILES.cpu,
    resize: 32,
    crop: 32,
    width: 4,
    epochs: 2,
    batchSize: 2,
    masks: { strategy: 'riad-masks', params: { cellSizes: [2, 4, 8], numMasks: 3 } },
    testCellSizes: [2, 4, 8],
    smoothing: { kind: 'mean', size: 3 },
    lrMilestones: [],
    keepCheckpoints: 3,
    ...over,
  };
}

describe('RIAD network (riad.md §2, §7.1)', () => {
  it('reference U-Net: 28,805,699 parameters with taikiinoue45 names; Table 6 row counts them', async () => {
    expect(riadUNetParams(64)).toBe(28_805_699);
    const row = await computeCostRow(riadCostSpec, 32);
    expect(Math.round(row.paramsMUnique * 1e6)).toBe(28_805_699);
    expect(Math.floor(row.paramsMPaperRule * 100) / 100).toBe(28.8);
    // MACs scale with the pixel count: at 32² one pass is 54.52 G / 64 true MACs (riad.md §2).
    expect(row.gmac * 64).toBeCloseTo(54.52, 1);
    // ptflops convention (TABLE6.md): Table 6's 77.20 GMAC, likewise 1/64 of it at 32².
    expect(row.gmacPtflops * 64).toBeCloseTo(77.2, 1);
  });

  it('output shape, range [−1, 1], PyTorch state-dict names', () => {
    setInitSeed(3);
    const net = new RiadUNet(4).eval();
    expect(net.numParameters()).toBe(riadUNetParams(4));
    const names = net.namedEntries().map(([k]) => k);
    for (const k of ['down1.conv1.weight', 'down5.bn2.running_var', 'up1.upconv.weight', 'up4.conv2.bias', 'conv_final.0.weight', 'conv_final.0.bias']) {
      expect(names).toContain(k);
    }
    const y = tf.tidy(() => net.call(tf.mul(tf.randomNormal([2, 32, 32, 3], 0, 3, 'float32', 1), 1) as tf.Tensor4D));
    expect(y.shape).toEqual([2, 32, 32, 3]);
    const [lo, hi] = [tf.min(y).dataSync()[0], tf.max(y).dataSync()[0]];
    expect(lo).toBeGreaterThanOrEqual(-1);
    expect(hi).toBeLessThanOrEqual(1);
    y.dispose();
    net.dispose();
  });
});

describe('RIAD masks (riad.md §3, §7.2)', () => {
  it('the sampler draws with the registered riad-masks strategy: k = rng.choice, then disjointMasks, one partition per batch', async () => {
    const params = { cellSizes: [2, 4, 8, 16], numMasks: 3 };
    const sampler = new TrainMaskSampler('riad-masks', params);
    const img = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    for (let t = 0; t < 4; t++) {
      const a = await sampler.sample(img, new Rng(`m${t}`));
      const ref = new Rng(`m${t}`);
      const k = ref.choice(params.cellSizes);
      expect(a.cellSize).toBe(k);
      const expected = disjointMasks(32, 32, k, 3, ref);
      a.hidden.forEach((h, j) => expect(Array.from(h)).toEqual(Array.from(expected[j])));
    }
    expect(tf.memory().numTensors).toBe(before);
    img.dispose();
  });

  it('for every k ∈ {2,4,8,16}: Σ hidden ≡ 1, each mask hides ~1/3 in whole grid-aligned k×k cells', async () => {
    const sampler = new TrainMaskSampler('riad-masks', { cellSizes: [2, 4, 8, 16], numMasks: 3 });
    const s = 64;
    const seen = new Set<number>();
    const img = tf.zeros([1, s, s, 3]) as tf.Tensor4D;
    for (let t = 0; t < 24; t++) {
      const { cellSize: k, hidden } = await sampler.sample(img, new Rng(`cells${t}`));
      seen.add(k);
      const cells = (s / k) ** 2;
      let partition = true;
      for (let p = 0; p < s * s; p++) partition &&= hidden[0][p] + hidden[1][p] + hidden[2][p] === 1;
      expect(partition).toBe(true);
      for (const h of hidden) {
        const hiddenCells = h.reduce((a, v) => a + v, 0) / (k * k);
        expect(Math.abs(hiddenCells - cells / 3)).toBeLessThanOrEqual(1);
        let aligned = true;
        for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) aligned &&= h[y * s + x] === h[(y - (y % k)) * s + (x - (x % k))];
        expect(aligned).toBe(true);
      }
    }
    expect([...seen].sort((a, b) => a - b)).toEqual([2, 4, 8, 16]);
    img.dispose();
  });

  it('rejects anomaly strategies and unknown names', () => {
    expect(() => new TrainMaskSampler('cutpaste', {})).toThrow(/inpaint/);
    expect(() => new TrainMaskSampler('nope', {})).toThrow(/unknown anomaly strategy/);
    expect(() => riadMethod.resolveConfig('cpu', { imageSize: 40 })).toThrow(/multiple of 16/);
  });
});

describe('RIAD assembly, losses and scoring (riad.md §3–4, §7.3–5)', () => {
  const hidden = () => disjointMasks(16, 16, 4, 3, new Rng(1)).map((m) => tf.tensor4d(m, [1, 16, 16, 1]));

  it('f = identity ⇒ Iᵣ ≡ 0; f = constant C ⇒ Iᵣ ≡ C', () => {
    const hs = hidden();
    const x = tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 2) as tf.Tensor4D;
    const r0 = reconstruct((t) => t, x, hs);
    expect(tf.max(tf.abs(r0)).dataSync()[0]).toBe(0);
    const r1 = reconstruct((t) => tf.fill(t.shape, 0.37) as tf.Tensor4D, x, hs);
    expect(tf.max(tf.abs(tf.sub(r1, 0.37))).dataSync()[0]).toBeLessThan(1e-7);
    tf.dispose([x, r0, r1, ...hs]);
  });

  it('losses vanish for a perfect reconstruction (both colour variants); MSGMS point formula', () => {
    const x = tf.randomUniform([1, 32, 32, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    for (const colour of ['rgb', 'grey-median'] as const) {
      const t = riadLossTerms(x, x, { lossWeights: { mse: 1, msgms: 1, ssim: 1 }, msgmsScales: 4, msgmsColour: colour });
      expect(t.total.dataSync()[0]).toBeLessThan(1e-5);
      tf.dispose([t.total, t.mse, t.msgms, t.ssim]);
    }
    // Flat image vs one with gradient magnitude g at a pixel: GMS = c / (g² + c) there (scale 1 only).
    const flat = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
    const ramp = tf.tensor4d(Array.from({ length: 64 }, (_, i) => (i % 8) * 0.1), [1, 8, 8, 1]);
    // Interior of a horizontal ramp with slope 0.1: gx = (1/3)·3·(x[i−1] − x[i+1]) = −0.2, gy = 0 ⇒ g = 0.2.
    const m = msgmsAnomalyMap(flat, ramp, 1, 'rgb');
    const v = m.dataSync()[3 * 8 + 3];
    expect(v).toBeCloseTo(1 - 0.0026 / (0.04 + 0.0026), 4);
    tf.dispose([x, flat, ramp, m]);
  });

  it('3×3 median filter (zero padding) matches a sort-based median', () => {
    const vals = Array.from({ length: 5 * 6 }, (_, i) => Math.sin(i * 1.7) * 3);
    const m = medianBlur3(tf.tensor4d(vals, [1, 5, 6, 1])).dataSync();
    for (let y = 0; y < 5; y++) {
      for (let x = 0; x < 6; x++) {
        const nb: number[] = [];
        for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          nb.push(yy < 0 || yy >= 5 || xx < 0 || xx >= 6 ? 0 : vals[yy * 6 + xx]);
        }
        nb.sort((a, b) => a - b);
        expect(m[y * 6 + x]).toBeCloseTo(nb[4], 5);
      }
    }
  });

  it('perfect reconstruction ⇒ map ≡ 0, score 0; a corrupted 32×32 patch holds the arg-max; k weighted equally', () => {
    const c = { msgmsScales: 4, msgmsColour: 'rgb' as const, smoothing: { kind: 'mean' as const, size: 21 } };
    const x = tf.tidy(() => tf.sub(tf.mul(tf.randomUniform([1, 256, 256, 3], 0, 1, 'float32', 4), 0.4), 0.2)) as tf.Tensor4D;
    const perfect = anomalyFromReconstructions(x, [x, x], c);
    expect(tf.max(tf.abs(perfect.maps)).dataSync()[0]).toBeLessThan(1e-5);
    expect(Math.abs(perfect.scores.dataSync()[0])).toBeLessThan(1e-5);
    const patch = tf.tidy(() => tf.pad(tf.ones([1, 32, 32, 1]), [[0, 0], [150, 74], [40, 184], [0, 0]]));
    const corrupt = tf.tidy(() => tf.add(x, tf.mul(patch, tf.randomUniform([1, 256, 256, 3], -0.8, 0.8, 'float32', 5)))) as tf.Tensor4D;
    const one = anomalyFromReconstructions(x, [x, corrupt], c);
    const am = tf.argMax(one.maps.reshape([-1])).dataSync()[0];
    const [py, px] = [Math.floor(am / 256), am % 256];
    expect(py >= 150 && py < 182 && px >= 40 && px < 72).toBe(true);
    // Equal weights: [perfect, corrupt] is exactly half of [corrupt] alone (no (256/k)² factors).
    const alone = anomalyFromReconstructions(x, [corrupt], c);
    expect(one.scores.dataSync()[0]).toBeCloseTo(alone.scores.dataSync()[0] / 2, 5);
    tf.dispose([x, patch, corrupt, perfect.maps, perfect.scores, one.maps, one.scores, alone.maps, alone.scores]);
  });
});

describe('RIAD training (tiny configuration)', () => {
  it('memory is flat over repeated training steps, predict calls and a whole fit', async () => {
    setInitSeed(5);
    const r = new Riad(tiny());
    const imgs = Array.from({ length: 4 }, (_, i) => renderSyntheticSample('synthetic_texture', 'train', 'good', i, { size: 32 }).image);
    const src = source(imgs, 32);
    const x = src.batch(0, 2);
    r.net.train();
    const opt = new Adam(r.net.trainableVariables(), { lr: 1e-3 });
    const draw = await r.drawMasks(x, new Rng(0));
    opt.minimize(() => r.trainingLoss(x, draw));
    const afterOne = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) opt.minimize(() => r.trainingLoss(x, draw));
    expect(tf.memory().numTensors).toBe(afterOne);
    opt.dispose();
    r.net.eval();
    const p0 = r.predict(x);
    tf.dispose([p0.scores, p0.maps]);
    const afterPredict = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const p = r.predict(x);
      expect(p.maps.shape).toEqual([2, 32, 32]);
      tf.dispose([p.scores, p.maps]);
    }
    expect(tf.memory().numTensors).toBe(afterPredict);
    r.config.epochs = 1;
    await r.fit(src, { rng: new Rng(1), log: quietLog, runDir: dir(), validation: source(imgs.slice(0, 2), 32) });
    expect(tf.memory().numTensors).toBe(afterPredict);
    x.dispose();
    r.dispose();
  });

  it('resume: killed runs continue from their last checkpoint with the uninterrupted losses and weights', async () => {
    const imgs = Array.from({ length: 4 }, (_, i) => renderSyntheticSample('synthetic_texture', 'train', 'good', i, { size: 32 }).image);
    const src = source(imgs, 32);
    const cfg = tiny({ epochs: 2 }); // 2 images per batch → 2 steps per epoch, a checkpoint each epoch
    const build = (seed: number, killAt?: number): Riad => {
      setInitSeed(seed);
      if (killAt === undefined) return new Riad(cfg);
      let calls = 0;
      return new (class extends Riad {
        override trainingLoss(x: tf.Tensor4D, draw: MaskDraw): tf.Scalar {
          if (calls++ === killAt) throw new Error(`simulated kill at step ${killAt}`);
          return super.trainingLoss(x, draw);
        }
      })(cfg);
    };
    const fitCtx = (runDir: string, resume = false) => ({ rng: new Rng(7), log: quietLog, runDir, resume });

    const a = build(11);
    await a.fit(src, fitCtx(dir()));
    expect(a.lossHistory).toHaveLength(4);
    const probe = src.batch(0, 2);
    const pa = a.predict(probe);
    const scoresA = Array.from(await pa.scores.data());

    // Killed at a checkpoint boundary (step 2 = start of epoch 2), and mid-epoch (step 3: the
    // last checkpoint is still step 2). Fresh instances with a different init resume.
    for (const killAt of [2, 3]) {
      const d = dir();
      await expect(build(11, killAt).fit(src, fitCtx(d))).rejects.toThrow(/simulated kill/);
      expect(new CheckpointDir(join(d, 'checkpoints')).latest()).toMatch(/ckpt-000000002\.adbck$/);
      const b = build(99);
      await b.fit(src, fitCtx(d, true));
      expect(b.startStep).toBe(2);
      expect(b.lossHistory).toEqual(a.lossHistory.slice(2));
      const pb = b.predict(probe);
      expect(Array.from(await pb.scores.data())).toEqual(scoresA);
      tf.dispose([pb.scores, pb.maps]);
      b.dispose();
    }
    tf.dispose([probe, pa.scores, pa.maps]);
    a.dispose();
  });

  it('early stopping keeps the best-validation weights; resuming a stopped run trains no further; save/load round-trips', async () => {
    const imgs = Array.from({ length: 4 }, (_, i) => renderSyntheticSample('synthetic_texture', 'train', 'good', i, { size: 32 }).image);
    const val = source(imgs.slice(0, 2), 32);
    const cfg = tiny({ epochs: 8, batchSize: 4, earlyStopPatience: 2, restoreBest: true });
    // Scripted validation losses (best at epoch 2, then two without improvement ⇒ stop after epoch 4);
    // the weights seen by each validation are recorded to check which ones are restored.
    const scripted = [1.0, 0.6, 0.5, 0.55, 0.7, 0.4, 0.3, 0.2];
    const probe = (m: Riad) => Array.from(m.net.convFinal.layers[0].namedParameters()[0][1].dataSync());
    class Scripted extends Riad {
      calls = 0;
      seen: number[][] = [];
      override async validationLoss(): Promise<number> {
        this.seen.push(probe(this));
        return scripted[this.calls++];
      }
    }
    const d = dir();
    setInitSeed(2);
    const r = new Scripted(cfg);
    await r.fit(source(imgs, 32), { rng: new Rng(3), log: quietLog, runDir: d, validation: val });
    const vlog = JSON.parse(readFileSync(join(d, 'riad-validation.json'), 'utf8')) as { entries: { epoch: number; loss: number }[]; bestEpoch: number; stoppedAfterEpoch: number | null };
    expect(vlog.entries.map((e) => e.loss)).toEqual([1.0, 0.6, 0.5, 0.55, 0.7]);
    expect(vlog.bestEpoch).toBe(2);
    expect(vlog.stoppedAfterEpoch).toBe(4);
    expect(r.lossHistory).toHaveLength(5);
    expect(r.describe()).toMatchObject({ stoppedEarly: true, restoredBest: true, bestValidationEpoch: 3 });
    expect(probe(r)).toEqual(r.seen[2]);
    expect(probe(r)).not.toEqual(r.seen[4]);
    // A resumed stopped run restores and returns without training, with the best weights again.
    setInitSeed(9);
    const again = new Scripted(cfg);
    await again.fit(source(imgs, 32), { rng: new Rng(3), log: quietLog, runDir: d, validation: val, resume: true });
    expect(again.lossHistory).toEqual([]);
    expect(probe(again)).toEqual(r.seen[2]);
    // save/load: PyTorch-named safetensors + riad.json; identical scores after loading.
    await r.save(join(d, 'model'));
    expect(existsSync(join(d, 'model', 'model.safetensors'))).toBe(true);
    setInitSeed(10);
    const loaded = new Riad(cfg);
    await loaded.load(join(d, 'model'));
    const x = val.batch(0, 2);
    const [p1, p2] = [r.predict(x), loaded.predict(x)];
    expect(Array.from(await p2.scores.data())).toEqual(Array.from(await p1.scores.data()));
    tf.dispose([x, p1.scores, p1.maps, p2.scores, p2.maps]);
    [r, again, loaded].forEach((m) => m.dispose());
  });

  it('tiny run on synthetic textures: loss falls, defects score higher than normals', async () => {
    const size = 32;
    const train = Array.from({ length: 12 }, (_, i) => renderSyntheticSample('synthetic_texture', 'train', 'good', i, { size }).image);
    const good = Array.from({ length: 6 }, (_, i) => renderSyntheticSample('synthetic_texture', 'test', 'good', i, { size }).image);
    const bad = (['scratch', 'hole', 'color_spot', 'missing_part'] as const).flatMap((k) => [0, 1].map((i) => renderSyntheticSample('synthetic_texture', 'test', k, i, { size }).image));
    setInitSeed(1);
    const r = new Riad(tiny({ width: 8, epochs: 6, batchSize: 4, lr: 3e-3 }));
    await r.fit(source(train, size), { rng: new Rng(1), log: quietLog, runDir: dir() });
    const h = r.lossHistory;
    expect(h).toHaveLength(18);
    const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
    expect(mean(h.slice(-4))).toBeLessThan(0.7 * mean(h.slice(0, 4)));
    const test = source([...good, ...bad], size);
    const x = test.batch(0, test.length);
    const p = r.predict(x);
    const scores = Array.from(await p.scores.data());
    const auc = auroc(scores, [...good.map(() => 0), ...bad.map(() => 1)]);
    // Deterministic on wasm. Init/run seeds 1-4 today: AUROC 0.958/0.979/0.938/0.958, last/first
    // loss 0.51/0.66/0.52/0.59 (seed 1 runs here). The floor sits below every seed with margin
    // and fails a 25 % drop (0.72).
    expect(auc).toBeGreaterThan(0.85);
    tf.dispose([x, p.scores, p.maps]);
    r.dispose();
  });
});

describe('RIAD method definition', () => {
  it('is registered; profiles resolve; image-size override scales the smoothing', () => {
    expect(getMethod('riad').name).toBe('riad');
    const paper = riadMethod.resolveConfig('paper', {});
    expect(paper).toMatchObject({ crop: 256, width: 64, batchSize: 4, epochs: 300, lr: 1e-4, weightDecay: 1e-5, earlyStopPatience: 20 });
    expect(paper.smoothing).toEqual({ kind: 'mean', size: 21 });
    const c = riadMethod.resolveConfig('paper', { imageSize: 128, epochs: 5 });
    expect(c).toMatchObject({ crop: 128, resize: 128, epochs: 5 });
    expect(c.smoothing).toEqual({ kind: 'mean', size: 11 });
    expect(() => riadMethod.resolveConfig('cpu', { backbone: 'resnet18' })).toThrow(/no backbone/);
  });
});
