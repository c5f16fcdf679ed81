import sharp from 'sharp';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/** Jet-like colour map on t in [0,1] (blue -> cyan -> yellow -> red), as matplotlib's 'jet'. */
export function jet(t: number): [number, number, number] {
  const v = Math.min(1, Math.max(0, t));
  const r = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 3)));
  const g = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 2)));
  const b = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 1)));
  return [r, g, b];
}

export interface HeatmapPanelInput {
  /** HWC RGB in [0,1]. */
  image: Float32Array;
  /** HW anomaly map (any scale). */
  map: Float32Array;
  /** HW ground truth (0/1) or null for normals. */
  mask: Float32Array | Uint8Array | null;
  height: number;
  width: number;
  /** Map values mapped to [0,1] with this range, shared across a run so panels are comparable. */
  range: [number, number];
  /** Calibrated threshold drawn as a contour on the overlay (optional). */
  threshold?: number;
}

/**
 * Writes a PNG with three panels: the image, the ground-truth mask, and the image overlaid with
 * the anomaly map (alpha 0.5). Heatmaps share one value range per run, so a cold panel means a low
 * score, not a rescaled one.
 */
export async function writeHeatmapPanel(path: string, p: HeatmapPanelInput): Promise<void> {
  const { height: h, width: w } = p;
  const out = new Uint8Array(h * w * 3 * 3);
  const stride = w * 3 * 3;
  const [lo, hi] = p.range;
  const span = hi > lo ? hi - lo : 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const base = y * stride;
      for (let c = 0; c < 3; c++) out[base + x * 3 + c] = Math.round(255 * clamp01(p.image[i * 3 + c]));
      const m = p.mask ? (p.mask[i] > 0.5 ? 255 : 0) : 0;
      for (let c = 0; c < 3; c++) out[base + (w + x) * 3 + c] = m;
      const col = jet((p.map[i] - lo) / span);
      let edge = false;
      if (p.threshold !== undefined && x + 1 < w && y + 1 < h) {
        const above = p.map[i] >= p.threshold;
        edge = above !== p.map[i + 1] >= p.threshold || above !== p.map[i + w] >= p.threshold;
      }
      for (let c = 0; c < 3; c++) {
        const v = edge ? 1 : 0.5 * clamp01(p.image[i * 3 + c]) + 0.5 * col[c];
        out[base + (2 * w + x) * 3 + c] = Math.round(255 * v);
      }
    }
  }
  mkdirSync(dirname(path), { recursive: true });
  await sharp(Buffer.from(out.buffer), { raw: { width: 3 * w, height: h, channels: 3 } }).png().toFile(path);
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}
