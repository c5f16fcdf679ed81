import * as tf from '@tensorflow/tfjs';
import type { RgbImage } from '../data/imageIO.js';
import type { ImageSource } from '../models/types.js';
import { ConfigError } from '../errors.js';

/**
 * Decoded, resized images kept as Float32Arrays (not tensors) and turned into NHWC tensors one
 * batch at a time. 200 images at 224² are ~120 MB of JS memory; tensors live only per batch.
 */
export class InMemoryImageSource implements ImageSource {
  readonly height: number;
  readonly width: number;

  constructor(
    readonly ids: readonly string[],
    private readonly images: readonly RgbImage[],
  ) {
    if (ids.length !== images.length) throw new Error('InMemoryImageSource: ids and images differ in length');
    this.height = images[0]?.h ?? 0;
    this.width = images[0]?.w ?? 0;
    for (let i = 0; i < images.length; i++) {
      if (images[i].h !== this.height || images[i].w !== this.width) {
        throw new ConfigError(
          `image ${ids[i]} is ${images[i].w}x${images[i].h} after preprocessing but ${ids[0]} is ${this.width}x${this.height}: ` +
            'give the method a crop size so every image has the same input size',
        );
      }
    }
  }

  get length(): number {
    return this.images.length;
  }

  image(i: number): RgbImage {
    return this.images[i];
  }

  batch(start: number, end: number): tf.Tensor4D {
    const n = end - start;
    const per = this.height * this.width * 3;
    const data = new Float32Array(n * per);
    for (let i = 0; i < n; i++) data.set(this.images[start + i].data, i * per);
    return tf.tensor4d(data, [n, this.height, this.width, 3]);
  }

  /** A view on some of the images (no copy). */
  subset(indices: readonly number[]): InMemoryImageSource {
    return new InMemoryImageSource(
      indices.map((i) => this.ids[i]),
      indices.map((i) => this.images[i]),
    );
  }
}
