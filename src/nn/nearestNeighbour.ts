import * as tf from '@tensorflow/tfjs';

export type DistanceKind = 'squared-l2' | 'l2';

/**
 * Distance from each query row to its nearest bank row, computed in chunks as
 * |q|² + |b|² - 2 q·b (one matmul per chunk). The bank is passed TRANSPOSED ([D, B]): wasm's
 * matMul with transposeB runs 10-20x slower than on a pre-transposed operand (measured here:
 * 3.4-6.8 s vs 0.3 s for 1024x1024 by 1024x1382). The official code uses faiss IndexFlatL2, which
 * returns SQUARED distances; anomalib uses plain L2 (patchcore.md sec. 4). Returns [M] and the
 * nearest bank index [M]. Shared by the memory-bank scorers (PatchCore, Patch SVDD: patchsvdd.md
 * sec. 4 allows exact search in place of the official KD-tree / NGT graph).
 */
export function nearestNeighbour(
  queries: tf.Tensor2D,
  bankT: tf.Tensor2D,
  bankSqNorms: tf.Tensor1D,
  kind: DistanceKind,
  chunk = 8192,
): { distances: tf.Tensor1D; indices: tf.Tensor1D } {
  return tf.tidy(() => {
    const m = queries.shape[0];
    const dists: tf.Tensor1D[] = [];
    const idxs: tf.Tensor1D[] = [];
    const qn = tf.sum(tf.square(queries), 1, true);
    const total = bankT.shape[1];
    for (let b0 = 0; b0 < total; b0 += chunk) {
      // One tidy per chunk: only the chunk's [M] minima survive it, not its [M, chunk] distance
      // blocks (a large bank would otherwise keep all of them alive until the end: wasm's 4 GB heap).
      const [d, i] = tf.tidy(() => {
        const nb = Math.min(chunk, total - b0);
        const bk = nb === total ? bankT : tf.slice(bankT, [0, b0], [bankT.shape[0], nb]);
        const bn = tf.slice(bankSqNorms, [b0], [nb]);
        const d2 = tf.relu(tf.sub(tf.add(qn, bn), tf.mul(2, tf.matMul(queries, bk))));
        return [tf.min(d2, 1) as tf.Tensor1D, tf.add(tf.argMin(d2, 1), b0) as tf.Tensor1D];
      });
      dists.push(d);
      idxs.push(i);
    }
    let best = dists[0];
    let bestIdx = idxs[0];
    for (let i = 1; i < dists.length; i++) {
      const better = tf.less(dists[i], best);
      best = tf.where(better, dists[i], best);
      bestIdx = tf.where(better, idxs[i], bestIdx);
    }
    void m;
    return { distances: kind === 'l2' ? tf.sqrt(best) : best, indices: bestIdx.toFloat() as tf.Tensor1D };
  });
}

/**
 * Distance from each query row to its nearest bank row, without the index: per chunk one fused
 * matMul + bias, q·(−2B) + |b|², and a row minimum; |q|² is added after the minimum (it is the
 * same for the whole row). Two passes over each [M, chunk] block instead of nearestNeighbour's
 * six (add, sub, mul, relu, min, argMin): scorers that need no index (Patch SVDD: one query per
 * patch against ~10⁵ bank vectors) are dominated by those passes on wasm. `bankTNeg2` is the
 * transposed bank times −2 ([D, B]).
 */
export function nearestDistances(
  queries: tf.Tensor2D,
  bankTNeg2: tf.Tensor2D,
  bankSqNorms: tf.Tensor1D,
  kind: DistanceKind,
  chunk = 8192,
): tf.Tensor1D {
  return tf.tidy(() => {
    const total = bankTNeg2.shape[1];
    const mins: tf.Tensor1D[] = [];
    for (let b0 = 0; b0 < total; b0 += chunk) {
      mins.push(tf.tidy(() => {
        const nb = Math.min(chunk, total - b0);
        const bk = nb === total ? bankTNeg2 : tf.slice(bankTNeg2, [0, b0], [bankTNeg2.shape[0], nb]);
        const bn = nb === total ? bankSqNorms : tf.slice(bankSqNorms, [b0], [nb]);
        return tf.min(tf.fused.matMul({ a: queries, b: bk as tf.Tensor2D, bias: bn }), 1) as tf.Tensor1D;
      }));
    }
    const best = mins.length === 1 ? mins[0] : (tf.min(tf.stack(mins, 1), 1) as tf.Tensor1D);
    const d2 = tf.relu(tf.add(best, tf.sum(tf.square(queries), 1)));
    return (kind === 'l2' ? tf.sqrt(d2) : d2) as tf.Tensor1D;
  });
}
