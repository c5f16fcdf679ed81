import { ConfigError, DatasetError } from '../../errors.js';
import { binaryCurve } from './curve.js';
import { checkFinite, checkScoresLabels, splitSorted } from './validate.js';

/**
 * Decision rule used everywhere in this module: a sample is predicted ANOMALOUS iff
 * `score >= threshold` (scikit-learn's `precision_recall_curve` convention), normal otherwise.
 */

/** Confusion counts and derived rates at one threshold. */
export interface ThresholdedMetrics {
  readonly threshold: number;
  readonly tp: number;
  readonly fp: number;
  readonly tn: number;
  readonly fn: number;
  /** TP / (TP + FP); null when nothing is predicted anomalous (0/0), never a fake 0. */
  readonly precision: number | null;
  /** TP / (TP + FN); null when there is no anomalous sample (0/0). */
  readonly recall: number | null;
  /**
   * 2TP / (2TP + FP + FN), the harmonic mean of precision and recall (paper, Sec. 3.3.1). It is a
   * real 0 (not 0/0) when anomalies exist but none is caught; null only when 2TP + FP + FN = 0.
   */
  readonly f1: number | null;
}

function fromCounts(threshold: number, tp: number, fp: number, tn: number, fn: number): ThresholdedMetrics {
  return {
    threshold,
    tp,
    fp,
    tn,
    fn,
    precision: tp + fp > 0 ? tp / (tp + fp) : null,
    recall: tp + fn > 0 ? tp / (tp + fn) : null,
    f1: 2 * tp + fp + fn > 0 ? (2 * tp) / (2 * tp + fp + fn) : null,
  };
}

/** Precision, recall and F1 when `score >= threshold` is called anomalous. */
export function metricsAtThreshold(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  threshold: number,
): ThresholdedMetrics {
  checkScoresLabels(scores, labels);
  if (Number.isNaN(threshold)) throw new ConfigError('threshold is NaN; pass a number');
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const predicted = scores[i] >= threshold;
    if (labels[i] === 1) {
      if (predicted) tp++;
      else fn++;
    } else if (predicted) fp++;
    else tn++;
  }
  return fromCounts(threshold, tp, fp, tn, fn);
}

/**
 * ORACLE threshold: the score cut that maximises F1 ON THE SCORES GIVEN, i.e. on the test set.
 * This is how precision/recall/F1 are commonly reported (and presumably in the paper, which does
 * not describe a calibration step); it is optimistic because it looks at test labels, so report it
 * labelled "oracle" next to the calibrated threshold of `calibrateThreshold`.
 *
 * Candidates are the thresholds of scikit-learn's `precision_recall_curve` (the distinct scores).
 * F1 values are compared exactly as fractions (integer cross-multiplication), and among equal F1
 * the LOWEST threshold wins (higher recall, the paper's priority; it is also what `np.argmax` picks
 * over scikit-learn's increasing thresholds). Returns null when no sample is anomalous (F1 is 0 or
 * undefined everywhere, so no threshold is better than another).
 */
export function oracleThreshold(scores: ArrayLike<number>, labels: ArrayLike<number>): ThresholdedMetrics | null {
  const counts = checkScoresLabels(scores, labels);
  if (counts.positives === 0) return null;
  const { pos, neg } = splitSorted(scores, labels, counts);
  const c = binaryCurve(pos, neg);
  const P = counts.positives;
  let best = -1;
  for (let k = 0; k < c.thresholds.length; k++) {
    if (best < 0) {
      best = k;
      continue;
    }
    // F1_k = 2tp / (tp + fp + P). Compare 2tp_k/(tp_k+fp_k+P) >= 2tp_b/(tp_b+fp_b+P) exactly;
    // products stay below 2^53 for up to ~10^7 samples. Walking thresholds downwards, ">=" keeps
    // the lowest threshold among ties.
    const lhs = c.tps[k] * (c.tps[best] + c.fps[best] + P);
    const rhs = c.tps[best] * (c.tps[k] + c.fps[k] + P);
    if (lhs >= rhs) best = k;
  }
  const tp = c.tps[best];
  const fp = c.fps[best];
  return fromCounts(c.thresholds[best], tp, fp, counts.negatives - fp, P - tp);
}

/**
 * How to derive a deployable threshold from VALIDATION NORMAL scores only (never test data, never
 * anomalies, so it is available in the paper's setting where no anomaly is seen before testing):
 * - `quantile` (default, q = 0.99): the q-quantile of the normal scores with linear interpolation
 *   between order statistics (NumPy's default `np.quantile(..., method='linear')`); by design about
 *   (1 - q) of normal parts are expected to be rejected.
 * - `max`: the smallest double strictly greater than the highest normal score, so that with the
 *   `score >= threshold` rule every validation normal is accepted (zero validation false alarms).
 * - `meanStd`: mean + k * std (k = 3 by default), std being the sample standard deviation (n - 1
 *   denominator, less optimistic on the small validation sets typical of MVTec AD); needs >= 2 scores.
 */
export type CalibrationRule =
  | { readonly kind: 'quantile'; readonly q: number }
  | { readonly kind: 'max' }
  | { readonly kind: 'meanStd'; readonly k: number };

export const DEFAULT_CALIBRATION: CalibrationRule = { kind: 'quantile', q: 0.99 };

/** Smallest double > x (x finite). */
function nextUp(x: number): number {
  if (x === 0) return Number.MIN_VALUE;
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  const bits = buf.getBigUint64(0);
  buf.setBigUint64(0, x > 0 ? bits + 1n : bits - 1n);
  return buf.getFloat64(0);
}

/** q-quantile of ascending `sorted`, NumPy 'linear' method (type 7 of Hyndman & Fan). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const a = sorted[lo];
  const b = sorted[hi];
  const t = h - lo;
  // NumPy's _lerp form: evaluate from the nearer end for accuracy and monotonicity.
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

/**
 * Threshold from validation normal scores with `rule` (see CalibrationRule). Throws DatasetError
 * when there are no (or too few) scores or one is NaN/Inf, ConfigError on an invalid rule.
 */
export function calibrateThreshold(
  normalScores: ArrayLike<number>,
  rule: CalibrationRule = DEFAULT_CALIBRATION,
): number {
  const what = 'validation normal scores';
  if (normalScores.length === 0) {
    throw new DatasetError(`${what}: none given; the calibrated threshold needs held-out normal images`);
  }
  checkFinite(normalScores, what);
  const sorted = Float64Array.from(normalScores).sort();
  switch (rule.kind) {
    case 'quantile':
      if (!(rule.q >= 0 && rule.q <= 1)) {
        throw new ConfigError(`calibration quantile q=${rule.q} is invalid; use a number in [0, 1] (e.g. 0.99)`);
      }
      return quantileSorted(sorted, rule.q);
    case 'max':
      return nextUp(sorted[sorted.length - 1]);
    case 'meanStd': {
      if (!Number.isFinite(rule.k)) throw new ConfigError(`calibration k=${rule.k} is invalid; use a finite number (e.g. 3)`);
      const n = sorted.length;
      if (n < 2) throw new DatasetError(`${what}: mean+k*std needs at least 2 scores, got ${n}`);
      let mean = 0;
      for (let i = 0; i < n; i++) mean += sorted[i];
      mean /= n;
      let ss = 0;
      for (let i = 0; i < n; i++) ss += (sorted[i] - mean) ** 2;
      return mean + rule.k * Math.sqrt(ss / (n - 1));
    }
    default: {
      const kind: unknown = (rule as { kind?: unknown }).kind;
      throw new ConfigError(`unknown calibration rule '${String(kind)}'; use 'quantile', 'max' or 'meanStd'`);
    }
  }
}

/** Parses 'quantile:0.99', 'max', 'meanStd:3' (also 'mean+std:3') - handy for CLIs. */
export function parseCalibrationRule(text: string): CalibrationRule {
  const [name, arg] = text.split(':', 2) as [string, string | undefined];
  const num = arg === undefined ? undefined : Number(arg);
  if (arg !== undefined && (arg.trim() === '' || !Number.isFinite(num))) {
    throw new ConfigError(`calibration rule '${text}': '${arg}' is not a number`);
  }
  switch (name.trim().toLowerCase()) {
    case 'quantile':
      return { kind: 'quantile', q: num ?? 0.99 };
    case 'max':
      return { kind: 'max' };
    case 'meanstd':
    case 'mean+std':
      return { kind: 'meanStd', k: num ?? 3 };
    default:
      throw new ConfigError(`unknown calibration rule '${text}'; use quantile[:q], max or meanStd[:k]`);
  }
}
