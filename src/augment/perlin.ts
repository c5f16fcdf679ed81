/**
 * 2D Perlin gradient noise and the thresholded, rotated Perlin masks shared by DRAEM, GLASS and
 * DiffusionAD (draem.md §3 step 2, glass.md §3 LAS, diffusionad.md §3 "Synthetic anomalies";
 * README-part-B.md "Shared anomaly generator").
 */
import type { Rng } from '../util/rng.js';
import { type Img, rotate } from './image.js';
import type { ParamSpec } from './params.js';

/**
 * DRAEM's `rand_perlin_2d`: random unit gradients on a (ry+1)×(rx+1) lattice, quintic fade
 * 6t⁵−15t⁴+10t³, bilinear blend of the four corner dot products, ×√2. Pixel (y, x) sits at lattice
 * coordinate (y·ry/h, x·rx/w), so lattice nodes fall on pixels when h, w are multiples of the
 * resolution (exactly 0 there) and any size works otherwise. Values lie in [−1, 1].
 */
export function perlinNoise(h: number, w: number, ry: number, rx: number, rng: Rng): Float32Array {
  const gy = new Float64Array((ry + 1) * (rx + 1));
  const gx = new Float64Array((ry + 1) * (rx + 1));
  for (let i = 0; i < gy.length; i++) {
    const a = 2 * Math.PI * rng.next();
    gy[i] = Math.cos(a); // first lattice axis (rows), as in the numpy code's stack order
    gx[i] = Math.sin(a);
  }
  const out = new Float32Array(h * w);
  const fade = (t: number): number => t * t * t * (t * (t * 6 - 15) + 10);
  const cols = rx + 1;
  // per-column lattice cell, offset and fade (shared by all rows)
  const cx = new Int32Array(w);
  const ctx = new Float64Array(w);
  const cfx = new Float64Array(w);
  for (let x = 0; x < w; x++) {
    const px = (x * rx) / w;
    cx[x] = Math.floor(px);
    ctx[x] = px - cx[x];
    cfx[x] = fade(ctx[x]);
  }
  for (let y = 0; y < h; y++) {
    const py = (y * ry) / h;
    const iy = Math.floor(py);
    const ty = py - iy;
    const fy = fade(ty);
    const rowBase = iy * cols;
    for (let x = 0; x < w; x++) {
      const tx = ctx[x];
      const g00 = rowBase + cx[x];
      const g10 = g00 + cols; // next row
      const n00 = ty * gy[g00] + tx * gx[g00];
      const n10 = (ty - 1) * gy[g10] + tx * gx[g10];
      const n01 = ty * gy[g00 + 1] + (tx - 1) * gx[g00 + 1];
      const n11 = (ty - 1) * gy[g10 + 1] + (tx - 1) * gx[g10 + 1];
      // lerp along rows with fade(ty), then along columns with fade(tx)
      const a = n00 + fy * (n10 - n00);
      const b = n01 + fy * (n11 - n01);
      out[y * w + x] = Math.SQRT2 * (a + cfx[x] * (b - a));
    }
  }
  return out;
}

export interface PerlinMaskParams {
  /** Lattice resolution per axis is 2^k with k ~ U{minScaleExp..maxScaleExp} (0 and 5 in all three methods). */
  minScaleExp: number;
  maxScaleExp: number;
  /** Rotation U(−maxRotation, maxRotation) degrees, bilinear, zero fill (90). */
  maxRotation: number;
  /** Binarisation threshold on the rotated noise (0.5, the code's fixed value). */
  threshold: number;
}

export const PERLIN_MASK_DEFAULTS: PerlinMaskParams = {
  minScaleExp: 0,
  maxScaleExp: 5,
  maxRotation: 90,
  threshold: 0.5,
};

export interface PerlinField {
  noise: Float32Array;
  /** Lattice resolution (rows, cols). */
  scale: [number, number];
  angle: number;
}

export function drawPerlinScale(rng: Rng, p: PerlinMaskParams): [number, number] {
  const a = rng.int(p.minScaleExp, p.maxScaleExp + 1);
  const b = rng.int(p.minScaleExp, p.maxScaleExp + 1);
  return [2 ** a, 2 ** b];
}

/** Noise at a drawn (or given) scale, rotated by a drawn angle. */
export function rotatedPerlin(h: number, w: number, rng: Rng, p: PerlinMaskParams, scale?: [number, number]): PerlinField {
  const s = scale ?? drawPerlinScale(rng, p);
  const noise = perlinNoise(h, w, s[0], s[1], rng);
  const angle = rng.uniform(-p.maxRotation, p.maxRotation);
  const rot = angle === 0 ? noise : rotate({ data: noise, h, w, c: 1 } satisfies Img, angle, 'bilinear').data;
  return { noise: rot, scale: s, angle };
}

/** 0/1 mask `noise > threshold`. */
export function thresholdMask(noise: Float32Array, threshold: number): Float32Array {
  const m = new Float32Array(noise.length);
  for (let i = 0; i < noise.length; i++) m[i] = noise[i] > threshold ? 1 : 0;
  return m;
}

/** One Perlin anomaly mask (draem.md §3 step 2). */
export function perlinMask(
  h: number,
  w: number,
  rng: Rng,
  p: PerlinMaskParams = PERLIN_MASK_DEFAULTS,
  scale?: [number, number],
): { mask: Float32Array; scale: [number, number]; angle: number } {
  const f = rotatedPerlin(h, w, rng, p, scale);
  return { mask: thresholdMask(f.noise, p.threshold), scale: f.scale, angle: f.angle };
}

/**
 * Fractal (fBm) Perlin noise: sum of `octaves` layers, resolution doubling and amplitude ×`gain`
 * per octave, normalised to [0, 1] by its own min/max. Used by the procedural texture source.
 */
export function fractalPerlin(h: number, w: number, baseRes: [number, number], octaves: number, gain: number, rng: Rng): Float32Array {
  const acc = new Float32Array(h * w);
  let amp = 1;
  for (let o = 0; o < octaves; o++) {
    const ry = baseRes[0] * 2 ** o;
    const rx = baseRes[1] * 2 ** o;
    if (ry > h || rx > w) break;
    const n = perlinNoise(h, w, ry, rx, rng);
    for (let i = 0; i < acc.length; i++) acc[i] += amp * n[i];
    amp *= gain;
  }
  return normalise01(acc);
}

export function normalise01(a: Float32Array): Float32Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    if (a[i] < lo) lo = a[i];
    if (a[i] > hi) hi = a[i];
  }
  const r = hi - lo > 1e-12 ? 1 / (hi - lo) : 0;
  for (let i = 0; i < a.length; i++) a[i] = (a[i] - lo) * r;
  return a;
}

/** Perlin-mask parameters as they appear in every Perlin-based strategy's ParamSpec. */
export const PERLIN_PARAMS = {
  minScaleExp: { default: 0, min: 0, max: 8, doc: 'lattice resolution per axis is 2^k, k ~ U{minScaleExp..maxScaleExp} (draem.md §3.2)' },
  maxScaleExp: { default: 5, min: 0, max: 8, doc: 'upper end of k (5 → scales 1..32)' },
  maxRotation: { default: 90, min: 0, max: 180, doc: 'noise rotated by U(−x, x) degrees, bilinear, zero fill' },
  threshold: { default: 0.5, min: -1, max: 1, doc: 'mask = rotated noise > threshold (code value 0.5)' },
} as const satisfies ParamSpec;
