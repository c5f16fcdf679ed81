import * as tf from '@tensorflow/tfjs';

export interface FocalOptions {
  /** Focusing parameter γ (DRAEM 2). */
  gamma?: number;
  /** Label smoothing / log guard (DRAEM 1e-5). */
  smooth?: number;
  /**
   * Per-class weights; normalised to sum 1 as in the reference (`alpha / alpha.sum()`). Default:
   * all ones, not normalised (DRAEM passes alpha=None → 1 for both classes).
   */
  alpha?: readonly number[];
}

/** Integer class map [N,H,W] from a mask [N,H,W] or [N,H,W,1] holding class indices (e.g. 0/1). */
function classIndices(target: tf.Tensor): tf.Tensor {
  const t = target.rank === 4 ? tf.squeeze(target, [3]) : target;
  return tf.cast(t, 'int32'); // PyTorch .long() truncates toward zero
}

/**
 * DRAEM's focal loss on softmax PROBABILITIES (draem.md §3; loss.py FocalLoss with alpha=None):
 * with C classes, one-hot clamped to [smooth/(C−1), 1 − smooth],
 *   p_t = Σ_c onehot_c · P_c + smooth,  loss = mean over pixels of −α_t (1 − p_t)^γ log p_t.
 * `probs` is NHWC [N,H,W,C]; `target` holds class indices [N,H,W] or [N,H,W,1].
 * Spec check: P = (0.9, 0.1), target 0 → p_t = 0.9(1−1e-5) + 0.1·1e-5 + 1e-5, loss ≈ 0.0010535.
 */
export function focalLoss(probs: tf.Tensor4D, target: tf.Tensor, opts: FocalOptions = {}): tf.Scalar {
  const gamma = opts.gamma ?? 2;
  const smooth = opts.smooth ?? 1e-5;
  const nc = probs.shape[3];
  return tf.tidy(() => {
    const idx = classIndices(target);
    const oh = tf.clipByValue(tf.cast(tf.oneHot(idx, nc), 'float32'), smooth / Math.max(1, nc - 1), 1 - smooth);
    const pt = tf.add(tf.sum(tf.mul(oh, probs), 3), smooth);
    let loss = tf.mul(tf.mul(tf.pow(tf.sub(1, pt), gamma), tf.log(pt)), -1);
    if (opts.alpha) {
      const a = Float32Array.from(opts.alpha);
      const s = a.reduce((p, v) => p + v, 0);
      const at = tf.gather(tf.tensor1d(a.map((v) => v / s)), idx);
      loss = tf.mul(loss, at);
    }
    return tf.mean(loss) as tf.Scalar;
  });
}

/**
 * kornia.losses.focal_loss on LOGITS (anomalib's DRAEM variant, draem.md §6, alpha 1):
 * mean over pixels of −α (1 − p_t)^γ log p_t with p_t = softmax(logits)_target, log via log_softmax.
 */
export function focalLossFromLogits(logits: tf.Tensor4D, target: tf.Tensor, opts: { gamma?: number; alpha?: number } = {}): tf.Scalar {
  const gamma = opts.gamma ?? 2;
  const alpha = opts.alpha ?? 1;
  const nc = logits.shape[3];
  return tf.tidy(() => {
    const oh = tf.cast(tf.oneHot(classIndices(target), nc), 'float32');
    const logp = tf.logSoftmax(logits, 3);
    const p = tf.exp(logp);
    const focal = tf.mul(tf.mul(tf.pow(tf.sub(1, p), gamma), logp), -alpha);
    return tf.mean(tf.sum(tf.mul(oh, focal), 3)) as tf.Scalar;
  });
}
