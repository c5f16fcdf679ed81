import { ConfigError } from '../../errors.js';
import { binaryCurve } from './curve.js';
import { checkScoresLabels, splitSorted, type ClassCounts } from './validate.js';

/** Precision-recall curve in scikit-learn's layout (thresholds increasing, final point (R=0, P=1)). */
export interface PrecisionRecallCurve {
  /** Length thresholds.length + 1; the last entry is 1 (no threshold), as in scikit-learn. */
  readonly precision: Float64Array;
  /** Length thresholds.length + 1, decreasing; the last entry is 0. */
  readonly recall: Float64Array;
  /** Distinct score values, increasing (`score >= threshold` is anomalous). */
  readonly thresholds: Float64Array;
}

/** AP and the precision-recall curve need at least one anomalous sample (recall = TP / P). */
export function requirePositives(counts: ClassCounts, what: string): void {
  if (counts.positives === 0) {
    throw new ConfigError(
      `${what}: none of the ${counts.negatives} samples is anomalous (label 1); recall and average ` +
        'precision are undefined without anomalous samples',
    );
  }
}

/**
 * Same points as scikit-learn's `precision_recall_curve` (>= 1.1: the full curve, not truncated at
 * full recall): one point per distinct score value in increasing threshold order, plus the final
 * (recall 0, precision 1) point. Throws ConfigError when no label is 1 (scikit-learn only warns and
 * sets recall to 1, which is not a meaningful curve) and DatasetError on bad input.
 */
export function precisionRecallCurve(scores: ArrayLike<number>, labels: ArrayLike<number>): PrecisionRecallCurve {
  const counts = checkScoresLabels(scores, labels);
  requirePositives(counts, 'precision-recall curve');
  const { pos, neg } = splitSorted(scores, labels, counts);
  const c = binaryCurve(pos, neg);
  const m = c.thresholds.length;
  const precision = new Float64Array(m + 1);
  const recall = new Float64Array(m + 1);
  const thresholds = new Float64Array(m);
  for (let k = 0; k < m; k++) {
    const r = m - 1 - k; // reverse: scikit-learn returns increasing thresholds
    // tps + fps >= 1 at every distinct threshold (at least the samples tied at it), so no 0/0.
    precision[k] = c.tps[r] / (c.tps[r] + c.fps[r]);
    recall[k] = c.tps[r] / counts.positives;
    thresholds[k] = c.thresholds[r];
  }
  precision[m] = 1;
  recall[m] = 0;
  return { precision, recall, thresholds };
}

/**
 * Average precision exactly as scikit-learn's `average_precision_score`: the step-wise sum
 * AP = sum_n (R_n - R_{n-1}) P_n over distinct thresholds (the paper's Eq. 3), WITHOUT the
 * interpolation (running max of precision) used by PASCAL VOC. A tie group contributes one step
 * with the precision of the whole group. Equals 1 when every label is 1.
 * Throws ConfigError when no label is 1, DatasetError on bad input.
 */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const counts = checkScoresLabels(scores, labels);
  requirePositives(counts, 'average precision');
  const { pos, neg } = splitSorted(scores, labels, counts);
  const c = binaryCurve(pos, neg);
  let sum = 0;
  let prevTp = 0;
  for (let k = 0; k < c.tps.length; k++) {
    const tp = c.tps[k];
    if (tp !== prevTp) sum += (tp - prevTp) * (tp / (tp + c.fps[k]));
    prevTp = tp;
  }
  return sum / counts.positives;
}
