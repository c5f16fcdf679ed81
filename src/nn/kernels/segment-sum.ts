/**
 * UnsortedSegmentSum for backends that lack it (wasm 4.22). tfjs' gather gradient needs it:
 * d(gather(x, idx, axis))/dx = unsortedSegmentSum(dy, idx, x.shape[axis]) (rows scattered back and
 * summed where an index repeats).
 *
 * Implemented as one exact pass in JS over the data (O(size of x), memory-bound), rather than a
 * one-hot matmul (O(|ids| · numSegments · inner) and an |ids| x numSegments temporary) or wasm's
 * ScatterNd (whose duplicate handling and out-of-range behaviour are not specified for wasm). Like
 * TensorFlow, ids outside [0, numSegments) contribute nothing. Float32 sums are accumulated in
 * float64, then rounded once.
 */
import * as tf from '@tensorflow/tfjs';
import { input, mark } from './kernel-util.js';

interface SegmentAttrs {
  numSegments: number;
}

export function unsortedSegmentSumValues(
  x: ArrayLike<number>,
  xShape: readonly number[],
  ids: ArrayLike<number>,
  idsShape: readonly number[],
  numSegments: number,
  dtype: 'float32' | 'int32',
): { values: Float32Array | Int32Array; shape: number[] } {
  const nIds = tf.util.sizeFromShape(idsShape as number[]);
  const innerShape = xShape.slice(idsShape.length);
  const inner = tf.util.sizeFromShape(innerShape);
  if (nIds * inner !== x.length) {
    throw new Error(`UnsortedSegmentSum: segmentIds shape [${idsShape}] is not a prefix of x shape [${xShape}]`);
  }
  const acc = dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float64Array(numSegments * inner);
  for (let k = 0; k < nIds; k++) {
    const s = ids[k];
    if (!(s >= 0 && s < numSegments)) continue;
    const src = k * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) acc[dst + j] += x[src + j];
  }
  const values = acc instanceof Int32Array ? acc : Float32Array.from(acc);
  return { values, shape: [numSegments, ...innerShape] };
}

const unsortedSegmentSum: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { numSegments } = attrs as unknown as SegmentAttrs;
  const x = input(inputs, 'x');
  const ids = input(inputs, 'segmentIds');
  const kb = backend as tf.KernelBackend;
  const dtype = x.dtype === 'int32' ? 'int32' : 'float32';
  const { values, shape } = unsortedSegmentSumValues(
    kb.readSync(x.dataId) as ArrayLike<number>,
    x.shape,
    kb.readSync(ids.dataId) as ArrayLike<number>,
    ids.shape,
    numSegments,
    dtype,
  );
  // A Tensor is a valid kernel output (engine checks `rank != null`); it lands on the active backend.
  return tf.tensor(values, shape, dtype);
};

export function segmentSumKernelConfig(backendName: string): tf.KernelConfig {
  return mark<tf.KernelConfig>({ kernelName: tf.UnsortedSegmentSum, backendName, kernelFunc: unsortedSegmentSum });
}
