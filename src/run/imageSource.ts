import * as tf from '@tensorflow/tfjs';
import type { RgbImage } from '../data/imageIO.js';
import type { ImageSource, PixelStorage } from '../models/types.js';
import { ConfigError } from '../errors.js';

/** k/255 as the data layer computes it (float64 product, rounded once to float32): the uint8 path is bit-exact. */
const LEVELS = Float32Array.from({ length: 256 }, (_, k) => k * (1 / 255));

/**
 * [0, 1] floats -> 0..255 levels. Rule: round half up (Math.round(v · 255)), clamped. Exact for
 * images decoded from 8-bit files with the project's filters (they produce whole levels); other
 * values (16-bit files, float resampling) move by at most half a level (0.5/255).
 */
export function toLevels(data: Float32Array): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(data[i] * 255)));
  return out;
}

/**
 * Decoded, resized images kept in JS memory (not tensors) and turned into NHWC float32 tensors in
 * [0, 1] one batch at a time. Storage 'uint8' keeps one byte per value (what the images decode
 * to; 4× less memory than float32: bottle's 188 training images at 256² are 37 MB instead of
 * 148 MB) and converts per batch; 'float32' keeps the given arrays as they are (no copy).
 */
export class InMemoryImageSource implements ImageSource {
  readonly height: number;
  readonly width: number;
  readonly storage: PixelStorage;
  private readonly pixels: readonly (Float32Array | Uint8Array)[];

  constructor(
    readonly ids: readonly string[],
    /** HWC RGB: [0, 1] floats (RgbImage) or 0..255 levels. */
    images: readonly { data: Float32Array | Uint8Array; h: number; w: number }[],
    /** Default: 'uint8' for byte images, 'float32' for float images (kept as given). */
    opts: { storage?: PixelStorage } = {},
  ) {
    if (ids.length !== images.length) throw new Error('InMemoryImageSource: ids and images differ in length');
    this.storage = opts.storage ?? (images[0]?.data instanceof Uint8Array ? 'uint8' : 'float32');
    this.height = images[0]?.h ?? 0;
    this.width = images[0]?.w ?? 0;
    const per = this.height * this.width * 3;
    for (let i = 0; i < images.length; i++) {
      if (images[i].h !== this.height || images[i].w !== this.width) {
        throw new ConfigError(
          `image ${ids[i]} is ${images[i].w}x${images[i].h} after preprocessing but ${ids[0]} is ${this.width}x${this.height}: ` +
            'give the method a crop size so every image has the same input size',
        );
      }
      if (images[i].data.length !== per) throw new ConfigError(`image ${ids[i]}: ${images[i].data.length} values, expected ${per} (HWC RGB)`);
    }
    this.pixels = images.map((im) => {
      const d = im.data;
      if (this.storage === 'uint8') return d instanceof Uint8Array ? d : toLevels(d);
      return d instanceof Float32Array ? d : Float32Array.from(d, (k) => LEVELS[k]);
    });
  }

  get length(): number {
    return this.pixels.length;
  }

  /** Image i as [0, 1] floats (a converted copy with uint8 storage). */
  image(i: number): RgbImage {
    const d = this.pixels[i];
    return { data: d instanceof Float32Array ? d : Float32Array.from(d, (k) => LEVELS[k]), h: this.height, w: this.width, c: 3 };
  }

  batch(start: number, end: number): tf.Tensor4D {
    const n = end - start;
    const per = this.height * this.width * 3;
    const data = new Float32Array(n * per);
    for (let i = 0; i < n; i++) {
      const src = this.pixels[start + i];
      if (src instanceof Float32Array) {
        data.set(src, i * per);
      } else {
        const off = i * per;
        for (let j = 0; j < per; j++) data[off + j] = LEVELS[src[j]];
      }
    }
    return tf.tensor4d(data, [n, this.height, this.width, 3]);
  }

  /** A view on some of the images (no copy). */
  subset(indices: readonly number[]): InMemoryImageSource {
    const images = indices.map((i) => ({ data: this.pixels[i], h: this.height, w: this.width }));
    return new InMemoryImageSource(indices.map((i) => this.ids[i]), images, { storage: this.storage });
  }
}
