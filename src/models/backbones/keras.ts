import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../../nn/layers/conv.js';
import { BatchNorm2d } from '../../nn/layers/norm.js';
import { layerFusionEnabled } from '../../nn/fusion.js';

/**
 * Keras/TensorFlow layer semantics for networks converted from Keras (TF.js Layers models).
 *
 * Keras `padding: 'same'` is not PyTorch's symmetric padding: TF pads
 * total = max((ceil(n/s) - 1)*s + k_eff - n, 0) per axis, floor(total/2) before and the rest
 * after. A stride-2 3x3 conv on an even size therefore pads 0 before and 1 after: tfjs 'same'
 * does exactly this; with layer fusion off we pad explicitly with these amounts and convolve 'valid'.
 */
export function kerasSamePads(size: number, kernel: number, stride: number, dilation = 1): [number, number] {
  const out = Math.ceil(size / stride);
  const eff = (kernel - 1) * dilation + 1;
  const total = Math.max((out - 1) * stride + eff - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/**
 * Conv2D / DepthwiseConv2D with Keras 'same' or 'valid' padding. Weight stored as Keras/tfjs
 * stores it ([kh, kw, in, out], depthwise [kh, kw, C, 1]), under our name `weight` (Keras
 * `kernel` / `depthwise_kernel`), bias `bias`.
 */
export class KerasConv2d extends Conv2d {
  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number,
    readonly kerasOpts: { stride?: number; padding?: 'same' | 'valid'; depthwise?: boolean; bias?: boolean } = {},
  ) {
    super(inChannels, outChannels, kernelSize, {
      stride: kerasOpts.stride ?? 1,
      padding: 'valid',
      groups: kerasOpts.depthwise ? inChannels : 1,
      bias: kerasOpts.bias ?? false,
    });
  }

  /**
   * Keras 'same' is TF's 'same', i.e. tfjs 'same' exactly: with layer fusion on (src/nn/fusion.ts)
   * the kernel pads implicitly, otherwise the input is padded explicitly (kerasSamePads).
   */
  override kernelInput(x: tf.Tensor4D): { x: tf.Tensor4D; pad: 'same' | 'valid' } {
    if ((this.kerasOpts.padding ?? 'same') === 'valid') return super.kernelInput(x);
    if (layerFusionEnabled()) return { x, pad: 'same' };
    const [, h, w] = x.shape;
    const ph = kerasSamePads(h, this.kernelSize, this.stride, this.dilation);
    const pw = kerasSamePads(w, this.kernelSize, this.stride, this.dilation);
    return { x: ph[0] + ph[1] + pw[0] + pw[1] > 0 ? tf.pad(x, [[0, 0], ph, pw, [0, 0]]) : x, pad: 'valid' };
  }
}

/** Keras BatchNormalization (inference): epsilon 1e-3 by default; Keras momentum 0.99 = torch 0.01. */
export function kerasBatchNorm(channels: number, epsilon = 1e-3): BatchNorm2d {
  return new BatchNorm2d(channels, epsilon, 0.01);
}

/** Keras MaxPooling2D(pool, strides, padding='same'): TF pads after, with -inf, as tfjs 'same'. */
export function kerasMaxPoolSame(x: tf.Tensor4D, pool: number, stride: number): tf.Tensor4D {
  return tf.maxPool(x, pool, stride, 'same');
}
