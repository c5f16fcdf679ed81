import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../util/rng.js';

/**
 * Row-major matrix of float32 vectors kept in JS memory: PatchCore's bank before subsampling is
 * N x 1024 with N up to ~300k (hazelnut), far too much to hold as one tensor on wasm.
 */
export interface VectorSet {
  data: Float32Array;
  rows: number;
  dim: number;
}

/**
 * Random projection used only for coreset selection (official `approx_greedy_coreset`):
 * a dense D x d matrix with PyTorch Linear's default init U(±1/sqrt(D)), no bias. Not JL-sized
 * (PatchCore issue #21); skipped when D == d.
 */
export function randomProjection(x: VectorSet, outDim: number, rng: Rng, chunkRows = 4096): VectorSet {
  if (x.dim === outDim) return { data: x.data.slice(), rows: x.rows, dim: x.dim };
  const bound = 1 / Math.sqrt(x.dim);
  const w = new Float32Array(x.dim * outDim);
  for (let i = 0; i < w.length; i++) w[i] = rng.uniform(-bound, bound);
  const out = new Float32Array(x.rows * outDim);
  const wt = tf.tensor2d(w, [x.dim, outDim]);
  try {
    for (let r = 0; r < x.rows; r += chunkRows) {
      const m = Math.min(chunkRows, x.rows - r);
      const block = tf.tidy(() =>
        tf.matMul(tf.tensor2d(x.data.subarray(r * x.dim, (r + m) * x.dim), [m, x.dim]), wt).dataSync(),
      );
      out.set(block, r * outDim);
    }
  } finally {
    wt.dispose();
  }
  return { data: out, rows: x.rows, dim: outDim };
}

function squaredNorms(x: VectorSet): Float64Array {
  const n = new Float64Array(x.rows);
  for (let i = 0; i < x.rows; i++) {
    let s = 0;
    const o = i * x.dim;
    for (let k = 0; k < x.dim; k++) s += x.data[o + k] * x.data[o + k];
    n[i] = s;
  }
  return n;
}

/**
 * Euclidean distances of every row to row `j`, as sqrt(max(0, |a|²+|b|²-2a·b)) like the official
 * code. The dot product is unrolled by 4 with independent accumulators: V8 does not vectorise, and
 * this loop is PatchCore's fit bottleneck (O(N · coreset · d)).
 */
function distancesTo(x: VectorSet, norms: Float64Array, j: number, out: Float64Array): void {
  const d = x.dim;
  const data = x.data;
  const q = data.subarray(j * d, (j + 1) * d);
  const nj = norms[j];
  const d4 = d - (d % 4);
  for (let i = 0, oi = 0; i < x.rows; i++, oi += d) {
    let a0 = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    let k = 0;
    for (; k < d4; k += 4) {
      a0 += data[oi + k] * q[k];
      a1 += data[oi + k + 1] * q[k + 1];
      a2 += data[oi + k + 2] * q[k + 2];
      a3 += data[oi + k + 3] * q[k + 3];
    }
    for (; k < d; k++) a0 += data[oi + k] * q[k];
    const v = norms[i] + nj - 2 * (a0 + a1 + a2 + a3);
    out[i] = v > 0 ? Math.sqrt(v) : 0;
  }
}

export interface CoresetOptions {
  /** Number of points to select. */
  count: number;
  /** Size of the random start set whose mean distance initialises the greedy (official: 10). */
  numStarts?: number;
  /** Explicit start indices (tests); overrides the random draw. */
  startIndices?: number[];
}

/**
 * Approximate greedy coreset (official `ApproximateGreedyCoresetSampler`, PatchCore sec. 3.2):
 * initial distance = mean distance to a random start set (start points not selected), then
 * repeatedly take the farthest point (first index on ties) and shrink distances by it.
 * O(N · count · d): the dominant cost of PatchCore's fit on CPU.
 */
export function approximateGreedyCoreset(projected: VectorSet, opts: CoresetOptions, rng: Rng): Int32Array {
  const n = projected.rows;
  const count = Math.min(opts.count, n);
  const norms = squaredNorms(projected);
  let starts = opts.startIndices;
  if (!starts) {
    const k = Math.min(opts.numStarts ?? 10, n);
    const chosen = new Set<number>();
    while (chosen.size < k) chosen.add(rng.int(0, n));
    starts = [...chosen];
  }
  const minDist = new Float64Array(n);
  const tmp = new Float64Array(n);
  for (const s of starts) {
    distancesTo(projected, norms, s, tmp);
    for (let i = 0; i < n; i++) minDist[i] += tmp[i] / starts.length;
  }
  const selected = new Int32Array(count);
  for (let it = 0; it < count; it++) {
    let best = 0;
    let bestVal = -Infinity;
    for (let i = 0; i < n; i++) {
      if (minDist[i] > bestVal) {
        bestVal = minDist[i];
        best = i;
      }
    }
    selected[it] = best;
    distancesTo(projected, norms, best, tmp);
    for (let i = 0; i < n; i++) if (tmp[i] < minDist[i]) minDist[i] = tmp[i];
  }
  return selected;
}

/** Rows `indices` of x as a new VectorSet. */
export function takeRows(x: VectorSet, indices: Int32Array): VectorSet {
  const out = new Float32Array(indices.length * x.dim);
  for (let r = 0; r < indices.length; r++) {
    out.set(x.data.subarray(indices[r] * x.dim, (indices[r] + 1) * x.dim), r * x.dim);
  }
  return { data: out, rows: indices.length, dim: x.dim };
}
