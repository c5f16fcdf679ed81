/**
 * Native re-implementations of the texture augmenters DRAEM (imgaug 0.4.0 defaults, draem.md §3
 * step 1; reused by DiffusionAD, diffusionad.md §3) and GLASS (torchvision ops, glass.md §3 LAS)
 * push the anomaly texture through: "3 distinct augmenters chosen at random, applied in the drawn
 * order". They work on HWC float images in [0, 1]; 8-bit behaviour (thresholds, histograms,
 * posterize bits) is emulated on the value ×255 rounded, as the originals run on uint8.
 */
import type { Rng } from '../util/rng.js';
import {
  type Img,
  applyLut,
  clampInPlace,
  cloneImg,
  histogram8,
  hsvToRgb,
  luma,
  rgbToHsv,
  rotate,
  to8,
} from './image.js';

export interface Augmenter {
  name: string;
  /** Parameter ranges, as documented in README.md. */
  doc: string;
  apply(img: Img, rng: Rng): Img;
}

// ---------------------------------------------------------------- shared ops

export function gammaPerChannel(img: Img, gammas: readonly number[]): Img {
  // 4096-entry lookup per channel with linear interpolation (|error| < 1e-4; imgaug itself works on uint8)
  const N = 4096;
  const { data, c } = img;
  const luts = Array.from({ length: c }, (_, k) => {
    const lut = new Float32Array(N + 1);
    for (let i = 0; i <= N; i++) lut[i] = Math.pow(i / N, gammas[k % gammas.length]);
    return lut;
  });
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v <= 0) {
      data[i] = 0;
      continue;
    }
    const lut = luts[i % c];
    const t = (v >= 1 ? 1 : v) * N;
    const j = Math.min(N - 1, Math.floor(t));
    data[i] = lut[j] + (t - j) * (lut[j + 1] - lut[j]);
  }
  return img;
}

/** Brightness on the luma channel of YCbCr: Y ← Y·mul + add (in that order, or add first). */
export function multiplyAddBrightness(img: Img, mul: number, add: number, addFirst: boolean): Img {
  const { data, c } = img;
  if (c < 3) {
    for (let i = 0; i < data.length; i++) data[i] = addFirst ? (data[i] + add) * mul : data[i] * mul + add;
    return clampInPlace(img);
  }
  for (let i = 0; i < data.length; i += c) {
    const r = data[i];
    const g = data[i + 1];
    const b = data[i + 2];
    const y = luma(r, g, b);
    const cb = -0.168736 * r - 0.331264 * g + 0.5 * b;
    const cr = 0.5 * r - 0.418688 * g - 0.081312 * b;
    let y2 = addFirst ? (y + add) * mul : y * mul + add;
    y2 = y2 < 0 ? 0 : y2 > 1 ? 1 : y2;
    data[i] = y2 + 1.402 * cr;
    data[i + 1] = y2 - 0.344136 * cb - 0.714136 * cr;
    data[i + 2] = y2 + 1.772 * cb;
  }
  return clampInPlace(img);
}

/** PIL ImageEnhance.Sharpness: blend of the SMOOTH-filtered image (3×3 [1 1 1;1 5 1;1 1 1]/13, border kept) and the image. */
export function sharpness(img: Img, factor: number): Img {
  const { h, w, c, data } = img;
  const src = data.slice();
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      for (let k = 0; k < c; k++) {
        let s = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            s += src[((y + dy) * w + (x + dx)) * c + k] * (dx === 0 && dy === 0 ? 5 : 1);
          }
        }
        const smooth = s / 13;
        const i = (y * w + x) * c + k;
        data[i] = smooth + factor * (src[i] - smooth);
      }
    }
  }
  return clampInPlace(img);
}

/** Adds `dh` turns to hue and `ds` to saturation (HSV). */
export function hueSaturationShift(img: Img, dh: number, ds: number, satMul = 1): Img {
  const { data, c } = img;
  if (c < 3) return img;
  const hsv = [0, 0, 0];
  const rgb = [0, 0, 0];
  for (let i = 0; i < data.length; i += c) {
    rgbToHsv(data[i], data[i + 1], data[i + 2], hsv);
    let s = hsv[1] * satMul + ds;
    s = s < 0 ? 0 : s > 1 ? 1 : s;
    hsvToRgb(hsv[0] + dh, s, hsv[2], rgb);
    data[i] = rgb[0];
    data[i + 1] = rgb[1];
    data[i + 2] = rgb[2];
  }
  return img;
}

/** Inverts values ≥ threshold (both in [0, 1]); threshold 0 inverts everything. */
export function solarize(img: Img, threshold: number): Img {
  const d = img.data;
  for (let i = 0; i < d.length; i++) if (d[i] >= threshold) d[i] = 1 - d[i];
  return img;
}

/** Keeps the `bits` most significant bits of the 8-bit value (PIL posterize). */
export function posterize(img: Img, bits: number): Img {
  const mask = (0xff << (8 - bits)) & 0xff;
  const d = img.data;
  for (let i = 0; i < d.length; i++) d[i] = (to8(d[i]) & mask) / 255;
  return img;
}

/** PIL ImageOps.autocontrast with `cutoff` percent clipped from each end of each channel histogram. */
export function autocontrast(img: Img, cutoffPercent: number): Img {
  for (let k = 0; k < img.c; k++) {
    const hist = histogram8(img, k);
    let n = 0;
    for (let i = 0; i < 256; i++) n += hist[i];
    const cut = Math.floor((n * cutoffPercent) / 100);
    let lo = 0;
    let rem = cut;
    for (; lo < 256; lo++) {
      if (hist[lo] > rem) break;
      rem -= hist[lo];
    }
    let hi = 255;
    rem = cut;
    for (; hi >= 0; hi--) {
      if (hist[hi] > rem) break;
      rem -= hist[hi];
    }
    if (hi <= lo) continue;
    const scale = 255 / (hi - lo);
    const offset = -lo * scale;
    const lut = new Float32Array(256);
    for (let i = 0; i < 256; i++) {
      const v = Math.round(i * scale + offset);
      lut[i] = (v < 0 ? 0 : v > 255 ? 255 : v) / 255;
    }
    applyLut(img, k, lut);
  }
  return img;
}

/** PIL ImageOps.equalize, per channel (torchvision's equalize follows the same algorithm). */
export function equalize(img: Img): Img {
  for (let k = 0; k < img.c; k++) {
    const hist = histogram8(img, k);
    let last = 255;
    while (last > 0 && hist[last] === 0) last--;
    let total = 0;
    for (let i = 0; i < 256; i++) total += hist[i];
    const step = Math.floor((total - hist[last]) / 255);
    if (step === 0) continue;
    const lut = new Float32Array(256);
    let acc = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[i] = Math.min(255, Math.floor(acc / step)) / 255;
      acc += hist[i];
    }
    applyLut(img, k, lut);
  }
  return img;
}

/** torchvision adjust_contrast: blend with the mean of the grayscale image. */
export function contrast(img: Img, factor: number): Img {
  const { data, c } = img;
  let mean = 0;
  const n = data.length / c;
  for (let i = 0; i < data.length; i += c) mean += c >= 3 ? luma(data[i], data[i + 1], data[i + 2]) : data[i];
  mean /= n;
  for (let i = 0; i < data.length; i++) data[i] = mean + factor * (data[i] - mean);
  return clampInPlace(img);
}

export function brightness(img: Img, factor: number): Img {
  const d = img.data;
  for (let i = 0; i < d.length; i++) d[i] *= factor;
  return clampInPlace(img);
}

/** torchvision adjust_saturation: blend with the per-pixel grayscale value. */
export function saturation(img: Img, factor: number): Img {
  const { data, c } = img;
  if (c < 3) return img;
  for (let i = 0; i < data.length; i += c) {
    const g = luma(data[i], data[i + 1], data[i + 2]);
    for (let k = 0; k < 3; k++) data[i + k] = g + factor * (data[i + k] - g);
  }
  return clampInPlace(img);
}

export function grayscale(img: Img): Img {
  const { data, c } = img;
  if (c < 3) return img;
  for (let i = 0; i < data.length; i += c) {
    const g = luma(data[i], data[i + 1], data[i + 2]);
    data[i] = g;
    data[i + 1] = g;
    data[i + 2] = g;
  }
  return img;
}

export function flip(img: Img, horizontal: boolean): Img {
  const src = cloneImg(img);
  const { h, w, c } = img;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sy = horizontal ? y : h - 1 - y;
      const sx = horizontal ? w - 1 - x : x;
      for (let k = 0; k < c; k++) img.data[(y * w + x) * c + k] = src.data[(sy * w + sx) * c + k];
    }
  }
  return img;
}

/**
 * torchvision ColorJitter(brightness=b, contrast=c, saturation=s, hue=hu) with the four
 * adjustments in random order (each factor ~ U[1−x, 1+x], hue shift ~ U[−hu, hu] turns).
 * CutPaste uses 0.1 for all four (cutpaste.md §3).
 */
export function colorJitter(img: Img, rng: Rng, b: number, c: number, s: number, hu: number): Img {
  const ops: ((x: Img) => Img)[] = [];
  if (b > 0) {
    const f = rng.uniform(1 - b, 1 + b);
    ops.push((x) => brightness(x, f));
  }
  if (c > 0) {
    const f = rng.uniform(1 - c, 1 + c);
    ops.push((x) => contrast(x, f));
  }
  if (s > 0) {
    const f = rng.uniform(1 - s, 1 + s);
    ops.push((x) => saturation(x, f));
  }
  if (hu > 0) {
    const f = rng.uniform(-hu, hu);
    ops.push((x) => hueSaturationShift(x, f, 0));
  }
  let out = img;
  for (const op of rng.shuffle(ops)) out = op(out);
  return out;
}

// ---------------------------------------------------------------- DRAEM's list (imgaug)

/** DRAEM `augmenters` (data_loader.py), imgaug 0.4.0 default ranges where the code gives none. */
export const DRAEM_AUGMENTERS: readonly Augmenter[] = [
  {
    name: 'gamma-contrast',
    doc: 'GammaContrast γ ~ U[0.5, 2.0] per channel',
    apply: (img, rng) => gammaPerChannel(img, [rng.uniform(0.5, 2), rng.uniform(0.5, 2), rng.uniform(0.5, 2)]),
  },
  {
    name: 'multiply-add-brightness',
    doc: 'MultiplyAndAddToBrightness mul ~ U[0.8, 1.2], add ~ U[−30, 30]/255 on the YCbCr luma, random order',
    apply: (img, rng) => multiplyAddBrightness(img, rng.uniform(0.8, 1.2), rng.uniform(-30, 30) / 255, rng.bool()),
  },
  {
    name: 'sharpness',
    doc: 'pillike.EnhanceSharpness factor ~ U[0, 2]',
    apply: (img, rng) => sharpness(img, rng.uniform(0, 2)),
  },
  {
    name: 'hue-saturation',
    doc: 'AddToHueAndSaturation, hue and saturation each + U[−50, 50]/255 (hue in turns)',
    apply: (img, rng) => hueSaturationShift(img, rng.uniform(-50, 50) / 255, rng.uniform(-50, 50) / 255),
  },
  {
    name: 'solarize',
    doc: 'Solarize p = 0.5, threshold ~ U[32, 128]/255 (values ≥ threshold inverted)',
    apply: (img, rng) => {
      const t = rng.uniform(32, 128) / 255;
      return rng.bool(0.5) ? solarize(img, t) : img;
    },
  },
  {
    name: 'posterize',
    doc: 'Posterize bits ~ U{1..8}',
    apply: (img, rng) => posterize(img, rng.int(1, 9)),
  },
  {
    name: 'invert',
    doc: 'Invert p = 1',
    apply: (img) => solarize(img, 0),
  },
  {
    name: 'autocontrast',
    doc: 'pillike.Autocontrast cutoff ~ U{0..20} %',
    apply: (img, rng) => autocontrast(img, rng.int(0, 21)),
  },
  {
    name: 'equalize',
    doc: 'pillike.Equalize',
    apply: (img) => equalize(img),
  },
  {
    name: 'affine-rotate',
    doc: 'Affine rotate ~ U[−45°, 45°], bilinear, zero fill',
    apply: (img, rng) => rotate(img, rng.uniform(-45, 45), 'bilinear'),
  },
];

// ---------------------------------------------------------------- GLASS's list (torchvision)

/** GLASS `rand_augmenter` (datasets/mvtec.py): 3 distinct of these 9, random order. */
export const GLASS_AUGMENTERS: readonly Augmenter[] = [
  { name: 'contrast', doc: 'ColorJitter contrast ~ U[0.8, 1.2]', apply: (img, rng) => contrast(img, rng.uniform(0.8, 1.2)) },
  { name: 'brightness', doc: 'ColorJitter brightness ~ U[0.8, 1.2]', apply: (img, rng) => brightness(img, rng.uniform(0.8, 1.2)) },
  {
    name: 'saturation-hue',
    doc: 'ColorJitter saturation ~ U[0.8, 1.2] and hue ~ U[−0.2, 0.2] turns',
    apply: (img, rng) => {
      const s = rng.uniform(0.8, 1.2);
      const hu = rng.uniform(-0.2, 0.2);
      return rng.bool() ? hueSaturationShift(saturation(img, s), hu, 0) : saturation(hueSaturationShift(img, hu, 0), s);
    },
  },
  { name: 'hflip', doc: 'horizontal flip', apply: (img) => flip(img, true) },
  { name: 'vflip', doc: 'vertical flip', apply: (img) => flip(img, false) },
  { name: 'grayscale', doc: 'grayscale (3 channels)', apply: (img) => grayscale(img) },
  { name: 'autocontrast', doc: 'autocontrast (no cutoff)', apply: (img) => autocontrast(img, 0) },
  { name: 'equalize', doc: 'equalize', apply: (img) => equalize(img) },
  { name: 'rotate', doc: 'rotation ~ U[−45°, 45°], nearest, zero fill', apply: (img, rng) => rotate(img, rng.uniform(-45, 45), 'nearest') },
];

export const AUGMENTER_LISTS = { draem: DRAEM_AUGMENTERS, glass: GLASS_AUGMENTERS } as const;
export type AugmenterListName = keyof typeof AUGMENTER_LISTS;

/** Draws `count` distinct augmenters and applies them in the drawn order; returns their names. */
export function randomAugment(img: Img, rng: Rng, list: readonly Augmenter[], count: number): { img: Img; applied: string[] } {
  const chosen = rng.shuffle(list).slice(0, Math.min(count, list.length));
  let out = img;
  for (const a of chosen) out = a.apply(out, rng);
  return { img: clampInPlace(out), applied: chosen.map((a) => a.name) };
}
