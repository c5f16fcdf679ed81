import * as tf from '@tensorflow/tfjs';
import type { NamedGrads } from './optimizers/optimizer.js';

function present(grads: NamedGrads): [string, tf.Tensor][] {
  return Object.entries(grads).filter((e): e is [string, tf.Tensor] => e[1] != null);
}

/** Global L2 norm √(Σ‖g‖²) over all gradients (a new scalar; the caller disposes). */
export function globalNorm(grads: NamedGrads): tf.Scalar {
  return tf.tidy(() => {
    const sq = present(grads).map(([, g]) => tf.sum(tf.square(g)));
    return sq.length === 0 ? tf.scalar(0) : (tf.sqrt(tf.addN(sq)) as tf.Scalar);
  });
}

/**
 * torch.nn.utils.clip_grad_norm_(params, maxNorm) on a gradient map: with total norm n,
 *   coef = min(1, maxNorm / (n + 1e-6)),  g ← coef·g.
 * Dinomaly (dinomaly.md §3) clips to 0.1 before each step. Stays on the device (no sync).
 * Returns new gradient tensors and the pre-clip norm; the caller disposes both (inputs untouched).
 */
export function clipByGlobalNorm(grads: NamedGrads, maxNorm: number): { grads: tf.NamedTensorMap; norm: tf.Scalar } {
  if (!(maxNorm > 0)) throw new RangeError(`clipByGlobalNorm: maxNorm must be > 0, got ${maxNorm}`);
  return tf.tidy(() => {
    const norm = globalNorm(grads);
    const coef = tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1);
    const out: tf.NamedTensorMap = {};
    for (const [k, g] of present(grads)) out[k] = tf.mul(g, coef);
    return { grads: out, norm };
  });
}
