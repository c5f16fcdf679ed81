/**
 * Backward convolution KERNELS for the wasm backend, built from forward convolutions.
 *
 * Why kernels (and not only gradient overrides): tfjs-core's gradients for Conv2D, DepthwiseConv2dNative,
 * Conv2DBackpropInput and the customGrad of tf.fused.conv2d all call the ops conv2DBackpropInput /
 * conv2DBackpropFilter / depthwiseConv2dNativeBackprop{Input,Filter}, i.e. these kernels. Providing the
 * kernels fixes every caller at once, and tf.conv2dTranspose's FORWARD pass is the Conv2DBackpropInput
 * kernel, which only a kernel replacement can speed up (wasm's own runs < 1 GMAC/s).
 *
 * Why nested tf ops inside a kernelFunc are safe in tfjs 4.22: engine.runKernelFunc runs every kernel
 * with state.kernelDepth++ so nested ops are not recorded on the gradient tape (isTapeOn() requires
 * kernelDepth === 0) — the same mechanism tfjs uses for tf.customGrad forward functions, which are
 * arbitrary tf code run as one "kernel". The engine accepts a Tensor as a kernel output (it checks
 * `outInfo.rank != null`, kept for tfjs-node whose kernels return Tensors). We wrap each kernel in
 * tf.tidy so intermediates are freed and only the output survives; its memory is tracked exactly like a
 * kernel output (it is already a tracked Tensor), so tf.memory() stays flat.
 */
import * as tf from '@tensorflow/tfjs';
import {
  conv2dFilterGrad,
  conv2dInputGrad,
  depthwiseFilterGrad,
  depthwiseInputGrad,
  geometryFromConvInfo,
} from './conv-math.js';
import { asTensor4D, fromNhwc, input, mark, nhwcShape, Shape4, toNhwc } from './kernel-util.js';

type ConvPad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

interface BackpropFilterAttrs {
  strides: [number, number] | number;
  pad: ConvPad;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: Rounding;
  dilations?: [number, number] | number;
  filterShape: Shape4;
}

interface BackpropInputAttrs {
  strides: [number, number] | number;
  pad: ConvPad;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: Rounding;
  dilations?: [number, number] | number;
  inputShape: Shape4;
}

/** tfjs' ExplicitPadding for NCHW lists pads in NCHW axis order; computeConv2DInfo wants NHWC order then. */
function padForNhwc(pad: ConvPad, dataFormat: string | undefined): ConvPad {
  if (dataFormat === 'NCHW' && Array.isArray(pad)) {
    const p = pad as tf.backend_util.ExplicitPadding;
    return [p[0], p[2], p[3], p[1]];
  }
  return pad;
}

/** Conv2DBackpropFilter: dW = x ⋆ dy as a forward conv (see conv2dFilterGrad). */
const conv2DBackpropFilter: tf.KernelFunc = ({ inputs, attrs }) => {
  const a = attrs as unknown as BackpropFilterAttrs;
  return tf.tidy(() => {
    const x = toNhwc(asTensor4D(input(inputs, 'x')), a.dataFormat);
    const dy = toNhwc(asTensor4D(input(inputs, 'dy')), a.dataFormat);
    const info = tf.backend_util.computeConv2DInfo(
      x.shape, a.filterShape, a.strides, 1, padForNhwc(a.pad, a.dataFormat), a.dimRoundingMode, false, 'channelsLast',
    );
    return conv2dFilterGrad(x, dy, a.filterShape, geometryFromConvInfo(info));
  });
};

/**
 * Conv2DBackpropInput (also tf.conv2dTranspose's forward): dx = zero-inserted dy ⋆ flip(wᵀ), done
 * polyphase for stride > 1 so no MACs are spent on inserted zeros (see conv2dInputGrad).
 */
const conv2DBackpropInput: tf.KernelFunc = ({ inputs, attrs }) => {
  const a = attrs as unknown as BackpropInputAttrs;
  return tf.tidy(() => {
    const dy = toNhwc(asTensor4D(input(inputs, 'dy')), a.dataFormat);
    const filter = asTensor4D(input(inputs, 'filter'));
    const inShape = nhwcShape(a.inputShape, a.dataFormat);
    const info = tf.backend_util.computeConv2DInfo(
      inShape, filter.shape, a.strides, 1, padForNhwc(a.pad, a.dataFormat), a.dimRoundingMode, false, 'channelsLast',
    );
    return fromNhwc(conv2dInputGrad(dy, filter, inShape, geometryFromConvInfo(info)), a.dataFormat);
  });
};

/** DepthwiseConv2dNativeBackpropFilter: batch folded into channels, one depthwise conv (see depthwiseFilterGrad). */
const depthwiseBackpropFilter: tf.KernelFunc = ({ inputs, attrs }) => {
  const a = attrs as unknown as BackpropFilterAttrs;
  return tf.tidy(() => {
    const x = asTensor4D(input(inputs, 'x'));
    const dy = asTensor4D(input(inputs, 'dy'));
    const info = tf.backend_util.computeConv2DInfo(
      x.shape, a.filterShape, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, true, 'channelsLast',
    );
    return depthwiseFilterGrad(x, dy, a.filterShape, geometryFromConvInfo(info));
  });
};

/** DepthwiseConv2dNativeBackpropInput: depthwise conv of dy with the flipped filter, summed over the multiplier. */
const depthwiseBackpropInput: tf.KernelFunc = ({ inputs, attrs }) => {
  const a = attrs as unknown as BackpropInputAttrs;
  return tf.tidy(() => {
    const dy = asTensor4D(input(inputs, 'dy'));
    const filter = asTensor4D(input(inputs, 'filter'));
    const info = tf.backend_util.computeConv2DInfo(
      a.inputShape, filter.shape, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, true, 'channelsLast',
    );
    return depthwiseInputGrad(dy, filter, a.inputShape, geometryFromConvInfo(info));
  });
};

/** Kernel configs for the wasm backend. `replaceNative` = replace wasm's own (slow) kernel if present. */
export function convKernelConfigs(backendName: string): { config: tf.KernelConfig; replaceNative: boolean }[] {
  const k = (kernelName: string, kernelFunc: tf.KernelFunc, replaceNative: boolean) => ({
    config: mark<tf.KernelConfig>({ kernelName, backendName, kernelFunc }),
    replaceNative,
  });
  return [
    k(tf.Conv2DBackpropFilter, conv2DBackpropFilter, false),
    k(tf.Conv2DBackpropInput, conv2DBackpropInput, true),
    k(tf.DepthwiseConv2dNativeBackpropFilter, depthwiseBackpropFilter, false),
    k(tf.DepthwiseConv2dNativeBackpropInput, depthwiseBackpropInput, false),
  ];
}
