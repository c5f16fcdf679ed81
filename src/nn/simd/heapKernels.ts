/**
 * wasm kernels on heapModule.ts's SIMD code, running on tfjs-backend-wasm's own heap (no copies):
 *   - Sum and Mean over the leading axes of a float32 tensor (every per-channel reduction of NHWC
 *     data: BatchNorm statistics and gradients, bias gradients), replacing tfjs-wasm's transpose +
 *     scalar loop; other reductions go to the kernel registered before;
 *   - MaxPoolGrad: tfjs-wasm's own loses gradient (src/nn/kernels/maxpool-grad.ts, registered
 *     whatever the switches say); 2×2 stride-2 unpadded pooling (U-Net encoders) runs a SIMD
 *     kernel here, other windows that file's loop;
 *   - Concat and SplitV along any axis as one memory.copy per row;
 *   - kernels of our own, used through fusedOps.ts: ChannelDot (Σ a·b per channel),
 *     ChannelAffine (p·u + q·v + w per channel, optionally with ReLU), AffineReluGrad (the ReLU
 *     gradient of a fused BatchNorm+ReLU) and AdamStep (the whole Adam update in one pass).
 */
import * as tf from '@tensorflow/tfjs';
import { heapModuleBytes, type HeapExports } from './heapModule.js';
import { mark, type WasmBackendInternals } from '../kernels/kernel-util.js';
import { maxPoolGradGeneric, type PoolGradAttrs } from '../kernels/maxpool-grad.js';

export const CHANNEL_DOT = 'AdbenchChannelDot';
export const CHANNEL_AFFINE = 'AdbenchChannelAffine';
export const ADAM_STEP = 'AdbenchAdamStep';
export const AFFINE_RELU_GRAD = 'AdbenchAffineReluGrad';

type Args = Parameters<tf.KernelFunc>[0];

function wasmBackend(args: Args): WasmBackendInternals {
  return args.backend as unknown as WasmBackendInternals;
}

const off = (b: WasmBackendInternals, t: tf.TensorInfo): number => b.getMemoryOffset(t.dataId) >>> 0;

/** The axes as [0, k) with 0 < k < rank, else null (not a leading-axes reduction). */
function leadingAxes(axis: number | number[], shape: number[]): number | null {
  const axes = [...tf.util.parseAxisParam(axis, shape)].sort((a, b) => a - b);
  if (axes.length === 0 || axes.length >= shape.length) return null;
  return axes.every((a, i) => a === i) ? axes.length : null;
}

let compiled: WebAssembly.Module | null = null;
const instances = new WeakMap<WebAssembly.Memory, HeapExports>();

/**
 * The module instantiated on this backend's heap. Keyed by the memory: a wasm backend created
 * again (tf.removeBackend + re-registration) has a new heap, and an instance bound to the old one
 * would read and write the wrong memory.
 */
function exportsFor(b: WasmBackendInternals): HeapExports {
  const memory = b.wasm.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) throw new Error('heap kernels: the wasm backend does not export its memory');
  let ex = instances.get(memory);
  if (!ex) {
    compiled ??= new WebAssembly.Module(heapModuleBytes());
    ex = new WebAssembly.Instance(compiled, { env: { mem: memory } }).exports as unknown as HeapExports;
    instances.set(memory, ex);
  }
  return ex;
}

/** `floats` floats of scratch on the heap for the duration of `run`. */
function withScratch<T>(b: WasmBackendInternals, floats: number, run: (ptr: number) => T): T {
  const ptr = b.wasm._malloc(Math.max(16, floats * 4)) >>> 0;
  try {
    return run(ptr);
  } finally {
    b.wasm._free(ptr);
  }
}

function columnReduce(ex: HeapExports, b: WasmBackendInternals, x: tf.TensorInfo, y: tf.TensorInfo | null, k: number, keepDims: boolean, mean: boolean): tf.TensorInfo {
  const M = tf.util.sizeFromShape(x.shape.slice(0, k));
  const C = tf.util.sizeFromShape(x.shape.slice(k));
  const outShape = keepDims ? [...x.shape.slice(0, k).map(() => 1), ...x.shape.slice(k)] : x.shape.slice(k);
  const out = b.makeOutput(outShape, 'float32');
  withScratch(b, 2 * C, (blk) => {
    const fn = y ? ex.columnDot : ex.columnSum;
    fn(off(b, x), y ? off(b, y) : 0, M, C, off(b, out), blk, mean && M > 0 ? 1 / M : 1);
  });
  return out;
}

interface ReduceAttrs {
  axis: number | number[];
  keepDims: boolean;
}

function reduceKernel(native: tf.KernelConfig, mean: boolean): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const { axis, keepDims } = args.attrs as unknown as ReduceAttrs;
    const k = x.dtype === 'float32' ? leadingAxes(axis, x.shape) : null;
    if (k === null || x.shape.some((d) => d === 0)) return native.kernelFunc(args);
    const b = wasmBackend(args);
    return columnReduce(exportsFor(b), b, x, null, k, keepDims, mean);
  };
}

const isTwo = (v: number | [number, number]): boolean => (Array.isArray(v) ? v[0] === 2 && v[1] === 2 : v === 2);

/**
 * MaxPoolGrad with the first-maximum rule of src/nn/kernels/maxpool-grad.ts (tfjs-wasm's own
 * loses gradient): 2×2 stride-2 unpadded pools run the SIMD kernel, others that file's loop.
 */
function maxPoolGradKernel(): tf.KernelFunc {
  return (args) => {
    const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const a = args.attrs as unknown as PoolGradAttrs;
    const b = wasmBackend(args);
    if (input.dtype !== 'float32' || dy.dtype !== 'float32' || input.shape.length !== 4) return maxPoolGradGeneric(b, dy, input, a);
    const ex = exportsFor(b);
    const [N, H, W, C] = input.shape;
    const unpadded = a.pad === 'valid' || a.pad === 0;
    if (!isTwo(a.filterSize) || !isTwo(a.strides) || !unpadded || dy.shape[1] !== H >> 1 || dy.shape[2] !== W >> 1) {
      return maxPoolGradGeneric(b, dy, input, a);
    }
    const dx = b.makeOutput(input.shape, 'float32');
    if (H % 2 === 1 || W % 2 === 1) b.typedArrayFromHeap(dx).fill(0);
    ex.maxPoolGrad2x2(off(b, input), off(b, dy), N, H, W, C, off(b, dx));
    return dx;
  };
}

const BYTES: Partial<Record<tf.DataType, number>> = { float32: 4, int32: 4, bool: 1 };

/**
 * Concat along any axis as one memory.copy per (outer index, input): tfjs-wasm's own copies
 * row by row in JavaScript (U-Net skip connections: 6 concatenations were ~4 % of a DRAEM step).
 */
function concatKernel(native: tf.KernelConfig): tf.KernelFunc {
  return (args) => {
    const xs = (Object.values(args.inputs) as tf.TensorInfo[]).filter((t) => tf.util.sizeFromShape(t.shape) > 0);
    const { axis } = args.attrs as unknown as { axis: number | number[] };
    const first = args.inputs[0] as tf.TensorInfo | undefined;
    const bytes = first ? BYTES[first.dtype] : undefined;
    if (!first || !bytes || xs.length === 0 || xs.some((t) => t.dtype !== first.dtype || t.shape.length !== first.shape.length)) return native.kernelFunc(args);
    const ax = tf.util.parseAxisParam(axis, first.shape)[0];
    if (xs.some((t) => t.shape.some((d, i) => i !== ax && d !== first.shape[i]))) return native.kernelFunc(args);
    const M = tf.util.sizeFromShape(first.shape.slice(0, ax));
    const inner = tf.util.sizeFromShape(first.shape.slice(ax + 1));
    const outShape = [...first.shape];
    outShape[ax] = xs.reduce((s, t) => s + t.shape[ax], 0);
    const b = wasmBackend(args);
    const ex = exportsFor(b);
    const out = b.makeOutput(outShape, first.dtype);
    const outRow = outShape[ax] * inner * bytes;
    let col = 0;
    for (const t of xs) {
      const row = t.shape[ax] * inner * bytes;
      ex.copyRows(off(b, t), row, off(b, out) + col, outRow, row, M);
      col += row;
    }
    return out;
  };
}

/** SplitV (concat's gradient) the same way: one memory.copy per (outer index, output). */
function splitKernel(native: tf.KernelConfig): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
    const bytes = BYTES[x.dtype];
    if (!bytes) return native.kernelFunc(args);
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, numOrSizeSplits, ax);
    const M = tf.util.sizeFromShape(x.shape.slice(0, ax));
    const inner = tf.util.sizeFromShape(x.shape.slice(ax + 1));
    const b = wasmBackend(args);
    const ex = exportsFor(b);
    const inRow = x.shape[ax] * inner * bytes;
    const outs = sizes.map((n) => {
      const shape = [...x.shape];
      shape[ax] = n;
      return b.makeOutput(shape, x.dtype);
    });
    let col = 0;
    sizes.forEach((n, i) => {
      const row = n * inner * bytes;
      if (row > 0 && M > 0) ex.copyRows(off(b, x) + col, inRow, off(b, outs[i]), row, row, M);
      col += row;
    });
    return outs;
  };
}

function channelDotKernel(): tf.KernelFunc {
  return (args) => {
    const { a, b: bt } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { mean } = args.attrs as unknown as { mean: boolean };
    const b = wasmBackend(args);
    return columnReduce(exportsFor(b), b, a, bt, a.shape.length - 1, false, mean);
  };
}

function channelAffineKernel(): tf.KernelFunc {
  return (args) => {
    const { p, q, u, v, w } = args.inputs as Record<'p' | 'q' | 'u' | 'v' | 'w', tf.TensorInfo>;
    const { relu } = args.attrs as unknown as { relu: boolean };
    const b = wasmBackend(args);
    const ex = exportsFor(b);
    const C = p.shape[p.shape.length - 1];
    const out = b.makeOutput(p.shape, 'float32');
    ex.channelAffine(off(b, p), off(b, q), tf.util.sizeFromShape(p.shape) / C, C, off(b, u), off(b, v), off(b, w), off(b, out), relu ? 1 : 0);
    return out;
  };
}

function affineReluGradKernel(): tf.KernelFunc {
  return (args) => {
    const { dz, xc, s, b: shift } = args.inputs as Record<'dz' | 'xc' | 's' | 'b', tf.TensorInfo>;
    const b = wasmBackend(args);
    const ex = exportsFor(b);
    const C = xc.shape[xc.shape.length - 1];
    const out = b.makeOutput(xc.shape, 'float32');
    ex.affineReluGrad(off(b, dz), off(b, xc), tf.util.sizeFromShape(xc.shape) / C, C, off(b, s), off(b, shift), off(b, out));
    return out;
  };
}

export interface AdamStepAttrs {
  beta1: number;
  beta2: number;
  bc2Sqrt: number;
  stepSize: number;
  eps: number;
  /** coupled L2 weight (Adam), 0 for AdamW */
  weightDecay: number;
  /** 1 − lr·wd for AdamW, else 1 */
  decay: number;
}

function adamStepKernel(): tf.KernelFunc {
  return (args) => {
    const { p, g, m, v } = args.inputs as Record<'p' | 'g' | 'm' | 'v', tf.TensorInfo>;
    const a = args.attrs as unknown as AdamStepAttrs;
    const b = wasmBackend(args);
    const ex = exportsFor(b);
    const pOut = b.makeOutput(p.shape, 'float32');
    const mOut = b.makeOutput(p.shape, 'float32');
    const vOut = b.makeOutput(p.shape, 'float32');
    // The op chain computes 1 − β in float64 (a JS number) then rounds it to float32 as a scalar tensor.
    ex.adamStep(
      off(b, p), off(b, g), off(b, m), off(b, v), tf.util.sizeFromShape(p.shape),
      a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, a.bc2Sqrt, a.stepSize, a.eps, a.weightDecay, a.decay,
      off(b, pOut), off(b, mOut), off(b, vOut),
    );
    return [pOut, mOut, vOut];
  };
}

const uninstallers: (() => void)[] = [];

/** Whether the heap kernels are installed (fusedOps.ts takes the one-kernel paths then). */
export function heapKernelsInstalled(): boolean {
  return uninstallers.length > 0;
}

/**
 * Registers the kernels above for the wasm backend (after its own and registerWasmTrainingKernels'
 * kernels, which stay as fallbacks). Needs the backend initialised (its heap must exist). Returns
 * false where that is impossible (no wasm backend, or a build that does not export its memory).
 */
export function installHeapKernels(): boolean {
  if (heapKernelsInstalled()) return true;
  const backend = tf.findBackend('wasm') as unknown as WasmBackendInternals | null;
  const memory = backend?.wasm?.asm?.memory;
  const nativeSum = tf.getKernel(tf.Sum, 'wasm');
  const nativeMean = tf.getKernel(tf.Mean, 'wasm');
  const nativePoolGrad = tf.getKernel(tf.MaxPoolGrad, 'wasm');
  const nativeConcat = tf.getKernel(tf.Concat, 'wasm');
  const nativeSplit = tf.getKernel(tf.SplitV, 'wasm');
  if (!(memory instanceof WebAssembly.Memory) || !nativeSum || !nativeMean || !nativePoolGrad || !nativeConcat || !nativeSplit) return false;
  exportsFor(backend as WasmBackendInternals);
  const replaced: tf.KernelConfig[] = [];
  const replace = (prev: tf.KernelConfig, kernelFunc: tf.KernelFunc) => {
    tf.unregisterKernel(prev.kernelName, 'wasm');
    tf.registerKernel(mark<tf.KernelConfig>({ ...prev, kernelFunc }));
    replaced.push(prev);
  };
  replace(nativeSum, reduceKernel(nativeSum, false));
  replace(nativeMean, reduceKernel(nativeMean, true));
  replace(nativePoolGrad, maxPoolGradKernel());
  replace(nativeConcat, concatKernel(nativeConcat));
  replace(nativeSplit, splitKernel(nativeSplit));
  const own: [string, tf.KernelFunc][] = [[CHANNEL_DOT, channelDotKernel()], [CHANNEL_AFFINE, channelAffineKernel()], [ADAM_STEP, adamStepKernel()],
    [AFFINE_RELU_GRAD, affineReluGradKernel()]];
  for (const [kernelName, kernelFunc] of own) tf.registerKernel(mark<tf.KernelConfig>({ kernelName, backendName: 'wasm', kernelFunc }));
  uninstallers.push(() => {
    for (const cfg of replaced) {
      tf.unregisterKernel(cfg.kernelName, 'wasm');
      tf.registerKernel(cfg);
    }
    for (const [name] of own) tf.unregisterKernel(name, 'wasm');
  });
  return true;
}

/** Restores the kernels registered before installHeapKernels (tests, A/B benchmarks). */
export function uninstallHeapKernels(): void {
  while (uninstallers.length) (uninstallers.pop() as () => void)();
}
