/**
 * Anomaly texture sources (README.md §Texture sources). DRAEM, GLASS and DiffusionAD paste
 * random DTD images (`dtd/images/*\/*.jpg`, draem.md §3, glass.md §3, diffusionad.md §3); DTD is
 * not on npm, so `--textures DIR` points at any folder of texture photos and, without it, the
 * procedural source below stands in (draem.md §6 "DTD dependency" lists fractal Perlin/Worley
 * noise, stripes, checkerboards and colour gradients as the substitute). Which source a run used
 * is recorded through `record()`; it is an ablation axis of its own.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readImage } from '../data/imageIO.js';
import { ConfigError } from '../errors.js';
import type { Rng } from '../util/rng.js';
import { type Img, makeImg, resizeBilinear, resizeCover } from './image.js';
import { fractalPerlin, perlinNoise } from './perlin.js';
import type { TextureFit, TextureSource, TextureSourceRecord } from './types.js';

const IMAGE_EXT = /\.(jpe?g|png|bmp|tiff?|webp)$/i;

/** Sorted list of image files under `dir`, recursively (DTD: images/<class>/<file>.jpg). */
export function listImageFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (IMAGE_EXT.test(name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Texture photos from a folder, read through src/data/imageIO and cached (decoded, resized) in a small LRU. */
export class FolderTextureSource implements TextureSource {
  readonly kind = 'folder';
  private cache = new Map<string, Float32Array>();

  private constructor(
    readonly dir: string,
    readonly files: readonly string[],
    private readonly cacheSize: number,
  ) {}

  /** @throws ConfigError when the folder is missing or holds no images. */
  static open(dir: string, cacheSize = 64): FolderTextureSource {
    const abs = resolve(dir);
    if (!existsSync(abs) || !statSync(abs).isDirectory()) {
      throw new ConfigError(`--textures ${dir}: not a folder; give a folder of texture images (e.g. dtd/images) or omit it to use procedural textures`);
    }
    const files = listImageFiles(abs);
    if (files.length === 0) {
      throw new ConfigError(`--textures ${dir}: no .jpg/.png/.bmp/.tif/.webp images found under it (searched recursively)`);
    }
    return new FolderTextureSource(abs, files, cacheSize);
  }

  /** @throws DatasetError naming the file when a texture cannot be decoded. */
  async sample(rng: Rng, h: number, w: number, fit: TextureFit): Promise<Float32Array> {
    const file = rng.choice(this.files);
    const key = `${file}|${h}x${w}|${fit}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit.slice();
    }
    // 'fill' squashes (cv2.resize in DRAEM/DiffusionAD); 'cover' resizes the shorter side and
    // centre-crops (GLASS). sharp's lanczos3: textures need no Pillow parity, only speed.
    const img = await readImage(
      file,
      fit === 'fill'
        ? { size: [h, w], filter: 'sharp-lanczos3' }
        : { size: Math.max(h, w), keepAspect: true, crop: [h, w], filter: 'sharp-lanczos3' },
    );
    this.cache.set(key, img.data);
    if (this.cache.size > this.cacheSize) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    return img.data.slice();
  }

  record(): TextureSourceRecord {
    return { kind: 'folder', dir: this.dir, files: this.files.length };
  }
}

// ------------------------------------------------------------------ procedural

export const PROCEDURAL_FAMILIES = ['fractal-perlin', 'worley', 'stripes', 'checkerboard', 'gradient'] as const;
export type ProceduralFamily = (typeof PROCEDURAL_FAMILIES)[number];

type Rgb = [number, number, number];

function randomColor(rng: Rng): Rgb {
  return [rng.next(), rng.next(), rng.next()];
}

/** Maps a scalar field in [0, 1] through a piecewise-linear palette of 2–4 random colours. */
function colorize(field: Float32Array, h: number, w: number, palette: readonly Rgb[]): Img {
  const img = makeImg(h, w, 3);
  const segs = palette.length - 1;
  for (let i = 0; i < h * w; i++) {
    const t = Math.min(0.999999, Math.max(0, field[i])) * segs;
    const s = Math.floor(t);
    const f = t - s;
    const a = palette[s];
    const b = palette[s + 1];
    img.data[i * 3] = a[0] + f * (b[0] - a[0]);
    img.data[i * 3 + 1] = a[1] + f * (b[1] - a[1]);
    img.data[i * 3 + 2] = a[2] + f * (b[2] - a[2]);
  }
  return img;
}

function palette(rng: Rng): Rgb[] {
  const n = rng.int(2, 5);
  return Array.from({ length: n }, () => randomColor(rng));
}

function fractalTexture(h: number, w: number, rng: Rng): Img {
  const base: [number, number] = [2 ** rng.int(0, 3), 2 ** rng.int(0, 3)];
  const field = fractalPerlin(h, w, base, rng.int(3, 7), rng.uniform(0.4, 0.7), rng);
  return colorize(field, h, w, palette(rng));
}

/** Worley (cellular) noise: F1, F2−F1 (cell borders) or flat per-cell colours, on random feature points. */
function worleyTexture(h: number, w: number, rng: Rng): Img {
  const n = rng.int(6, 40);
  const px = new Float64Array(n);
  const py = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    px[i] = rng.uniform(0, w);
    py[i] = rng.uniform(0, h);
  }
  const variant = rng.int(0, 3);
  const pal = palette(rng);
  const cellColors = Array.from({ length: n }, () => randomColor(rng));
  const field = new Float32Array(h * w);
  const owner = new Int32Array(h * w);
  let maxV = 1e-9;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let d1 = Infinity;
      let d2 = Infinity;
      let k1 = 0;
      for (let i = 0; i < n; i++) {
        const dx = x - px[i];
        const dy = y - py[i];
        const d = dx * dx + dy * dy;
        if (d < d1) {
          d2 = d1;
          d1 = d;
          k1 = i;
        } else if (d < d2) d2 = d;
      }
      const v = variant === 1 ? Math.sqrt(d2) - Math.sqrt(d1) : Math.sqrt(d1);
      field[y * w + x] = v;
      owner[y * w + x] = k1;
      if (v > maxV) maxV = v;
    }
  }
  if (variant === 2) {
    const img = makeImg(h, w, 3);
    for (let i = 0; i < h * w; i++) {
      const c = cellColors[owner[i]];
      const shade = 1 - 0.5 * (field[i] / maxV);
      for (let k = 0; k < 3; k++) img.data[i * 3 + k] = c[k] * shade;
    }
    return img;
  }
  for (let i = 0; i < field.length; i++) field[i] /= maxV;
  return colorize(field, h, w, pal);
}

/** Sine or square stripes at a random angle and period, optionally warped by Perlin noise. */
function stripesTexture(h: number, w: number, rng: Rng): Img {
  const angle = rng.uniform(0, Math.PI);
  const period = rng.uniform(4, 48);
  const square = rng.bool();
  const warpAmp = rng.bool() ? rng.uniform(2, 12) : 0;
  const warp = warpAmp > 0 ? perlinNoise(h, w, 2 ** rng.int(0, 3), 2 ** rng.int(0, 3), rng) : null;
  const a = randomColor(rng);
  const b = randomColor(rng);
  const ca = Math.cos(angle);
  const sa = Math.sin(angle);
  const phase = rng.uniform(0, 2 * Math.PI);
  const field = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const u = x * ca + y * sa + (warp ? warpAmp * warp[y * w + x] : 0);
      const s = Math.sin((2 * Math.PI * u) / period + phase);
      field[y * w + x] = square ? (s > 0 ? 1 : 0) : 0.5 + 0.5 * s;
    }
  }
  return colorize(field, h, w, [a, b]);
}

function checkerTexture(h: number, w: number, rng: Rng): Img {
  const cell = rng.uniform(4, 64);
  const angle = rng.uniform(0, Math.PI / 2);
  const a = randomColor(rng);
  const b = randomColor(rng);
  const ca = Math.cos(angle);
  const sa = Math.sin(angle);
  const field = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const u = Math.floor((x * ca + y * sa) / cell);
      const v = Math.floor((-x * sa + y * ca) / cell);
      field[y * w + x] = (u + v) & 1 ? 1 : 0;
    }
  }
  return colorize(field, h, w, [a, b]);
}

/** Linear (random angle) or radial (random centre) gradient through 2–4 random colours. */
function gradientTexture(h: number, w: number, rng: Rng): Img {
  const radial = rng.bool();
  const angle = rng.uniform(0, 2 * Math.PI);
  const cx = rng.uniform(0, w);
  const cy = rng.uniform(0, h);
  const field = new Float32Array(h * w);
  const ca = Math.cos(angle);
  const sa = Math.sin(angle);
  const diag = Math.hypot(h, w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      field[y * w + x] = radial ? Math.hypot(x - cx, y - cy) / diag : 0.5 + ((x - w / 2) * ca + (y - h / 2) * sa) / diag;
    }
  }
  return colorize(field, h, w, palette(rng));
}

const GENERATORS: Record<ProceduralFamily, (h: number, w: number, rng: Rng) => Img> = {
  'fractal-perlin': fractalTexture,
  worley: worleyTexture,
  stripes: stripesTexture,
  checkerboard: checkerTexture,
  gradient: gradientTexture,
};

/** One procedural texture of the given family, [h, w, 3] in [0, 1]. */
export function proceduralTexture(family: ProceduralFamily, h: number, w: number, rng: Rng): Img {
  return GENERATORS[family](h, w, rng);
}

/** Smooth families are rendered smaller and upsampled (same look, a fraction of the cost). */
const RENDER_SCALE: Record<ProceduralFamily, number> = {
  'fractal-perlin': 1,
  worley: 0.5,
  stripes: 1,
  checkerboard: 1,
  gradient: 0.25,
};

/**
 * Procedural stand-in for DTD: a family drawn uniformly from `families`, generated at
 * `renderSize` (× 1/2 for Worley, × 1/4 for gradients; cheaper, and the patterns then scale with
 * the target like a photo would) and
 * resized to the target with the requested fit.
 */
export class ProceduralTextureSource implements TextureSource {
  readonly kind = 'procedural';
  constructor(
    readonly families: readonly ProceduralFamily[] = PROCEDURAL_FAMILIES,
    readonly renderSize = 256,
  ) {
    for (const f of families) {
      if (!(PROCEDURAL_FAMILIES as readonly string[]).includes(f)) {
        throw new ConfigError(`unknown procedural texture family '${f}'; choose from ${PROCEDURAL_FAMILIES.join(', ')}`);
      }
    }
    if (families.length === 0) throw new ConfigError('procedural texture source needs at least one family');
  }

  sample(rng: Rng, h: number, w: number, fit: TextureFit): Promise<Float32Array> {
    const family = rng.choice(this.families);
    const s = Math.max(8, Math.round(Math.min(this.renderSize, Math.max(h, w)) * RENDER_SCALE[family]));
    const img = proceduralTexture(family, s, s, rng);
    const out = fit === 'fill' ? resizeBilinear(img, h, w) : resizeCover(img, h, w);
    return Promise.resolve(out.data);
  }

  record(): TextureSourceRecord {
    return { kind: 'procedural', families: [...this.families] };
  }
}

/** `--textures DIR` → folder source; none → procedural. */
export function createTextureSource(dir?: string): TextureSource {
  return dir ? FolderTextureSource.open(dir) : new ProceduralTextureSource();
}
