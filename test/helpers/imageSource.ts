import * as tf from '@tensorflow/tfjs';
import type { ImageSource } from '../../src/models/types.js';

/** A square RGB ImageSource over Float32Arrays of size·size·3 (ids img0, img1, …). */
export function arraySource(images: Float32Array[], size: number): ImageSource {
  return {
    ids: images.map((_, i) => `img${i}`),
    length: images.length,
    height: size,
    width: size,
    batch(s: number, e: number) {
      const per = size * size * 3;
      const d = new Float32Array((e - s) * per);
      for (let i = s; i < e; i++) d.set(images[i], (i - s) * per);
      return tf.tensor4d(d, [e - s, size, size, 3]);
    },
  };
}
