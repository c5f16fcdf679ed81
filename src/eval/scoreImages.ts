import * as tf from '@tensorflow/tfjs';
import { TrainingError } from '../errors.js';
import type { AnomalyDetector, ImageSource } from '../models/types.js';

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
export async function scoreImages(
  detector: AnomalyDetector,
  source: ImageSource,
  batchSize: number,
  opts: { keepMaps?: boolean; onBatch?: (done: number, total: number) => void } = {},
): Promise<ScoredSet> {
  const keepMaps = opts.keepMaps ?? true;
  const scores = new Float32Array(source.length);
  const maps: Float32Array[] = [];
  let height = source.height;
  let width = source.width;
  const t0 = performance.now();
  for (let s = 0; s < source.length; s += batchSize) {
    const e = Math.min(source.length, s + batchSize);
    const x = source.batch(s, e);
    const pred = detector.predict(x);
    x.dispose();
    const sc = await pred.scores.data();
    scores.set(sc as Float32Array, s);
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
