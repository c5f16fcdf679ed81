import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Rng } from '../src/util/rng.js';
import { approximateGreedyCoreset, randomProjection, type VectorSet } from '../src/models/patchcore/coreset.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** The selection as first written (separate distance, min and argmax loops): the reference. */
function referenceCoreset(x: VectorSet, count: number, starts: number[]): number[] {
  const { rows: n, dim: d, data } = x;
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += data[i * d + k] * data[i * d + k];
    norms[i] = s;
  }
  const dist = (j: number, out: Float64Array): void => {
    const d4 = d - (d % 4);
    for (let i = 0; i < n; i++) {
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      let k = 0;
      for (; k < d4; k += 4) {
        a0 += data[i * d + k] * data[j * d + k];
        a1 += data[i * d + k + 1] * data[j * d + k + 1];
        a2 += data[i * d + k + 2] * data[j * d + k + 2];
        a3 += data[i * d + k + 3] * data[j * d + k + 3];
      }
      for (; k < d; k++) a0 += data[i * d + k] * data[j * d + k];
      const v = norms[i] + norms[j] - 2 * (a0 + a1 + a2 + a3);
      out[i] = v > 0 ? Math.sqrt(v) : 0;
    }
  };
  const minDist = new Float64Array(n);
  const tmp = new Float64Array(n);
  for (const s of starts) {
    dist(s, tmp);
    for (let i = 0; i < n; i++) minDist[i] += tmp[i] / starts.length;
  }
  const sel: number[] = [];
  for (let it = 0; it < count; it++) {
    let best = 0;
    for (let i = 1; i < n; i++) if (minDist[i] > minDist[best]) best = i;
    sel.push(best);
    dist(best, tmp);
    for (let i = 0; i < n; i++) if (tmp[i] < minDist[i]) minDist[i] = tmp[i];
  }
  return sel;
}

function randomSet(rows: number, dim: number, seed: number): VectorSet {
  const rng = new Rng(seed);
  const data = new Float32Array(rows * dim);
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform(-1, 1);
  return { data, rows, dim };
}

describe('threaded greedy coreset', () => {
  it('picks the same indices with 1, 2 and 3 threads as the reference loop', () => {
    const x = randomSet(3000, 18, 1); // 3 blocks of 1024 rows; dim not a multiple of 4
    const starts = [5, 1500, 2999];
    const ref = referenceCoreset(x, 40, starts);
    for (const threads of [1, 2, 3]) {
      const sel = approximateGreedyCoreset(x, { count: 40, startIndices: starts, threads }, new Rng(0));
      expect(Array.from(sel)).toEqual(ref);
    }
    // Random start set: same draw from the same seed, whatever the thread count.
    const a = approximateGreedyCoreset(x, { count: 25, threads: 1 }, new Rng(7));
    const b = approximateGreedyCoreset(x, { count: 25, threads: 2 }, new Rng(7));
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it('breaks ties across blocks by the first index', () => {
    // Rows r and r + 1536 are identical, so every distance ties between two blocks.
    const half = randomSet(1536, 8, 2);
    const data = new Float32Array(2 * half.data.length);
    data.set(half.data);
    data.set(half.data, half.data.length);
    const x: VectorSet = { data, rows: 3072, dim: 8 };
    const ref = referenceCoreset(x, 12, [0]);
    const sel = approximateGreedyCoreset(x, { count: 12, startIndices: [0], threads: 2 }, new Rng(0));
    expect(Array.from(sel)).toEqual(ref);
    expect(ref[0]).toBeLessThan(1536); // the first pick was a tie between twins: the lower index
  });

  it('random projection in chunks equals one matMul', () => {
    const x = randomSet(300, 16, 3);
    const p = randomProjection(x, 4, new Rng(5), 128);
    const q = randomProjection(x, 4, new Rng(5), 1000);
    expect(Array.from(p.data)).toEqual(Array.from(q.data));
  });
});
