/**
 * PatchCore persistence (src/models/patchcore/model.ts save/load): a memory bank written by one
 * detector and loaded into a fresh one (new backbone built from the same seed, nothing shared)
 * scores bit-identically, maps included. A different backbone seed must change the scores, so
 * the equality is not the trivial one of two detectors that ignore their inputs.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderSyntheticSample } from '../src/data/synthetic/index.js';
import { WeightsError } from '../src/errors.js';
import type { AnomalyDetector } from '../src/models/types.js';
import { getMethod } from '../src/registry.js';
import { InMemoryImageSource } from '../src/run/imageSource.js';
import { setupRuntime } from '../src/runtime.js';
import { Rng } from '../src/util/rng.js';

const size = 64;
let root = '';
beforeAll(async () => {
  await setupRuntime('wasm');
  root = mkdtempSync(join(tmpdir(), 'adbench-pc-save-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function source(kind: 'train' | 'test', n: number, defect = false): InMemoryImageSource {
  const imgs = Array.from({ length: n }, (_, i) => ({
    data: renderSyntheticSample('synthetic_object', kind, defect ? 'hole' : 'good', i, { size, seed: 4 }).image,
    h: size, w: size, c: 3 as const,
  }));
  return new InMemoryImageSource(imgs.map((_, i) => `${kind}${defect ? '-bad' : ''}${i}`), imgs);
}

const method = getMethod('patchcore');
// resnet18 random-init at 64 px: 8x8 patch grid; 10 % coreset of 6 x 64 patches = 38 vectors.
const config = method.resolveConfig('cpu', { imageSize: size, backbone: 'resnet18', set: { coresetRatio: '0.1', batchSize: '3' } });
const create = (seed: number): Promise<AnomalyDetector> =>
  method.create(config, { backboneInit: 'random', seed, log: () => {}, warn: () => {} });

function scoreAll(d: AnomalyDetector, x: tf.Tensor4D): { scores: Float32Array; maps: Float32Array } {
  const p = d.predict(x);
  const out = { scores: p.scores.dataSync() as Float32Array, maps: p.maps.dataSync() as Float32Array };
  tf.dispose([p.scores, p.maps]);
  return out;
}

describe('PatchCore save → load → predict', () => {
  it('a fresh detector loading the saved bank gives bit-identical scores and maps', async () => {
    const fitted = await create(7);
    await fitted.fit(source('train', 6), { rng: new Rng(3), log: () => {}, runDir: join(root, 'run') });
    const all = [source('test', 2), source('test', 2, true)];
    const x = tf.concat(all.map((s) => s.batch(0, s.length))) as tf.Tensor4D;
    const want = scoreAll(fitted, x);
    await fitted.save(join(root, 'model'));
    fitted.dispose();

    const fresh = await create(7);
    expect(() => fresh.predict(x)).toThrow(/before fit\/load/);
    await fresh.load(join(root, 'model'));
    const got = scoreAll(fresh, x);
    expect(got.scores.length).toBe(4);
    expect(got.maps.length).toBe(4 * size * size);
    expect(Array.from(got.scores)).toEqual(Array.from(want.scores));
    expect(Array.from(got.maps)).toEqual(Array.from(want.maps));
    expect(new Set(want.scores).size).toBe(4);
    expect(fresh.describe()).toMatchObject({ memoryBankSize: 38, featuresBeforeCoreset: 384 });
    fresh.dispose();

    // Control: the same bank behind another backbone scores differently.
    const other = await create(8);
    await other.load(join(root, 'model'));
    const diff = scoreAll(other, x);
    expect(Array.from(diff.scores)).not.toEqual(Array.from(want.scores));
    other.dispose();
    x.dispose();
  });

  it('loading from a folder without a bank is a WeightsError naming the folder', async () => {
    const d = await create(7);
    const empty = mkdtempSync(join(root, 'empty-'));
    await expect(d.load(empty)).rejects.toThrow(WeightsError);
    await expect(d.load(empty)).rejects.toThrow(empty);
    d.dispose();
  });
});
