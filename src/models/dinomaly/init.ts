import * as tf from '@tensorflow/tfjs';
import type { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers/linear.js';
import { LayerNorm } from '../../nn/layers/norm.js';
import { truncNormalInit } from '../../nn/init.js';

/**
 * Dinomaly's init of its trainable parts (dinomaly_mvtec_uni.py, dinomaly.md §2): every Linear
 * weight trunc_normal_(std 0.01, a −0.03, b 0.03) and bias 0; LayerNorm γ = 1, β = 0. Applied to
 * `root` and every module below it; reproducible under setInitSeed.
 */
export function applyDinomalyInit(root: Module): void {
  const visit = (m: Module): void => {
    if (m instanceof Linear) {
      const w = truncNormalInit(m.weight.shape, 0.01, -0.03, 0.03);
      m.weight.assign(w);
      w.dispose();
      if (m.bias) tf.tidy(() => m.bias?.assign(tf.zerosLike(m.bias)));
    } else if (m instanceof LayerNorm) {
      tf.tidy(() => {
        m.weight.assign(tf.onesLike(m.weight));
        m.bias.assign(tf.zerosLike(m.bias));
      });
    }
    for (const [, c] of m.namedChildren()) visit(c);
  };
  visit(root);
}
