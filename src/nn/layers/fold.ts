import * as tf from '@tensorflow/tfjs';
import { layerFusionEnabled } from '../fusion.js';
import { withModuleScope } from '../scope.js';
import { isRecordingGradients } from '../tape.js';
import type { Conv2d } from './conv.js';
import type { BatchNorm2d } from './norm.js';

export type FoldActivation = 'linear' | 'relu' | 'relu6' | 'leakyrelu';

/**
 * An eval-mode Conv2d followed by BatchNorm2d (and optionally an activation) run as one
 * tf.fused.conv2d (tf.fused.depthwiseConv2d for depthwise convs):
 *     W' = W · γ/σ,   b' = β − μ·γ/σ (+ b·γ/σ when the conv has a bias),   σ = sqrt(running_var + eps)
 * so the 2–3 full-size elementwise passes after each conv disappear. It is not a Module: the conv
 * and the BatchNorm stay the registered children (names, state dicts and checkpoints unchanged),
 * this only holds the folded W', b', rebuilt whenever a variable they come from was assigned
 * (loadStateDict, an optimizer step, running statistics updated in training). `Variable.assign`
 * gives the variable a new dataId, so the cache is keyed on the identity of those dataIds.
 *
 * Used only when folding cannot change a result: both modules in eval mode, layer fusion on
 * (src/nn/fusion.ts; the MAC counter turns it off), and either no gradient tape is recording or
 * none of the folded variables is trainable (the folded tensors are constants: gradients would
 * not reach the conv weights or γ, β). Otherwise `call` runs conv → bn → activation unfused.
 */
export class ConvBnFold {
  private key: (object | null)[] | null = null;
  private filter: tf.Tensor4D | null = null;
  private bias: tf.Tensor1D | null = null;

  constructor(
    readonly conv: Conv2d,
    readonly bn: BatchNorm2d,
    readonly activation: FoldActivation = 'linear',
    /** Negative slope for 'leakyrelu'. */
    readonly leakyreluAlpha = 0.2,
  ) {}

  private sources(): (tf.Variable | null)[] {
    return [this.conv.weight, this.conv.bias, this.bn.weight, this.bn.bias, this.bn.runningMean, this.bn.runningVar];
  }

  /** Whether the folded kernel replaces conv → bn → activation right now. */
  get active(): boolean {
    if (this.conv.isTraining || this.bn.isTraining || !layerFusionEnabled()) return false;
    if (this.conv.groups !== 1 && !this.conv.depthwise) return false;
    return !(isRecordingGradients() && this.sources().some((v) => v != null && v.trainable));
  }

  /**
   * activation(bn(conv(x))), folded when `active`; else the plain chain, or `unfused()` when
   * given (a caller's own module call, e.g. a downsample Sequential, for the same result).
   */
  call(x: tf.Tensor4D, unfused?: () => tf.Tensor4D): tf.Tensor4D {
    if (this.active) return this.folded(x);
    if (unfused) return unfused();
    return tf.tidy(() => {
      const y = this.bn.call(this.conv.call(x));
      switch (this.activation) {
        case 'relu':
          return tf.relu(y);
        case 'relu6':
          return tf.relu6(y);
        case 'leakyrelu':
          return tf.leakyRelu(y, this.leakyreluAlpha);
        default:
          return y;
      }
    });
  }

  private folded(x: tf.Tensor4D): tf.Tensor4D {
    const { filter, bias } = this.weights();
    // Attributed to the conv, as its unfused kernel would be (kernel-level meters).
    return withModuleScope(this.conv.path || this.conv.constructor.name, this.conv.constructor.name, () => tf.tidy(() => {
      const { x: xk, pad } = this.conv.kernelInput(x);
      const d = this.conv.dilation;
      const args = {
        x: xk, filter, strides: this.conv.stride, pad, dilations: [d, d] as [number, number], bias,
        activation: this.activation, leakyreluAlpha: this.leakyreluAlpha,
      };
      return this.conv.depthwise ? tf.fused.depthwiseConv2d(args) : tf.fused.conv2d(args);
    }));
  }

  /** W' and b', rebuilt when any source variable's data changed. */
  private weights(): { filter: tf.Tensor4D; bias: tf.Tensor1D } {
    const key = this.sources().map((v) => (v == null ? null : (v.dataId as object)));
    if (this.filter && this.bias && this.key && key.every((k, i) => k === this.key?.[i])) {
      return { filter: this.filter, bias: this.bias };
    }
    this.disposeCache();
    const { conv, bn } = this;
    const { filter, bias } = tf.tidy(() => {
      // The same scale as BatchNorm2d's eval forward.
      const scale = tf.mul(bn.weight, tf.rsqrt(tf.add(bn.runningVar, bn.eps)));
      let shift = tf.sub(bn.bias, tf.mul(bn.runningMean, scale));
      if (conv.bias) shift = tf.add(shift, tf.mul(conv.bias, scale));
      // Output channel o of a depthwise [kh, kw, C, m] filter is (c, j) with o = c·m + j.
      const s = conv.depthwise ? tf.reshape(scale, conv.weight.shape.slice(2)) : scale;
      return { filter: tf.mul(conv.weight, s) as tf.Tensor4D, bias: shift as tf.Tensor1D };
    });
    this.filter = tf.keep(filter);
    this.bias = tf.keep(bias);
    this.key = key;
    return { filter, bias };
  }

  private disposeCache(): void {
    this.filter?.dispose();
    this.bias?.dispose();
    this.filter = null;
    this.bias = null;
    this.key = null;
  }

  /** Frees the folded weights (the conv and BatchNorm belong to their module). */
  dispose(): void {
    this.disposeCache();
  }
}
