import * as tf from '@tensorflow/tfjs';
import { noGrad } from '../gradControl.js';
import { Layer } from '../module.js';

/**
 * What torch's BatchNorm1d and BatchNorm2d share: γ/β parameters and the running-statistics
 * buffers under torch's names (weight, bias, running_mean, running_var, num_batches_tracked, so
 * checkpoints load strictly), and PyTorch's running-statistics update.
 */
export abstract class BatchNormBase<I extends tf.Tensor, O extends tf.Tensor> extends Layer<I, O> {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;
  readonly numBatchesTracked: tf.Variable;

  constructor(
    readonly numFeatures: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {
    super();
    this.weight = this.addParameter('weight', tf.ones([numFeatures]));
    this.bias = this.addParameter('bias', tf.zeros([numFeatures]));
    this.runningMean = this.addBuffer('running_mean', tf.zeros([numFeatures]));
    this.runningVar = this.addBuffer('running_var', tf.ones([numFeatures]));
    this.numBatchesTracked = this.addBuffer('num_batches_tracked', tf.scalar(0));
  }

  /**
   * Running statistics are state, not part of the graph: updated from the batch statistics
   * (biased `variance`, made unbiased here over `n` values per channel), PyTorch's formula, off
   * the tape (inside a training step these ops would otherwise be taped and keep their inputs).
   */
  protected updateRunningStats(mean: tf.Tensor, variance: tf.Tensor, n: number): void {
    const m = this.momentum;
    const unbiased = n > 1 ? n / (n - 1) : 1;
    noGrad(() => tf.tidy(() => {
      this.runningMean.assign(tf.add(tf.mul(this.runningMean, 1 - m), tf.mul(mean, m)));
      this.runningVar.assign(tf.add(tf.mul(this.runningVar, 1 - m), tf.mul(variance, m * unbiased)));
      this.numBatchesTracked.assign(tf.add(this.numBatchesTracked, 1));
    }));
  }
}
