/**
 * The core walk shared by the ROC and precision-recall curves: scikit-learn's `_binary_clf_curve`
 * (sklearn/metrics/_ranking.py). Thresholds are the DISTINCT score values in decreasing order; at
 * threshold t a sample is predicted anomalous iff `score >= t`, so all samples tied at t enter the
 * positive set together. This tie rule is what makes AUROC count a tied (anomalous, normal) pair as
 * one half, and what makes AP use one precision value for a whole tie group.
 */

/** Sorted ascending numeric arrays (Float32Array for pixels, Float64Array for images). */
export type SortedScores = Float32Array | Float64Array;

/**
 * Calls `visit(threshold, tp, fp)` once per distinct score value, from the highest down, with the
 * cumulative numbers of positives (`tp`) and negatives (`fp`) whose score is >= threshold.
 * `pos` and `neg` must each be sorted ascending (as `TypedArray.prototype.sort()` leaves them).
 * Memory: O(1) beyond the inputs, so it also serves pixel-level metrics over millions of pixels.
 */
export function walkDistinctDescending(
  pos: SortedScores,
  neg: SortedScores,
  visit: (threshold: number, tp: number, fp: number) => void,
): void {
  let i = pos.length - 1;
  let j = neg.length - 1;
  let tp = 0;
  let fp = 0;
  while (i >= 0 || j >= 0) {
    const v = i < 0 ? neg[j] : j < 0 ? pos[i] : Math.max(pos[i], neg[j]);
    while (i >= 0 && pos[i] === v) {
      tp++;
      i--;
    }
    while (j >= 0 && neg[j] === v) {
      fp++;
      j--;
    }
    visit(v, tp, fp);
  }
}

/** Cumulative counts at each distinct threshold, highest threshold first (sklearn's fps, tps, thresholds). */
export interface BinaryCurve {
  readonly thresholds: Float64Array;
  readonly tps: Float64Array;
  readonly fps: Float64Array;
}

/** Materialises `walkDistinctDescending` into arrays (image level: small inputs). */
export function binaryCurve(pos: SortedScores, neg: SortedScores): BinaryCurve {
  const cap = pos.length + neg.length;
  const thresholds = new Float64Array(cap);
  const tps = new Float64Array(cap);
  const fps = new Float64Array(cap);
  let k = 0;
  walkDistinctDescending(pos, neg, (t, tp, fp) => {
    thresholds[k] = t;
    tps[k] = tp;
    fps[k] = fp;
    k++;
  });
  return { thresholds: thresholds.slice(0, k), tps: tps.slice(0, k), fps: fps.slice(0, k) };
}
