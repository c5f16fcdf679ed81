import type { Rng } from '../../util/rng.js';

/**
 * Small rasterisation kit for the synthetic dataset: an RGB float canvas, seeded value noise and
 * exact (non-antialiased) shape masks. Masks are decided per pixel centre so that the ground
 * truth is exactly the set of pixels a defect touches.
 */

/** HWC RGB in [0, 1]. */
export interface Canvas {
  data: Float32Array;
  size: number;
}

export type Rgb = readonly [number, number, number];

export function newCanvas(size: number): Canvas {
  return { data: new Float32Array(size * size * 3), size };
}

export function cloneCanvas(c: Canvas): Canvas {
  return { data: c.data.slice(), size: c.size };
}

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);

/**
 * Fractal value noise in about [-1, 1]: `octaves` lattices of random values, each twice as fine
 * as the last with half the amplitude, smoothstep-interpolated. Each lattice gets a random
 * sub-cell offset so octaves do not share grid lines.
 */
export function fractalNoise(rng: Rng, size: number, baseCell: number, octaves: number): Float32Array {
  const out = new Float32Array(size * size);
  let cell = baseCell;
  let amp = 1;
  let total = 0;
  for (let o = 0; o < octaves; o++) {
    const c = Math.max(1, cell);
    const n = Math.ceil(size / c) + 3;
    const lattice = new Float32Array(n * n);
    for (let i = 0; i < lattice.length; i++) lattice[i] = rng.uniform(-1, 1);
    const ox = rng.uniform(0, c);
    const oy = rng.uniform(0, c);
    for (let y = 0; y < size; y++) {
      const gy = (y + oy) / c;
      const iy = Math.floor(gy);
      const ty = gy - iy;
      const sy = ty * ty * (3 - 2 * ty);
      for (let x = 0; x < size; x++) {
        const gx = (x + ox) / c;
        const ix = Math.floor(gx);
        const tx = gx - ix;
        const sx = tx * tx * (3 - 2 * tx);
        const a = lattice[iy * n + ix];
        const b = lattice[iy * n + ix + 1];
        const d = lattice[(iy + 1) * n + ix];
        const e = lattice[(iy + 1) * n + ix + 1];
        out[y * size + x] += amp * ((a * (1 - sx) + b * sx) * (1 - sy) + (d * (1 - sx) + e * sx) * sy);
      }
    }
    total += amp;
    amp *= 0.5;
    cell /= 2;
  }
  for (let i = 0; i < out.length; i++) out[i] /= total;
  return out;
}

/**
 * Irregular blob: a disc whose radius is modulated by two random harmonics. Returns the mask
 * and, per pixel, the normalised radius (0 at the centre, 1 on the boundary) for shading.
 */
export function blobMask(
  size: number, cx: number, cy: number, radius: number, rng: Rng, elongation = 1,
): { mask: Uint8Array; rho: Float32Array } {
  const mask = new Uint8Array(size * size);
  const rho = new Float32Array(size * size);
  const a3 = rng.uniform(0.1, 0.25);
  const p3 = rng.uniform(0, 2 * Math.PI);
  const a5 = rng.uniform(0.05, 0.15);
  const p5 = rng.uniform(0, 2 * Math.PI);
  const rot = rng.uniform(0, Math.PI);
  const cr = Math.cos(rot);
  const sr = Math.sin(rot);
  const reach = Math.ceil(radius * elongation * 1.5) + 1;
  for (let y = Math.max(0, Math.floor(cy - reach)); y < Math.min(size, cy + reach); y++) {
    for (let x = Math.max(0, Math.floor(cx - reach)); x < Math.min(size, cx + reach); x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      // Rotate into the blob's frame and squash the long axis.
      const u = (dx * cr + dy * sr) / elongation;
      const v = -dx * sr + dy * cr;
      const phi = Math.atan2(v, u);
      const r = radius * (1 + a3 * Math.sin(3 * phi + p3) + a5 * Math.sin(5 * phi + p5));
      const d = Math.hypot(u, v) / r;
      if (d <= 1) {
        mask[y * size + x] = 1;
        rho[y * size + x] = d;
      }
    }
  }
  return { mask, rho };
}

/** Pixels whose centre lies within `width / 2` of a polyline. */
export function polylineMask(size: number, pts: readonly (readonly [number, number])[], width: number): Uint8Array {
  const mask = new Uint8Array(size * size);
  const half = width / 2;
  for (let i = 0; i + 1 < pts.length; i++) {
    const [x0, y0] = pts[i];
    const [x1, y1] = pts[i + 1];
    const minX = Math.max(0, Math.floor(Math.min(x0, x1) - half - 1));
    const maxX = Math.min(size - 1, Math.ceil(Math.max(x0, x1) + half + 1));
    const minY = Math.max(0, Math.floor(Math.min(y0, y1) - half - 1));
    const maxY = Math.min(size - 1, Math.ceil(Math.max(y0, y1) + half + 1));
    const vx = x1 - x0;
    const vy = y1 - y0;
    const len2 = vx * vx + vy * vy || 1;
    for (let y = minY; y <= maxY; y++) {
      for (let x = minX; x <= maxX; x++) {
        const px = x + 0.5 - x0;
        const py = y + 0.5 - y0;
        const t = Math.max(0, Math.min(1, (px * vx + py * vy) / len2));
        if (Math.hypot(px - t * vx, py - t * vy) <= half) mask[y * size + x] = 1;
      }
    }
  }
  return mask;
}

/** Points of a quadratic Bezier from p0 to p2 bent through control point p1. */
export function bezier(
  p0: readonly [number, number], p1: readonly [number, number], p2: readonly [number, number], steps = 24,
): [number, number][] {
  const pts: [number, number][] = [];
  for (let i = 0; i <= steps; i++) {
    const t = i / steps;
    const a = (1 - t) * (1 - t);
    const b = 2 * (1 - t) * t;
    const c = t * t;
    pts.push([a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]]);
  }
  return pts;
}

/** Smallest per-pixel change (max over channels) a defect must make; about 20 of 255 levels. */
export const MIN_DEFECT_DELTA = 0.08;

/**
 * Writes `next` at pixel `i`, making sure it differs from `before` by at least MIN_DEFECT_DELTA in
 * some channel: a weak change is amplified along its own direction (or, if clamping prevents
 * that, the opposite one). This is what keeps the masks exact: every mask pixel really changed.
 */
export function setChanged(c: Canvas, i: number, before: Rgb, wanted: Rgb): void {
  // Clamp first: a change measured before clamping could vanish in it.
  let next: Rgb = [clamp01(wanted[0]), clamp01(wanted[1]), clamp01(wanted[2])];
  let d = [next[0] - before[0], next[1] - before[1], next[2] - before[2]];
  let m = Math.max(Math.abs(d[0]), Math.abs(d[1]), Math.abs(d[2]));
  if (m < MIN_DEFECT_DELTA) {
    if (m < 1e-6) {
      const mean = (before[0] + before[1] + before[2]) / 3;
      d = mean > 0.5 ? [-1, -1, -1] : [1, 1, 1];
      m = 1;
    }
    const s = (MIN_DEFECT_DELTA * 1.25) / m;
    let out = before.map((b, k) => clamp01(b + d[k] * s));
    if (Math.max(...out.map((o, k) => Math.abs(o - before[k]))) < MIN_DEFECT_DELTA) {
      out = before.map((b, k) => clamp01(b - d[k] * s));
    }
    next = [out[0], out[1], out[2]];
  }
  c.data[i * 3] = next[0];
  c.data[i * 3 + 1] = next[1];
  c.data[i * 3 + 2] = next[2];
}

export function pixel(c: Canvas, i: number): Rgb {
  return [c.data[i * 3], c.data[i * 3 + 1], c.data[i * 3 + 2]];
}

/** Canvas to 8-bit, rounding as writePng does, so in-memory checks see the written bytes. */
export function quantize(c: Canvas): Uint8Array {
  const out = new Uint8Array(c.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(clamp01(c.data[i]) * 255);
  return out;
}
