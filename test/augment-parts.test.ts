/**
 * Building blocks of the synthetic-anomaly strategies: Perlin noise (draem.md §3.2, §7.3),
 * texture augmenters, procedural and folder texture sources, foreground masks, strip shuffle.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { ConfigError, DatasetError } from '../src/errors.js';
import {
  DRAEM_AUGMENTERS,
  FolderTextureSource,
  GLASS_AUGMENTERS,
  PROCEDURAL_FAMILIES,
  ProceduralTextureSource,
  createImageStrategy,
  disposeBatch,
  estimateForeground,
  foregroundMasks,
  perlinMask,
  perlinNoise,
  proceduralTexture,
  readForegroundMasks,
  stripShuffle,
} from '../src/augment/index.js';
import { autocontrast, equalize, posterize, solarize } from '../src/augment/augmenters.js';
import { PERLIN_MASK_DEFAULTS, drawPerlinScale } from '../src/augment/perlin.js';
import { Rng } from '../src/util/rng.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('Perlin noise', () => {
  it('lies in [−1, 1], is 0 on lattice nodes and not between them, and its lattice sets the feature scale', () => {
    const H = 64;
    const r = new Rng('perlin');
    const roughness: number[] = [];
    for (const res of [1, 2, 4, 8, 16, 32]) {
      const n = perlinNoise(H, H, res, res, r);
      let maxAbs = 0;
      let step = 0;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < H; x++) {
          const v = n[y * H + x];
          maxAbs = Math.max(maxAbs, Math.abs(v));
          if (x > 0) step += Math.abs(v - n[y * H + x - 1]);
          const node = (y * res) % H === 0 && (x * res) % H === 0;
          if (node) expect(Math.abs(v)).toBeLessThan(1e-6);
        }
      }
      expect(maxAbs).toBeLessThanOrEqual(1);
      expect(maxAbs).toBeGreaterThan(0.1);
      roughness.push(step);
    }
    // finer lattice → larger mean neighbour difference, monotonically
    for (let i = 1; i < roughness.length; i++) expect(roughness[i]).toBeGreaterThan(roughness[i - 1]);
    // anisotropic scales: (1, 32) varies fast along x only
    const a = perlinNoise(H, H, 1, 32, r);
    let dx = 0;
    let dy = 0;
    for (let y = 1; y < H; y++) for (let x = 1; x < H; x++) {
      dx += Math.abs(a[y * H + x] - a[y * H + x - 1]);
      dy += Math.abs(a[y * H + x] - a[(y - 1) * H + x]);
    }
    expect(dx).toBeGreaterThan(5 * dy);
  });

  it('draws scales 2^U{0..5} per axis uniformly; masks are binary, rotated, deterministic', () => {
    const r = new Rng('scales');
    const counts = new Map<number, number>();
    for (let t = 0; t < 1200; t++) for (const s of drawPerlinScale(r, PERLIN_MASK_DEFAULTS)) counts.set(s, (counts.get(s) ?? 0) + 1);
    expect([...counts.keys()].sort((x, y) => x - y)).toEqual([1, 2, 4, 8, 16, 32]);
    for (const c of counts.values()) expect(Math.abs(c / 2400 - 1 / 6)).toBeLessThan(0.03);
    const m1 = perlinMask(32, 32, new Rng(5));
    const m2 = perlinMask(32, 32, new Rng(5));
    expect(m1.mask).toEqual(m2.mask);
    expect(Math.abs(m1.angle)).toBeLessThanOrEqual(90);
    for (const v of m1.mask) expect(v === 0 || v === 1).toBe(true);
  });
});

describe('texture augmenters', () => {
  const img = (): { data: Float32Array; h: number; w: number; c: number } => {
    const r = new Rng('aug-img');
    return { data: Float32Array.from({ length: 24 * 24 * 3 }, () => r.next()), h: 24, w: 24, c: 3 };
  };

  it('every DRAEM and GLASS op keeps the shape and the [0, 1] range and is deterministic', () => {
    for (const a of [...DRAEM_AUGMENTERS, ...GLASS_AUGMENTERS]) {
      const x = a.apply(img(), new Rng(a.name));
      const y = a.apply(img(), new Rng(a.name));
      expect([x.h, x.w, x.c], a.name).toEqual([24, 24, 3]);
      expect(x.data, a.name).toEqual(y.data);
      expect(x.data.every((v) => v >= 0 && v <= 1), a.name).toBe(true);
    }
    expect(DRAEM_AUGMENTERS.length).toBe(10);
    expect(GLASS_AUGMENTERS.length).toBe(9);
  });

  it('8-bit ops follow PIL: posterize, solarize, autocontrast, equalize', () => {
    const ramp = { data: Float32Array.from({ length: 256 }, (_, i) => i / 255), h: 16, w: 16, c: 1 };
    const p = posterize({ ...ramp, data: ramp.data.slice() }, 2);
    expect(new Set(Array.from(p.data, (v) => Math.round(v * 255)))).toEqual(new Set([0, 64, 128, 192]));
    const s = solarize({ ...ramp, data: ramp.data.slice() }, 128 / 255);
    expect(s.data[127]).toBeCloseTo(127 / 255, 6);
    expect(s.data[200]).toBeCloseTo(1 - 200 / 255, 6);
    const narrow = { data: Float32Array.from({ length: 4096 }, (_, i) => (100 + (i % 51)) / 255), h: 64, w: 64, c: 1 };
    const ac = autocontrast({ ...narrow, data: narrow.data.slice() }, 0);
    expect(Math.min(...ac.data)).toBe(0);
    expect(Math.max(...ac.data)).toBe(1);
    const eq = equalize({ ...narrow, data: narrow.data.slice() });
    expect(Math.max(...eq.data)).toBeGreaterThan(0.9);
    expect(Math.min(...eq.data)).toBe(0);
  });
});

describe('texture sources', () => {
  it('procedural: every family in [0, 1], not constant, deterministic; source records itself', async () => {
    for (const f of PROCEDURAL_FAMILIES) {
      const a = proceduralTexture(f, 48, 48, new Rng(f));
      const b = proceduralTexture(f, 48, 48, new Rng(f));
      expect(a.data, f).toEqual(b.data);
      let lo = 1;
      let hi = 0;
      for (const v of a.data) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      expect(lo, f).toBeGreaterThanOrEqual(0);
      expect(hi, f).toBeLessThanOrEqual(1);
      expect(hi - lo, f).toBeGreaterThan(0.02);
    }
    const src = new ProceduralTextureSource();
    expect((await src.sample(new Rng(1), 20, 30, 'cover')).length).toBe(20 * 30 * 3);
    expect(src.record()).toEqual({ kind: 'procedural', families: [...PROCEDURAL_FAMILIES] });
    expect(() => new ProceduralTextureSource(['plasma' as never])).toThrow(ConfigError);
  });

  it('folder: reads images recursively, deterministic, records itself; empty folder → ConfigError; corrupt file → DatasetError naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aug-tex-'));
    mkdirSync(join(dir, 'banded'));
    mkdirSync(join(dir, 'dotted'));
    const px = (v: number): Buffer => Buffer.alloc(40 * 30 * 3, v);
    await sharp(px(30), { raw: { width: 40, height: 30, channels: 3 } }).jpeg().toFile(join(dir, 'banded', 'a.jpg'));
    await sharp(px(200), { raw: { width: 40, height: 30, channels: 3 } }).png().toFile(join(dir, 'dotted', 'b.png'));
    const src = FolderTextureSource.open(dir);
    expect(src.record()).toEqual({ kind: 'folder', dir, files: 2 });
    const a = await src.sample(new Rng(3), 16, 16, 'fill');
    const b = await src.sample(new Rng(3), 16, 16, 'fill');
    expect(a).toEqual(b);
    expect(a.length).toBe(16 * 16 * 3);
    // used by a strategy, and recorded in its run record
    const s = createImageStrategy('draem', { textures: src, params: { cleanProbability: 0 } });
    const images = tf.fill([2, 16, 16, 3], 0.5) as tf.Tensor4D;
    disposeBatch(await s.generate({ images }, new Rng(1)));
    expect(s.record().textureSource).toEqual({ kind: 'folder', dir, files: 2 });
    images.dispose();

    const empty = mkdtempSync(join(tmpdir(), 'aug-empty-'));
    expect(() => FolderTextureSource.open(empty)).toThrow(ConfigError);
    expect(() => FolderTextureSource.open(join(empty, 'nope'))).toThrow(/not a folder/);
    const bad = mkdtempSync(join(tmpdir(), 'aug-bad-'));
    writeFileSync(join(bad, 'broken.jpg'), 'not a jpeg');
    await expect(FolderTextureSource.open(bad).sample(new Rng(0), 8, 8, 'fill')).rejects.toThrow(DatasetError);
    await expect(FolderTextureSource.open(bad).sample(new Rng(0), 8, 8, 'fill')).rejects.toThrow(/broken\.jpg/);
  });
});

describe('foreground masks', () => {
  it('estimates a dark object on a light background (IoU > 0.9) and fills its holes', () => {
    const H = 64;
    const data = new Float32Array(H * H * 3);
    const truth = new Float32Array(H * H);
    const r = new Rng('fg');
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < H; x++) {
        const d = Math.hypot(y - 30, x - 34);
        const inDisc = d < 20;
        truth[y * H + x] = inDisc ? 1 : 0;
        // light noisy background, dark ring with a background-coloured centre (a hole)
        const v = inDisc && d > 8 ? 0.2 : 0.85;
        for (let k = 0; k < 3; k++) data[(y * H + x) * 3 + k] = v + r.uniform(-0.03, 0.03);
      }
    }
    const fg = estimateForeground({ data, h: H, w: H, c: 3 });
    let inter = 0;
    let uni = 0;
    for (let i = 0; i < H * H; i++) {
      if (fg[i] && truth[i]) inter++;
      if (fg[i] || truth[i]) uni++;
    }
    expect(inter / uni).toBeGreaterThan(0.9);
    // flat image: nothing to separate → all ones
    expect(estimateForeground({ data: new Float32Array(H * H * 3).fill(0.5), h: H, w: H, c: 3 }).every((v) => v === 1)).toBe(true);
  });

  it('textures get all ones; a mask folder is read by image name; a missing mask names the file', async () => {
    const images = tf.tensor4d(Float32Array.from({ length: 2 * 16 * 16 * 3 }, (_, i) => (i % 7) / 7), [2, 16, 16, 3]);
    const s = createImageStrategy('glass-las', { category: 'carpet' });
    disposeBatch(await s.generate({ images }, new Rng(0)));
    expect(s.record().foreground).toMatch(/all ones/);
    const obj = createImageStrategy('glass-las', { category: 'bottle' });
    expect(obj.record().foreground).toMatch(/estimated/);
    const before = tf.memory().numTensors;
    const ones = await foregroundMasks(images, 'synthetic_texture');
    expect(ones.shape).toEqual([2, 16, 16, 1]);
    expect((await ones.data()).every((v) => v === 1)).toBe(true);
    ones.dispose();
    expect(tf.memory().numTensors).toBe(before);
    images.dispose();

    const dir = mkdtempSync(join(tmpdir(), 'aug-fg-'));
    const half = Buffer.alloc(20 * 20);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 10; x++) half[y * 20 + x] = 255;
    await sharp(half, { raw: { width: 20, height: 20, channels: 1 } }).png().toFile(join(dir, '000.png'));
    const m = await readForegroundMasks(dir, ['000.png'], 20, 20);
    const v = await m.data();
    expect(v[0]).toBe(1);
    expect(v[19]).toBe(0);
    m.dispose();
    await expect(readForegroundMasks(dir, ['001.png'], 20, 20)).rejects.toThrow(/001\.png/);
    await expect(readForegroundMasks(dir, ['001.png'], 20, 20)).rejects.toThrow(DatasetError);
  });
});

describe('DiffusionAD strip shuffle', () => {
  it('re-orders 8 strips as shuffled even-index then shuffled odd-index, in both directions', () => {
    const W = 16;
    const data = new Float32Array(W * W);
    for (let y = 0; y < W; y++) for (let x = 0; x < W; x++) data[y * W + x] = Math.floor(x / 2) * 8 + Math.floor(y / 2);
    const out = stripShuffle({ data, h: W, w: W, c: 1 }, 8, new Rng(4));
    const colStrips = Array.from({ length: 8 }, (_, i) => Math.floor(out.data[i * 2] / 8));
    const rowStrips = Array.from({ length: 8 }, (_, i) => out.data[i * 2 * W] % 8);
    for (const order of [colStrips, rowStrips]) {
      expect(order.slice(0, 4).every((s) => s % 2 === 0)).toBe(true);
      expect(order.slice(4).every((s) => s % 2 === 1)).toBe(true);
      expect([...order].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    }
  });
});
