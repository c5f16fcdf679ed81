/**
 * RIAD's disjoint random masks (riad.md §3 "Disjoint masks"): a cell size k drawn from {2, 4, 8, 16}
 * per batch, the (H/k)×(W/k) grid of cells randomly permuted and split into n = 3 subsets whose
 * sizes differ by at most one cell; mask i hides the cells of subset i. One partition is shared by
 * the whole batch. These are masked inputs, not anomalies: every label is 0.
 *
 * Output (registry contract): M = n·N samples, mask-major (sample j·N + b is image b under mask j);
 * `masks` = 1 on HIDDEN pixels (the pixels that changed), so RIAD's visibility mask is
 * Mⱼ = 1 − masks and Σⱼ masks ≡ 1 per pixel; hidden pixels are set to `fill` (0.5 = the value 0 of
 * RIAD's [−1, 1]-normalised input, riad.md §3 "Masked pixels are set to 0 in normalised space").
 */
import type { Rng } from '../util/rng.js';
import { BatchBuilder, readInput } from './common.js';
import { type ParamSpec, type ParamsOf, paramRecord, resolveParams } from './params.js';
import type { AnomalyBatch, AugmentInput, ImageStrategy, StrategyOptions, StrategyRecord } from './types.js';
import { ConfigError } from '../errors.js';

export const RIAD_PARAMS = {
  cellSizes: { default: [2, 4, 8, 16], min: 1, max: 1024, doc: 'cell size k drawn uniformly from this list per batch (K = {2, 4, 8, 16})' },
  numMasks: { default: 3, min: 1, max: 64, doc: 'n disjoint masks; every pixel is hidden in exactly one' },
  fill: { default: 0.5, min: 0, max: 1, doc: 'value of hidden pixels in [0, 1] space (0.5 = 0 after RIAD’s (x−0.5)/0.5)' },
} as const satisfies ParamSpec;

/**
 * n disjoint hide-masks for an h×w image with k×k cells: returns n planes of h·w values, 1 = hidden.
 * Cells are permuted and dealt into n near-equal groups (permutation split, riad.md §6).
 */
export function disjointMasks(h: number, w: number, k: number, n: number, rng: Rng): Float32Array[] {
  const gh = Math.ceil(h / k);
  const gw = Math.ceil(w / k);
  const cells = rng.shuffle(Array.from({ length: gh * gw }, (_, i) => i));
  const masks = Array.from({ length: n }, () => new Float32Array(h * w));
  const per = cells.length / n;
  cells.forEach((cell, idx) => {
    const group = Math.min(n - 1, Math.floor(idx / per));
    const cy = Math.floor(cell / gw);
    const cx = cell - cy * gw;
    const m = masks[group];
    for (let y = cy * k; y < Math.min(h, (cy + 1) * k); y++) {
      for (let x = cx * k; x < Math.min(w, (cx + 1) * k); x++) m[y * w + x] = 1;
    }
  });
  return masks;
}

export class RiadMaskStrategy implements ImageStrategy {
  readonly kind = 'image';
  readonly role = 'inpaint';
  readonly name = 'riad-masks';
  readonly params: ParamsOf<typeof RIAD_PARAMS>;
  readonly outputsPerInput: number;

  constructor(opts: StrategyOptions = {}) {
    this.params = resolveParams(this.name, RIAD_PARAMS, opts.params);
    if (this.params.cellSizes.length === 0) throw new ConfigError(`strategy ${this.name}: cellSizes must not be empty`);
    this.outputsPerInput = this.params.numMasks;
  }

  async generate(input: AugmentInput, rng: Rng): Promise<AnomalyBatch> {
    const p = this.params;
    const { data, n, h, w, c } = await readInput(this.name, input);
    const k = rng.choice(p.cellSizes);
    const masks = disjointMasks(h, w, k, p.numMasks, rng);
    const out = new BatchBuilder(n * p.numMasks, h, w, c);
    const size = h * w * c;
    for (let j = 0; j < p.numMasks; j++) {
      const m = masks[j];
      for (let b = 0; b < n; b++) {
        const clean = data.subarray(b * size, (b + 1) * size);
        const image = clean.slice();
        for (let q = 0; q < h * w; q++) if (m[q] !== 0) for (let ch = 0; ch < c; ch++) image[q * c + ch] = p.fill;
        out.set(j * n + b, { image, clean, mask: m, label: 0, source: b, meta: { cellSize: k, maskIndex: j } });
      }
    }
    return out.build();
  }

  record(): StrategyRecord {
    return { strategy: this.name, kind: 'image', params: paramRecord(this.params) };
  }
}
