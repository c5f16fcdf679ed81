import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { inverseSPD } from './decompositions.js';
import { matrix, type Matrix } from './matrix.js';

export interface GaussianFit {
  /** Mean of the rows (zeros with assumeCentered). */
  location: Float64Array;
  covariance: Matrix;
  /** covariance⁻¹ (Cholesky). */
  precision: Matrix;
  /** Ledoit–Wolf δ ∈ [0, 1]. */
  shrinkage: number;
}

/**
 * sklearn.covariance.LedoitWolf().fit(X) (CutPaste's Gaussian density estimator, cutpaste.md §2;
 * DDAD, ddad.md): on centred X (n×p), S = XᵀX/n, μ = tr(S)/p,
 *   δ = min(β, d)/d,  d = ‖S − μI‖²_F / p,  β = (Σ_k ‖x_k‖⁴/n − ‖S‖²_F)/(n·p)  (sklearn's form:
 *   β = (Σ (X²)ᵀ(X²) / n − ‖S‖²_F) / (n·p)),
 *   Σ = (1 − δ)S + δμI.
 * In float64 throughout. X is given as rows (a Matrix or a [n, p] tensor).
 */
export function ledoitWolf(x: Matrix | tf.Tensor2D, opts: { assumeCentered?: boolean } = {}): GaussianFit {
  const X = x instanceof tf.Tensor ? matrix(x.shape[0], x.shape[1], x.dataSync()) : x;
  const { rows: n, cols: p } = X;
  if (n < 1 || p < 1) throw new ConfigError(`ledoitWolf: need at least one sample and one feature, got ${n}×${p}`);
  const location = new Float64Array(p);
  if (!opts.assumeCentered) {
    for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) location[j] += X.data[i * p + j];
    for (let j = 0; j < p; j++) location[j] /= n;
  }
  const xc = new Float64Array(n * p);
  for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) xc[i * p + j] = X.data[i * p + j] - location[j];
  // S = XᵀX/n and Σ_ij (Σ_k x_ki² x_kj²) accumulated row by row (upper triangle, mirrored)
  const S = new Float64Array(p * p);
  const sq = new Float64Array(p);
  let beta4 = 0;
  for (let k = 0; k < n; k++) {
    const o = k * p;
    let rowSq = 0;
    for (let j = 0; j < p; j++) {
      sq[j] = xc[o + j] * xc[o + j];
      rowSq += sq[j];
    }
    beta4 += rowSq * rowSq; // Σ_ij x_ki² x_kj² = ‖x_k‖⁴
    for (let i = 0; i < p; i++) {
      const v = xc[o + i];
      if (v === 0) continue;
      const r = i * p;
      for (let j = i; j < p; j++) S[r + j] += v * xc[o + j];
    }
  }
  for (let i = 0; i < p; i++) {
    for (let j = i; j < p; j++) {
      S[i * p + j] /= n;
      S[j * p + i] = S[i * p + j];
    }
  }
  let trace = 0;
  for (let i = 0; i < p; i++) trace += S[i * p + i];
  const mu = trace / p;
  let frob = 0;
  for (let i = 0; i < p * p; i++) frob += S[i] * S[i];
  // ‖S − μI‖²_F = ‖S‖²_F − 2μ·tr(S) + pμ²
  const delta = (frob - 2 * mu * trace + p * mu * mu) / p;
  let beta = (beta4 / n - frob) / (n * p);
  beta = Math.min(beta, delta);
  const shrinkage = p === 1 || beta === 0 ? 0 : beta / delta;
  const cov = matrix(p, p);
  for (let i = 0; i < p * p; i++) cov.data[i] = (1 - shrinkage) * S[i];
  for (let i = 0; i < p; i++) cov.data[i * p + i] += shrinkage * mu;
  return { location, covariance: cov, precision: inverseSPD(cov), shrinkage };
}
