import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { expandCenter, projectToShell } from '../../augment/glass-gas.js';
import type { FeatureStrategy } from '../../augment/types.js';
import { noGrad } from '../../nn/gradControl.js';
import { bce } from '../../nn/losses/bce.js';
import type { Rng } from '../../util/rng.js';
import type { GlassConfig } from './config.js';

/** torch.quantile(x, q) with its default linear interpolation between order statistics. */
export function quantileLinear(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) throw new ConfigError('quantileLinear: no values');
  if (!(q >= 0 && q <= 1)) throw new ConfigError(`quantileLinear: q must lie in [0, 1], got ${q}`);
  const s = Float64Array.from(values).sort();
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/**
 * Feature-level LAS mask (glass.md §3 "LAS": M = 8×8 max-pool of the pixel mask): the maximum of
 * each grid cell's pixels, cell (i, j) spanning rows [⌊iH/gh⌋, ⌈(i+1)H/gh⌉) (adaptive max pooling;
 * exactly the stride-s max-pool when H = s·gh). Masks [n, H, W] (0/1) → [n·gh·gw], rows image-major.
 */
export function maskToGrid(mask: ArrayLike<number>, n: number, h: number, w: number, gh: number, gw: number): Float32Array {
  const out = new Float32Array(n * gh * gw);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < gh; i++) {
      const y0 = Math.floor((i * h) / gh);
      const y1 = Math.ceil(((i + 1) * h) / gh);
      for (let j = 0; j < gw; j++) {
        const x0 = Math.floor((j * w) / gw);
        const x1 = Math.ceil(((j + 1) * w) / gw);
        let m = 0;
        for (let y = y0; y < y1 && m === 0; y++) for (let x = x0; x < x1; x++) if (mask[b * h * w + y * w + x] > 0) { m = 1; break; }
        out[b * gh * gw + i * gw + j] = m;
      }
    }
  }
  return out;
}

/**
 * GLASS's focal loss (official loss.py FocalLoss, glass.md §3 step 6) on two-class probabilities
 * [1 − s, s] with 0/1 targets: one-hot clamped to [1e-5, 1 − 1e-5], p_t = Σ onehot·p + 1e-5,
 * l = −α (1 − p_t)^γ log p_t, averaged over rows with weight 1 (`keep` = 1) — OHEM passes its kept rows.
 */
export function glassFocalLoss(s: tf.Tensor1D, target: tf.Tensor1D, keep: tf.Tensor1D, gamma: number, alpha = 1): tf.Scalar {
  return tf.tidy(() => {
    const smooth = 1e-5;
    const t1 = tf.clipByValue(target, smooth, 1 - smooth);
    const t0 = tf.clipByValue(tf.sub(1, target), smooth, 1 - smooth);
    const pt = tf.add(tf.add(tf.mul(t0, tf.sub(1, s)), tf.mul(t1, s)), smooth);
    const l = tf.mul(tf.mul(tf.pow(tf.sub(1, pt), gamma), tf.log(pt)), -alpha);
    return tf.div(tf.sum(tf.mul(l, keep)), tf.maximum(tf.sum(keep), 1)) as tf.Scalar;
  });
}

/** What one GLASS step needs besides the networks. */
export interface GlassStepInputs {
  /** adaptor(emb(x)) of the clean images, [R, D] (on the tape). */
  T: tf.Tensor2D;
  /** adaptor(emb(x̃)) of their LAS images, [R, D] (on the tape). */
  F: tf.Tensor2D;
  /** Feature-level LAS mask, R values 0/1. */
  mask: Float32Array;
  /** Per-position centre c [P, D] (hypersphere mode; null in manifold mode). */
  center: tf.Tensor2D | null;
}

export interface GlassLossParts {
  total: tf.Scalar;
  bce: tf.Scalar;
  focal: tf.Scalar;
  /** r_t of this step (hypersphere mode; NaN in manifold mode). */
  radius: number;
}

/**
 * One GLASS objective (glass.md §3 steps 2-7, official glass.py `_train_discriminator`):
 * r_t → GAS (feature strategy from the registry) → L_bce on [T; G] → LAS features (hypersphere:
 * anomalous rows pushed to [2r_t, 4r_t] from c) → OHEM + focal on D(F). Runs inside the trainer's
 * gradient scope; G enters as T + stop_grad(G − T) (exact in manifold mode, the spec's accepted
 * approximation in hypersphere mode).
 */
export function glassLoss(
  c: GlassConfig,
  discriminator: (x: tf.Tensor2D) => tf.Tensor2D,
  gas: FeatureStrategy,
  inp: GlassStepInputs,
  rng: Rng,
): GlassLossParts {
  const { T, F, mask, center } = inp;
  const rows = T.shape[0];
  if (F.shape[0] !== rows || mask.length !== rows) throw new ConfigError(`GLASS: ${rows} clean rows, ${F.shape[0]} LAS rows, ${mask.length} mask values`);
  const hyper = c.distribution === 'hypersphere';
  if (hyper && !center) throw new ConfigError('GLASS hypersphere mode needs the per-epoch centre');
  // c tiled to every row (rows image-major), off the tape: a constant of this step.
  const cRows = hyper && center ? noGrad(() => expandCenter(center, rows)) : null;
  try {
    let radius = Number.NaN;
    if (cRows) {
      // Step 2: r_t = 0.75-quantile of ‖p − c‖ over T and the normal (M = 0) rows of F; a constant.
      const [dT, dF] = noGrad(() => tf.tidy(() => [tf.norm(tf.sub(T, cRows), 'euclidean', 1).dataSync(), tf.norm(tf.sub(F, cRows), 'euclidean', 1).dataSync()]));
      const pool: number[] = Array.from(dT);
      for (let i = 0; i < rows; i++) if (mask[i] === 0) pool.push(dF[i]);
      radius = quantileLinear(pool, c.radiusQuantile);
    }
    // Step 3: GAS returns G detached; the adaptor's gradient goes through T only.
    const G = gas.perturb(T, discriminator, rng, cRows ? { center: cRows, radius } : {});
    const total = tf.tidy(() => {
      const delta = noGrad(() => tf.sub(G, T));
      const Gt = tf.add(T, delta) as tf.Tensor2D;
      const out = discriminator(tf.concat([T, Gt], 0)).reshape([2 * rows]);
      const lossT = bce(out.slice([0], [rows]), tf.zeros([rows]));
      const lossG = bce(out.slice([rows], [rows]), tf.ones([rows]));
      const lBce = tf.add(lossT, lossG) as tf.Scalar;
      // Step 4: LAS features, hypersphere only (glass.md §3 step 4).
      const m = tf.tensor1d(mask);
      let Fp: tf.Tensor2D = F;
      if (cRows) {
        const pushed = projectToShell(F, cRows, 2 * radius, 4 * radius);
        // M ∈ {0, 1}: F + M·(pushed − F) selects per row, as the official masked assignment.
        Fp = tf.add(F, tf.mul(m.reshape([rows, 1]), tf.sub(pushed, F))) as tf.Tensor2D;
      }
      const s = discriminator(Fp).reshape([rows]) as tf.Tensor1D;
      // Step 5: OHEM keeps rows with (s − M)² at or above its median (a constant selection).
      const keep = noGrad(() => tf.tidy(() => {
        const e = tf.square(tf.sub(s, m));
        const thr = quantileLinear(e.dataSync(), c.ohemQuantile);
        return tf.cast(tf.greaterEqual(e, thr), 'float32') as tf.Tensor1D;
      }));
      const lFocal = glassFocalLoss(s, m, keep, c.focalGamma);
      return [tf.add(lBce, lFocal) as tf.Scalar, lBce, lFocal];
    }) as unknown as [tf.Scalar, tf.Scalar, tf.Scalar];
    G.dispose();
    return { total: total[0], bce: total[1], focal: total[2], radius };
  } finally {
    cRows?.dispose();
  }
}
