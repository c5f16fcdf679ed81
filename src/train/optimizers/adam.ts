import * as tf from '@tensorflow/tfjs';
import { TrainingError } from '../../errors.js';
import { adamStep } from '../../nn/kernels/fused-ops.js';
import { Hyperparameters, Optimizer } from './optimizer.js';

export interface AdamOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  /**
   * Adam: coupled L2, g ← g + wd·θ (torch.optim.Adam; RIAD 1e-5, DDAD 0.05, GLASS adaptor 1e-5).
   * AdamW: decoupled, θ ← θ·(1 − lr·wd) before the moment update (torch.optim.AdamW, default 0.01).
   */
  weightDecay?: number;
  amsgrad?: boolean;
}

/**
 * torch.optim.Adam, single-tensor path (PyTorch 1.13 `_single_tensor_adam`), per parameter with
 * its own step t:
 *   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  (amsgrad: v̂ ← max(v̂, v), use v̂)
 *   denom = √v / √(1−β2^t) + eps;  θ ← θ − (lr / (1−β1^t)) · m / denom.
 * DRAEM (draem.md §3): Adam lr 1e-4 for both nets, MultiStepLR; RIAD §3: lr 1e-4, wd 1e-5.
 */
export class Adam extends Optimizer {
  readonly kind: string = 'adam';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly amsgrad: boolean;
  /** true for AdamW: weight decay multiplies θ instead of adding to g. */
  protected readonly decoupled: boolean = false;

  constructor(params: readonly tf.Variable[], opts: AdamOptions, defaultWeightDecay = 0) {
    super(params, opts.lr);
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? defaultWeightDecay;
    this.amsgrad = opts.amsgrad ?? false;
    if (!(this.beta1 >= 0 && this.beta1 < 1 && this.beta2 >= 0 && this.beta2 < 1)) {
      throw new TrainingError(`${this.constructor.name}: betas must lie in [0, 1), got [${this.beta1}, ${this.beta2}]`);
    }
    if (!(this.eps >= 0) || !(this.weightDecay >= 0)) throw new TrainingError(`${this.constructor.name}: eps and weightDecay must be >= 0`);
  }

  hyperparameters(): Hyperparameters {
    return { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weight_decay: this.weightDecay, amsgrad: this.amsgrad };
  }

  protected slotNames(): string[] {
    return this.amsgrad ? ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'] : ['exp_avg', 'exp_avg_sq'];
  }

  protected updateParam(_i: number, p: tf.Variable, grad: tf.Tensor, slots: Map<string, tf.Variable>, t: number): void {
    const mV = slots.get('exp_avg') as tf.Variable;
    const vV = slots.get('exp_avg_sq') as tf.Variable;
    const bc1 = 1 - this.beta1 ** t;
    const bc2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    if (!this.amsgrad) {
      // One pass over θ, g, m, v on wasm (fused-ops.ts), the same float32 ops as the chain below.
      const [theta, m, v] = adamStep(p, grad, mV, vV, {
        beta1: this.beta1, beta2: this.beta2, bc2Sqrt, stepSize: this.lr / bc1, eps: this.eps,
        weightDecay: this.decoupled ? 0 : this.weightDecay,
        decay: this.decoupled ? 1 - this.lr * this.weightDecay : 1,
      });
      mV.assign(m);
      vV.assign(v);
      p.assign(theta);
      return;
    }
    let theta: tf.Tensor = p;
    let g = grad;
    if (this.weightDecay !== 0) {
      if (this.decoupled) theta = tf.mul(p, 1 - this.lr * this.weightDecay);
      else g = tf.add(g, tf.mul(p, this.weightDecay));
    }
    const m = tf.add(tf.mul(mV, this.beta1), tf.mul(g, 1 - this.beta1));
    const v = tf.add(tf.mul(vV, this.beta2), tf.mul(tf.mul(g, g), 1 - this.beta2));
    mV.assign(m);
    vV.assign(v);
    // AMSGrad (the only case left here): v̂ = max(v̂, v)
    const mx = slots.get('max_exp_avg_sq') as tf.Variable;
    const vUse = tf.maximum(mx, v);
    mx.assign(vUse);
    const denom = tf.add(tf.div(tf.sqrt(vUse), bc2Sqrt), this.eps);
    p.assign(tf.sub(theta, tf.div(tf.mul(m, this.lr / bc1), denom)));
  }
}

/**
 * torch.optim.AdamW: Adam with decoupled weight decay θ ← θ·(1 − lr·wd) applied before the
 * update (Loshchilov & Hutter). PyTorch's default weight decay is 0.01 (GLASS discriminator,
 * glass.md §3; DDAD feature adaptation, ddad.md §3).
 */
export class AdamW extends Adam {
  override readonly kind: string = 'adamw';
  protected override readonly decoupled: boolean = true;

  constructor(params: readonly tf.Variable[], opts: AdamOptions) {
    super(params, opts, 0.01);
  }
}
