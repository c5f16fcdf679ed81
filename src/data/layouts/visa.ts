import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { DatasetError } from '../../errors.js';
import { categoryInfo } from '../categories.js';
import { checkUniqueIds, isDir, stem, type CategoryIndex, type Sample } from '../mvtec.js';

/**
 * VisA (Zou et al. 2022, "SPot-the-Difference"), as distributed: images under
 * `<root>/<category>/Data/Images/{Normal,Anomaly}/`, masks under `<root>/<category>/Data/Masks/Anomaly/`,
 * and the split in a CSV (`<root>/split_csv/1cls.csv`, header `object,split,label,image,mask`,
 * paths relative to the root, label `normal` or `anomaly`). Masks mark defects with class indices
 * (1, 2, ...), hence `maskNonZero`. The CSV is the split: nothing is re-split here.
 */

export const VISA_CATEGORIES = ['candle', 'capsules', 'cashew', 'chewinggum', 'fryum', 'macaroni1', 'macaroni2', 'pcb1', 'pcb2', 'pcb3', 'pcb4', 'pipe_fryum'] as const;
export const VISA_SPLIT_CSV = join('split_csv', '1cls.csv');

function csvRows(text: string): string[][] {
  return text.split(/\r?\n/).filter((l) => l.trim() !== '').map((l) => l.split(',').map((f) => f.trim()));
}

export function indexVisaCategory(category: string, rootDir: string, splitCsv?: string): CategoryIndex {
  const info = categoryInfo(category);
  const root = resolve(rootDir);
  if (!isDir(root)) throw new DatasetError(`VisA root '${root}' does not exist (--data)`);
  const csvPath = resolve(splitCsv ?? join(root, VISA_SPLIT_CSV));
  if (!existsSync(csvPath)) throw new DatasetError(`VisA split file '${csvPath}' is missing: VisA ships it as split_csv/1cls.csv (header object,split,label,image,mask)`);
  const rows = csvRows(readFileSync(csvPath, 'utf8'));
  const header = rows[0] ?? [];
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new DatasetError(`${csvPath}: header has no '${name}' column (expected object,split,label,image,mask; got ${header.join(',')})`);
    return i;
  };
  const [iObj, iSplit, iLabel, iImage, iMask] = ['object', 'split', 'label', 'image', 'mask'].map(col);
  const mine = rows.slice(1).filter((r) => r[iObj] === category);
  if (mine.length === 0) {
    const found = [...new Set(rows.slice(1).map((r) => r[iObj]))].sort();
    throw new DatasetError(`${csvPath} has no rows for category '${category}'; categories in it: ${found.join(', ')}`);
  }
  const train: Sample[] = [];
  const test: Sample[] = [];
  mine.forEach((r, k) => {
    const line = k + 2;
    const split = r[iSplit];
    const label = r[iLabel];
    if (split !== 'train' && split !== 'test') throw new DatasetError(`${csvPath} line ${line}: split '${split}' is neither train nor test`);
    if (label !== 'normal' && label !== 'anomaly') throw new DatasetError(`${csvPath} line ${line}: label '${label}' is neither normal nor anomaly`);
    const path = join(root, r[iImage]);
    if (!existsSync(path)) throw new DatasetError(`${csvPath} line ${line}: image '${path}' does not exist`);
    const anomalous = label === 'anomaly';
    if (anomalous && split === 'train') throw new DatasetError(`${csvPath} line ${line}: an anomalous image in the train split; training sets are normal only`);
    let maskPath: string | null = null;
    if (anomalous) {
      if (!r[iMask]) throw new DatasetError(`${csvPath} line ${line}: anomalous image '${r[iImage]}' has no mask`);
      maskPath = join(root, r[iMask]);
      if (!existsSync(maskPath)) throw new DatasetError(`${csvPath} line ${line}: mask '${maskPath}' does not exist`);
    }
    const s = stem(basename(path));
    const sample: Sample = anomalous
      ? { id: `${split}/anomaly/${s}`, path, maskPath, label: 1, defectType: 'anomaly', maskNonZero: true }
      : { id: `${split}/good/${s}`, path, maskPath: null, label: 0, defectType: 'good' };
    (split === 'train' ? train : test).push(sample);
  });
  if (train.length === 0) throw new DatasetError(`${csvPath}: category '${category}' has no train rows`);
  if (test.length === 0) throw new DatasetError(`${csvPath}: category '${category}' has no test rows`);
  const dir = join(root, category);
  checkUniqueIds([...train, ...test], dir);
  return { category, info, root, dir: isDir(dir) ? dir : dirname(train[0].path), train, test, defectTypes: test.some((t) => t.label === 1) ? ['anomaly'] : [] };
}
