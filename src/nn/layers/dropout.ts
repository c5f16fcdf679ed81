import * as tf from '@tensorflow/tfjs';
import { ConfigError, TrainingError } from '../../errors.js';
import { Rng } from '../../util/rng.js';
import { nextInitSeed } from '../init.js';
import { isRecomputing, Layer } from '../module.js';

/** What makes a Dropout's masks reproducible: its seed and how many masks it has drawn. */
export interface DropoutState {
  seed: string;
  calls: number;
}

/**
 * Inverted dropout (torch.nn.Dropout): in training each element is zeroed with probability p and
 * the rest scaled by 1/(1 − p); in eval it is the identity. p = 1 zeroes everything, as torch.
 *
 * Reproducible and resumable: mask k (the k-th training call) is drawn by tf.randomUniform with
 * the tfjs op seed Rng(`dropout/<seed>/<k>`).tfSeed() — a counter-based stream, so the masks
 * depend only on (seed, k), not on what else drew random numbers, nor on the backend (tfjs draws
 * seeded uniforms in JS). The seed defaults to the next init seed (setInitSeed makes it follow
 * --seed); a resumed run restores `state()` with `setState()`. The state is not a buffer: torch's
 * Dropout has none, and state-dict names must stay those of torch.
 *
 * Not inside gradient checkpointing (checkpoint.ts): the recomputation would need the mask of the
 * original call; it throws rather than give silently wrong gradients.
 */
export class Dropout extends Layer<tf.Tensor, tf.Tensor> {
  private seed: string;
  private calls = 0;

  constructor(
    readonly p = 0.5,
    opts: { seed?: number | string } = {},
  ) {
    super();
    if (!(p >= 0 && p <= 1)) throw new ConfigError(`Dropout probability must be in [0, 1], got ${p}`);
    this.seed = String(opts.seed ?? nextInitSeed());
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (!this.training || this.p === 0) return x.clone();
    if (isRecomputing()) throw new TrainingError(`Dropout${this.path ? ` '${this.path}'` : ''} inside gradient checkpointing: its recomputation cannot replay the mask`);
    const k = this.calls++;
    if (this.p === 1) return tf.tidy(() => tf.mul(x, 0));
    return dropout(x, this.p, new Rng(`dropout/${this.seed}/${k}`).tfSeed());
  }

  state(): DropoutState {
    return { seed: this.seed, calls: this.calls };
  }

  setState(s: DropoutState): void {
    if (!Number.isInteger(s.calls) || s.calls < 0) throw new ConfigError(`Dropout state: calls must be a non-negative integer, got ${s.calls}`);
    this.seed = s.seed;
    this.calls = s.calls;
  }
}

/** x·mask/(1 − p) with mask ~ Bernoulli(1 − p) drawn with tfjs op seed `seed`; 0 ≤ p < 1. */
export function dropout(x: tf.Tensor, p: number, seed: number): tf.Tensor {
  if (!(p >= 0 && p < 1)) throw new ConfigError(`dropout probability must be in [0, 1), got ${p}`);
  return tf.tidy(() => {
    const keep = tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, 'float32', seed), p);
    return tf.mul(x, tf.mul(tf.cast(keep, 'float32'), 1 / (1 - p)));
  });
}
