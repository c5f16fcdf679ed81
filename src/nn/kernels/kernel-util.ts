import * as tf from '@tensorflow/tfjs';

/**
 * Marks kernel and gradient configs registered by this folder, so registration is idempotent
 * (we never wrap our own gradient as "the original", never re-register our own kernel) even if
 * this module were loaded twice. Symbol.for makes the mark survive duplicate module instances.
 */
export const OURS: unique symbol = Symbol.for('adbench-tfjs.nn.kernels') as never;

export type Marked<T> = T & { [OURS]?: true };

export function mark<T extends object>(cfg: T): Marked<T> {
  return Object.assign(cfg, { [OURS]: true as const });
}

/**
 * The members of tfjs-backend-wasm's BackendWasm (4.22) that our wasm kernels use: outputs made on
 * its heap, views and offsets of tensors there, refcounts, and the emscripten module (its memory
 * and allocator).
 */
export interface WasmBackendInternals {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  getMemoryOffset(dataId: tf.DataId): number;
  incRef(dataId: tf.DataId): void;
  wasm: { asm?: { memory?: WebAssembly.Memory }; _malloc(bytes: number): number; _free(ptr: number): void };
}

export function isOurs(cfg: object | undefined | null): boolean {
  return cfg != null && (cfg as Marked<object>)[OURS] === true;
}

/**
 * Kernel inputs arrive as Tensors when the engine runs a kernel (the normal case: every tf op goes
 * through engine.runKernel with the op's Tensors). A backend calling a kernelFunc directly could pass
 * bare TensorInfos; wrap those in a Tensor that shares the data (the engine refcounts the dataId,
 * so disposing the wrapper at the end of our tidy leaves the caller's data alone).
 */
export function asTensor<R extends tf.Rank = tf.Rank>(info: tf.TensorInfo): tf.Tensor<R> {
  if ((info as Partial<tf.Tensor>).rank != null) return info as tf.Tensor<R>;
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor<R>;
}

export function asTensor4D(info: tf.TensorInfo): tf.Tensor4D {
  return asTensor<tf.Rank.R4>(info);
}

/** A named kernel input; the engine always provides the ones a kernel declares. */
export function input(inputs: tf.NamedTensorInfoMap, name: string): tf.TensorInfo {
  const t = inputs[name];
  if (t == null) throw new Error(`kernel input '${name}' is missing`);
  return t;
}

export type Shape4 = [number, number, number, number];

export function nhwcShape(shape: readonly number[], dataFormat: string | undefined): Shape4 {
  const [a, b, c, d] = shape;
  return dataFormat === 'NCHW' ? [a, c, d, b] : [a, b, c, d];
}

export function toNhwc(t: tf.Tensor4D, dataFormat: string | undefined): tf.Tensor4D {
  return dataFormat === 'NCHW' ? tf.transpose(t, [0, 2, 3, 1]) : t;
}

export function fromNhwc(t: tf.Tensor4D, dataFormat: string | undefined): tf.Tensor4D {
  return dataFormat === 'NCHW' ? tf.transpose(t, [0, 3, 1, 2]) : t;
}
