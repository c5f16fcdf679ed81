import { ConfigError } from '../../errors.js';
import { checkMapsMasks, requireBothPixelClasses, type AnomalyMap, type DefectMask } from './maps.js';
import { aurocFromSorted } from './roc.js';

/**
 * - `exact` (default): every pixel is a sample, exactly as `roc_auc_score(masks.ravel(),
 *   maps.ravel())`. Memory: one float32 copy of all scores (4 bytes/pixel: ~26 MB for an MVTec
 *   category of ~100 test images at 256x256 = 6.5M pixels) plus an in-place native sort.
 * - `binned`: scores are bucketed into `bins` equal-width bins between the global min and max
 *   (two streaming passes, O(bins) memory, no copy), and pixels in the same bin count as ties.
 *   Pairs in different bins are still ordered correctly (binning is monotone), so the only error
 *   comes from (defect, normal) pairs sharing a bin: |error| <= 0.5 * sum_b P_b N_b / (P N),
 *   which is computed and returned as `maxAbsError`. Use it for sets too large to copy.
 */
export type PixelAurocOptions = { readonly method: 'exact' } | { readonly method: 'binned'; readonly bins?: number };

export const DEFAULT_PIXEL_BINS = 65536;

/** Pixel AUROC with its error bound (0 for the exact method). */
export interface PixelAurocResult {
  readonly auroc: number;
  readonly maxAbsError: number;
  readonly method: 'exact' | 'binned';
}

/**
 * Pixel-level AUROC over ALL pixels of ALL images pooled together (the MVTec AD convention, not a
 * per-image average). `masks[i] === null` means image i has no defect pixel. Throws DatasetError on
 * count/size mismatch or NaN, ConfigError when no pixel (or every pixel) is a defect.
 */
export function pixelAuroc(
  maps: readonly AnomalyMap[],
  masks: readonly (DefectMask | null)[],
  options: PixelAurocOptions = { method: 'exact' },
): PixelAurocResult {
  const counts = checkMapsMasks(maps, masks);
  requireBothPixelClasses(counts, 'pixel AUROC');
  if (options.method === 'binned') return binned(maps, masks, options.bins ?? DEFAULT_PIXEL_BINS);
  if (options.method !== 'exact') {
    throw new ConfigError(`pixel AUROC method '${String((options as { method: unknown }).method)}' is unknown; use 'exact' or 'binned'`);
  }
  const pos = new Float32Array(counts.positives);
  const neg = new Float32Array(counts.negatives);
  let p = 0;
  let n = 0;
  for (let i = 0; i < maps.length; i++) {
    const d = maps[i].data;
    const mk = masks[i]?.data;
    if (mk === undefined) {
      neg.set(d, n);
      n += d.length;
      continue;
    }
    for (let k = 0; k < d.length; k++) {
      if (mk[k] !== 0) pos[p++] = d[k];
      else neg[n++] = d[k];
    }
  }
  // Native numeric sort, no comparator. -0 and +0 compare equal in the walk (===), as needed.
  pos.sort();
  neg.sort();
  return { auroc: aurocFromSorted(pos, neg), maxAbsError: 0, method: 'exact' };
}

function binned(maps: readonly AnomalyMap[], masks: readonly (DefectMask | null)[], bins: number): PixelAurocResult {
  if (!Number.isInteger(bins) || bins < 1 || bins > 1 << 26) {
    throw new ConfigError(`pixel AUROC bins=${bins} is invalid; use an integer in [1, 2^26]`);
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const m of maps) {
    for (let k = 0; k < m.data.length; k++) {
      const v = m.data[k];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  const posH = new Float64Array(bins);
  const negH = new Float64Array(bins);
  const scale = hi > lo ? bins / (hi - lo) : 0;
  for (let i = 0; i < maps.length; i++) {
    const d = maps[i].data;
    const mk = masks[i]?.data;
    for (let k = 0; k < d.length; k++) {
      // Monotone in the score: (v - lo) * scale is non-decreasing in v, and so is floor().
      const b = Math.min(bins - 1, Math.floor((d[k] - lo) * scale));
      if (mk !== undefined && mk[k] !== 0) posH[b]++;
      else negH[b]++;
    }
  }
  // Walk bins from the highest down; each bin is a tie group (same trapezoid as aurocFromSorted).
  let area = 0;
  let tied = 0;
  let tp = 0;
  let fp = 0;
  let P = 0;
  let N = 0;
  for (let b = 0; b < bins; b++) {
    P += posH[b];
    N += negH[b];
  }
  for (let b = bins - 1; b >= 0; b--) {
    const ntp = tp + posH[b];
    const nfp = fp + negH[b];
    area += (nfp - fp) * (ntp + tp);
    tied += posH[b] * negH[b];
    tp = ntp;
    fp = nfp;
  }
  return { auroc: area / (2 * P * N), maxAbsError: (0.5 * tied) / (P * N), method: 'binned' };
}
