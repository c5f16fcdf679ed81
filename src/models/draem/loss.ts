import * as tf from '@tensorflow/tfjs';
import { focalLoss } from '../../nn/losses/focalLoss.js';
import { DRAEM_SSIM, ssimLoss } from '../../nn/losses/ssim.js';

/** The three terms of DRAEM's loss and their sum (all weights 1). */
export interface DraemLossTerms {
  total: tf.Scalar;
  l2: tf.Scalar;
  ssim: tf.Scalar;
  focal: tf.Scalar;
}

/**
 * L = MSE(I_r, I) + (1 − SSIM(I_r, I)) + Focal(P, M_a) (draem.md §3, train_DRAEM.py):
 *  - MSE: torch.nn.MSELoss, mean over every element; the target I is the clean (possibly rotated)
 *    image, not the augmented input;
 *  - SSIM: loss.py SSIM with the reconstruction as FIRST argument (its range decides L), window 11,
 *    σ 1.5, zero padding (DRAEM_SSIM);
 *  - focal: loss.py FocalLoss on softmax probabilities, γ 2, α = 1, smoothing 1e-5, target = the
 *    simulated anomaly mask M_a.
 * `reconstruction`, `clean`: [N,H,W,3]; `probs`: softmax [N,H,W,2]; `mask`: [N,H,W,1] of 0/1.
 */
export function draemLoss(reconstruction: tf.Tensor4D, clean: tf.Tensor4D, probs: tf.Tensor4D, mask: tf.Tensor4D): DraemLossTerms {
  return tf.tidy(() => {
    const l2 = tf.mean(tf.squaredDifference(reconstruction, clean)) as tf.Scalar;
    const ssim = ssimLoss(reconstruction, clean, DRAEM_SSIM);
    const focal = focalLoss(probs, mask, { gamma: 2, smooth: 1e-5 });
    const total = tf.addN([l2, ssim, focal]) as tf.Scalar;
    return { total, l2, ssim, focal };
  });
}
