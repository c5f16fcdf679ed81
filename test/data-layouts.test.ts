import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { indexFolderCategory, indexLayoutCategory, indexMvtecAd2Category, indexVisaCategory, loadSample, parseDatasetLayout } from '../src/data/index.js';
import { DatasetError } from '../src/errors.js';
import { prepareDataset } from '../src/run/prepareDataset.js';

const exec = promisify(execFile);

/** A small RGB image whose pixels depend on `k` (so images differ), as PNG or JPEG by extension. */
async function image(path: string, k: number, size = 16): Promise<void> {
  mkdirSync(join(path, '..'), { recursive: true });
  const data = Buffer.alloc(size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + k * 31) % 256;
  const s = sharp(data, { raw: { width: size, height: size, channels: 3 } });
  await (path.toLowerCase().endsWith('.jpg') ? s.jpeg() : s.png()).toFile(path);
}

/** A one-channel mask: the top-left quarter set to `value`. */
async function mask(path: string, value: number, size = 16): Promise<void> {
  mkdirSync(join(path, '..'), { recursive: true });
  const data = Buffer.alloc(size * size);
  for (let y = 0; y < size / 2; y++) for (let x = 0; x < size / 2; x++) data[y * size + x] = value;
  await sharp(data, { raw: { width: size, height: size, channels: 1 } }).png().toFile(path);
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'layouts-'));

describe('VisA layout (split CSV)', () => {
  it('indexes the CSV rows of one object, masks binarised at > 0', async () => {
    const root = tmp();
    const rows = ['object,split,label,image,mask'];
    for (let i = 0; i < 4; i++) {
      await image(join(root, 'candle/Data/Images/Normal', `000${i}.JPG`), i);
      rows.push(`candle,${i < 3 ? 'train' : 'test'},normal,candle/Data/Images/Normal/000${i}.JPG,`);
    }
    await image(join(root, 'candle/Data/Images/Anomaly/000.JPG'), 9);
    await mask(join(root, 'candle/Data/Masks/Anomaly/000.png'), 2); // VisA: class index, not 255
    rows.push('candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png');
    rows.push('pcb1,train,normal,pcb1/Data/Images/Normal/0000.JPG,');
    mkdirSync(join(root, 'split_csv'));
    writeFileSync(join(root, 'split_csv', '1cls.csv'), `${rows.join('\n')}\n`);

    const idx = indexVisaCategory('candle', root);
    expect(idx.train.map((s) => s.id)).toEqual(['train/good/0000', 'train/good/0001', 'train/good/0002']);
    expect(idx.test.map((s) => [s.id, s.label])).toEqual([['test/good/0003', 0], ['test/anomaly/000', 1]]);
    const loaded = await loadSample(idx.test[1]);
    let on = 0;
    for (const v of loaded.mask.data) on += v > 0 ? 1 : 0;
    expect(on).toBe(64); // the 8x8 quarter, although the file says 2 there
    expect(() => indexVisaCategory('capsules', root)).toThrow(/no rows for category 'capsules'; categories in it: candle, pcb1/);
    expect(() => indexVisaCategory('pcb1', root)).toThrow(/does not exist/);
    writeFileSync(join(root, 'bad.csv'), 'object,split,label,image,mask\ncandle,train,weird,candle/Data/Images/Normal/0000.JPG,\n');
    expect(() => indexVisaCategory('candle', root, join(root, 'bad.csv'))).toThrow(/line 2: label 'weird'/);
    expect(() => indexVisaCategory('candle', join(root, 'candle'))).toThrow(/split file .* is missing/);
  });
});

describe('MVTec AD 2 layout', () => {
  it('train + validation normals for training, test_public with masks for testing', async () => {
    const root = tmp();
    const c = join(root, 'vial');
    await image(join(c, 'train/good/000_regular.png'), 1);
    await image(join(c, 'train/good/001_regular.png'), 2);
    await image(join(c, 'validation/good/000_regular.png'), 3);
    await image(join(c, 'test_public/good/000_regular.png'), 4);
    await image(join(c, 'test_public/bad/000_regular.png'), 5);
    await mask(join(c, 'test_public/ground_truth/bad/000_regular_mask.png'), 255);
    await image(join(c, 'test_private/000_regular.png'), 6);
    const idx = indexMvtecAd2Category('vial', root);
    expect(idx.train.map((s) => s.id)).toEqual(['train/good/000_regular', 'train/good/001_regular', 'validation/good/000_regular']);
    expect(idx.test.map((s) => [s.id, s.label, s.maskPath !== null])).toEqual([['test/good/000_regular', 0, false], ['test/bad/000_regular', 1, true]]);
    await image(join(c, 'test_public/bad/001_regular.png'), 7);
    expect(() => indexMvtecAd2Category('vial', root)).toThrow(/001_regular.png' has no mask/);
    expect(() => indexMvtecAd2Category('can', root)).toThrow(/found: /);
  });
});

describe('Folder layout (normal / abnormal / optional masks)', () => {
  async function folder(withMasks: boolean, normalTest: boolean): Promise<string> {
    const root = tmp();
    const c = join(root, 'widgets');
    for (let i = 0; i < 10; i++) await image(join(c, 'normal', `n${i}.png`), i);
    for (let i = 0; i < 3; i++) await image(join(c, 'abnormal', `a${i}.png`), 20 + i);
    if (withMasks) for (let i = 0; i < 3; i++) await mask(join(c, 'masks', `a${i}${i === 0 ? '_mask' : ''}.png`), 255);
    if (normalTest) for (let i = 0; i < 2; i++) await image(join(c, 'normal_test', `t${i}.png`), 40 + i);
    return root;
  }

  it('without normal_test/ a seeded 20 % of normal/ becomes test, disjoint from train', async () => {
    const root = await folder(true, false);
    const a = indexFolderCategory('widgets', root, { seed: 1 });
    const b = indexFolderCategory('widgets', root, { seed: 1 });
    expect(a.test.map((s) => s.id)).toEqual(b.test.map((s) => s.id));
    const testNormals = a.test.filter((s) => s.label === 0).map((s) => s.path);
    expect(testNormals).toHaveLength(2);
    expect(a.train).toHaveLength(8);
    expect(a.train.some((s) => testNormals.includes(s.path))).toBe(false);
    expect(a.test.filter((s) => s.label === 1).map((s) => s.maskPath?.split('/').pop())).toEqual(['a0_mask.png', 'a1.png', 'a2.png']);
    const seeds = new Set(Array.from({ length: 6 }, (_, s) => indexFolderCategory('widgets', root, { seed: s }).test.filter((x) => x.label === 0).map((x) => x.id).join()));
    expect(seeds.size).toBeGreaterThan(1);
  });

  it('with normal_test/ and without masks/: all normals train, anomalies carry no mask', async () => {
    const root = await folder(false, true);
    const idx = indexLayoutCategory(parseDatasetLayout('folder'), 'widgets', root);
    expect(idx.train).toHaveLength(10);
    expect(idx.test.map((s) => s.id)).toEqual(['test/good/t0', 'test/good/t1', 'test/abnormal/a0', 'test/abnormal/a1', 'test/abnormal/a2']);
    expect(idx.test.every((s) => s.maskPath === null)).toBe(true);
    expect(() => parseDatasetLayout('coco')).toThrow(/unknown layout/);
  });

  it('masks are all or none; missing folders are named', async () => {
    const root = await folder(true, true);
    writeFileSync(join(root, 'widgets', 'masks', 'a2.png'), '');
    const { rmSync } = await import('node:fs');
    rmSync(join(root, 'widgets', 'masks', 'a2.png'));
    expect(() => indexFolderCategory('widgets', root)).toThrow(/a2.png' has no mask/);
    rmSync(join(root, 'widgets', 'abnormal'), { recursive: true });
    expect(() => indexFolderCategory('widgets', root)).toThrow(DatasetError);
    expect(() => indexFolderCategory('widgets', root)).toThrow(/abnormal' is missing/);
  });

  it('prepareDataset holds validation normals out of train and refuses --synthetic', async () => {
    const root = await folder(true, true);
    const d = await prepareDataset({ category: 'widgets', data: root, seed: 0, valFraction: 0.2, dataset: 'folder' });
    expect(d.split.train).toHaveLength(8);
    expect(d.split.validation).toHaveLength(2);
    expect(d.split.test).toHaveLength(5);
    expect(d.dataSource).toBe('real');
    await expect(prepareDataset({ category: 'widgets', data: root, seed: 0, dataset: 'folder', synthetic: true })).rejects.toThrow(/cannot be combined/);
    await expect(prepareDataset({ category: 'widgets', seed: 0, dataset: 'visa' })).rejects.toThrow(/needs --data/);
  });

  it('train.ts --dataset folder runs; without masks it reports no pixel metrics', async () => {
    const root = await folder(false, true);
    const out = join(tmp(), 'run');
    await exec(process.execPath, ['--import', 'tsx', resolve('experiments/train.ts'), 'patchcore', 'widgets', '--dataset', 'folder', '--data', root, '--out', out,
      '--backbone-init', 'random', '--backbone', 'resnet18', '--image-size', '32', '--no-cache'], { timeout: 120_000 });
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { image: { auroc: number }; pixel: { auroc: number | null } };
    expect(m.image.auroc).toBeGreaterThanOrEqual(0);
    expect(m.pixel.auroc).toBeNull();
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).argv).toContain('folder');
  }, 150_000);
});
