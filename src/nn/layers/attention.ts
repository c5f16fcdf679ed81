import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Layer } from '../module.js';
import { Dropout } from './dropout.js';
import { Linear } from './linear.js';

/**
 * softmax(q·kᵀ·scale + mask)·v over the last two axes of [..., N, d] tensors. `mask`
 * (broadcastable to the logits [..., N, N]): bool = true where a query may NOT attend to a key
 * (torch.nn.MultiheadAttention's attn_mask convention; a fully masked row gives NaN, as torch), or
 * float = added to the logits.
 */
export function scaledDotProductAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, opts: { scale?: number; mask?: tf.Tensor; attnDrop?: (a: tf.Tensor) => tf.Tensor } = {}): tf.Tensor {
  return tf.tidy(() => {
    const d = q.shape[q.rank - 1];
    let logits = tf.mul(tf.matMul(q, k, false, true), opts.scale ?? 1 / Math.sqrt(d));
    if (opts.mask) logits = tf.add(logits, maskBias(opts.mask));
    let attn = tf.softmax(logits, -1);
    if (opts.attnDrop) attn = opts.attnDrop(attn);
    return tf.matMul(attn, v);
  });
}

function maskBias(mask: tf.Tensor): tf.Tensor {
  if (mask.dtype !== 'bool') return mask;
  return tf.where(mask, tf.fill(mask.shape, Number.NEGATIVE_INFINITY), tf.zeros(mask.shape));
}

export interface AttentionOptions {
  /** Bias in the fused qkv projection (DINOv2 / Dinomaly: true; timm's default is false). Default true. */
  qkvBias?: boolean;
  /** Dropout on the attention weights (timm attn_drop). Default 0. */
  attnDrop?: number;
  /** Dropout after the output projection (timm proj_drop). Default 0. */
  projDrop?: number;
}

/**
 * Multi-head self-attention as timm's ViT `Attention` (DINOv2 blocks, dinomaly.md): one fused
 * Linear `qkv` dim→3·dim laid out [3, heads, head_dim] on its output axis, scaled dot-product
 * attention per head (scale head_dim^-½), heads concatenated, Linear `proj`. Parameter names
 * qkv.weight, qkv.bias, proj.weight, proj.bias load timm/DINOv2 checkpoints by name. Numerically
 * the same as torch.nn.MultiheadAttention with in_proj_weight = qkv.weight and out_proj = proj
 * (test/fixtures/make_blocks_fixtures.py checks that). Input and output [B, N, dim].
 */
export class Attention extends Layer<tf.Tensor3D, tf.Tensor3D> {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly headDim: number;
  readonly scale: number;
  private readonly attnDropout: Dropout | null;
  private readonly projDropout: Dropout | null;
  /** Mask for the next forward (see scaledDotProductAttention); callWithMask sets it. */
  private mask: tf.Tensor | undefined;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    opts: AttentionOptions = {},
  ) {
    super();
    if (!Number.isInteger(numHeads) || numHeads < 1 || dim % numHeads !== 0) {
      throw new ConfigError(`Attention: dim ${dim} must be a multiple of numHeads ${numHeads}`);
    }
    this.headDim = dim / numHeads;
    this.scale = 1 / Math.sqrt(this.headDim);
    this.qkv = this.addModule('qkv', new Linear(dim, 3 * dim, { bias: opts.qkvBias ?? true }));
    this.proj = this.addModule('proj', new Linear(dim, dim));
    // Dropouts are not registered children: they have no state-dict entries in timm either,
    // but they follow train()/eval() through this module's override below.
    this.attnDropout = opts.attnDrop ? new Dropout(opts.attnDrop) : null;
    this.projDropout = opts.projDrop ? new Dropout(opts.projDrop) : null;
  }

  override train(mode = true): this {
    this.attnDropout?.train(mode);
    this.projDropout?.train(mode);
    return super.train(mode);
  }

  /** forward with a mask broadcastable to [B, heads, N, N] (e.g. [N, N] or [B, 1, N, N]). */
  callWithMask(x: tf.Tensor3D, mask: tf.Tensor): tf.Tensor3D {
    this.mask = mask;
    try {
      return this.call(x);
    } finally {
      this.mask = undefined;
    }
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    const [B, N, C] = x.shape;
    if (C !== this.dim) throw new ConfigError(`Attention(${this.dim}): expected [B, N, ${this.dim}], got [${x.shape}]`);
    return tf.tidy(() => {
      const qkv = tf.transpose(tf.reshape(this.qkv.call(x), [B, N, 3, this.numHeads, this.headDim]), [2, 0, 3, 1, 4]);
      const [q, k, v] = tf.unstack(qkv, 0); // each [B, heads, N, head_dim]
      const attnDrop = this.attnDropout;
      const o = scaledDotProductAttention(q, k, v, { scale: this.scale, mask: this.mask, attnDrop: attnDrop ? (a) => attnDrop.call(a) : undefined });
      let y = this.proj.call(tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B, N, C]));
      if (this.projDropout) y = this.projDropout.call(y);
      return y as tf.Tensor3D;
    });
  }
}
