import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from '../../nn/losses/crossEntropy.js';
import { l2NormLastAxis } from '../../nn/losses/l2Norm.js';
import { BIG_PATCH, EMBED_DIM, SMALL_PATCH, type PatchEncoderHier, type PositionClassifier } from './network.js';
import type { PatchBatch } from './sampling.js';

/** L_SVDD' of one stream: batch mean of the (non-squared) L2 norm of f(p1) − f(p2) (official SVDD_Dataset.infer). */
export function svddLoss(h1: tf.Tensor, h2: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(l2NormLastAxis(tf.sub(h1.reshape([-1, EMBED_DIM]), h2.reshape([-1, EMBED_DIM])))) as tf.Scalar);
}

export interface PatchSvddLossTerms {
  total: tf.Scalar;
  pos64: tf.Scalar;
  pos32: tf.Scalar;
  svdd64: tf.Scalar;
  svdd32: tf.Scalar;
}

/**
 * L = L_pos64 + L_pos32 + λ (L_svdd64 + L_svdd32) (official main_train.py, patchsvdd.md §3): K = 64
 * through f_big, K = 32 through f_small (the same f_small inside f_big). One encoder call per scale
 * on the batch's [svdd p1, svdd p2, pos p1, pos p2] patches.
 */
export function patchSvddLoss(
  nets: { encoder: PatchEncoderHier; cls64: PositionClassifier; cls32: PositionClassifier },
  b: PatchBatch,
  lambda: number,
): PatchSvddLossTerms {
  return tf.tidy(() => {
    const n = b.n;
    const h64 = nets.encoder.call(tf.tensor4d(b.x64, [4 * n, BIG_PATCH, BIG_PATCH, 3]));
    const h32 = nets.encoder.enc.call(tf.tensor4d(b.x32, [4 * n, SMALL_PATCH, SMALL_PATCH, 3]));
    const [s1, s2, p1, p2] = tf.split(h64, 4, 0);
    const [t1, t2, q1, q2] = tf.split(h32, 4, 0);
    const svdd64 = svddLoss(s1, s2);
    const svdd32 = svddLoss(t1, t2);
    const pos64 = crossEntropy(nets.cls64.call(p1, p2), b.labels64) as tf.Scalar;
    const pos32 = crossEntropy(nets.cls32.call(q1, q2), b.labels32) as tf.Scalar;
    const total = tf.add(tf.add(pos64, pos32), tf.mul(lambda, tf.add(svdd64, svdd32))) as tf.Scalar;
    return { total, pos64, pos32, svdd64, svdd32 };
  });
}
