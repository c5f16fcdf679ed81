import * as tf from '@tensorflow/tfjs';
import { Layer } from '../module.js';

/** Children named '0', '1', ... as torch.nn.Sequential, so checkpoint names line up. */
export class Sequential<T extends tf.Tensor = tf.Tensor> extends Layer<T, T> {
  readonly layers: Layer<T, T>[];

  constructor(layers: Layer<T, T>[]) {
    super();
    this.layers = layers.map((l, i) => this.addModule(String(i), l));
  }

  forward(x: T): T {
    let y = x;
    for (const l of this.layers) {
      const next = l.call(y);
      // A layer may return its input (identity Fn): never dispose what it returned.
      if (y !== x && y !== next) y.dispose();
      y = next;
    }
    return y;
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
