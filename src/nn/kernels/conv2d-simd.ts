/**
 * wasm Conv2D, FusedConv2D, BatchMatMul, Conv2DBackpropFilter and (stride 1) Conv2DBackpropInput
 * kernels on our own SIMD GEMM (src/nn/simd): relaxed-SIMD FMA and worker threads, about twice
 * XNNPACK's forward conv per core here (docs/performance.md). The stride-1 input gradient is one
 * engine conv with the flipped filter; the filter gradient is one GEMM of its own on the engine,
 * because its forward-conv form spends a quarter of its time in tfjs' single-threaded transposes.
 * Strided input gradients keep conv-kernels.ts' forward-conv form, whose convs run here too.
 *
 * Cases the engine does not take fall through to wasm's own kernel: NCHW, non-float32, FusedConv2D
 * with an activation other than linear/relu or a bias that is not one value per channel, and
 * tiny convolutions (below MIN_MACS the copy into the engine's memory costs more than XNNPACK's
 * cached weights save).
 */
import * as tf from '@tensorflow/tfjs';
import { EngineCapacityError, GemmEngine, type ConvGeometry2d } from '../simd/gemmEngine.js';
import { mark, type WasmBackendInternals } from './kernel-util.js';

const MIN_MACS = 2e5;

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
}

function geometry(info: tf.backend_util.Conv2DInfo): ConvGeometry2d {
  return {
    batch: info.batchSize,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    outChannels: info.outChannels,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    dilationHeight: info.dilationHeight,
    dilationWidth: info.dilationWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
  };
}

function simdConv(
  engine: GemmEngine,
  minMacs: number,
  native: tf.KernelFunc,
  args: Parameters<tf.KernelFunc>[0],
  fused: boolean,
): tf.TensorInfo | tf.TensorInfo[] {
  const { inputs, attrs } = args;
  const backend = args.backend as unknown as WasmBackendInternals;
  const a = attrs as unknown as ConvAttrs;
  const x = inputs.x as tf.TensorInfo;
  const filter = inputs.filter as tf.TensorInfo;
  const bias = fused ? (inputs.bias as tf.TensorInfo | undefined) : undefined;
  const activation = fused ? (a.activation ?? 'linear') : 'linear';
  const usable = (a.dataFormat ?? 'NHWC') === 'NHWC' && x.dtype === 'float32' && filter.dtype === 'float32'
    && (activation === 'linear' || activation === 'relu')
    && (bias == null || (bias.dtype === 'float32' && tf.util.sizeFromShape(bias.shape) === filter.shape[3]));
  if (!usable) return native(args);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filter.shape as [number, number, number, number],
    a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, false, 'channelsLast',
  );
  const macs = info.batchSize * info.outHeight * info.outWidth * info.outChannels * info.filterHeight * info.filterWidth * info.inChannels;
  if (macs < minMacs) return native(args);
  // Allocate first: allocation may grow the wasm heap, which detaches earlier heap views.
  const out = backend.makeOutput(info.outShape as number[], 'float32');
  const xv = backend.typedArrayFromHeap(x) as Float32Array;
  const fv = backend.typedArrayFromHeap(filter) as Float32Array;
  const bv = bias ? (backend.typedArrayFromHeap(bias) as Float32Array) : null;
  return orFallback(backend, out, native, args, () =>
    engine.conv2d(geometry(info), xv, fv, bv, activation === 'relu', backend.typedArrayFromHeap(out) as Float32Array, filter.dataId));
}

let warnedCapacity = false;
let fallbacks = 0;

/** Calls that did not fit the engine's memory and ran on tfjs' kernels instead (this process). */
export function simdCapacityFallbacks(): number {
  return fallbacks;
}

/**
 * Runs the engine into `out`; a call too large for the engine's memory (EngineCapacityError)
 * frees `out` and runs the fallback kernel instead, with one warning per process.
 */
function orFallback(
  backend: WasmBackendInternals, out: tf.TensorInfo, fallback: tf.KernelFunc, args: Parameters<tf.KernelFunc>[0], run: () => void,
): tf.TensorInfo | tf.TensorInfo[] {
  try {
    run();
    return out;
  } catch (e) {
    if (!(e instanceof EngineCapacityError)) throw e;
    backend.disposeData(out.dataId, true);
    fallbacks++;
    if (!warnedCapacity) {
      warnedCapacity = true;
      console.warn(`[backend] ${e.message}; such calls use tfjs' own wasm kernels (slower)`);
    }
    return fallback(args);
  }
}

/** Attributes of Conv2DBackpropFilter / Conv2DBackpropInput. */
interface BackpropAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: [number, number] | number;
}

interface BackpropFilterAttrs extends BackpropAttrs {
  filterShape: [number, number, number, number];
}

interface BackpropInputAttrs extends BackpropAttrs {
  inputShape: [number, number, number, number];
}

const isOne = (v: [number, number] | number | undefined): boolean => v === undefined || (typeof v === 'number' ? v === 1 : v.every((d) => d === 1));

/**
 * Conv2DBackpropFilter on the engine (GemmEngine.conv2dFilterGrad: one GEMM packing A from a
 * padded copy of x, none of the transposes and pads of conv-kernels.ts' forward-conv form). NCHW,
 * non-float32, dilated, tiny calls and a dy that does not match the geometry go to the kernel
 * registered before (conv-kernels.ts), as do all calls while `engine.directFilterGrad` is off.
 */
function simdFilterGrad(engine: GemmEngine, minMacs: number, prev: tf.KernelFunc, args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo | tf.TensorInfo[] {
  const a = args.attrs as unknown as BackpropFilterAttrs;
  const backend = args.backend as unknown as WasmBackendInternals;
  const x = args.inputs.x as tf.TensorInfo;
  const dy = args.inputs.dy as tf.TensorInfo;
  if (!engine.directFilterGrad || (a.dataFormat ?? 'NHWC') !== 'NHWC' || x.dtype !== 'float32' || dy.dtype !== 'float32'
    || !isOne(a.dilations) || x.shape.length !== 4 || dy.shape.length !== 4) return prev(args);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast',
  );
  if (!tf.util.arraysEqual(info.outShape, dy.shape)) return prev(args);
  const macs = info.batchSize * info.outHeight * info.outWidth * info.outChannels * info.filterHeight * info.filterWidth * info.inChannels;
  if (macs < minMacs) return prev(args);
  const out = backend.makeOutput([...a.filterShape], 'float32');
  const xv = backend.typedArrayFromHeap(x) as Float32Array;
  const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
  return orFallback(backend, out, prev, args, () =>
    engine.conv2dFilterGrad(geometry(info), xv, dyv, backend.typedArrayFromHeap(out) as Float32Array));
}

/**
 * Conv2DBackpropInput for stride 1, dilation 1 on the engine: dx = dy ⋆ W' as ONE forward conv,
 * W'[a, b, co, ci] = W[kh−1−a, kw−1−b, ci, co] (flipped taps, swapped channels; the engine packs
 * it straight from W: rearranging it in JS first cost more than the conv itself at 4×4×512) with
 * padding kh−1−top, kw−1−left, so the engine's implicit GEMM pads dy itself. conv-kernels.ts'
 * form needs a tf.pad of dy, a selection matMul for the flip and a transpose per call (7 % of the
 * DRAEM cpu-profile step). Strided and the rest: the previous kernel.
 */
function simdInputGrad(engine: GemmEngine, minMacs: number, prev: tf.KernelFunc, args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo | tf.TensorInfo[] {
  const a = args.attrs as unknown as BackpropInputAttrs;
  const backend = args.backend as unknown as WasmBackendInternals;
  const dy = args.inputs.dy as tf.TensorInfo;
  const filter = args.inputs.filter as tf.TensorInfo;
  if (!engine.directInputGrad || (a.dataFormat ?? 'NHWC') !== 'NHWC' || dy.dtype !== 'float32' || filter.dtype !== 'float32' || !isOne(a.strides) || !isOne(a.dilations)
    || dy.shape.length !== 4 || filter.shape.length !== 4) return prev(args);
  const info = tf.backend_util.computeConv2DInfo(
    a.inputShape, filter.shape as [number, number, number, number], 1, 1, a.pad, a.dimRoundingMode, false, 'channelsLast',
  );
  if (!tf.util.arraysEqual(info.outShape, dy.shape)) return prev(args);
  const [kh, kw, ci, co] = filter.shape;
  const macs = tf.util.sizeFromShape(a.inputShape) * kh * kw * co;
  // padding beyond the kernel's reach would crop dy: not a case the engine's padded image takes
  if (macs < minMacs || info.padInfo.top > kh - 1 || info.padInfo.left > kw - 1) return prev(args);
  const out = backend.makeOutput([...a.inputShape], 'float32');
  const g: ConvGeometry2d = {
    batch: info.batchSize, inHeight: info.outHeight, inWidth: info.outWidth, inChannels: co,
    filterHeight: kh, filterWidth: kw, outChannels: ci, strideHeight: 1, strideWidth: 1, dilationHeight: 1, dilationWidth: 1,
    padTop: kh - 1 - info.padInfo.top, padLeft: kw - 1 - info.padInfo.left, outHeight: info.inHeight, outWidth: info.inWidth,
  };
  const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
  const w = backend.typedArrayFromHeap(filter) as Float32Array;
  return orFallback(backend, out, prev, args, () => engine.conv2dFlipped(g, dyv, w, backend.typedArrayFromHeap(out) as Float32Array));
}

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

/**
 * BatchMatMul with an unbatched B and no transposed A ([..., M, K] · [K, N] or · [N, K]ᵀ): one
 * [batch·M, K] product on the engine. Everything else goes to the kernel registered before (our
 * matmul.ts wrapper, which rewrites transposed and broadcast cases into plain products that come
 * back here).
 */
function simdMatMul(engine: GemmEngine, minMacs: number, inner: tf.KernelFunc, args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo | tf.TensorInfo[] {
  const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
  const backend = args.backend as unknown as WasmBackendInternals;
  const a = args.inputs.a as tf.TensorInfo;
  const b = args.inputs.b as tf.TensorInfo;
  if (transposeA || a.dtype !== 'float32' || b.dtype !== 'float32' || b.shape.length < 2) return inner(args);
  const rb = b.shape.length;
  if (tf.util.sizeFromShape(b.shape.slice(0, -2)) !== 1) return inner(args);
  const ra = a.shape.length;
  const K = a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const M = tf.util.sizeFromShape(a.shape.slice(0, -1));
  if (K !== kb || M * K * N < minMacs) return inner(args);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = backend.makeOutput([...outer, a.shape[ra - 2], N], 'float32');
  return orFallback(backend, out, inner, args, () => engine.matMul(
    backend.typedArrayFromHeap(a) as Float32Array, backend.typedArrayFromHeap(b) as Float32Array, M, K, N, transposeB,
    backend.typedArrayFromHeap(out) as Float32Array, b.dataId,
  ));
}

let engine: GemmEngine | null = null;

/** The engine behind the wasm conv kernels, if installed. */
export function simdConvEngine(): GemmEngine | null {
  return engine;
}

/**
 * Replaces wasm's Conv2D, FusedConv2D, BatchMatMul, Conv2DBackpropFilter and Conv2DBackpropInput
 * by the SIMD GEMM versions (keeping the kernels registered before as the fallback; call after
 * registerWasmTrainingKernels, whose conv gradients become the fallbacks: without them those
 * kernels are left alone). No-op without the wasm backend package or when already installed.
 * Returns the engine.
 * `minMacs`: smaller convolutions keep XNNPACK (tests set 0 to route everything through the engine).
 */
export async function installSimdConvKernels(
  threads = GemmEngine.defaultThreads(),
  opts: { minMacs?: number; maxPages?: number } = {},
): Promise<GemmEngine | null> {
  const minMacs = opts.minMacs ?? MIN_MACS;
  if (engine) return engine;
  const nativeConv = tf.getKernel(tf.Conv2D, 'wasm');
  const nativeFused = tf.getKernel(tf.FusedConv2D, 'wasm');
  const innerMatMul = tf.getKernel(tf.BatchMatMul, 'wasm');
  const prevFilterGrad = tf.getKernel(tf.Conv2DBackpropFilter, 'wasm');
  const prevInputGrad = tf.getKernel(tf.Conv2DBackpropInput, 'wasm');
  if (nativeConv == null || nativeFused == null || innerMatMul == null) return null;
  const e = await GemmEngine.create(threads, { maxPages: opts.maxPages });
  engine = e;
  // Each replacement keeps the replaced kernel's setup/dispose hooks and falls back to its kernelFunc.
  const replace = (prev: tf.KernelConfig, kernelFunc: tf.KernelFunc) => {
    tf.unregisterKernel(prev.kernelName, 'wasm');
    tf.registerKernel(mark<tf.KernelConfig>({
      kernelName: prev.kernelName, backendName: 'wasm', setupFunc: prev.setupFunc, disposeFunc: prev.disposeFunc, kernelFunc,
    }));
  };
  replace(nativeConv, (args) => simdConv(e, minMacs, nativeConv.kernelFunc, args, false));
  replace(nativeFused, (args) => simdConv(e, minMacs, nativeFused.kernelFunc, args, true));
  replace(innerMatMul, (args) => simdMatMul(e, minMacs, innerMatMul.kernelFunc, args));
  const replaced = [nativeConv, nativeFused, innerMatMul];
  if (prevFilterGrad != null) {
    replace(prevFilterGrad, (args) => simdFilterGrad(e, minMacs, prevFilterGrad.kernelFunc, args));
    replaced.push(prevFilterGrad);
  }
  if (prevInputGrad != null) {
    replace(prevInputGrad, (args) => simdInputGrad(e, minMacs, prevInputGrad.kernelFunc, args));
    replaced.push(prevInputGrad);
  }
  uninstallers.push(() => {
    for (const cfg of replaced) {
      tf.unregisterKernel(cfg.kernelName, 'wasm');
      tf.registerKernel(cfg);
    }
    e.dispose();
    engine = null;
  });
  return e;
}

const uninstallers: (() => void)[] = [];

/** Restores wasm's own conv kernels and stops the engine's threads (tests, A/B benchmarks). */
export function uninstallSimdConvKernels(): void {
  while (uninstallers.length) (uninstallers.pop() as () => void)();
}
