import { readCached, writeCached } from './preprocessCache.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { DatasetError } from '../errors.js';
import { categoryInfo, type CategoryInfo } from './categories.js';
import {
  decodeImage, decodeMask, emptyMask, transformImage, transformMask, transformedSize,
  type BinaryMask, type ImageTransform, type RgbImage,
} from './imageIO.js';

/**
 * Index of one category in the MVTec AD layout:
 *
 *   <root>/<category>/train/good/*.png
 *   <root>/<category>/test/<defect>/*.png          (test/good = normal test images)
 *   <root>/<category>/ground_truth/<defect>/<name>_mask.png   (none for test/good)
 *
 * Any folder with this layout works ('custom' category). Indexing only lists files; pixels are
 * read by `loadSample`, which also checks that a mask has its image's size.
 */

export const DEFAULT_MVTEC_ROOT = 'data/mvtec_ad';
export const MVTEC_ROOT_ENV = 'MVTEC_ROOT';

export interface Sample {
  /** `<split>/<defect>/<stem>`, e.g. 'test/broken_large/000' or 'train/good/012'; unique in a category. */
  id: string;
  path: string;
  /** Ground-truth mask; null for normal images (train/good, test/good). */
  maskPath: string | null;
  /** 0 = normal, 1 = anomalous. */
  label: 0 | 1;
  /** 'good' or the test sub-folder name. */
  defectType: string;
  /**
   * The mask marks defects with any non-zero value (VisA stores class indices 1, 2, ...), not
   * with white; binarised at > 0 before resizing. Default: MVTec's > half of the range.
   */
  maskNonZero?: boolean;
}

export interface CategoryIndex {
  category: string;
  info: CategoryInfo;
  /** Absolute dataset root. */
  root: string;
  /** Absolute `<root>/<category>`. */
  dir: string;
  train: Sample[];
  test: Sample[];
  /** Anomalous test sub-folders, sorted. */
  defectTypes: string[];
}

export type RootSource = 'option' | 'env' | 'default';

/** Root precedence: explicit option > $MVTEC_ROOT > ./data/mvtec_ad (relative to cwd). */
export function resolveMvtecRoot(
  option?: string, env: Readonly<Record<string, string | undefined>> = process.env,
): { root: string; source: RootSource } {
  if (option) return { root: resolve(option), source: 'option' };
  const fromEnv = env[MVTEC_ROOT_ENV];
  if (fromEnv) return { root: resolve(fromEnv), source: 'env' };
  return { root: resolve(DEFAULT_MVTEC_ROOT), source: 'default' };
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp']);

// Code-point order, not localeCompare: the order (and with it every seeded split) must not depend
// on the machine's locale. MVTec names are zero-padded, so this is also numeric order.
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function subdirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => (d.isDirectory() || (d.isSymbolicLink() && isDir(join(dir, d.name)))) && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort(byCodePoint);
}

/** Image files (by extension) in a folder, hidden ones skipped, in code-point order. */
export function imageFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => !f.startsWith('.') && IMAGE_EXTENSIONS.has(extname(f).toLowerCase()))
    .sort(byCodePoint);
}

export const stem = (file: string): string => file.slice(0, file.length - extname(file).length);

/** Sub-folders of `root` that look like categories (they have a `train` folder), sorted. */
export function listCategoryFolders(root: string): string[] {
  if (!isDir(root)) return [];
  return subdirs(root).filter((d) => isDir(join(root, d, 'train')));
}

function rootHint(source: RootSource): string {
  const how = {
    option: 'the --data option',
    env: `$${MVTEC_ROOT_ENV}`,
    default: `the default ./${DEFAULT_MVTEC_ROOT} (set --data or $${MVTEC_ROOT_ENV} to change it)`,
  }[source];
  return `(root taken from ${how})`;
}

export interface IndexOptions {
  /** Dataset root; falls back to $MVTEC_ROOT, then ./data/mvtec_ad. */
  root?: string;
  env?: Readonly<Record<string, string | undefined>>;
}

/** List a category's files. Throws DatasetError for anything missing, empty or unmatched. */
export function indexCategory(category: string, opts: IndexOptions = {}): CategoryIndex {
  const info = categoryInfo(category);
  const { root, source } = resolveMvtecRoot(opts.root, opts.env);
  if (!isDir(root)) {
    throw new DatasetError(
      `dataset root '${root}' does not exist ${rootHint(source)}. Download MVTec AD and point ` +
        `the root at the folder holding the category folders, or generate synthetic data with ` +
        '`npx tsx experiments/make-synthetic.ts --out DIR`.',
    );
  }
  const dir = join(root, category);
  if (!isDir(dir)) {
    const found = listCategoryFolders(root);
    throw new DatasetError(
      `category '${category}' not found: '${dir}' does not exist ${rootHint(source)}. ` +
        (found.length
          ? `Categories found under '${root}': ${found.join(', ')}.`
          : `No category folders (with a train/ sub-folder) were found under '${root}'.`),
    );
  }
  const trainGood = join(dir, 'train', 'good');
  if (!isDir(trainGood)) {
    throw new DatasetError(`'${trainGood}' is missing: a category needs its normal training images there`);
  }
  const train = imageFiles(trainGood).map((f): Sample => ({
    id: `train/good/${stem(f)}`, path: join(trainGood, f), maskPath: null, label: 0, defectType: 'good',
  }));
  if (train.length === 0) throw new DatasetError(`'${trainGood}' contains no PNG/JPEG images`);

  const testDir = join(dir, 'test');
  if (!isDir(testDir)) throw new DatasetError(`'${testDir}' is missing: a category needs test images`);
  const testTypes = subdirs(testDir);
  if (testTypes.length === 0) {
    throw new DatasetError(`'${testDir}' has no sub-folders (expected good/ and one per defect type)`);
  }
  const test: Sample[] = [];
  for (const type of testTypes) {
    const folder = join(testDir, type);
    const files = imageFiles(folder);
    if (files.length === 0) throw new DatasetError(`'${folder}' contains no PNG/JPEG images`);
    for (const f of files) {
      const s = stem(f);
      const id = `test/${type}/${s}`;
      if (type === 'good') {
        test.push({ id, path: join(folder, f), maskPath: null, label: 0, defectType: type });
        continue;
      }
      test.push({ id, path: join(folder, f), maskPath: findMask(dir, type, s, join(folder, f)), label: 1, defectType: type });
    }
  }
  checkUniqueIds([...train, ...test], dir);
  return {
    category, info, root, dir, train, test,
    defectTypes: testTypes.filter((t) => t !== 'good'),
  };
}

/**
 * MVTec names masks `<stem>_mask.png`; `<stem>.png` is accepted too (several MVTec-style
 * datasets use it). A defect image without a mask is an error, not a warning: pixel metrics would
 * silently count the whole defect as normal.
 */
function findMask(dir: string, type: string, s: string, imagePath: string): string {
  const expected = join(dir, 'ground_truth', type, `${s}_mask.png`);
  if (existsSync(expected)) return expected;
  const alt = join(dir, 'ground_truth', type, `${s}.png`);
  if (existsSync(alt)) return alt;
  throw new DatasetError(
    `defect image '${imagePath}' has no ground-truth mask: expected '${expected}'. ` +
      'Every image in test/<defect>/ needs one (test/good needs none).',
  );
}

// Two files with the same stem but different extensions (000.png and 000.jpg) would share an id,
// which splits and run folders use as the key.
export function checkUniqueIds(samples: readonly Sample[], dir: string): void {
  const seen = new Map<string, string>();
  for (const s of samples) {
    const prev = seen.get(s.id);
    if (prev) throw new DatasetError(`'${prev}' and '${s.path}' in '${dir}' have the same name; keep one`);
    seen.set(s.id, s.path);
  }
}

export interface LoadedSample {
  sample: Sample;
  image: RgbImage;
  /** Always present: all zeros for normal images. */
  mask: BinaryMask;
}

/**
 * Decode one sample and its mask with the same geometry. The mask must have exactly its image's
 * size before resizing (otherwise the labels would be misregistered after the resize).
 */
export async function loadSample(sample: Sample, t: ImageTransform = {}): Promise<LoadedSample> {
  const raw = await decodeImage(sample.path);
  const image = await transformImage(raw, t);
  if (sample.maskPath === null) {
    const [h, w] = transformedSize(raw.h, raw.w, t);
    return { sample, image, mask: emptyMask(h, w) };
  }
  const rawMask = await decodeMask(sample.maskPath);
  if (sample.maskNonZero) {
    const full = rawMask.bitDepth === 16 ? 65535 : 255;
    for (let i = 0; i < rawMask.data.length; i++) rawMask.data[i] = rawMask.data[i] > 0 ? full : 0;
  }
  if (rawMask.h !== raw.h || rawMask.w !== raw.w) {
    throw new DatasetError(
      `mask '${sample.maskPath}' is ${rawMask.w}x${rawMask.h} but its image '${sample.path}' is ` +
        `${raw.w}x${raw.h} (width x height); they must have the same size`,
    );
  }
  return { sample, image, mask: transformMask(rawMask, t) };
}

/**
 * Load many samples, a few at a time: decoding is native (libuv threads) while the resize runs
 * on the JS thread, so a small window overlaps the two without piling up 900x900 buffers.
 */
export async function loadSamples(
  samples: readonly Sample[], t: ImageTransform = {}, concurrency = 4,
  /** Folder of the preprocessing cache (preprocessCache.ts); null/undefined = no cache. */
  cacheDir?: string | null,
): Promise<LoadedSample[]> {
  const out: LoadedSample[] = new Array(samples.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < samples.length) {
      const i = next++;
      const hit = cacheDir ? readCached(cacheDir, samples[i], t) : null;
      if (hit) {
        out[i] = hit;
        continue;
      }
      out[i] = await loadSample(samples[i], t);
      if (cacheDir) writeCached(cacheDir, out[i], t);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, samples.length)) }, worker));
  return out;
}
