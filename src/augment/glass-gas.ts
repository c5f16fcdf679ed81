/**
 * GLASS global anomaly synthesis at feature level (GAS; glass.md §3 step 3, official glass.py):
 * G = T + ε, ε ~ N(0, 0.015²) element-wise; then `steps` (20) rounds of gradient ASCENT on
 * L_g = BCE(D(G), 1), with D run on the stacked batch [T; G] (so BatchNorm in train mode sees both),
 * G ← G + stepSize · g/(‖g‖₂ + 1e−10) per row (stepSize 0.001), and every `projectEvery` (5)
 * rounds a truncated projection:
 * - manifold:    h = G − T, G ← T + h·clamp(‖h‖, 0.5, 1.0)/‖h‖;
 * - hypersphere: h = G − c, G ← c + h·clamp(‖h‖, r_t, 2r_t)/‖h‖ (c = per-position centre, r_t given).
 * With the defaults the last round projects, so the returned rows satisfy the radius bounds exactly
 * (glass.md §7.3). The result is detached: GLASS's adaptor gradient uses T + stop_grad(G − T), i.e.
 * `T.add(tf.sub(G, T))` with G constant, which the caller builds in its own tape.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../errors.js';
import { innerGrad, noGrad } from '../nn/gradControl.js';
import type { Rng } from '../util/rng.js';
import { type ParamSpec, type ParamsOf, paramRecord, resolveParams } from './params.js';
import type { FeatureContext, FeatureDiscriminator, FeatureStrategy, StrategyOptions, StrategyRecord } from './types.js';

export const GLASS_GAS_PARAMS = {
  mode: { default: 'manifold', choices: ['manifold', 'hypersphere'], doc: "truncated projection: 'manifold' (around T) or 'hypersphere' (around the centre c); per-class table in glass.md §3" },
  noiseStd: { default: 0.015, min: 0, max: 10, doc: 'σ of the initial Gaussian noise ε' },
  steps: { default: 20, min: 0, max: 1000, doc: 'gradient-ascent rounds (official `step`)' },
  stepSize: { default: 0.001, min: 0, max: 10, doc: 'normalised ascent step per round' },
  projectEvery: { default: 5, min: 1, max: 1000, doc: 'project every k rounds ((i+1) mod k = 0); the last round always projects (steps 0 = noise only, no projection)' },
  manifoldMin: { default: 0.5, min: 0, max: 1000, doc: 'manifold: lower bound of ‖G − T‖ (code value; the paper says r1 = 1)' },
  manifoldMax: { default: 1.0, min: 0, max: 1000, doc: 'manifold: upper bound of ‖G − T‖ (paper r2 = 2)' },
  sphereMin: { default: 1, min: 0, max: 1000, doc: 'hypersphere: lower bound of ‖G − c‖ in units of r_t' },
  sphereMax: { default: 2, min: 0, max: 1000, doc: 'hypersphere: upper bound of ‖G − c‖ in units of r_t' },
} as const satisfies ParamSpec;

export type GasParams = ParamsOf<typeof GLASS_GAS_PARAMS>;

/** x ← anchor + (x − anchor)·clamp(‖x − anchor‖, lo, hi)/‖x − anchor‖ per row (glass.md §3 truncated projection). */
export function projectToShell(x: tf.Tensor2D, anchor: tf.Tensor2D, lo: number, hi: number): tf.Tensor2D {
  return tf.tidy(() => {
    const h = tf.sub(x, anchor);
    const n = tf.norm(h, 'euclidean', 1, true);
    const scale = tf.div(tf.clipByValue(n, lo, hi), tf.maximum(n, 1e-12));
    return tf.add(anchor, tf.mul(h, scale)) as tf.Tensor2D;
  });
}

/** Centres [P, D] tiled to [rows, D] (rows ordered image-major, position-minor). */
export function expandCenter(center: tf.Tensor2D, rows: number): tf.Tensor2D {
  const [p, d] = center.shape;
  if (p === rows) return tf.clone(center);
  if (rows % p !== 0) throw new ConfigError(`GAS: ${rows} feature rows are not a multiple of the ${p} centre rows`);
  return tf.tidy(() => tf.tile(center, [rows / p, 1]).reshape([rows, d]) as tf.Tensor2D);
}

/** BCE(p, 1) = mean(−log p) with PyTorch's log clamp at −100. */
function bceOnes(p: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.maximum(tf.log(p), -100))) as tf.Scalar);
}

/**
 * GAS perturbation of normal feature rows T [rows, D] against discriminator D. Deterministic for
 * the rng state (noise via `rng.tfSeed()`). Returns a new tensor; disposes nothing it was given.
 */
export function gasPerturb(
  T: tf.Tensor2D,
  discriminator: FeatureDiscriminator,
  rng: Rng,
  params: GasParams,
  ctx: FeatureContext = {},
): tf.Tensor2D {
  const p = params;
  const rows = T.shape[0];
  let center: tf.Tensor2D | null = null;
  let lo = p.manifoldMin;
  let hi = p.manifoldMax;
  if (p.mode === 'hypersphere') {
    if (!ctx.center || ctx.radius === undefined) {
      throw new ConfigError("GAS mode 'hypersphere' needs ctx.center (per-position centres) and ctx.radius (r_t)");
    }
    const given = ctx.center;
    center = noGrad(() => expandCenter(given, rows));
    lo = p.sphereMin * ctx.radius;
    hi = p.sphereMax * ctx.radius;
  }
  const anchor = center ?? T;
  const lossOfG = (g: tf.Tensor2D): tf.Scalar => {
    const out = discriminator(tf.concat([T, g], 0)).reshape([2 * rows]);
    return bceOnes(out.slice([rows], [rows]));
  };
  // GLASS calls gasPerturb inside its training step (tf.variableGrads): a nested tf.grad would put
  // every ascent round on the outer tape (differentiated again, kept alive until the outer
  // backward). innerGrad runs each round's gradient on a tape of its own; the noise and the update
  // run under noGrad, so the returned G is a constant for the outer gradient (glass.md §3 step 3).
  const seed = rng.tfSeed();
  let G = noGrad(() => tf.tidy(() => tf.add(T, tf.randomNormal(T.shape, 0, p.noiseStd, 'float32', seed)) as tf.Tensor2D));
  try {
    for (let i = 0; i < p.steps; i++) {
      const { value, grad: g } = innerGrad((x: tf.Tensor2D) => lossOfG(x), G);
      value.dispose();
      const next = noGrad(() => tf.tidy(() => {
        const n = tf.norm(g, 'euclidean', 1, true);
        const stepped = tf.add(G, tf.mul(tf.div(g, tf.add(n, 1e-10)), p.stepSize)) as tf.Tensor2D;
        const project = (i + 1) % p.projectEvery === 0 || i === p.steps - 1;
        return project ? projectToShell(stepped, anchor, lo, hi) : stepped;
      }));
      g.dispose();
      G.dispose();
      G = next;
    }
  } finally {
    center?.dispose();
  }
  return G;
}

export class GlassGasStrategy implements FeatureStrategy {
  readonly kind = 'feature';
  readonly name = 'glass-gas';
  readonly params: GasParams;

  constructor(opts: StrategyOptions = {}) {
    this.params = resolveParams(this.name, GLASS_GAS_PARAMS, opts.params);
  }

  perturb(features: tf.Tensor2D, discriminator: FeatureDiscriminator, rng: Rng, ctx?: FeatureContext): tf.Tensor2D {
    return gasPerturb(features, discriminator, rng, this.params, ctx);
  }

  record(): StrategyRecord {
    return { strategy: this.name, kind: 'feature', params: paramRecord(this.params) };
  }
}
