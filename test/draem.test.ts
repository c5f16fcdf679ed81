/**
 * DRAEM (src/models/draem; draem.md §7 "Minimum faithful test"): networks (names, shapes, exact
 * parameter counts), loss terms, the image score's padded mean filter, profiles, registry-driven
 * anomaly synthesis, flat memory, bit-exact resume after a crash, NaN → TrainingError, save/load,
 * and a tiny training run on synthetic data that must separate planted defects from normals.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYNTHETIC_DEFECTS, renderSyntheticSample } from '../src/data/synthetic/index.js';
import { ConfigError, TrainingError } from '../src/errors.js';
import { auroc } from '../src/eval/metrics/index.js';
import { setInitSeed } from '../src/nn/init.js';
import { readSafetensorsHeader } from '../src/nn/safetensors.js';
import { InMemoryImageSource } from '../src/run/imageSource.js';
import { setupRuntime } from '../src/runtime.js';
import { getMethod } from '../src/registry.js';
import { CheckpointDir } from '../src/train/checkpoint.js';
import { Rng } from '../src/util/rng.js';
import {
  DRAEM_DISCRIMINATIVE_PARAMS, DRAEM_PROFILES, DRAEM_RECONSTRUCTIVE_PARAMS, Draem, DiscriminativeSubNetwork,
  ReconstructiveSubNetwork, draemLoss, draemMethod, imageScores, scaledScoreFilter, type DraemConfig, type DraemHooks,
} from '../src/models/draem/index.js';

let root = '';
let trained: { model: Draem; x: tf.Tensor4D; cfg: DraemConfig } | null = null;
const quietLog = (): void => {};

beforeAll(async () => {
  await setupRuntime('wasm');
  root = mkdtempSync(join(tmpdir(), 'adbench-draem-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function runDir(name: string): string {
  return join(root, name);
}

/** A tiny configuration for fast tests (the cpu profile's pipeline at toy scale). */
function tinyConfig(over: Partial<DraemConfig> = {}): DraemConfig {
  return {
    ...DRAEM_PROFILES.cpu,
    resize: 32,
    crop: 32,
    epochs: 3,
    batchSize: 2,
    reconstructiveWidth: 2,
    discriminativeWidth: 2,
    scoreFilterSize: 3,
    checkpointEveryEpochs: 1,
    keepCheckpoints: 3,
    ...over,
  };
}

function syntheticSource(n: number, size: number, kind: 'train' | 'test' = 'train'): InMemoryImageSource {
  const ids = Array.from({ length: n }, (_, i) => `s${i}`);
  const imgs = ids.map((_, i) => ({ data: renderSyntheticSample('synthetic_texture', kind, 'good', i, { size, seed: 5 }).image, h: size, w: size, c: 3 as const }));
  return new InMemoryImageSource(ids, imgs);
}

function ctxFor(dir: string, extra: { resume?: boolean } = {}) {
  return { rng: new Rng(11), log: quietLog, runDir: dir, ...extra };
}

function build(config: DraemConfig, hooks: DraemHooks = {}, seed = 1): Draem {
  setInitSeed(seed);
  return new Draem(config, hooks);
}

describe('DRAEM networks (draem.md §2, §7.1)', () => {
  it('official widths have exactly 69,048,579 + 28,374,146 parameters and the official state-dict names', () => {
    const rec = new ReconstructiveSubNetwork(128);
    const disc = new DiscriminativeSubNetwork(64);
    try {
      expect(rec.numParameters()).toBe(DRAEM_RECONSTRUCTIVE_PARAMS);
      expect(disc.numParameters()).toBe(DRAEM_DISCRIMINATIVE_PARAMS);
      expect(rec.numParameters() + disc.numParameters()).toBe(97_422_725);
      const recNames = rec.namedParameters().map(([k]) => k);
      expect(recNames).toContain('encoder.block1.0.weight');
      expect(recNames).toContain('encoder.block5.4.bias');
      expect(recNames).toContain('decoder.up1.1.weight');
      expect(recNames).toContain('decoder.db4.3.weight');
      expect(recNames).toContain('decoder.fin_out.0.weight');
      const discNames = disc.namedParameters().map(([k]) => k);
      expect(discNames).toContain('encoder_segment.block6.4.weight');
      expect(discNames).toContain('decoder_segment.up_b.2.weight');
      expect(discNames).toContain('decoder_segment.db_b.0.weight');
      expect(discNames).toContain('decoder_segment.fin_out.0.bias');
      // db_b.0 takes the 1024-channel concat [up_b(b6), b5]; db1.0 768 = 256 + 512 (stored HWIO)
      expect(disc.decoder_segment.db_b.layers[0].namedParameters()[0][1].shape).toEqual([3, 3, 1024, 512]);
      expect(disc.decoder_segment.db1.layers[0].namedParameters()[0][1].shape).toEqual([3, 3, 768, 256]);
      expect(disc.decoder_segment.fin_out.layers[0].namedParameters()[0][1].shape).toEqual([3, 3, 64, 2]);
    } finally {
      rec.dispose();
      disc.dispose();
    }
  });

  it('reconstruction keeps the input shape; the segmenter maps 6 channels to 2 at full resolution', () => {
    const rec = new ReconstructiveSubNetwork(4);
    const disc = new DiscriminativeSubNetwork(4);
    try {
      const y = tf.tidy(() => {
        const x = tf.randomUniform([2, 64, 64, 3]) as tf.Tensor4D;
        const r = rec.call(x);
        return [r.shape, disc.call(tf.concat([r, x], 3) as tf.Tensor4D).shape];
      });
      expect(y).toEqual([[2, 64, 64, 3], [2, 64, 64, 2]]);
      expect(() => tf.tidy(() => disc.call(tf.zeros([1, 48, 48, 6]) as tf.Tensor4D))).toThrow(/multiple of 32/);
    } finally {
      rec.dispose();
      disc.dispose();
    }
  });
});

describe('DRAEM loss and score (draem.md §3, §4, §7.2, §7.4)', () => {
  it('perfect reconstruction: L2 = SSIM loss = 0; focal for P = (0.9, 0.1), target 0 is ≈ 0.0010535', () => {
    const v = tf.tidy(() => {
      const img = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const probs = tf.tile(tf.tensor4d([0.9, 0.1], [1, 1, 1, 2]), [2, 16, 16, 1]) as tf.Tensor4D;
      const t = draemLoss(img, img, probs, tf.zeros([2, 16, 16, 1]) as tf.Tensor4D);
      return [t.l2, t.ssim, t.focal, t.total].map((s) => s.dataSync()[0]);
    });
    const pt = 0.9 * (1 - 1e-5) + 0.1 * 1e-5 + 1e-5;
    const focal = -((1 - pt) ** 2) * Math.log(pt);
    expect(v[0]).toBe(0);
    expect(Math.abs(v[1])).toBeLessThan(1e-6);
    expect(v[2]).toBeCloseTo(focal, 6);
    expect(v[3]).toBeCloseTo(focal, 5);
  });

  it('image score: a 21×21 block of ones scores exactly 1; one hot pixel scores 1/441, in the corner too', () => {
    const s = tf.tidy(() => {
      const block = tf.pad(tf.ones([21, 21]), [[117, 118], [117, 118]]);
      const centre = tf.buffer([256, 256], 'float32');
      centre.set(1, 128, 128);
      const corner = tf.buffer([256, 256], 'float32');
      corner.set(1, 0, 0);
      const maps = tf.stack([block, centre.toTensor(), corner.toTensor()]) as tf.Tensor3D;
      return Array.from(imageScores(maps, 21).dataSync());
    });
    expect(s[0]).toBeCloseTo(1, 6);
    expect(s[1]).toBeCloseTo(1 / 441, 8);
    expect(s[2]).toBeCloseTo(1 / 441, 8); // zero padding counted (1/121 if it were excluded)
  });
});

describe('DRAEM profiles and method definition', () => {
  it('paper profile is the official configuration; cpu profile is documented as reduced', () => {
    const p = draemMethod.resolveConfig('paper', {});
    expect(p).toMatchObject({
      resize: 256, crop: 256, batchSize: 8, epochs: 700, lr: 1e-4, lrSchedule: 'official',
      reconstructiveWidth: 128, discriminativeWidth: 64, anomalyStrategy: 'draem', scoreFilterSize: 21,
    });
    const c = draemMethod.resolveConfig('cpu', {});
    expect(c.crop % 32).toBe(0);
    expect(c.scoreFilterSize).toBe(scaledScoreFilter(c.crop));
    expect(scaledScoreFilter(256)).toBe(21);
    expect(scaledScoreFilter(64)).toBe(5);
    const o = draemMethod.resolveConfig('paper', { imageSize: 128, epochs: 50 });
    expect([o.resize, o.crop, o.epochs, o.scoreFilterSize]).toEqual([128, 128, 50, 11]);
    expect(() => draemMethod.resolveConfig('paper', { imageSize: 100 })).toThrow(/multiple of 32/);
    expect(() => draemMethod.resolveConfig('gpu', {})).toThrow(ConfigError);
    expect(() => draemMethod.resolveConfig('cpu', { backbone: 'resnet18' })).toThrow(/no pretrained backbone/);
    expect(getMethod('draem')).toBe(draemMethod as unknown);
  });

  it('takes its anomaly generator from the registry by name', () => {
    const d = build(tinyConfig({ anomalyStrategy: 'perlin' }));
    expect(d.anomalyStrategy().name).toBe('perlin');
    d.dispose();
    expect(() => build(tinyConfig({ anomalyStrategy: 'nope' })).anomalyStrategy()).toThrow(/unknown anomaly strategy 'nope'/);
    expect(() => build(tinyConfig({ anomalyStrategy: 'riad-masks' })).anomalyStrategy()).toThrow(/synthesises anomalies/);
  });
});

/**
 * Image AUROC on a fixed synthetic texture test set: 24 normals and 6 of each defect (24); one
 * batch. Bigger than the 16 images the memory checks use: at 16 a single swapped pair moved the
 * AUROC by 1/64 and seed noise dominated.
 */
function textureAuroc(d: Draem, size: number): number {
  const good = Array.from({ length: 24 }, (_, i) => renderSyntheticSample('synthetic_texture', 'test', 'good', i, { size, seed: 5 }).image);
  const bad = SYNTHETIC_DEFECTS.flatMap((k) => [0, 1, 2, 3, 4, 5].map((i) => renderSyntheticSample('synthetic_texture', 'test', k, i, { size, seed: 5 }).image));
  const all = [...good, ...bad];
  const x = new InMemoryImageSource(all.map((_, i) => `t${i}`), all.map((data) => ({ data, h: size, w: size, c: 3 as const }))).batch(0, all.length);
  const p = d.predict(x);
  const scores = Array.from(p.scores.dataSync());
  tf.dispose([x, p.scores, p.maps]);
  return auroc(scores, [...good.map(() => 0), ...bad.map(() => 1)]);
}

describe('DRAEM training loop on the shared trainer', () => {
  it('learns: loss falls and planted synthetic defects outscore normals; tensor count flat over steps and predicts', async () => {
    // 32 px texture, widths 8/8, 50 steps of 24: ~20 s of wasm per run on 2 idle cores, two runs.
    // Learning is sped up for the test only: lr 5e-3, a quarter clean samples instead of half and
    // Perlin scales up to 8 (blobs, not 1-px speckle at 32 px). Deterministic given the seeds.
    // Float rounding alone sends these tiny nets elsewhere (the op-chain and the fused BatchNorm
    // gave different AUROCs at the same seed; the single-run 0.969 recorded earlier became 0.797
    // after later kernel changes), so the bar is on the mean of two seeds on 48 test images.
    // Today (textureAuroc, init/run seeds 1-4): 0.865/0.873/0.828/0.714 (colour spots are near
    // chance at this size, the other defects 0.6-1.0); the mean of seeds 1-2 is 0.869, and every
    // pair of the four has a mean >= 0.77. Floor 0.75: a 25 % drop (0.65) fails it.
    const size = 32;
    const counts: number[] = [];
    const cfg = tinyConfig({
      epochs: 50, batchSize: 24, reconstructiveWidth: 8, discriminativeWidth: 8, lr: 5e-3, checkpointEveryEpochs: 25,
      anomalyParams: { cleanProbability: 0.25, maxScaleExp: 3 },
    });
    const d = build(cfg, { beforeStep: () => counts.push(tf.memory().numTensors) });
    const before = tf.memory().numTensors;
    await d.fit(syntheticSource(24, size), ctxFor(runDir('learn')));
    // Adam's moment slots appear during step 1. The next batch is synthesised while a step runs
    // (prepareBatch prefetch), so its few tensors come and go; a leak would make the count climb.
    expect(counts).toHaveLength(50);
    const late = counts.slice(1);
    expect(Math.max(...late) - Math.min(...late)).toBeLessThanOrEqual(12);
    expect(Math.max(...late.slice(25))).toBeLessThanOrEqual(Math.max(...late.slice(0, 24)));
    expect(tf.memory().numTensors).toBe(before); // optimizer disposed, no batch left over
    const terms = d.lastFit!.epochTerms;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    // last/first loss 0.53/0.61/0.55/0.54 over seeds 1-4
    expect(mean(terms.slice(-5).map((t) => t.total))).toBeLessThan(0.7 * mean(terms.slice(0, 3).map((t) => t.total)));

    const good = Array.from({ length: 8 }, (_, i) => renderSyntheticSample('synthetic_texture', 'test', 'good', i, { size, seed: 5 }));
    const bad = SYNTHETIC_DEFECTS.flatMap((k) => [0, 1].map((i) => renderSyntheticSample('synthetic_texture', 'test', k, i, { size, seed: 5 })));
    const all = [...good, ...bad];
    const test = new InMemoryImageSource(all.map((_, i) => `t${i}`), all.map((s) => ({ data: s.image, h: size, w: size, c: 3 as const })));
    const x = test.batch(0, test.length);
    const after: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = d.predict(x);
      expect(p.scores.shape).toEqual([16]);
      expect(p.maps.shape).toEqual([16, size, size]);
      tf.dispose([p.scores, p.maps]);
      after.push(tf.memory().numTensors);
    }
    expect(new Set(after).size).toBe(1);
    x.dispose();
    const a1 = textureAuroc(d, size);
    trained = { model: d, x: test.batch(0, 4), cfg };

    const second = build(cfg, {}, 2);
    await second.fit(syntheticSource(24, size), { rng: new Rng(12), log: quietLog, runDir: runDir('learn-2') });
    const a2 = textureAuroc(second, size);
    second.dispose();
    expect((a1 + a2) / 2, `AUROC seeds 1, 2: ${a1}, ${a2}`).toBeGreaterThan(0.75);
  });

  it('a run killed mid-epoch resumes from its last checkpoint and continues bit-exactly (every later loss, final weights)', async () => {
    const cfg = tinyConfig();
    const data = syntheticSource(4, 32); // 2 steps per epoch, 6 steps
    const straight = build(cfg);
    await straight.fit(data, ctxFor(runDir('straight')));
    const ref = straight.lastFit!.losses;
    expect(ref).toHaveLength(6);

    // Crash at step 4 (epoch 2, batch 2): the epoch-1 checkpoint (step 2) is the last one.
    const dir = runDir('killed');
    const killed = build(cfg, { beforeStep: (s) => { if (s.step === 3) throw new Error('simulated crash at step 4'); } });
    await expect(killed.fit(data, ctxFor(dir))).rejects.toThrow(/simulated crash/);
    expect(killed.lastFit).toBeNull();
    expect(new CheckpointDir(join(dir, 'checkpoints')).latest()).toMatch(/ckpt-000000002\.adbck$/);
    killed.dispose();

    // A new process: other init seed, so the weights can only come from the checkpoint.
    const resumed = build(cfg, {}, 99);
    await resumed.fit(data, ctxFor(dir, { resume: true }));
    // Saved at step 2, resumed: the next step's loss and every later one equal the uninterrupted run's.
    expect(resumed.lastFit!.startStep).toBe(2);
    expect(resumed.lastFit!.resumedFrom).toMatch(/ckpt-000000002\.adbck$/);
    expect(resumed.lastFit!.losses).toEqual(ref.slice(2));

    const w = (d: Draem) => d.modules().flatMap((m) => m.namedEntries().map(([, e]) => Array.from(e.variable.dataSync())));
    expect(w(resumed)).toEqual(w(straight));
    // a fresh (non-resume) run over existing checkpoints is refused, pointing at --resume
    await expect(straight.fit(data, ctxFor(runDir('straight')))).rejects.toThrow(/already has checkpoints.*--resume/);
    for (const d of [straight, resumed]) d.dispose();
  });

  it('a NaN loss stops training with a TrainingError naming the step', async () => {
    const nan = new InMemoryImageSource(['a', 'b'], [0, 1].map(() => ({ data: new Float32Array(32 * 32 * 3).fill(NaN), h: 32, w: 32, c: 3 as const })));
    const d = build(tinyConfig({ epochs: 1 }));
    const err = await d.fit(nan, ctxFor(runDir('nan'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingError);
    expect((err as Error).message).toMatch(/non-finite loss NaN at step 1\/1/);
    d.dispose();
  });

  it('save/load round-trips both networks as official-name safetensors; predictions match', async () => {
    if (!trained) throw new Error('needs the model trained by the learning test');
    const { model: d, x, cfg } = trained;
    const dir = runDir('save-model');
    await d.save(dir);
    expect(existsSync(join(dir, 'reconstructive.safetensors'))).toBe(true);
    const names = [...readSafetensorsHeader(join(dir, 'discriminative.safetensors')).entries.keys()];
    expect(names).toContain('decoder_segment.fin_out.0.weight');
    expect(names).toContain('encoder_segment.block1.1.running_var');
    const a = d.predict(x);
    const e = build(cfg, {}, 42);
    await e.load(dir);
    const b = e.predict(x);
    expect(Array.from(b.scores.dataSync())).toEqual(Array.from(a.scores.dataSync()));
    expect(Array.from(b.maps.dataSync())).toEqual(Array.from(a.maps.dataSync()));
    tf.dispose([a.scores, a.maps, b.scores, b.maps, x]);
    const other = build({ ...cfg, reconstructiveWidth: 4 });
    await expect(other.load(dir)).rejects.toThrow(/widths 8\/8/);
    for (const m of [d, e, other]) m.dispose();
  });
});
