import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';

/** torch's `reduction`. */
export type Reduction = 'mean' | 'sum' | 'none';

export function applyReduction(l: tf.Tensor, reduction: Reduction): tf.Tensor {
  if (reduction === 'none') return l;
  if (reduction === 'sum') return tf.sum(l);
  if (reduction === 'mean') return tf.mean(l);
  throw new ConfigError(`reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
}

function sameShape(a: tf.Tensor, b: tf.Tensor, what: string): void {
  if (!tf.util.arraysEqual(a.shape, b.shape)) throw new ConfigError(`${what}: input [${a.shape}] and target [${b.shape}] must have the same shape`);
}

/**
 * torch.nn.functional.binary_cross_entropy_with_logits (GLASS / CutPaste heads on logits):
 *   l = (1 − y)·z + w·softplus(−z),  w = 1 + (pos_weight − 1)·y,
 * stable for any |z| (softplus never exponentiates a large positive number) and with the exact
 * gradient (1 − y) − w·σ(−z) (σ(z) − y without pos_weight) everywhere, z = 0 included.
 */
export function bceWithLogits(logits: tf.Tensor, targets: tf.Tensor, opts: { posWeight?: number | tf.Tensor; reduction?: Reduction } = {}): tf.Tensor {
  sameShape(logits, targets, 'bceWithLogits');
  return tf.tidy(() => {
    const sp = tf.softplus(tf.neg(logits));
    const w = opts.posWeight === undefined ? null : tf.add(1, tf.mul(tf.sub(opts.posWeight, 1), targets));
    const l = tf.add(tf.mul(tf.sub(1, targets), logits), w ? tf.mul(w, sp) : sp);
    return applyReduction(l, opts.reduction ?? 'mean');
  });
}

/**
 * torch.nn.functional.binary_cross_entropy on probabilities (GLASS's sigmoid discriminator,
 * glass.md §3): l = −(y·max(log p, −100) + (1 − y)·max(log(1 − p), −100)); the −100 clamp is
 * torch's, so p = 0 or 1 gives a finite loss. The gradient is torch's closed form
 * (p − y)/max(p(1 − p), 1e-12), finite at p ∈ {0, 1} too (autodiff of the clamp would give NaN).
 */
export function bce(probs: tf.Tensor, targets: tf.Tensor, opts: { reduction?: Reduction } = {}): tf.Tensor {
  sameShape(probs, targets, 'bce');
  const elementwise = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const p = args[0] as tf.Tensor;
    // targets are saved too: a caller may free them (e.g. a tidy inside the step) before backward.
    (args[1] as tf.GradSaveFunc)([p, targets]);
    const value = tf.tidy(() => tf.neg(tf.add(
      tf.mul(targets, tf.maximum(tf.log(p), -100)),
      tf.mul(tf.sub(1, targets), tf.maximum(tf.log(tf.sub(1, p)), -100)),
    )));
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sp, st] = saved;
        return tf.mul(dy, tf.div(tf.sub(sp, st), tf.maximum(tf.mul(sp, tf.sub(1, sp)), 1e-12)));
      }),
    };
  });
  return tf.tidy(() => applyReduction(elementwise(probs) as tf.Tensor, opts.reduction ?? 'mean'));
}
