import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Layer } from '../module.js';

/**
 * Border handling, named as numpy.pad / tf.mirrorPad / torch.nn.functional.pad name them
 * (scipy.ndimage uses different words — mapping in brackets):
 *  - 'symmetric': d c b a | a b c d | d c b a — edge sample repeated [scipy 'reflect', the
 *    gaussian_filter default; TF 'SYMMETRIC']. PatchCore / GLASS maps (patchcore.md §4, glass.md).
 *  - 'reflect':   d c b | a b c d | c b a — edge not repeated [scipy 'mirror'; torch/kornia
 *    'reflect'; TF 'REFLECT']. DDAD's kornia blur (ddad.md) uses this.
 *  - 'constant':  zeros (or `cval`) [scipy 'constant'; torch zero padding]. SSIM, Dinomaly's 5×5.
 *  - 'edge':      a a a | a b c d | d d d [scipy 'nearest'; torch 'replicate'].
 *  - 'wrap':      b c d | a b c d | a b c [scipy 'wrap'; torch 'circular'].
 */
export type BorderMode = 'symmetric' | 'reflect' | 'constant' | 'edge' | 'wrap';

/** scipy.ndimage.gaussian_filter's radius: int(truncate·σ + 0.5) (truncate 4 → 16 for σ = 4, 33 taps). */
export function scipyGaussianRadius(sigma: number, truncate = 4): number {
  return Math.floor(truncate * sigma + 0.5);
}

/**
 * Normalised 1-D Gaussian taps exp(−x²/2σ²)/Σ over x = −(size−1)/2 … (size−1)/2, computed in
 * float64 (scipy `_gaussian_kernel1d`, kornia `gaussian`, DRAEM `gaussian(window_size, sigma)`;
 * identical for odd sizes). Default size = 2·scipyGaussianRadius(σ)+1.
 */
export function gaussianKernel1d(sigma: number, size?: number): Float64Array {
  if (!(sigma > 0)) throw new ConfigError(`gaussian kernel: sigma must be > 0, got ${sigma}`);
  const k = size ?? 2 * scipyGaussianRadius(sigma) + 1;
  if (!Number.isInteger(k) || k < 1) throw new ConfigError(`gaussian kernel: size must be a positive integer, got ${k}`);
  const out = new Float64Array(k);
  const c = (k - 1) / 2;
  let sum = 0;
  for (let i = 0; i < k; i++) {
    out[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
    sum += out[i];
  }
  for (let i = 0; i < k; i++) out[i] /= sum;
  return out;
}

/** Index of padded position j (−p ≤ j < n+p) in an axis of length n. */
function borderIndex(j: number, n: number, mode: Exclude<BorderMode, 'constant'>): number {
  const mod = (a: number, b: number) => ((a % b) + b) % b;
  switch (mode) {
    case 'edge':
      return Math.min(n - 1, Math.max(0, j));
    case 'wrap':
      return mod(j, n);
    case 'symmetric': {
      const m = mod(j, 2 * n);
      return m < n ? m : 2 * n - 1 - m;
    }
    case 'reflect': {
      if (n === 1) return 0;
      const m = mod(j, 2 * n - 2);
      return m < n ? m : 2 * n - 2 - m;
    }
  }
}

/**
 * Pad H (before, after) and W of an NHWC tensor with a border mode. Differentiable for
 * 'constant' (tf.pad) and for 'symmetric'/'reflect' when the pad fits (tf.mirrorPad); other
 * cases gather indices (any pad size, like scipy's repeated reflection).
 */
export function padBorder(x: tf.Tensor4D, ph: [number, number], pw: [number, number], mode: BorderMode, cval = 0): tf.Tensor4D {
  if (ph[0] === 0 && ph[1] === 0 && pw[0] === 0 && pw[1] === 0) return x;
  return tf.tidy(() => {
    if (mode === 'constant') return tf.pad(x, [[0, 0], ph, pw, [0, 0]], cval);
    const [, h, w] = x.shape;
    const limit = mode === 'symmetric' ? 0 : 1; // mirrorPad: symmetric needs p ≤ n, reflect p ≤ n−1
    if ((mode === 'symmetric' || mode === 'reflect') && Math.max(...ph) <= h - limit && Math.max(...pw) <= w - limit) {
      return tf.mirrorPad(x, [[0, 0], ph, pw, [0, 0]], mode);
    }
    const rows = Array.from({ length: h + ph[0] + ph[1] }, (_, j) => borderIndex(j - ph[0], h, mode));
    const cols = Array.from({ length: w + pw[0] + pw[1] }, (_, j) => borderIndex(j - pw[0], w, mode));
    const r = tf.gather(x, tf.tensor1d(rows, 'int32'), 1);
    return tf.gather(r, tf.tensor1d(cols, 'int32'), 2) as tf.Tensor4D;
  });
}

/**
 * Per-channel separable filtering of NHWC with 1-D taps along H then W, 'valid' on an already
 * padded input (SSIM windows, Gaussian blurs). Two implementations, same sums:
 *  - banded matrices (default up to MATMUL_MAX_SIDE px): each 1-D pass is one matMul with an
 *    [in, out] Toeplitz matrix, B[j + t, j] = taps[t]. It spends in/k times the MACs, but
 *    matMul (and its gradient, also matMuls) runs on the SIMD GEMM at 10–25 GMAC/s, while a
 *    1-channel conv2d uses 1 of 8 SIMD lanes: DRAEM's SSIM at 128², batch 4 spent 430 ms of a
 *    4.5 s step in these convolutions (0.1–0.3 GMAC/s).
 *  - 1-channel conv2d with channels folded into the batch (larger images, where the in/k
 *    factor would dominate).
 * The zeros in the band add exactly 0, so both give the taps' sum up to float rounding order.
 */
export function separableFilterValid(x: tf.Tensor4D, tapsH: ArrayLike<number>, tapsW: ArrayLike<number>): tf.Tensor4D {
  const [, h, w] = x.shape;
  return h <= MATMUL_MAX_SIDE && w <= MATMUL_MAX_SIDE ? separableByMatMul(x, tapsH, tapsW) : separableByConv(x, tapsH, tapsW);
}

/** Side above which separableFilterValid convolves instead of multiplying by banded matrices. */
export const MATMUL_MAX_SIDE = 512;

/** [n, n − k + 1] banded (Toeplitz) matrix of a 'valid' 1-D correlation with `taps`. */
function bandMatrix(n: number, taps: ArrayLike<number>): tf.Tensor2D {
  const k = taps.length;
  const out = n - k + 1;
  const m = new Float32Array(n * out);
  for (let j = 0; j < out; j++) for (let t = 0; t < k; t++) m[(j + t) * out + j] = taps[t];
  return tf.tensor2d(m, [n, out]);
}

export function separableByMatMul(x: tf.Tensor4D, tapsH: ArrayLike<number>, tapsW: ArrayLike<number>): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const ho = h - tapsH.length + 1;
    const wo = w - tapsW.length + 1;
    // [n, h, w, c] → [n, c, h, w]: W pass over rows, then [n, c, wo, h]: H pass, then back.
    const xr = c === 1 ? x.reshape([n * h, w]) : tf.transpose(x, [0, 3, 1, 2]).reshape([n * c * h, w]);
    const yw = tf.matMul(xr as tf.Tensor2D, bandMatrix(w, tapsW)).reshape([n * c, h, wo]);
    const yt = tf.transpose(yw, [0, 2, 1]).reshape([n * c * wo, h]) as tf.Tensor2D;
    const yh = tf.matMul(yt, bandMatrix(h, tapsH)).reshape([n, c, wo, ho]);
    return tf.transpose(yh, [0, 3, 2, 1]) as tf.Tensor4D;
  });
}

export function separableByConv(x: tf.Tensor4D, tapsH: ArrayLike<number>, tapsW: ArrayLike<number>): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const xb = (c === 1 ? x : tf.transpose(x, [0, 3, 1, 2])).reshape([n * c, h, w, 1]) as tf.Tensor4D;
    const kh = tf.tensor4d(Float32Array.from(tapsH), [tapsH.length, 1, 1, 1]);
    const kw = tf.tensor4d(Float32Array.from(tapsW), [1, tapsW.length, 1, 1]);
    const y = tf.conv2d(tf.conv2d(xb, kh, 1, 'valid'), kw, 1, 'valid');
    const [, ho, wo] = y.shape;
    const yr = y.reshape([n, c, ho, wo]);
    return (c === 1 ? yr.reshape([n, ho, wo, 1]) : tf.transpose(yr, [0, 2, 3, 1])) as tf.Tensor4D;
  });
}

export interface GaussianBlurOptions {
  /** Taps per axis (odd); default 2·int(truncate·σ + 0.5)+1 as scipy. kornia/DRAEM give it explicitly. */
  kernelSize?: number;
  /** scipy truncate (default 4.0); ignored when kernelSize is given. */
  truncate?: number;
  /** Default 'symmetric' = scipy.ndimage.gaussian_filter's default 'reflect'. */
  mode?: BorderMode;
  cval?: number;
}

/**
 * Gaussian blur of an NHWC batch, each channel separately, output the input size.
 * Defaults reproduce scipy.ndimage.gaussian_filter(x, σ) (truncate 4, 'reflect' border):
 * PatchCore σ = 4 → 33 taps (patchcore.md §4). Dinomaly: `{kernelSize: 5, mode: 'constant'}`;
 * DDAD (kornia, 33 taps, torch reflect): `{kernelSize: 33, mode: 'reflect'}`.
 */
export function gaussianBlur2d(x: tf.Tensor4D, sigma: number, opts: GaussianBlurOptions = {}): tf.Tensor4D {
  const size = opts.kernelSize ?? 2 * scipyGaussianRadius(sigma, opts.truncate ?? 4) + 1;
  if (size % 2 !== 1) throw new ConfigError(`gaussianBlur2d: kernelSize must be odd, got ${size}`);
  const taps = gaussianKernel1d(sigma, size);
  const r = (size - 1) / 2;
  return tf.tidy(() => separableFilterValid(padBorder(x, [r, r], [r, r], opts.mode ?? 'symmetric', opts.cval), taps, taps));
}

/**
 * size×size mean filter, stride 1, zero padding size//2 COUNTED in the average (PyTorch
 * avg_pool2d count_include_pad=True): DRAEM's image score (draem.md §4, 21×21) and RIAD's map
 * smoothing (riad.md §4). Implemented as explicit zero pad + 'valid' avgPool, so the divisor is
 * always size² (tf 'same' pooling would exclude the padding). Odd sizes only.
 */
export function meanFilter2d(x: tf.Tensor4D, size: number): tf.Tensor4D {
  if (!Number.isInteger(size) || size < 1 || size % 2 !== 1) throw new ConfigError(`meanFilter2d: size must be a positive odd integer, got ${size}`);
  const p = (size - 1) / 2;
  return tf.tidy(() => tf.avgPool(p > 0 ? tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]) : x, size, 1, 'valid'));
}

/** Layer form of gaussianBlur2d (no parameters). */
export class GaussianBlur2d extends Layer<tf.Tensor4D, tf.Tensor4D> {
  constructor(
    readonly sigma: number,
    readonly opts: GaussianBlurOptions = {},
  ) {
    super();
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return gaussianBlur2d(x, this.sigma, this.opts);
  }
}

/** Layer form of meanFilter2d (no parameters). */
export class MeanFilter2d extends Layer<tf.Tensor4D, tf.Tensor4D> {
  constructor(readonly size: number) {
    super();
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return meanFilter2d(x, this.size);
  }
}

// ---------------------------------------------------------------- resampling

/**
 * Row-interpolation matrix R [outSize, inSize] of PyTorch's bilinear F.interpolate along one axis,
 * so that out = R · in. alignCorners=false: src = (dst + ½)·in/out − ½, clamped at 0 (half-pixel
 * centres); true: src = dst·(in − 1)/(out − 1). Then i0 = ⌊src⌋, i1 = min(i0 + 1, in − 1), λ = src − i0.
 */
export function bilinearMatrix(inSize: number, outSize: number, alignCorners: boolean): Float32Array {
  const m = new Float32Array(outSize * inSize);
  for (let d = 0; d < outSize; d++) {
    let src: number;
    if (alignCorners) src = outSize > 1 ? (d * (inSize - 1)) / (outSize - 1) : 0;
    else src = Math.max(0, ((d + 0.5) * inSize) / outSize - 0.5);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const lam = src - i0;
    m[d * inSize + i0] += 1 - lam;
    m[d * inSize + i1] += lam;
  }
  return m;
}

/**
 * Bilinear resize of NHWC with PyTorch semantics (F.interpolate(mode='bilinear',
 * align_corners=alignCorners)) and a CORRECT gradient. The forward pass is tf.image.resizeBilinear;
 * the backward pass applies the transposed interpolation matrices, because tfjs 4.22's
 * ResizeBilinearGrad ignores halfPixelCenters (wrong gradients for align_corners=False on every
 * backend) and, on the cpu backend, throws for non-square inputs.
 */
export function resizeBilinear(x: tf.Tensor4D, size: [number, number], alignCorners = false): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const [oh, ow] = size;
  if (oh === h && ow === w) return x.clone();
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor4D;
    return {
      value: tf.image.resizeBilinear(xi, [oh, ow], alignCorners, !alignCorners) as tf.Tensor,
      gradFunc: (dy: tf.Tensor) =>
        tf.tidy(() => {
          const g = dy as tf.Tensor4D;
          const rw = tf.tensor2d(bilinearMatrix(w, ow, alignCorners), [ow, w]);
          const rh = tf.tensor2d(bilinearMatrix(h, oh, alignCorners), [oh, h]);
          // [n,oh,ow,c] → [n·c·oh, ow] · Rw → [n·c, oh, w] → [n·c·w, oh] · Rh → [n, c, w, h] → NHWC
          const g1 = tf.matMul(tf.transpose(g, [0, 3, 1, 2]).reshape([n * c * oh, ow]), rw).reshape([n * c, oh, w]);
          const g2 = tf.matMul(tf.transpose(g1, [0, 2, 1]).reshape([n * c * w, oh]), rh).reshape([n, c, w, h]);
          return tf.transpose(g2, [0, 3, 2, 1]);
        }),
    };
  });
  return op(x) as tf.Tensor4D;
}
