/**
 * Fused per-channel and optimizer ops: one wasm kernel each where the heap kernels are installed
 * (src/nn/simd/heapKernels.ts), the equivalent tf op chain on every other backend. None of them is
 * differentiable: they are for tf.customGrad bodies (BatchNorm's forward and backward) and
 * optimizer updates, which run off the gradient tape.
 */
import * as tf from '@tensorflow/tfjs';
import { ADAM_STEP, AFFINE_RELU_GRAD, CHANNEL_AFFINE, CHANNEL_DOT, heapKernelsInstalled, type AdamStepAttrs } from '../simd/heapKernels.js';

function fused(): boolean {
  return heapKernelsInstalled() && tf.getBackend() === 'wasm';
}

const leading = (t: tf.Tensor): number[] => Array.from({ length: t.rank - 1 }, (_, i) => i);

/** Σ a·b over every axis but the last (÷ count when `mean`): [C]. */
export function channelDot(a: tf.Tensor, b: tf.Tensor, mean = false): tf.Tensor1D {
  if (fused() && a.dtype === 'float32' && b.dtype === 'float32' && tf.util.arraysEqual(a.shape, b.shape) && a.rank >= 2) {
    return tf.engine().runKernel(CHANNEL_DOT, { a, b }, { mean } as unknown as tf.NamedAttrMap) as tf.Tensor1D;
  }
  return tf.tidy(() => {
    const prod = tf.mul(a, b);
    return (mean ? tf.mean(prod, leading(a)) : tf.sum(prod, leading(a))) as tf.Tensor1D;
  });
}

/** p·u + q·v + w with u, v, w one value per channel (last axis), then ReLU when `relu`; q has p's shape. */
export function channelAffine<T extends tf.Tensor>(p: T, u: tf.Tensor1D, q: tf.Tensor, v: tf.Tensor1D, w: tf.Tensor1D, relu = false): T {
  const C = p.shape[p.rank - 1];
  const ok = [u, v, w].every((t) => t.size === C && t.dtype === 'float32') && p.dtype === 'float32' && tf.util.arraysEqual(p.shape, q.shape);
  if (fused() && ok) {
    const inputs = { p, q, u: tf.reshape(u, [C]), v: tf.reshape(v, [C]), w: tf.reshape(w, [C]) };
    return tf.engine().runKernel(CHANNEL_AFFINE, inputs, { relu } as unknown as tf.NamedAttrMap) as T;
  }
  return tf.tidy(() => {
    const y = tf.add(tf.add(tf.mul(p, u), tf.mul(q, v)), w);
    return (relu ? tf.relu(y) : y) as T;
  });
}

/** dz where xc·s + b > 0, else 0: the ReLU gradient of relu(xc·s + b) (s, b per channel). */
export function affineReluGrad<T extends tf.Tensor>(dz: T, xc: tf.Tensor, s: tf.Tensor1D, b: tf.Tensor1D): T {
  const C = xc.shape[xc.rank - 1];
  if (fused() && dz.dtype === 'float32' && xc.dtype === 'float32' && tf.util.arraysEqual(dz.shape, xc.shape) && s.size === C && b.size === C) {
    return tf.engine().runKernel(AFFINE_RELU_GRAD, { dz, xc, s: tf.reshape(s, [C]), b: tf.reshape(b, [C]) }) as T;
  }
  return tf.tidy(() => tf.mul(dz, tf.step(tf.add(tf.mul(xc, s), b))) as T);
}

/** One Adam/AdamW update (see heapModule.ts adamStep): [θ_new, m', v']. */
export function adamStep(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, a: AdamStepAttrs): [tf.Tensor, tf.Tensor, tf.Tensor] {
  if (fused() && [p, g, m, v].every((t) => t.dtype === 'float32' && tf.util.arraysEqual(t.shape, p.shape))) {
    return tf.engine().runKernel(ADAM_STEP, { p, g, m, v }, a as unknown as tf.NamedAttrMap) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
  }
  return tf.tidy(() => {
    const theta = a.decay === 1 ? p : tf.mul(p, a.decay);
    const gg = a.weightDecay === 0 ? g : tf.add(g, tf.mul(p, a.weightDecay));
    const m1 = tf.add(tf.mul(m, a.beta1), tf.mul(gg, 1 - a.beta1));
    const v1 = tf.add(tf.mul(v, a.beta2), tf.mul(tf.mul(gg, gg), 1 - a.beta2));
    const denom = tf.add(tf.div(tf.sqrt(v1), a.bc2Sqrt), a.eps);
    return [tf.sub(theta, tf.div(tf.mul(m1, a.stepSize), denom)), m1, v1];
  });
}
