/**
 * Float64 linear algebra (src/nn/linalg) against numpy/sklearn (fixtures/blocks/linalg.json):
 * Cholesky, triangular solves, SPD and general (pivoting) inverses, log-determinants,
 * sklearn's LedoitWolf (wide and tall data, and cutpaste.md's worked example), Mahalanobis
 * distances; clear errors for non-SPD / singular / mis-shaped input.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { linalg } from '../src/nn/index.js';
import { ConfigError, TrainingError } from '../src/errors.js';

const { cholesky, fromTensor, identity, inverse, inverseSPD, ledoitWolf, logDetSPD, mahalanobis, mahalanobis64, matmul, matrix, slogdet, solveTriangular, transpose } = linalg;
const fx = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'blocks', 'linalg.json'), 'utf8'));
const n: number = fx.n;

/** max |a − b| / max |b|. */
function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('decompositions', () => {
  const spd = matrix(n, n, fx.spd);
  const general = matrix(n, n, fx.general);
  const b = matrix(n, 3, fx.b);

  it('cholesky equals numpy and reconstructs a', () => {
    const L = cholesky(spd);
    expect(rel(L.data, fx.cholesky)).toBeLessThan(1e-13);
    expect(rel(matmul(L, transpose(L)).data, fx.spd)).toBeLessThan(1e-14);
  });

  it('triangular solves (lower, and the transpose of lower = upper) equal numpy', () => {
    const L = cholesky(spd);
    expect(rel(solveTriangular(L, b, { lower: true }).data, fx.lower_solve)).toBeLessThan(1e-13);
    expect(rel(solveTriangular(L, b, { lower: true, transpose: true }).data, fx.upper_t_solve)).toBeLessThan(1e-13);
    expect(rel(solveTriangular(transpose(L), b, { lower: false }).data, fx.upper_t_solve)).toBeLessThan(1e-13);
  });

  it('inverses: SPD via Cholesky, general via pivoted LU; log-determinants', () => {
    const si = inverseSPD(spd);
    expect(rel(si.data, fx.spd_inverse)).toBeLessThan(1e-12);
    expect(rel(matmul(si, spd).data, identity(n).data)).toBeLessThan(1e-13);
    const gi = inverse(general);
    expect(rel(gi.data, fx.general_inverse)).toBeLessThan(1e-10);
    expect(rel(matmul(general, gi).data, identity(n).data)).toBeLessThan(1e-12);
    expect(logDetSPD(spd)).toBeCloseTo(fx.spd_logdet, 11);
    const sd = slogdet(general);
    expect(sd.sign).toBe(fx.general_sign);
    expect(sd.logAbsDet).toBeCloseTo(fx.general_logdet, 11);
    // a tiny leading column needs row pivoting: without it the first pivot is ~1e-3
    expect(Math.abs(fx.general[0])).toBeLessThan(1e-2);
  });

  it('errors: not positive definite, singular, non-square, mismatched shapes', () => {
    expect(() => cholesky(matrix(2, 2, [1, 2, 2, 1]))).toThrow(TrainingError);
    expect(() => inverse(matrix(2, 2, [1, 2, 2, 4]))).toThrow(/singular/);
    expect(slogdet(matrix(2, 2, [1, 2, 2, 4])).sign).toBe(0);
    expect(() => cholesky(matrix(2, 3))).toThrow(ConfigError);
    expect(() => solveTriangular(identity(3), matrix(2, 1), { lower: true })).toThrow(ConfigError);
    expect(() => matrix(2, 2, [1, 2, 3])).toThrow(ConfigError);
  });
});

describe('Ledoit–Wolf (sklearn.covariance.LedoitWolf) and Mahalanobis', () => {
  it.each(['wide', 'tall', 'cutpaste_spec'])('%s: location, shrinkage, covariance, precision and distances equal sklearn', (name) => {
    const f = fx.ledoit_wolf[name];
    const fit = ledoitWolf(matrix(f.rows, f.cols, f.X));
    expect(rel(fit.location, f.location)).toBeLessThan(1e-13);
    expect(Math.abs(fit.shrinkage - f.shrinkage)).toBeLessThan(1e-12);
    expect(rel(fit.covariance.data, f.covariance)).toBeLessThan(1e-12);
    expect(rel(fit.precision.data, f.precision)).toBeLessThan(1e-10);
    const q = f.queries as number[];
    const nq = q.length / f.cols;
    const d64 = Array.from({ length: nq }, (_, i) => mahalanobis64(q.slice(i * f.cols, (i + 1) * f.cols), fit.location, fit.precision));
    expect(rel(d64, f.mahalanobis)).toBeLessThan(1e-10);
    tf.tidy(() => {
      const d32 = mahalanobis(tf.tensor2d(q, [nq, f.cols]), fit.location, fit.precision);
      expect(rel(d32.dataSync(), f.mahalanobis)).toBeLessThan(1e-4);
    });
  });

  it('cutpaste.md §7 worked example: δ = 0.559643, score of (5, 0) = 3.132318', () => {
    const fit = ledoitWolf(matrix(5, 2, [1, 2, 2, 1, 3, 5, 4, 3, 0, 1]));
    expect(fit.shrinkage).toBeCloseTo(0.559643, 6);
    expect(Array.from(fit.covariance.data).map((v) => +v.toFixed(6))).toEqual([2.067157, 0.616499, 0.616499, 2.172843]);
    expect(mahalanobis64([5, 0], fit.location, fit.precision)).toBeCloseTo(3.132318, 6);
  });

  it('takes a tensor, stays SPD with fewer samples than features, and checks shapes', () => {
    const f = fx.ledoit_wolf.wide; // 12 samples, 20 features: the sample covariance is singular
    const X = tf.tensor2d(f.X, [f.rows, f.cols]);
    const fromT = ledoitWolf(X);
    X.dispose();
    expect(rel(fromT.covariance.data, f.covariance)).toBeLessThan(1e-6); // float32 input
    expect(() => cholesky(fromT.covariance)).not.toThrow();
    expect(() => tf.tidy(() => mahalanobis(tf.zeros([2, 3]) as tf.Tensor2D, [0, 0], identity(2)))).toThrow(ConfigError);
    expect(fromTensor(tf.tensor2d([1, 2, 3, 4], [2, 2])).data).toEqual(Float64Array.from([1, 2, 3, 4]));
  });
});
