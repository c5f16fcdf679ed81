import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { deflateSync } from 'node:zlib';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, DatasetError } from '../src/errors.js';
import {
  categoriesInGroup, categoryInfo, GRAYSCALE_CATEGORIES, MVTEC_CATEGORIES,
} from '../src/data/categories.js';
import {
  decodeImage, readImage, readMask, stackImages, transformImage, writePng, type RgbImage,
} from '../src/data/imageIO.js';
import { resizePil, roundHalfEven } from '../src/data/resample.js';
import {
  indexCategory, listCategoryFolders, loadSample, resolveMvtecRoot, type CategoryIndex, type Sample,
} from '../src/data/mvtec.js';
import { sharedPath } from './helpers/shared.js';
import {
  makeSplit, normalsToMove, splitFromJSON, splitToJSON, validationCount,
} from '../src/data/splits.js';

let tmp: string;

/** Raw pixels -> PNG/JPEG file via sharp. */
async function save(path: string, px: Uint8Array, w: number, h: number, ch: 1 | 3 | 4, fmt: 'png' | 'jpeg' = 'png'): Promise<void> {
  mkdirSync(join(path, '..'), { recursive: true });
  let img = sharp(px, { raw: { width: w, height: h, channels: ch } });
  if (ch === 1) img = img.toColourspace('b-w');
  const buf = fmt === 'png' ? await img.png().toBuffer() : await img.jpeg({ quality: 95 }).toBuffer();
  writeFileSync(path, buf);
}

/**
 * A 16-bit greyscale PNG written by hand (sharp cannot be asked to write one from raw input):
 * signature, IHDR (bit depth 16, colour type 0), one zlib IDAT with filter byte 0 per row, IEND.
 */
function png16Grey(w: number, h: number, px: Uint16Array): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer): number => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 16;
  const rows = Buffer.alloc(h * (1 + w * 2));
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rows.writeUInt16BE(px[y * w + x], y * (1 + w * 2) + 1 + x * 2);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Deterministic gradient pattern with distinct channels. */
function pattern(w: number, h: number, ch: number): Uint8Array {
  const px = new Uint8Array(w * h * ch);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < ch; c++) px[(y * w + x) * ch + c] = (x * 7 + y * 3 + c * 60) % 256;
    }
  }
  return px;
}

function solid(w: number, h: number, ch: number, v: number[]): Uint8Array {
  const px = new Uint8Array(w * h * ch);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < ch; c++) px[i * ch + c] = v[c];
  return px;
}

function squareMask(w: number, h: number, x0: number, y0: number, x1: number, y1: number): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = 255;
  return m;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'adbench-data-'));
  const W = join(tmp, 'root', 'widget');
  // Mixed formats on purpose: RGB, grayscale, RGBA, 16-bit grayscale, JPEG, non-square odd size.
  await save(join(W, 'train/good/000.png'), pattern(37, 23, 3), 37, 23, 3);
  await save(join(W, 'train/good/001.png'), pattern(37, 23, 1), 37, 23, 1);
  await save(join(W, 'train/good/002.png'), pattern(37, 23, 4), 37, 23, 4);
  const g16 = new Uint16Array(37 * 23);
  for (let i = 0; i < g16.length; i++) g16[i] = (i * 1543) % 65536;
  writeFileSync(join(W, 'train/good/003.png'), png16Grey(37, 23, g16));
  await save(join(W, 'train/good/004.jpg'), solid(37, 23, 3, [200, 40, 90]), 37, 23, 3, 'jpeg');
  writeFileSync(join(W, 'train/good/.DS_Store'), 'junk');
  writeFileSync(join(W, 'train/good/notes.txt'), 'not an image');
  await save(join(W, 'test/good/000.png'), pattern(37, 23, 3), 37, 23, 3);
  await save(join(W, 'test/crack/000.png'), pattern(37, 23, 3), 37, 23, 3);
  await save(join(W, 'test/crack/001.png'), pattern(37, 23, 3), 37, 23, 3);
  await save(join(W, 'ground_truth/crack/000_mask.png'), squareMask(37, 23, 10, 5, 20, 15), 37, 23, 1);
  await save(join(W, 'ground_truth/crack/001_mask.png'), squareMask(37, 23, 0, 0, 5, 5), 37, 23, 1);
  await save(join(W, 'test/bent/000.png'), pattern(37, 23, 3), 37, 23, 3);
  await save(join(W, 'ground_truth/bent/000_mask.png'), squareMask(37, 23, 1, 1, 3, 3), 37, 23, 1);

  // Mask with the wrong size.
  const M = join(tmp, 'root', 'mismatch');
  await save(join(M, 'train/good/000.png'), pattern(16, 16, 3), 16, 16, 3);
  await save(join(M, 'test/dent/000.png'), pattern(16, 16, 3), 16, 16, 3);
  await save(join(M, 'ground_truth/dent/000_mask.png'), squareMask(12, 16, 1, 1, 4, 4), 12, 16, 1);

  // Corrupt PNG, defect image without mask, empty train folder.
  mkdirSync(join(tmp, 'corrupt'), { recursive: true });
  writeFileSync(join(tmp, 'corrupt', 'x.png'), Buffer.from('this is not a png file at all, just garbage bytes'));
  const N = join(tmp, 'root2', 'nomask');
  await save(join(N, 'train/good/000.png'), pattern(8, 8, 3), 8, 8, 3);
  await save(join(N, 'test/scratch/007.png'), pattern(8, 8, 3), 8, 8, 3);
  mkdirSync(join(tmp, 'root3', 'empty', 'train', 'good'), { recursive: true });
  mkdirSync(join(tmp, 'root4', 'notrain', 'test', 'good'), { recursive: true });
  mkdirSync(join(tmp, 'root4', 'notrain', 'train'), { recursive: true });
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('categories', () => {
  it('lists the 15 MVTec categories in the paper groups', () => {
    expect(MVTEC_CATEGORIES).toHaveLength(15);
    expect(categoriesInGroup('texture')).toEqual(['carpet', 'grid', 'leather', 'tile', 'wood']);
    expect(categoriesInGroup('rotating_object')).toEqual(['hazelnut', 'metal_nut', 'screw']);
    expect(categoriesInGroup('fixed_object')).toHaveLength(7);
    expect(GRAYSCALE_CATEGORIES).toEqual(['grid', 'screw', 'zipper']);
    expect(categoryInfo('screw')).toEqual({ name: 'screw', group: 'rotating_object', grayscale: true, isMvtec: true });
    expect(categoryInfo('my_parts')).toMatchObject({ group: 'custom', isMvtec: false });
    expect(() => categoryInfo('../etc')).toThrow(ConfigError);
  });
});

describe('imageIO', () => {
  const W = () => join(tmp, 'root', 'widget');

  it('decodes RGB exactly to [0,1] HWC', async () => {
    const im = await readImage(join(W(), 'train/good/000.png'));
    expect([im.h, im.w, im.c]).toEqual([23, 37, 3]);
    const px = pattern(37, 23, 3);
    for (const i of [0, 1, 2, 500, px.length - 1]) expect(im.data[i]).toBeCloseTo(px[i] / 255, 6);
  });

  it('replicates grayscale to 3 channels and drops alpha', async () => {
    const g = await readImage(join(W(), 'train/good/001.png'));
    const gp = pattern(37, 23, 1);
    for (const i of [0, 10, 850]) {
      expect(g.data[i * 3]).toBeCloseTo(gp[i] / 255, 6);
      expect(g.data[i * 3 + 1]).toBe(g.data[i * 3]);
      expect(g.data[i * 3 + 2]).toBe(g.data[i * 3]);
    }
    const a = await readImage(join(W(), 'train/good/002.png'));
    const ap = pattern(37, 23, 4);
    expect(a.c).toBe(3);
    for (const i of [0, 77]) for (let c = 0; c < 3; c++) expect(a.data[i * 3 + c]).toBeCloseTo(ap[i * 4 + c] / 255, 6);
  });

  it('keeps 16-bit precision and decodes JPEG', async () => {
    const raw = await decodeImage(join(W(), 'train/good/003.png'));
    expect(raw.bitDepth).toBe(16);
    const im = await transformImage(raw);
    for (const i of [5, 700]) {
      expect(im.data[i * 3]).toBeCloseTo(((i * 1543) % 65536) / 65535, 7);
      expect(im.data[i * 3 + 2]).toBe(im.data[i * 3]);
    }
    // Resizing a 16-bit image stays in float (no 8-bit rounding).
    const r = await transformImage(raw, { size: 8 });
    expect(r.data.some((v) => Math.abs(v * 255 - Math.round(v * 255)) > 1e-3)).toBe(true);
    const j = await readImage(join(W(), 'train/good/004.jpg'));
    expect(Math.abs(j.data[0] * 255 - 200)).toBeLessThan(6);
    expect(Math.abs(j.data[1] * 255 - 40)).toBeLessThan(6);
  });

  it('resizes non-square images to a square, to [h,w], by shorter side, then centre-crops', async () => {
    const p = join(W(), 'train/good/000.png');
    const sq = await readImage(p, { size: 16 });
    expect([sq.h, sq.w]).toEqual([16, 16]);
    const hw = await readImage(p, { size: [12, 20], filter: 'sharp-lanczos3' });
    expect([hw.h, hw.w]).toEqual([12, 20]);
    const short = await readImage(p, { size: 10, keepAspect: true });
    expect([short.h, short.w]).toEqual([10, 16]); // int(10 * 37 / 23) = 16
    const crop = await readImage(p, { size: 10, keepAspect: true, crop: 8, filter: 'pil-bicubic' });
    expect([crop.h, crop.w]).toEqual([8, 8]);
    // Crop of the resized image = middle window (top 1, left 4).
    for (let c = 0; c < 3; c++) expect(crop.data[c]).toBeCloseTo(short.data[(1 * 16 + 4) * 3 + c], 6);
    await expect(readImage(p, { size: 8, crop: 9 })).rejects.toThrow(ConfigError);
    for (const v of sq.data) expect(v >= 0 && v <= 1).toBe(true);
  });

  it('reproduces Pillow bilinear antialiased downscaling', () => {
    // Pillow: 4 -> 2 px bilinear has support 2 and taps (.75, .75, .25)/1.75 -> [71, 207].
    const out = resizePil(new Uint8Array([0, 100, 200, 250]), 1, 4, 1, 1, 2, 'bilinear');
    expect(Array.from(out)).toEqual([71, 207]);
    // A constant image stays constant under every filter (weights are normalised).
    for (const f of ['bilinear', 'bicubic', 'lanczos'] as const) {
      const c = resizePil(new Uint8Array(30 * 20).fill(173), 20, 30, 1, 7, 11, f);
      expect(new Set(c)).toEqual(new Set([173]));
    }
    expect(roundHalfEven(0.5)).toBe(0);
    expect(roundHalfEven(1.5)).toBe(2);
    expect(roundHalfEven(2.5)).toBe(2);
  });

  it('reads masks as one binarised channel, resized with nearest neighbour', async () => {
    const p = join(tmp, 'levels_mask.png');
    // Columns of 0, 100, 200, 255: a threshold at > 127 keeps the last two.
    const px = new Uint8Array(8 * 2);
    [0, 0, 100, 100, 200, 200, 255, 255].forEach((v, x) => { px[x] = v; px[8 + x] = v; });
    await save(p, px, 8, 2, 1);
    const m = await readMask(p);
    expect(Array.from(m.data.slice(0, 8))).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    const r = await readMask(p, { size: [2, 4] });
    expect(Array.from(r.data.slice(0, 4))).toEqual([0, 0, 1, 1]);
    expect(new Set(r.data)).toEqual(new Set([0, 1]));
  });

  it('names the file of a corrupt or missing image', async () => {
    const bad = join(tmp, 'corrupt', 'x.png');
    await expect(readImage(bad)).rejects.toThrow(DatasetError);
    await expect(readImage(bad)).rejects.toThrow(bad);
    await expect(readImage(join(tmp, 'nope.png'))).rejects.toThrow(/does not exist/);
  });

  it('writes PNGs (1 and 3 channels) that read back', async () => {
    const g = join(tmp, 'out', 'heat.png');
    const data = new Float32Array(6 * 4).map((_, i) => i / 23);
    await writePng(g, data, 6, 4, 1);
    const meta = await sharp(g).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([6, 4, 1]);
    const back = await readImage(g);
    for (let i = 0; i < 24; i++) expect(Math.round(back.data[i * 3] * 255)).toBe(Math.round((i / 23) * 255));
    const rgb = join(tmp, 'out', 'rgb.png');
    await writePng(rgb, pattern(5, 3, 3), 5, 3, 3);
    expect(Array.from((await decodeImage(rgb)).data)).toEqual(Array.from(pattern(5, 3, 3)));
  });

  it('stacks images into a contiguous NHWC batch', () => {
    const mk = (v: number, h = 2, w = 3): RgbImage => ({ data: new Float32Array(h * w * 3).fill(v), h, w, c: 3 });
    const b = stackImages([mk(0.1), mk(0.2)]);
    expect([b.n, b.h, b.w, b.c, b.data.length]).toEqual([2, 2, 3, 3, 36]);
    expect(b.data[17]).toBeCloseTo(0.1);
    expect(b.data[18]).toBeCloseTo(0.2);
    expect(() => stackImages([mk(0), mk(0, 3, 3)])).toThrow(/cannot batch image 1/);
  });
});

describe('mvtec index', () => {
  it('resolves the root from option, then env, then default', () => {
    expect(resolveMvtecRoot('/a', { MVTEC_ROOT: '/b' })).toEqual({ root: '/a', source: 'option' });
    expect(resolveMvtecRoot(undefined, { MVTEC_ROOT: '/b' })).toEqual({ root: '/b', source: 'env' });
    expect(resolveMvtecRoot(undefined, {})).toEqual({ root: resolve('data/mvtec_ad'), source: 'default' });
  });

  it('indexes train, test and masks in sorted order', () => {
    const idx = indexCategory('widget', { root: join(tmp, 'root') });
    expect(idx.info.group).toBe('custom');
    expect(idx.train.map((s) => s.id)).toEqual(['train/good/000', 'train/good/001', 'train/good/002', 'train/good/003', 'train/good/004']);
    expect(idx.test.map((s) => s.id)).toEqual(['test/bent/000', 'test/crack/000', 'test/crack/001', 'test/good/000']);
    expect(idx.defectTypes).toEqual(['bent', 'crack']);
    const crack = idx.test[1];
    expect(crack).toMatchObject({ label: 1, defectType: 'crack' });
    expect(crack.maskPath).toBe(join(tmp, 'root', 'widget', 'ground_truth', 'crack', '000_mask.png'));
    expect(idx.test[3]).toMatchObject({ label: 0, maskPath: null, defectType: 'good' });
    expect(listCategoryFolders(join(tmp, 'root'))).toEqual(['mismatch', 'widget']);
  });

  it('loads a sample and its mask with the same geometry', async () => {
    const idx = indexCategory('widget', { root: join(tmp, 'root') });
    const s = await loadSample(idx.test[1]);
    expect([s.image.h, s.image.w, s.mask.h, s.mask.w]).toEqual([23, 37, 23, 37]);
    expect(s.mask.data.reduce((a, b) => a + b, 0)).toBe(100);
    expect(s.mask.data[5 * 37 + 10]).toBe(1);
    const r = await loadSample(idx.test[1], { size: 16, crop: 12 });
    expect([r.image.h, r.image.w, r.mask.h, r.mask.w]).toEqual([12, 12, 12, 12]);
    const good = await loadSample(idx.test[3], { size: 8 });
    expect(good.mask.data.every((v) => v === 0)).toBe(true);
  });

  it('reports a mask whose size differs from its image, naming both', async () => {
    const idx = indexCategory('mismatch', { root: join(tmp, 'root') });
    const err = await loadSample(idx.test[0]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    const msg = (err as Error).message;
    expect(msg).toContain('000_mask.png');
    expect(msg).toContain(join('test', 'dent', '000.png'));
    expect(msg).toContain('12x16');
    expect(msg).toContain('16x16');
  });

  it('explains missing roots, categories, folders and masks', () => {
    expect(() => indexCategory('widget', { root: join(tmp, 'missing') })).toThrow(/does not exist.*--data option/);
    expect(() => indexCategory('widget', { env: { MVTEC_ROOT: join(tmp, 'missing') } })).toThrow(/MVTEC_ROOT/);
    const err = (() => { try { indexCategory('bottle', { root: join(tmp, 'root') }); } catch (e) { return e as Error; } return null; })();
    expect(err).toBeInstanceOf(DatasetError);
    expect(err?.message).toContain("Categories found under");
    expect(err?.message).toContain('mismatch, widget');
    expect(() => indexCategory('nomask', { root: join(tmp, 'root2') })).toThrow(
      new RegExp(`007\\.png.*expected '.*ground_truth.scratch.007_mask\\.png'`),
    );
    expect(() => indexCategory('empty', { root: join(tmp, 'root3') })).toThrow(/contains no PNG\/JPEG images/);
    expect(() => indexCategory('notrain', { root: join(tmp, 'root4') })).toThrow(/train.good' is missing/);
  });
});

/** An in-memory index: splits only look at ids and labels. */
function fakeIndex(nTrain: number, nGood: number, nBad: number): CategoryIndex {
  const s = (id: string, label: 0 | 1, defectType: string): Sample => ({
    id, path: `/x/${id}.png`, maskPath: label ? `/x/gt/${id}_mask.png` : null, label, defectType,
  });
  const n3 = (i: number) => String(i).padStart(3, '0');
  return {
    category: 'fake', info: categoryInfo('fake'), root: '/x', dir: '/x/fake', defectTypes: ['bad'],
    train: Array.from({ length: nTrain }, (_, i) => s(`train/good/${n3(i)}`, 0, 'good')),
    test: [
      ...Array.from({ length: nBad }, (_, i) => s(`test/bad/${n3(i)}`, 1, 'bad')),
      ...Array.from({ length: nGood }, (_, i) => s(`test/good/${n3(i)}`, 0, 'good')),
    ],
  };
}

describe('splits', () => {
  const idx = fakeIndex(209, 20, 63); // bottle's counts

  it('is deterministic in the seed and differs across seeds', () => {
    const a = splitToJSON(makeSplit(idx, { seed: 1, rebalance: true }));
    const b = splitToJSON(makeSplit(idx, { seed: 1, rebalance: true }));
    const c = splitToJSON(makeSplit(idx, { seed: 2, rebalance: true }));
    expect(a).toEqual(b);
    expect(c.validation).not.toEqual(a.validation);
    expect(c.movedToTest).not.toEqual(a.movedToTest);
  });

  it('keeps test images out of train and validation', () => {
    for (const seed of [0, 1, 2, 'x']) {
      for (const rebalance of [false, true]) {
        const s = makeSplit(idx, { seed, rebalance });
        const test = new Set(s.test.map((t) => t.id));
        expect(s.train.some((t) => test.has(t.id))).toBe(false);
        expect(s.validation.some((t) => test.has(t.id))).toBe(false);
        const val = new Set(s.validation.map((t) => t.id));
        expect(s.train.some((t) => val.has(t.id))).toBe(false);
        expect(s.train.length + s.validation.length + s.movedToTest.length).toBe(209);
        expect([...s.train, ...s.validation].every((t) => t.label === 0)).toBe(true);
      }
    }
  });

  it('holds out a validation fraction (at least one image)', () => {
    expect(makeSplit(idx, { seed: 0 }).validation).toHaveLength(21);
    expect(makeSplit(idx, { seed: 0, valFraction: 0.25 }).validation).toHaveLength(52);
    expect(validationCount(2, 0.1)).toBe(1);
    expect(validationCount(1, 0.1)).toBe(0);
    expect(validationCount(10, 0)).toBe(0);
    expect(() => makeSplit(idx, { seed: 0, valFraction: 1 })).toThrow(ConfigError);
  });

  it('rebalances the test set to the target share of normal images', () => {
    expect(normalsToMove(20, 63, 0.5)).toBe(43);
    const s = makeSplit(idx, { seed: 3, rebalance: true });
    expect(s.movedToTest).toHaveLength(43);
    expect(s.test).toHaveLength(126);
    expect(s.testNormalShare).toBeCloseTo(0.5, 10);
    expect(s.validation).toHaveLength(17); // 10 % of the 166 left
    const s6 = makeSplit(idx, { seed: 3, rebalance: true, testNormalShare: 0.6 });
    expect(s6.testNormalShare).toBeGreaterThanOrEqual(0.6);
    expect(s6.testNormalShare).toBeLessThan(0.61);
    // Not enough train images: clamps, keeps train + validation non-empty and says so.
    const small = makeSplit(fakeIndex(5, 1, 20), { seed: 0, rebalance: true });
    expect(small.train.length).toBe(1);
    expect(small.validation.length).toBe(1);
    expect(small.warnings[0]).toMatch(/rebalancing wanted 19/);
  });

  it('round-trips through JSON', () => {
    const s = makeSplit(idx, { seed: 5, rebalance: true });
    const json = JSON.parse(JSON.stringify(splitToJSON(s))) as unknown;
    const back = splitFromJSON(json, idx);
    expect(splitToJSON(back)).toEqual(splitToJSON(s));
    expect(() => splitFromJSON({ ...(json as object), test: ['test/bad/999'] }, idx)).toThrow(/not in/);
    expect(() => splitFromJSON({ hello: 1 }, idx)).toThrow(DatasetError);
  });
});

const BOTTLE = sharedPath('data/mvtec_ad/bottle', 'the real MVTec bottle indexing/decoding test');
describe.skipIf(!BOTTLE)('real MVTec bottle', () => {
  it('indexes 209 train, 83 test, 63 masks and decodes two images', async () => {
    const idx = indexCategory('bottle', { root: dirname(BOTTLE as string) });
    expect(idx.train).toHaveLength(209);
    expect(idx.test).toHaveLength(83);
    expect(idx.test.filter((s) => s.maskPath !== null)).toHaveLength(63);
    expect(idx.defectTypes).toEqual(['broken_large', 'broken_small', 'contamination']);
    expect(idx.info.group).toBe('fixed_object');
    const raw = await decodeImage(idx.train[0].path);
    expect([raw.h, raw.w, raw.bitDepth]).toEqual([900, 900, 8]);
    const s = await loadSample(idx.test[0], { size: 256, crop: 224 });
    expect([s.image.h, s.image.w, s.mask.h, s.mask.w]).toEqual([224, 224, 224, 224]);
    expect(s.mask.data.some((v) => v === 1)).toBe(true);
    const split = makeSplit(idx, { seed: 0, rebalance: true });
    expect(split.testNormalShare).toBeCloseTo(0.5, 10);
  });
});
