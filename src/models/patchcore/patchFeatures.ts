import * as tf from '@tensorflow/tfjs';

/**
 * PatchCore's locally aware patch features (Roth et al. 2022, sec. 3.1; official
 * `patchcore/common.py` + `patchcore.py`), parameter free:
 *   1. each tap's p x p zero-padded neighbourhood, flattened channel-major (c * p² + k);
 *   2. 1-D adaptive average pooling of that C·p² vector to `pretrainDim` (torch semantics);
 *   3. deeper taps bilinearly resized to the first tap's grid (half-pixel centres);
 *   4. concatenation and a second adaptive pooling to `targetDim`.
 * All steps are linear, so pooling before resizing (cheaper) gives the same result.
 */

/** Zero-padded p x p neighbourhoods: [N,H,W,C] -> [N,H,W,C*p*p], index c*p*p + ky*p + kx. */
export function unfoldNeighbourhood(x: tf.Tensor4D, p = 3): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const r = Math.floor(p / 2);
    const xp = tf.pad(x, [[0, 0], [r, p - 1 - r], [r, p - 1 - r], [0, 0]]);
    const shifts: tf.Tensor4D[] = [];
    for (let ky = 0; ky < p; ky++) {
      for (let kx = 0; kx < p; kx++) shifts.push(tf.slice(xp, [0, ky, kx, 0], [n, h, w, c]));
    }
    return tf.stack(shifts, 4).reshape([n, h, w, c * p * p]) as tf.Tensor4D;
  });
}

/** torch.nn.functional.adaptive_avg_pool1d bins: [floor(i*L/O), ceil((i+1)*L/O)). */
export function adaptiveBins(inLen: number, outLen: number): { start: Int32Array; end: Int32Array } {
  const start = new Int32Array(outLen);
  const end = new Int32Array(outLen);
  for (let i = 0; i < outLen; i++) {
    start[i] = Math.floor((i * inLen) / outLen);
    end[i] = Math.ceil(((i + 1) * inLen) / outLen);
  }
  return { start, end };
}

/**
 * Adaptive average pooling over the last axis, exact: sums `maxLen` gathered columns with
 * per-bin weights instead of a cumulative sum, which loses float32 precision over 9216 values.
 */
export function adaptiveAvgPoolLastAxis(x: tf.Tensor, outLen: number): tf.Tensor {
  const inLen = x.shape[x.shape.length - 1];
  if (inLen === outLen) return x.clone();
  return tf.tidy(() => {
    const lead = x.shape.slice(0, -1);
    const flat = x.reshape([-1, inLen]);
    if (inLen % outLen === 0) {
      return flat.reshape([-1, outLen, inLen / outLen]).mean(2).reshape([...lead, outLen]);
    }
    const { start, end } = adaptiveBins(inLen, outLen);
    let maxLen = 0;
    for (let i = 0; i < outLen; i++) maxLen = Math.max(maxLen, end[i] - start[i]);
    let acc: tf.Tensor | null = null;
    for (let j = 0; j < maxLen; j++) {
      const idx = new Int32Array(outLen);
      const wts = new Float32Array(outLen);
      for (let i = 0; i < outLen; i++) {
        const len = end[i] - start[i];
        idx[i] = Math.min(start[i] + j, inLen - 1);
        wts[i] = j < len ? 1 / len : 0;
      }
      const term = tf.mul(tf.gather(flat, tf.tensor1d(idx, 'int32'), 1), tf.tensor1d(wts));
      acc = acc ? tf.add(acc, term) : term;
    }
    return (acc as tf.Tensor).reshape([...lead, outLen]);
  });
}

export interface PatchFeatureOptions {
  patchSize: number;
  pretrainDim: number;
  targetDim: number;
}

/**
 * Feature maps of several taps (first = finest grid) -> patch features [N*H0*W0, targetDim] and
 * the grid size [H0, W0].
 */
export function locallyAwarePatchFeatures(
  taps: tf.Tensor4D[],
  opts: PatchFeatureOptions,
): { features: tf.Tensor2D; grid: [number, number] } {
  const [n, h0, w0] = taps[0].shape;
  const features = tf.tidy(() => {
    const pooled = taps.map((t) => {
      const u = unfoldNeighbourhood(t, opts.patchSize);
      let f = adaptiveAvgPoolLastAxis(u, opts.pretrainDim) as tf.Tensor4D;
      if (f.shape[1] !== h0 || f.shape[2] !== w0) {
        f = tf.image.resizeBilinear(f, [h0, w0], false, true);
      }
      return f;
    });
    const cat = pooled.length === 1 ? pooled[0] : tf.concat(pooled, 3);
    return adaptiveAvgPoolLastAxis(cat, opts.targetDim).reshape([n * h0 * w0, opts.targetDim]) as tf.Tensor2D;
  });
  return { features, grid: [h0, w0] };
}
