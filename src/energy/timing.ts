import * as tf from '@tensorflow/tfjs';
import { performance } from 'node:perf_hooks';

/**
 * Inference latency as the paper's "inference time per image": the median over repeated calls
 * after warm-up (the first calls compile/allocate), divided by the batch size. The median resists
 * GC pauses and the scheduler noise of a shared machine better than the mean.
 */

export interface TimeInferenceOptions {
  /** Untimed calls first; default 3. */
  warmup?: number;
  /** Timed calls; default 10. */
  repeats?: number;
  /** Images per call, to report per-image times; default 1. */
  batch?: number;
}

export interface InferenceTiming {
  batch: number;
  warmup: number;
  repeats: number;
  medianSPerCall: number;
  medianSPerImage: number;
  meanSPerImage: number;
  minSPerImage: number;
  maxSPerImage: number;
  /** Every timed call, seconds per call. */
  samplesS: number[];
  method: string;
}

function isTensorLike(x: unknown): x is tf.Tensor {
  return x instanceof tf.Tensor;
}

function tensorsIn(x: unknown, out: tf.Tensor[] = []): tf.Tensor[] {
  if (isTensorLike(x)) out.push(x);
  else if (Array.isArray(x)) for (const v of x) tensorsIn(v, out);
  else if (x && typeof x === 'object' && !(x instanceof Promise)) for (const v of Object.values(x)) tensorsIn(v, out);
  return out;
}

/**
 * Times `fn`. Tensors it returns (alone, in arrays or objects) are read back (`await data()`, so
 * asynchronous backends finish the work inside the timed span) and then disposed.
 */
export async function timeInference(fn: () => unknown, opts: TimeInferenceOptions = {}): Promise<InferenceTiming> {
  const warmup = opts.warmup ?? 3;
  const repeats = opts.repeats ?? 10;
  const batch = opts.batch ?? 1;
  if (repeats < 1 || batch < 1 || warmup < 0) throw new RangeError('timeInference: repeats and batch must be >= 1, warmup >= 0');
  const once = async (): Promise<number> => {
    const t0 = performance.now();
    const r = await fn();
    const ts = tensorsIn(r);
    await Promise.all(ts.map((t) => t.data()));
    const dt = (performance.now() - t0) / 1000;
    for (const t of ts) if (!t.isDisposed) t.dispose();
    return dt;
  };
  for (let i = 0; i < warmup; i++) await once();
  const samplesS: number[] = [];
  for (let i = 0; i < repeats; i++) samplesS.push(await once());
  const sorted = [...samplesS].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const meanS = samplesS.reduce((a, b) => a + b, 0) / samplesS.length;
  return {
    batch,
    warmup,
    repeats,
    medianSPerCall: median,
    medianSPerImage: median / batch,
    meanSPerImage: meanS / batch,
    minSPerImage: sorted[0] / batch,
    maxSPerImage: sorted[sorted.length - 1] / batch,
    samplesS,
    method: `median of ${repeats} timed calls after ${warmup} warm-up calls at batch ${batch}, wall clock incl. read-back, / batch`,
  };
}
