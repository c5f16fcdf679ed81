import * as tf from '@tensorflow/tfjs';
import { ConfigError, TrainingError } from '../../errors.js';
import { BatchNormBase } from './batchNormBase.js';

/**
 * torch.nn.BatchNorm1d on [N, C] or [N, C, L] (channel axis 1, as torch; GLASS's discriminator,
 * glass.md §2): training normalises with the biased batch variance over N (and L) and updates
 * running_mean / running_var (unbiased) with momentum; eval uses the running statistics.
 * Parameter and buffer names are torch's (weight, bias, running_mean, running_var,
 * num_batches_tracked), so checkpoints load strictly. The running statistics are updated from
 * batch statistics taken off the tape, so they are state, not part of the graph.
 */
export class BatchNorm1d extends BatchNormBase<tf.Tensor, tf.Tensor> {
  forward(x: tf.Tensor): tf.Tensor {
    if ((x.rank !== 2 && x.rank !== 3) || x.shape[1] !== this.numFeatures) {
      throw new ConfigError(`BatchNorm1d(${this.numFeatures}): expected [N, ${this.numFeatures}] or [N, ${this.numFeatures}, L], got [${x.shape}]`);
    }
    // [C] statistics broadcast as [C] over [N, C] and as [C, 1] over [N, C, L]
    const bshape = x.rank === 2 ? [this.numFeatures] : [this.numFeatures, 1];
    const axes = x.rank === 2 ? [0] : [0, 2];
    return tf.tidy(() => {
      let mean: tf.Tensor;
      let variance: tf.Tensor;
      if (this.training) {
        const count = x.size / this.numFeatures;
        if (count <= 1) throw new TrainingError(`BatchNorm1d: expected more than 1 value per channel when training, got input [${x.shape}]`);
        ({ mean, variance } = tf.moments(x, axes));
        this.updateRunningStats(mean, variance, count);
      } else {
        mean = this.runningMean;
        variance = this.runningVar;
      }
      const scale = tf.mul(this.weight, tf.rsqrt(tf.add(variance, this.eps)));
      const xn = tf.mul(tf.sub(x, mean.reshape(bshape)), scale.reshape(bshape));
      return tf.add(xn, this.bias.reshape(bshape));
    });
  }
}
