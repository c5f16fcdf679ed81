import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupRuntime } from '../src/runtime.js';
import type { BackendInfo } from '../src/backend.js';
import { generateSyntheticCategory } from '../src/data/index.js';
import { getMethod } from '../src/registry.js';
import { prepareDataset } from '../src/run/prepareDataset.js';
import { trainAndEvaluate } from '../src/run/trainAndEvaluate.js';
import { InMemoryImageSource } from '../src/run/imageSource.js';
import { Rng } from '../src/util/rng.js';

const sharedDarknet = resolve('..', 'shared', 'weights', 'ml5_darknet_darknettiny', 'model.json');
let dir: string;
let backend: BackendInfo;

beforeAll(async () => {
  backend = await setupRuntime('wasm');
  dir = mkdtempSync(join(tmpdir(), 'adbench-patchcore-'));
  await generateSyntheticCategory('synthetic_object', dir, { size: 64, seed: 3, nTrain: 14, nTestGood: 6, nPerDefect: 3 });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function run(backbone: string, init: 'pretrained' | 'random', out: string) {
  const method = getMethod('patchcore');
  // 14 images x 64 patches: the cpu profile's 1% coreset would keep 8 vectors; use the paper's 10%.
  const config = method.resolveConfig('cpu', { imageSize: 64, backbone, set: { coresetRatio: '0.1' } });
  // NB: a synthetic_* category always resolves to prepareDataset's own default-option copy
  // (./data/synthetic, seed 0, 60 train images), not the small set generated into `dir` above.
  const dataset = await prepareDataset({ category: 'synthetic_object', data: dir, seed: 0 });
  return trainAndEvaluate({
    method, config, profile: 'cpu', dataset, backend, seed: 0, runDir: join(dir, out), backboneInit: init,
    heatmaps: 1, inferenceRepeats: 1, cacheDir: null, log: () => {}, warn: () => {},
  });
}

describe('PatchCore end to end', () => {
  it.skipIf(!existsSync(sharedDarknet))('separates synthetic defects from normals with pretrained Tiny Darknet (AUROC > 0.9) and writes the run folder', async () => {
    const r = await run('tiny_darknet', 'pretrained', 'run-darknet');
    // Deterministic (run seed 0, wasm): image AUROC 0.967, pixel AUROC 0.954 today;
    // a 25 % drop (0.73 / 0.72) fails both floors.
    expect(r.metrics.image.auroc).toBeGreaterThan(0.9);
    expect(r.metrics.pixel.auroc).toBeGreaterThan(0.9);
    for (const f of ['config.json', 'metrics.json', 'scores.csv', 'report.md', 'costs.json', 'power-trace.csv', 'macs.csv', 'power.png']) {
      expect(existsSync(join(r.runDir, f)), f).toBe(true);
    }
    const metrics = JSON.parse(readFileSync(join(r.runDir, 'metrics.json'), 'utf8'));
    // metrics.json carries this run's numbers, not placeholders.
    expect(metrics.image.auroc).toBe(r.metrics.image.auroc);
    expect(metrics.image.ap).toBe(r.metrics.image.ap);
    expect(metrics.pixel.auroc).toBe(r.metrics.pixel.auroc);
    for (const k of ['threshold', 'precision', 'recall', 'f1']) {
      expect(metrics.calibrated).toHaveProperty(k);
      expect(metrics.oracle).toHaveProperty(k);
    }
    const config = JSON.parse(readFileSync(join(r.runDir, 'config.json'), 'utf8'));
    expect(config.backend.active).toBe('wasm');
    expect(config.split.train.length).toBeGreaterThan(0);
    const testIds = new Set<string>(config.split.test);
    for (const id of [...config.split.train, ...config.split.validation]) expect(testIds.has(id)).toBe(false);
    expect(readFileSync(join(r.runDir, 'report.md'), 'utf8')).toContain('Synthetic');
    r.detector.dispose();
  });

  it('says "random-init backbone" in the report and keeps tensors flat across scoring calls', async () => {
    const r = await run('resnet18', 'random', 'run-random');
    const report = readFileSync(join(r.runDir, 'report.md'), 'utf8');
    expect(report).toContain('random-init backbone');
    // Better than chance even with random features: defects are local outliers. Image AUROC 0.713
    // and pixel AUROC 0.888 today (deterministic); a 25 % drop (0.53 / 0.67) fails the floors.
    expect(r.metrics.image.auroc).toBeGreaterThan(0.6);
    expect(r.metrics.pixel.auroc).toBeGreaterThan(0.75);
    const rng = new Rng(1);
    const images = Array.from({ length: 2 }, () => ({ data: Float32Array.from({ length: 64 * 64 * 3 }, () => rng.next()), h: 64, w: 64, c: 3 as const }));
    const src = new InMemoryImageSource(['a', 'b'], images);
    const x = src.batch(0, 2);
    const warm = r.detector.predict(x);
    tf.dispose([warm.scores, warm.maps]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const p = r.detector.predict(x);
      tf.dispose([p.scores, p.maps]);
    }
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    r.detector.dispose();
  });
});
