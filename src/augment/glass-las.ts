/**
 * GLASS local anomaly synthesis, image level (LAS; glass.md §3 "LAS", official datasets/mvtec.py):
 * texture through 3 of GLASS's 9 torchvision ops, union / intersection / single of two Perlin
 * masks (u ~ U(0,1): u > 2/3 union, 1/3 < u ≤ 2/3 intersection, else the first only), times the
 * foreground mask, resampled until the 8×8-pooled (feature-level) mask is non-empty, blended with
 * original-image weight β ~ N(0.5, 0.1²) clipped to [0.2, 0.8]. Every output is anomalous.
 */
import { ConfigError } from '../errors.js';
import type { Rng } from '../util/rng.js';
import { AUGMENTER_LISTS, type AugmenterListName, randomAugment } from './augmenters.js';
import { BatchBuilder, blendTexture, matchChannels, multiplyInPlace, readInput, sampleRngs } from './common.js';
import { foregroundRule, resolveForeground } from './foreground.js';
import { sliceSample } from './image.js';
import { type ParamSpec, type ParamsOf, paramRecord, resolveParams } from './params.js';
import { PERLIN_PARAMS, perlinMask } from './perlin.js';
import { ProceduralTextureSource } from './textures.js';
import type { AnomalyBatch, AugmentInput, ImageStrategy, StrategyOptions, StrategyRecord, TextureSource } from './types.js';

export const GLASS_LAS_PARAMS = {
  betaMean: { default: 0.5, min: 0, max: 1, doc: 'β (original-image weight) ~ N(betaMean, betaStd²) clipped to [betaMin, betaMax] (glass.md §3)' },
  betaStd: { default: 0.1, min: 0, max: 1, doc: 'standard deviation of β' },
  betaMin: { default: 0.2, min: 0, max: 1, doc: 'lower clip of β' },
  betaMax: { default: 0.8, min: 0, max: 1, doc: 'upper clip of β' },
  augmentCount: { default: 3, min: 0, max: 9, doc: 'distinct texture ops drawn, random order' },
  augmenters: { default: 'glass', choices: ['draem', 'glass'], doc: "augmenter list ('glass': contrast, brightness, saturation+hue, h/v flip, grayscale, autocontrast, equalize, rotate ±45° nearest)" },
  textureFit: { default: 'cover', choices: ['fill', 'cover'], doc: "'cover': shorter side to the image size + centre crop (GLASS)" },
  unionProbability: { default: 1 / 3, min: 0, max: 1, doc: 'P(union of the two Perlin masks)' },
  intersectionProbability: { default: 1 / 3, min: 0, max: 1, doc: 'P(intersection); the rest uses the first mask only' },
  featureStride: { default: 8, min: 1, max: 64, doc: 'pooling factor of the feature-level mask that must be non-empty (288/36 = 8)' },
  useForeground: { default: true, doc: 'multiply by the foreground mask (official --fg 1)' },
  maxTries: { default: 200, min: 1, max: 100000, doc: 'mask redraws before the foreground restriction is dropped for that sample (never hit with a non-empty foreground in practice)' },
  ...PERLIN_PARAMS,
} as const satisfies ParamSpec;

export type MaskCombine = 'union' | 'intersection' | 'single';

/** True when the floor-pooled mask (torch max_pool2d, kernel = stride = s) has a 1. */
export function pooledNonEmpty(mask: Float32Array, h: number, w: number, s: number): boolean {
  const ph = Math.floor(h / s) * s;
  const pw = Math.floor(w / s) * s;
  for (let y = 0; y < ph; y++) for (let x = 0; x < pw; x++) if (mask[y * w + x] !== 0) return true;
  return false;
}

export class GlassLasStrategy implements ImageStrategy {
  readonly kind = 'image';
  readonly role = 'anomaly';
  readonly name = 'glass-las';
  readonly outputsPerInput = 1;
  readonly params: ParamsOf<typeof GLASS_LAS_PARAMS>;
  private readonly textures: TextureSource;
  private readonly category: string | undefined;
  private lastForeground = '';

  constructor(opts: StrategyOptions = {}) {
    this.params = resolveParams(this.name, GLASS_LAS_PARAMS, opts.params);
    this.textures = opts.textures ?? new ProceduralTextureSource();
    this.category = opts.category;
  }

  /** Draws one LAS mask (before the foreground product). */
  drawMask(h: number, w: number, r: Rng): { mask: Float32Array; combine: MaskCombine; scales: number[] } {
    const p = this.params;
    const a = perlinMask(h, w, r, p);
    const b = perlinMask(h, w, r, p);
    const u = r.next();
    const combine: MaskCombine =
      u > 1 - p.unionProbability ? 'union' : u > 1 - p.unionProbability - p.intersectionProbability ? 'intersection' : 'single';
    const m = a.mask;
    if (combine === 'union') for (let i = 0; i < m.length; i++) m[i] = m[i] || b.mask[i] ? 1 : 0;
    else if (combine === 'intersection') for (let i = 0; i < m.length; i++) m[i] = m[i] && b.mask[i] ? 1 : 0;
    return { mask: m, combine, scales: [...a.scale, ...b.scale] };
  }

  async generate(input: AugmentInput, rng: Rng): Promise<AnomalyBatch> {
    const p = this.params;
    const { data, n, h, w, c, fg: given } = await readInput(this.name, input);
    const fgAll = p.useForeground ? resolveForeground(data, n, h, w, c, given, this.category) : null;
    this.lastForeground = p.useForeground ? foregroundRule(this.category, given !== undefined) : 'off';
    const out = new BatchBuilder(n, h, w, c);
    const rngs = sampleRngs(rng, n);
    const list = AUGMENTER_LISTS[p.augmenters as AugmenterListName];
    for (let i = 0; i < n; i++) {
      const r = rngs[i];
      const img = sliceSample(data, i, h, w, c);
      const fg = fgAll ? fgAll.fg.subarray(i * h * w, (i + 1) * h * w) : null;
      let tries = 0;
      let drawn: ReturnType<GlassLasStrategy['drawMask']>;
      let fgDropped = false;
      for (;;) {
        tries++;
        drawn = this.drawMask(h, w, r);
        const useFg = fg !== null && tries <= p.maxTries;
        if (fg !== null && !useFg) fgDropped = true;
        if (useFg) multiplyInPlace(drawn.mask, fg);
        if (pooledNonEmpty(drawn.mask, h, w, p.featureStride)) break;
        if (tries > 2 * p.maxTries + 1000) {
          throw new ConfigError(`strategy ${this.name}: no non-empty mask in ${tries} draws; lower 'threshold' (now ${p.threshold})`);
        }
      }
      const raw = await this.textures.sample(r, h, w, p.textureFit === 'fill' ? 'fill' : 'cover');
      const aug = randomAugment({ data: raw, h, w, c: 3 }, r, list, p.augmentCount);
      const tex = matchChannels(aug.img.data, h * w, c);
      const beta = Math.min(p.betaMax, Math.max(p.betaMin, r.normal(p.betaMean, p.betaStd)));
      out.set(i, {
        image: blendTexture(img.data, tex, drawn.mask, beta, c),
        clean: img.data,
        mask: drawn.mask,
        label: 1,
        source: i,
        meta: { beta, combine: drawn.combine, scales: drawn.scales, tries, fgDropped, augmenters: aug.applied.join('+') },
      });
    }
    return out.build();
  }

  record(): StrategyRecord {
    return {
      strategy: this.name,
      kind: 'image',
      params: paramRecord(this.params),
      textureSource: this.textures.record(),
      foreground: this.lastForeground || (this.params.useForeground ? foregroundRule(this.category, false) : 'off'),
    };
  }
}
