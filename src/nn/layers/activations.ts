import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Layer } from '../module.js';

/** torch.nn.functional.gelu's `approximate`: 'none' = exact erf form, 'tanh' = the tanh approximation. */
export type GeluApproximation = 'none' | 'tanh';

const SQRT_HALF = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * GELU as torch: exact x·Φ(x) = ½x(1 + erf(x/√2)) (DINOv2 / Dinomaly MLPs, dinomaly.md), or
 * ½x(1 + tanh(√(2/π)(x + 0.044715x³))). tfjs' Erf has a gradient on every backend.
 */
export function gelu(x: tf.Tensor, approximate: GeluApproximation = 'none'): tf.Tensor {
  return tf.tidy(() => {
    if (approximate === 'tanh') {
      const inner = tf.mul(SQRT_2_OVER_PI, tf.add(x, tf.mul(0.044715, tf.mul(x, tf.square(x)))));
      return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
    }
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.erf(tf.mul(x, SQRT_HALF))));
  });
}

/** SiLU / swish x·σ(x) (torch.nn.SiLU; diffusion U-Nets). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** torch.nn.GELU(approximate). */
export class GELU extends Layer<tf.Tensor, tf.Tensor> {
  constructor(readonly approximate: GeluApproximation = 'none') {
    super();
    if (approximate !== 'none' && approximate !== 'tanh') throw new ConfigError(`GELU approximate must be 'none' or 'tanh', got '${String(approximate)}'`);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return gelu(x, this.approximate);
  }
}

/** torch.nn.SiLU. */
export class SiLU extends Layer<tf.Tensor, tf.Tensor> {
  forward(x: tf.Tensor): tf.Tensor {
    return silu(x);
  }
}

/** torch.nn.LeakyReLU(negative_slope), default 0.01 as torch (GLASS's discriminator uses 0.2, glass.md §2). */
export class LeakyReLU extends Layer<tf.Tensor, tf.Tensor> {
  constructor(readonly negativeSlope = 0.01) {
    super();
    if (!Number.isFinite(negativeSlope)) throw new ConfigError(`LeakyReLU negative slope must be finite, got ${negativeSlope}`);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.leakyRelu(x, this.negativeSlope);
  }
}
