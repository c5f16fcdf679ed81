import * as tf from '@tensorflow/tfjs';
import { Layer } from '../../nn/module.js';
import { Linear } from '../../nn/layers/linear.js';
import { GELU } from '../../nn/layers/activations.js';
import { Dropout } from '../../nn/layers/dropout.js';

/**
 * Dinomaly's noisy bottleneck `bMlp` (dinomaly.md §2): Dropout → fc1 (dim→hidden) → GELU →
 * Dropout → fc2 (hidden→dim) → Dropout, no residual. Dropout (p = 0.2) is the only noise, active
 * in training only. Names fc1.*, fc2.* as the original; the dropouts hold no state-dict entries.
 * The three dropouts draw independent masks (distinct seeds derived from `seed`).
 */
export class NoisyBottleneck extends Layer<tf.Tensor, tf.Tensor> {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly act = new GELU('none');
  private readonly drops: [Dropout, Dropout, Dropout];

  constructor(
    readonly dim = 768,
    readonly hidden = 3072,
    readonly p = 0.2,
    opts: { seed?: number | string } = {},
  ) {
    super();
    this.fc1 = this.addModule('fc1', new Linear(dim, hidden));
    this.fc2 = this.addModule('fc2', new Linear(hidden, dim));
    const seed = (i: number): { seed?: string } => (opts.seed === undefined ? {} : { seed: `${opts.seed}/bottleneck/${i}` });
    this.drops = [new Dropout(p, seed(0)), new Dropout(p, seed(1)), new Dropout(p, seed(2))];
  }

  override train(mode = true): this {
    for (const d of this.drops) d.train(mode);
    return super.train(mode);
  }

  forward(x: tf.Tensor): tf.Tensor {
    const [d0, d1, d2] = this.drops;
    return tf.tidy(() => d2.call(this.fc2.call(d1.call(this.act.call(this.fc1.call(d0.call(x)))))));
  }
}
