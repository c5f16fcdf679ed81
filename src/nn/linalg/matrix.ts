import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';

/**
 * A dense row-major float64 matrix. The linear algebra tfjs lacks (Cholesky, solves, inverses,
 * determinants, shrunk covariances) runs in float64 JavaScript: the matrices are small (feature
 * covariances up to ~2048², CutPaste/DDAD/PaDiM-style Gaussians) and float32 loses too much —
 * a covariance of 512-dimensional features from ~300 images has a condition number near 1e6
 * even after shrinkage, and a float32 inverse would keep ~1 correct digit. 2048² Cholesky is
 * ~2.9 GFLOP: seconds in JS, done once per fit.
 */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

export function matrix(rows: number, cols: number, data?: ArrayLike<number>): Matrix {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) throw new ConfigError(`matrix: bad shape ${rows}×${cols}`);
  if (data && data.length !== rows * cols) throw new ConfigError(`matrix: ${data.length} values for ${rows}×${cols}`);
  return { rows, cols, data: data ? Float64Array.from(data) : new Float64Array(rows * cols) };
}

export function identity(n: number): Matrix {
  const m = matrix(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

/** A 2-D tensor's values in float64 (reads synchronously). */
export function fromTensor(t: tf.Tensor): Matrix {
  if (t.rank !== 2) throw new ConfigError(`fromTensor: expected a 2-D tensor, got [${t.shape}]`);
  const [rows, cols] = t.shape as [number, number];
  return matrix(rows, cols, t.dataSync());
}

/** float32 tensor of m (caller disposes). */
export function toTensor(m: Matrix): tf.Tensor2D {
  return tf.tensor2d(Float32Array.from(m.data), [m.rows, m.cols]);
}

export function transpose(a: Matrix): Matrix {
  const out = matrix(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out.data[j * a.rows + i] = a.data[i * a.cols + j];
  return out;
}

/** a·b, i-k-j loop order (row-major streaming). */
export function matmul(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.rows) throw new ConfigError(`matmul: ${a.rows}×${a.cols} times ${b.rows}×${b.cols}`);
  const out = matrix(a.rows, b.cols);
  const { data: A } = a;
  const { data: B } = b;
  const C = out.data;
  const n = b.cols;
  for (let i = 0; i < a.rows; i++) {
    for (let k = 0; k < a.cols; k++) {
      const v = A[i * a.cols + k];
      if (v === 0) continue;
      const bo = k * n;
      const co = i * n;
      for (let j = 0; j < n; j++) C[co + j] += v * B[bo + j];
    }
  }
  return out;
}

export function assertSquare(a: Matrix, what: string): number {
  if (a.rows !== a.cols) throw new ConfigError(`${what}: square matrix expected, got ${a.rows}×${a.cols}`);
  return a.rows;
}
