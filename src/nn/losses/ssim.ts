import * as tf from '@tensorflow/tfjs';
import { gaussianKernel1d, padBorder, separableFilterValid } from '../layers/smoothing.js';

export interface SsimOptions {
  /** Gaussian window size (default 11). */
  windowSize?: number;
  /** Gaussian σ (default 1.5). */
  sigma?: number;
  /**
   * Dynamic range L in C1 = (0.01L)², C2 = (0.03L)². A number, or 'draem-auto': DRAEM loss.py's
   * rule on the FIRST argument — max > 128 → max_val 255 else 1; min < −0.5 → min_val −1 else 0;
   * L = max_val − min_val (draem.md §3). Default 1.
   */
  dataRange?: number | 'draem-auto';
  /** Added to the denominator (taikiinoue45/RIAD adds 1e-12; DRAEM adds nothing). Default 0. */
  eps?: number;
}

/** DRAEM's SSIM (draem.md §3): window 11, σ 1.5, zero pad 5, L from the reconstruction's range. */
export const DRAEM_SSIM: Readonly<SsimOptions> = { windowSize: 11, sigma: 1.5, dataRange: 'draem-auto', eps: 0 };
/** RIAD's SSIM (riad.md §3, taikiinoue45): window 11, σ 1.5, zero pad 5, C1 = 0.01², C2 = 0.03² fixed, +1e-12. */
export const RIAD_SSIM: Readonly<SsimOptions> = { windowSize: 11, sigma: 1.5, dataRange: 1, eps: 1e-12 };

/**
 * Per-pixel, per-channel SSIM map of two NHWC batches (same shape), Wang et al. 2004 with a
 * Gaussian window applied per channel and ZERO padding of windowSize//2, so the map has the
 * input size and border pixels see the padding (as the PyTorch references do):
 *   μx = w∗x, σx² = w∗x² − μx², σxy = w∗xy − μxμy,
 *   SSIM = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2) + eps).
 * Differentiable w.r.t. both inputs with ops the wasm backend has (conv2d + its input gradient).
 */
export function ssimMap(x: tf.Tensor4D, y: tf.Tensor4D, opts: SsimOptions = {}): tf.Tensor4D {
  const ws = opts.windowSize ?? 11;
  const taps = gaussianKernel1d(opts.sigma ?? 1.5, ws);
  const pad = Math.floor(ws / 2);
  // Odd windows keep the size; an even window (unused by the specs) shrinks by one like PyTorch.
  const blur = (t: tf.Tensor4D) => separableFilterValid(padBorder(t, [pad, pad], [pad, pad], 'constant'), taps, taps);
  return tf.tidy(() => {
    let c1: number;
    let c2: number;
    const range = opts.dataRange ?? 1;
    if (range === 'draem-auto') {
      // Data-dependent constant (pytorch_ssim as DRAEM uses it): L = (max > 128 ? 255 : 1) −
      // (min < −0.5 ? −1 : 0). Read back as numbers so it is a constant of the graph: on the device
      // (tf.step of max/min) tfjs would still differentiate tf.max/tf.min, an Equal over the whole
      // image each (25 ms per call on wasm at 64², batch 8).
      const [hi, lo] = tf.tidy(() => tf.stack([tf.max(x), tf.min(x)]).dataSync());
      const l = (hi > 128 ? 255 : 1) - (lo < -0.5 ? -1 : 0);
      c1 = (0.01 * l) ** 2;
      c2 = (0.03 * l) ** 2;
    } else {
      c1 = (0.01 * range) ** 2;
      c2 = (0.03 * range) ** 2;
    }
    const mx = blur(x);
    const my = blur(y);
    const mx2 = tf.mul(mx, mx);
    const my2 = tf.mul(my, my);
    const mxy = tf.mul(mx, my);
    const sx = tf.sub(blur(tf.mul(x, x)), mx2);
    const sy = tf.sub(blur(tf.mul(y, y)), my2);
    const sxy = tf.sub(blur(tf.mul(x, y)), mxy);
    const v1 = tf.add(tf.mul(sxy, 2), c2);
    const v2 = tf.add(tf.add(sx, sy), c2);
    const num = tf.mul(tf.add(tf.mul(mxy, 2), c1), v1);
    let den = tf.mul(tf.add(tf.add(mx2, my2), c1), v2);
    if (opts.eps) den = tf.add(den, opts.eps);
    return tf.div(num, den) as tf.Tensor4D;
  });
}

/** Mean SSIM over batch, pixels and channels. */
export function ssim(x: tf.Tensor4D, y: tf.Tensor4D, opts: SsimOptions = {}): tf.Scalar {
  return tf.tidy(() => tf.mean(ssimMap(x, y, opts)) as tf.Scalar);
}

/** 1 − mean SSIM (DRAEM's and RIAD's L_SSIM); pass DRAEM_SSIM or RIAD_SSIM for their exact variants. */
export function ssimLoss(x: tf.Tensor4D, y: tf.Tensor4D, opts: SsimOptions = {}): tf.Scalar {
  return tf.tidy(() => tf.sub(1, ssim(x, y, opts)) as tf.Scalar);
}
