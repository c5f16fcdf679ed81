import * as tf from '@tensorflow/tfjs';
import { Layer } from '../module.js';
import { BatchNorm2d } from './norm.js';

/** torch.nn.ReLU: no parameters, occupies a Sequential index. */
export class ReLU extends Layer<tf.Tensor4D, tf.Tensor4D> {
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.relu(x);
  }
}

/**
 * Calls the layers in order, disposing intermediates (never the input, nor what a layer returned
 * unchanged). A BatchNorm2d directly followed by a ReLU runs as one fused op (callWithRelu).
 */
export function runLayers<T extends tf.Tensor>(layers: readonly Layer<T, T>[], x: T): T {
  let y = x;
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i];
    const bn: unknown = l;
    let next: T;
    if (bn instanceof BatchNorm2d && layers[i + 1] instanceof ReLU && y.rank === 4) {
      next = bn.callWithRelu(y as unknown as tf.Tensor4D) as unknown as T;
      i++;
    } else {
      next = l.call(y);
    }
    // A layer may return its input (identity Fn): never dispose what it returned.
    if (y !== x && y !== next) y.dispose();
    y = next;
  }
  return y;
}

/** Children named '0', '1', ... as torch.nn.Sequential, so checkpoint names line up. */
export class Sequential<T extends tf.Tensor = tf.Tensor> extends Layer<T, T> {
  readonly layers: Layer<T, T>[];

  constructor(layers: Layer<T, T>[]) {
    super();
    this.layers = layers.map((l, i) => this.addModule(String(i), l));
  }

  forward(x: T): T {
    return runLayers(this.layers, x);
  }
}

/** A parameter-free layer from a function, e.g. new Fn(tf.relu) inside a Sequential. */
export class Fn<T extends tf.Tensor = tf.Tensor> extends Layer<T, T> {
  constructor(
    private readonly fn: (x: T) => T,
    readonly label = 'Fn',
  ) {
    super();
  }

  forward(x: T): T {
    return this.fn(x);
  }
}

/** PyTorch MaxPool2d(kernel, stride, padding) on NHWC with -inf padding semantics. */
export function maxPool2d(x: tf.Tensor4D, kernel: number, stride: number, padding = 0): tf.Tensor4D {
  return tf.tidy(() => {
    const xp = padding > 0 ? tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]], -1e30) : x;
    return tf.maxPool(xp, kernel, stride, 'valid');
  });
}

/** PyTorch AvgPool2d(kernel, stride, padding) with count_include_pad=True. */
export function avgPool2d(x: tf.Tensor4D, kernel: number, stride: number, padding = 0): tf.Tensor4D {
  return tf.tidy(() => {
    const xp = padding > 0 ? tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]]) : x;
    return tf.avgPool(xp, kernel, stride, 'valid');
  });
}
