/**
 * `perlin`: the shared Perlin-mask generator on its own, without any texture source — the
 * anomalib `PerlinAnomalyGenerator` fallback when no texture folder is given (draem.md §6 "DTD
 * dependency"): the anomaly source is the Perlin noise itself, A = 0.25 + 0.5·noise (gray), pasted
 * through the rotated, thresholded Perlin mask (README-part-B.md "Shared anomaly generator").
 * β keeps this project's convention (weight of the original image), U[0, 0.8) = anomalib's
 * texture weight U[0.2, 1]; empty masks are redrawn up to `maxTries` times (anomalib: 10).
 * Use it to ablate "does the texture source matter" against draem / glass-las.
 */
import type { Rng } from '../util/rng.js';
import { BatchBuilder, anyNonZero, blendTexture, readInput, sampleRngs } from './common.js';
import { sliceSample } from './image.js';
import { type ParamSpec, type ParamsOf, paramRecord, resolveParams } from './params.js';
import { PERLIN_PARAMS, rotatedPerlin, thresholdMask } from './perlin.js';
import type { AnomalyBatch, AugmentInput, ImageStrategy, StrategyOptions, StrategyRecord } from './types.js';

export const PERLIN_ANOMALY_PARAMS = {
  cleanProbability: { default: 0.5, min: 0, max: 1, doc: 'probability of a clean sample (anomalib probability 0.5)' },
  betaMin: { default: 0, min: 0, max: 1, doc: 'β (original-image weight) ~ U[betaMin, betaMax)' },
  betaMax: { default: 0.8, min: 0, max: 1, doc: 'upper end of β' },
  maxTries: { default: 10, min: 1, max: 10000, doc: 'redraws of an empty mask (anomalib 10); still empty → label 0' },
  ...PERLIN_PARAMS,
} as const satisfies ParamSpec;

export class PerlinAnomalyStrategy implements ImageStrategy {
  readonly kind = 'image';
  readonly role = 'anomaly';
  readonly name = 'perlin';
  readonly outputsPerInput = 1;
  readonly params: ParamsOf<typeof PERLIN_ANOMALY_PARAMS>;

  constructor(opts: StrategyOptions = {}) {
    this.params = resolveParams(this.name, PERLIN_ANOMALY_PARAMS, opts.params);
  }

  async generate(input: AugmentInput, rng: Rng): Promise<AnomalyBatch> {
    const p = this.params;
    const { data, n, h, w, c } = await readInput(this.name, input);
    const out = new BatchBuilder(n, h, w, c);
    const rngs = sampleRngs(rng, n);
    for (let i = 0; i < n; i++) {
      const r = rngs[i];
      const img = sliceSample(data, i, h, w, c);
      if (r.bool(p.cleanProbability)) {
        out.set(i, { image: img.data, clean: img.data, mask: new Float32Array(h * w), label: 0, source: i, meta: { clean: true } });
        continue;
      }
      let field = rotatedPerlin(h, w, r, p);
      let mask = thresholdMask(field.noise, p.threshold);
      let tries = 1;
      while (!anyNonZero(mask) && tries < p.maxTries) {
        field = rotatedPerlin(h, w, r, p);
        mask = thresholdMask(field.noise, p.threshold);
        tries++;
      }
      const tex = new Float32Array(h * w * c);
      for (let q = 0; q < h * w; q++) for (let k = 0; k < c; k++) tex[q * c + k] = 0.25 + 0.5 * field.noise[q];
      const beta = r.uniform(p.betaMin, p.betaMax);
      const nonEmpty = anyNonZero(mask);
      out.set(i, {
        image: nonEmpty ? blendTexture(img.data, tex, mask, beta, c) : img.data,
        clean: img.data,
        mask,
        label: nonEmpty ? 1 : 0,
        source: i,
        meta: { clean: false, beta, scale: field.scale, angle: field.angle, tries },
      });
    }
    return out.build();
  }

  record(): StrategyRecord {
    return { strategy: this.name, kind: 'image', params: paramRecord(this.params), textureSource: undefined };
  }
}
