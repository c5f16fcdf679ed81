/**
 * DRAEM with gradient checkpointing (config `gradientCheckpointing`, src/nn/checkpoint.ts): one
 * step's loss, every gradient and the BN running statistics equal those without checkpointing;
 * a short training run follows the identical trajectory (so the setting is not hashed into
 * training checkpoints and a run may resume with another one); bad values are config errors.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderSyntheticSample } from '../src/data/synthetic/index.js';
import { ConfigError } from '../src/errors.js';
import { setInitSeed } from '../src/nn/init.js';
import { draemWeightsInit } from '../src/nn/layers/unetBlocks.js';
import { InMemoryImageSource } from '../src/run/imageSource.js';
import { setupRuntime } from '../src/runtime.js';
import { Rng } from '../src/util/rng.js';
import {
  DRAEM_PROFILES, Draem, DiscriminativeSubNetwork, ReconstructiveSubNetwork, draemForward, draemLoss, draemMethod,
  type DraemCheckpointing, type DraemConfig,
} from '../src/models/draem/index.js';
import { relErr } from './helpers/numeric.js';

let root = '';
beforeAll(async () => {
  await setupRuntime('wasm');
  root = mkdtempSync(join(tmpdir(), 'adbench-draem-ckpt-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Seeded uniform data in [0, 1). */
function uniform(shape: number[], seed: number): tf.Tensor4D {
  const n = shape.reduce((a, b) => a * b, 1);
  const r = new Rng(seed);
  return tf.tensor4d(Float32Array.from({ length: n }, () => r.next()), shape as [number, number, number, number]);
}

interface Step {
  loss: number;
  grads: Map<string, Float32Array>;
  buffers: Map<string, Float32Array>;
}

/** One DRAEM training step's loss and gradients (no update), BN buffers after it. */
function oneStep(mode: DraemCheckpointing, size: number, batch: number): Step {
  setInitSeed(4);
  const nets = { reconstructive: new ReconstructiveSubNetwork(4), discriminative: new DiscriminativeSubNetwork(4) };
  draemWeightsInit(nets.reconstructive);
  draemWeightsInit(nets.discriminative);
  nets.reconstructive.setCheckpointing(mode).train();
  nets.discriminative.setCheckpointing(mode).train();
  const images = uniform([batch, size, size, 3], 1);
  const clean = uniform([batch, size, size, 3], 2);
  const masks = tf.tidy(() => tf.cast(tf.greater(uniform([batch, size, size, 1], 3), 0.8), 'float32') as tf.Tensor4D);
  const named = [...nets.reconstructive.namedParameters('rec.'), ...nets.discriminative.namedParameters('disc.')];
  const { value, grads } = tf.variableGrads(() => {
    const { reconstruction, probs } = draemForward(nets, images);
    return draemLoss(reconstruction, clean, probs, masks).total;
  }, named.map(([, v]) => v));
  const out: Step = {
    loss: value.dataSync()[0],
    grads: new Map(named.map(([n, v]) => [n, grads[v.name].dataSync() as Float32Array])),
    buffers: new Map([...nets.reconstructive.namedEntries('rec.'), ...nets.discriminative.namedEntries('disc.')]
      .filter(([, e]) => e.kind === 'buffer').map(([n, e]) => [n, e.variable.dataSync() as Float32Array])),
  };
  tf.dispose([value, images, clean, masks, ...Object.values(grads)]);
  nets.reconstructive.dispose();
  nets.discriminative.dispose();
  return out;
}

describe('DRAEM gradient checkpointing', () => {
  it("one step: loss, all 200 gradients and BN statistics of 'block' and 'layer' equal 'off' (tiny widths, 64², batch 2)", () => {
    const want = oneStep('off', 64, 2);
    expect(want.grads.size).toBe(200); // 90 reconstructive + 110 discriminative parameter tensors
    for (const mode of ['block', 'layer'] as const) {
      const n0 = tf.memory().numTensors;
      const got = oneStep(mode, 64, 2);
      expect(tf.memory().numTensors, `${mode}: tensors left`).toBe(n0);
      expect(got.loss, mode).toBe(want.loss);
      let worst = 0;
      for (const [n, g] of want.grads) {
        const e = relErr(got.grads.get(n)!, g);
        worst = Math.max(worst, e);
        expect(e, `${mode}: gradient of ${n}`).toBeLessThanOrEqual(1e-5);
      }
      for (const [n, b] of want.buffers) expect([...got.buffers.get(n)!], `${mode}: ${n}`).toEqual([...b]);
    }
  });

  it('Draem.fit follows the identical trajectory with checkpointing on (losses and final weights bit-exact)', async () => {
    const size = 32;
    const ids = ['a', 'b', 'c', 'd'];
    const data = new InMemoryImageSource(ids, ids.map((_, i) => ({
      data: renderSyntheticSample('synthetic_texture', 'train', 'good', i, { size, seed: 5 }).image, h: size, w: size, c: 3 as const,
    })));
    const cfg = (mode: DraemCheckpointing): DraemConfig => ({
      ...DRAEM_PROFILES.cpu, resize: size, crop: size, epochs: 2, batchSize: 2, reconstructiveWidth: 4, discriminativeWidth: 4,
      scoreFilterSize: 3, checkpointEveryEpochs: 2, gradientCheckpointing: mode,
    });
    const run = async (mode: DraemCheckpointing): Promise<{ losses: number[]; weights: number[][] }> => {
      setInitSeed(1);
      const d = new Draem(cfg(mode));
      await d.fit(data, { rng: new Rng(11), log: () => {}, runDir: join(root, mode) });
      const out = { losses: d.lastFit!.losses, weights: d.modules().flatMap((m) => m.namedEntries().map(([, e]) => Array.from(e.variable.dataSync()))) };
      d.dispose();
      return out;
    };
    const off = await run('off');
    const block = await run('block');
    expect(off.losses).toHaveLength(4);
    expect(block.losses).toEqual(off.losses);
    expect(block.weights).toEqual(off.weights);
  });

  it('profiles: on for paper, off for cpu; validated; settable with --set', () => {
    expect(draemMethod.resolveConfig('paper', {}).gradientCheckpointing).toBe('layer');
    expect(draemMethod.resolveConfig('cpu', {}).gradientCheckpointing).toBe('off');
    expect(draemMethod.resolveConfig('cpu', { set: { gradientCheckpointing: 'layer' } }).gradientCheckpointing).toBe('layer');
    expect(() => draemMethod.resolveConfig('cpu', { set: { gradientCheckpointing: 'yes' } })).toThrow(ConfigError);
    expect(() => draemMethod.resolveConfig('cpu', { set: { gradientCheckpointing: 'yes' } })).toThrow(/off, block, layer/);
  });
});
