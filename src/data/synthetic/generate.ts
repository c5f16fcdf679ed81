import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConfigError, DatasetError } from '../../errors.js';
import { Rng } from '../../util/rng.js';
import { categoryInfo } from '../categories.js';
import { writePng } from '../imageIO.js';
import { applyDefect, SYNTHETIC_DEFECTS, type SyntheticDefect } from './defects.js';
import { renderObject, renderTexture, type Scene } from './scenes.js';

/**
 * Seeded synthetic dataset in the MVTec AD layout, so that every part of the framework can run
 * and be tested without the real data. Images depend only on (seed, category, split, kind,
 * index), never on the counts: asking for more training images adds files and leaves the others
 * byte-identical.
 */

export const SYNTHETIC_CATEGORIES = ['synthetic_texture', 'synthetic_object'] as const;
export type SyntheticCategory = (typeof SYNTHETIC_CATEGORIES)[number];

export interface SyntheticOptions {
  /** Square image side in pixels. */
  size: number;
  seed: number | string;
  nTrain: number;
  nTestGood: number;
  nPerDefect: number;
  defects: readonly SyntheticDefect[];
}

export const DEFAULT_SYNTHETIC_OPTIONS: Readonly<SyntheticOptions> = {
  size: 128,
  seed: 0,
  nTrain: 60,
  nTestGood: 15,
  nPerDefect: 10,
  defects: SYNTHETIC_DEFECTS,
};

export const SYNTHETIC_MANIFEST = 'synthetic.json';
const GENERATOR_ID = 'adbench-synthetic/1';

export function isSyntheticCategory(name: string): name is SyntheticCategory {
  return (SYNTHETIC_CATEGORIES as readonly string[]).includes(name);
}

/** The synthetic category that stands in for a requested one: textures -> texture, else object. */
export function syntheticStandIn(requested: string): SyntheticCategory {
  if (isSyntheticCategory(requested)) return requested;
  return categoryInfo(requested).group === 'texture' ? 'synthetic_texture' : 'synthetic_object';
}

/**
 * The notice to print (loudly, e.g. framed on stderr) whenever synthetic data replaces a
 * requested category, so no one mistakes its numbers for MVTec AD results.
 */
export function syntheticDataNotice(requested: string, used: SyntheticCategory, root: string): string {
  const bar = '!'.repeat(78);
  return [
    bar,
    `!! SYNTHETIC DATA: category '${requested}' was not found, so this run uses the generated`,
    `!! '${used}' category from '${root}'.`,
    '!! These are procedurally drawn images with simple planted defects, NOT MVTec AD.',
    '!! Scores, thresholds and timings from this run are NOT comparable to the paper',
    '!! (Cools et al. 2025) or to any MVTec AD result. Set --data or $MVTEC_ROOT to the',
    '!! real dataset to reproduce the paper.',
    bar,
  ].join('\n');
}

function resolveOptions(opts: Partial<SyntheticOptions>): SyntheticOptions {
  const o: SyntheticOptions = { ...DEFAULT_SYNTHETIC_OPTIONS, ...opts };
  if (!Number.isInteger(o.size) || o.size < 32 || o.size > 2048) {
    throw new ConfigError(`synthetic image size must be an integer in [32, 2048], got ${o.size}`);
  }
  for (const [k, v] of [['nTrain', o.nTrain], ['nTestGood', o.nTestGood], ['nPerDefect', o.nPerDefect]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 100_000) throw new ConfigError(`synthetic ${k} must be a non-negative integer, got ${v}`);
  }
  if (o.nTrain < 1) throw new ConfigError('synthetic nTrain must be at least 1');
  for (const d of o.defects) {
    if (!(SYNTHETIC_DEFECTS as readonly string[]).includes(d)) {
      throw new ConfigError(`unknown synthetic defect '${d}'; known: ${SYNTHETIC_DEFECTS.join(', ')}`);
    }
  }
  return o;
}

function checkCategory(category: string): SyntheticCategory {
  if (!isSyntheticCategory(category)) {
    throw new ConfigError(
      `'${category}' is not a synthetic category; choose from ${SYNTHETIC_CATEGORIES.join(', ')}`,
    );
  }
  return category;
}

export interface SyntheticSample {
  /** HWC RGB in [0, 1], before any defect. */
  clean: Float32Array;
  /** The image as written (equal to `clean` for good images). */
  image: Float32Array;
  /** 0/1 per pixel; null for good images. */
  mask: Uint8Array | null;
  size: number;
}

function renderScene(category: SyntheticCategory, rng: Rng, size: number): Scene {
  return category === 'synthetic_texture' ? renderTexture(rng, size) : renderObject(rng, size);
}

/** Render one image in memory (what the generator writes for that file). */
export function renderSyntheticSample(
  category: SyntheticCategory, split: 'train' | 'test', kind: 'good' | SyntheticDefect, index: number,
  opts: { size?: number; seed?: number | string } = {},
): SyntheticSample {
  const size = opts.size ?? DEFAULT_SYNTHETIC_OPTIONS.size;
  const rng = new Rng(opts.seed ?? DEFAULT_SYNTHETIC_OPTIONS.seed).fork(`${category}/${split}/${kind}/${index}`);
  const scene = renderScene(category, rng.fork('scene'), size);
  if (kind === 'good') return { clean: scene.canvas.data, image: scene.canvas.data, mask: null, size };
  const { canvas, mask } = applyDefect(scene, kind, rng.fork('defect'));
  return { clean: scene.canvas.data, image: canvas.data, mask, size };
}

export interface GeneratedCategory {
  category: SyntheticCategory;
  /** Dataset root to index it from (the folder holding the category folder). */
  root: string;
  dir: string;
  counts: { train: number; testGood: number; testDefective: number };
}

const name3 = (i: number): string => String(i).padStart(3, '0');

interface Manifest {
  generator: string;
  category: string;
  options: SyntheticOptions;
  note: string;
}

function readManifest(dir: string): Manifest | null {
  try {
    const m = JSON.parse(readFileSync(join(dir, SYNTHETIC_MANIFEST), 'utf8')) as Manifest;
    return m.generator === GENERATOR_ID ? m : null;
  } catch {
    return null;
  }
}

/**
 * Write `<root>/<category>/{train/good, test/good, test/<defect>, ground_truth/<defect>}`.
 * The folder is built under a temporary name and renamed into place, so an interrupted run
 * never leaves a half-written dataset that looks complete. An existing folder is replaced only
 * if it is itself a generated one (it has our manifest): real data is never deleted.
 */
export async function generateSyntheticCategory(
  category: string, root: string, options: Partial<SyntheticOptions> = {},
): Promise<GeneratedCategory> {
  const cat = checkCategory(category);
  const o = resolveOptions(options);
  const absRoot = resolve(root);
  const dir = join(absRoot, cat);
  if (existsSync(dir) && !readManifest(dir)) {
    throw new DatasetError(
      `'${dir}' exists and is not a generated synthetic dataset (no ${SYNTHETIC_MANIFEST}); ` +
        'choose another --out folder or remove it yourself',
    );
  }
  const tmp = join(absRoot, `.${cat}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const write = (path: string, data: Float32Array | Uint8Array, channels: 1 | 3) =>
    writePng(join(tmp, path), data, o.size, o.size, channels);

  for (let i = 0; i < o.nTrain; i++) {
    await write(`train/good/${name3(i)}.png`, renderSyntheticSample(cat, 'train', 'good', i, o).image, 3);
  }
  for (let i = 0; i < o.nTestGood; i++) {
    await write(`test/good/${name3(i)}.png`, renderSyntheticSample(cat, 'test', 'good', i, o).image, 3);
  }
  for (const d of o.defects) {
    for (let i = 0; i < o.nPerDefect; i++) {
      const s = renderSyntheticSample(cat, 'test', d, i, o);
      await write(`test/${d}/${name3(i)}.png`, s.image, 3);
      const mask = new Uint8Array(s.mask ?? []);
      for (let k = 0; k < mask.length; k++) mask[k] *= 255;
      await write(`ground_truth/${d}/${name3(i)}_mask.png`, mask, 1);
    }
  }
  const manifest: Manifest = {
    generator: GENERATOR_ID,
    category: cat,
    options: { ...o, defects: [...o.defects] },
    note: 'SYNTHETIC DATA generated by adbench-tfjs (src/data/synthetic). Not MVTec AD; results are not comparable to the paper.',
  };
  await writeFile(join(tmp, SYNTHETIC_MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  await writeFile(join(tmp, 'README.txt'), `${manifest.note}\nRegenerate: npx tsx experiments/make-synthetic.ts --out ${absRoot} --categories ${cat}\n`);
  // Concurrent runs (e.g. two test workers) may have generated the same folder meanwhile: an
  // equivalent copy is kept, never deleted under a reader's feet.
  const existing = readManifest(dir);
  if (existing && sameOptions(existing.options, o)) {
    await rm(tmp, { recursive: true, force: true });
    return {
      category: cat, root: absRoot, dir,
      counts: { train: o.nTrain, testGood: o.nTestGood, testDefective: o.nPerDefect * o.defects.length },
    };
  }
  await rm(dir, { recursive: true, force: true });
  try {
    await rename(tmp, dir);
  } catch (e) {
    // Another process generated the same folder meanwhile: keep its copy if it is equivalent.
    const other = readManifest(dir);
    await rm(tmp, { recursive: true, force: true });
    if (!other || !sameOptions(other.options, o)) throw e;
  }
  return {
    category: cat, root: absRoot, dir,
    counts: { train: o.nTrain, testGood: o.nTestGood, testDefective: o.nPerDefect * o.defects.length },
  };
}

const sameOptions = (a: SyntheticOptions, b: SyntheticOptions): boolean =>
  a.size === b.size && String(a.seed) === String(b.seed) && a.nTrain === b.nTrain &&
  a.nTestGood === b.nTestGood && a.nPerDefect === b.nPerDefect &&
  a.defects.length === b.defects.length && a.defects.every((d, i) => d === b.defects[i]);

/**
 * Generate `<cacheDir>/<category>` unless a generated copy with the same options is already
 * there. Returns the root to index from and whether it was (re)generated.
 */
export async function ensureSyntheticCategory(
  category: string, cacheDir: string, options: Partial<SyntheticOptions> = {},
): Promise<GeneratedCategory & { generated: boolean }> {
  const cat = checkCategory(category);
  const o = resolveOptions(options);
  const root = resolve(cacheDir);
  const dir = join(root, cat);
  const m = readManifest(dir);
  if (m && sameOptions(m.options, o)) {
    return {
      category: cat, root, dir, generated: false,
      counts: { train: o.nTrain, testGood: o.nTestGood, testDefective: o.nPerDefect * o.defects.length },
    };
  }
  return { ...(await generateSyntheticCategory(cat, root, o)), generated: true };
}
