import * as tf from '@tensorflow/tfjs';
import { Layer } from '../../nn/module.js';
import { LayerNorm } from '../../nn/layers/norm.js';
import { Mlp } from '../backbones/vit.js';
import { LinearAttention } from './linearAttention.js';

/**
 * One Dinomaly decoder block (dinomaly.md §2, models/vision_transformer.py `Block` with
 * attn=LinearAttention2): x ← x + attn(norm1 x); x ← x + mlp(norm2 x). LayerNorm eps 1e-8 (the
 * encoder's is 1e-6, §6), MLP dim→4·dim GELU with biases, no LayerScale, drop-path or dropout.
 * Names norm1, attn.{qkv,proj}, norm2, mlp.{fc1,fc2} as the original state dict.
 */
export class LinearAttentionBlock extends Layer<tf.Tensor3D, tf.Tensor3D> {
  readonly norm1: LayerNorm;
  readonly attn: LinearAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(dim = 768, numHeads = 12, opts: { mlpRatio?: number; eps?: number } = {}) {
    super();
    this.norm1 = this.addModule('norm1', new LayerNorm(dim, 1e-8));
    this.attn = this.addModule('attn', new LinearAttention(dim, numHeads, { qkvBias: true, eps: opts.eps }));
    this.norm2 = this.addModule('norm2', new LayerNorm(dim, 1e-8));
    this.mlp = this.addModule('mlp', new Mlp(dim, Math.round(dim * (opts.mlpRatio ?? 4))));
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.attn.call(this.norm1.call(x) as tf.Tensor3D));
      return tf.add(h, this.mlp.call(this.norm2.call(h))) as tf.Tensor3D;
    });
  }
}
