import type { Rng } from '../../util/rng.js';
import {
  bezier, blobMask, cloneCanvas, pixel, polylineMask, setChanged, type Canvas, type Rgb,
} from './raster.js';
import type { Scene } from './scenes.js';

/**
 * The four synthetic defect kinds. Each builds an exact geometric mask, then changes every masked
 * pixel (by at least MIN_DEFECT_DELTA, see `setChanged`) and no other. Sizes are relative to the
 * image and chosen to be visible at a glance in the PNG but small against the object: a few
 * percent of the area at most, 1-2 px wide scratches at 128 px.
 */

export const SYNTHETIC_DEFECTS = ['scratch', 'hole', 'color_spot', 'missing_part'] as const;
export type SyntheticDefect = (typeof SYNTHETIC_DEFECTS)[number];

export interface DefectResult {
  canvas: Canvas;
  mask: Uint8Array;
}

const inside = (mask: Uint8Array, region: Uint8Array): boolean => {
  let any = false;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    if (!region[i]) return false;
    any = true;
  }
  return any;
};

/** A random pixel centre inside the allowed region (rejection sampling; regions are large). */
function pointIn(region: Uint8Array, size: number, rng: Rng): [number, number] {
  for (let t = 0; t < 10_000; t++) {
    const x = rng.int(0, size);
    const y = rng.int(0, size);
    if (region[y * size + x]) return [x + 0.5, y + 0.5];
  }
  throw new Error('synthetic: empty defect region');
}

/** Draw shapes until one lies wholly in the region; later attempts shrink the shape. */
function placed(scene: Scene, rng: Rng, draw: (shrink: number) => Uint8Array): Uint8Array {
  for (let attempt = 0; attempt < 200; attempt++) {
    const m = draw(Math.max(0.4, 1 - attempt / 100));
    if (inside(m, scene.region)) return m;
  }
  throw new Error('synthetic: could not place a defect inside the region');
}

const mean = (p: Rgb): number => (p[0] + p[1] + p[2]) / 3;

function scratch(scene: Scene, rng: Rng): DefectResult {
  const size = scene.canvas.size;
  const width = rng.uniform(1.2, 2.2) * Math.max(1, size / 128);
  const mask = placed(scene, rng, (shrink) => {
    const [x0, y0] = pointIn(scene.region, size, rng);
    const len = rng.uniform(0.15, 0.3) * size * shrink;
    const a = rng.uniform(0, 2 * Math.PI);
    const x2 = x0 + len * Math.cos(a);
    const y2 = y0 + len * Math.sin(a);
    const bend = rng.uniform(-0.15, 0.15) * len;
    const mx = (x0 + x2) / 2 - bend * Math.sin(a);
    const my = (y0 + y2) / 2 + bend * Math.cos(a);
    return polylineMask(size, bezier([x0, y0], [mx, my], [x2, y2]), width);
  });
  const alpha = rng.uniform(0.45, 0.65);
  const out = cloneCanvas(scene.canvas);
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const p = pixel(scene.canvas, i);
    // Light scratch on dark surfaces, dark one on light surfaces: always against the grain.
    const target = mean(p) < 0.6 ? 0.93 : 0.08;
    setChanged(out, i, p, [p[0] + (target - p[0]) * alpha, p[1] + (target - p[1]) * alpha, p[2] + (target - p[2]) * alpha]);
  }
  return { canvas: out, mask };
}

function hole(scene: Scene, rng: Rng): DefectResult {
  const size = scene.canvas.size;
  let rho: Float32Array = new Float32Array(0);
  const mask = placed(scene, rng, (shrink) => {
    const [cx, cy] = pointIn(scene.region, size, rng);
    const b = blobMask(size, cx, cy, rng.uniform(0.035, 0.06) * size * shrink, rng, rng.uniform(1, 1.4));
    rho = b.rho;
    return b.mask;
  });
  const out = cloneCanvas(scene.canvas);
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const p = pixel(scene.canvas, i);
    // Darkest in the middle, like a hole with depth.
    const f = 0.12 + 0.3 * rho[i] * rho[i];
    setChanged(out, i, p, [p[0] * f, p[1] * f, p[2] * f]);
  }
  return { canvas: out, mask };
}

const SPOT_COLOURS: readonly Rgb[] = [
  [0.72, 0.3, 0.1], // rust
  [0.18, 0.3, 0.8], // blue ink
  [0.8, 0.12, 0.14], // red
  [0.55, 0.2, 0.62], // purple
];

function colorSpot(scene: Scene, rng: Rng): DefectResult {
  const size = scene.canvas.size;
  let rho: Float32Array = new Float32Array(0);
  const mask = placed(scene, rng, (shrink) => {
    const [cx, cy] = pointIn(scene.region, size, rng);
    const b = blobMask(size, cx, cy, rng.uniform(0.03, 0.055) * size * shrink, rng, rng.uniform(1, 1.6));
    rho = b.rho;
    return b.mask;
  });
  const colour = rng.choice(SPOT_COLOURS);
  const strength = rng.uniform(0.4, 0.6);
  const out = cloneCanvas(scene.canvas);
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const p = pixel(scene.canvas, i);
    // Stain fading towards its edge (but never below 60 % of its strength: the mask stays exact).
    const a = strength * (1 - 0.4 * rho[i] * rho[i]);
    setChanged(out, i, p, [
      p[0] + (colour[0] - p[0]) * a, p[1] + (colour[1] - p[1]) * a, p[2] + (colour[2] - p[2]) * a,
    ]);
  }
  return { canvas: out, mask };
}

function missingPart(scene: Scene, rng: Rng): DefectResult {
  const size = scene.canvas.size;
  let mask: Uint8Array;
  if (scene.object) {
    // A segment of the object cut off along a chord 14-28 % of the radius deep.
    const { cx, cy, radius, coverage } = scene.object;
    const psi = rng.uniform(0, 2 * Math.PI);
    const cut = rng.uniform(0.72, 0.86) * radius;
    const ux = Math.cos(psi);
    const uy = Math.sin(psi);
    mask = new Uint8Array(size * size);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const p = y * size + x;
        if (coverage[p] > 0 && (x + 0.5 - cx) * ux + (y + 0.5 - cy) * uy > cut) mask[p] = 1;
      }
    }
  } else {
    // Threads torn out of an elongated patch, showing the dark backing.
    mask = placed(scene, rng, (shrink) => {
      const [cx, cy] = pointIn(scene.region, size, rng);
      return blobMask(size, cx, cy, rng.uniform(0.045, 0.07) * size * shrink, rng, rng.uniform(1.3, 2)).mask;
    });
  }
  const out = cloneCanvas(scene.canvas);
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) setChanged(out, i, pixel(scene.canvas, i), pixel(scene.beneath, i));
  }
  return { canvas: out, mask };
}

export function applyDefect(scene: Scene, kind: SyntheticDefect, rng: Rng): DefectResult {
  switch (kind) {
    case 'scratch': return scratch(scene, rng);
    case 'hole': return hole(scene, rng);
    case 'color_spot': return colorSpot(scene, rng);
    case 'missing_part': return missingPart(scene, rng);
  }
}
