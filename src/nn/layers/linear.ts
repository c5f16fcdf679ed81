import * as tf from '@tensorflow/tfjs';
import { Layer } from '../module.js';
import { uniformInit } from '../init.js';

/** y = x W + b over the last axis; `weight` stored [in, out], loaded from torch's [out, in]. */
export class Linear extends Layer<tf.Tensor, tf.Tensor> {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean } = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.addParameter('weight', uniformInit([inFeatures, outFeatures], bound), 'linear');
    this.bias = opts.bias === false ? null : this.addParameter('bias', uniformInit([outFeatures], bound));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const shape = x.shape;
      const flat = x.reshape([-1, this.inFeatures]) as tf.Tensor2D;
      let y: tf.Tensor = tf.matMul(flat, this.weight as tf.Tensor2D);
      if (this.bias) y = tf.add(y, this.bias);
      return y.reshape([...shape.slice(0, -1), this.outFeatures]);
    });
  }
}
