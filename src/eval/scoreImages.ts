import * as tf from '@tensorflow/tfjs';
import { ConfigError, TrainingError } from '../errors.js';
import type { AnomalyDetector, ImageSource } from '../models/types.js';
import type { Rng } from '../util/rng.js';

export interface ScoredSet {
  ids: string[];
  scores: Float32Array;
  /** One HxW map per image (input resolution). */
  maps: Float32Array[];
  height: number;
  width: number;
  seconds: number;
}

/**
 * Scores every image of a source in batches. Each batch's tensors are disposed before the next,
 * so memory stays flat however large the set (asserted in tests via tf.memory().numTensors).
 */
export interface ScoreOptions {
  keepMaps?: boolean;
  onBatch?: (done: number, total: number) => void;
  /**
   * Stochastic scorers (protocol `stochastic: true`): predict() gets `rng.fork('batch-<first index>')`,
   * so a batch's randomness depends only on the run seed, the set and where the batch starts.
   */
  rng?: Rng;
  /** Resize maps bilinearly (half-pixel centres) to this square size before they are kept (protocol `mapSize`). */
  mapSize?: number;
}

export async function scoreImages(
  detector: AnomalyDetector,
  source: ImageSource,
  batchSize: number,
  opts: ScoreOptions = {},
): Promise<ScoredSet> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ConfigError(`scoreImages: batch size must be a positive integer, got ${batchSize}`);
  const keepMaps = opts.keepMaps ?? true;
  const scores = new Float32Array(source.length);
  const maps: Float32Array[] = [];
  let height = source.height;
  let width = source.width;
  const t0 = performance.now();
  for (let s = 0; s < source.length; s += batchSize) {
    const e = Math.min(source.length, s + batchSize);
    const x = source.batch(s, e);
    const pred = detector.predict(x, opts.rng ? { rng: opts.rng.fork(`batch-${s}`) } : {});
    x.dispose();
    const sc = await pred.scores.data();
    scores.set(sc as Float32Array, s);
    if (opts.mapSize !== undefined && (pred.maps.shape[1] !== opts.mapSize || pred.maps.shape[2] !== opts.mapSize)) {
      const size = opts.mapSize;
      const resized = tf.tidy(() => tf.squeeze(tf.image.resizeBilinear(tf.expandDims(pred.maps, 3) as tf.Tensor4D, [size, size], false, true), [3]) as tf.Tensor3D);
      pred.maps.dispose();
      pred.maps = resized;
    }
    if (keepMaps) {
      const [n, h, w] = pred.maps.shape;
      height = h;
      width = w;
      const m = (await pred.maps.data()) as Float32Array;
      for (let i = 0; i < n; i++) maps.push(m.slice(i * h * w, (i + 1) * h * w));
    }
    tf.dispose([pred.scores, pred.maps]);
    opts.onBatch?.(e, source.length);
  }
  const bad = scores.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw new TrainingError(`the model produced a non-finite anomaly score (${scores[bad]}) for image ${source.ids[bad]}: training probably diverged`);
  }
  return { ids: [...source.ids], scores, maps, height, width, seconds: (performance.now() - t0) / 1000 };
}
