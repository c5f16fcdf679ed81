import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import type { Matrix } from './matrix.js';

/**
 * Mahalanobis distances √((x − μ)ᵀ P (x − μ)) of the rows of `x` ([N, p] tensor) to a Gaussian
 * with mean μ and precision P (e.g. from ledoitWolf): the CutPaste GDE anomaly score
 * (cutpaste.md §2). Runs as tensor ops (float32) so scoring many patches stays on the backend;
 * precision and mean come in float64 and are rounded once. Returns [N]; caller disposes.
 */
export function mahalanobis(x: tf.Tensor2D, mean: ArrayLike<number>, precision: Matrix): tf.Tensor1D {
  const p = x.shape[1];
  if (mean.length !== p || precision.rows !== p || precision.cols !== p) {
    throw new ConfigError(`mahalanobis: ${p} features but mean of ${mean.length} and precision ${precision.rows}×${precision.cols}`);
  }
  return tf.tidy(() => {
    const d = tf.sub(x, tf.tensor1d(Float32Array.from(mean)));
    const P = tf.tensor2d(Float32Array.from(precision.data), [p, p]);
    // Σ_j (dP)_ij d_ij, clamped at 0 against rounding for points at the mean
    return tf.sqrt(tf.relu(tf.sum(tf.mul(tf.matMul(d, P), d), 1))) as tf.Tensor1D;
  });
}

/** The same in float64 for one point (tests, small problems). */
export function mahalanobis64(x: ArrayLike<number>, mean: ArrayLike<number>, precision: Matrix): number {
  const p = precision.rows;
  if (x.length !== p || mean.length !== p) throw new ConfigError(`mahalanobis64: ${x.length}/${mean.length} values for a ${p}-dimensional Gaussian`);
  const d = Float64Array.from({ length: p }, (_, i) => x[i] - mean[i]);
  let s = 0;
  for (let i = 0; i < p; i++) {
    let r = 0;
    for (let j = 0; j < p; j++) r += precision.data[i * p + j] * d[j];
    s += d[i] * r;
  }
  return Math.sqrt(Math.max(0, s));
}
