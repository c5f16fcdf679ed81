import type { Rng } from '../../util/rng.js';
import { fractalNoise, newCanvas, type Canvas } from './raster.js';

/**
 * Defect-free renders of the two synthetic categories. Normal variation comes from the seed
 * (pattern phase, noise, brightness, object pose) so that a detector has to learn the category,
 * not one image.
 */

export interface Scene {
  kind: 'texture' | 'object';
  canvas: Canvas;
  /** What a missing part reveals: the background (object) or the backing under the weave (texture). */
  beneath: Canvas;
  /** 1 where a defect may lie: the object's body, or the texture away from the border. */
  region: Uint8Array;
  /** Object only: centre, radius and per-pixel coverage (antialiased edge). */
  object?: { cx: number; cy: number; radius: number; coverage: Float32Array };
}

/** Same sensor noise on the scene and what lies beneath it, so a missing part shows no seam in noise statistics. */
function finish(scene: Float32Array, beneath: Float32Array, rng: Rng, std: number): void {
  for (let i = 0; i < scene.length; i++) {
    const n = rng.normal(0, std);
    scene[i] = Math.min(1, Math.max(0, scene[i] + n));
    beneath[i] = Math.min(1, Math.max(0, beneath[i] + n));
  }
}

/**
 * 'synthetic_texture': a basket weave (threads alternating horizontal/vertical per cell) with
 * fibre noise and low-frequency colour drift, like MVTec's carpet. Each image is another crop of
 * the fabric: random pattern phase, thread pitch within +-5 %, brightness within +-4 %.
 */
export function renderTexture(rng: Rng, size: number): Scene {
  const canvas = newCanvas(size);
  const beneath = newCanvas(size);
  const pitch = (size / 16) * rng.uniform(0.95, 1.05);
  const ox = rng.uniform(0, 4 * pitch);
  const oy = rng.uniform(0, 4 * pitch);
  const gain = rng.uniform(0.96, 1.04);
  const base = [0.66 * gain, 0.53 * gain, 0.38 * gain];
  const fibre = fractalNoise(rng.fork('fibre'), size, Math.max(2, pitch / 3), 2);
  const drift = fractalNoise(rng.fork('drift'), size, size / 3, 3);
  const backing = fractalNoise(rng.fork('backing'), size, Math.max(2, pitch / 2), 2);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const gx = (x + 0.5 + ox) / pitch;
      const gy = (y + 0.5 + oy) / pitch;
      const i = Math.floor(gx);
      const j = Math.floor(gy);
      const horizontal = ((i + j) & 1) === 0;
      const across = horizontal ? gy - j : gx - i;
      const along = horizontal ? gx - i : gy - j;
      // Rounded thread (dark gaps between threads), dipping slightly where it passes under.
      const shade = 0.35 + 0.65 * Math.pow(Math.sin(Math.PI * across), 0.6);
      const dip = 0.9 + 0.1 * Math.sin(Math.PI * along);
      const p = y * size + x;
      const v = shade * dip * (1 + 0.12 * fibre[p] + 0.08 * drift[p]);
      canvas.data[p * 3] = base[0] * v * (1 + 0.03 * drift[p]);
      canvas.data[p * 3 + 1] = base[1] * v;
      canvas.data[p * 3 + 2] = base[2] * v * (1 - 0.03 * drift[p]);
      const b = 0.16 * (1 + 0.15 * backing[p]);
      beneath.data[p * 3] = b;
      beneath.data[p * 3 + 1] = b * 0.9;
      beneath.data[p * 3 + 2] = b * 0.8;
    }
  }
  finish(canvas.data, beneath.data, rng.fork('sensor'), 0.012);
  const region = new Uint8Array(size * size);
  const m = Math.round(size * 0.08);
  for (let y = m; y < size - m; y++) region.fill(1, y * size + m, y * size + size - m);
  return { kind: 'texture', canvas, beneath, region };
}

const wrapAngle = (a: number): number => Math.atan2(Math.sin(a), Math.cos(a));

/**
 * 'synthetic_object': a bottle seen from above (like MVTec's bottle) on a dark background:
 * dark opening, bright neck ring, shaded body with a fixed-direction highlight, bright rim, and a
 * small label tab that turns with the bottle. Pose jitter: centre +-3 % of the image, radius
 * +-3 %, rotation +-15 degrees, brightness +-4 %.
 */
export function renderObject(rng: Rng, size: number): Scene {
  const canvas = newCanvas(size);
  const beneath = newCanvas(size);
  const cx = size / 2 + rng.uniform(-0.03, 0.03) * size;
  const cy = size / 2 + rng.uniform(-0.03, 0.03) * size;
  const radius = 0.36 * size * rng.uniform(0.97, 1.03);
  const theta = rng.uniform(-Math.PI / 12, Math.PI / 12);
  const gain = rng.uniform(0.96, 1.04);
  const glass = [0.46 * gain, 0.56 * gain, 0.40 * gain];
  const lightDir = (-3 * Math.PI) / 4;
  const bgNoise = fractalNoise(rng.fork('background'), size, size / 4, 3);
  const surface = fractalNoise(rng.fork('surface'), size, Math.max(2, size / 24), 2);
  const coverage = new Float32Array(size * size);
  const region = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const p = y * size + x;
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const dist = Math.hypot(dx, dy);
      const d = dist / radius;
      const phi = Math.atan2(dy, dx);
      const bg = 0.075 * (1 + 0.25 * bgNoise[p]);
      beneath.data[p * 3] = bg * 0.95;
      beneath.data[p * 3 + 1] = bg;
      beneath.data[p * 3 + 2] = bg * 1.05;
      let v: number;
      if (d < 0.22) v = 0.1 + 0.06 * (d / 0.22);
      else if (d < 0.32) v = 0.78 - 1.5 * Math.abs(d - 0.27);
      else if (d < 0.86) {
        const highlight = Math.max(0, Math.cos(phi - lightDir)) * Math.exp(-(((d - 0.6) / 0.12) ** 2));
        v = 0.42 + 0.18 * ((d - 0.32) / 0.54) + 0.16 * highlight;
      } else v = 0.8 - 0.25 * ((d - 0.93) / 0.07) ** 2;
      v *= 1 + 0.05 * surface[p];
      let tint = 0;
      // The tab rotates with the object: the only cue to its pose.
      if (d > 0.64 && d < 0.76 && Math.abs(wrapAngle(phi - theta - Math.PI / 2)) < 0.14) {
        v = 0.88;
        tint = 1;
      }
      const cov = Math.min(1, Math.max(0, radius - dist + 0.5));
      coverage[p] = cov;
      for (let k = 0; k < 3; k++) {
        const obj = tint ? v * (0.95 + 0.05 * k) : v * glass[k] * 1.6;
        canvas.data[p * 3 + k] = cov * obj + (1 - cov) * beneath.data[p * 3 + k];
      }
      if (d >= 0.4 && d <= 0.84) region[p] = 1;
    }
  }
  finish(canvas.data, beneath.data, rng.fork('sensor'), 0.012);
  return { kind: 'object', canvas, beneath, region, object: { cx, cy, radius, coverage } };
}
