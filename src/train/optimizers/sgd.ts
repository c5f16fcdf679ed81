import * as tf from '@tensorflow/tfjs';
import { TrainingError } from '../../errors.js';
import { Hyperparameters, Optimizer } from './optimizer.js';

export interface SgdOptions {
  lr: number;
  momentum?: number;
  /** PyTorch's dampening; the specs never set it (0). */
  dampening?: number;
  nesterov?: boolean;
  /** Coupled L2 added to the gradient: g ← g + wd·θ (torch.optim.SGD weight_decay). */
  weightDecay?: number;
}

/**
 * torch.optim.SGD, single-tensor path (PyTorch 1.13 `_single_tensor_sgd`):
 *   g ← g + wd·θ;  b ← g (first step) else μ·b + (1−dampening)·g;
 *   g ← g + μ·b (nesterov) else b;  θ ← θ − lr·g.
 * CutPaste (cutpaste.md §3): SGD momentum 0.9, lr 0.03, weight decay 3e-5, cosine to 0.
 */
export class SGD extends Optimizer {
  readonly kind = 'sgd';
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;

  constructor(params: readonly tf.Variable[], opts: SgdOptions) {
    super(params, opts.lr);
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.nesterov = opts.nesterov ?? false;
    this.weightDecay = opts.weightDecay ?? 0;
    if (this.momentum < 0 || this.weightDecay < 0) throw new TrainingError('SGD: momentum and weightDecay must be >= 0');
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new TrainingError('SGD: nesterov momentum requires a momentum and zero dampening (as in PyTorch)');
    }
  }

  hyperparameters(): Hyperparameters {
    return { lr: this.lr, momentum: this.momentum, dampening: this.dampening, nesterov: this.nesterov, weight_decay: this.weightDecay };
  }

  protected slotNames(): string[] {
    return this.momentum !== 0 ? ['momentum_buffer'] : [];
  }

  protected updateParam(_i: number, p: tf.Variable, grad: tf.Tensor, slots: Map<string, tf.Variable>, t: number): void {
    let g = grad;
    if (this.weightDecay !== 0) g = tf.add(g, tf.mul(p, this.weightDecay));
    if (this.momentum !== 0) {
      const buf = slots.get('momentum_buffer') as tf.Variable;
      const b = t === 1 ? g : tf.add(tf.mul(buf, this.momentum), tf.mul(g, 1 - this.dampening));
      buf.assign(b);
      g = this.nesterov ? tf.add(g, tf.mul(b, this.momentum)) : b;
    }
    p.assign(tf.sub(p, tf.mul(g, this.lr)));
  }
}
