import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam, AdamW, Optimizer, SGD, StableAdamW } from '../src/train/optimizers/index.js';
import { constant, cosineAnnealing, draemSchedule, multiStep, warmCosine } from '../src/train/schedules.js';
import { clipByGlobalNorm, globalNorm } from '../src/train/clipGradients.js';
import { TrainingError } from '../src/errors.js';

// Reference trajectories from torch.optim (test/fixtures/make_loss_fixtures.py): fixed gradient
// sequences fed to each optimizer, lr changed between steps, one parameter without gradient at step 2.
interface OptFx {
  p0: number[][];
  shapes: number[][];
  grads: number[][][];
  lrs: number[];
  skip: [number, number];
  cases: { name: string; opts: Record<string, number | boolean | number[]>; trajectory: number[][][] }[];
}
const fx = (name: string): unknown => JSON.parse(readFileSync(join(__dirname, 'fixtures', 'losses', name), 'utf8'));

function make(name: string, params: tf.Variable[], o: Record<string, number | boolean | number[]>): Optimizer {
  const lr = o.lr as number;
  const betas = o.betas as [number, number] | undefined;
  if (name.startsWith('sgd')) {
    return new SGD(params, { lr, momentum: o.momentum as number | undefined, nesterov: o.nesterov as boolean | undefined, weightDecay: o.weightDecay as number | undefined });
  }
  const common = { lr, betas, eps: o.eps as number | undefined, weightDecay: o.weightDecay as number | undefined, amsgrad: o.amsgrad as boolean | undefined };
  if (name.startsWith('stable')) return new StableAdamW(params, { ...common, clipThreshold: o.clipThreshold as number | undefined });
  if (name.startsWith('adamw')) return new AdamW(params, common);
  return new Adam(params, common);
}

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

describe('optimizers follow torch.optim step for step', () => {
  const f = fx('optimizers.json') as OptFx;
  for (const c of f.cases) {
    it(`${c.name}`, () => {
      const params = f.p0.map((p, i) => tf.variable(tf.tensor(p, f.shapes[i])));
      const opt = make(c.name, params, c.opts);
      const before = tf.memory().numTensors;
      let afterFirst = -1;
      f.grads.forEach((gs, t) => {
        opt.lr = f.lrs[t];
        const grads: Record<string, tf.Tensor | null> = {};
        params.forEach((p, i) => {
          grads[p.name] = t === f.skip[0] && i === f.skip[1] ? null : tf.tensor(gs[i], f.shapes[i]);
        });
        opt.applyGradients(grads);
        tf.dispose(Object.values(grads).filter((g): g is tf.Tensor => g !== null));
        params.forEach((p, i) => {
          const got = p.dataSync();
          const want = c.trajectory[t][i];
          for (let k = 0; k < want.length; k++) expect(Math.abs(got[k] - want[k])).toBeLessThan(2e-6 * Math.max(1, Math.abs(want[k])));
        });
        // Slots (0-3 per parameter) are created on the first update only; later updates, the one
        // with a missing gradient included, leave nothing behind (one leaked tensor fails).
        if (t === 0) {
          afterFirst = tf.memory().numTensors;
          expect((afterFirst - before) % params.length).toBe(0);
          expect(afterFirst - before).toBeLessThanOrEqual(3 * params.length);
        } else {
          expect(tf.memory().numTensors, `tensors after step ${t}`).toBe(afterFirst);
        }
      });
      expect(opt.steps).toBe(f.grads.length);
      opt.dispose();
      tf.dispose(params);
    });
  }

  it('state()/loadState() round trip continues identically; mismatches name the source', () => {
    const mk = (): tf.Variable[] => [tf.variable(tf.tensor2d([[1, -2], [3, 0.5]])), tf.variable(tf.tensor1d([0.1, 0.2, -0.3]))];
    const g = (ps: tf.Variable[], t: number) => Object.fromEntries(ps.map((p, i) => [p.name, tf.fill(p.shape, 0.1 * (t + 1) * (i + 1))]));
    const a = mk();
    const oa = new Adam(a, { lr: 0.01, amsgrad: true, weightDecay: 0.1 });
    for (let t = 0; t < 3; t++) oa.applyGradients(g(a, t));
    const st = oa.state();
    expect([...st.keys()].sort()).toEqual(['0.exp_avg', '0.exp_avg_sq', '0.max_exp_avg_sq', '0.step', '1.exp_avg', '1.exp_avg_sq', '1.max_exp_avg_sq', '1.step', 'step']);
    const b = mk();
    b.forEach((v, i) => v.assign(a[i] as tf.Tensor));
    const ob = new Adam(b, { lr: 0.01, amsgrad: true, weightDecay: 0.1 });
    ob.loadState(st);
    for (let t = 3; t < 5; t++) {
      oa.applyGradients(g(a, t));
      ob.applyGradients(g(b, t));
    }
    a.forEach((v, i) => expect(Array.from(b[i].dataSync())).toEqual(Array.from(v.dataSync())));
    expect(ob.steps).toBe(5);
    const wrong = new Adam([tf.variable(tf.zeros([3]))], { lr: 0.01, amsgrad: true });
    expect(() => wrong.loadState(st, 'ckpt-x.adbck')).toThrow(TrainingError);
    expect(() => wrong.loadState(st, 'ckpt-x.adbck')).toThrow(/ckpt-x\.adbck/);
    const sgd = new SGD(a, { lr: 0.1, momentum: 0.9 });
    expect(() => sgd.loadState(st, 'file.adbck')).toThrow(/unexpected key/);
  });

  it('rejects duplicate parameters and invalid settings', () => {
    const v = tf.variable(tf.zeros([2]));
    expect(() => new Adam([v, v], { lr: 1e-3 })).toThrow(/listed twice/);
    expect(() => new SGD([v], { lr: 0.1, nesterov: true })).toThrow(TrainingError);
    expect(() => new Adam([v], { lr: 1e-3, betas: [1, 0.9] })).toThrow(TrainingError);
  });

  it('StableAdamW first step (dinomaly.md §7.4): θ1 = θ0(1 − lr·wd) − lr·sign(g)', () => {
    const p = tf.variable(tf.tensor1d([0.5, -1, 2, 0]));
    const o = new StableAdamW([p], { lr: 2e-3, weightDecay: 1e-4, amsgrad: true, eps: 1e-10 });
    const g = tf.tensor1d([0.3, -0.2, 5, 1e-3]);
    o.applyGradients({ [p.name]: g });
    const want = [0.5, -1, 2, 0].map((t, i) => t * (1 - 2e-7) - 2e-3 * Math.sign([0.3, -0.2, 5, 1e-3][i]));
    Array.from(p.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
  });

  it('minimize() computes, clips and applies without leaking', () => {
    const w = tf.variable(tf.tensor1d([3, -4]));
    const o = new SGD([w], { lr: 0.5 });
    const before = tf.memory().numTensors;
    // loss = ½‖w‖², gradient w (norm 5) clipped to norm 1 → w − 0.5·w/5
    const l = o.minimize(() => tf.mul(0.5, tf.sum(tf.square(w))) as tf.Scalar, { clipNorm: 1 });
    expect(l).toBeCloseTo(12.5, 5);
    const wv = w.dataSync();
    expect(wv[0]).toBeCloseTo(2.7, 5);
    expect(wv[1]).toBeCloseTo(-3.6, 5);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('global-norm clipping (torch clip_grad_norm_)', () => {
  it('scales by maxNorm/(norm + 1e-6) only when above, returns the pre-clip norm', () => {
    const grads = { a: tf.tensor1d([3, 0]), b: tf.tensor2d([[0, 4]]), c: null };
    expect(globalNorm(grads).dataSync()[0]).toBeCloseTo(5, 6);
    const { grads: out, norm } = clipByGlobalNorm(grads, 1);
    expect(norm.dataSync()[0]).toBeCloseTo(5, 6);
    expect(out.a.dataSync()[0]).toBeCloseTo(3 / (5 + 1e-6), 6);
    expect(out.b.dataSync()[1]).toBeCloseTo(4 / (5 + 1e-6), 6);
    expect(out.c).toBeUndefined();
    const { grads: same } = clipByGlobalNorm(grads, 10);
    expect(Array.from(same.a.dataSync())).toEqual([3, 0]);
  });
});

describe('LR schedules', () => {
  const s = fx('schedules.json') as Record<string, number[]>;
  const close = (got: number[], want: number[]) => got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 12));

  it('multiStep = torch MultiStepLR (float milestones only fire when hit exactly; repeats multiply)', () => {
    close(Array.from({ length: 12 }, (_, e) => multiStep({ baseLr: 1, milestones: [8, 9], gamma: 0.2 })(e)), s.multistep_10);
    close(Array.from({ length: 8 }, (_, e) => multiStep({ baseLr: 1, milestones: [7 * 0.8, 7 * 0.9], gamma: 0.2 })(e)), s.multistep_7_float);
    close(Array.from({ length: 6 }, (_, e) => multiStep({ baseLr: 1, milestones: [2, 2, 4], gamma: 0.5 })(e)), s.multistep_repeat);
  });

  it('DRAEM: 700 epochs → ×0.2 at epochs 560 and 630, counted in steps per epoch (draem.md §3)', () => {
    const sch = draemSchedule({ epochs: 700, stepsPerEpoch: 10 });
    expect(sch(0)).toBe(1e-4);
    expect(sch(5599)).toBe(1e-4);
    expect(sch(5600)).toBeCloseTo(2e-5, 15);
    expect(sch(6299)).toBeCloseTo(2e-5, 15);
    expect(sch(6300)).toBeCloseTo(4e-6, 15);
    const paper = draemSchedule({ epochs: 700, stepsPerEpoch: 1, paper: true });
    expect([paper(399), paper(400), paper(600)].map((v) => +v.toPrecision(6))).toEqual([1e-4, 1e-5, 1e-6]);
  });

  it('cosineAnnealing = torch CosineAnnealingLR closed form (periodic after T_max)', () => {
    close(Array.from({ length: 25 }, (_, k) => cosineAnnealing({ baseLr: 1, tMax: 10, etaMin: 0.1 })(k)), s.cosine_tmax10);
  });

  it('warmCosine reproduces the Dinomaly check values (dinomaly.md §3)', () => {
    const sch = warmCosine({ baseLr: 2e-3, finalLr: 2e-4, totalSteps: 10000, warmupSteps: 100 });
    expect(sch(0)).toBe(0);
    expect(sch(99)).toBeCloseTo(2e-3, 15);
    expect(sch(50)).toBeCloseTo(1.0101e-3, 7);
    expect(sch(5000)).toBeCloseTo(1.1143e-3, 7);
    expect(sch(9999)).toBeCloseTo(2.0e-4, 9);
    expect(sch(20000)).toBe(2e-4);
    expect(constant(0.3)(12345)).toBe(0.3);
  });
});
