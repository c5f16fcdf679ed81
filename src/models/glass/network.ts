import * as tf from '@tensorflow/tfjs';
import { Layer, Module } from '../../nn/module.js';
import { normalInit } from '../../nn/init.js';
import { Linear } from '../../nn/layers/linear.js';
import { BatchNorm1d } from '../../nn/layers/batchnorm1d.js';
import { LeakyReLU } from '../../nn/layers/activations.js';
import { Sequential } from '../../nn/layers/sequential.js';

/** torch.nn.init.xavier_normal_ on a Linear weight (GLASS model.py init_weight): std = √(2/(in+out)). */
function xavierNormalLinear(l: Linear): void {
  tf.tidy(() => l.weight.assign(normalInit([l.inFeatures, l.outFeatures], Math.sqrt(2 / (l.inFeatures + l.outFeatures)))));
}

/**
 * GLASS's adaptor ("pre_projection", official model.py Projection with n_layers 1, layer_type 0):
 * one Linear dim→dim with bias, no activation (glass.md §2). Name `layers.0fc` as the official state dict.
 */
export class GlassAdaptor extends Layer<tf.Tensor2D, tf.Tensor2D> {
  readonly fc: Linear;

  constructor(readonly dim: number) {
    super();
    const layers = this.addModule('layers', new ProjectionLayers());
    this.fc = layers.add('0fc', new Linear(dim, dim));
    xavierNormalLinear(this.fc);
  }

  forward(x: tf.Tensor2D): tf.Tensor2D {
    return this.fc.call(x) as tf.Tensor2D;
  }
}

/** Named holder for the official `layers` Sequential (its child is called '0fc', not '0'). */
class ProjectionLayers extends Module {
  add<M extends Module>(name: string, m: M): M {
    return this.addModule(name, m);
  }
}

/**
 * GLASS's discriminator (official model.py Discriminator, n_layers 2, hidden 1024; glass.md §2):
 * body.block1 = Linear(dim, hidden) → BatchNorm1d(hidden) → LeakyReLU(0.2), tail = Linear(hidden, 1,
 * no bias) → Sigmoid. Linear weights Xavier-normal, biases torch's default. Output [rows, 1] in
 * (0, 1): the probability that a patch is anomalous.
 */
export class GlassDiscriminator extends Layer<tf.Tensor2D, tf.Tensor2D> {
  readonly block1: Sequential;
  readonly tail: Linear;

  constructor(readonly dim: number, readonly hidden: number) {
    super();
    const body = this.addModule('body', new ProjectionLayers());
    const fc = new Linear(dim, hidden);
    xavierNormalLinear(fc);
    this.block1 = body.add('block1', new Sequential([fc, new BatchNorm1d(hidden), new LeakyReLU(0.2)]));
    const tailSeq = this.addModule('tail', new ProjectionLayers());
    this.tail = tailSeq.add('0', new Linear(hidden, 1, { bias: false }));
    xavierNormalLinear(this.tail);
  }

  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.sigmoid(this.tail.call(this.block1.call(x))) as tf.Tensor2D);
  }
}

/** Parameters of adaptor + discriminator (glass.md §7.2: 3,937,792 at dim 1536, hidden 1024). */
export function glassTrainableParams(dim: number, hidden: number): number {
  return dim * dim + dim + dim * hidden + hidden + 2 * hidden + hidden;
}
