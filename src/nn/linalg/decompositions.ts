import { ConfigError, TrainingError } from '../../errors.js';
import { assertSquare, identity, matrix, type Matrix } from './matrix.js';

/**
 * Lower-triangular L with a = L·Lᵀ (Cholesky–Banachiewicz, float64) for a symmetric positive
 * definite a; only a's lower triangle is read. Throws TrainingError naming the failing pivot when
 * a is not positive definite (e.g. an unshrunk covariance of fewer samples than dimensions).
 */
export function cholesky(a: Matrix): Matrix {
  const n = assertSquare(a, 'cholesky');
  const L = matrix(n, n);
  const A = a.data;
  const l = L.data;
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      let s = A[ri + j];
      for (let k = 0; k < j; k++) s -= l[ri + k] * l[rj + k];
      if (i === j) {
        if (!(s > 0)) throw new TrainingError(`cholesky: matrix is not positive definite (pivot ${i} = ${s}); shrink the covariance (ledoitWolf) or add a ridge`);
        l[ri + i] = Math.sqrt(s);
      } else {
        l[ri + j] = s / l[rj + j];
      }
    }
  }
  return L;
}

/**
 * x with T·x = b (or Tᵀ·x = b when `transpose`) for triangular T (`lower` or upper), b n×m; only
 * T's triangle is read (scipy.linalg.solve_triangular). Throws on a zero diagonal.
 */
export function solveTriangular(T: Matrix, b: Matrix, opts: { lower: boolean; transpose?: boolean }): Matrix {
  const n = assertSquare(T, 'solveTriangular');
  if (b.rows !== n) throw new ConfigError(`solveTriangular: ${n}×${n} system with a ${b.rows}×${b.cols} right-hand side`);
  const m = b.cols;
  const x = matrix(n, m, b.data);
  const t = T.data;
  const X = x.data;
  // Tᵀ of a lower matrix is upper (and vice versa): walk forward iff the effective matrix is lower.
  const effLower = opts.lower !== (opts.transpose ?? false);
  const at = opts.transpose ? (i: number, k: number) => t[k * n + i] : (i: number, k: number) => t[i * n + k];
  for (let s = 0; s < n; s++) {
    const i = effLower ? s : n - 1 - s;
    const d = at(i, i);
    if (d === 0) throw new TrainingError(`solveTriangular: zero on the diagonal at ${i} (singular matrix)`);
    for (let c = 0; c < m; c++) {
      let v = X[i * m + c];
      if (effLower) for (let k = 0; k < i; k++) v -= at(i, k) * X[k * m + c];
      else for (let k = i + 1; k < n; k++) v -= at(i, k) * X[k * m + c];
      X[i * m + c] = v / d;
    }
  }
  return x;
}

/** a⁻¹ for symmetric positive definite a, via Cholesky (a⁻¹ = L⁻ᵀ L⁻¹); exactly symmetric. */
export function inverseSPD(a: Matrix): Matrix {
  const n = assertSquare(a, 'inverseSPD');
  const L = cholesky(a);
  const inv = solveTriangular(L, solveTriangular(L, identity(n), { lower: true }), { lower: true, transpose: true });
  const d = inv.data;
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) d[j * n + i] = d[i * n + j] = 0.5 * (d[i * n + j] + d[j * n + i]);
  return inv;
}

/** log det a for symmetric positive definite a: 2·Σ log L_ii. */
export function logDetSPD(a: Matrix): number {
  const L = cholesky(a);
  const n = a.rows;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.log(L.data[i * n + i]);
  return 2 * s;
}

/** LU with partial (row) pivoting: P·a = L·U packed in one matrix (unit L below the diagonal). */
export function luDecompose(a: Matrix): { lu: Matrix; perm: Int32Array; sign: number; singular: boolean } {
  const n = assertSquare(a, 'luDecompose');
  const lu = matrix(n, n, a.data);
  const A = lu.data;
  const perm = new Int32Array(n).map((_, i) => i);
  let sign = 1;
  let singular = false;
  for (let k = 0; k < n; k++) {
    let p = k;
    let best = Math.abs(A[k * n + k]);
    for (let i = k + 1; i < n; i++) {
      const v = Math.abs(A[i * n + k]);
      if (v > best) {
        best = v;
        p = i;
      }
    }
    if (best === 0) {
      singular = true;
      continue;
    }
    if (p !== k) {
      for (let j = 0; j < n; j++) [A[k * n + j], A[p * n + j]] = [A[p * n + j], A[k * n + j]];
      [perm[k], perm[p]] = [perm[p], perm[k]];
      sign = -sign;
    }
    const piv = A[k * n + k];
    for (let i = k + 1; i < n; i++) {
      const f = (A[i * n + k] /= piv);
      if (f === 0) continue;
      for (let j = k + 1; j < n; j++) A[i * n + j] -= f * A[k * n + j];
    }
  }
  return { lu, perm, sign, singular };
}

/** sign and log|det a| (numpy.linalg.slogdet): sign 0 and −∞ for a singular matrix. */
export function slogdet(a: Matrix): { sign: number; logAbsDet: number } {
  const { lu, sign, singular } = luDecompose(a);
  if (singular) return { sign: 0, logAbsDet: Number.NEGATIVE_INFINITY };
  const n = a.rows;
  let s = sign;
  let l = 0;
  for (let i = 0; i < n; i++) {
    const d = lu.data[i * n + i];
    if (d < 0) s = -s;
    l += Math.log(Math.abs(d));
  }
  return { sign: s, logAbsDet: l };
}

/** a⁻¹ for any invertible a, by LU with partial pivoting; TrainingError when a is singular. */
export function inverse(a: Matrix): Matrix {
  const n = assertSquare(a, 'inverse');
  const { lu, perm, singular } = luDecompose(a);
  if (singular) throw new TrainingError(`inverse: matrix is singular (${n}×${n})`);
  // Solve L·U·X = P·I column block at once: P·I is the identity with rows permuted.
  const pb = matrix(n, n);
  for (let i = 0; i < n; i++) pb.data[i * n + perm[i]] = 1;
  const y = solveTriangularUnitLower(lu, pb);
  return solveTriangular(lu, y, { lower: false });
}

function solveTriangularUnitLower(lu: Matrix, b: Matrix): Matrix {
  const n = lu.rows;
  const m = b.cols;
  const x = matrix(n, m, b.data);
  const X = x.data;
  const t = lu.data;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < i; k++) {
      const f = t[i * n + k];
      if (f === 0) continue;
      for (let c = 0; c < m; c++) X[i * m + c] -= f * X[k * m + c];
    }
  }
  return x;
}
