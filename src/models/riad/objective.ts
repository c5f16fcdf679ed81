import * as tf from '@tensorflow/tfjs';
import { gaussianBlur2d, meanFilter2d, resizeBilinear, separableFilterValid } from '../../nn/layers/smoothing.js';
import { msgmsLoss, msgmsMap } from '../../nn/losses/msgms.js';
import { RIAD_SSIM, ssimLoss } from '../../nn/losses/ssim.js';
import type { MsgmsColour, RiadConfig, RiadSmoothing } from './config.js';

/**
 * RIAD's reconstruction, loss and anomaly map (riad.md §3–4). Everything here is pure tensor code
 * without its own state; callers run it inside tf.tidy / tf.variableGrads.
 */

/** [0, 1] images → RIAD's input range [−1, 1] (riad.md §2: mean 0.5, std 0.5 per channel). */
export function toModelRange(x01: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.sub(tf.mul(x01, 2), 1) as tf.Tensor4D);
}

/**
 * Reconstruction by inpainting (riad.md §3): Iᵣ = Σᵢ Hᵢ ⊙ f((1 − Hᵢ) ⊙ I), with Hᵢ the hidden
 * masks (1 = hidden, Σᵢ Hᵢ ≡ 1). Hidden pixels become 0 in [−1, 1] space (mid-grey). One forward
 * pass per mask, as taikiinoue45's `_reconstruct` (in training mode each pass has its own
 * BatchNorm batch statistics); gradients flow through all passes.
 */
export function reconstruct(f: (x: tf.Tensor4D) => tf.Tensor4D, x: tf.Tensor4D, hidden: readonly tf.Tensor4D[]): tf.Tensor4D {
  return tf.tidy(() => {
    let rec: tf.Tensor4D | null = null;
    for (const h of hidden) {
      const out = f(tf.mul(x, tf.sub(1, h)) as tf.Tensor4D);
      const part = tf.mul(out, h) as tf.Tensor4D;
      rec = rec === null ? part : (tf.add(rec, part) as tf.Tensor4D);
    }
    if (rec === null) throw new Error('reconstruct: no masks');
    return rec;
  });
}

// ------------------------------------------------------------------ plutoyuxie's grey/median MSGMS

/** Median of nine tensors with Paeth's 19-exchange network; min/max keep it differentiable. */
function median9(p: tf.Tensor[]): tf.Tensor {
  const v = [...p];
  const sort = (a: number, b: number) => {
    const lo = tf.minimum(v[a], v[b]);
    const hi = tf.maximum(v[a], v[b]);
    v[a] = lo;
    v[b] = hi;
  };
  const net: [number, number][] = [
    [1, 2], [4, 5], [7, 8], [0, 1], [3, 4], [6, 7], [1, 2], [4, 5], [7, 8], [0, 3],
    [5, 8], [4, 7], [3, 6], [1, 4], [2, 5], [4, 7], [4, 2], [6, 4], [4, 2],
  ];
  for (const [a, b] of net) sort(a, b);
  return v[4];
}

/** 3×3 median filter of NHWC, zero padding 1 (kornia MedianBlur((3, 3)), as plutoyuxie). */
export function medianBlur3(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]);
    const taps: tf.Tensor[] = [];
    for (let dy = 0; dy < 3; dy++) for (let dx = 0; dx < 3; dx++) taps.push(tf.slice(xp, [0, dy, dx, 0], [n, h, w, c]));
    return median9(taps) as tf.Tensor4D;
  });
}

/**
 * plutoyuxie's GMS (losses/gms_loss.py): channel mean → 3×3 median → Prewitt WITHOUT padding
 * (maps shrink by 2), g = √(gx² + gy²), GMS = (2·g₁g₂ + c)/(g₁² + g₂² + c). A 1e-12 inside the
 * root keeps its gradient finite at g = 0 (the reference has none and can produce NaN gradients).
 */
function gmsGreyMedian(a: tf.Tensor4D, b: tf.Tensor4D, c = 0.0026): tf.Tensor4D {
  return tf.tidy(() => {
    const grad = (x: tf.Tensor4D) => {
      const m = medianBlur3(tf.mean(x, 3, true) as tf.Tensor4D);
      const gx = separableFilterValid(m, [1 / 3, 1 / 3, 1 / 3], [1, 0, -1]);
      const gy = separableFilterValid(m, [1, 0, -1], [1 / 3, 1 / 3, 1 / 3]);
      return tf.sqrt(tf.add(tf.add(tf.square(gx), tf.square(gy)), 1e-12));
    };
    const g1 = grad(a);
    const g2 = grad(b);
    return tf.div(tf.add(tf.mul(tf.mul(g1, g2), 2), c), tf.add(tf.add(tf.square(g1), tf.square(g2)), c)) as tf.Tensor4D;
  });
}

/** Per scale: the pair, 2×2 average-pooled s times (F.avg_pool2d, floor sizes). */
function scalePairs(a: tf.Tensor4D, b: tf.Tensor4D, scales: number): [tf.Tensor4D, tf.Tensor4D][] {
  const out: [tf.Tensor4D, tf.Tensor4D][] = [[a, b]];
  for (let s = 1; s < scales; s++) {
    const [pa, pb] = out[s - 1];
    out.push([tf.avgPool(pa, 2, 2, 'valid'), tf.avgPool(pb, 2, 2, 'valid')]);
  }
  return out;
}

function greyMedianLoss(a: tf.Tensor4D, b: tf.Tensor4D, scales: number): tf.Scalar {
  return tf.tidy(() => {
    const terms = scalePairs(a, b, scales).map(([x, y]) => tf.mean(tf.sub(1, gmsGreyMedian(x, y))));
    return tf.div(tf.addN(terms), scales) as tf.Scalar;
  });
}

function greyMedianMap(a: tf.Tensor4D, b: tf.Tensor4D, scales: number): tf.Tensor4D {
  const [, h, w] = a.shape;
  return tf.tidy(() => {
    const ups = scalePairs(a, b, scales).map(([x, y]) => resizeBilinear(gmsGreyMedian(x, y), [h, w], false));
    return tf.sub(1, tf.div(tf.addN(ups), scales)) as tf.Tensor4D;
  });
}

// ------------------------------------------------------------------ loss and map

export interface LossTerms {
  total: tf.Scalar;
  mse: tf.Scalar;
  msgms: tf.Scalar;
  ssim: tf.Scalar;
}

/**
 * riad.md §3: L = λ_M·MSE(I, Iᵣ) + λ_G·L_MSGMS(I, Iᵣ) + λ_S·L_SSIM(I, Iᵣ), all means over every
 * element; SSIM with RIAD's constants (C1 = 0.01², C2 = 0.03² although data are in [−1, 1]).
 */
export function riadLossTerms(
  x: tf.Tensor4D,
  rec: tf.Tensor4D,
  c: Pick<RiadConfig, 'lossWeights' | 'msgmsScales' | 'msgmsColour'>,
): LossTerms {
  return tf.tidy(() => {
    const mse = tf.mean(tf.squaredDifference(x, rec)) as tf.Scalar;
    const msgms =
      c.msgmsColour === 'rgb' ? msgmsLoss(x, rec, { numScales: c.msgmsScales }) : greyMedianLoss(x, rec, c.msgmsScales);
    const ssim = ssimLoss(x, rec, RIAD_SSIM);
    const w = c.lossWeights;
    const total = tf.addN([tf.mul(mse, w.mse), tf.mul(msgms, w.msgms), tf.mul(ssim, w.ssim)]) as tf.Scalar;
    return { total, mse, msgms, ssim };
  });
}

export function riadLoss(x: tf.Tensor4D, rec: tf.Tensor4D, c: Pick<RiadConfig, 'lossWeights' | 'msgmsScales' | 'msgmsColour'>): tf.Scalar {
  return tf.tidy(() => riadLossTerms(x, rec, c).total);
}

/**
 * Gₖ of riad.md §4 step 2: 1 − mean over scales of the GMS maps (bilinear to full size,
 * half-pixel centres), channel mean → [N, H, W, 1].
 */
export function msgmsAnomalyMap(x: tf.Tensor4D, rec: tf.Tensor4D, scales: number, colour: MsgmsColour): tf.Tensor4D {
  return colour === 'rgb' ? msgmsMap(x, rec, { numScales: scales }) : greyMedianMap(x, rec, scales);
}

/** riad.md §4 step 4. */
export function smoothMap(map: tf.Tensor4D, s: RiadSmoothing): tf.Tensor4D {
  return s.kind === 'mean' ? meanFilter2d(map, s.size) : gaussianBlur2d(map, s.sigma);
}

/**
 * riad.md §4 steps 2–5 for reconstructions Iᵣ,ₖ of one batch: A = MEAN over the reconstructions
 * of Gₖ (channel mean of 1 − mean-over-scales GMS), smoothed, image score = max of the smoothed map.
 * Every k has the same weight 1/|K|. plutoyuxie's test.py instead divides each Gₖ by
 * N² = (256/k)², i.e. weights ∝ k² (k = 16 counts 64× more than k = 2; riad.md §6) — not copied.
 * The 1/|K| factor itself (taikiinoue45 sums) changes no ranking. Maps [N, H, W], scores [N].
 */
export function anomalyFromReconstructions(
  x: tf.Tensor4D,
  recs: readonly tf.Tensor4D[],
  c: Pick<RiadConfig, 'msgmsScales' | 'msgmsColour' | 'smoothing'>,
): { scores: tf.Tensor1D; maps: tf.Tensor3D } {
  return tf.tidy(() => {
    const [n, h, w] = x.shape;
    const gk = recs.map((rec) => msgmsAnomalyMap(x, rec, c.msgmsScales, c.msgmsColour));
    const a = tf.div(tf.addN(gk), gk.length) as tf.Tensor4D;
    const smoothed = smoothMap(a, c.smoothing);
    const scores = tf.max(smoothed.reshape([n, h * w]), 1) as tf.Tensor1D;
    return { scores, maps: smoothed.reshape([n, h, w]) as tf.Tensor3D };
  });
}
