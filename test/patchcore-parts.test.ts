import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Rng } from '../src/util/rng.js';
import { adaptiveAvgPoolLastAxis, locallyAwarePatchFeatures } from '../src/models/patchcore/patchFeatures.js';
import { approximateGreedyCoreset } from '../src/models/patchcore/coreset.js';
import { nearestNeighbour } from '../src/nn/nearestNeighbour.js';
import { reweightedScore } from '../src/models/patchcore/nearestNeighbour.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** patchcore.md sec. 2 closed form for WRN50 layer2 (512 ch) + layer3 (1024 ch), dims 1024/1024. */
function closedForm(l2: tf.Tensor4D, l3: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, h, w] = l2.shape;
    const pad = (x: tf.Tensor4D) => tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]);
    const box = (x: tf.Tensor4D) => tf.mul(tf.avgPool(pad(x), 3, 1, 'valid'), 9) as tf.Tensor4D;
    const a = tf.div(tf.add(box(l2), l2), 10);
    const m3 = tf.div(box(l3), 9);
    const [, h3, w3, c3] = m3.shape;
    const pairs = m3.reshape([n, h3, w3, c3 / 2, 2]).mean(4) as tf.Tensor4D;
    const b = tf.image.resizeBilinear(pairs, [h, w], false, true);
    return tf.concat([a, b], 3).reshape([n * h * w, 1024]) as tf.Tensor2D;
  });
}

describe('PatchCore patch features', () => {
  it('generic unfold + adaptive pooling equals the closed form (patchcore.md test 1)', () => {
    const l2 = tf.randomNormal([1, 6, 6, 512], 0, 1, 'float32', 1) as tf.Tensor4D;
    const l3 = tf.randomNormal([1, 3, 3, 1024], 0, 1, 'float32', 2) as tf.Tensor4D;
    const { features } = locallyAwarePatchFeatures([l2, l3], { patchSize: 3, pretrainDim: 1024, targetDim: 1024 });
    const ref = closedForm(l2, l3);
    const err = tf.max(tf.abs(tf.sub(features, ref))).dataSync()[0];
    expect(err).toBeLessThan(1e-5);
    tf.dispose([l2, l3, features, ref]);
  });

  it('a centred impulse gives 0.2 at the centre and 0.1 at its neighbours', () => {
    // Single-channel layer2: C*9 = 9 -> pretrain 1 (mean of 9), but the spec value comes from
    // the WRN dims; check it with the closed form's layer2 rule on a 512-channel impulse.
    const buf = tf.buffer([1, 5, 5, 512]);
    buf.set(1, 0, 2, 2, 0);
    const l2 = buf.toTensor() as tf.Tensor4D;
    const l3 = tf.zeros([1, 3, 3, 1024]) as tf.Tensor4D;
    const { features } = locallyAwarePatchFeatures([l2, l3], { patchSize: 3, pretrainDim: 1024, targetDim: 1024 });
    const f = features.reshape([5, 5, 1024]).arraySync() as number[][][];
    expect(f[2][2][0]).toBeCloseTo(0.2, 6);
    expect(f[1][1][0]).toBeCloseTo(0.1, 6);
    expect(f[2][3][0]).toBeCloseTo(0.1, 6);
    expect(f[0][0][0]).toBeCloseTo(0, 6);
    tf.dispose([l2, l3, features]);
  });

  it('adaptive pooling follows torch bins for non-divisible lengths', () => {
    const x = tf.tensor2d([[1, 2, 3, 4, 5]]);
    const y = adaptiveAvgPoolLastAxis(x, 3).arraySync() as number[][];
    // torch: bins [0,2), [1,4), [3,5)
    expect(y[0]).toEqual([1.5, 3, 4.5].map((v) => expect.closeTo(v, 6)));
    tf.dispose([x]);
  });
});

describe('PatchCore coreset and scoring', () => {
  it('greedy coreset picks [4, 3, 1] on 1-D points (patchcore.md test 2)', () => {
    const pts = { data: new Float32Array([0, 1, 2, 3, 10]), rows: 5, dim: 1 };
    const sel = approximateGreedyCoreset(pts, { count: 3, startIndices: [0] }, new Rng(0));
    expect(Array.from(sel)).toEqual([4, 3, 1]);
  });

  it('nearest-neighbour distances and eq. 7 (patchcore.md test 3)', () => {
    const bank = tf.tensor2d([[0], [1], [2], [4]]);
    const norms = tf.sum(tf.square(bank), 1) as tf.Tensor1D;
    const q = tf.tensor2d([[0.5], [5]]);
    const bankT = tf.transpose(bank) as tf.Tensor2D;
    const sq = nearestNeighbour(q, bankT, norms, 'squared-l2');
    expect(Array.from(sq.distances.dataSync())).toEqual([0.25, 1].map((v) => expect.closeTo(v, 6)));
    const l2 = nearestNeighbour(q, bankT, norms, 'l2');
    expect(Array.from(l2.distances.dataSync())).toEqual([0.5, 1].map((v) => expect.closeTo(v, 6)));
    expect(Math.max(...l2.distances.dataSync())).toBeCloseTo(1.0, 6);
    expect(reweightedScore(1, [1, 3, 4])).toBeCloseTo(0.96488, 5);
    tf.dispose([bank, bankT, norms, q, sq.distances, sq.indices, l2.distances, l2.indices]);
  });

  it('chunked search equals one-shot search', () => {
    const bank = tf.randomNormal([50, 8], 0, 1, 'float32', 3) as tf.Tensor2D;
    const norms = tf.sum(tf.square(bank), 1) as tf.Tensor1D;
    const q = tf.randomNormal([7, 8], 0, 1, 'float32', 4) as tf.Tensor2D;
    const bankT = tf.transpose(bank) as tf.Tensor2D;
    const a = nearestNeighbour(q, bankT, norms, 'squared-l2', 1000);
    const b = nearestNeighbour(q, bankT, norms, 'squared-l2', 16);
    expect(Array.from(b.indices.dataSync())).toEqual(Array.from(a.indices.dataSync()));
    tf.dispose([bank, bankT, norms, q, a.distances, a.indices, b.distances, b.indices]);
  });
});
