/**
 * DRAEM's anomaly simulator (official `augment_image` + `transform_image`, draem.md §3):
 * texture through 3 random augmenters, Perlin mask, original-image weight β ~ U[0, 0.8),
 * 50 % clean samples, and the 30 % rotation of the clean image by U(−90°, 90°) that happens before
 * the anomaly is pasted (so `clean` = the rotated image = DRAEM's reconstruction target).
 */
import type { Rng } from '../util/rng.js';
import { AUGMENTER_LISTS, type AugmenterListName, randomAugment } from './augmenters.js';
import { BatchBuilder, anyNonZero, blendTexture, matchChannels, readInput, sampleRngs } from './common.js';
import { rotate, sliceSample } from './image.js';
import { type ParamSpec, type ParamsOf, paramRecord, resolveParams } from './params.js';
import { PERLIN_PARAMS, perlinMask } from './perlin.js';
import { ProceduralTextureSource } from './textures.js';
import type { AnomalyBatch, AugmentInput, ImageStrategy, StrategyOptions, StrategyRecord, TextureSource } from './types.js';

export const DRAEM_PARAMS = {
  cleanProbability: { default: 0.5, min: 0, max: 1, doc: 'probability a sample is returned clean (label 0, empty mask) (draem.md §3.4)' },
  betaMin: { default: 0, min: 0, max: 1, doc: 'β (weight of the original image inside the mask) ~ U[betaMin, betaMax) (draem.md §3.3)' },
  betaMax: { default: 0.8, min: 0, max: 1, doc: 'upper end of β; texture opacity 1−β ∈ (0.2, 1]' },
  augmentCount: { default: 3, min: 0, max: 10, doc: 'distinct texture augmenters drawn, applied in drawn order (draem.md §3.1)' },
  augmenters: { default: 'draem', choices: ['draem', 'glass'], doc: "augmenter list: 'draem' (10 imgaug ops) or 'glass' (9 torchvision ops)" },
  textureFit: { default: 'fill', choices: ['fill', 'cover'], doc: "'fill' squashes the texture to the image size (DRAEM), 'cover' crops" },
  cleanRotationProbability: { default: 0.3, min: 0, max: 1, doc: 'probability the clean image is rotated before pasting (draem.md §3 "Training-image augmentation")' },
  cleanRotationMax: { default: 90, min: 0, max: 180, doc: 'that rotation ~ U(−x, x) degrees, bilinear, black fill (paper: 45)' },
  ...PERLIN_PARAMS,
} as const satisfies ParamSpec;

export class DraemStrategy implements ImageStrategy {
  readonly kind = 'image';
  readonly role = 'anomaly';
  readonly name = 'draem';
  readonly outputsPerInput = 1;
  readonly params: ParamsOf<typeof DRAEM_PARAMS>;
  private readonly textures: TextureSource;

  constructor(opts: StrategyOptions = {}) {
    this.params = resolveParams(this.name, DRAEM_PARAMS, opts.params);
    this.textures = opts.textures ?? new ProceduralTextureSource();
  }

  async generate(input: AugmentInput, rng: Rng): Promise<AnomalyBatch> {
    const p = this.params;
    const { data, n, h, w, c } = await readInput(this.name, input);
    const out = new BatchBuilder(n, h, w, c);
    const rngs = sampleRngs(rng, n);
    const list = AUGMENTER_LISTS[p.augmenters as AugmenterListName];
    for (let i = 0; i < n; i++) {
      const r = rngs[i];
      let img = sliceSample(data, i, h, w, c);
      let rotation = 0;
      if (r.bool(p.cleanRotationProbability)) {
        rotation = r.uniform(-p.cleanRotationMax, p.cleanRotationMax);
        img = rotate(img, rotation, 'bilinear');
      }
      if (r.bool(p.cleanProbability)) {
        out.set(i, { image: img.data, clean: img.data, mask: new Float32Array(h * w), label: 0, source: i, meta: { clean: true, rotation } });
        continue;
      }
      const raw = await this.textures.sample(r, h, w, p.textureFit === 'cover' ? 'cover' : 'fill');
      const aug = randomAugment({ data: raw, h, w, c: 3 }, r, list, p.augmentCount);
      const tex = matchChannels(aug.img.data, h * w, c);
      const m = perlinMask(h, w, r, p);
      const beta = r.uniform(p.betaMin, p.betaMax);
      const nonEmpty = anyNonZero(m.mask);
      const image = nonEmpty ? blendTexture(img.data, tex, m.mask, beta, c) : img.data;
      out.set(i, {
        image,
        clean: img.data,
        mask: m.mask,
        label: nonEmpty ? 1 : 0,
        source: i,
        meta: { clean: false, rotation, beta, scale: m.scale, angle: m.angle, augmenters: aug.applied.join('+') },
      });
    }
    return out.build();
  }

  record(): StrategyRecord {
    return { strategy: this.name, kind: 'image', params: paramRecord(this.params), textureSource: this.textures.record() };
  }
}
