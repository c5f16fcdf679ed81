import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendInfo } from '../src/backend.js';
import { transformMask, type RawImage } from '../src/data/imageIO.js';
import { generateSyntheticCategory } from '../src/data/synthetic/index.js';
import { ConfigError } from '../src/errors.js';
import { defineMethod, type BaseMethodConfig, type ConfigOverrides, type MethodDefinition, type MethodEnv, type ResolveContext } from '../src/models/method.js';
import { defaultProtocol, transformOf, validateProtocol, type MethodProtocol } from '../src/models/protocol.js';
import type { AnomalyDetector, FitContext, ImageSource, PredictOptions, Prediction } from '../src/models/types.js';
import { getMethod } from '../src/registry.js';
import { prepareDataset } from '../src/run/prepareDataset.js';
import { trainAndEvaluate } from '../src/run/trainAndEvaluate.js';
import { setupRuntime } from '../src/runtime.js';

// Items of the method interface every new method relies on: the category reaches resolveConfig,
// create and fit; the declared protocol drives preprocessing, scoring batches, map resolution and
// the scorer's seeded RNG.

interface FakeConfig extends BaseMethodConfig {
  /** Set from the category by resolveConfig (a per-category rule). */
  categoryRule: string;
}

/** What the fake method saw, for assertions. */
const seen = { envCategory: '' as string | undefined, fitCategory: '' as string | undefined, predictBatches: [] as number[], rngDraws: [] as number[] };

class FakeDetector implements AnomalyDetector {
  async fit(_train: ImageSource, ctx: FitContext): Promise<void> {
    seen.fitCategory = ctx.category;
  }
  predict(images: tf.Tensor4D, opts: PredictOptions = {}): Prediction {
    seen.predictBatches.push(images.shape[0]);
    const jitter = opts.rng ? opts.rng.next() : 0;
    if (opts.rng) seen.rngDraws.push(jitter);
    return tf.tidy(() => {
      const maps = tf.mean(images, 3) as tf.Tensor3D;
      return { maps, scores: tf.add(tf.max(maps, [1, 2]), jitter) as tf.Tensor1D };
    });
  }
  modules() {
    return [];
  }
  async save(): Promise<void> {}
  async load(): Promise<void> {}
  dispose(): void {}
  describe() {
    return {};
  }
}

function fakeMethod(protocol: (c: FakeConfig) => MethodProtocol): MethodDefinition<FakeConfig> {
  const base: FakeConfig = { resize: 32, crop: 32, batchSize: 5, categoryRule: 'none' };
  return defineMethod<FakeConfig>({
    name: 'fake', paperId: 'fake', displayName: 'Fake', summary: 'test double', usesSyntheticAnomalies: false,
    profiles: { cpu: base }, defaultProfile: 'cpu',
    resolveConfig: (_p: string, _o: ConfigOverrides, ctx?: ResolveContext) => ({ ...base, categoryRule: ctx?.category === 'synthetic_object' ? 'object rule' : 'other' }),
    protocol,
    create: async (_c: FakeConfig, env: MethodEnv) => {
      seen.envCategory = env.category;
      return new FakeDetector();
    },
  });
}

let dir = '';
let backend: BackendInfo;
beforeAll(async () => {
  backend = await setupRuntime('cpu');
  dir = mkdtempSync(join(tmpdir(), 'adbench-protocol-'));
  await generateSyntheticCategory('synthetic_object', dir, { size: 48, seed: 2, nTrain: 8, nTestGood: 4, nPerDefect: 2 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(method: MethodDefinition<FakeConfig>, out: string, seed = 0) {
  seen.predictBatches = [];
  seen.rngDraws = [];
  const config = method.resolveConfig('cpu', {}, { category: 'synthetic_object' });
  const dataset = await prepareDataset({ category: 'synthetic_object', data: dir, seed: 0 });
  return trainAndEvaluate({
    method, config, profile: 'cpu', dataset, backend, seed, runDir: join(dir, out),
    backboneInit: 'random', heatmaps: 1, inferenceRepeats: 1, cacheDir: null, log: () => {}, warn: () => {},
  });
}

describe('the run hands the category to the method', () => {
  it('resolveConfig gets {category}; create gets env.category; fit gets ctx.category', async () => {
    const m = fakeMethod(defaultProtocol);
    expect(m.resolveConfig('cpu', {}, { category: 'synthetic_object' }).categoryRule).toBe('object rule');
    await run(m, 'category');
    expect(seen.envCategory).toBe('synthetic_object');
    expect(seen.fitCategory).toBe('synthetic_object');
  });
});

describe('declared protocol', () => {
  it('the default protocol gives exactly the transform of before (same preprocessing-cache keys)', () => {
    const p = defaultProtocol({ resize: 256, crop: 224, batchSize: 8 });
    expect(JSON.stringify(transformOf(p.data))).toBe(JSON.stringify({ size: 256, keepAspect: true, crop: 224 }));
    expect(p.evaluation).toMatchObject({ maskThreshold: 0.5, mapSize: 'input', batchSize: 8, stochastic: false });
    expect(transformOf({ resize: 64, resizeMode: 'squash', crop: null, filter: 'pil-bicubic' }, 0.25)).toEqual({ size: 64, keepAspect: false, filter: 'pil-bicubic', maskThreshold: 0.25 });
    // The three methods keep their geometry: PatchCore resize+crop, DRAEM/RIAD squash with no crop.
    expect(transformOf(getMethod('patchcore').protocol(getMethod('patchcore').resolveConfig('cpu', {})).data)).toMatchObject({ keepAspect: true });
    for (const name of ['draem', 'riad']) {
      const m = getMethod(name);
      const c = m.resolveConfig('cpu', {});
      expect(transformOf(m.protocol(c).data)).toEqual({ size: c.crop, keepAspect: false });
      expect(m.protocol(c).evaluation.batchSize).toBe(c.batchSize);
    }
  });

  it('mask rule: nearest resize, then > floor(threshold × full scale)', () => {
    const raw: RawImage = { data: Uint8Array.from([0, 100, 127, 128, 255, 60]), h: 2, w: 3, c: 1, bitDepth: 8, path: 'm.png' };
    expect(Array.from(transformMask(raw).data)).toEqual([0, 0, 0, 1, 1, 0]);
    expect(Array.from(transformMask(raw, { maskThreshold: 0.3 }).data)).toEqual([0, 1, 1, 1, 1, 0]);
  });

  it('invalid declarations are ConfigErrors naming the method and field', () => {
    const p = defaultProtocol({ resize: 32, crop: 32, batchSize: 4 });
    expect(() => validateProtocol('fake', { ...p, evaluation: { ...p.evaluation, batchSize: 0 } })).toThrow(ConfigError);
    expect(() => validateProtocol('fake', { ...p, evaluation: { ...p.evaluation, batchSize: 0 } })).toThrow(/method 'fake'.*evaluation\.batchSize/);
    expect(() => validateProtocol('fake', { ...p, data: { ...p.data, crop: 40 } })).toThrow(/data\.crop/);
    expect(() => validateProtocol('fake', { ...p, evaluation: { ...p.evaluation, mapSize: 0 } })).toThrow(/mapSize/);
  });

  it('scoring uses the evaluation batch size, map size and a seeded rng: reproducible per seed, different across seeds', async () => {
    const m = fakeMethod((c) => {
      const p = defaultProtocol(c);
      return { ...p, evaluation: { ...p.evaluation, batchSize: 3, mapSize: 16, stochastic: true } };
    });
    const a = await run(m, 'stochastic-a');
    // Validation and test sets are scored 3 images at a time (the training batch size is 5).
    expect(Math.max(...seen.predictBatches)).toBe(3);
    expect(seen.rngDraws.length).toBeGreaterThan(2);
    expect(new Set(seen.rngDraws).size).toBe(seen.rngDraws.length); // one stream per batch
    const csv = (r: { runDir: string }) => readFileSync(join(r.runDir, 'scores.csv'), 'utf8');
    const b = await run(m, 'stochastic-b');
    expect(csv(b)).toBe(csv(a));
    const c = await run(m, 'stochastic-c', 1);
    expect(csv(c)).not.toBe(csv(a));
    // Maps met the ground truth at 16×16: pixel metrics exist, config.json records the protocol.
    expect(a.metrics.pixel.auroc).not.toBeNull();
    const cfg = JSON.parse(readFileSync(join(a.runDir, 'config.json'), 'utf8'));
    expect(cfg.protocol.evaluation).toMatchObject({ batchSize: 3, mapSize: 16, stochastic: true });
  });
});
