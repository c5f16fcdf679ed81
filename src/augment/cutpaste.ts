/**
 * CutPaste (Li et al., CVPR 2021, Appendix A; cutpaste.md §3), four registry variants:
 * - `cutpaste`: rectangular patch, area U(2 %, 15 %) of the image, aspect log-uniform on
 *   [0.3, 3.3], colour-jittered (0.1), cut and pasted at independent uniform locations;
 * - `cutpaste-scar`: thin patch width U[2, 16] × length U[10, 25] px, jittered, rotated
 *   U(−45°, 45°) with canvas expansion (nearest, transparent corners), pasted where its bounding
 *   box fits, only opaque pixels overwrite;
 * - `cutpaste-3way`: both, labels 0 normal / 1 CutPaste / 2 Scar;
 * - `cutpaste-union`: binary, each anomalous view is CutPaste or Scar 50/50 (paper Table 5).
 * Batch layout (cutpaste.md §7.3): with `includeNormal` the outputs are view-major —
 * [N normal views, N CutPaste views, (N Scar views)] — so 32 inputs give 96 samples for 3-way.
 * Every view starts from the same pre-jittered image (Runinho's whole-image ColorJitter 0.1;
 * `preJitter` 0 disables it); `clean` holds that image. Masks mark the pasted pixels.
 */
import type { Rng } from '../util/rng.js';
import { colorJitter } from './augmenters.js';
import { BatchBuilder, readInput, sampleRngs } from './common.js';
import { type Img, clampInPlace, crop, rotate, sliceSample } from './image.js';
import { type ParamSpec, type ParamsOf, paramRecord, resolveParams } from './params.js';
import type { AnomalyBatch, AugmentInput, ImageStrategy, SampleMeta, StrategyOptions, StrategyRecord } from './types.js';

export const CUTPASTE_PARAMS = {
  areaMin: { default: 0.02, min: 0, max: 1, doc: 'patch area / image area ~ U(areaMin, areaMax) (paper A.2)' },
  areaMax: { default: 0.15, min: 0, max: 1, doc: 'upper end of the patch area ratio' },
  aspectMin: { default: 0.3, min: 0.01, max: 100, doc: 'aspect w/h log-uniform on [aspectMin, aspectMax]' },
  aspectMax: { default: 3.3, min: 0.01, max: 100, doc: 'upper end of the aspect ratio (patches that do not fit are redrawn, as RandomErasing does)' },
  jitter: { default: 0.1, min: 0, max: 1, doc: 'ColorJitter brightness = contrast = saturation = hue intensity on the patch, random order' },
  scarWidthMin: { default: 2, min: 1, max: 1024, doc: 'scar width ~ U[min, max] px (rounded)' },
  scarWidthMax: { default: 16, min: 1, max: 1024, doc: 'upper end of the scar width' },
  scarLengthMin: { default: 10, min: 1, max: 1024, doc: 'scar length (height) ~ U[min, max] px (rounded)' },
  scarLengthMax: { default: 25, min: 1, max: 1024, doc: 'upper end of the scar length' },
  scarRotation: { default: 45, min: 0, max: 180, doc: 'scar rotation ~ U(−x, x) degrees, expanded canvas, nearest' },
  preJitter: { default: 0.1, min: 0, max: 1, doc: 'whole-image ColorJitter before the views are made (Runinho; 0 = off)' },
  includeNormal: { default: true, doc: 'emit the normal view too (label 0), as CutPaste trains on [normal, CutPaste(, Scar)]' },
} as const satisfies ParamSpec;

export type CutPasteVariant = 'cutpaste' | 'cutpaste-scar' | 'cutpaste-3way' | 'cutpaste-union';
type View = 'patch' | 'scar';

interface PasteResult {
  image: Float32Array;
  mask: Float32Array;
  meta: SampleMeta;
}

export class CutPasteStrategy implements ImageStrategy {
  readonly kind = 'image';
  readonly role = 'anomaly';
  readonly params: ParamsOf<typeof CUTPASTE_PARAMS>;
  readonly outputsPerInput: number;
  private readonly anomalyViews: number;

  constructor(
    readonly name: CutPasteVariant,
    opts: StrategyOptions = {},
  ) {
    this.params = resolveParams(name, CUTPASTE_PARAMS, opts.params);
    this.anomalyViews = name === 'cutpaste-3way' ? 2 : 1;
    this.outputsPerInput = this.anomalyViews + (this.params.includeNormal ? 1 : 0);
  }

  /** CutPaste patch (paper A.2): returns the pasted image, the destination-box mask and the geometry. */
  cutPaste(img: Img, r: Rng): PasteResult {
    const p = this.params;
    const { h, w, c } = img;
    let pw = 0;
    let ph = 0;
    let area = 0;
    let aspect = 1;
    for (let t = 0; t < 1000; t++) {
      area = r.uniform(p.areaMin, p.areaMax);
      aspect = Math.exp(r.uniform(Math.log(p.aspectMin), Math.log(p.aspectMax)));
      pw = Math.round(Math.sqrt(area * h * w * aspect));
      ph = Math.round(Math.sqrt((area * h * w) / aspect));
      if (pw >= 1 && ph >= 1 && pw <= w && ph <= h) break;
    }
    pw = Math.max(1, Math.min(w, pw));
    ph = Math.max(1, Math.min(h, ph));
    const sy = r.int(0, h - ph + 1);
    const sx = r.int(0, w - pw + 1);
    const patch = clampInPlace(colorJitter(crop(img, sy, sx, ph, pw), r, p.jitter, p.jitter, p.jitter, p.jitter));
    const dy = r.int(0, h - ph + 1);
    const dx = r.int(0, w - pw + 1);
    const image = img.data.slice();
    const mask = new Float32Array(h * w);
    for (let y = 0; y < ph; y++) {
      for (let x = 0; x < pw; x++) {
        const o = (dy + y) * w + dx + x;
        mask[o] = 1;
        for (let k = 0; k < c; k++) image[o * c + k] = patch.data[(y * pw + x) * c + k];
      }
    }
    return { image, mask, meta: { view: 'patch', area, aspect, patchW: pw, patchH: ph, src: [sy, sx], dst: [dy, dx] } };
  }

  /** CutPaste-Scar: thin rotated patch; only opaque pixels of the rotated patch overwrite. */
  scar(img: Img, r: Rng): PasteResult {
    const p = this.params;
    const { h, w, c } = img;
    const sw = Math.min(w, Math.max(1, Math.round(r.uniform(p.scarWidthMin, p.scarWidthMax))));
    const sl = Math.min(h, Math.max(1, Math.round(r.uniform(p.scarLengthMin, p.scarLengthMax))));
    const sy = r.int(0, h - sl + 1);
    const sx = r.int(0, w - sw + 1);
    const patch = clampInPlace(colorJitter(crop(img, sy, sx, sl, sw), r, p.jitter, p.jitter, p.jitter, p.jitter));
    // append an alpha channel, rotate with expansion, opaque = alpha 1 (nearest keeps it binary)
    const rgba: Img = { data: new Float32Array(sl * sw * (c + 1)), h: sl, w: sw, c: c + 1 };
    for (let i = 0; i < sl * sw; i++) {
      for (let k = 0; k < c; k++) rgba.data[i * (c + 1) + k] = patch.data[i * c + k];
      rgba.data[i * (c + 1) + c] = 1;
    }
    const angle = r.uniform(-p.scarRotation, p.scarRotation);
    const rot = rotate(rgba, angle, 'nearest', true);
    const rh = Math.min(h, rot.h);
    const rw = Math.min(w, rot.w);
    const dy = r.int(0, h - rh + 1);
    const dx = r.int(0, w - rw + 1);
    const image = img.data.slice();
    const mask = new Float32Array(h * w);
    for (let y = 0; y < rh; y++) {
      for (let x = 0; x < rw; x++) {
        const s = (y * rot.w + x) * (c + 1);
        if (rot.data[s + c] < 0.5) continue;
        const o = (dy + y) * w + dx + x;
        mask[o] = 1;
        for (let k = 0; k < c; k++) image[o * c + k] = rot.data[s + k];
      }
    }
    return {
      image,
      mask,
      meta: { view: 'scar', scarW: sw, scarL: sl, angle, boxH: rot.h, boxW: rot.w, src: [sy, sx], dst: [dy, dx] },
    };
  }

  async generate(input: AugmentInput, rng: Rng): Promise<AnomalyBatch> {
    const p = this.params;
    const { data, n, h, w, c } = await readInput(this.name, input);
    const out = new BatchBuilder(n * this.outputsPerInput, h, w, c);
    const rngs = sampleRngs(rng, n);
    const base = p.includeNormal ? 1 : 0;
    for (let i = 0; i < n; i++) {
      const r = rngs[i];
      let img = sliceSample(data, i, h, w, c);
      if (p.preJitter > 0) img = clampInPlace(colorJitter(img, r, p.preJitter, p.preJitter, p.preJitter, p.preJitter));
      if (p.includeNormal) {
        out.set(i, { image: img.data, clean: img.data, mask: new Float32Array(h * w), label: 0, source: i, meta: { view: 'normal' } });
      }
      const views: View[] =
        this.name === 'cutpaste' ? ['patch'] : this.name === 'cutpaste-scar' ? ['scar'] : this.name === 'cutpaste-3way' ? ['patch', 'scar'] : [r.bool() ? 'patch' : 'scar'];
      views.forEach((v, j) => {
        const res = v === 'patch' ? this.cutPaste(img, r) : this.scar(img, r);
        // 3-way numbers the classes 1 (CutPaste) and 2 (Scar); the binary variants use 1
        const label = this.name === 'cutpaste-3way' ? j + 1 : 1;
        out.set((base + j) * n + i, { image: res.image, clean: img.data, mask: res.mask, label, source: i, meta: res.meta });
      });
    }
    return out.build();
  }

  record(): StrategyRecord {
    return { strategy: this.name, kind: 'image', params: paramRecord(this.params) };
  }
}
