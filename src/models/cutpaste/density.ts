import * as tf from '@tensorflow/tfjs';
import { WeightsError } from '../../errors.js';
import { ledoitWolf, mahalanobis, matrix, type Matrix } from '../../nn/linalg/index.js';

/** torch.nn.functional.normalize(x, p=2, dim=1): x / max(‖x‖₂, 1e-12) per row. */
export function l2NormalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D);
}

/**
 * CutPaste's Gaussian density estimator (cutpaste.md §4, eq. 2): μ and a Ledoit–Wolf shrunk
 * covariance Σ of the (optionally L2-normalised) training features; score = the Mahalanobis
 * distance √((f − μ)ᵀ Σ⁻¹ (f − μ)), whose ranking equals the paper's −log density. Fitting runs
 * in float64 (src/nn/linalg); μ and Σ⁻¹ are kept rounded to float32, the precision scoring uses,
 * so a saved and reloaded estimator scores identically.
 */
export class GaussianDensity {
  private constructor(
    readonly mean: Float64Array,
    readonly precision: Matrix,
    /** Ledoit–Wolf δ of the fit (NaN when loaded from a file that lacks it). */
    readonly shrinkage: number,
    readonly l2Normalize: boolean,
  ) {}

  get dim(): number {
    return this.mean.length;
  }

  /** Fits on rows of `x` ([n, p]); the caller keeps ownership of `x`. */
  static fit(x: tf.Tensor2D, opts: { l2Normalize: boolean }): GaussianDensity {
    const rows = opts.l2Normalize ? l2NormalizeRows(x) : x;
    try {
      const g = ledoitWolf(rows as tf.Tensor2D);
      const p = g.location.length;
      return new GaussianDensity(Float64Array.from(Float32Array.from(g.location)), matrix(p, p, Float32Array.from(g.precision.data)), g.shrinkage, opts.l2Normalize);
    } finally {
      if (rows !== x) rows.dispose();
    }
  }

  /** Mahalanobis distance of each row ([n, p] → [n]); a new tensor. */
  score(x: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => mahalanobis(this.l2Normalize ? l2NormalizeRows(x) : x, this.mean, this.precision));
  }

  /** `<prefix>.mean` [p] and `<prefix>.precision` [p, p] (float32), for safetensors. */
  tensors(prefix: string): Map<string, tf.Tensor> {
    const p = this.dim;
    return new Map<string, tf.Tensor>([
      [`${prefix}.mean`, tf.tensor1d(Float32Array.from(this.mean))],
      [`${prefix}.precision`, tf.tensor2d(Float32Array.from(this.precision.data), [p, p])],
    ]);
  }

  static fromTensors(dict: Map<string, tf.Tensor>, prefix: string, l2Normalize: boolean, source: string): GaussianDensity {
    const m = dict.get(`${prefix}.mean`);
    const P = dict.get(`${prefix}.precision`);
    if (!m || !P || m.rank !== 1 || P.rank !== 2 || P.shape[0] !== m.shape[0] || P.shape[1] !== m.shape[0]) {
      throw new WeightsError(`${source}: no Gaussian density '${prefix}' (expected ${prefix}.mean [p] and ${prefix}.precision [p, p])`);
    }
    const p = m.shape[0];
    return new GaussianDensity(Float64Array.from(m.dataSync()), matrix(p, p, P.dataSync()), Number.NaN, l2Normalize);
  }
}
