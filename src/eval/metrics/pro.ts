import { ConfigError } from '../../errors.js';
import { argsortFloat32 } from './argsort.js';
import { labelComponents8 } from './connectedComponents.js';
import { checkMapsMasks, requireBothPixelClasses, type AnomalyMap, type DefectMask } from './maps.js';

/**
 * Per-Region Overlap (PRO) curve and its normalised area (AU-PRO), following the official MVTec AD
 * evaluation code (`compute_pro` and `trapezoid` in pro_curve_util.py / generic_util.py; Bergmann
 * et al., "The MVTec Anomaly Detection Dataset", IJCV 2021):
 * - ground-truth regions are the 8-connected components of each mask (see connectedComponents.ts);
 * - at threshold t (pixel anomalous iff score >= t), PRO(t) = mean over ALL regions of all images
 *   of the fraction of the region's pixels that are anomalous, and FPR(t) = fraction of ALL
 *   defect-free pixels (of normal and defective images) that are anomalous;
 * - one curve point per distinct score value (ties enter together), then (0,0) is prepended and
 *   (1,1) appended, values clipped to <= 1;
 * - AU-PRO = trapezoid area for FPR in [0, limit] (default 0.3), where the point at FPR = limit is
 *   linearly interpolated between the two neighbouring points, divided by limit.
 * The one deliberate deviation: FPRs are kept in float64 (the official code casts them to float32),
 * which changes AU-PRO by < 1e-6.
 */

export const DEFAULT_PRO_FPR_LIMIT = 0.3;

interface Prepared {
  /** Defect-free pixel scores, ascending. */
  readonly neg: Float32Array;
  /** Defect pixel scores (unsorted) and their weight 1 / (size of their region). */
  readonly pos: Float32Array;
  readonly weight: Float64Array;
  /** pos indices in ascending score order. */
  readonly order: Uint32Array;
  readonly regions: number;
}

function prepare(maps: readonly AnomalyMap[], masks: readonly (DefectMask | null)[]): Prepared {
  const counts = checkMapsMasks(maps, masks);
  requireBothPixelClasses(counts, 'AU-PRO');
  const neg = new Float32Array(counts.negatives);
  const pos = new Float32Array(counts.positives);
  const weight = new Float64Array(counts.positives);
  let n = 0;
  let p = 0;
  let regions = 0;
  for (let i = 0; i < maps.length; i++) {
    const m = maps[i];
    const mk = masks[i];
    if (mk === null) {
      neg.set(m.data, n);
      n += m.data.length;
      continue;
    }
    const cc = labelComponents8(mk.data, mk.width, mk.height);
    regions += cc.count;
    for (let k = 0; k < m.data.length; k++) {
      const r = cc.labels[k];
      if (r === 0) neg[n++] = m.data[k];
      else {
        pos[p] = m.data[k];
        weight[p++] = 1 / cc.sizes[r];
      }
    }
  }
  neg.sort();
  return { neg, pos, weight, order: argsortFloat32(pos), regions };
}

/**
 * Walks distinct thresholds from the highest down and reports (fpr, pro) after each tie group.
 * `visit` returns false to stop early.
 */
function walk(d: Prepared, visit: (fpr: number, pro: number) => boolean): void {
  const { neg, pos, weight, order } = d;
  const numOk = neg.length;
  let i = order.length - 1;
  let j = numOk - 1;
  let fp = 0;
  let proSum = 0;
  while (i >= 0 || j >= 0) {
    const v = i < 0 ? neg[j] : j < 0 ? pos[order[i]] : Math.max(pos[order[i]], neg[j]);
    while (i >= 0 && pos[order[i]] === v) proSum += weight[order[i--]];
    while (j >= 0 && neg[j] === v) {
      fp++;
      j--;
    }
    // Clip like the official code: cumulative sums of 1/size may overshoot 1 by rounding.
    if (!visit(Math.min(1, fp / numOk), Math.min(1, proSum / d.regions))) return;
  }
}

/** Full PRO curve, (0,0) first and (1,1) last, like the official `compute_pro`. */
export interface ProCurve {
  readonly fpr: Float64Array;
  readonly pro: Float64Array;
}

/** The PRO curve (one point per distinct score; memory O(distinct scores), meant for plots/tests). */
export function proCurve(maps: readonly AnomalyMap[], masks: readonly (DefectMask | null)[]): ProCurve {
  const d = prepare(maps, masks);
  const fpr: number[] = [0];
  const pro: number[] = [0];
  walk(d, (x, y) => {
    fpr.push(x);
    pro.push(y);
    return true;
  });
  fpr.push(1);
  pro.push(1);
  return { fpr: Float64Array.from(fpr), pro: Float64Array.from(pro) };
}

/**
 * AU-PRO up to FPR `fprLimit` (default 0.3, MVTec AD), normalised by the limit to [0, 1].
 * Streams the curve and stops at the first point beyond the limit, like the official `trapezoid`
 * with `x_max`. Throws DatasetError on count/size mismatch or NaN maps, ConfigError when there is
 * no defect pixel / no defect-free pixel or the limit is not in (0, 1].
 */
export function aupro(
  maps: readonly AnomalyMap[],
  masks: readonly (DefectMask | null)[],
  fprLimit: number = DEFAULT_PRO_FPR_LIMIT,
): number {
  if (!(fprLimit > 0 && fprLimit <= 1)) {
    throw new ConfigError(`AU-PRO FPR limit ${fprLimit} is invalid; use a number in (0, 1], e.g. 0.3`);
  }
  const d = prepare(maps, masks);
  let area = 0;
  let px = 0;
  let py = 0;
  let done = false;
  const step = (x: number, y: number): boolean => {
    if (x <= fprLimit) {
      area += 0.5 * (y + py) * (x - px);
      px = x;
      py = y;
      return true;
    }
    // First point beyond the limit: add the slice up to the limit, interpolating PRO there
    // (official `trapezoid`: y_interp between x[ins-1] <= x_max < x[ins]).
    const yAt = py + ((y - py) * (fprLimit - px)) / (x - px);
    area += 0.5 * (yAt + py) * (fprLimit - px);
    done = true;
    return false;
  };
  walk(d, step);
  if (!done) step(1, 1); // the appended (1,1) end point
  return area / fprLimit;
}
