import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';

/**
 * Bicubic resampling as PyTorch's F.interpolate(mode='bicubic', align_corners=False,
 * antialias=False): Keys' cubic convolution with a = −0.75, source coordinate
 * (dst + 0.5)·scale − 0.5 (not clamped at 0 for cubic), taps at floor(src) − 1 … floor(src) + 2
 * with indices clamped to the border. tfjs has no bicubic resize; DINOv2 needs it once per input
 * size to resample its positional embedding (dinomaly.md §2, DINOv2 interpolate_pos_encoding).
 *
 * `scale` is input/output per output pixel. torch uses 1/scale_factor when a scale factor is
 * passed (DINOv2's offset form) and in/out when a size is passed.
 */
const A = -0.75;

function cubicWeights(t: number): [number, number, number, number] {
  // torch's upsample_get_cubic_coefficients: cubic_convolution2 for the outer taps, 1 for the inner.
  const c1 = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1;
  const c2 = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)];
}

/** [outSize, inSize] interpolation matrix along one axis. */
export function bicubicMatrix(inSize: number, outSize: number, scale: number): Float32Array {
  if (!(inSize >= 1 && outSize >= 1 && Number.isInteger(inSize) && Number.isInteger(outSize))) {
    throw new ConfigError(`bicubic resize: sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  if (!(scale > 0 && Number.isFinite(scale))) throw new ConfigError(`bicubic resize: scale must be positive, got ${scale}`);
  const m = new Float32Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    // float32 as torch's opmath for float inputs
    const src = Math.fround(Math.fround(scale * (o + 0.5)) - 0.5);
    const i0 = Math.floor(src);
    const w = cubicWeights(Math.fround(src - i0));
    for (let k = 0; k < 4; k++) {
      const idx = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      m[o * inSize + idx] += w[k];
    }
  }
  return m;
}

export interface BicubicResizeOptions {
  /** Output size [h, w]. */
  size: [number, number];
  /**
   * torch's scale_factor per axis (output/input), when the caller passed one: then the source
   * coordinate uses 1/scaleFactor rather than in/out (DINOv2's 0.1 offset relies on this).
   */
  scaleFactor?: [number, number];
}

/** Bicubic resize of [H, W, C] (one image, channels last) to [h, w, C]. A new tensor. */
export function bicubicResize(x: tf.Tensor3D, opts: BicubicResizeOptions): tf.Tensor3D {
  const [H, W, C] = x.shape;
  const [h, w] = opts.size;
  const sy = opts.scaleFactor ? 1 / opts.scaleFactor[0] : H / h;
  const sx = opts.scaleFactor ? 1 / opts.scaleFactor[1] : W / w;
  const my = tf.tensor2d(bicubicMatrix(H, h, sy), [h, H]);
  const mx = tf.tensor2d(bicubicMatrix(W, w, sx), [w, W]);
  try {
    return tf.tidy(() => {
      const rows = tf.matMul(my, tf.reshape(x, [H, W * C])).reshape([h, W, C]); // [h, W, C]
      const cols = tf.matMul(mx, tf.reshape(tf.transpose(rows, [1, 0, 2]), [W, h * C])); // [w, h*C]
      return tf.transpose(tf.reshape(cols, [w, h, C]), [1, 0, 2]) as tf.Tensor3D;
    });
  } finally {
    my.dispose();
    mx.dispose();
  }
}
