import * as tf from '@tensorflow/tfjs';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { ConfigError, WeightsError } from '../src/errors.js';
import { setInitSeed } from '../src/nn/init.js';
import type { TorchLayout } from '../src/nn/module.js';
import { Conv2d } from '../src/nn/layers/conv.js';
import { Fn, Sequential } from '../src/nn/layers/sequential.js';
import { readSafetensors, writeSafetensors } from '../src/nn/safetensors.js';
import { tfjsLayersFileHandler } from '../src/nn/tfjsLayersLoader.js';
import {
  ASSETS_DIR,
  BACKBONES,
  BACKBONE_NAMES,
  MobileNetV1,
  ResNet,
  TinyDarknet,
  createBackbone,
  kerasSamePads,
  resnet18,
  resnet50,
  wideResnet50_2,
  type FeatureExtractor,
} from '../src/models/backbones/index.js';
import { sharedPath } from './helpers/shared.js';

const FIX = fileURLToPath(new URL('./fixtures/backbones/', import.meta.url));
let tmp = '';

beforeAll(async () => {
  await initBackend('wasm');
  tmp = mkdtempSync(join(tmpdir(), 'adbench-bb-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** max|a-b| / max|b|. */
function relErr(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / tf.max(tf.abs(b)).dataSync()[0]);
}

// ---- The weight formula of test/fixtures/make_wrn_fixture.py (keep the two in sync). ----
function nameKey(name: string): number {
  let s = 0;
  for (let j = 0; j < name.length; j++) s += name.charCodeAt(j) * (j + 1);
  return (s % 997) / 97;
}

function formulaTensor(name: string, shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  if (name.endsWith('num_batches_tracked')) return out;
  const k = nameKey(name);
  const leaf = name.split('.').pop();
  let a: number;
  let b = 0;
  if (shape.length === 4) a = Math.sqrt(2 / (shape[1] * shape[2] * shape[3]));
  else if (shape.length === 2) a = 0.01;
  else if (leaf === 'weight') [a, b] = [0.3, 0.6];
  else if (leaf === 'bias' || leaf === 'running_mean') a = 0.1;
  else if (leaf === 'running_var') [a, b] = [0.25, 0.75];
  else throw new Error(name);
  // sin(1.7 i + k) by angle addition, re-anchored with Math.sin every 4096 steps: ~10x faster than
  // Math.sin per element, and within ~1e-12 of it (far below float32 resolution).
  const cd = Math.cos(1.7);
  const sd = Math.sin(1.7);
  let sn = 0;
  let cs = 0;
  for (let i = 0; i < n; i++) {
    if ((i & 4095) === 0) {
      sn = Math.sin(1.7 * i + k);
      cs = Math.cos(1.7 * i + k);
    } else {
      const t = sn * cd + cs * sd;
      cs = cs * cd - sn * sd;
      sn = t;
    }
    out[i] = b + a * sn;
  }
  return out;
}

function torchShape(shape: number[], layout: TorchLayout): number[] {
  if (layout === 'conv2d') return [shape[3], shape[2], shape[0], shape[1]];
  if (layout === 'linear') return [shape[1], shape[0]];
  return shape;
}

type TvModels = Record<string, { state_dict: [string, number[]][]; num_parameters: number; num_parameters_to_layer3: number; num_keys_to_layer3: number }>;
const TV = (JSON.parse(readFileSync(join(FIX, 'torchvision_state_dicts.json'), 'utf8')) as { models: TvModels }).models;

function ourTorchNames(m: ResNet): [string, number[]][] {
  return m.namedEntries().map(([n, e]) => [n, torchShape(e.variable.shape, e.torchLayout)]);
}

const SLOW = process.env.ADBENCH_SLOW_TESTS === '1';
/** Lets vitest's RPC breathe between long synchronous phases (2 shared cores). */
const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('ResNet family: torchvision names, shapes and parameter counts', () => {
  it('resnet18 (full; resnet50 too when ADBENCH_SLOW_TESTS=1) matches torchvision state_dict exactly, order included', async () => {
    const archs = SLOW ? ([['resnet18', resnet18], ['resnet50', resnet50]] as const) : ([['resnet18', resnet18]] as const);
    for (const [arch, make] of archs) {
      const full = make();
      expect(ourTorchNames(full)).toEqual(TV[arch].state_dict);
      expect(full.numParameters()).toBe(TV[arch].num_parameters);
      full.dispose();
      await yieldLoop();
    }
    for (const [arch, make] of [['resnet18', resnet18], ['resnet50', resnet50]] as const) {
      const to3 = make({ upTo: 'layer3' });
      expect(ourTorchNames(to3)).toEqual(TV[arch].state_dict.slice(0, TV[arch].num_keys_to_layer3));
      expect(to3.numParameters()).toBe(TV[arch].num_parameters_to_layer3);
      expect(to3.fc).toBeNull();
      to3.dispose();
    }
    // The figures the PatchCore spec and Table 6 quote.
    expect(TV.wide_resnet50_2.num_parameters).toBe(68_883_240);
    expect(TV.wide_resnet50_2.num_parameters_to_layer3).toBe(24_862_528);
  });

  it.runIf(SLOW)('[slow] full wide_resnet50_2: names and 68,883,240 parameters; forward timing at 224', async () => {
    const full = wideResnet50_2().eval();
    expect(ourTorchNames(full)).toEqual(TV.wide_resnet50_2.state_dict);
    expect(full.numParameters()).toBe(68_883_240);
    const x = tf.randomUniform([1, 224, 224, 3]) as tf.Tensor4D;
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const f = full.forward(x);
      await (f.layer4 as tf.Tensor).data();
      console.log(`wide_resnet50_2 stem..layer4 forward at 224x224, batch 1: ${Date.now() - t0} ms`);
      for (const t of Object.values(f)) t?.dispose();
    }
    x.dispose();
    full.dispose();
  });
});

describe('WideResNet-50-2 parity with torchvision (formula weights, 64x64, wasm)', () => {
  it('layer1/2/3 within 1e-4 relative, loaded via loadPartial from PyTorch layout; no tensor leak', async () => {
    const ref = readSafetensors(join(FIX, 'wrn50_2_formula_64.safetensors'));
    const m = wideResnet50_2({ upTo: 'layer3' }).eval();
    expect(ourTorchNames(m)).toEqual(TV.wide_resnet50_2.state_dict.slice(0, TV.wide_resnet50_2.num_keys_to_layer3));
    expect(m.numParameters()).toBe(24_862_528);
    await yieldLoop();
    const dict = new Map<string, tf.Tensor>();
    for (const [name, shape] of TV.wide_resnet50_2.state_dict) {
      if (name.startsWith('layer4.') || name.startsWith('fc.')) continue;
      dict.set(name, tf.tensor(formulaTensor(name, shape), shape));
    }
    await yieldLoop();
    // A full checkpoint also holds layer4/fc: strict loading refuses them, loadPartial ignores them.
    dict.set('layer4.0.conv1.weight', tf.zeros([1024, 2048, 1, 1]));
    dict.set('fc.bias', tf.zeros([1000]));
    expect(() => m.loadTorchCheckpoint(dict)).toThrow(WeightsError);
    const { ignored } = m.loadPartial(dict, { source: 'formula' });
    expect(ignored.sort()).toEqual(['fc.bias', 'layer4.0.conv1.weight']);
    // Layout conversion happened: conv1 is HWIO in our module.
    expect(m.conv1.weight.shape).toEqual([7, 7, 3, 64]);
    for (const t of dict.values()) t.dispose();
    await yieldLoop();

    const x = tf.transpose(ref.get('input') as tf.Tensor, [0, 2, 3, 1]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    for (let rep = 0; rep < 2; rep++) {
      const f = m.forward(x);
      expect(Object.keys(f)).toEqual(['layer1', 'layer2', 'layer3']);
      expect(f.layer2?.shape).toEqual([1, 8, 8, 512]);
      expect(f.layer3?.shape).toEqual([1, 4, 4, 1024]);
      if (rep === 0) {
        for (const l of ['layer1', 'layer2', 'layer3'] as const) {
          const ours = tf.transpose(f[l] as tf.Tensor4D, [0, 3, 1, 2]);
          expect(relErr(ours, ref.get(l) as tf.Tensor)).toBeLessThanOrEqual(1e-4);
          ours.dispose();
        }
      }
      for (const t of Object.values(f)) t?.dispose();
      // Eval mode folds each conv+BN pair once (src/nn/layers/fold.ts): a cached filter and bias
      // for stem + 13 blocks x 3 + 3 downsamples = 43 pairs; nothing else survives a forward.
      expect(tf.memory().numTensors).toBe(before + 2 * 43);
    }
    // extract = ImageNet normalisation + forward, taps only.
    const img = tf.randomUniform([1, 64, 64, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const n0 = tf.memory().numTensors;
    for (let rep = 0; rep < 2; rep++) {
      const e = m.extract(img, ['layer2', 'layer3']);
      expect(Object.keys(e)).toEqual(['layer2', 'layer3']);
      if (rep === 0) {
        const manual = tf.tidy(() => m.forward(tf.div(tf.sub(img, [0.485, 0.456, 0.406]), [0.229, 0.224, 0.225]) as tf.Tensor4D).layer3 as tf.Tensor4D);
        expect(relErr(e.layer3, manual)).toBeLessThan(1e-5);
        manual.dispose();
      }
      for (const t of Object.values(e)) t.dispose();
      expect(tf.memory().numTensors).toBe(n0);
    }
    img.dispose();
    x.dispose();
    for (const t of ref.values()) t.dispose();
    m.dispose();
  });
});

describe('checkpoints through safetensors and createBackbone', () => {
  let ref: ResNet | null = null; // full resnet18, seed 1, whose checkpoint is r18.safetensors
  const r18File = (): string => join(tmp, 'r18.safetensors');
  afterAll(() => ref?.dispose());

  it('a full resnet18 checkpoint round-trips strictly; old files without num_batches_tracked load', async () => {
    setInitSeed(1);
    ref = resnet18().eval();
    const sd = ref.torchStateDict();
    writeSafetensors(r18File(), sd);
    for (const t of sd.values()) t.dispose();
    await yieldLoop();

    setInitSeed(2);
    const b = resnet18().eval();
    const dict = readSafetensors(r18File());
    b.loadTorchCheckpoint(dict, { source: r18File() });
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const [la, lb] = [ref.logits(x), b.logits(x)];
    expect(relErr(lb, la)).toBe(0);

    // torchvision's original resnet files predate num_batches_tracked; 'module.' from DataParallel.
    setInitSeed(3);
    const old = new Map<string, tf.Tensor>();
    for (const [k, t] of dict) if (!k.endsWith('num_batches_tracked')) old.set(`module.${k}`, t);
    b.loadTorchCheckpoint(old);
    const lc = b.logits(x);
    expect(relErr(lc, la)).toBe(0);
    for (const t of [...dict.values(), la, lb, lc, x]) t.dispose();
    b.dispose();
  });

  it('explicit weights: missing file and shape-mismatched safetensors throw WeightsError naming the file', async () => {
    const missing = join(tmp, 'missing.safetensors');
    const e1 = await createBackbone('resnet18', { init: 'pretrained', weights: missing, weightsDir: join(tmp, 'empty') }).then(() => new Error('no error'), (e: unknown) => e as Error);
    expect(e1).toBeInstanceOf(WeightsError);
    expect(e1.message).toContain(missing);
    expect(e1.message).toContain('https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors');
    expect(e1.message).toContain(join(tmp, 'empty', 'timm', 'resnet18.tv_in1k', 'model.safetensors'));

    // The resnet18 file with one tensor of the wrong shape.
    const sd = readSafetensors(r18File());
    sd.get('layer2.0.conv1.weight')?.dispose();
    sd.set('layer2.0.conv1.weight', tf.zeros([128, 64, 1, 1]));
    const bad = join(tmp, 'mismatch.safetensors');
    writeSafetensors(bad, sd);
    for (const t of sd.values()) t.dispose();
    const e2 = await createBackbone('resnet18', { init: 'pretrained', weights: bad }).then(() => new Error('no error'), (e: unknown) => e as Error);
    expect(e2).toBeInstanceOf(WeightsError);
    expect(e2.message).toContain(bad);
    expect(e2.message).toMatch(/layer2\.0\.conv1\.weight: checkpoint \[1,1,64,128\] vs model \[3,3,64,128\]/);

    // A file for another architecture.
    const e3 = await createBackbone('resnet50', { init: 'pretrained', weights: r18File() }).then(() => new Error('no error'), (e: unknown) => e as Error);
    expect(e3).toBeInstanceOf(WeightsError);
    expect(e3.message).toContain('r18.safetensors');
  });

  it('cache hit -> pretrained (layer4/fc ignored); unobtainable -> random init with a loud warning', async () => {
    const wdir = join(tmp, 'wcache');
    mkdirSync(join(wdir, 'timm', 'resnet18.tv_in1k'), { recursive: true });
    copyFileSync(r18File(), join(wdir, 'timm', 'resnet18.tv_in1k', 'model.safetensors'));

    const got = await createBackbone('resnet18', { init: 'pretrained', weightsDir: wdir });
    expect(got.initUsed).toBe('pretrained');
    expect(got.warning).toBeUndefined();
    expect(got.source).toContain('cache');
    expect(got.source).toMatch(/ignored/); // built to layer3: layer4 + fc skipped
    expect(got.module.featureLayers).toEqual(['layer2', 'layer3']);
    const x = tf.randomUniform([1, 32, 32, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    const e = got.module.extract(x);
    const s = (ref as ResNet).extract(x, ['layer3']);
    expect(relErr(e.layer3, s.layer3)).toBe(0);
    expect(got.module.trainableVariables()).toEqual([]); // frozen by default
    for (const t of [x, ...Object.values(e), ...Object.values(s)]) t.dispose();
    got.module.dispose();

    const old = process.env.HF_ENDPOINT;
    process.env.HF_ENDPOINT = 'http://127.0.0.1:9';
    try {
      const r = await createBackbone('resnet18', { init: 'pretrained', weightsDir: join(tmp, 'nothing'), seed: 7, progress: { write: () => true } });
      expect(r.initUsed).toBe('random-init');
      expect(r.warning).toMatch(/RANDOMLY INITIALISED/);
      expect(r.warning).toContain('https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors');
      r.module.dispose();
    } finally {
      if (old === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = old;
    }
    const rnd = await createBackbone('resnet18', { init: 'random', seed: 1 });
    expect(rnd.initUsed).toBe('random-init');
    expect(rnd.warning).toBeUndefined();
    rnd.module.dispose();
    await expect(createBackbone('vgg16', { init: 'random' })).rejects.toThrow(ConfigError);
  });
});

// ---- TF.js Layers backbones against tf.loadLayersModel on the same files. ----
// Tiny Darknet ships in assets/ (always tested); MobileNet only in ../shared.
const DARKNET_DIR = join(ASSETS_DIR, 'backbones', 'tiny_darknet');
const MOBILENET_DIR = sharedPath('weights/tfjs_mobilenet_v1_1.0_224_partial', 'the mobilenet_v1 TF.js parity and loading tests');

/** Frees the input size so odd sizes exercise Keras' asymmetric 'same' padding. */
function anySize(t: Record<string, unknown>): Record<string, unknown> {
  const mc = t.model_config as { config: { layers: { class_name: string; config: { batch_input_shape?: unknown[] } }[] } };
  for (const l of mc.config.layers) if (l.class_name === 'InputLayer') l.config.batch_input_shape = [null, null, null, 3];
  return t;
}

async function kerasParity(dir: string, ours: FeatureExtractor, taps: string[], size: [number, number], pre: (x: tf.Tensor) => tf.Tensor): Promise<void> {
  const ref = await tf.loadLayersModel(tfjsLayersFileHandler(dir, { zeroFillMissing: true, transformTopology: anySize }));
  const sub = tf.model({ inputs: ref.inputs, outputs: taps.map((n) => ref.getLayer(n).output as tf.SymbolicTensor) });
  const x = tf.randomUniform([2, ...size, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
  const mine = ours.extract(x, taps);
  const xin = pre(x);
  const theirs = sub.predict(xin) as tf.Tensor[];
  taps.forEach((n, i) => {
    expect(mine[n].shape).toEqual(theirs[i].shape);
    expect(relErr(mine[n], theirs[i])).toBeLessThanOrEqual(1e-4);
  });
  for (const t of [x, xin, ...Object.values(mine), ...theirs]) t.dispose();
  ref.dispose();
}

async function flatTensors(bb: FeatureExtractor, size: number): Promise<void> {
  const x = tf.randomUniform([1, size, size, 3]) as tf.Tensor4D;
  // The first eval forward folds conv+BN weights once (src/nn/layers/fold.ts), kept until dispose.
  tf.dispose(Object.values(bb.extract(x)));
  const n0 = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const f = bb.extract(x);
    for (const [k, t] of Object.entries(f)) {
      expect(t.shape).toEqual([1, Math.ceil(size / bb.strides[k]), Math.ceil(size / bb.strides[k]), bb.channels[k]]);
      t.dispose();
    }
    expect(tf.memory().numTensors).toBe(n0);
  }
  x.dispose();
}

describe('tiny_darknet (TF.js Layers, ml5, shipped in assets/)', () => {
  it('matches tf.loadLayersModel on the same files at an odd size; pretrained via createBackbone from the shipped copy', async () => {
    const got = await createBackbone('tiny_darknet', {
      init: 'pretrained',
      weightsDir: join(tmp, 'no-weights-here'),
      featureLayers: ['leaky_re_lu_2', 'leaky_re_lu_10', 'leaky_re_lu_14', 'leaky_re_lu_15'],
    });
    expect(got.initUsed).toBe('pretrained');
    expect(got.source).toContain(join(DARKNET_DIR, 'model.json'));
    expect(got.source).toContain('90 tensors'); // 15 conv+BN units x 6 entries
    expect(got.module).toBeInstanceOf(TinyDarknet);
    await kerasParity(DARKNET_DIR as string, got.module, ['leaky_re_lu_2', 'leaky_re_lu_10', 'leaky_re_lu_14', 'leaky_re_lu_15'], [100, 77], (x) => x.clone());
    got.module.dispose();
    const dflt = await createBackbone('tiny_darknet', { init: 'pretrained' });
    expect(dflt.module.featureLayers).toEqual(['leaky_re_lu_10', 'leaky_re_lu_14']);
    expect(dflt.module.strides).toMatchObject({ leaky_re_lu_10: 8, leaky_re_lu_14: 16 });
    await flatTensors(dflt.module, 64);
    dflt.module.dispose();
    // The classifier head loads too (all 31 groups).
    const full = await createBackbone('tiny_darknet', { init: 'pretrained', full: true });
    expect(full.module.numParameters()).toBe(1_046_488 - 2 * (16 + 32 + 16 + 128 + 16 + 128 + 32 + 256 + 32 + 256 + 64 + 512 + 64 + 512 + 128));
    full.module.dispose();
  });
});

describe.skipIf(!MOBILENET_DIR)('mobilenet_v1 (TF.js Layers, partial copy)', () => {
  it('matches tf.loadLayersModel at an odd size (asymmetric same padding); missing conv_pw_13 shard only matters when needed', async () => {
    const taps = ['conv1_relu', 'conv_pw_5_relu', 'conv_pw_11_relu', 'conv_pw_12_relu'];
    const got = await createBackbone('mobilenet_v1', { init: 'pretrained', featureLayers: taps });
    expect(got.initUsed).toBe('pretrained');
    expect(got.module).toBeInstanceOf(MobileNetV1);
    await kerasParity(MOBILENET_DIR as string, got.module, taps, [97, 130], (x) => tf.sub(tf.mul(x, 2), 1));
    got.module.dispose();

    const dflt = await createBackbone('mobilenet_v1', { init: 'pretrained' });
    expect(dflt.module.strides).toMatchObject({ conv_pw_5_relu: 8, conv_pw_11_relu: 16 });
    await flatTensors(dflt.module, 64);
    dflt.module.dispose();

    const deep = createBackbone('mobilenet_v1', { init: 'pretrained', featureLayers: ['conv_pw_13_relu'] });
    await expect(deep).rejects.toThrow(WeightsError);
    await expect(deep).rejects.toThrow(/group37-shard1of1/);

    const e = await createBackbone('mobilenet_v1', { init: 'pretrained', weights: join(tmp, 'no-such-dir') }).then(() => new Error('no error'), (err: unknown) => err as Error);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain('no-such-dir');
    // Darknet weights into MobileNet: WeightsError, not a silent partial load.
    await expect(createBackbone('mobilenet_v1', { init: 'pretrained', weights: DARKNET_DIR })).rejects.toThrow(WeightsError);
  });
});

describe('registry', () => {
  it('every backbone builds, and its declared taps, strides and channels are what extract returns', async () => {
    expect(new Set(BACKBONE_NAMES)).toEqual(new Set(Object.keys(BACKBONES)));
    for (const name of ['resnet18', 'mobilenet_v1', 'tiny_darknet'] as const) {
      const spec = BACKBONES[name];
      setInitSeed(0);
      const m = spec.build();
      expect(m.featureLayers).toEqual(spec.featureLayers);
      for (const l of spec.featureLayers) {
        expect(m.strides[l]).toBe(spec.strides[l]);
        expect(m.channels[l]).toBe(spec.channels[l]);
      }
      await flatTensors(m, 64);
      m.dispose();
    }
    expect(BACKBONES.wide_resnet50_2.defaultWeights).toMatchObject({ kind: 'huggingface', repo: 'timm/wide_resnet50_2.tv_in1k', filename: 'model.safetensors' });
    expect(BACKBONES.wide_resnet50_2.channels).toEqual({ layer2: 512, layer3: 1024 });
  });

  it('nn fixes: depthwise multiplier > 1 loads from PyTorch layout; Sequential keeps an identity layer output', () => {
    const a = new Conv2d(4, 8, 3, { groups: 4, padding: 1 });
    const b = new Conv2d(4, 8, 3, { groups: 4, padding: 1 });
    const sd = a.torchStateDict();
    expect(sd.get('weight')?.shape).toEqual([8, 1, 3, 3]);
    b.loadTorchStateDict(sd);
    const x = tf.randomNormal([1, 5, 5, 4]) as tf.Tensor4D;
    const [ya, yb] = [a.call(x), b.call(x)];
    expect(relErr(yb, ya)).toBe(0);
    const seq = new Sequential<tf.Tensor4D>([new Fn<tf.Tensor4D>((t) => tf.relu(t)), new Fn<tf.Tensor4D>((t) => t)]);
    const y = seq.call(x);
    expect(y.isDisposed).toBe(false);
    expect(y.shape).toEqual([1, 5, 5, 4]);
    for (const t of [...sd.values(), x, ya, yb, y]) t.dispose();
    a.dispose();
    b.dispose();
  });

  it('kerasSamePads follows TF: stride-2 on even sizes pads only after', () => {
    expect(kerasSamePads(224, 3, 2)).toEqual([0, 1]);
    expect(kerasSamePads(97, 3, 2)).toEqual([1, 1]);
    expect(kerasSamePads(56, 3, 1)).toEqual([1, 1]);
    expect(kerasSamePads(25, 2, 2)).toEqual([0, 1]);
    expect(kerasSamePads(14, 1, 1)).toEqual([0, 0]);
  });
});
