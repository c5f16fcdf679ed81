import * as tf from '@tensorflow/tfjs';
import { TrainingError } from '../../errors.js';
import { Hyperparameters, Optimizer } from './optimizer.js';

export interface StableAdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  /** Decoupled: θ ← θ·(1 − lr·wd) first. Default 0.01 like the reference constructor. */
  weightDecay?: number;
  amsgrad?: boolean;
  /** Update-RMS threshold (reference default 1.0). */
  clipThreshold?: number;
}

/**
 * StableAdamW as used by Dinomaly (dinomaly.md §3, `optimizers/StableAdamW.py`): AdamW whose step
 * is divided by max(1, RMS(g / denom) / clipThreshold), with the RMS of the current raw gradient
 * over the parameter tensor. Per parameter with step t:
 *   θ ← θ·(1 − lr·wd);  m, v as Adam;  (amsgrad: v̂ = max(v̂, v));
 *   denom = √v̂ / √(1−β2^t) + eps;  r = max(1, ‖g/denom‖₂ / √numel / clipThreshold);
 *   θ ← θ − lr / (1−β1^t) / r · m / denom.
 * Dinomaly: lr 2e-3, betas (0.9, 0.999), wd 1e-4, amsgrad on, eps 1e-10 (uni) / 1e-8 (sep).
 */
export class StableAdamW extends Optimizer {
  readonly kind = 'stable_adamw';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly amsgrad: boolean;
  readonly clipThreshold: number;

  constructor(params: readonly tf.Variable[], opts: StableAdamWOptions) {
    super(params, opts.lr);
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.amsgrad = opts.amsgrad ?? false;
    this.clipThreshold = opts.clipThreshold ?? 1.0;
    if (!(this.beta1 >= 0 && this.beta1 < 1 && this.beta2 >= 0 && this.beta2 < 1)) {
      throw new TrainingError(`StableAdamW: betas must lie in [0, 1), got [${this.beta1}, ${this.beta2}]`);
    }
    if (!(this.clipThreshold > 0)) throw new TrainingError('StableAdamW: clipThreshold must be > 0');
  }

  hyperparameters(): Hyperparameters {
    return {
      lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weight_decay: this.weightDecay,
      amsgrad: this.amsgrad, clip_threshold: this.clipThreshold,
    };
  }

  protected slotNames(): string[] {
    return this.amsgrad ? ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'] : ['exp_avg', 'exp_avg_sq'];
  }

  protected updateParam(_i: number, p: tf.Variable, g: tf.Tensor, slots: Map<string, tf.Variable>, t: number): void {
    const theta = this.weightDecay !== 0 ? tf.mul(p, 1 - this.lr * this.weightDecay) : p;
    const mV = slots.get('exp_avg') as tf.Variable;
    const vV = slots.get('exp_avg_sq') as tf.Variable;
    const m = tf.add(tf.mul(mV, this.beta1), tf.mul(g, 1 - this.beta1));
    const v = tf.add(tf.mul(vV, this.beta2), tf.mul(tf.mul(g, g), 1 - this.beta2));
    mV.assign(m);
    vV.assign(v);
    let vUse: tf.Tensor = v;
    if (this.amsgrad) {
      const mx = slots.get('max_exp_avg_sq') as tf.Variable;
      vUse = tf.maximum(mx, v);
      mx.assign(vUse);
    }
    const bc1 = 1 - this.beta1 ** t;
    const denom = tf.add(tf.div(tf.sqrt(vUse), Math.sqrt(1 - this.beta2 ** t)), this.eps);
    // r stays on the device: no sync per parameter.
    const rms = tf.div(tf.norm(tf.div(g, denom)), Math.sqrt(g.size));
    const r = tf.maximum(tf.div(rms, this.clipThreshold), 1);
    const stepSize = tf.div(this.lr / bc1, r);
    p.assign(tf.sub(theta, tf.mul(tf.div(m, denom), stepSize)));
  }
}
