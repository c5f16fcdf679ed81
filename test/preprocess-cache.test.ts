import { mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSyntheticCategory, indexCategory, loadSamples } from '../src/data/index.js';
import { cacheKey } from '../src/data/preprocessCache.js';

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'adbench-cache-'));
  await generateSyntheticCategory('synthetic_object', join(dir, 'data'), { size: 40, seed: 2, nTrain: 3, nTestGood: 1, nPerDefect: 1 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('preprocessing cache', () => {
  it('returns exactly what decoding returns, keyed by file stamp and transform', async () => {
    const index = indexCategory('synthetic_object', { root: join(dir, 'data') });
    const samples = [...index.train, ...index.test];
    const t = { size: 36, keepAspect: true, crop: 32 };
    const cache = join(dir, 'cache');
    const fresh = await loadSamples(samples, t, 2, null);
    const first = await loadSamples(samples, t, 2, cache);
    expect(readdirSync(cache).length).toBe(samples.length);
    const second = await loadSamples(samples, t, 2, cache);
    for (let i = 0; i < samples.length; i++) {
      expect(Array.from(second[i].image.data)).toEqual(Array.from(fresh[i].image.data));
      expect(Array.from(second[i].mask.data)).toEqual(Array.from(first[i].mask.data));
      expect(second[i].image.h).toBe(32);
    }
    // A different transform or a touched file is a different entry.
    expect(cacheKey(samples[0], { ...t, crop: 30 })).not.toBe(cacheKey(samples[0], t));
    const before = cacheKey(samples[0], t);
    utimesSync(samples[0].path, new Date(), new Date(Date.now() + 5000));
    expect(cacheKey(samples[0], t)).not.toBe(before);
  });
});
