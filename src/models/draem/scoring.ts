import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { meanFilter2d } from '../../nn/layers/smoothing.js';

/**
 * DRAEM's scoring (draem.md §4; test_DRAEM.py):
 *  - pixel anomaly map = P[:, 1], the softmax anomaly channel, unsmoothed;
 *  - image score = max over pixels of that map after a k×k mean filter, stride 1, zero padding
 *    k//2 COUNTED in the average (F.avg_pool2d's default count_include_pad=True), so responses at
 *    the border are attenuated: one hot pixel scores 1/k² wherever it is.
 * meanFilter2d pads explicitly and pools 'valid' because tf's avgPool 'same' would leave the
 * padding out of the divisor (a corner pixel would score 1/121 instead of 1/441 at k = 21).
 */

/** Anomaly channel of the segmentation softmax: [N,H,W,2] → [N,H,W]. */
export function anomalyMap(probs: tf.Tensor4D): tf.Tensor3D {
  return tf.tidy(() => {
    const [n, h, w] = probs.shape;
    return tf.slice(probs, [0, 0, 0, 1], [n, h, w, 1]).reshape([n, h, w]) as tf.Tensor3D;
  });
}

/** Image scores [N] from anomaly maps [N,H,W]: max of the k×k zero-padded mean filter. */
export function imageScores(maps: tf.Tensor3D, filterSize: number): tf.Tensor1D {
  if (!Number.isInteger(filterSize) || filterSize < 1 || filterSize % 2 !== 1) {
    throw new ConfigError(`DRAEM scoreFilterSize must be a positive odd integer, got ${filterSize}`);
  }
  return tf.tidy(() => {
    const [n, h, w] = maps.shape;
    const smoothed = meanFilter2d(maps.reshape([n, h, w, 1]) as tf.Tensor4D, filterSize);
    return tf.max(smoothed.reshape([n, h * w]), 1) as tf.Tensor1D;
  });
}
