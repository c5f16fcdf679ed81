import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, DatasetError } from '../src/errors.js';
import { indexCategory, loadSample } from '../src/data/mvtec.js';
import {
  ensureSyntheticCategory, generateSyntheticCategory, renderSyntheticSample, SYNTHETIC_CATEGORIES,
  SYNTHETIC_DEFECTS, syntheticDataNotice, syntheticStandIn,
} from '../src/data/synthetic/index.js';
import { quantize } from '../src/data/synthetic/raster.js';

let tmp: string;
const SMALL = { size: 64, nTrain: 3, nTestGood: 2, nPerDefect: 1 };

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'adbench-syn-'));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out;
}

describe('synthetic renders', () => {
  it('are deterministic in the seed', () => {
    for (const cat of SYNTHETIC_CATEGORIES) {
      const a = renderSyntheticSample(cat, 'test', 'scratch', 4, { size: 64, seed: 7 });
      const b = renderSyntheticSample(cat, 'test', 'scratch', 4, { size: 64, seed: 7 });
      const c = renderSyntheticSample(cat, 'test', 'scratch', 4, { size: 64, seed: 8 });
      expect(Buffer.from(a.image.buffer).equals(Buffer.from(b.image.buffer))).toBe(true);
      expect(Buffer.from(a.mask!.buffer).equals(Buffer.from(b.mask!.buffer))).toBe(true);
      expect(Buffer.from(a.image.buffer).equals(Buffer.from(c.image.buffer))).toBe(false);
      // Normal images vary (pose, phase, noise) from one index to the next.
      const g0 = quantize({ data: renderSyntheticSample(cat, 'train', 'good', 0, { size: 64 }).image, size: 64 });
      const g1 = quantize({ data: renderSyntheticSample(cat, 'train', 'good', 1, { size: 64 }).image, size: 64 });
      expect(Buffer.from(g0).equals(Buffer.from(g1))).toBe(false);
    }
  });

  it('change exactly the masked pixels, visibly but in a small area', () => {
    for (const cat of SYNTHETIC_CATEGORIES) {
      for (const defect of SYNTHETIC_DEFECTS) {
        for (let i = 0; i < 3; i++) {
          const s = renderSyntheticSample(cat, 'test', defect, i, { size: 96, seed: 3 });
          const clean = quantize({ data: s.clean, size: 96 });
          const img = quantize({ data: s.image, size: 96 });
          const mask = s.mask!;
          let area = 0;
          let diffSum = 0;
          let unchangedInside = 0;
          let changedOutside = 0;
          for (let p = 0; p < mask.length; p++) {
            const d = Math.max(
              Math.abs(img[p * 3] - clean[p * 3]),
              Math.abs(img[p * 3 + 1] - clean[p * 3 + 1]),
              Math.abs(img[p * 3 + 2] - clean[p * 3 + 2]),
            );
            if (mask[p]) {
              area++;
              diffSum += d;
              if (d === 0) unchangedInside++;
            } else if (d !== 0) {
              changedOutside++;
            }
          }
          expect(unchangedInside, `${cat}/${defect}/${i}: unchanged pixels inside the mask`).toBe(0);
          expect(changedOutside, `${cat}/${defect}/${i}: changed pixels outside the mask`).toBe(0);
          const frac = area / mask.length;
          expect(frac, `${cat}/${defect} area`).toBeGreaterThan(0.0008);
          expect(frac, `${cat}/${defect} area`).toBeLessThan(0.08);
          // At least ~20 grey levels on average in the most changed channel.
          expect(diffSum / area).toBeGreaterThanOrEqual(20);
        }
      }
    }
  });
});

describe('synthetic dataset on disk', () => {
  it('writes the MVTec layout with identical bytes for the same seed', async () => {
    const a = await generateSyntheticCategory('synthetic_object', join(tmp, 'a'), { ...SMALL, seed: 1 });
    const b = await generateSyntheticCategory('synthetic_object', join(tmp, 'b'), { ...SMALL, seed: 1 });
    const files = listFiles(a.dir);
    expect(files).toContain('train/good/002.png');
    expect(files).toContain('test/good/001.png');
    expect(files).toContain('test/missing_part/000.png');
    expect(files).toContain('ground_truth/missing_part/000_mask.png');
    expect(files.filter((f) => f.endsWith('.png'))).toHaveLength(3 + 2 + 4 + 4);
    expect(listFiles(b.dir)).toEqual(files);
    for (const f of files.filter((x) => x.endsWith('.png'))) {
      expect(readFileSync(join(a.dir, f)).equals(readFileSync(join(b.dir, f))), f).toBe(true);
    }
    const c = await generateSyntheticCategory('synthetic_object', join(tmp, 'c'), { ...SMALL, seed: 2 });
    expect(readFileSync(join(a.dir, 'train/good/000.png')).equals(readFileSync(join(c.dir, 'train/good/000.png')))).toBe(false);
  });

  it('indexes and loads like MVTec, masks matching the renders', async () => {
    const g = await generateSyntheticCategory('synthetic_texture', join(tmp, 'a'), { ...SMALL, seed: 1 });
    const idx = indexCategory('synthetic_texture', { root: g.root });
    expect(idx.train).toHaveLength(3);
    expect(idx.test).toHaveLength(2 + 4);
    expect(idx.defectTypes).toEqual([...SYNTHETIC_DEFECTS].sort());
    const hole = idx.test.find((s) => s.id === 'test/hole/000')!;
    const meta = await sharp(hole.maskPath!).metadata();
    expect(meta.channels).toBe(1);
    const loaded = await loadSample(hole);
    const render = renderSyntheticSample('synthetic_texture', 'test', 'hole', 0, { size: 64, seed: 1 });
    expect(Array.from(loaded.mask.data)).toEqual(Array.from(render.mask!));
    const q = quantize({ data: render.image, size: 64 });
    for (const i of [0, 1000, 64 * 64 * 3 - 1]) expect(Math.round(loaded.image.data[i] * 255)).toBe(q[i]);
  });

  it('caches with ensureSyntheticCategory and protects real data', async () => {
    const cache = join(tmp, 'cache');
    const first = await ensureSyntheticCategory('synthetic_object', cache, SMALL);
    expect(first.generated).toBe(true);
    const again = await ensureSyntheticCategory('synthetic_object', cache, SMALL);
    expect(again.generated).toBe(false);
    const bigger = await ensureSyntheticCategory('synthetic_object', cache, { ...SMALL, nTrain: 4 });
    expect(bigger.generated).toBe(true);
    expect(indexCategory('synthetic_object', { root: cache }).train).toHaveLength(4);
    // Growing the counts keeps the existing images byte-identical.
    const small = await generateSyntheticCategory('synthetic_object', join(tmp, 'd'), SMALL);
    expect(readFileSync(join(bigger.dir, 'train/good/001.png')).equals(readFileSync(join(small.dir, 'train/good/001.png')))).toBe(true);

    mkdirSync(join(tmp, 'real', 'synthetic_texture', 'train', 'good'), { recursive: true });
    await expect(generateSyntheticCategory('synthetic_texture', join(tmp, 'real'), SMALL)).rejects.toThrow(DatasetError);
    await expect(ensureSyntheticCategory('bottle', cache)).rejects.toThrow(ConfigError);
    await expect(ensureSyntheticCategory('synthetic_object', cache, { size: 8 })).rejects.toThrow(ConfigError);
  });

  it('says loudly that the data is synthetic', () => {
    const msg = syntheticDataNotice('carpet', syntheticStandIn('carpet'), '/cache');
    expect(syntheticStandIn('carpet')).toBe('synthetic_texture');
    expect(syntheticStandIn('bottle')).toBe('synthetic_object');
    expect(msg).toMatch(/SYNTHETIC DATA/);
    expect(msg).toMatch(/NOT comparable to the paper/);
    expect(msg).toContain("'carpet'");
  });
});
