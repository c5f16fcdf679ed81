import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DatasetError } from '../../errors.js';
import { Rng } from '../../util/rng.js';
import { categoryInfo } from '../categories.js';
import { checkUniqueIds, imageFiles, isDir, listCategoryFolders, stem, type CategoryIndex, type Sample } from '../mvtec.js';

/**
 * A plain folder of one's own images (what anomalib calls a Folder dataset):
 *
 *   <root>/<category>/normal/*          normal images
 *   <root>/<category>/abnormal/*        anomalous images (test only)
 *   <root>/<category>/masks/<stem>.png  optional: masks of abnormal images (<stem>_mask.png also accepted)
 *   <root>/<category>/normal_test/*     optional: normal test images; otherwise a seeded share of normal/ is moved to test
 *
 * Without masks/, the anomalous samples carry no mask and pixel metrics are not computed.
 */

export const FOLDER_TEST_NORMAL_SHARE = 0.2;

export interface FolderLayoutOptions {
  /** Seed of the normal train/test division (only without normal_test/). */
  seed?: number | string;
  /** Share of normal/ moved to test when there is no normal_test/ (anomalib's normal_split_ratio). */
  testNormalShare?: number;
}

export function indexFolderCategory(category: string, rootDir: string, o: FolderLayoutOptions = {}): CategoryIndex {
  const info = categoryInfo(category);
  const root = resolve(rootDir);
  if (!isDir(root)) throw new DatasetError(`folder dataset root '${root}' does not exist (--data)`);
  const dir = join(root, category);
  if (!isDir(dir)) {
    const found = listCategoryFolders(root);
    throw new DatasetError(`folder dataset category '${category}' not found: '${dir}' does not exist${found.length ? `; found: ${found.join(', ')}` : ''}`);
  }
  const need = (sub: string): string[] => {
    const p = join(dir, sub);
    if (!isDir(p)) throw new DatasetError(`'${p}' is missing: a folder dataset needs normal/ and abnormal/ (masks/ and normal_test/ optional)`);
    const files = imageFiles(p);
    if (files.length === 0) throw new DatasetError(`'${p}' contains no images`);
    return files;
  };
  const normalFiles = need('normal');
  const abnormalFiles = need('abnormal');
  const masksDir = join(dir, 'masks');
  const hasMasks = isDir(masksDir);
  const normal = (sub: string, split: string, f: string): Sample => ({ id: `${split}/good/${stem(f)}`, path: join(dir, sub, f), maskPath: null, label: 0, defectType: 'good' });
  let train: Sample[];
  let testNormals: Sample[];
  if (isDir(join(dir, 'normal_test'))) {
    train = normalFiles.map((f) => normal('normal', 'train', f));
    testNormals = need('normal_test').map((f) => normal('normal_test', 'test', f));
  } else {
    const share = o.testNormalShare ?? FOLDER_TEST_NORMAL_SHARE;
    const k = Math.round(share * normalFiles.length);
    if (k < 1 || k >= normalFiles.length) throw new DatasetError(`'${join(dir, 'normal')}' has ${normalFiles.length} images: too few to move ${Math.round(100 * share)} % into test and keep some for training; add normal_test/`);
    const toTest = new Set(new Rng(`folder-split:${o.seed ?? 0}`).shuffle([...normalFiles]).slice(0, k));
    train = normalFiles.filter((f) => !toTest.has(f)).map((f) => normal('normal', 'train', f));
    testNormals = normalFiles.filter((f) => toTest.has(f)).map((f) => normal('normal', 'test', f));
  }
  const abnormal = abnormalFiles.map((f): Sample => {
    const s = stem(f);
    let maskPath: string | null = null;
    if (hasMasks) {
      maskPath = [join(masksDir, `${s}.png`), join(masksDir, `${s}_mask.png`)].find((p) => existsSync(p)) ?? null;
      if (!maskPath) throw new DatasetError(`abnormal image '${join(dir, 'abnormal', f)}' has no mask in '${masksDir}' (expected ${s}.png or ${s}_mask.png); masks are all or none`);
    }
    return { id: `test/abnormal/${s}`, path: join(dir, 'abnormal', f), maskPath, label: 1, defectType: 'abnormal' };
  });
  const test = [...testNormals, ...abnormal];
  checkUniqueIds([...train, ...test], dir);
  return { category, info, root, dir, train, test, defectTypes: ['abnormal'] };
}
