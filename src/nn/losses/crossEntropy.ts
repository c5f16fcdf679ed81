import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { applyReduction, type Reduction } from './bce.js';

/**
 * torch.nn.functional.cross_entropy on logits [N, C] with integer labels [N] (CutPaste's
 * classifier, cutpaste.md) and torch's label smoothing ε: the target is (1 − ε)·onehot + ε/C, so
 *   l = (1 − ε)·(−log p_label) + ε·mean_c(−log p_c),  log p = logSoftmax(logits).
 * Labels outside [0, C) are an error (tf.oneHot would silently give a zero row).
 */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D | readonly number[], opts: { labelSmoothing?: number; reduction?: Reduction } = {}): tf.Tensor {
  const [n, c] = logits.shape;
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new ConfigError(`crossEntropy: labelSmoothing must be in [0, 1], got ${eps}`);
  const values = Array.isArray(labels) ? (labels as readonly number[]) : Array.from((labels as tf.Tensor1D).dataSync());
  if (values.length !== n) throw new ConfigError(`crossEntropy: ${values.length} labels for ${n} rows of logits`);
  const bad = values.find((v) => !Number.isInteger(v) || v < 0 || v >= c);
  if (bad !== undefined) throw new ConfigError(`crossEntropy: label ${bad} outside [0, ${c})`);
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits, -1);
    const target = tf.oneHot(tf.tensor1d(values as number[], 'int32'), c);
    const nll = tf.neg(tf.sum(tf.mul(target, logp), -1));
    const l = eps === 0 ? nll : tf.add(tf.mul(1 - eps, nll), tf.mul(eps, tf.neg(tf.mean(logp, -1))));
    return applyReduction(l, opts.reduction ?? 'mean');
  });
}
