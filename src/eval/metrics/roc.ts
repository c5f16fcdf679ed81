import { ConfigError } from '../../errors.js';
import { binaryCurve, walkDistinctDescending, type SortedScores } from './curve.js';
import { checkScoresLabels, splitSorted, type ClassCounts } from './validate.js';

/** A ROC curve in scikit-learn's layout: index 0 is the (0, 0) point with threshold +Infinity. */
export interface RocCurve {
  readonly fpr: Float64Array;
  readonly tpr: Float64Array;
  /** Decreasing; thresholds[k] is the score cut of point k (`score >= threshold` is anomalous). */
  readonly thresholds: Float64Array;
}

/**
 * Throws ConfigError when AUROC is undefined because only one class is present. We throw rather
 * than return NaN, like scikit-learn's `roc_auc_score` ("Only one class present in y_true. ROC AUC
 * score is not defined in that case."); `computeMetrics` checks first and reports null instead.
 */
export function requireBothClasses(counts: ClassCounts, what: string): void {
  if (counts.positives === 0 || counts.negatives === 0) {
    const only = counts.positives === 0 ? 'normal (label 0)' : 'anomalous (label 1)';
    throw new ConfigError(
      `${what}: all ${counts.positives + counts.negatives} samples are ${only}; AUROC is undefined ` +
        'with a single class - evaluate on a test set that contains both normal and anomalous samples',
    );
  }
}

/**
 * ROC curve exactly as scikit-learn's `roc_curve(y_true, y_score, drop_intermediate=False)`:
 * one point per distinct score value (ties enter together), preceded by (0, 0). The first
 * threshold is +Infinity as in scikit-learn >= 1.3 (older versions used max(score) + 1).
 * Throws ConfigError when labels are all one class (a rate would divide by zero) and DatasetError
 * on length mismatch, NaN/Inf scores or labels other than 0/1.
 */
export function rocCurve(scores: ArrayLike<number>, labels: ArrayLike<number>): RocCurve {
  const counts = checkScoresLabels(scores, labels);
  requireBothClasses(counts, 'ROC curve');
  const { pos, neg } = splitSorted(scores, labels, counts);
  const c = binaryCurve(pos, neg);
  const m = c.thresholds.length + 1;
  const fpr = new Float64Array(m);
  const tpr = new Float64Array(m);
  const thresholds = new Float64Array(m);
  thresholds[0] = Infinity;
  for (let k = 1; k < m; k++) {
    fpr[k] = c.fps[k - 1] / counts.negatives;
    tpr[k] = c.tps[k - 1] / counts.positives;
    thresholds[k] = c.thresholds[k - 1];
  }
  return { fpr, tpr, thresholds };
}

/**
 * Area under the ROC curve by the trapezoid rule over the distinct-threshold points, which equals
 * scikit-learn's `roc_auc_score` (its `drop_intermediate` only removes collinear points) and the
 * Mann-Whitney statistic P(s+ > s-) + 0.5 P(s+ = s-). The area is accumulated in integer counts
 * (exact below 2^53) and divided once by P*N, so it is exact up to one rounding.
 */
export function aurocFromSorted(pos: SortedScores, neg: SortedScores): number {
  let area = 0; // sum of (fp_k - fp_{k-1}) * (tp_k + tp_{k-1}), i.e. twice the area in count units
  let prevTp = 0;
  let prevFp = 0;
  walkDistinctDescending(pos, neg, (_t, tp, fp) => {
    area += (fp - prevFp) * (tp + prevTp);
    prevTp = tp;
    prevFp = fp;
  });
  return area / (2 * pos.length * neg.length);
}

/**
 * Image-level AUROC, identical to scikit-learn's `roc_auc_score` including ties. Throws
 * ConfigError when all labels are one class (see `requireBothClasses`), DatasetError on bad input.
 */
export function auroc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const counts = checkScoresLabels(scores, labels);
  requireBothClasses(counts, 'AUROC');
  const { pos, neg } = splitSorted(scores, labels, counts);
  return aurocFromSorted(pos, neg);
}
