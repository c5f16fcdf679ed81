/**
 * Gradient overrides for Conv2D and DepthwiseConv2dNative that add dilation > 1.
 *
 * tfjs-core 4.22's gradients for both kernels assert `dilations == 1` ("dilation rates greater than 1
 * are not yet supported in gradients"), on every backend. The gradient registry is global (not per
 * backend), so an override must be correct everywhere: for dilation 1 we delegate to the original
 * tfjs gradient (native backprop kernels on tfjs-node/cpu; on wasm those resolve to the forward-conv
 * kernels in conv-kernels.ts), and for dilation > 1 (stride is then 1, tfjs forbids both) we compute
 * both gradients with the forward-conv formulas of conv-math.ts, which are plain tf ops and so run
 * and differentiate on any backend:
 *     dx = dy ⋆ flip(wᵀ) with dilation d and padding (k-1)·d - pad
 *     dW = xᵀ ⋆ dyᵀ with stride d (the forward dilation) and dilation 1 (the forward stride)
 */
import * as tf from '@tensorflow/tfjs';
import {
  conv2dFilterGrad,
  conv2dInputGrad,
  depthwiseFilterGrad,
  depthwiseInputGrad,
  geometryFromConvInfo,
  asPair,
} from './conv-math.js';
import { fromNhwc, isOurs, mark, toNhwc } from './kernel-util.js';

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

type GradFunc = tf.GradConfig['gradFunc'];

function isUnitDilation(d: ConvAttrs['dilations']): boolean {
  const [h, w] = asPair(d);
  return h === 1 && w === 1;
}

function conv2DGrad(original: GradFunc | null): GradFunc {
  return (dy, saved, attrs) => {
    const a = attrs as unknown as ConvAttrs;
    if (original != null && isUnitDilation(a.dilations)) return original(dy, saved, attrs);
    const [x0, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const fmt = a.dataFormat;
    const x = (): tf.Tensor4D => toNhwc(x0, fmt);
    const g = (): tf.Tensor4D => toNhwc(dy as tf.Tensor4D, fmt);
    // Padding given in NCHW axis order is reordered to NHWC for the geometry.
    const pad = fmt === 'NCHW' && Array.isArray(a.pad)
      ? ([a.pad[0], a.pad[2], a.pad[3], a.pad[1]] as tf.backend_util.ExplicitPadding)
      : a.pad;
    const xs = x().shape;
    const info = tf.backend_util.computeConv2DInfo(
      xs, filter.shape, a.strides, a.dilations ?? 1, pad, a.dimRoundingMode, false, 'channelsLast',
    );
    const geo = geometryFromConvInfo(info);
    return {
      x: () => fromNhwc(conv2dInputGrad(g(), filter, xs, geo), fmt),
      filter: () => conv2dFilterGrad(x(), g(), filter.shape, geo),
    };
  };
}

function depthwiseGrad(original: GradFunc | null): GradFunc {
  return (dy, saved, attrs) => {
    const a = attrs as unknown as ConvAttrs;
    if (original != null && isUnitDilation(a.dilations)) return original(dy, saved, attrs);
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const info = tf.backend_util.computeConv2DInfo(
      x.shape, filter.shape, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, true, 'channelsLast',
    );
    const geo = geometryFromConvInfo(info);
    const d = dy as tf.Tensor4D;
    return {
      x: () => depthwiseInputGrad(d, filter, x.shape, geo),
      filter: () => depthwiseFilterGrad(x, d, filter.shape, geo),
    };
  };
}

/**
 * Registers the overrides once. The original config is captured only if it is not already ours,
 * so repeated calls never wrap our own function (which would recurse).
 */
export function registerConvGradients(): void {
  const specs: [string, (o: GradFunc | null) => GradFunc][] = [
    [tf.Conv2D, conv2DGrad],
    [tf.DepthwiseConv2dNative, depthwiseGrad],
  ];
  for (const [kernelName, make] of specs) {
    const current = tf.getGradient(kernelName);
    if (isOurs(current)) continue;
    tf.registerGradient(
      mark<tf.GradConfig>({
        kernelName,
        inputsToSave: ['x', 'filter'],
        gradFunc: make(current?.gradFunc ?? null),
      }),
    );
  }
}
