/**
 * Training support for the wasm backend (tfjs-backend-wasm 4.22).
 *
 * wasm ships forward convolutions (XNNPACK, 8-15 GMAC/s) but no Conv2DBackpropFilter, no depthwise
 * backprop kernels, no Einsum and no UnsortedSegmentSum (gather's gradient), and its
 * Conv2DBackpropInput runs < 1 GMAC/s. We add:
 *   - wasm kernels Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter/Input, and a
 *     replacement Conv2DBackpropInput (also tf.conv2dTranspose's forward), all built from forward
 *     convolutions (conv-math.ts, conv-kernels.ts);
 *   - a wasm BatchMatMul wrapper that turns transposed / shared-weight batched products (every
 *     MatMul gradient, Linear layers on [B,T,D]) into wasm's fast plain product (matmul.ts);
 *   - wasm kernels UnsortedSegmentSum and Einsum (segment-sum.ts, einsum.ts), and an Einsum
 *     gradient (tfjs-core has none on any backend);
 *   - a MaxPoolGrad that gives each window's gradient to its first maximum (tfjs-wasm's own loses
 *     gradient; maxpool-grad.ts);
 *   - an Identity that shares memory instead of copying (every tensor saved for a gradient is
 *     cloned through it; identity.ts);
 *   - backend-independent gradient overrides for Conv2D / DepthwiseConv2dNative that support
 *     dilation > 1, delegating to tfjs' own gradients otherwise (gradients.ts).
 *
 * Kernels rather than gradient overrides are the main mechanism because every gradient path
 * (tfjs' conv/depthwise/conv2dTranspose gradients, tf.fused.conv2d's customGrad) ends in these
 * kernels, and conv2dTranspose's forward pass can only be fixed at the kernel level.
 */
import * as tf from '@tensorflow/tfjs';
import { convKernelConfigs } from './conv-kernels.js';
import { einsumGradConfig, einsumKernelConfig } from './einsum.js';
import { identityKernelConfig } from './identity.js';
import { registerConvGradients } from './gradients.js';
import { isOurs } from './kernel-util.js';
import { batchMatMulKernelConfig } from './matmul.js';
import { maxPoolGradKernelConfig } from './maxpool-grad.js';
import { segmentSumKernelConfig } from './segment-sum.js';

const WASM = 'wasm';

/**
 * Registers what training on wasm is missing. Idempotent and safe on any backend: kernels are keyed
 * by backend name, so the wasm ones never affect cpu/tensorflow/webgl, and a kernel wasm already
 * has natively is kept (except Conv2DBackpropInput, deliberately replaced by the fast version).
 * The wasm kernels are only registered once @tensorflow/tfjs-backend-wasm has been imported (its
 * import registers wasm's kernels; registering ours before would let that import overwrite our
 * Conv2DBackpropInput), so call this after initBackend(); calling it again later is harmless.
 */
export function registerWasmTrainingKernels(): void {
  registerConvGradients();
  // tfjs-core has no Einsum gradient at all; add ours unless a real one exists (future versions).
  const eg = tf.getGradient(tf.Einsum);
  if (eg == null) tf.registerGradient(einsumGradConfig());
  if (tf.getKernel(tf.Conv2D, WASM) == null) return; // wasm backend package not loaded
  const nativeIdentity = tf.getKernel(tf.Identity, WASM);
  const configs = [
    ...convKernelConfigs(WASM),
    { config: identityKernelConfig(WASM, nativeIdentity && !isOurs(nativeIdentity) ? nativeIdentity : undefined), replaceNative: true },
    { config: segmentSumKernelConfig(WASM), replaceNative: false },
    { config: einsumKernelConfig(WASM), replaceNative: false },
    // tfjs-wasm's own loses gradient: replaced on every switch setting (maxpool-grad.ts)
    { config: maxPoolGradKernelConfig(WASM), replaceNative: true },
  ];
  // BatchMatMul wraps wasm's own kernel (kept for the cases it runs fast), so capture it first.
  const nativeMatMul = tf.getKernel(tf.BatchMatMul, WASM);
  if (nativeMatMul != null && !isOurs(nativeMatMul)) {
    configs.push({ config: batchMatMulKernelConfig(WASM, nativeMatMul), replaceNative: true });
  }
  for (const { config, replaceNative } of configs) {
    const existing = tf.getKernel(config.kernelName, WASM);
    if (isOurs(existing)) continue;
    if (existing != null) {
      if (!replaceNative) continue;
      tf.unregisterKernel(config.kernelName, WASM);
    }
    tf.registerKernel(config);
  }
}
