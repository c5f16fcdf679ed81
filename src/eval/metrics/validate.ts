import { DatasetError } from '../../errors.js';

/** Class counts of a validated (scores, labels) pair. */
export interface ClassCounts {
  /** Number of anomalous samples (label 1). */
  readonly positives: number;
  /** Number of normal samples (label 0). */
  readonly negatives: number;
}

/**
 * Checks that `scores` and `labels` describe the same samples and are usable by every metric:
 * equal lengths, at least one sample, finite scores (scikit-learn's `_binary_clf_curve` also
 * rejects NaN and ±Inf via `assert_all_finite`) and labels exactly 0 (normal) or 1 (anomalous).
 * Throws DatasetError naming the first offending index; `what` names the data in the message.
 */
export function checkScoresLabels(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  what = 'image scores',
): ClassCounts {
  if (scores.length !== labels.length) {
    throw new DatasetError(
      `${what}: ${scores.length} scores but ${labels.length} labels; every score needs exactly one label`,
    );
  }
  if (scores.length === 0) throw new DatasetError(`${what}: no samples to evaluate`);
  checkFinite(scores, what);
  let positives = 0;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l === 1) positives++;
    else if (l !== 0) {
      throw new DatasetError(`${what}: label at index ${i} is ${String(l)}; labels must be 0 (normal) or 1 (anomalous)`);
    }
  }
  return { positives, negatives: labels.length - positives };
}

/** Throws DatasetError naming the first NaN/±Inf score. */
export function checkFinite(scores: ArrayLike<number>, what: string): void {
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i])) {
      throw new DatasetError(`${what}: score at index ${i} is ${String(scores[i])}; scores must be finite numbers`);
    }
  }
}

/**
 * Splits scores by label into two ascending-sorted Float64Arrays. Sorting each class separately
 * with the native numeric typed-array sort (no comparator) and merging them later is both faster
 * than an index sort and enough for every ranking metric: only the number of positives and
 * negatives at or above each distinct score value matters, never the order inside a tie.
 */
export function splitSorted(scores: ArrayLike<number>, labels: ArrayLike<number>, counts: ClassCounts): {
  pos: Float64Array;
  neg: Float64Array;
} {
  const pos = new Float64Array(counts.positives);
  const neg = new Float64Array(counts.negatives);
  let p = 0;
  let n = 0;
  for (let i = 0; i < scores.length; i++) {
    // `+ 0` turns -0 into +0 so the two zeros form one tie group like in NumPy's `np.diff(...) != 0`.
    const s = scores[i] + 0;
    if (labels[i] === 1) pos[p++] = s;
    else neg[n++] = s;
  }
  pos.sort();
  neg.sort();
  return { pos, neg };
}
