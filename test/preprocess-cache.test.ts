import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
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

  it('hits on the second load (nothing decoded or rewritten; the stored bytes are what comes back); a changed transform misses', async () => {
    const index = indexCategory('synthetic_object', { root: join(dir, 'data') });
    const samples = [...index.train, ...index.test];
    const t = { size: 36, keepAspect: true, crop: 32 };
    const cache = join(dir, 'cache-hit');
    const fresh = await loadSamples(samples, t, 2, null);
    await loadSamples(samples, t, 2, cache);
    const entry = (i: number, tt = t): string => join(cache, `${cacheKey(samples[i], tt)}.bin`);
    const old = new Date('2001-01-01T00:00:00Z');
    for (let i = 0; i < samples.length; i++) utimesSync(entry(i), old, old);
    // Mark one stored pixel: a hit must return the marked value, a decode the real one.
    const bytes = readFileSync(entry(0));
    const pixel0 = 4 + bytes.readUInt32LE(0);
    bytes.writeFloatLE(0.123, pixel0);
    writeFileSync(entry(0), bytes);
    utimesSync(entry(0), old, old);

    const hit = await loadSamples(samples, t, 2, cache);
    expect(hit[0].image.data[0]).toBeCloseTo(0.123, 6);
    expect(fresh[0].image.data[0]).not.toBeCloseTo(0.123, 6);
    expect(Array.from(hit[0].image.data.subarray(1))).toEqual(Array.from(fresh[0].image.data.subarray(1)));
    for (let i = 1; i < samples.length; i++) {
      expect(Array.from(hit[i].image.data), samples[i].id).toEqual(Array.from(fresh[i].image.data));
      expect(Array.from(hit[i].mask.data), samples[i].id).toEqual(Array.from(fresh[i].mask.data));
    }
    for (let i = 0; i < samples.length; i++) expect(statSync(entry(i)).mtimeMs, `entry ${i} rewritten`).toBe(old.getTime());

    // Another transform: every sample misses, is decoded and stored beside the old entries.
    const t2 = { ...t, crop: 28 };
    const other = await loadSamples(samples, t2, 2, cache);
    expect(readdirSync(cache).length).toBe(2 * samples.length);
    expect(other[0].image.h).toBe(28);
    expect(other[0].image.data[0]).not.toBeCloseTo(0.123, 6);
    for (let i = 0; i < samples.length; i++) expect(statSync(entry(i)).mtimeMs).toBe(old.getTime());

    // A damaged (truncated) entry is a miss: decoded again and rewritten.
    truncateSync(entry(1), 10);
    const repaired = await loadSamples(samples.slice(1, 2), t, 1, cache);
    expect(Array.from(repaired[0].image.data)).toEqual(Array.from(fresh[1].image.data));
    expect(statSync(entry(1)).size).toBeGreaterThan(32 * 32 * 13);
    expect(statSync(entry(1)).mtimeMs).not.toBe(old.getTime());
  });
});
