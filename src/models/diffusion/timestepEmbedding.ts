import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';

/**
 * Which half comes first. DDAD's and DiffusionAD's UNet (`PositionalEmbedding` in unet.py /
 * Recon_subnetwork.py, ddad.md §2, diffusionad.md §2.1) concatenate [sin | cos]; openai's
 * guided-diffusion `timestep_embedding` concatenates [cos | sin].
 */
export type EmbeddingOrder = 'sin-cos' | 'cos-sin';

/**
 * Sinusoidal timestep embedding (Vaswani et al. 2017 §3.5, as used by DDPM): for half = dim/2,
 * f_i = exp(−ln(maxPeriod)·i/half), i = 0..half−1, and e(t) = [sin(t·f) | cos(t·f)]. `t` is the raw
 * timestep as a float (0..999, not rescaled). Computed in float32 as the reference does in torch
 * (float32 frequencies, float32 products), so values match it to float32 rounding. [B] → [B, dim].
 */
export function timestepEmbedding(t: tf.Tensor1D | readonly number[], dim: number, opts: { maxPeriod?: number; order?: EmbeddingOrder } = {}): tf.Tensor2D {
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) throw new ConfigError(`timestep embedding: dim must be an even integer ≥ 2, got ${dim}`);
  const maxPeriod = opts.maxPeriod ?? 10000;
  if (!(maxPeriod > 1)) throw new ConfigError(`timestep embedding: maxPeriod must be > 1, got ${maxPeriod}`);
  const half = dim / 2;
  return tf.tidy(() => {
    const tt = Array.isArray(t) ? tf.tensor1d(t as number[], 'float32') : (t as tf.Tensor1D).toFloat();
    const freqs = tf.exp(tf.mul(tf.range(0, half, 1, 'float32'), -Math.log(maxPeriod) / half));
    const args = tf.mul(tf.reshape(tt, [-1, 1]), tf.reshape(freqs, [1, half]));
    const halves = opts.order === 'cos-sin' ? [tf.cos(args), tf.sin(args)] : [tf.sin(args), tf.cos(args)];
    return tf.concat(halves, 1) as tf.Tensor2D;
  });
}
