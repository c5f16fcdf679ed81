/**
 * CutPaste (cutpaste.md §7 "Minimum faithful tests" where they concern the method, plus the issue's
 * tiny-run, resume and memory checks). The augmentation's geometry tests (§7.1, §7.2) live with
 * the strategy in test/augment-strategies.test.ts. Runs on wasm; 32² inputs keep it short.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYNTHETIC_DEFECTS, renderSyntheticSample } from '../src/data/synthetic/index.js';
import { computeCostRow } from '../src/energy/costsTable.js';
import { auroc } from '../src/eval/metrics/roc.js';
import { ResNet } from '../src/models/backbones/resnet.js';
import {
  CUTPASTE_PROFILES, CutPaste, CutPasteNet, GaussianDensity, cutpasteCostSpec, cutpasteHeadParams, cutpasteMethod, type CutPasteBatch, type CutPasteConfig,
} from '../src/models/cutpaste/index.js';
import { ledoitWolf, matrix } from '../src/nn/linalg/index.js';
import { setInitSeed } from '../src/nn/init.js';
import { writeSafetensors } from '../src/nn/safetensors.js';
import { getMethod } from '../src/registry.js';
import { InMemoryImageSource } from '../src/run/imageSource.js';
import { setupRuntime } from '../src/runtime.js';
import { CheckpointDir } from '../src/train/checkpoint.js';
import { SGD } from '../src/train/optimizers/sgd.js';
import { Rng } from '../src/util/rng.js';

let root = '';
beforeAll(async () => {
  await setupRuntime('wasm');
  root = mkdtempSync(join(tmpdir(), 'cutpaste-test-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const runDir = (): string => mkdtempSync(join(root, 'run-'));
const quietLog = (): void => {};

function resnet18(): ResNet {
  return new ResNet('resnet18', { upTo: 'layer4', featureLayers: ['layer3', 'layer4'] });
}

/** 32² inputs, scars scaled to 32/256 of the paper's pixels (as resolveConfig does), short runs. */
function tiny(over: Partial<CutPasteConfig> = {}): CutPasteConfig {
  return {
    ...CUTPASTE_PROFILES.cpu,
    resize: 32,
    crop: 32,
    epochs: 2,
    stepsPerEpoch: 2,
    batchSize: 2,
    augmentParams: cutpasteMethod.resolveConfig('cpu', { imageSize: 32 }).augmentParams,
    evalBatchSize: 8,
    keepCheckpoints: 4,
    ...over,
  };
}

function build(config: CutPasteConfig, seed = 1, init: 'scratch' | 'pretrained' = 'scratch'): CutPaste {
  setInitSeed(seed);
  return new CutPaste(config, resnet18(), init);
}

function synthetic(kind: 'train' | 'test', n: number, size: number, category: 'synthetic_texture' | 'synthetic_object' = 'synthetic_texture'): Float32Array[] {
  return Array.from({ length: n }, (_, i) => renderSyntheticSample(category, kind, 'good', i, { size, seed: 5 }).image);
}

function source(images: Float32Array[], size: number): InMemoryImageSource {
  return new InMemoryImageSource(images.map((_, i) => `img${i}`), images.map((data) => ({ data, h: size, w: size })), { storage: 'float32' });
}

describe('CutPaste network (cutpaste.md §2)', () => {
  it('parameter counts: encoder 11,176,512; head_layer 1 / 2 / 8 (3-way) and binary; Table 6 row', async () => {
    expect(cutpasteHeadParams(1, 3)).toBe(329_987);
    const counts: [number, number, number][] = [[1, 3, 11_506_499], [2, 3, 11_770_179], [2, 2, 11_770_050], [8, 3, 13_352_259]];
    for (const [head, classes, total] of counts) {
      const net = new CutPasteNet(resnet18(), head, classes);
      expect(net.resnet18.numParameters()).toBe(11_176_512);
      expect(net.numParameters()).toBe(total);
      expect(cutpasteHeadParams(head, classes)).toBe(total - 11_176_512);
      net.dispose();
    }
    // Table 6 (TABLE6.md): 11.77 M, 2.38 GMAC ptflops-style at 256²; MACs scale with the pixels (×64 from 32²).
    const row = await computeCostRow(cutpasteCostSpec, 32);
    expect(Math.round(row.paramsMPaperRule * 1e6)).toBe(11_770_179);
    expect(Math.floor(row.paramsMPaperRule * 100) / 100).toBe(11.77);
  });

  it("Runinho's ProjectionNet names; embeds [N, 512], logits [N, classes]; pooled feature = mean of layer4", () => {
    setInitSeed(2);
    const net = new CutPasteNet(resnet18(), 2, 3).eval();
    const names = net.namedEntries().map(([k]) => k);
    for (const k of ['resnet18.conv1.weight', 'resnet18.layer4.1.bn2.running_var', 'head.0.weight', 'head.1.running_mean', 'head.3.weight', 'head.7.bias', 'out.weight', 'out.bias']) {
      expect(names).toContain(k);
    }
    expect(names.some((k) => k.startsWith('resnet18.fc'))).toBe(false);
    const x = tf.randomUniform([3, 64, 48, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const { embeds, logits } = net.forward(x);
    expect(embeds.shape).toEqual([3, 512]);
    expect(logits.shape).toEqual([3, 3]);
    const f = net.features(x, 'layer3');
    expect(f.spatial.shape).toEqual([3, 4, 3, 256]);
    expect(tf.max(tf.abs(tf.sub(f.embeds, embeds))).dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([x, embeds, logits, f.embeds, f.spatial]);
    net.dispose();
  });
});

describe('CutPaste batches (cutpaste.md §3, §7.3)', () => {
  it('32 sources: 3-way gives 96 views labelled [0×32, 1×32, 2×32]; binary variants 64 views [0×32, 1×32]; normals are the sources', async () => {
    const imgs = synthetic('train', 32, 32);
    const x = source(imgs, 32).batch(0, 32);
    const noJitter = { ...tiny().augmentParams, preJitter: 0 };
    const three = build(tiny({ augmentParams: noJitter }));
    const b3 = await three.makeBatch(x, new Rng(1));
    expect(b3.n).toBe(96);
    expect(b3.labels).toEqual([...Array(32).fill(0), ...Array(32).fill(1), ...Array(32).fill(2)]);
    // Without pre-jitter the normal views are the input images, in order.
    const xs = x.dataSync();
    expect(Array.from(b3.images.subarray(0, xs.length))).toEqual(Array.from(xs));
    three.dispose();
    for (const variant of ['cutpaste', 'cutpaste-scar', 'cutpaste-union'] as const) {
      const m = build(tiny({ variant }));
      expect(m.net.out.outFeatures).toBe(2);
      const b = await m.makeBatch(x, new Rng(2));
      expect(b.n).toBe(64);
      expect(b.labels).toEqual([...Array(32).fill(0), ...Array(32).fill(1)]);
      m.dispose();
    }
    x.dispose();
  });

  it('source order: every pass over the train set is a permutation, batches run on across passes, a pure function of the step', () => {
    const rng = new Rng('order');
    const n = 7;
    const seq = Array.from({ length: 6 }, (_, s) => CutPaste.sourceIndices(s, 4, n, rng)).flat();
    for (let p = 0; p + n <= seq.length; p += n) expect([...seq.slice(p, p + n)].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(seq.slice(0, n)).not.toEqual(seq.slice(n, 2 * n));
    expect(CutPaste.sourceIndices(4, 4, n, new Rng('order'))).toEqual(seq.slice(16, 20));
  });
});

describe('Gaussian density estimator (cutpaste.md §4, §7.4)', () => {
  it('scikit-learn LedoitWolf: μ = (2, 2.4), δ = 0.559643, Σ, score of (5, 0) = 3.132318', () => {
    const X = [[1, 2], [2, 1], [3, 5], [4, 3], [0, 1]];
    const lw = ledoitWolf(matrix(5, 2, X.flat()));
    expect(lw.shrinkage).toBeCloseTo(0.559643, 6);
    const S = Array.from(lw.covariance.data);
    [2.067157, 0.616499, 0.616499, 2.172843].forEach((v, i) => expect(S[i]).toBeCloseTo(v, 6));
    const x = tf.tensor2d(X);
    const g = GaussianDensity.fit(x, { l2Normalize: false });
    expect(Array.from(g.mean)).toEqual([2, Math.fround(2.4)]);
    expect(g.shrinkage).toBeCloseTo(0.559643, 6);
    const s = g.score(tf.tensor2d([[5, 0], [2, 2.4]]));
    const v = s.dataSync();
    expect(v[0]).toBeCloseTo(3.132318, 5);
    expect(v[1]).toBeLessThan(1e-3);
    tf.dispose([x, s]);
  });

  it('with L2 normalisation only directions count: scaled rows score the same', () => {
    const x = tf.randomNormal([40, 6], 0, 1, 'float32', 4) as tf.Tensor2D;
    const g = GaussianDensity.fit(x, { l2Normalize: true });
    const probe = tf.randomNormal([5, 6], 0, 1, 'float32', 5) as tf.Tensor2D;
    const [a, b] = [g.score(probe), g.score(tf.mul(probe, 7.5) as tf.Tensor2D)];
    const [va, vb] = [a.dataSync(), b.dataSync()];
    va.forEach((v, i) => expect(vb[i]).toBeCloseTo(v, 3));
    tf.dispose([x, probe, a, b]);
  });
});

describe('CutPaste training (tiny configuration)', () => {
  it('memory is flat over repeated training steps, predict calls and a whole fit', async () => {
    const m = build(tiny({ epochs: 1 }));
    const train = source(synthetic('train', 4, 32), 32);
    const x = train.batch(0, 2);
    const b = await m.makeBatch(x, new Rng(0));
    m.net.train();
    const opt = new SGD(m.net.trainableVariables(), { lr: 0.03, momentum: 0.9, weightDecay: 3e-5 });
    opt.minimize(() => m.trainingLoss(b).loss);
    const afterOne = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) opt.minimize(() => m.trainingLoss(b).loss);
    expect(tf.memory().numTensors).toBe(afterOne);
    opt.dispose();
    // Eval mode caches folded conv+BN weights (src/nn/layers/fold.ts) on first use: make them exist first.
    m.net.eval();
    tf.dispose(Object.values(m.net.features(x)));
    const beforeFit = tf.memory().numTensors;
    await m.fit(train, { rng: new Rng(1), log: quietLog, runDir: runDir() });
    expect(tf.memory().numTensors).toBe(beforeFit);
    const p0 = m.predict(x);
    expect(p0.scores.shape).toEqual([2]);
    expect(p0.maps.shape).toEqual([2, 32, 32]);
    tf.dispose([p0.scores, p0.maps]);
    const afterPredict = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const p = m.predict(x);
      tf.dispose([p.scores, p.maps]);
    }
    expect(tf.memory().numTensors).toBe(afterPredict);
    x.dispose();
    m.dispose();
  });

  it('resume: a run killed mid-training continues from its checkpoint with the uninterrupted losses and scores; save/load round-trips', async () => {
    const train = source(synthetic('train', 5, 32), 32);
    const cfg = tiny(); // 2 epochs × 2 steps, a checkpoint per epoch
    const build2 = (seed: number, killAt?: number): CutPaste => {
      setInitSeed(seed);
      if (killAt === undefined) return new CutPaste(cfg, resnet18());
      let calls = 0;
      return new (class extends CutPaste {
        override trainingLoss(b: CutPasteBatch): { loss: tf.Scalar; logits: tf.Tensor2D } {
          if (calls++ === killAt) throw new Error(`simulated kill at step ${killAt}`);
          return super.trainingLoss(b);
        }
      })(cfg, resnet18());
    };
    const ctx = (dir: string, resume = false) => ({ rng: new Rng(7), log: quietLog, runDir: dir, resume });
    const a = build2(11);
    await a.fit(train, ctx(runDir()));
    expect(a.lossHistory).toHaveLength(4);
    const probe = train.batch(0, 3);
    const pa = a.predict(probe);
    const scoresA = Array.from(await pa.scores.data());

    const d = runDir();
    await expect(build2(11, 3).fit(train, ctx(d))).rejects.toThrow(/simulated kill/);
    expect(new CheckpointDir(join(d, 'checkpoints')).latest()).toMatch(/ckpt-000000002\.adbck$/);
    const b = build2(99);
    await b.fit(train, ctx(d, true));
    expect(b.startStep).toBe(2);
    expect(b.lossHistory).toEqual(a.lossHistory.slice(2));
    const pb = b.predict(probe);
    expect(Array.from(await pb.scores.data())).toEqual(scoresA);

    const modelDir = join(d, 'model');
    await b.save(modelDir);
    const loaded = build2(5);
    await loaded.load(modelDir);
    const pl = loaded.predict(probe);
    expect(Array.from(await pl.scores.data())).toEqual(scoresA);
    expect(Array.from(await pl.maps.data())).toEqual(Array.from(await pb.maps.data()));
    const other = build(tiny({ headLayers: 1 }));
    await expect(other.load(modelDir)).rejects.toThrow(/headLayers/);
    other.dispose();
    tf.dispose([probe, pa.scores, pa.maps, pb.scores, pb.maps, pl.scores, pl.maps]);
    [a, b, loaded].forEach((m) => m.dispose());
  });

  it('an ImageNet-initialised backbone stays frozen for freezeBackboneSteps, the head trains (Runinho freeze_resnet)', async () => {
    const m = build(tiny({ epochs: 1, freezeBackboneSteps: 2 }), 3, 'pretrained');
    const conv = () => Array.from(m.net.resnet18.conv1.namedParameters()[0][1].dataSync());
    const head = () => Array.from(m.net.out.weight.dataSync());
    const [c0, h0] = [conv(), head()];
    await m.fit(source(synthetic('train', 4, 32), 32), { rng: new Rng(2), log: quietLog, runDir: runDir() });
    expect(conv()).toEqual(c0);
    expect(head()).not.toEqual(h0);
    expect(m.net.resnet18.isFrozen).toBe(false);
    m.dispose();
  });

  // Binary CutPaste: at 32² the scaled scars are 1–2 px wide and 24 steps do not move the 3-way
  // loss; the patch task trains visibly (measured: mean loss of the first 6 steps 0.748, last 6 0.580; AUROC 0.85).
  it('tiny run on synthetic objects (binary CutPaste): loss falls, planted defects score above normals', async () => {
    const size = 32;
    const cat = 'synthetic_object' as const;
    const m = build(tiny({ variant: 'cutpaste', epochs: 3, stepsPerEpoch: 8, batchSize: 4 }), 4);
    await m.fit(source(synthetic('train', 24, size, cat), size), { rng: new Rng(3), log: quietLog, runDir: runDir() });
    const h = m.lossHistory;
    expect(h).toHaveLength(24);
    const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
    expect(mean(h.slice(-6))).toBeLessThan(0.85 * mean(h.slice(0, 6)));
    const good = synthetic('test', 10, size, cat);
    const bad = SYNTHETIC_DEFECTS.flatMap((k) => [0, 1, 2].map((i) => renderSyntheticSample(cat, 'test', k, i, { size, seed: 5 }).image));
    const x = source([...good, ...bad], size).batch(0, good.length + bad.length);
    const p = m.predict(x);
    const auc = auroc(Array.from(await p.scores.data()), [...good.map(() => 0), ...bad.map(() => 1)]);
    expect(auc).toBeGreaterThan(0.8);
    tf.dispose([x, p.scores, p.maps]);
    m.dispose();
  });
});

describe('CutPaste method definition', () => {
  it('--weights loads a torchvision resnet18 file (its fc ignored) and marks the run pretrained; scratch by default', async () => {
    setInitSeed(21);
    const full = new ResNet('resnet18'); // torchvision layout incl. fc, as resnet18-f37072fd.pth / timm tv_in1k
    const sd = full.torchStateDict();
    const file = join(runDir(), 'resnet18.safetensors');
    writeSafetensors(file, sd);
    tf.dispose([...sd.values()]);
    const env = { backboneInit: 'pretrained' as const, log: quietLog, warn: (l: string) => { throw new Error(l); }, seed: 3 };
    const cfg = tiny();
    const pre = await cutpasteMethod.create(cfg, { ...env, weightsPath: file });
    expect(pre.describe().backboneInit).toBe('pretrained');
    expect((pre as CutPaste).frozenSteps).toBe(cfg.freezeBackboneSteps);
    expect(Array.from((pre as CutPaste).net.resnet18.conv1.namedParameters()[0][1].dataSync())).toEqual(Array.from(full.conv1.namedParameters()[0][1].dataSync()));
    const scratch = await cutpasteMethod.create(cfg, env);
    expect(scratch.describe().backboneInit).toBe('scratch');
    expect((scratch as CutPaste).frozenSteps).toBe(0);
    await expect(cutpasteMethod.create(cfg, { ...env, weightsPath: join(root, 'missing.safetensors') })).rejects.toThrow(/missing\.safetensors/);
    [full, pre, scratch].forEach((m) => m.dispose());
  });

  it('is registered; paper profile as specified; image-size scales scars; bad options are typed errors', () => {
    expect(getMethod('cutpaste').name).toBe('cutpaste');
    const paper = cutpasteMethod.resolveConfig('paper', {});
    expect(paper).toMatchObject({ crop: 256, epochs: 256, stepsPerEpoch: 256, batchSize: 32, variant: 'cutpaste-3way', headLayers: 2, backboneInit: 'scratch', lr: 0.03, momentum: 0.9, weightDecay: 3e-5, l2Normalize: true });
    expect(paper.augmentParams).toEqual({});
    const proto = cutpasteMethod.protocol(paper);
    expect(proto.data).toMatchObject({ resize: 256, resizeMode: 'squash', crop: null, filter: 'pil-bicubic' });
    const c128 = cutpasteMethod.resolveConfig('paper', { imageSize: 128, set: { variant: 'cutpaste-union' } });
    expect(c128).toMatchObject({ crop: 128, resize: 128, variant: 'cutpaste-union' });
    expect(c128.augmentParams).toEqual({ scarWidthMin: 1, scarWidthMax: 8, scarLengthMin: 5, scarLengthMax: 13 });
    expect(cutpasteMethod.resolveConfig('cpu', {}).augmentParams).toEqual({ scarWidthMin: 1, scarWidthMax: 4, scarLengthMin: 3, scarLengthMax: 6 });
    expect(() => cutpasteMethod.resolveConfig('cpu', { set: { variant: 'draem' } })).toThrow(/variant 'draem'/);
    expect(() => cutpasteMethod.resolveConfig('cpu', { backbone: 'wide_resnet50_2' })).toThrow(/ResNet-18/);
    expect(() => cutpasteMethod.resolveConfig('cpu', { set: { mapLayer: 'layer2' } })).toThrow(/mapLayer/);
    expect(() => cutpasteMethod.resolveConfig('nope', {})).toThrow(/profiles paper, cpu/);
  });
});
