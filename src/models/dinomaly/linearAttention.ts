import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Layer } from '../../nn/module.js';
import { Linear } from '../../nn/layers/linear.js';

/**
 * φ(u) = ELU(u) + 1 kernelised attention in the Q(KV) order of Dinomaly's `LinearAttention2`
 * (dinomaly.md §2): per head KV = Σ_j φ(k_j) v_jᵀ, z_i = 1 / (φ(q_i) · Σ_j φ(k_j)),
 * out_i = z_i φ(q_i)ᵀ KV — no 1/√d scale, no softmax, no mask. Inputs [..., N, d]; cost linear
 * in N. `eps` is added to the denominator (the Dinomaly README's NaN guard, §6); 0 = the original.
 */
export function linearAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, eps = 0): tf.Tensor {
  return tf.tidy(() => {
    const fq = tf.add(tf.elu(q), 1);
    const fk = tf.add(tf.elu(k), 1);
    const kv = tf.matMul(fk, v, true, false); // [..., d, e]
    const ksum = tf.sum(fk, -2, true); // [..., 1, d]
    let denom = tf.sum(tf.mul(fq, ksum), -1, true); // [..., N, 1]
    if (eps) denom = tf.add(denom, eps);
    return tf.div(tf.matMul(fq, kv), denom);
  });
}

/**
 * The same attention written out directly: row-normalised φ(Q)φ(K)ᵀ times V (quadratic in N).
 * Kept as the reference the Q(KV) form is tested against (dinomaly.md §7.1).
 */
export function linearAttentionDirect(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, eps = 0): tf.Tensor {
  return tf.tidy(() => {
    const a = tf.matMul(tf.add(tf.elu(q), 1), tf.add(tf.elu(k), 1), false, true); // [..., N, N]
    let rowSum = tf.sum(a, -1, true);
    if (eps) rowSum = tf.add(rowSum, eps);
    return tf.matMul(tf.div(a, rowSum), v);
  });
}

export interface LinearAttentionOptions {
  /** qkv bias (Dinomaly's decoder: true). Default true. */
  qkvBias?: boolean;
  /** Denominator guard; default 0 as the original code. */
  eps?: number;
}

/**
 * Dinomaly `LinearAttention2` as a layer: fused `qkv` Linear dim→3·dim laid out [3, heads, d]
 * as timm's Attention, linearAttention per head, heads concatenated, `proj` Linear. Names qkv.*,
 * proj.* as the original state dict. attn_drop is unused in the original (issue #9), so absent.
 */
export class LinearAttention extends Layer<tf.Tensor3D, tf.Tensor3D> {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly headDim: number;
  readonly eps: number;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    opts: LinearAttentionOptions = {},
  ) {
    super();
    if (!Number.isInteger(numHeads) || numHeads < 1 || dim % numHeads !== 0) {
      throw new ConfigError(`LinearAttention: dim ${dim} must be a multiple of numHeads ${numHeads}`);
    }
    this.headDim = dim / numHeads;
    this.eps = opts.eps ?? 0;
    this.qkv = this.addModule('qkv', new Linear(dim, 3 * dim, { bias: opts.qkvBias ?? true }));
    this.proj = this.addModule('proj', new Linear(dim, dim));
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    const [B, N, C] = x.shape;
    if (C !== this.dim) throw new ConfigError(`LinearAttention(${this.dim}): expected [B, N, ${this.dim}], got [${x.shape}]`);
    return tf.tidy(() => {
      const qkv = tf.transpose(tf.reshape(this.qkv.call(x), [B, N, 3, this.numHeads, this.headDim]), [2, 0, 3, 1, 4]);
      const [q, k, v] = tf.unstack(qkv, 0);
      const o = linearAttention(q, k, v, this.eps);
      return this.proj.call(tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B, N, C])) as tf.Tensor3D;
    });
  }
}
