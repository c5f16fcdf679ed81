/**
 * `--seed` reproducibility end to end (src/run/trainAndEvaluate.ts, as experiments/train.ts calls
 * it): the same seed gives a byte-identical scores.csv, another seed a different one. RIAD and
 * DRAEM (trained: initialisation, training masks / synthetic anomalies and the validation split
 * follow the seed) and PatchCore (random-init backbone, random projection and coreset start follow the seed).
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendInfo } from '../src/backend.js';
import { generateSyntheticCategory } from '../src/data/index.js';
import type { ConfigOverrides } from '../src/models/method.js';
import { getMethod } from '../src/registry.js';
import { prepareDataset } from '../src/run/prepareDataset.js';
import { trainAndEvaluate } from '../src/run/trainAndEvaluate.js';
import { setupRuntime } from '../src/runtime.js';

let root = '';
let backend: BackendInfo;
beforeAll(async () => {
  backend = await setupRuntime('wasm');
  root = mkdtempSync(join(tmpdir(), 'adbench-seed-'));
  // Renamed: a category called synthetic_* would make prepareDataset use its own generated copy.
  await generateSyntheticCategory('synthetic_texture', join(root, 'gen'), { size: 40, seed: 6, nTrain: 8, nTestGood: 3, nPerDefect: 1 });
  mkdirSync(join(root, 'data'));
  renameSync(join(root, 'gen', 'synthetic_texture'), join(root, 'data', 'widget'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let runs = 0;
/** One CLI-equivalent run; returns scores.csv as written. */
async function scoresCsv(methodName: string, overrides: ConfigOverrides, seed: number): Promise<string> {
  const method = getMethod(methodName);
  const config = method.resolveConfig('cpu', overrides);
  const dataset = await prepareDataset({ category: 'widget', data: join(root, 'data'), seed });
  const runDir = join(root, `${methodName}-${seed}-${runs++}`);
  await trainAndEvaluate({
    method, config, profile: 'cpu', dataset, backend, seed, runDir, backboneInit: 'random',
    heatmaps: 0, inferenceRepeats: 1, cacheDir: null, log: () => {}, warn: () => {},
  }).then((r) => r.detector.dispose());
  return readFileSync(join(runDir, 'scores.csv'), 'utf8');
}

/** Test-row scores by id (test rows are the same images whatever the seed). */
function testScores(csv: string): Map<string, string> {
  const rows = csv.trim().split('\n').slice(1).map((l) => l.split(','));
  return new Map(rows.filter((r) => r[4] === 'test').map((r) => [r[0], r[1]]));
}

function expectReproducible(a: string, again: string, other: string): void {
  expect(testScores(a).size).toBe(7);
  expect(again).toBe(a);
  const sa = testScores(a);
  const so = testScores(other);
  expect([...so.keys()].sort()).toEqual([...sa.keys()].sort());
  // Every test image scores differently under the other seed, not just the validation rows.
  for (const [id, s] of sa) expect(so.get(id), id).not.toBe(s);
}

describe('trainAndEvaluate: same seed → byte-identical scores.csv, other seed → different', () => {
  it('RIAD (tiny: 32 px, width 4, 1 epoch)', async () => {
    const o: ConfigOverrides = { imageSize: 32, epochs: 1, set: { width: '4', batchSize: '4' } };
    const a = await scoresCsv('riad', o, 1);
    const again = await scoresCsv('riad', o, 1);
    const other = await scoresCsv('riad', o, 2);
    expectReproducible(a, again, other);
  });

  it('DRAEM (tiny: 32 px, widths 2, 1 epoch; anomaly synthesis follows the seed too)', async () => {
    const o: ConfigOverrides = { imageSize: 32, epochs: 1, set: { reconstructiveWidth: '2', discriminativeWidth: '2', batchSize: '4' } };
    const a = await scoresCsv('draem', o, 1);
    const again = await scoresCsv('draem', o, 1);
    const other = await scoresCsv('draem', o, 2);
    expectReproducible(a, again, other);
  });

  it('PatchCore (random-init resnet18, 32 px)', async () => {
    const o: ConfigOverrides = { imageSize: 32, backbone: 'resnet18', set: { coresetRatio: '0.1' } };
    const a = await scoresCsv('patchcore', o, 1);
    const again = await scoresCsv('patchcore', o, 1);
    const other = await scoresCsv('patchcore', o, 2);
    expectReproducible(a, again, other);
  });
});
