import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupRuntime } from '../src/runtime.js';
import { setInitSeed } from '../src/nn/init.js';
import { Conv2d } from '../src/nn/layers/conv.js';
import { Linear } from '../src/nn/layers/linear.js';
import { Layer } from '../src/nn/module.js';
import { Adam } from '../src/train/optimizers/index.js';
import { train, type PrepareBatchFn, type StepFn, type TrainOptions } from '../src/train/trainer.js';

// The trainer's prepareBatch hook (async batches, prefetch), epoch hooks and stage checkpoints.

class Net extends Layer<tf.Tensor4D, tf.Tensor> {
  readonly conv: Conv2d;
  readonly fc: Linear;
  constructor() {
    super();
    this.conv = this.addModule('conv', new Conv2d(2, 3, 3, { padding: 1 }));
    this.fc = this.addModule('fc', new Linear(3, 1));
  }
  forward(x: tf.Tensor4D): tf.Tensor {
    return tf.tidy(() => this.fc.call(tf.mean(tf.relu(this.conv.call(x)), [1, 2])));
  }
}

interface ArrayBatch {
  step: number;
  x: Float32Array;
  y: Float32Array;
}

/** Async batch: data from the per-step rng, with real awaits (a timer and a tensor read) in between. */
const prepareArrays: PrepareBatchFn<ArrayBatch> = async (step, rng) => {
  await new Promise((r) => setTimeout(r, 1));
  const x = Float32Array.from({ length: 4 * 5 * 5 * 2 }, () => rng.normal());
  const t = tf.tensor1d(x);
  const y = (await tf.tidy(() => tf.mean(t.reshape([4, 50]), 1)).data()) as Float32Array;
  t.dispose();
  return { step, x, y };
};

const arrayStep = (net: Net, seen?: number[]): StepFn<ArrayBatch> => (i, _rng, _ctx, b) => {
  seen?.push(i);
  expect(b.step).toBe(i);
  const pred = net.call(tf.tensor4d(b.x, [4, 5, 5, 2]));
  return tf.mean(tf.square(tf.sub(pred, tf.tensor2d(b.y, [4, 1])))) as tf.Scalar;
};

function build(seed = 5): Net {
  setInitSeed(seed);
  return new Net();
}

function opts(net: Net, extra: Partial<TrainOptions<ArrayBatch>> = {}): TrainOptions<ArrayBatch> {
  return {
    modules: { net },
    optimizers: new Adam(net.trainableVariables(), { lr: 0.05 }),
    epochs: 3,
    stepsPerEpoch: 3,
    seed: 'prefetch-test',
    prepareBatch: prepareArrays,
    stepFn: arrayStep(net),
    config: { method: 'prefetch-test' },
    progress: 'none',
    log: () => {},
    ...extra,
  };
}

const weights = (n: Net): number[] => n.namedEntries().flatMap(([, e]) => Array.from(e.variable.dataSync()));

let root = '';
const runDir = (): string => mkdtempSync(join(root, 'run-'));

beforeAll(async () => {
  await setupRuntime('wasm');
  root = mkdtempSync(join(tmpdir(), 'adbench-prefetch-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('trainer prepareBatch hook', () => {
  it('prefetch 0, 1 and 2 give identical losses and weights; each step gets its own batch', async () => {
    const runs = [];
    for (const prefetch of [0, 1, 2]) {
      const net = build();
      const seen: number[] = [];
      let inFlight = 0;
      let maxInFlight = 0;
      const res = await train(
        opts(net, {
          prefetch,
          stepFn: arrayStep(net, seen),
          prepareBatch: async (step, rng, ctx) => {
            inFlight += 1;
            maxInFlight = Math.max(maxInFlight, inFlight);
            try {
              expect(ctx.epoch).toBe(Math.floor(step / 3));
              return await prepareArrays(step, rng, ctx);
            } finally {
              inFlight -= 1;
            }
          },
        }),
      );
      expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
      // prefetch 0 never prepares ahead; prefetch 2 has the next two batches in flight at once.
      expect(maxInFlight).toBe(prefetch === 0 ? 1 : prefetch === 2 ? 3 : 2);
      runs.push({ losses: res.losses, w: weights(net) });
    }
    expect(runs[0].losses).toHaveLength(9);
    expect(new Set(runs[0].losses).size).toBe(9);
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[2]).toEqual(runs[0]);
  });

  it('a run killed mid-epoch resumes with the uninterrupted losses (next step included) and weights', async () => {
    const straightNet = build();
    const straight = await train(opts(straightNet));
    const dir = runDir();
    const killed = build();
    const killStep: StepFn<ArrayBatch> = (i, r, c, b) => {
      if (i === 4) throw new Error('simulated kill at step 4');
      return arrayStep(killed)(i, r, c, b);
    };
    await expect(train(opts(killed, { runDir: dir, checkpointEvery: 1, prefetch: 2, stepFn: killStep }))).rejects.toThrow(/simulated kill/);
    const resumedNet = build(77);
    const resumed = await train(opts(resumedNet, { runDir: dir, checkpointEvery: 1, resume: true, stepFn: arrayStep(resumedNet) }));
    expect(resumed.startStep).toBe(4); // step 4 is batch 2 of epoch 2: mid-epoch
    expect(resumed.losses[0]).toBe(straight.losses[4]);
    expect(resumed.losses).toEqual(straight.losses.slice(4));
    expect(weights(resumedNet)).toEqual(weights(straightNet));
  });

  it('tensor batches are disposed after their step, and prefetched ones on early stop; tensor count flat', async () => {
    const net = build();
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    interface TensorBatch {
      x: tf.Tensor4D;
      nested: { t: tf.Scalar }[];
      raw: Float32Array;
    }
    const { prepareBatch: _p, stepFn: _s, disposeBatch: _d, ...base } = opts(net);
    const o: TrainOptions<TensorBatch> = {
      ...base,
      prefetch: 2,
      prepareBatch: async (step, rng) => {
        await new Promise((r) => setTimeout(r, 1));
        return { x: tf.tensor4d(Float32Array.from({ length: 200 }, () => rng.normal()), [4, 5, 5, 2]), nested: [{ t: tf.scalar(step) }], raw: new Float32Array(3) };
      },
      stepFn: (_i, _r, _c, b) => tf.mean(tf.square(net.call(b.x))) as tf.Scalar,
      onStep: () => void counts.push(tf.memory().numTensors),
      onValidate: (epoch) => ({ stop: epoch === 1 }),
    };
    const res = await train(o);
    expect(res.stoppedEarly).toBe(true);
    expect(res.step).toBe(6);
    // Adam slots appear at step 1; batches in flight come and go, so counts vary by at most the prefetch depth.
    expect(Math.max(...counts.slice(1)) - Math.min(...counts.slice(1))).toBeLessThanOrEqual(2 * 2);
    (o.optimizers as Adam).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a failing prepareBatch rejects the run with its error; a failing prefetched batch not needed is harmless', async () => {
    const net = build();
    const fail = (at: number): PrepareBatchFn<ArrayBatch> => async (step, rng, ctx) => {
      if (step === at) throw new Error(`texture file missing at step ${step}`);
      return prepareArrays(step, rng, ctx);
    };
    await expect(train(opts(net, { prepareBatch: fail(2) }))).rejects.toThrow('texture file missing at step 2');
    // Step 3 (prefetched while step 2 ran) fails, but early stop after epoch 1 (steps 0-2) never needs it.
    const res = await train(opts(build(), { prepareBatch: fail(3), prefetch: 1, onValidate: () => ({ stop: true }) }));
    expect(res.step).toBe(3);
  });
});

describe('trainer epoch hooks', () => {
  it('onEpochStart/onEpochEnd run every epoch, onValidate every validateEvery; resume mid-epoch starts that epoch again', async () => {
    const events: string[] = [];
    const hooks = (): Partial<TrainOptions<ArrayBatch>> => ({
      validateEvery: 2,
      onEpochStart: (e, c) => void events.push(`start:${e}@${c.step}`),
      onEpochEnd: (e, c) => void events.push(`end:${e}@${c.step}`),
      onValidate: (e) => void events.push(`validate:${e}`),
      onStep: (i) => void events.push(`step:${i.step}`),
    });
    await train(opts(build(), hooks()));
    expect(events).toEqual([
      'start:0@0', 'step:0', 'step:1', 'step:2', 'end:0@3',
      'start:1@3', 'step:3', 'step:4', 'step:5', 'end:1@6', 'validate:1',
      'start:2@6', 'step:6', 'step:7', 'step:8', 'end:2@9',
    ]);
    const dir = runDir();
    await train(opts(build(), { runDir: dir, steps: 4, checkpointEvery: 1, epochs: undefined }));
    events.length = 0;
    await train(opts(build(), { runDir: dir, resume: true, ...hooks() }));
    expect(events.slice(0, 4)).toEqual(['start:1@4', 'step:4', 'step:5', 'end:1@6']);
  });
});

describe('trainer stages', () => {
  /** Two stages in one run folder: 'first' trains net A, 'second' trains net B on A's output. */
  const twoStage = async (dir: string, resume: boolean, killSecondAt?: number) => {
    const a = build(1);
    const b = build(2);
    const first = await train(opts(a, { runDir: dir, stage: 'first', resume, epochs: 2, stepFn: arrayStep(a) }));
    const second = await train(
      opts(b, {
        runDir: dir, stage: 'second', resume, checkpointEvery: 1, seed: 'second',
        stepFn: (i, r, c, batch) => {
          if (i === killSecondAt) throw new Error(`simulated kill in stage 2 at ${i}`);
          return tf.add(arrayStep(b)(i, r, c, batch), tf.mul(0.1, tf.mean(a.call(tf.tensor4d(batch.x, [4, 5, 5, 2]))))) as tf.Scalar;
        },
      }),
    );
    return { a: weights(a), b: weights(b), first, second };
  };

  it('each stage checkpoints in checkpoints/<stage>; on resume a finished stage is restored, not re-run, and the next continues', async () => {
    const straight = await twoStage(runDir(), false);
    expect(straight.first.losses).toHaveLength(6);
    const dir = runDir();
    await expect(twoStage(dir, false, 5)).rejects.toThrow(/simulated kill in stage 2/);
    expect(readdirSync(join(dir, 'checkpoints')).sort()).toEqual(['first', 'second']);
    expect(existsSync(join(dir, 'checkpoints', 'first', 'finished.json'))).toBe(true);
    expect(existsSync(join(dir, 'checkpoints', 'second', 'finished.json'))).toBe(false);
    const resumed = await twoStage(dir, true);
    expect(resumed.first.alreadyFinished).toBe(true);
    expect(resumed.first.losses).toEqual([]);
    expect(resumed.first.step).toBe(6);
    expect(resumed.a).toEqual(straight.a);
    expect(resumed.second.alreadyFinished).toBe(false);
    expect(resumed.second.startStep).toBe(5);
    expect(resumed.second.losses).toEqual(straight.second.losses.slice(5));
    expect(resumed.b).toEqual(straight.b);
    // Everything finished: resuming again runs nothing.
    const again = await twoStage(dir, true);
    expect([again.first.alreadyFinished, again.second.alreadyFinished]).toEqual([true, true]);
    expect(again.b).toEqual(straight.b);
  });

  it('rejects a stage name that cannot be a folder', async () => {
    await expect(train(opts(build(), { runDir: runDir(), stage: '../x' }))).rejects.toThrow(/stage name '\.\.\/x'/);
  });
});
