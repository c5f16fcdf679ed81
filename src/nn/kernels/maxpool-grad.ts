/**
 * MaxPoolGrad for the wasm backend in plain JavaScript on the backend's heap: the gradient of each
 * window goes to its FIRST maximum in row-major order (tfjs-backend-cpu's maxPoolPositions rule,
 * also PyTorch's), so ties never lose or duplicate gradient.
 *
 * Why a kernel of its own: tfjs-wasm 4.22's MaxPoolGrad loses gradient (64 of 4096 values differ
 * from the cpu backend for a random [2,16,16,8] input, 2×2 stride 2, 6 % of the gradient mass
 * missing; more with ties, e.g. after a ReLU). registerWasmTrainingKernels installs this one
 * whatever ADBENCH_SIMD / ADBENCH_HEAP_KERNELS say; the SIMD heap kernels
 * (src/nn/simd/heapKernels.ts) put a faster 2×2 stride-2 path in front of it and fall back to it
 * for other windows, and uninstalling them brings this one back, never tfjs' own.
 */
import * as tf from '@tensorflow/tfjs';
import { mark, type WasmBackendInternals } from './kernel-util.js';

export interface PoolGradAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: unknown;
  dimRoundingMode?: string;
}

/** dx for a max pool of `input` with output gradient `dy` (NHWC float32), any window/stride/padding. */
export function maxPoolGradGeneric(b: WasmBackendInternals, dy: tf.TensorInfo, input: tf.TensorInfo, a: PoolGradAttrs): tf.TensorInfo {
  if (input.dtype !== 'float32' || dy.dtype !== 'float32' || input.shape.length !== 4) {
    throw new Error(`MaxPoolGrad: float32 NHWC tensors expected, got ${input.dtype} ${JSON.stringify(input.shape)}`);
  }
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number], a.filterSize, a.strides, 1,
    a.pad as 'valid' | 'same' | number, a.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
  );
  const dxInfo = b.makeOutput(input.shape, 'float32');
  const x = b.typedArrayFromHeap(input) as Float32Array;
  const g = b.typedArrayFromHeap(dy) as Float32Array;
  const dx = b.typedArrayFromHeap(dxInfo) as Float32Array;
  dx.fill(0);
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const kh = info.effectiveFilterHeight;
  const kw = info.effectiveFilterWidth;
  for (let n = 0; n < info.batchSize; n++) {
    for (let oy = 0; oy < OH; oy++) {
      const y0 = oy * info.strideHeight - info.padInfo.top;
      const yMin = Math.max(0, y0);
      const yMax = Math.min(H, y0 + kh);
      for (let ox = 0; ox < OW; ox++) {
        const x0 = ox * info.strideWidth - info.padInfo.left;
        const xMin = Math.max(0, x0);
        const xMax = Math.min(W, x0 + kw);
        const gBase = ((n * OH + oy) * OW + ox) * C;
        for (let c = 0; c < C; c++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (let yy = yMin; yy < yMax; yy++) {
            for (let xx = xMin; xx < xMax; xx++) {
              const i = ((n * H + yy) * W + xx) * C + c;
              if (x[i] > best) {
                best = x[i];
                at = i;
              }
            }
          }
          if (at >= 0) dx[at] += g[gBase + c];
        }
      }
    }
  }
  return dxInfo;
}

export function maxPoolGradKernelConfig(backendName: string): tf.KernelConfig {
  return mark<tf.KernelConfig>({
    kernelName: tf.MaxPoolGrad,
    backendName,
    kernelFunc: (args) => {
      const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
      return maxPoolGradGeneric(args.backend as unknown as WasmBackendInternals, dy, input, args.attrs as unknown as PoolGradAttrs);
    },
  });
}
