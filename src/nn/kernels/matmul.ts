/**
 * BatchMatMul for wasm: route every case that can be to wasm's fast path.
 *
 * wasm 4.22's BatchMatMul hands only the plain case (batch 1, no transpose flags) to XNNPACK's
 * fully-connected operator (2.5-3.5 GMAC/s measured here); with transposeA/transposeB, or with a
 * batch, it runs a naive loop (~0.2 GMAC/s). Training hits the slow path constantly: tfjs' MatMul
 * gradient is dA = dC·Bᵀ (transposeB) and dB = Aᵀ·dC (transposeA), and a Linear layer applied to
 * [B, T, D] inputs is a batched product with a shared weight. So:
 *   - transposes are done explicitly (wasm's Transpose kernel is fast) before a plain product;
 *   - a batched A times an unbatched B is one [B·M, K] x [K, N] product.
 * A genuinely batched B (e.g. attention 'bij,bjk->bik') still uses wasm's own kernel.
 * Inner products re-enter this kernel in the plain case and go straight to the native kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { asTensor, input, mark } from './kernel-util.js';

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

function swapLast2(t: tf.Tensor): tf.Tensor {
  const r = t.rank;
  return tf.transpose(t, [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2]);
}

export function batchMatMulKernelConfig(backendName: string, native: tf.KernelConfig): tf.KernelConfig {
  const kernelFunc: tf.KernelFunc = (args) => {
    const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
    const a = input(args.inputs, 'a');
    const b = input(args.inputs, 'b');
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    const plain = !transposeA && !transposeB && batchA === 1 && batchB === 1;
    // Only rewrite what becomes a single plain product; everything else keeps the native kernel.
    const rewritable = batchB === 1 && (batchA === 1 || !transposeA) && a.dtype === 'float32' && b.dtype === 'float32';
    if (plain || !rewritable) return native.kernelFunc(args);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
    const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    if (k !== kb) {
      throw new Error(`Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ${b.shape} ` +
        `and transposeA=${transposeA} and transposeB=${transposeB} must match.`);
    }
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    return tf.tidy(() => {
      const at = asTensor(a);
      const bt = asTensor(b);
      const a2 = tf.reshape<tf.Rank.R2>(transposeA ? swapLast2(at) : at, [batchA * m, k]);
      const b2 = tf.reshape<tf.Rank.R2>(transposeB ? swapLast2(bt) : bt, [k, n]);
      return tf.reshape(tf.matMul(a2, b2), [...outer, m, n]);
    });
  };
  // Keep the native setup/dispose hooks: if we are registered before the wasm backend initialises,
  // the engine runs setupFunc of the registered config only, and the native kernelFunc needs it.
  return mark<tf.KernelConfig>({
    kernelName: tf.BatchMatMul,
    backendName,
    kernelFunc,
    setupFunc: native.setupFunc,
    disposeFunc: native.disposeFunc,
  });
}
