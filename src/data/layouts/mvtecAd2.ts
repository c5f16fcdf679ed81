import { join, resolve } from 'node:path';
import { DatasetError } from '../../errors.js';
import { categoryInfo } from '../categories.js';
import { checkUniqueIds, imageFiles, isDir, listCategoryFolders, stem, type CategoryIndex, type Sample } from '../mvtec.js';
import { existsSync } from 'node:fs';

/**
 * MVTec AD 2 (Heckler-Kram et al. 2025):
 *
 *   <root>/<category>/train/good/*.png
 *   <root>/<category>/validation/good/*.png        (normal; used as training normals here, the split holds its own out)
 *   <root>/<category>/test_public/good/*.png
 *   <root>/<category>/test_public/bad/*.png
 *   <root>/<category>/test_public/ground_truth/bad/<stem>_mask.png
 *
 * test_private and test_private_mixed have no public ground truth and are not indexed.
 */

export const MVTEC_AD2_CATEGORIES = ['can', 'fabric', 'fruit_jelly', 'rice', 'sheet_metal', 'vial', 'wallplugs', 'walnuts'] as const;

export function indexMvtecAd2Category(category: string, rootDir: string): CategoryIndex {
  const info = categoryInfo(category);
  const root = resolve(rootDir);
  if (!isDir(root)) throw new DatasetError(`MVTec AD 2 root '${root}' does not exist (--data)`);
  const dir = join(root, category);
  if (!isDir(dir)) {
    throw new DatasetError(`MVTec AD 2 category '${category}' not found: '${dir}' does not exist; found: ${listCategoryFolders(root).join(', ') || 'none'}`);
  }
  const normals = (sub: string, split: string): Sample[] => {
    const folder = join(dir, sub, 'good');
    if (!isDir(folder)) return [];
    return imageFiles(folder).map((f) => ({ id: `${split}/good/${stem(f)}`, path: join(folder, f), maskPath: null, label: 0 as const, defectType: 'good' }));
  };
  const train = [...normals('train', 'train'), ...normals('validation', 'validation')];
  if (train.length === 0) throw new DatasetError(`'${join(dir, 'train', 'good')}' has no images: MVTec AD 2 keeps its normal training images there`);
  const testDir = join(dir, 'test_public');
  if (!isDir(testDir)) throw new DatasetError(`'${testDir}' is missing: MVTec AD 2's labelled test set is test_public/ (good/, bad/, ground_truth/bad/)`);
  const test = normals('test_public', 'test');
  const bad = join(testDir, 'bad');
  for (const f of isDir(bad) ? imageFiles(bad) : []) {
    const s = stem(f);
    const mask = join(testDir, 'ground_truth', 'bad', `${s}_mask.png`);
    if (!existsSync(mask)) throw new DatasetError(`defect image '${join(bad, f)}' has no mask: expected '${mask}'`);
    test.push({ id: `test/bad/${s}`, path: join(bad, f), maskPath: mask, label: 1, defectType: 'bad' });
  }
  if (!test.some((t) => t.label === 0) || !test.some((t) => t.label === 1)) {
    throw new DatasetError(`'${testDir}' needs both good/ and bad/ images (found ${test.filter((t) => t.label === 0).length} good, ${test.filter((t) => t.label === 1).length} bad)`);
  }
  checkUniqueIds([...train, ...test], dir);
  return { category, info, root, dir, train, test, defectTypes: ['bad'] };
}
