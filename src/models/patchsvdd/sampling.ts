import type { Rng } from '../../util/rng.js';
import { POSITION_DIRECTIONS } from './network.js';

/** Top-left corner (row, col) of a patch. */
export type Coord = readonly [number, number];

const clip = (v: number, hi: number): number => Math.min(Math.max(v, 0), hi);

/** Official generate_coords: top-left uniform in [0, H−K] × [0, W−K]. */
export function randomCoord(h: number, w: number, k: number, rng: Rng): Coord {
  return [rng.int(0, h - k + 1), rng.int(0, w - k + 1)];
}

/**
 * SVDD' pair (official generate_coords_svdd, patchsvdd.md §3): p2 = p1 + (Δh, Δw), Δ uniform in
 * {−J..J}² \ {(0, 0)} by rejection (J = K/32), then clipped to the image — so at the border p2 can
 * fall back onto p1 (kept, as the official code).
 */
export function svddPair(h: number, w: number, k: number, rng: Rng): { p1: Coord; p2: Coord; jitter: Coord } {
  const p1 = randomCoord(h, w, k, rng);
  const j = Math.floor(k / 32);
  let dh = 0;
  let dw = 0;
  while (dh === 0 && dw === 0) {
    dh = rng.int(-j, j + 1);
    dw = rng.int(-j, j + 1);
  }
  return { p1, p2: [clip(p1[0] + dh, h - k), clip(p1[1] + dw, w - k)], jitter: [dh, dw] };
}

/**
 * Position pair (official generate_coords_position, patchsvdd.md §3): label y uniform in 0..7, offset
 * per axis dir·(3K/4 + u) with u uniform in {0..K/4−1} drawn for row and column, added to p1 and
 * clipped (the label can then disagree with the real offset at the border: kept, as the official code).
 */
export function positionPair(h: number, w: number, k: number, rng: Rng): { p1: Coord; p2: Coord; label: number; offset: Coord } {
  const p1 = randomCoord(h, w, k, rng);
  const label = rng.int(0, POSITION_DIRECTIONS.length);
  const [dirH, dirW] = POSITION_DIRECTIONS[label];
  const j = Math.floor(k / 4);
  const k34 = Math.floor((3 * k) / 4);
  const uh = rng.int(0, j);
  const uw = rng.int(0, j);
  const offset: Coord = [dirH * (uh + k34), dirW * (uw + k34)];
  return { p1, p2: [clip(p1[0] + offset[0], h - k), clip(p1[1] + offset[1], w - k)], label, offset };
}

/** Standardised images (x − mean image, HWC float32) the patches are cut from. */
export interface PatchImages {
  data: readonly Float32Array[];
  height: number;
  width: number;
}

/** Copies the K×K×3 patch at `p` of image `img` into `out` at element offset `at`. */
export function cropInto(img: Float32Array, width: number, p: Coord, k: number, out: Float32Array, at: number): void {
  const row = k * 3;
  for (let y = 0; y < k; y++) {
    const src = ((p[0] + y) * width + p[1]) * 3;
    out.set(img.subarray(src, src + row), at + y * row);
  }
}

/**
 * Per patch: a per-channel shift and per-pixel noise, both N(0, σ²) on the standardised scale
 * (official PositionDataset: rgbshift + noise, σ = 0.02), drawn from `rng`.
 */
export function perturbPatch(out: Float32Array, at: number, k: number, sigma: number, rng: Rng): void {
  const shift = [rng.normal(0, sigma), rng.normal(0, sigma), rng.normal(0, sigma)];
  for (let i = 0; i < k * k; i++) {
    for (let c = 0; c < 3; c++) out[at + i * 3 + c] += shift[c] + rng.normal(0, sigma);
  }
}

/**
 * One training batch (patchsvdd.md §3), the four streams of the official DictionaryConcatDataset:
 * item i of the batch draws, from image `images[i]`, one SVDD' pair and one position pair per scale.
 * Layout for one encoder call per scale: `x64` = [svdd p1 (n), svdd p2 (n), pos p1 (n), pos p2 (n)]
 * 64×64 patches, likewise `x32`; `labels64/32` are the position classes.
 */
export interface PatchBatch {
  n: number;
  x64: Float32Array;
  x32: Float32Array;
  labels64: number[];
  labels32: number[];
}

export function buildPatchBatch(src: PatchImages, imageIdx: readonly number[], noiseSigma: number, rng: Rng): PatchBatch {
  const n = imageIdx.length;
  const { height: h, width: w } = src;
  const make = (k: number) => {
    const x = new Float32Array(4 * n * k * k * 3);
    const labels: number[] = [];
    const per = k * k * 3;
    imageIdx.forEach((img, i) => {
      const data = src.data[img];
      const s = svddPair(h, w, k, rng);
      cropInto(data, w, s.p1, k, x, i * per);
      cropInto(data, w, s.p2, k, x, (n + i) * per);
      const p = positionPair(h, w, k, rng);
      cropInto(data, w, p.p1, k, x, (2 * n + i) * per);
      cropInto(data, w, p.p2, k, x, (3 * n + i) * per);
      perturbPatch(x, (2 * n + i) * per, k, noiseSigma, rng);
      perturbPatch(x, (3 * n + i) * per, k, noiseSigma, rng);
      labels.push(p.label);
    });
    return { x, labels };
  };
  const big = make(64);
  const small = make(32);
  return { n, x64: big.x, x32: small.x, labels64: big.labels, labels32: small.labels };
}
