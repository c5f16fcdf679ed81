/**
 * DiffusionAD's anomaly synthesis (official data/dataset_beta_thresh.py, diffusionad.md §3
 * "Synthetic anomalies"):
 * - p = 0.5 clean (zero mask, label 0);
 * - Perlin mask with scales 2^U{0..5} per axis, rotation U(−90°, 90°), > 0.5, times the
 *   foreground F; the noise is redrawn (same scales) up to 50 times until F·P is non-empty; label
 *   = 1 iff it is;
 * - anomaly source: texture classes {carpet, grid, leather, tile, wood, zipper} (zipper counted as
 *   texture) → a random texture through 3 of DRAEM's augmenters; objects → 50 % that route, 50 %
 *   "self-augmentation" (the training image through 3 augmenters, cut into 8 vertical strips
 *   re-ordered as shuffled even-index strips then shuffled odd-index strips, then the same with 8
 *   horizontal strips);
 * - β ~ U[0.2, 0.8) weights the original image.
 * Foreground: given masks (the authors' DIS masks) or, as diffusionad.md §6 suggests, all ones for
 * texture classes and the simple estimate (foreground.ts) for objects.
 */
import type { Rng } from '../util/rng.js';
import { AUGMENTER_LISTS, type AugmenterListName, randomAugment } from './augmenters.js';
import { BatchBuilder, anyNonZero, blendTexture, matchChannels, multiplyInPlace, readInput, sampleRngs } from './common.js';
import { foregroundRule, isTextureCategory, resolveForeground } from './foreground.js';
import { type Img, cloneImg, makeImg, sliceSample } from './image.js';
import { type ParamSpec, type ParamsOf, paramRecord, resolveParams } from './params.js';
import { PERLIN_PARAMS, drawPerlinScale, perlinMask } from './perlin.js';
import { ProceduralTextureSource } from './textures.js';
import type { AnomalyBatch, AugmentInput, ImageStrategy, StrategyOptions, StrategyRecord, TextureSource } from './types.js';

export const DIFFUSIONAD_PARAMS = {
  cleanProbability: { default: 0.5, min: 0, max: 1, doc: 'probability of a clean sample (diffusionad.md §3)' },
  betaMin: { default: 0.2, min: 0, max: 1, doc: 'β (original-image weight) ~ U[betaMin, betaMax)' },
  betaMax: { default: 0.8, min: 0, max: 1, doc: 'upper end of β' },
  maxTries: { default: 50, min: 1, max: 10000, doc: 'Perlin redraws (same scales) until F·P is non-empty; label 0 if still empty' },
  augmentCount: { default: 3, min: 0, max: 10, doc: 'distinct augmenters for the texture and for self-augmentation' },
  augmenters: { default: 'draem', choices: ['draem', 'glass'], doc: "augmenter list (DiffusionAD uses DRAEM's imgaug list)" },
  textureFit: { default: 'fill', choices: ['fill', 'cover'], doc: 'texture resize: squash (official cv2.resize)' },
  selfAugmentProbability: { default: 0.5, min: 0, max: 1, doc: 'objects: probability the source is the self-augmented, strip-shuffled training image' },
  strips: { default: 8, min: 1, max: 64, doc: 'strip count per direction in self-augmentation (32 px at 256²)' },
  useForeground: { default: true, doc: 'multiply the Perlin mask by the foreground F' },
  ...PERLIN_PARAMS,
} as const satisfies ParamSpec;

/** DiffusionAD counts zipper as a texture class (diffusionad.md §3). */
export function diffusionadIsTexture(category: string | undefined): boolean {
  return category === 'zipper' || isTextureCategory(category);
}

/** Strip boundaries for `count` strips over `size` pixels. */
function bounds(size: number, count: number): number[] {
  return Array.from({ length: count + 1 }, (_, i) => Math.floor((i * size) / count));
}

/** Even-index strips shuffled, then odd-index strips shuffled (the official re-assembly order). */
function stripOrder(count: number, rng: Rng): number[] {
  const even: number[] = [];
  const odd: number[] = [];
  for (let i = 0; i < count; i++) (i % 2 === 0 ? even : odd).push(i);
  return [...rng.shuffle(even), ...rng.shuffle(odd)];
}

/** Re-assembles strips along x (vertical strips) or y (horizontal strips) in the given order. */
function permuteStrips(img: Img, count: number, order: readonly number[], alongX: boolean): Img {
  const { h, w, c } = img;
  const out = makeImg(h, w, c);
  const b = bounds(alongX ? w : h, count);
  let pos = 0;
  for (const s of order) {
    const len = b[s + 1] - b[s];
    for (let t = 0; t < len; t++) {
      const src = b[s] + t;
      const dst = pos + t;
      if (alongX) {
        for (let y = 0; y < h; y++) {
          for (let k = 0; k < c; k++) out.data[(y * w + dst) * c + k] = img.data[(y * w + src) * c + k];
        }
      } else {
        out.data.set(img.data.subarray(src * w * c, (src + 1) * w * c), dst * w * c);
      }
    }
    pos += len;
  }
  return out;
}

/** DiffusionAD's self-augmentation source: strip shuffle along x, then along y. */
export function stripShuffle(img: Img, count: number, rng: Rng): Img {
  const v = permuteStrips(img, count, stripOrder(count, rng), true);
  return permuteStrips(v, count, stripOrder(count, rng), false);
}

export class DiffusionAdStrategy implements ImageStrategy {
  readonly kind = 'image';
  readonly role = 'anomaly';
  readonly name = 'diffusionad';
  readonly outputsPerInput = 1;
  readonly params: ParamsOf<typeof DIFFUSIONAD_PARAMS>;
  private readonly textures: TextureSource;
  private readonly category: string | undefined;
  private readonly texture: boolean;
  private lastForeground = '';

  constructor(opts: StrategyOptions = {}) {
    this.params = resolveParams(this.name, DIFFUSIONAD_PARAMS, opts.params);
    this.textures = opts.textures ?? new ProceduralTextureSource();
    this.category = opts.category;
    this.texture = diffusionadIsTexture(opts.category);
  }

  async generate(input: AugmentInput, rng: Rng): Promise<AnomalyBatch> {
    const p = this.params;
    const { data, n, h, w, c, fg: given } = await readInput(this.name, input);
    // zipper is a texture here: resolve it with the texture rule
    const fgAll = p.useForeground ? resolveForeground(data, n, h, w, c, given, this.texture ? 'texture' : this.category) : null;
    this.lastForeground = p.useForeground ? foregroundRule(this.texture ? 'texture' : this.category, given !== undefined) : 'off';
    const out = new BatchBuilder(n, h, w, c);
    const rngs = sampleRngs(rng, n);
    const list = AUGMENTER_LISTS[p.augmenters as AugmenterListName];
    for (let i = 0; i < n; i++) {
      const r = rngs[i];
      const img = sliceSample(data, i, h, w, c);
      if (r.bool(p.cleanProbability)) {
        out.set(i, { image: img.data, clean: img.data, mask: new Float32Array(h * w), label: 0, source: i, meta: { clean: true } });
        continue;
      }
      const fg = fgAll ? fgAll.fg.subarray(i * h * w, (i + 1) * h * w) : null;
      const scale = drawPerlinScale(r, p);
      let mask: Float32Array = new Float32Array(h * w);
      let tries = 0;
      let angle = 0;
      while (tries < p.maxTries) {
        tries++;
        const m = perlinMask(h, w, r, p, scale);
        angle = m.angle;
        mask = fg ? multiplyInPlace(m.mask, fg) : m.mask;
        if (anyNonZero(mask)) break;
      }
      const selfAug = !this.texture && r.bool(p.selfAugmentProbability);
      let src: Float32Array;
      let applied: string[];
      if (selfAug) {
        const base = c === 3 ? cloneImg(img) : grayToRgb(img);
        const aug = randomAugment(base, r, list, p.augmentCount);
        src = stripShuffle(aug.img, p.strips, r).data;
        applied = aug.applied;
      } else {
        const raw = await this.textures.sample(r, h, w, p.textureFit === 'cover' ? 'cover' : 'fill');
        const aug = randomAugment({ data: raw, h, w, c: 3 }, r, list, p.augmentCount);
        src = aug.img.data;
        applied = aug.applied;
      }
      const tex = matchChannels(src, h * w, c);
      const beta = r.uniform(p.betaMin, p.betaMax);
      const nonEmpty = anyNonZero(mask);
      out.set(i, {
        image: nonEmpty ? blendTexture(img.data, tex, mask, beta, c) : img.data,
        clean: img.data,
        mask,
        label: nonEmpty ? 1 : 0,
        source: i,
        meta: { clean: false, beta, scale, angle, tries, source: selfAug ? 'self' : 'texture', augmenters: applied.join('+') },
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
      foreground: this.lastForeground || (this.params.useForeground ? foregroundRule(this.texture ? 'texture' : this.category, false) : 'off'),
    };
  }
}

function grayToRgb(img: Img): Img {
  const out = makeImg(img.h, img.w, 3);
  for (let i = 0; i < img.h * img.w; i++) for (let k = 0; k < 3; k++) out.data[i * 3 + k] = img.data[i];
  return out;
}
