import * as tf from '@tensorflow/tfjs';
import { padBorder, resizeBilinear, separableFilterValid } from '../layers/smoothing.js';

export interface MsgmsOptions {
  /** Number of scales: the image and numScales−1 successive 2×2 average-pooled copies (riad.md §3: 4). */
  numScales?: number;
  /** GMSD constant (default 0.0026, riad.md §3). */
  c?: number;
}

/**
 * Gradient magnitude per channel with the Prewitt kernels of riad.md §3, zero padding 1:
 *   hx = (1/3)[[1,0,−1],[1,0,−1],[1,0,−1]],  hy = (1/3)[[1,1,1],[0,0,0],[−1,−1,−1]],
 *   g = √((x∗hx)² + (x∗hy)² + 1e-12)   (the 1e-12 keeps √ differentiable at 0, as taikiinoue45).
 * Both kernels are separable: hx = [1,1,1]ᵀ/3 ⊗ [1,0,−1], hy = [1,0,−1]ᵀ ⊗ [1,1,1]/3 (cross-correlation, as PyTorch conv2d).
 */
export function gradientMagnitude(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const xp = padBorder(x, [1, 1], [1, 1], 'constant');
    const gx = separableFilterValid(xp, [1 / 3, 1 / 3, 1 / 3], [1, 0, -1]);
    const gy = separableFilterValid(xp, [1, 0, -1], [1 / 3, 1 / 3, 1 / 3]);
    return tf.sqrt(tf.add(tf.add(tf.square(gx), tf.square(gy)), 1e-12)) as tf.Tensor4D;
  });
}

/** GMS(a, b) = (2·g(a)·g(b) + c) / (g(a)² + g(b)² + c + 1e-12), per pixel and channel (NHWC). */
export function gmsMap(a: tf.Tensor4D, b: tf.Tensor4D, c = 0.0026): tf.Tensor4D {
  return tf.tidy(() => {
    const g1 = gradientMagnitude(a);
    const g2 = gradientMagnitude(b);
    const num = tf.add(tf.mul(tf.mul(g1, g2), 2), c);
    const den = tf.add(tf.add(tf.add(tf.square(g1), tf.square(g2)), c), 1e-12);
    return tf.div(num, den) as tf.Tensor4D;
  });
}

/**
 * 1 − (1/S)·Σ_s upsample(GMS_s), per pixel and channel, NHWC at the input size: scale s is the
 * pair 2×2-average-pooled s times (floor sizes, as F.avg_pool2d), its GMS map resized back
 * bilinearly with half-pixel centres (F.interpolate(align_corners=False)). taikiinoue45/RIAD
 * MSGMSLoss (riad.md §3–4).
 */
function msgmsPerChannel(a: tf.Tensor4D, b: tf.Tensor4D, opts: MsgmsOptions): tf.Tensor4D {
  const scales = opts.numScales ?? 4;
  const c = opts.c ?? 0.0026;
  const [, h, w] = a.shape;
  return tf.tidy(() => {
    let x = a;
    let y = b;
    let acc: tf.Tensor4D | null = null;
    for (let s = 0; s < scales; s++) {
      if (s > 0) {
        x = tf.avgPool(x, 2, 2, 'valid');
        y = tf.avgPool(y, 2, 2, 'valid');
      }
      let g = gmsMap(x, y, c);
      if (s > 0) g = resizeBilinear(g, [h, w], false);
      acc = acc === null ? g : (tf.add(acc, g) as tf.Tensor4D);
    }
    return tf.sub(1, tf.div(acc as tf.Tensor4D, scales)) as tf.Tensor4D;
  });
}

/** MSGMS loss: mean over batch, pixels and channels of 1 − mean-over-scales GMS (RIAD L_MSGMS). */
export function msgmsLoss(a: tf.Tensor4D, b: tf.Tensor4D, opts: MsgmsOptions = {}): tf.Scalar {
  return tf.tidy(() => tf.mean(msgmsPerChannel(a, b, opts)) as tf.Scalar);
}

/** Per-pixel MSGMS anomaly map [N, H, W, 1]: channel mean of 1 − mean-over-scales GMS (riad.md §4 step 2). */
export function msgmsMap(a: tf.Tensor4D, b: tf.Tensor4D, opts: MsgmsOptions = {}): tf.Tensor4D {
  return tf.tidy(() => tf.mean(msgmsPerChannel(a, b, opts), 3, true) as tf.Tensor4D);
}
