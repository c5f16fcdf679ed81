import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupRuntime } from '../src/runtime.js';
import { TrainingError } from '../src/errors.js';
import { setInitSeed } from '../src/nn/init.js';
import { Conv2d } from '../src/nn/layers/conv.js';
import { Linear } from '../src/nn/layers/linear.js';
import { BatchNorm2d } from '../src/nn/layers/norm.js';
import { Layer } from '../src/nn/module.js';
import { Rng } from '../src/util/rng.js';
import { Adam, AdamW, SGD } from '../src/train/optimizers/index.js';
import { multiStep } from '../src/train/schedules.js';
import { CheckpointDir, readCheckpoint, readCheckpointHeader, writeCheckpoint } from '../src/train/checkpoint.js';
import { atomicWriteFile, atomicWriteWith } from '../src/train/atomicWrite.js';
import { Progress, formatDuration } from '../src/train/progress.js';
import { CostMeterHooks, StepFn, TrainOptions, train, wasmHeapExhausted } from '../src/train/trainer.js';
import type { CostMeter } from '../src/energy/meter.js';

// Type-level check: the project's CostMeter plugs into the trainer's meter hook.
export const meterFits: (m: CostMeter) => CostMeterHooks = (m) => m;

// Conv filter gradients are not on the wasm backend yet (src/nn/kernels pending), so these tiny
// models train on 'cpu', which is deterministic: resume must reproduce losses exactly.

class Tiny extends Layer<tf.Tensor4D, tf.Tensor> {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  readonly fc: Linear;
  constructor() {
    super();
    this.conv = this.addModule('conv', new Conv2d(2, 3, 3, { padding: 1 }));
    this.bn = this.addModule('bn', new BatchNorm2d(3));
    this.fc = this.addModule('fc', new Linear(3, 1));
  }
  forward(x: tf.Tensor4D): tf.Tensor {
    return tf.tidy(() => this.fc.call(tf.mean(tf.relu(this.bn.call(this.conv.call(x))), [1, 2])));
  }
}

class Head extends Layer<tf.Tensor, tf.Tensor> {
  readonly lin: Linear;
  constructor(out = 1) {
    super();
    this.lin = this.addModule('lin', new Linear(1, out));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return this.lin.call(x);
  }
}

function build(seed = 7) {
  setInitSeed(seed);
  const net = new Tiny();
  const head = new Head();
  return { net, head };
}

/** A batch drawn from the rng (data + "augmentation"), regression target from the data. */
function stepFnFor(net: Tiny, head: Head, opts: { throwAt?: number; nanAt?: number } = {}): StepFn {
  return (i, rng) => {
    if (i === opts.throwAt) throw new Error(`simulated kill at step ${i}`);
    const vals = Array.from({ length: 4 * 5 * 5 * 2 }, () => rng.normal());
    const flip = rng.bool();
    const x = tf.tensor4d(vals, [4, 5, 5, 2]);
    const xa = flip ? tf.reverse(x, 2) : x;
    const y = tf.mean(x, [1, 2, 3]).reshape([4, 1]);
    const noise = tf.randomNormal([4, 1], 0, 0.01, 'float32', rng.tfSeed());
    const pred = head.call(net.call(xa as tf.Tensor4D));
    const loss = tf.mean(tf.square(tf.sub(pred, tf.add(y, noise)))) as tf.Scalar;
    return i === opts.nanAt ? (tf.mul(loss, NaN) as tf.Scalar) : loss;
  };
}

const quiet = { progress: 'none' as const, log: () => {} };
let root = '';
const dirs: string[] = [];
function runDir(): string {
  const d = mkdtempSync(join(root, 'run-'));
  dirs.push(d);
  return d;
}

function baseOpts(m: ReturnType<typeof build>, extra: Partial<TrainOptions> = {}): TrainOptions {
  const optA = new Adam(m.net.trainableVariables(), { lr: 0.05, weightDecay: 1e-3 });
  const optB = new AdamW(m.head.trainableVariables(), { lr: 0.02 });
  return {
    modules: { net: m.net, head: m.head },
    optimizers: [optA, optB],
    schedule: [multiStep({ baseLr: 0.05, milestones: [1], gamma: 0.5, stepsPerUnit: 2 }), undefined],
    epochs: 3,
    stepsPerEpoch: 2,
    seed: 'resume-test',
    stepFn: stepFnFor(m.net, m.head),
    config: { method: 'tiny', lr: 0.05 },
    ...quiet,
    ...extra,
  };
}

function weights(m: ReturnType<typeof build>): number[] {
  return [...m.net.namedEntries(), ...m.head.namedEntries()].flatMap(([, e]) => Array.from(e.variable.dataSync()));
}

beforeAll(async () => {
  // wasm with the forward-convolution gradients of src/nn/kernels: the backend users train on.
  await setupRuntime('wasm');
  root = mkdtempSync(join(tmpdir(), 'adbench-train-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('trainer: resume is bit-exact', () => {
  it('6 steps straight == 3 steps + checkpoint + fresh instances resume + 3 steps (every loss, final weights)', async () => {
    const a = build();
    const straight = await train(baseOpts(a, { runDir: runDir() }));
    expect(straight.losses).toHaveLength(6);

    const dir = runDir();
    const b1 = build();
    const first = await train(baseOpts(b1, { runDir: dir, epochs: undefined, stepsPerEpoch: 2, checkpointEvery: 3, steps: 3 }));
    expect(first.losses).toEqual(straight.losses.slice(0, 3));
    expect(first.checkpoint).toMatch(/ckpt-000000003\.adbck$/);
    // "New process": new module instances (different init seed, so weights must come from the
    // checkpoint), new optimizers, rng re-created from the seed and then restored.
    const b2 = build(99);
    const second = await train(baseOpts(b2, { runDir: dir, resume: true }));
    expect(second.startStep).toBe(3);
    expect(second.resumedFrom).toBe(first.checkpoint);
    expect([...first.losses, ...second.losses]).toEqual(straight.losses);
    expect(weights(b2)).toEqual(weights(a));
    // BatchNorm buffers travel too
    expect(Array.from(b2.net.bn.runningVar.dataSync())).toEqual(Array.from(a.net.bn.runningVar.dataSync()));
    expect(b2.net.bn.numBatchesTracked.dataSync()[0]).toBe(6);
  });

  it('a run killed at step 5 resumes from its last checkpoint (step 4) and matches the straight run', async () => {
    const a = build();
    const straight = await train(baseOpts(a));
    const dir = runDir();
    const k = build();
    await expect(train(baseOpts(k, { runDir: dir, stepFn: stepFnFor(k.net, k.head, { throwAt: 4 }) }))).rejects.toThrow(/simulated kill at step 4/);
    expect(new CheckpointDir(join(dir, 'checkpoints')).latest()).toMatch(/ckpt-000000004\.adbck$/);
    const r = build(5);
    const res = await train(baseOpts(r, { runDir: dir, resume: true }));
    expect(res.startStep).toBe(4);
    expect(res.losses).toEqual(straight.losses.slice(4));
    expect(weights(r)).toEqual(weights(a));
  });

  it('resume: true with no checkpoint starts fresh; a fresh run over checkpoints refuses unless overwrite', async () => {
    const dir = runDir();
    const m = build();
    const res = await train(baseOpts(m, { runDir: dir, resume: true, steps: 2, epochs: undefined }));
    expect(res.startStep).toBe(0);
    await expect(train(baseOpts(build(), { runDir: dir, steps: 2, epochs: undefined }))).rejects.toThrow(/already has checkpoints.*--resume/);
    const again = await train(baseOpts(build(), { runDir: dir, steps: 2, epochs: undefined, overwrite: true }));
    expect(again.losses).toEqual(res.losses);
  });

  it('resume refuses another config, another optimizer set, another model', async () => {
    const dir = runDir();
    await train(baseOpts(build(), { runDir: dir, steps: 2, epochs: undefined }));
    await expect(train(baseOpts(build(), { runDir: dir, steps: 4, epochs: undefined, resume: true, config: { method: 'tiny', lr: 0.1 } }))).rejects.toThrow(
      /different configuration/,
    );
    const m = build();
    await expect(
      train({ ...baseOpts(m, { runDir: dir, steps: 4, epochs: undefined, resume: true }), optimizers: [new SGD(m.net.trainableVariables(), { lr: 0.1 }), new AdamW(m.head.trainableVariables(), { lr: 0.1 })] }),
    ).rejects.toThrow(/optimizers \[adam, adamw\]/);
    const other = build();
    const wide = new Head(2);
    const ckpt = new CheckpointDir(join(dir, 'checkpoints')).latest() as string;
    await expect(
      train({
        ...baseOpts(other, { runDir: dir, steps: 4, epochs: undefined, resume: true }),
        modules: { net: other.net, head: wide },
        optimizers: [new Adam(other.net.trainableVariables(), { lr: 0.05 }), new AdamW(wide.trainableVariables(), { lr: 0.02 })],
      }),
    ).rejects.toThrow(`checkpoint ${ckpt} does not match module 'head' (Head): shape mismatch lin.weight: checkpoint [1,1] vs model [1,2]`);
  });
});

describe('trainer on wasm, dense layers', () => {
  it('resume is bit-exact on wasm too', async () => {
    {
      const mk = () => {
        setInitSeed(3);
        return new Head(3);
      };
      const fn = (h: Head): StepFn => (_i, rng) => {
        const x = tf.tensor2d(Array.from({ length: 8 }, () => rng.normal()), [8, 1]);
        return tf.mean(tf.square(tf.sub(h.call(x), tf.concat([x, tf.mul(x, 2), tf.neg(x)], 1)))) as tf.Scalar;
      };
      const opts = (h: Head, extra: Partial<TrainOptions>): TrainOptions => ({
        modules: h, optimizers: new SGD(h.trainableVariables(), { lr: 0.1, momentum: 0.9, nesterov: true }),
        steps: 6, seed: 1, stepFn: fn(h), ...quiet, ...extra,
      });
      const a = mk();
      const straight = await train(opts(a, {}));
      const dir = runDir();
      const b = mk();
      const first = await train(opts(b, { runDir: dir, steps: 2 }));
      const c = new Head(3);
      const second = await train(opts(c, { runDir: dir, resume: true }));
      expect([...first.losses, ...second.losses]).toEqual(straight.losses);
      expect(Array.from(c.lin.weight.dataSync())).toEqual(Array.from(a.lin.weight.dataSync()));
    }
  });
});

describe('trainer: guards, hooks, memory', () => {
  it('NaN loss stops with TrainingError naming the step and the kept checkpoint; weights and checkpoint untouched', async () => {
    const dir = runDir();
    const m = build();
    const opts = baseOpts(m, { runDir: dir, checkpointEvery: 2, stepFn: stepFnFor(m.net, m.head, { nanAt: 3 }) });
    let err: unknown;
    try {
      await train(opts);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrainingError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/non-finite loss NaN at step 4\/6 \(epoch 2, batch 2\)/);
    const ck = join(dir, 'checkpoints', 'ckpt-000000002.adbck');
    expect(msg).toContain(`last good checkpoint ${ck} is kept`);
    expect(new CheckpointDir(join(dir, 'checkpoints')).list().map((c) => c.step)).toEqual([2]);
    expect(weights(m).every(Number.isFinite)).toBe(true);
    // resuming with a healthy stepFn continues from step 2
    const r = build();
    const res = await train(baseOpts(r, { runDir: dir, resume: true }));
    expect(res.startStep).toBe(2);
  });

  it('tensor count is flat across steps (and nothing is left after training)', async () => {
    const m = build();
    const counts: number[] = [];
    const before = tf.memory().numTensors;
    const opts = baseOpts(m, { onStep: () => counts.push(tf.memory().numTensors), clip: 0.5 });
    await train(opts);
    // optimizer slots appear at step 1; afterwards constant
    expect(new Set(counts.slice(1)).size).toBe(1);
    expect(counts[0]).toBe(counts[1]);
    for (const o of opts.optimizers as Adam[]) o.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('meter hooks bracket training and validation; early stop saves and stops; best checkpoint via ctx', async () => {
    const dir = runDir();
    const m = build();
    const calls: string[] = [];
    const meter = { start: (p: string) => void calls.push(`start:${p}`), stop: async (p: string) => void calls.push(`stop:${p}`) };
    let best = '';
    const res = await train(
      baseOpts(m, {
        runDir: dir, meter, epochs: 3, checkpointEvery: 0,
        onValidate: (epoch, ctx) => {
          calls.push(`validate:${epoch}@${ctx.step}`);
          if (epoch === 0) best = ctx.saveCheckpoint('best');
          return epoch === 1 ? { stop: true } : undefined;
        },
      }),
    );
    expect(calls).toEqual(['start:train', 'stop:train', 'start:validate', 'validate:0@2', 'stop:validate', 'start:train', 'stop:train', 'start:validate', 'validate:1@4', 'stop:validate']);
    expect(res.stoppedEarly).toBe(true);
    expect(res.step).toBe(4);
    expect(res.checkpoint).toMatch(/ckpt-000000004\.adbck$/);
    expect(readCheckpointHeader(best).step).toBe(2);
    expect(existsSync(join(dir, 'checkpoints', 'best.adbck'))).toBe(true);
  });

  it('meter is stopped even when a step throws', async () => {
    const m = build();
    const calls: string[] = [];
    const meter = { start: (p: string) => void calls.push(`start:${p}`), stop: (p: string) => void calls.push(`stop:${p}`) };
    await expect(train(baseOpts(m, { meter, stepFn: stepFnFor(m.net, m.head, { throwAt: 1 }) }))).rejects.toThrow();
    expect(calls).toEqual(['start:train', 'stop:train']);
  });
});

describe('checkpoint files', () => {
  it('keeps the last N, pointer names the newest, header carries step/rng/optimizers', async () => {
    const dir = runDir();
    await train(baseOpts(build(), { runDir: dir, checkpointEvery: 1, keepLast: 2 }));
    const ck = join(dir, 'checkpoints');
    expect(readdirSync(ck).sort()).toEqual(['ckpt-000000005.adbck', 'ckpt-000000006.adbck', 'finished.json', 'latest.json']);
    expect(JSON.parse(readFileSync(join(ck, 'latest.json'), 'utf8'))).toEqual({ file: 'ckpt-000000006.adbck', step: 6 });
    const h = readCheckpointHeader(join(ck, 'ckpt-000000006.adbck'));
    expect(h.step).toBe(6);
    expect(h.epoch).toBe(3);
    expect(h.optimizers.map((o) => o.kind)).toEqual(['adam', 'adamw']);
    expect(h.optimizers[0].lr).toBe(0.025);
    expect(h.rng?.seed).toBe('resume-test');
    expect(h.tensors.map((t) => t.name)).toContain('module.net.bn.running_mean');
    expect(h.tensors.map((t) => t.name)).toContain('optim.1.0.exp_avg_sq');
  });

  it('corrupt, truncated or foreign files raise TrainingError naming the file', () => {
    const p = join(runDir(), 'x.adbck');
    const t = new Map<string, tf.Tensor>([['a', tf.tensor1d([1, 2, 3])], ['b', tf.tensor([[4]], [1, 1], 'int32')]]);
    const meta = { step: 1, epoch: 0, stepsPerEpoch: 1, totalSteps: 1, rng: null, optimizers: [], configHash: null };
    writeCheckpoint(p, t, meta);
    const back = readCheckpoint(p);
    expect(Array.from(back.tensors.get('a')?.dataSync() ?? [])).toEqual([1, 2, 3]);
    expect(back.tensors.get('b')?.dtype).toBe('int32');
    const bytes = readFileSync(p);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 2] ^= 0x40;
    writeFileSync(p, flipped);
    expect(() => readCheckpoint(p)).toThrow(new RegExp(`checkpoint ${p}.*CRC mismatch`));
    writeFileSync(p, bytes.subarray(0, bytes.length - 3));
    expect(() => readCheckpoint(p)).toThrow(/truncated/);
    writeFileSync(p, 'not a checkpoint at all');
    expect(() => readCheckpoint(p)).toThrow(TrainingError);
    expect(() => readCheckpoint(join(root, 'missing.adbck'))).toThrow(/missing\.adbck cannot be opened/);
  });

  it('atomic writes leave the old file intact on failure and no temp files behind', () => {
    const dir = runDir();
    const p = join(dir, 'f.txt');
    atomicWriteFile(p, 'old');
    expect(() =>
      atomicWriteWith(p, () => {
        throw new Error('disk full');
      }),
    ).toThrow('disk full');
    expect(readFileSync(p, 'utf8')).toBe('old');
    atomicWriteFile(p, 'new');
    expect(readFileSync(p, 'utf8')).toBe('new');
    expect(readdirSync(dir)).toEqual(['f.txt']);
    expect(statSync(p).size).toBe(3);
  });
});

describe('progress', () => {
  it('lines mode prints periodic plain lines with ETA; bar mode redraws on a TTY', () => {
    let now = 0;
    const lines: string[] = [];
    const p = new Progress({ total: 10, mode: 'lines', everySteps: 5, log: (l) => lines.push(l), now: () => now });
    for (let i = 1; i <= 10; i++) {
      now += 500;
      p.update(i, { loss: 0.25 });
    }
    expect(lines).toEqual([
      '[train] step 5/10 (50.0%) loss 0.2500 | 2.00 it/s | 3s elapsed, ETA 3s',
      '[train] step 10/10 (100.0%) loss 0.2500 | 2.00 it/s | 5s elapsed, ETA 0s',
    ]);
    let out = '';
    const tty = { isTTY: true, columns: 200, write: (s: string) => ((out += s), true) };
    const b = new Progress({ total: 4, stream: tty, log: (l) => (out += `${l}\n`), now: () => (now += 1000) });
    b.update(2, { loss: 1 });
    b.message('hello');
    b.update(4, { loss: 0.5 });
    b.end();
    expect(out).toContain('[############............] 2/4 50.0%');
    expect(out).toContain('hello\n');
    expect(out).toMatch(/\[########################\] 4\/4 100\.0% loss 0\.5000 .*ETA 0s\n$/);
    expect(formatDuration(3725)).toBe('1h02m05s');
    expect(formatDuration(75)).toBe('1m15s');
  });
});

describe('Rng state round trip used by resume', () => {
  it('fromState continues the same stream', () => {
    const r = new Rng(3);
    r.next();
    const s = r.state();
    const a = [r.next(), r.normal(), r.int(0, 100)];
    const q = Rng.fromState(3, s);
    expect([q.next(), q.normal(), q.int(0, 100)]).toEqual(a);
  });
});

describe('trainer: wasm heap exhaustion', () => {
  it('becomes a TrainingError that says what happened and what to change', async () => {
    const m = build();
    const oom: StepFn = () => {
      throw new WebAssembly.RuntimeError('memory access out of bounds');
    };
    await expect(train(baseOpts(m, { steps: 2, epochs: undefined, stepFn: oom }))).rejects.toThrow(/training step 1: the wasm backend ran out of memory.*batchSize/);
    expect(wasmHeapExhausted(new Error('memory access out of bounds'), 1, null, 'wasm')).toBeNull();
    const aborted = new WebAssembly.RuntimeError('Aborted(). Build with -sASSERTIONS for more info.');
    expect(wasmHeapExhausted(aborted, 3, '/r/ck', 'cpu')).toBeNull();
    const err = wasmHeapExhausted(aborted, 3, '/r/ck', 'wasm');
    expect(err).toBeInstanceOf(TrainingError);
    expect(err?.message).toMatch(/step 3: .*"Aborted\(\)".*--resume continues from \/r\/ck\./);
  });
});
