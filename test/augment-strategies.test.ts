/**
 * Synthetic-anomaly strategies (src/augment): registry, determinism, mask/pixel consistency, the
 * spec statistics (draem.md §7.3, glass.md §7.3–4, cutpaste.md §7.1–3, diffusionad.md §7.6,
 * riad.md §7.2) and tensor hygiene.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { ConfigError } from '../src/errors.js';
import {
  type AnomalyBatch,
  type AugmentInput,
  type ImageStrategy,
  createFeatureStrategy,
  createImageStrategy,
  createStrategy,
  disposeBatch,
  imageStrategyNames,
  listStrategies,
  parseStrategyParams,
  strategyEntries,
} from '../src/augment/index.js';
import { CutPasteStrategy } from '../src/augment/cutpaste.js';
import { GlassLasStrategy } from '../src/augment/glass-las.js';
import { Rng } from '../src/util/rng.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** Random-noise "normal" images: any pasted content differs from them almost everywhere. */
function noiseImages(n: number, h: number, w: number, seed: number): tf.Tensor4D {
  const r = new Rng(`imgs/${seed}`);
  return tf.tensor4d(Float32Array.from({ length: n * h * w * 3 }, () => r.next()), [n, h, w, 3]);
}

interface Arrays {
  images: Float32Array;
  clean: Float32Array;
  masks: Float32Array;
  labels: Float32Array;
  batch: AnomalyBatch;
}

async function run(s: ImageStrategy, input: AugmentInput, seed: number | string): Promise<Arrays> {
  const batch = await s.generate(input, new Rng(seed));
  const out = {
    images: (await batch.images.data()) as Float32Array,
    clean: (await batch.clean.data()) as Float32Array,
    masks: (await batch.masks.data()) as Float32Array,
    labels: (await batch.labels.data()) as Float32Array,
    batch,
  };
  disposeBatch(batch);
  return out;
}

const ALL = [
  'perlin', 'draem', 'glass-las', 'glass-gas', 'cutpaste', 'cutpaste-scar', 'cutpaste-3way', 'cutpaste-union', 'diffusionad', 'riad-masks',
];

describe('registry', () => {
  it('registers every strategy and documents every parameter in README.md', () => {
    expect(listStrategies()).toEqual(ALL);
    const readme = readFileSync(new URL('../src/augment/README.md', import.meta.url), 'utf8');
    for (const e of strategyEntries()) {
      expect(readme, e.name).toContain(`\`${e.name}\``);
      for (const k of Object.keys(e.params)) expect(readme, `${e.name}.${k}`).toContain(`\`${k}\``);
    }
  });

  it('rejects unknown names, parameters and kinds with ConfigErrors that list the valid choices', () => {
    expect(() => createStrategy('perlin-noise')).toThrow(ConfigError);
    expect(() => createStrategy('perlin-noise')).toThrow(/draem, glass-las/);
    expect(() => createImageStrategy('draem', { params: { bta: 1 } })).toThrow(/valid parameters: cleanProbability/);
    expect(() => createImageStrategy('draem', { params: { betaMax: 2 } })).toThrow(ConfigError);
    expect(() => createImageStrategy('draem', { params: { augmenters: 'kornia' } })).toThrow(/draem, glass/);
    expect(() => createImageStrategy('glass-gas')).toThrow(/feature/);
    expect(() => createFeatureStrategy('draem')).toThrow(/glass-gas/);
    expect(parseStrategyParams('riad-masks', ['cellSizes=4,8', 'fill=0'])).toEqual({ cellSizes: [4, 8], fill: 0 });
    expect(parseStrategyParams('cutpaste', ['includeNormal=false'])).toEqual({ includeNormal: false });
  });
});

describe('every image strategy', () => {
  const names = imageStrategyNames();

  it('is deterministic for a seed, differs across seeds and across successive calls, and leaks no tensors', async () => {
    const images = noiseImages(3, 32, 32, 1);
    for (const name of names) {
      const s = createImageStrategy(name, { category: 'bottle', params: name === 'draem' || name === 'diffusionad' || name === 'perlin' ? { cleanProbability: 0 } : {} });
      const before = tf.memory().numTensors;
      const a = await run(s, { images }, 7);
      const b = await run(s, { images }, 7);
      const c = await run(s, { images }, 8);
      expect(tf.memory().numTensors, name).toBe(before);
      expect(a.images, name).toEqual(b.images);
      expect(a.masks, name).toEqual(b.masks);
      expect(a.labels, name).toEqual(b.labels);
      expect(a.images, name).not.toEqual(c.images);
      const rng = new Rng(3);
      const first = await s.generate({ images }, rng);
      const second = await s.generate({ images }, rng);
      expect(await first.images.data(), name).not.toEqual(await second.images.data());
      disposeBatch(first);
      disposeBatch(second);
      const m = s.outputsPerInput * 3;
      expect(a.batch.images.shape, name).toEqual([m, 32, 32, 3]);
      expect(a.batch.masks.shape, name).toEqual([m, 32, 32, 1]);
      expect(a.batch.labels.shape, name).toEqual([m]);
      expect(a.batch.meta.length, name).toBe(m);
    }
    images.dispose();
  });

  it('returns binary masks that mark exactly the changed pixels', async () => {
    const images = noiseImages(4, 48, 48, 2);
    const withoutMaskedPixels: string[] = [];
    for (const name of names) {
      const s = createImageStrategy(name, { category: 'bottle' });
      const a = await run(s, { images }, 11);
      let inMask = 0;
      let changedInMask = 0;
      let nonBinary = 0;
      let changedOutside = 0;
      for (let p = 0; p < a.masks.length; p++) {
        const m = a.masks[p];
        if (m !== 0 && m !== 1) nonBinary++;
        if (m === 0) for (let k = 0; k < 3; k++) if (a.images[p * 3 + k] !== a.clean[p * 3 + k]) changedOutside++;
        if (m === 1) {
          inMask++;
          if (Math.abs(a.images[p * 3] - a.clean[p * 3]) + Math.abs(a.images[p * 3 + 1] - a.clean[p * 3 + 1]) + Math.abs(a.images[p * 3 + 2] - a.clean[p * 3 + 2]) > 1e-6) changedInMask++;
        }
      }
      expect(nonBinary, name).toBe(0);
      expect(changedOutside, name).toBe(0);
      if (inMask > 0) expect(changedInMask / inMask, name).toBeGreaterThan(0.97);
      else withoutMaskedPixels.push(name);
      // a sample is labelled anomalous iff its mask is non-empty (RIAD: masked inputs, never anomalous)
      const hw = 48 * 48;
      for (let i = 0; i < a.labels.length; i++) {
        let s1 = 0;
        for (let p = 0; p < hw; p++) s1 += a.masks[i * hw + p];
        if (name === 'riad-masks') expect(a.labels[i]).toBe(0);
        else expect(a.labels[i] > 0, `${name} sample ${i}`).toBe(s1 > 0);
      }
    }
    // The in-mask check ran for every strategy: seed 11 draws at least one masked pixel for each.
    expect(withoutMaskedPixels).toEqual([]);
    images.dispose();
  });
});

describe('draem (draem.md §3, §7.3)', () => {
  it('≈50 % clean, β ∈ [0, 0.8), opacity (0.2, 1], ≈30 % clean-image rotation', async () => {
    const n = 300;
    const images = noiseImages(n, 16, 16, 3);
    const s = createImageStrategy('draem');
    const batch = await s.generate({ images }, new Rng('draem-stats'));
    const img = (await batch.images.data()) as Float32Array;
    const clean = (await batch.clean.data()) as Float32Array;
    const masks = (await batch.masks.data()) as Float32Array;
    let cleanCount = 0;
    let rotated = 0;
    for (let i = 0; i < n; i++) {
      const meta = batch.meta[i];
      if (meta.clean) cleanCount++;
      if (meta.rotation !== 0) rotated++;
      if (meta.clean) continue;
      const beta = meta.beta as number;
      expect(beta).toBeGreaterThanOrEqual(0);
      expect(beta).toBeLessThan(0.8);
      // inside the mask the pixel lies on the segment between I and the texture A ∈ [0, 1]
      let offSegment = 0;
      for (let p = 0; p < 256; p++) {
        if (masks[i * 256 + p] === 0) continue;
        for (let k = 0; k < 3; k++) {
          const q = (i * 256 + p) * 3 + k;
          const A = (img[q] - beta * clean[q]) / (1 - beta);
          if (A < -1e-4 || A > 1 + 1e-4) offSegment++;
        }
      }
      expect(offSegment).toBe(0);
    }
    expect(cleanCount / n).toBeGreaterThan(0.42);
    expect(cleanCount / n).toBeLessThan(0.58);
    expect(rotated / n).toBeGreaterThan(0.22);
    expect(rotated / n).toBeLessThan(0.38);
    expect(s.record().textureSource?.kind).toBe('procedural');
    disposeBatch(batch);
    images.dispose();
  });
});

describe('glass-las (glass.md §3 LAS, §7.4)', () => {
  it('every sample anomalous, pooled mask non-empty, inside the foreground, β ~ N(0.5, 0.1²) clipped, 1/3 each combine', async () => {
    const n = 240;
    const h = 32;
    const images = noiseImages(n, h, h, 4);
    // foreground = left half only
    const fgData = new Float32Array(n * h * h);
    for (let i = 0; i < n; i++) for (let y = 0; y < h; y++) for (let x = 0; x < h / 2; x++) fgData[i * h * h + y * h + x] = 1;
    const foreground = tf.tensor4d(fgData, [n, h, h, 1]);
    const s = createImageStrategy('glass-las');
    const batch = await s.generate({ images, foreground }, new Rng('las'));
    const masks = (await batch.masks.data()) as Float32Array;
    const labels = await batch.labels.data();
    let betaSum = 0;
    for (let i = 0; i < n; i++) {
      expect(labels[i]).toBe(1);
      let inside = 0;
      let offFg = 0;
      for (let p = 0; p < h * h; p++) {
        if (masks[i * h * h + p] === 1) {
          inside++;
          if (fgData[i * h * h + p] !== 1) offFg++;
        }
      }
      expect(inside).toBeGreaterThan(0);
      expect(offFg).toBe(0);
      const meta = batch.meta[i];
      expect(meta.fgDropped).toBe(false);
      const beta = meta.beta as number;
      expect(beta).toBeGreaterThanOrEqual(0.2);
      expect(beta).toBeLessThanOrEqual(0.8);
      betaSum += beta;
    }
    expect(betaSum / n).toBeGreaterThan(0.47);
    expect(betaSum / n).toBeLessThan(0.53);
    // the combine rule itself is drawn 1/3 each (before the redraws, which favour union)
    const counts: Record<string, number> = { union: 0, intersection: 0, single: 0 };
    const r = new Rng('combine');
    for (let t = 0; t < 900; t++) counts[(s as GlassLasStrategy).drawMask(8, 8, r).combine]++;
    for (const k of Object.keys(counts)) expect(Math.abs(counts[k] / 900 - 1 / 3), k).toBeLessThan(0.05);
    expect(s.record().foreground).toMatch(/given/);
    disposeBatch(batch);
    tf.dispose([images, foreground]);
  });
});

describe('cutpaste (cutpaste.md §3, §7.1–7.3)', () => {
  it('patch geometry: area 2–15 %, aspect ≈ [0.3, 3.3], a box mask of that size inside the image', () => {
    const s = new CutPasteStrategy('cutpaste');
    const H = 128;
    const img = { data: new Float32Array(H * H * 3).fill(0.5), h: H, w: H, c: 3 };
    const r = new Rng('cp-geom');
    for (let t = 0; t < 300; t++) {
      const res = s.cutPaste(img, r);
      const pw = res.meta.patchW as number;
      const ph = res.meta.patchH as number;
      const area = (pw * ph) / (H * H);
      expect(area).toBeGreaterThan(0.02 * 0.93);
      expect(area).toBeLessThan(0.15 * 1.07);
      expect(pw / ph).toBeGreaterThan(0.28);
      expect(pw / ph).toBeLessThan(3.5);
      const [dy, dx] = res.meta.dst as number[];
      expect(dy + ph).toBeLessThanOrEqual(H);
      expect(dx + pw).toBeLessThanOrEqual(H);
      let sum = 0;
      for (let p = 0; p < res.mask.length; p++) sum += res.mask[p];
      expect(sum).toBe(pw * ph);
      expect(res.mask[dy * H + dx]).toBe(1);
      expect(res.mask[(dy + ph - 1) * H + dx + pw - 1]).toBe(1);
    }
  });

  it('scar geometry: width 2–16, length 10–25, rotation ±45°, mask inside the rotated box', () => {
    const s = new CutPasteStrategy('cutpaste-scar');
    const H = 96;
    const img = { data: new Float32Array(H * H * 3).fill(0.5), h: H, w: H, c: 3 };
    const r = new Rng('scar-geom');
    for (let t = 0; t < 300; t++) {
      const res = s.scar(img, r);
      const sw = res.meta.scarW as number;
      const sl = res.meta.scarL as number;
      expect(sw).toBeGreaterThanOrEqual(2);
      expect(sw).toBeLessThanOrEqual(16);
      expect(sl).toBeGreaterThanOrEqual(10);
      expect(sl).toBeLessThanOrEqual(25);
      expect(Math.abs(res.meta.angle as number)).toBeLessThanOrEqual(45);
      const [dy, dx] = res.meta.dst as number[];
      const bh = res.meta.boxH as number;
      const bw = res.meta.boxW as number;
      let sum = 0;
      let outside = 0;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < H; x++) {
          if (res.mask[y * H + x] === 0) continue;
          sum++;
          if (!(y >= dy && y < dy + bh && x >= dx && x < dx + bw)) outside++;
        }
      }
      expect(outside).toBe(0);
      // nearest rotation keeps the area up to edge effects
      expect(sum / (sw * sl)).toBeGreaterThan(0.6);
      expect(sum / (sw * sl)).toBeLessThan(1.5);
    }
  });

  it('batch layouts: 3-way [0×N, 1×N, 2×N]; binary [0×N, 1×N]; without the normal view only anomalies', async () => {
    const images = noiseImages(4, 32, 32, 5);
    const lab = async (name: string, params = {}): Promise<number[]> => Array.from((await run(createImageStrategy(name, { params }), { images }, 1)).labels);
    expect(await lab('cutpaste-3way')).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    expect(await lab('cutpaste')).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(await lab('cutpaste-scar', { includeNormal: false })).toEqual([1, 1, 1, 1]);
    const u = await run(createImageStrategy('cutpaste-union'), { images: noiseImages(40, 32, 32, 6) }, 2);
    const views = u.batch.meta.slice(40).map((m) => m.view);
    expect(views.filter((v) => v === 'scar').length).toBeGreaterThan(10);
    expect(views.filter((v) => v === 'patch').length).toBeGreaterThan(10);
    images.dispose();
  });
});

describe('diffusionad (diffusionad.md §3, §7.6)', () => {
  it('≈50 % clean, mask = binary·F, β ∈ [0.2, 0.8), objects use self-augmentation half the time, textures never', async () => {
    const n = 200;
    const h = 32;
    const images = noiseImages(n, h, h, 7);
    const fgData = new Float32Array(n * h * h);
    for (let i = 0; i < n; i++) for (let y = 8; y < 24; y++) for (let x = 0; x < h; x++) fgData[i * h * h + y * h + x] = 1;
    const foreground = tf.tensor4d(fgData, [n, h, h, 1]);
    const obj = await run(createImageStrategy('diffusionad', { category: 'bottle' }), { images, foreground }, 'dad');
    let clean = 0;
    let self = 0;
    let anomalousDraws = 0;
    for (let i = 0; i < n; i++) {
      const meta = obj.batch.meta[i];
      if (meta.clean) {
        clean++;
        expect(obj.labels[i]).toBe(0);
        continue;
      }
      anomalousDraws++;
      if (meta.source === 'self') self++;
      expect(meta.beta as number).toBeGreaterThanOrEqual(0.2);
      expect(meta.beta as number).toBeLessThan(0.8);
      let offFg = 0;
      for (let p = 0; p < h * h; p++) if (obj.masks[i * h * h + p] === 1 && fgData[i * h * h + p] !== 1) offFg++;
      expect(offFg).toBe(0);
    }
    expect(clean / n).toBeGreaterThan(0.4);
    expect(clean / n).toBeLessThan(0.6);
    expect(self / anomalousDraws).toBeGreaterThan(0.35);
    expect(self / anomalousDraws).toBeLessThan(0.65);
    const tex = await run(createImageStrategy('diffusionad', { category: 'zipper' }), { images: noiseImages(30, 16, 16, 8) }, 'dad2');
    expect(tex.batch.meta.some((m) => m.source === 'self')).toBe(false);
    tf.dispose([images, foreground]);
  });
});

describe('riad-masks (riad.md §3, §7.2)', () => {
  it('n = 3 disjoint masks covering every pixel once, whole aligned k×k cells, thirds of the image, hidden = fill', async () => {
    const H = 64;
    const images = noiseImages(2, H, H, 9);
    const seen = new Set<number>();
    for (let seed = 0; seed < 8; seed++) {
      const s = createImageStrategy('riad-masks');
      const a = await run(s, { images }, seed);
      const k = a.batch.meta[0].cellSize as number;
      seen.add(k);
      expect([2, 4, 8, 16]).toContain(k);
      const hw = H * H;
      const cells = (H / k) ** 2;
      let notOnce = 0;
      for (let p = 0; p < hw; p++) {
        // masks j·N + 0 (image 0) for j = 0..2
        if (a.masks[p] + a.masks[2 * hw + p] + a.masks[4 * hw + p] !== 1) notOnce++;
      }
      expect(notOnce).toBe(0);
      for (let j = 0; j < 3; j++) {
        let hidden = 0;
        let notCellConstant = 0;
        let notFilled = 0;
        for (let p = 0; p < hw; p++) {
          const y = Math.floor(p / H);
          const x = p % H;
          const m = a.masks[2 * j * hw + p];
          hidden += m;
          if (m !== a.masks[2 * j * hw + Math.floor(y / k) * k * H + Math.floor(x / k) * k]) notCellConstant++;
          if (m === 1) for (let c = 0; c < 3; c++) if (a.images[(2 * j * hw + p) * 3 + c] !== 0.5) notFilled++;
        }
        expect(notCellConstant).toBe(0);
        expect(notFilled).toBe(0);
        expect(Math.abs(hidden / (k * k) - cells / 3)).toBeLessThanOrEqual(1);
      }
      // same partition for both images of the batch
      expect(a.masks.subarray(0, hw)).toEqual(a.masks.subarray(hw, 2 * hw));
    }
    expect(seen.size).toBeGreaterThan(2);
    images.dispose();
  });
});

describe('glass-gas (glass.md §3 step 3, §7.3)', () => {
  const D = 24;
  const rows = 40;
  function setup(): { T: tf.Tensor2D; disc: (x: tf.Tensor2D) => tf.Tensor; w: tf.Tensor[] } {
    const r = new Rng('gas');
    const T = tf.tensor2d(Float32Array.from({ length: rows * D }, () => r.normal()), [rows, D]);
    const w1 = tf.tensor2d(Float32Array.from({ length: D * 16 }, () => r.normal(0, 0.3)), [D, 16]);
    const w2 = tf.tensor2d(Float32Array.from({ length: 16 }, () => r.normal(0, 0.3)), [16, 1]);
    const disc = (x: tf.Tensor2D): tf.Tensor => tf.sigmoid(tf.matMul(tf.leakyRelu(tf.matMul(x, w1), 0.2), w2));
    return { T, disc, w: [w1, w2] };
  }
  const rowNorms = (a: tf.Tensor2D, b: tf.Tensor2D): Float32Array => tf.tidy(() => tf.norm(tf.sub(a, b), 'euclidean', 1).dataSync() as Float32Array);
  const bce1 = (disc: (x: tf.Tensor2D) => tf.Tensor, x: tf.Tensor2D): number =>
    tf.tidy(() => tf.neg(tf.mean(tf.log(disc(x)))).dataSync()[0]);

  it('manifold: ‖G − T‖ ∈ [0.5, 1]; the ascent raises BCE(D(G), 1); deterministic; no leaks', () => {
    const { T, disc, w } = setup();
    const before = tf.memory().numTensors;
    const s = createFeatureStrategy('glass-gas');
    const G = s.perturb(T, disc, new Rng(1));
    const G2 = s.perturb(T, disc, new Rng(1));
    expect(G.dataSync()).toEqual(G2.dataSync());
    for (const n of rowNorms(G, T)) {
      expect(n).toBeGreaterThanOrEqual(0.5 - 1e-4);
      expect(n).toBeLessThanOrEqual(1 + 1e-4);
    }
    // compare against noise only (0 steps) from the same seed: ascent must not lower the loss
    const noiseOnly = createFeatureStrategy('glass-gas', { params: { steps: 0 } }).perturb(T, disc, new Rng(1));
    expect(bce1(disc, G)).toBeGreaterThanOrEqual(bce1(disc, noiseOnly));
    tf.dispose([G, G2, noiseOnly]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([T, ...w]);
  });

  it('hypersphere: ‖G − c‖ ∈ [r_t, 2 r_t] with per-position centres tiled over images', () => {
    const { T, disc, w } = setup();
    const center = tf.zeros([rows / 4, D]) as tf.Tensor2D; // 10 positions × 4 images
    const radius = 3;
    const s = createFeatureStrategy('glass-gas', { params: { mode: 'hypersphere' } });
    const G = s.perturb(T, disc, new Rng(2), { center, radius });
    const c = tf.zeros([rows, D]) as tf.Tensor2D;
    for (const n of rowNorms(G, c)) {
      expect(n).toBeGreaterThanOrEqual(radius - 1e-3);
      expect(n).toBeLessThanOrEqual(2 * radius + 1e-3);
    }
    expect(() => s.perturb(T, disc, new Rng(2))).toThrow(ConfigError);
    tf.dispose([T, G, c, center, ...w]);
  });
});
