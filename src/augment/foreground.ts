/**
 * Foreground masks for strategies that keep anomalies on the object (GLASS LAS: glass.md §3
 * "Multiply by the foreground mask"; DiffusionAD: diffusionad.md §3 "M = F·P").
 *
 * Order of preference (README.md §Foreground):
 * 1. a folder of masks (`--fg DIR`; GLASS's `fg_mask/<class>/<file>`, DiffusionAD's
 *    `<cls>/DISthresh/good/<name>.png`): read by image name with src/data/imageIO's readMask
 *    (nearest resize, > 127 → 1; the authors' masks are 0/255, so this equals GLASS's
 *    resize-then-ceil up to edge pixels);
 * 2. texture categories: all ones (both specs' documented fallback);
 * 3. objects: `estimateForeground`, a border-colour + Otsu estimate (documented deviation; the
 *    authors' masks come from a salient-object / BGAD-style binarisation that is not released).
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { readMask } from '../data/imageIO.js';
import { DatasetError } from '../errors.js';
import type { Img } from './image.js';

/** Texture categories get all-ones foregrounds: MVTec's 5 textures and any category named *texture*. */
export function isTextureCategory(category: string | undefined): boolean {
  if (category === undefined) return false;
  return /texture/i.test(category) || MVTEC_TEXTURES.includes(category);
}

/** MVTec AD's texture classes (same list as src/data/categories.ts; kept here so augment does not depend on it). */
const MVTEC_TEXTURES: readonly string[] = ['carpet', 'grid', 'leather', 'tile', 'wood'];

/**
 * Simple object foreground estimate for one image (HWC in [0, 1]):
 * 1. background colour = per-channel median of a border ring 3 % of the side wide;
 * 2. distance d = max over channels |pixel − background|, box-blurred 5×5;
 * 3. Otsu threshold on d (256 bins over [0, max d]);
 * 4. holes (background pixels not 4-connected to the image border) are filled.
 * Falls back to all ones when the result covers < 1 % or > 99 % of the image (no usable contrast).
 */
export function estimateForeground(img: Img): Float32Array {
  const { h, w, c, data } = img;
  const n = h * w;
  const ring = Math.max(1, Math.round(0.03 * Math.min(h, w)));
  const count = h * w - Math.max(0, h - 2 * ring) * Math.max(0, w - 2 * ring);
  const bg: number[] = [];
  const vals = new Float32Array(count);
  for (let k = 0; k < c; k++) {
    let j = 0;
    for (let y = 0; y < h; y++) {
      const full = y < ring || y >= h - ring;
      for (let x = 0; x < w; x++) {
        if (!full && x === ring) x = w - ring; // skip the interior of the row
        vals[j++] = data[(y * w + x) * c + k];
      }
    }
    vals.sort();
    bg.push(vals[count >> 1]);
  }
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let k = 0; k < c; k++) m = Math.max(m, Math.abs(data[i * c + k] - bg[k]));
    d[i] = m;
  }
  const blurred = boxBlur(d, h, w, 2);
  const t = otsu(blurred);
  const fg = new Float32Array(n);
  for (let i = 0; i < n; i++) fg[i] = blurred[i] > t ? 1 : 0;
  fillHoles(fg, h, w);
  let s = 0;
  for (let i = 0; i < n; i++) s += fg[i];
  if (s < 0.01 * n || s > 0.99 * n) fg.fill(1);
  return fg;
}

function boxBlur(a: Float32Array, h: number, w: number, r: number): Float32Array {
  const tmp = new Float32Array(a.length);
  const out = new Float32Array(a.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      let cnt = 0;
      for (let dx = -r; dx <= r; dx++) {
        const xx = x + dx;
        if (xx >= 0 && xx < w) {
          s += a[y * w + xx];
          cnt++;
        }
      }
      tmp[y * w + x] = s / cnt;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      let cnt = 0;
      for (let dy = -r; dy <= r; dy++) {
        const yy = y + dy;
        if (yy >= 0 && yy < h) {
          s += tmp[yy * w + x];
          cnt++;
        }
      }
      out[y * w + x] = s / cnt;
    }
  }
  return out;
}

/** Otsu's threshold of values in [0, max]; returns a value between bins. */
export function otsu(a: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) if (a[i] > max) max = a[i];
  if (max <= 0) return 0;
  const hist = new Float64Array(256);
  for (let i = 0; i < a.length; i++) hist[Math.min(255, Math.floor((a[i] / max) * 256))]++;
  const total = a.length;
  let sumAll = 0;
  for (let i = 0; i < 256; i++) sumAll += i * hist[i];
  let wB = 0;
  let sumB = 0;
  let best = -1;
  let bestT = 0;
  for (let t = 0; t < 256; t++) {
    wB += hist[t];
    if (wB === 0) continue;
    const wF = total - wB;
    if (wF === 0) break;
    sumB += t * hist[t];
    const mB = sumB / wB;
    const mF = (sumAll - sumB) / wF;
    const between = wB * wF * (mB - mF) * (mB - mF);
    if (between > best) {
      best = between;
      bestT = t;
    }
  }
  return ((bestT + 1) / 256) * max;
}

/** Sets to 1 every 0-pixel not 4-connected to the border through 0-pixels. */
function fillHoles(m: Float32Array, h: number, w: number): void {
  const seen = new Uint8Array(h * w);
  const stack: number[] = [];
  const push = (i: number): void => {
    if (!seen[i] && m[i] === 0) {
      seen[i] = 1;
      stack.push(i);
    }
  };
  for (let x = 0; x < w; x++) {
    push(x);
    push((h - 1) * w + x);
  }
  for (let y = 0; y < h; y++) {
    push(y * w);
    push(y * w + w - 1);
  }
  while (stack.length > 0) {
    const i = stack.pop() as number;
    const y = Math.floor(i / w);
    const x = i - y * w;
    if (x > 0) push(i - 1);
    if (x < w - 1) push(i + 1);
    if (y > 0) push(i - w);
    if (y < h - 1) push(i + w);
  }
  for (let i = 0; i < m.length; i++) if (m[i] === 0 && !seen[i]) m[i] = 1;
}

/**
 * Foreground for a batch held as an NHWC typed array: the given masks (binarised), else all ones
 * for textures, else the per-image estimate. Returns N·H·W values (0/1) and how they were made.
 */
export function resolveForeground(
  images: Float32Array,
  n: number,
  h: number,
  w: number,
  c: number,
  given: Float32Array | undefined,
  category: string | undefined,
): { fg: Float32Array; how: 'given' | 'ones' | 'estimated' } {
  const hw = h * w;
  if (given) {
    const fg = new Float32Array(n * hw);
    for (let i = 0; i < fg.length; i++) fg[i] = given[i] > 0 ? 1 : 0;
    return { fg, how: 'given' };
  }
  if (isTextureCategory(category)) return { fg: new Float32Array(n * hw).fill(1), how: 'ones' };
  const fg = new Float32Array(n * hw);
  for (let i = 0; i < n; i++) {
    const img: Img = { data: images.subarray(i * hw * c, (i + 1) * hw * c), h, w, c };
    fg.set(estimateForeground(img), i * hw);
  }
  return { fg, how: 'estimated' };
}

/** Human-readable description of the foreground rule for a category (for the run record). */
export function foregroundRule(category: string | undefined, haveMasks: boolean): string {
  if (haveMasks) return 'given masks (value > 0 → 1)';
  return isTextureCategory(category) ? 'all ones (texture category)' : 'estimated (border colour + Otsu + hole filling)';
}

/**
 * Reads foreground masks for images named `names` (file names or stems) from `dir`: tries
 * `<dir>/<name>`, then `<dir>/<stem>.png|.jpg|.bmp`. Returns [N, h, w, 1] 0/1 (nearest resize, > 127 → 1).
 * @throws DatasetError naming the first missing or unreadable mask file.
 */
export async function readForegroundMasks(dir: string, names: readonly string[], h: number, w: number): Promise<tf.Tensor4D> {
  const out = new Float32Array(names.length * h * w);
  for (let i = 0; i < names.length; i++) {
    const base = basename(names[i]);
    const stem = base.slice(0, base.length - extname(base).length);
    const candidates = [join(dir, base), ...['.png', '.jpg', '.bmp'].map((e) => join(dir, stem + e))];
    const file = candidates.find((p) => existsSync(p));
    if (!file) throw new DatasetError(`foreground mask for ${names[i]} not found: looked for ${candidates.join(', ')}`);
    const m = await readMask(file, { size: [h, w] });
    for (let j = 0; j < h * w; j++) out[i * h * w + j] = m.data[j];
  }
  return tf.tensor4d(out, [names.length, h, w, 1]);
}

/**
 * Foreground masks [N, H, W, 1] for a batch of training images by the rules above (textures: ones;
 * objects: estimate). Compute once per training image and pass as `foreground` to `generate`, so
 * the estimate is not redone every epoch.
 */
export async function foregroundMasks(images: tf.Tensor4D, category: string | undefined): Promise<tf.Tensor4D> {
  const [n, h, w, c] = images.shape;
  const data = (await images.data()) as Float32Array;
  const { fg } = resolveForeground(data, n, h, w, c, undefined, category);
  return tf.tensor4d(fg, [n, h, w, 1]);
}
