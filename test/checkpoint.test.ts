/**
 * Gradient checkpointing (src/nn/checkpoint.ts): gradients with respect to parameters and inputs
 * equal those of the plain forward, on wasm and cpu, with BatchNorm in training mode in both of
 * its implementations (fused customGrad and the op chain); running statistics are updated exactly
 * once; nesting, multi-input pieces and customGrad ops inside a piece work; no tensors leak over
 * repeated optimizer steps; misuse (a trainable variable outside the scope) is refused.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint, checkpointSequential, isRecordingGradients } from '../src/nn/checkpoint.js';
import { setLayerFusion } from '../src/nn/fusion.js';
import { setInitSeed } from '../src/nn/init.js';
import { Conv2d } from '../src/nn/layers/conv.js';
import { Sequential } from '../src/nn/layers/sequential.js';
import { MaxPool2d, catChannels, doubleConv } from '../src/nn/layers/unetBlocks.js';
import { Layer, isRecomputing } from '../src/nn/module.js';
import { setupRuntime } from '../src/runtime.js';
import { Adam } from '../src/train/optimizers/adam.js';
import { randn, relErr } from './helpers/numeric.js';

type Backend = 'wasm' | 'cpu';

/** y = x·γ with a hand-written gradient (a customGrad op with a parameter, like the fused BN). */
class CustomScale extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly gamma: tf.Variable;
  constructor(c: number) {
    super();
    this.gamma = this.addParameter('gamma', tf.tensor1d(randn(c, 99)));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [xi, g] = args as tf.Tensor[];
      (args[2] as tf.GradSaveFunc)([xi, g]);
      return {
        value: tf.mul(xi, g),
        gradFunc: (dy: tf.Tensor, [sx, sg]: tf.Tensor[]) => [tf.mul(dy, sg), tf.sum(tf.mul(dy, sx), [0, 1, 2])],
      };
    });
    return op(x, this.gamma) as tf.Tensor4D;
  }
}

/** Counts training forwards outside and inside recomputation. */
class Probe extends Layer<tf.Tensor4D, tf.Tensor4D> {
  plain = 0;
  recomputed = 0;
  forward(x: tf.Tensor4D): tf.Tensor4D {
    if (isRecomputing()) this.recomputed++;
    else this.plain++;
    return tf.relu(x);
  }
}

/** doubleConv(3→4), pool, doubleConv(4→6), custom op, probe, conv 6→2: 11 layers. */
function makeNet(): { net: Sequential<tf.Tensor4D>; probe: Probe } {
  setInitSeed(7);
  const probe = new Probe();
  const layers: Layer<tf.Tensor4D, tf.Tensor4D>[] = [
    ...doubleConv(3, 4).layers, new MaxPool2d(2), ...doubleConv(4, 6).layers, new CustomScale(6), probe, new Conv2d(6, 2, 3, { padding: 1 }),
  ];
  // doubleConv's layers are re-parented into one Sequential (fresh modules, same init stream).
  const net = new Sequential<tf.Tensor4D>(layers);
  net.train();
  return { net, probe };
}

type Run = (net: Sequential<tf.Tensor4D>, x: tf.Tensor4D) => tf.Tensor4D;

const plainRun: Run = (net, x) => net.call(x);

interface StepResult {
  loss: number;
  grads: Float32Array[];
  dx: Float32Array;
  buffers: Float32Array[];
}

/** One gradient computation of sum(net(x) ⊙ r) w.r.t. every parameter and x; BN buffers after. */
function step(run: Run): StepResult {
  const { net } = makeNet();
  const x = tf.variable(tf.tensor4d(randn(2 * 8 * 8 * 3, 1), [2, 8, 8, 3]), true);
  const r = tf.tensor4d(randn(2 * 4 * 4 * 2, 2), [2, 4, 4, 2]);
  const vars = [...net.trainableVariables(), x];
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(run(net, x), r)) as tf.Scalar, vars);
  const out: StepResult = {
    loss: value.dataSync()[0],
    grads: net.trainableVariables().map((v) => grads[v.name].dataSync() as Float32Array),
    dx: grads[x.name].dataSync() as Float32Array,
    buffers: net.bufferVariables().map((b) => b.dataSync() as Float32Array),
  };
  value.dispose();
  tf.dispose(Object.values(grads));
  tf.dispose([x, r]);
  net.dispose();
  return out;
}

function expectSame(got: StepResult, want: StepResult, what: string, tol = 1e-5): void {
  expect(got.loss, what).toBeCloseTo(want.loss, 5);
  expect(got.grads.length).toBe(want.grads.length);
  got.grads.forEach((g, i) => expect(relErr(g, want.grads[i]), `${what}: parameter ${i}`).toBeLessThanOrEqual(tol));
  expect(relErr(got.dx, want.dx), `${what}: input gradient`).toBeLessThanOrEqual(tol);
  // Running statistics: bit-identical (updated once, from the same batch statistics).
  got.buffers.forEach((b, i) => expect([...b], `${what}: buffer ${i}`).toEqual([...want.buffers[i]]));
}

const variants: [string, Run][] = [
  ['the whole net as one piece', (net, x) => checkpointSequential(net, x, 1)],
  ['3 pieces', (net, x) => checkpointSequential(net, x, 3)],
  ['every layer its own piece', (net, x) => checkpointSequential(net, x, 100)],
  ['nested: one piece of 3 checkpointed pieces', (net, x) => checkpoint((t: tf.Tensor4D) => checkpointSequential(net, t, 3), [x], net)],
];

let fusionBefore = true;
beforeAll(async () => {
  await setupRuntime('wasm');
  fusionBefore = setLayerFusion(true);
});
afterAll(async () => {
  setLayerFusion(fusionBefore);
  await tf.setBackend('wasm');
});

describe.each([
  ['wasm', true], ['wasm', false], ['cpu', true], ['cpu', false],
] as [Backend, boolean][])('checkpoint on %s, fused BatchNorm %s', (backend, fused) => {
  it('gives the plain gradients (parameters and input) and updates BN running statistics once', async () => {
    await tf.setBackend(backend);
    setLayerFusion(fused);
    const want = step(plainRun);
    expect(want.buffers.some((b) => b.some((v) => v !== 0 && v !== 1))).toBe(true);
    for (const [name, run] of variants) {
      const got = step(run);
      expectSame(got, want, name);
      // num_batches_tracked of every BN is exactly 1
      const tracked = got.buffers.filter((b) => b.length === 1);
      expect(tracked.map((b) => b[0]), name).toEqual(tracked.map(() => 1));
    }
  });
});

describe('checkpoint mechanics (wasm)', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    setLayerFusion(true);
  });

  it('recomputes each piece once in the backward pass; layers can tell (isRecomputing)', () => {
    const { net, probe } = makeNet();
    const x = tf.tensor4d(randn(2 * 8 * 8 * 3, 1), [2, 8, 8, 3]);
    const { value, grads } = tf.variableGrads(() => tf.sum(checkpointSequential(net, x, 3)) as tf.Scalar, net.trainableVariables());
    expect([probe.plain, probe.recomputed]).toEqual([1, 1]);
    expect(isRecomputing()).toBe(false);
    tf.dispose([value, x, ...Object.values(grads)]);
    net.dispose();
  });

  it('runs fn plainly when no gradient is recorded (inference): same output, no extra tensors', () => {
    const { net } = makeNet();
    const x = tf.tensor4d(randn(2 * 8 * 8 * 3, 1), [2, 8, 8, 3]);
    net.eval();
    expect(isRecordingGradients()).toBe(false);
    const n0 = tf.memory().numTensors;
    const a = checkpointSequential(net, x, 3);
    expect(tf.memory().numTensors).toBe(n0 + 1);
    const b = net.call(x);
    expect([...a.dataSync()]).toEqual([...b.dataSync()]);
    tf.dispose([a, b, x]);
    net.dispose();
  });

  it('handles several inputs (U-Net skip concatenation inside the piece)', () => {
    setInitSeed(3);
    const block = doubleConv(6, 4);
    block.train();
    const u = tf.variable(tf.tensor4d(randn(2 * 4 * 4 * 3, 5), [2, 4, 4, 3]));
    const s = tf.variable(tf.tensor4d(randn(2 * 4 * 4 * 3, 6), [2, 4, 4, 3]));
    const vars = [...block.trainableVariables(), u, s];
    const grads = (ck: boolean): Float32Array[] => {
      const { value, grads: g } = tf.variableGrads(() => tf.sum(tf.square(ck
        ? checkpoint((a: tf.Tensor4D, b: tf.Tensor4D) => block.call(catChannels([a, b])), [u, s], block)
        : block.call(catChannels([u, s])))) as tf.Scalar, vars);
      const out = vars.map((v) => g[v.name].dataSync() as Float32Array);
      tf.dispose([value, ...Object.values(g)]);
      return out;
    };
    const want = grads(false);
    grads(true).forEach((g, i) => expect(relErr(g, want[i])).toBeLessThanOrEqual(1e-5));
    tf.dispose([u, s]);
    block.dispose();
  });

  it('a parameter of the scope that is also an input gets the sum of both uses, once each', () => {
    setInitSeed(5);
    const conv = new Conv2d(3, 3, 3, { padding: 1 });
    const x = tf.tensor4d(randn(2 * 6 * 6 * 3, 4), [2, 6, 6, 3]);
    // uses the weight as its argument and, through conv.call, from the module
    const f = (w: tf.Tensor): tf.Tensor4D => conv.call(tf.conv2d(x, w as tf.Tensor4D, 1, 'same'));
    const g = (ck: boolean): Float32Array => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(ck ? checkpoint(f, [conv.weight], conv) : f(conv.weight))) as tf.Scalar, [conv.weight]);
      const out = grads[conv.weight.name].dataSync() as Float32Array;
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    };
    expect(relErr(g(true), g(false))).toBeLessThanOrEqual(1e-6);
    x.dispose();
    conv.dispose();
  });

  it('leaks no tensors and no bytes over repeated Adam steps', () => {
    const { net } = makeNet();
    const x = tf.tensor4d(randn(2 * 8 * 8 * 3, 1), [2, 8, 8, 3]);
    const opt = new Adam(net.trainableVariables(), { lr: 1e-3 });
    const loss = (): tf.Scalar => tf.tidy(() => tf.mean(tf.square(checkpointSequential(net, x, 3))) as tf.Scalar);
    opt.minimize(loss); // creates the Adam slots
    const m0 = tf.memory();
    for (let i = 0; i < 3; i++) opt.minimize(loss);
    const m1 = tf.memory();
    expect(m1.numTensors).toBe(m0.numTensors);
    expect(m1.numBytes).toBe(m0.numBytes);
    opt.dispose();
    x.dispose();
    net.dispose();
  });

  it('does not dispose a dy handed in by the caller of tf.grads', () => {
    const { net } = makeNet();
    const x = tf.tensor4d(randn(2 * 8 * 8 * 3, 1), [2, 8, 8, 3]);
    const dy = tf.onesLike(net.call(x));
    const [gx] = tf.grads((t: tf.Tensor) => checkpointSequential(net, t as tf.Tensor4D, 1))([x], dy);
    expect(dy.isDisposed).toBe(false);
    expect(gx.shape).toEqual(x.shape);
    tf.dispose([gx, dy, x]);
    net.dispose();
  });

  it('refuses a trainable variable that is not a parameter of the scope', () => {
    const { net } = makeNet();
    const outside = new Conv2d(2, 2, 1);
    const x = tf.tensor4d(randn(2 * 8 * 8 * 3, 1), [2, 8, 8, 3]);
    const n0 = tf.memory().numTensors;
    // Inside a tidy, as a caller would: the forward's loss value, which variableGrads would have
    // returned, belongs to the caller's scope.
    expect(() => tf.tidy(() => tf.variableGrads(
      () => tf.sum(checkpoint((t: tf.Tensor4D) => outside.call(net.call(t)), [x], net)) as tf.Scalar,
      [...net.trainableVariables(), ...outside.trainableVariables()],
    ))).toThrow(/not a parameter of the modules in its scope/);
    // The aborted backward pass leaves no saved tensors behind (tfjs frees them only when a
    // backward pass completes; checkpoint frees both tapes on its error) ...
    expect(tf.memory().numTensors).toBe(n0);
    // ... and the engine is usable afterwards.
    const { value, grads } = tf.variableGrads(() => tf.sum(checkpointSequential(net, x, 2)) as tf.Scalar, net.trainableVariables());
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(n0);
    x.dispose();
    outside.dispose();
    net.dispose();
  });
});
