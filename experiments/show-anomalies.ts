/**
 * Looks at what a synthetic-anomaly strategy produces (src/augment/README.md).
 *
 *   npx tsx experiments/show-anomalies.ts <strategy> <category> [--data DIR] [--n 16] --out FILE.png
 *       [--size 256] [--seed 0] [--textures DIR] [--fg DIR] [--param key=value ...] [--tile 128]
 *   npx tsx experiments/show-anomalies.ts --list
 *   npx tsx experiments/show-anomalies.ts --bench [--batch 8] [--size 256] [--reps 3] [--gas-rows 128] [--data DIR --category bottle]
 *
 * The grid shows one triplet per output sample: normal (the aligned clean image) | mask | image.
 * Images come from <data>/<category>/train/good via src/data (root: --data, $MVTEC_ROOT, then
 * data/mvtec_ad). A synthetic category (synthetic_texture, synthetic_object) with no generated
 * folder is rendered in memory by src/data/synthetic (what make-synthetic.ts would write).
 * `glass-gas` works on features; it is shown on 8×8 pixel-patch vectors (192-d) against a small
 * random MLP discriminator, and its "mask" column is the per-pixel perturbation size |G − T|
 * (normalised), not a binary mask.
 */
import * as tf from '@tensorflow/tfjs';
import { basename } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { backendLogLine, initBackend } from '../src/backend.js';
import { ConfigError, DatasetError } from '../src/errors.js';
import {
  type AnomalyBatch,
  type FeatureDiscriminator,
  type ImageStrategy,
  createFeatureStrategy,
  createTextureSource,
  disposeBatch,
  getStrategyEntry,
  listStrategies,
  parseStrategyParams,
  readForegroundMasks,
} from '../src/augment/index.js';
import { type Img, makeImg, resizeBilinear } from '../src/augment/image.js';
import { type CategoryIndex, indexCategory, isSyntheticCategory, readImage, renderSyntheticSample, writePng } from '../src/data/index.js';
import { createImageStrategy } from '../src/augment/registry.js';
import { Rng } from '../src/util/rng.js';
import { runCli } from './cli.js';

interface Loaded {
  images: tf.Tensor4D;
  /** Image file names (for --fg lookup). */
  names: string[];
}

/**
 * n training images of a category, evenly spaced over train/good, resized to size² with the data
 * layer's default filter (Pillow bilinear). A synthetic category without a generated folder is
 * rendered in memory with the same generator make-synthetic.ts uses.
 */
async function loadNormals(dataRoot: string | undefined, category: string, n: number, size: number, seed: number): Promise<Loaded> {
  let index: CategoryIndex;
  try {
    index = indexCategory(category, { root: dataRoot });
  } catch (e) {
    if (!isSyntheticCategory(category)) throw e;
    const data = new Float32Array(n * size * size * 3);
    for (let i = 0; i < n; i++) data.set(renderSyntheticSample(category, 'train', 'good', i, { size, seed }).image, i * size * size * 3);
    process.stderr.write(`[show-anomalies] ${category}: rendered ${n} synthetic normal images in memory (no folder under the data root)\n`);
    return { images: tf.tensor4d(data, [n, size, size, 3]), names: Array.from({ length: n }, (_, i) => `${String(i).padStart(3, '0')}.png`) };
  }
  const good = index.train.filter((s) => s.label === 0);
  if (good.length === 0) throw new DatasetError(`no train/good images in ${index.dir}`);
  const pick = Array.from({ length: n }, (_, i) => good[Math.floor((i * good.length) / n)]);
  const data = new Float32Array(n * size * size * 3);
  for (let i = 0; i < n; i++) data.set((await readImage(pick[i].path, { size: [size, size] })).data, i * size * size * 3);
  return { images: tf.tensor4d(data, [n, size, size, 3]), names: pick.map((s) => basename(s.path)) };
}

/** GAS on 8×8 pixel patches with a random MLP discriminator (visualisation only, see header). */
async function gasDemo(images: tf.Tensor4D, params: Record<string, number | string | boolean | readonly number[]>, rng: Rng): Promise<AnomalyBatch> {
  const strategy = createFeatureStrategy('glass-gas', { params });
  const [n, h, w, c] = images.shape;
  const ps = 8;
  const d = ps * ps * c;
  const wr = new Rng('gas-demo-discriminator');
  const w1 = tf.tensor2d(Array.from({ length: d * 64 }, () => wr.normal(0, Math.sqrt(2 / d))), [d, 64]);
  const w2 = tf.tensor2d(Array.from({ length: 64 }, () => wr.normal(0, Math.sqrt(1 / 64))), [64, 1]);
  const disc: FeatureDiscriminator = (f) => tf.sigmoid(tf.matMul(tf.leakyRelu(tf.matMul(f, w1), 0.2), w2));
  const toPatches = (x: tf.Tensor4D): tf.Tensor2D =>
    x.reshape([n, h / ps, ps, w / ps, ps, c]).transpose([0, 1, 3, 2, 4, 5]).reshape([-1, d]) as tf.Tensor2D;
  const fromPatches = (x: tf.Tensor2D): tf.Tensor4D =>
    x.reshape([n, h / ps, w / ps, ps, ps, c]).transpose([0, 1, 3, 2, 4, 5]).reshape([n, h, w, c]) as tf.Tensor4D;
  const T = toPatches(images);
  const G = strategy.perturb(T, disc, rng);
  const out = tf.tidy(() => {
    const img = fromPatches(G);
    const diff = tf.abs(tf.sub(img, images)).mean(3, true);
    return { img: tf.clipByValue(img, 0, 1) as tf.Tensor4D, mag: tf.div(diff, tf.max(diff).add(1e-12)) as tf.Tensor4D };
  });
  tf.dispose([w1, w2, T, G]);
  return {
    images: out.img,
    masks: out.mag,
    labels: tf.ones([n]) as tf.Tensor1D,
    clean: tf.clone(images),
    source: Int32Array.from({ length: n }, (_, i) => i),
    meta: Array.from({ length: n }, () => ({ view: 'gas' })),
  };
}

async function toImgs(t: tf.Tensor4D): Promise<Img[]> {
  const [n, h, w, c] = t.shape;
  const data = (await t.data()) as Float32Array;
  return Array.from({ length: n }, (_, i) => ({ data: data.slice(i * h * w * c, (i + 1) * h * w * c), h, w, c }));
}

/** Triplets [clean | mask | image], `perRow` triplets per row, 4 px gaps, gray background. */
async function writeGrid(batch: AnomalyBatch, tile: number, out: string): Promise<void> {
  const [clean, masks, images] = await Promise.all([toImgs(batch.clean), toImgs(batch.masks), toImgs(batch.images)]);
  const m = clean.length;
  const perRow = Math.max(1, Math.min(m, Math.ceil(Math.sqrt(m / 3) * 1.3)));
  const gap = 4;
  const tripW = 3 * tile + 2 * gap;
  const rows = Math.ceil(m / perRow);
  const W = perRow * tripW + (perRow + 1) * 3 * gap;
  const H = rows * tile + (rows + 1) * 3 * gap;
  const canvas = makeImg(H, W, 3, 0.35);
  const paste = (img: Img, top: number, left: number): void => {
    const r = resizeBilinear(img, tile, tile);
    for (let y = 0; y < tile; y++) {
      for (let x = 0; x < tile; x++) {
        for (let k = 0; k < 3; k++) canvas.data[((top + y) * W + left + x) * 3 + k] = r.data[(y * tile + x) * r.c + Math.min(k, r.c - 1)];
      }
    }
  };
  for (let i = 0; i < m; i++) {
    const top = 3 * gap + Math.floor(i / perRow) * (tile + 3 * gap);
    const left = 3 * gap + (i % perRow) * (tripW + 3 * gap);
    paste(clean[i], top, left);
    paste(masks[i], top, left + tile + gap);
    paste(images[i], top, left + 2 * (tile + gap));
  }
  await writePng(out, canvas.data, W, H, 3);
}

async function bench(argv: { batch: number; size: number; reps: number; gasRows: number; data?: string; category: string; textures?: string }): Promise<void> {
  const { batch, size, reps } = argv;
  const loaded = await loadNormals(argv.data, argv.category, batch, size, 0);
  const textures = createTextureSource(argv.textures);
  const source = textures.record();
  process.stdout.write(`batch ${batch} × ${size}², ${argv.category}, textures: ${source.kind}, mean of ${reps} after 1 warm-up\n`);
  for (const name of listStrategies()) {
    const entry = getStrategyEntry(name);
    const rng = new Rng(`bench/${name}`);
    let run: () => Promise<void>;
    let label = name;
    let cleanup = (): void => {};
    if (entry.kind === 'image') {
      const s = createImageStrategy(name, { textures, category: argv.category });
      run = async () => disposeBatch(await s.generate({ images: loaded.images }, rng));
    } else {
      // GLASS scale: a 1536-d row per 8×8-pixel position, D = 1536→1024→1. A batch of 8 at
      // size² has 8·(size/8)² rows; wasm is timed on `gasRows` of them (GAS is linear in rows).
      const rows = argv.gasRows;
      const dim = 1536;
      const f = tf.randomNormal([rows, dim], 0, 1, 'float32', 1) as tf.Tensor2D;
      const w1 = tf.randomNormal([dim, 1024], 0, 0.02, 'float32', 2);
      const w2 = tf.randomNormal([1024, 1], 0, 0.02, 'float32', 3);
      const disc: FeatureDiscriminator = (x) => tf.sigmoid(tf.matMul(tf.leakyRelu(tf.matMul(x, w1), 0.2), w2));
      const s = createFeatureStrategy(name);
      run = async () => {
        s.perturb(f, disc, rng).dispose();
      };
      const full = batch * (size / 8) ** 2;
      label = `${name} (${rows} of the ${full} rows of a batch, 1536-d, D 1536→1024→1; ×${(full / rows).toFixed(0)} for the batch)`;
      cleanup = () => tf.dispose([f, w1, w2]);
    }
    await run();
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) await run();
    process.stdout.write(`${label.padEnd(16)} ${((performance.now() - t0) / reps).toFixed(1)} ms\n`);
    cleanup();
  }
  loaded.images.dispose();
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 <strategy> <category> --out FILE.png  |  $0 --list  |  $0 --bench')
    .option('list', { type: 'boolean', describe: 'print the registered strategy names' })
    .option('bench', { type: 'boolean', describe: 'time every strategy on one batch' })
    .option('data', { type: 'string', describe: 'MVTec-layout root (default $MVTEC_ROOT, then data/mvtec_ad)' })
    .option('n', { type: 'number', default: 16, describe: 'output samples to show (inputs = ceil(n / outputs per input))' })
    .option('size', { type: 'number', default: 256 })
    .option('tile', { type: 'number', default: 128, describe: 'tile size in the grid' })
    .option('seed', { type: 'number', default: 0 })
    .option('textures', { type: 'string', describe: 'folder of texture images (e.g. dtd/images); default procedural' })
    .option('fg', { type: 'string', describe: 'folder of foreground masks named like the images' })
    .option('param', { type: 'string', array: true, default: [] as string[], describe: 'strategy parameter override key=value' })
    .option('out', { type: 'string' })
    .option('batch', { type: 'number', default: 8 })
    .option('reps', { type: 'number', default: 3 })
    .option('gas-rows', { type: 'number', default: 128, describe: '--bench: feature rows GAS is timed on' })
    .option('category', { type: 'string', default: 'bottle', describe: '--bench: images to use' })
    .option('backend', { type: 'string', default: 'wasm' })
    .strictOptions()
    .parseAsync();

  if (argv.list) {
    process.stdout.write(`${listStrategies().join('\n')}\n`);
    return;
  }
  const backend = await initBackend(argv.backend === 'cpu' ? 'cpu' : 'wasm');
  process.stderr.write(`${backendLogLine(backend)}\n`);
  if (argv.bench) {
    await bench({ batch: argv.batch, size: argv.size, reps: argv.reps, gasRows: argv.gasRows, data: argv.data, category: argv.category, textures: argv.textures });
    return;
  }
  const [strategyName, category] = argv._.map(String);
  if (!strategyName || !category) throw new ConfigError('usage: show-anomalies <strategy> <category> --out FILE.png (or --list)');
  if (!argv.out) throw new ConfigError('--out FILE.png is required');
  const entry = getStrategyEntry(strategyName);
  const params = parseStrategyParams(strategyName, argv.param);
  const textures = createTextureSource(argv.textures);
  const rng = new Rng(argv.seed);
  let batch: AnomalyBatch;
  let record: unknown;
  if (entry.kind === 'image') {
    const strategy: ImageStrategy = createImageStrategy(strategyName, { params, textures, category });
    const inputs = Math.ceil(argv.n / strategy.outputsPerInput);
    const loaded = await loadNormals(argv.data, category, inputs, argv.size, argv.seed);
    const foreground = argv.fg ? await readForegroundMasks(argv.fg, loaded.names, argv.size, argv.size) : undefined;
    const t0 = performance.now();
    batch = await strategy.generate({ images: loaded.images, foreground }, rng);
    process.stderr.write(`[show-anomalies] ${strategyName}: ${inputs} inputs → ${batch.images.shape[0]} samples in ${(performance.now() - t0).toFixed(0)} ms\n`);
    tf.dispose([loaded.images, foreground].filter((t): t is tf.Tensor4D => t !== undefined));
    record = strategy.record();
  } else {
    const loaded = await loadNormals(argv.data, category, argv.n, argv.size, argv.seed);
    batch = await gasDemo(loaded.images, params, rng);
    loaded.images.dispose();
    record = createFeatureStrategy(strategyName, { params }).record();
  }
  const labels = Array.from(await batch.labels.data());
  await writeGrid(batch, argv.tile, argv.out);
  disposeBatch(batch);
  process.stdout.write(`${JSON.stringify({ out: argv.out, record, labels })}\n`);
}

runCli(main);
