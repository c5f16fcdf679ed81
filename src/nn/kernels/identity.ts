/**
 * wasm Identity that shares the input's memory (refcounted, as wasm's own Reshape and the cpu
 * backend's Identity do) instead of copying it.
 *
 * Why: tfjs-core clones every tensor it saves for a gradient (engine.saveTensorsForBackwardMode,
 * customGrad's save, tf.clone) through the Identity kernel, and tfjs-backend-wasm 4.22's Identity
 * copies the data. So on wasm every activation kept for the backward pass existed twice and cost
 * a copy pass (measured: a 12-layer matMul+ReLU chain's forward grew by 1 MB per layer instead
 * of 0.5 MB). Tensor data is immutable in tfjs (a variable's assign takes a new buffer), so
 * sharing is safe.
 */
import * as tf from '@tensorflow/tfjs';
import { mark, type WasmBackendInternals } from './kernel-util.js';

export function identityKernelConfig(backendName: string, native: tf.KernelConfig | undefined): tf.KernelConfig {
  return mark<tf.KernelConfig>({
    kernelName: tf.Identity,
    backendName,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      // strings live outside the heap: keep the backend's own path
      if (x.dtype === 'string' && native) return native.kernelFunc(args);
      (args.backend as unknown as WasmBackendInternals).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  });
}
