import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexCategory, loadSamples, type ImageTransform } from '../src/data/index.js';
import { generateSyntheticCategory } from '../src/data/synthetic/index.js';
import { InMemoryImageSource, toLevels } from '../src/run/imageSource.js';
import { setupRuntime } from '../src/runtime.js';
import { Rng } from '../src/util/rng.js';

// Training sets are held as uint8 levels and converted to float32 [0, 1] per batch.

let dir = '';
beforeAll(async () => {
  await setupRuntime('cpu');
  dir = mkdtempSync(join(tmpdir(), 'adbench-imgsrc-'));
  await generateSyntheticCategory('synthetic_texture', dir, { size: 48, seed: 4, nTrain: 5, nTestGood: 1, nPerDefect: 1 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const values = (t: tf.Tensor): Float32Array => {
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
};

describe('InMemoryImageSource storage', () => {
  it('decoded 8-bit images: uint8 batches are bit-identical to float32 batches for Pillow bilinear, bicubic and the OpenCV-like filter', async () => {
    const samples = indexCategory('synthetic_texture', { root: dir }).train;
    for (const filter of ['pil-bilinear', 'pil-bicubic', 'cv2-bilinear'] as const) {
      const t: ImageTransform = { size: 37, keepAspect: true, crop: 33, filter };
      const loaded = await loadSamples(samples, t, 2, null);
      const ids = loaded.map((s) => s.sample.id);
      const f32 = new InMemoryImageSource(ids, loaded.map((s) => s.image), { storage: 'float32' });
      const u8 = new InMemoryImageSource(ids, loaded.map((s) => s.image), { storage: 'uint8' });
      expect(u8.storage).toBe('uint8');
      expect(Array.from(values(u8.batch(1, 4)))).toEqual(Array.from(values(f32.batch(1, 4))));
      expect(Array.from(u8.image(2).data)).toEqual(Array.from(f32.image(2).data));
      expect(Array.from(values(u8.subset([3, 0]).batch(0, 2)))).toEqual(Array.from(values(f32.subset([3, 0]).batch(0, 2))));
    }
  });

  it('arbitrary floats (16-bit files, float resampling) round to the nearest level: within 0.5/255, clamped', () => {
    const rng = new Rng('levels');
    const data = Float32Array.from({ length: 8 * 8 * 3 }, () => rng.uniform(-0.01, 1.01));
    const u8 = new InMemoryImageSource(['a'], [{ data, h: 8, w: 8 }], { storage: 'uint8' });
    const got = values(u8.batch(0, 1));
    let worst = 0;
    for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(got[i] - Math.min(1, Math.max(0, data[i]))));
    expect(worst).toBeLessThanOrEqual(0.5 / 255 + 1e-7);
    expect(worst).toBeGreaterThan(0.3 / 255); // really quantised, not passed through
    expect(Array.from(toLevels(Float32Array.from([0, 1 / 255, 0.5, 1, 1.2, -0.2])))).toEqual([0, 1, 128, 255, 255, 0]);
  });

  it('byte images are taken as they are (uint8 by default) and batch() leaves no tensor behind', () => {
    const bytes = Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => (i * 37) % 256);
    const src = new InMemoryImageSource(['x'], [{ data: bytes, h: 4, w: 4 }]);
    expect(src.storage).toBe('uint8');
    const before = tf.memory().numTensors;
    const v = values(src.batch(0, 1));
    expect(tf.memory().numTensors).toBe(before);
    expect(v[5]).toBe(Math.fround(bytes[5] / 255));
    expect(() => new InMemoryImageSource(['x'], [{ data: new Uint8Array(5), h: 4, w: 4 }])).toThrow(/expected 48/);
  });
});
