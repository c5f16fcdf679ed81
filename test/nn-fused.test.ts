/**
 * Fused layers (src/nn/fusion.ts): BatchNorm2d's customGrad training op, Conv2d's tfjs 'same'
 * padding and the eval-mode conv+BN(+ReLU) folding of ResNets give the results of the plain op
 * chains (kept here as reference implementations) on wasm and cpu, update the running statistics
 * bit for bit as before, and leak no tensors.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { layerFusionEnabled, setLayerFusion, withoutLayerFusion } from '../src/nn/fusion.js';
import { BatchNorm2d } from '../src/nn/layers/norm.js';
import { Conv2d } from '../src/nn/layers/conv.js';
import { ReLU, Sequential } from '../src/nn/layers/sequential.js';
import { resnet18 } from '../src/models/backbones/resnet.js';
import { MobileNetV1 } from '../src/models/backbones/mobilenet.js';
import { TinyDarknet } from '../src/models/backbones/darknet.js';
import type { Module } from '../src/nn/module.js';
import { countMacs } from '../src/energy/macs.js';
import { setInitSeed } from '../src/nn/init.js';
import { randn, relErr } from './helpers/numeric.js';

const BACKENDS = ['wasm', 'cpu'] as const;
const TOL = 1e-5;

beforeAll(async () => {
  await initBackend('wasm');
  registerWasmTrainingKernels();
});

/** ‖a − b‖ / ‖b‖. */
const data = (t: tf.Tensor): Float32Array => t.dataSync() as Float32Array;

/** The op-chain BatchNorm2d training forward as it was before fusion (tfjs autodiff through it). */
function referenceBatchNorm(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor4D {
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  const xn = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps)));
  return tf.add(tf.mul(xn, gamma), beta) as tf.Tensor4D;
}

/** Reference running statistics: PyTorch's update with the unbiased batch variance. */
function referenceRunningStats(x: tf.Tensor4D, rm: tf.Tensor, rv: tf.Tensor, momentum: number): { rm: Float32Array; rv: Float32Array } {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    const n = x.size / x.shape[3];
    const m = momentum;
    return {
      rm: data(tf.add(tf.mul(rm, 1 - m), tf.mul(mean, m))),
      rv: data(tf.add(tf.mul(rv, 1 - m), tf.mul(variance, m * (n / (n - 1))))),
    };
  });
}

describe('BatchNorm2d training: fused customGrad op vs the op chain', () => {
  it.each(BACKENDS)('%s: forward, gradients (x, γ, β) and running statistics', async (backend) => {
    await tf.setBackend(backend);
    expect(layerFusionEnabled()).toBe(true);
    const c = 6;
    const shape: [number, number, number, number] = [3, 5, 7, c];
    const size = shape.reduce((a, b) => a * b, 1);
    const bn = new BatchNorm2d(c, 1e-5, 0.1);
    tf.tidy(() => {
      bn.weight.assign(tf.tensor1d(randn(c, 1, 0.5, 1)));
      bn.bias.assign(tf.tensor1d(randn(c, 2)));
      bn.runningMean.assign(tf.tensor1d(randn(c, 3)));
      bn.runningVar.assign(tf.tensor1d(randn(c, 4, 0.2, 1)));
    });
    // Per-channel offsets and scales, as after a conv.
    const xData = randn(size, 5, 2, 3);
    const rData = randn(size, 6);
    tf.tidy(() => {
      const x = tf.tensor4d(xData, shape);
      const r = tf.tensor4d(rData, shape);
      const rm0 = bn.runningMean.clone();
      const rv0 = bn.runningVar.clone();
      const want = referenceRunningStats(x, rm0, rv0, 0.1);

      // Fused: forward and gradients through the layer (tf.grads differentiates x, γ, β as inputs).
      const y = bn.forward(x);
      expect(data(bn.runningMean)).toEqual(want.rm);
      expect(data(bn.runningVar)).toEqual(want.rv);
      expect(data(bn.numBatchesTracked)[0]).toBe(1);
      const yRef = referenceBatchNorm(x, bn.weight, bn.bias, bn.eps);
      expect(relErr(data(y), data(yRef))).toBeLessThanOrEqual(TOL);

      const vars = [bn.weight, bn.bias];
      const xv = tf.variable(x, true, `bn_test_x_${backend}`);
      const got = tf.variableGrads(() => tf.sum(tf.mul(bn.forward(xv), r)) as tf.Scalar, [xv, ...vars]);
      const ref = tf.variableGrads(() => tf.sum(tf.mul(referenceBatchNorm(xv, bn.weight, bn.bias, bn.eps), r)) as tf.Scalar, [xv, ...vars]);
      for (const v of [xv, ...vars]) {
        expect(relErr(data(got.grads[v.name]), data(ref.grads[v.name])), `d${v.name}`).toBeLessThanOrEqual(TOL);
      }
      // The unfused layer (fusion off) updates the statistics identically.
      const bn2 = new BatchNorm2d(c, 1e-5, 0.1);
      bn2.runningMean.assign(rm0);
      bn2.runningVar.assign(rv0);
      withoutLayerFusion(() => bn2.forward(x));
      const bn3 = new BatchNorm2d(c, 1e-5, 0.1);
      bn3.runningMean.assign(rm0);
      bn3.runningVar.assign(rv0);
      bn3.forward(x);
      expect(data(bn3.runningMean)).toEqual(data(bn2.runningMean));
      expect(data(bn3.runningVar)).toEqual(data(bn2.runningVar));
      bn2.dispose();
      bn3.dispose();
      xv.dispose();
    });
    bn.dispose();
  });

  it.each(BACKENDS)('%s: no tensor leak across repeated training steps', async (backend) => {
    await tf.setBackend(backend);
    const bn = new BatchNorm2d(4);
    const x = tf.tensor4d(randn(2 * 6 * 6 * 4, 9, 1, 0.5), [2, 6, 6, 4]);
    const step = (): void => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(bn.forward(x))) as tf.Scalar, [bn.weight, bn.bias]);
      tf.dispose([value, ...Object.values(grads)]);
      tf.dispose(tf.grads((a: tf.Tensor) => tf.sum(bn.forward(a as tf.Tensor4D)))([x]));
      tf.dispose(bn.forward(x)); // forward only (no tape): nothing saved
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    bn.dispose();
  });
});

describe('BatchNorm2d + ReLU fused in Sequential (callWithRelu) vs the op chain', () => {
  it.each(BACKENDS)('%s: forward, gradients (x, γ, β), running statistics; the pair is fused only in Sequential order BN, ReLU', async (backend) => {
    await tf.setBackend(backend);
    const c = 5;
    const shape: [number, number, number, number] = [2, 6, 7, c];
    const size = shape.reduce((a, b) => a * b, 1);
    const bn = new BatchNorm2d(c);
    tf.tidy(() => {
      bn.weight.assign(tf.tensor1d(randn(c, 21, 0.5, 1)));
      bn.bias.assign(tf.tensor1d(randn(c, 22, 0.5)));
    });
    const seq = new Sequential<tf.Tensor4D>([bn, new ReLU()]);
    tf.tidy(() => {
      const x = tf.tensor4d(randn(size, 23, 2, 1), shape);
      const r = tf.tensor4d(randn(size, 24), shape);
      const xv = tf.variable(x, true, `bnrelu_test_x_${backend}`);
      const vars = [bn.weight, bn.bias];
      const got = tf.variableGrads(() => tf.sum(tf.mul(seq.forward(xv), r)) as tf.Scalar, [xv, ...vars]);
      const ref = tf.variableGrads(() => tf.sum(tf.mul(tf.relu(referenceBatchNorm(xv, bn.weight, bn.bias, bn.eps)), r)) as tf.Scalar, [xv, ...vars]);
      expect(Math.abs(got.value.dataSync()[0] - ref.value.dataSync()[0])).toBeLessThan(1e-4 * Math.abs(ref.value.dataSync()[0]) + 1e-5);
      for (const v of [xv, ...vars]) {
        expect(relErr(data(got.grads[v.name]), data(ref.grads[v.name])), `d${v.name}`).toBeLessThanOrEqual(TOL);
      }
      expect(data(bn.numBatchesTracked)[0]).toBe(1);
      xv.dispose();
    });
    seq.dispose();
  });
});

describe('Conv2d with bias: one customGrad op (convWithBias) vs conv2d + add', () => {
  it.each(BACKENDS)('%s: forward and gradients (x, W, b), stride 1 and 2, same and valid padding', async (backend) => {
    await tf.setBackend(backend);
    for (const [k, stride, padding] of [[3, 1, 1], [3, 2, 1], [1, 1, 0], [4, 2, 0]] as const) {
      const conv = new Conv2d(3, 6, k, { stride, padding });
      tf.tidy(() => {
        const x = tf.variable(tf.tensor4d(randn(2 * 9 * 9 * 3, 31 + k), [2, 9, 9, 3]), true, `cwb_x_${backend}_${k}_${stride}`);
        const r = tf.tensor(randn(conv.forward(x).size, 32), conv.forward(x).shape);
        const reference = (): tf.Tensor => {
          const { x: xp, pad } = withoutLayerFusion(() => ({ x: tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]]), pad: 'valid' as const }));
          return tf.add(tf.conv2d(xp, conv.weight as tf.Tensor4D, stride, pad), conv.bias as tf.Tensor);
        };
        const vars = [x, conv.weight, conv.bias as tf.Variable];
        const got = tf.variableGrads(() => tf.sum(tf.mul(conv.forward(x), r)) as tf.Scalar, vars);
        const ref = tf.variableGrads(() => tf.sum(tf.mul(reference(), r)) as tf.Scalar, vars);
        expect(relErr(data(conv.forward(x)), data(reference())), `forward k${k} s${stride}`).toBeLessThanOrEqual(TOL);
        for (const v of vars) expect(relErr(data(got.grads[v.name]), data(ref.grads[v.name])), `d${v.name} k${k} s${stride}`).toBeLessThanOrEqual(TOL);
        x.dispose();
      });
      conv.dispose();
    }
  });
});

describe("Conv2d: tfjs 'same' padding vs explicit tf.pad + 'valid'", () => {
  it.each(BACKENDS)('%s: forward and gradients (x, W, b), k = 1, 3, 5', async (backend) => {
    await tf.setBackend(backend);
    for (const k of [1, 3, 5]) {
      const p = (k - 1) / 2;
      const conv = new Conv2d(3, 4, k, { padding: p });
      expect(conv.samePadding).toBe(true);
      const xShape: [number, number, number, number] = [2, 9, 8, 3];
      tf.tidy(() => {
        const x = tf.tensor4d(randn(2 * 9 * 8 * 3, 20 + k), xShape);
        const r = tf.tensor4d(randn(2 * 9 * 8 * 4, 30 + k), [2, 9, 8, 4]);
        const ref = (a: tf.Tensor4D): tf.Tensor4D =>
          tf.add(tf.conv2d(tf.pad(a, [[0, 0], [p, p], [p, p], [0, 0]]), conv.weight as tf.Tensor4D, 1, 'valid'), conv.bias as tf.Tensor) as tf.Tensor4D;
        expect(relErr(data(conv.forward(x)), data(ref(x)))).toBeLessThanOrEqual(TOL);
        const xv = tf.variable(x, true, `conv_test_x_${backend}_${k}`);
        const vars = [xv, conv.weight, conv.bias as tf.Variable];
        const got = tf.variableGrads(() => tf.sum(tf.mul(conv.forward(xv), r)) as tf.Scalar, vars);
        const want = tf.variableGrads(() => tf.sum(tf.mul(ref(xv), r)) as tf.Scalar, vars);
        for (const v of vars) expect(relErr(data(got.grads[v.name]), data(want.grads[v.name])), `k=${k} d${v.name}`).toBeLessThanOrEqual(TOL);
        xv.dispose();
      });
      conv.dispose();
    }
  });

  it('only stride 1, dilation 1, groups 1 and padding (k-1)/2 use it', () => {
    expect(new Conv2d(3, 4, 3, { padding: 1, stride: 2 }).samePadding).toBe(false);
    expect(new Conv2d(3, 4, 3, { padding: 2, dilation: 2 }).samePadding).toBe(false);
    expect(new Conv2d(4, 4, 3, { padding: 1, groups: 2 }).samePadding).toBe(false);
    expect(new Conv2d(3, 4, 3, { padding: 0 }).samePadding).toBe(false);
    expect(new Conv2d(3, 4, 3, { padding: [1, 0] }).samePadding).toBe(false);
    expect(new Conv2d(3, 4, 3, { padding: 'same' }).samePadding).toBe(true);
  });
});

/** Random-ish BN statistics and affine parameters (every BatchNorm2d), so folding has something to fold. */
function randomizeBatchNorms(net: Module, seed: number): void {
  let s = seed;
  const entries = new Map(net.namedEntries());
  const bns = [...entries.keys()].filter((k) => k.endsWith('.running_mean') || k === 'running_mean').map((k) => k.slice(0, -'running_mean'.length));
  for (const p of bns) tf.tidy(() => {
    const set = (name: string, make: (n: number) => Float32Array, abs = false): void => {
      const v = (entries.get(p + name) as { variable: tf.Variable }).variable;
      const t = tf.tensor(make(v.size), v.shape);
      v.assign(abs ? tf.abs(t) : t);
    };
    set('running_mean', (n) => randn(n, s++, 0.2));
    set('running_var', (n) => randn(n, s++, 0.3, 1), true);
    set('weight', (n) => randn(n, s++, 0.3, 1));
    set('bias', (n) => randn(n, s++, 0.1));
  });
}

function features(net: { forward(x: tf.Tensor4D): unknown }, x: tf.Tensor4D): Record<string, Float32Array> {
  return tf.tidy(() => {
    const f = net.forward(x) as Record<string, tf.Tensor4D>;
    return Object.fromEntries(Object.entries(f).map(([k, t]) => [k, data(t)]));
  });
}

function expectSameFeatures(got: Record<string, Float32Array>, want: Record<string, Float32Array>, label: string): void {
  expect(Object.keys(got)).toEqual(Object.keys(want));
  for (const k of Object.keys(want)) expect(relErr(got[k], want[k]), `${label} ${k}`).toBeLessThanOrEqual(TOL);
}

describe('eval: conv+BN(+activation) folded into tf.fused.conv2d / depthwiseConv2d', () => {
  it.each(BACKENDS)('%s: resnet18 at 32x32 equals the unfused network; cache follows weight changes; no leak', async (backend) => {
    await tf.setBackend(backend);
    const start = tf.memory().numTensors;
    setInitSeed(3);
    const net = resnet18({ upTo: 'layer4' });
    randomizeBatchNorms(net, 100);
    net.eval();
    const x = tf.tensor4d(randn(2 * 32 * 32 * 3, 7), [2, 32, 32, 3]);
    const unfused = (): Record<string, Float32Array> => withoutLayerFusion(() => features(net, x));

    const before = tf.memory().numTensors;
    expectSameFeatures(features(net, x), unfused(), 'fresh');
    const cached = tf.memory().numTensors;
    // 20 conv+BN pairs (stem, 8 blocks x 2, 3 downsamples): folded filter + bias each.
    expect(cached - before).toBe(2 * 20);
    for (let i = 0; i < 3; i++) features(net, x);
    expect(tf.memory().numTensors).toBe(cached);

    // loadStateDict (weights and buffers) invalidates the cache.
    const other = resnet18({ upTo: 'layer4' });
    randomizeBatchNorms(other, 200);
    const sd = other.stateDict();
    net.loadStateDict(sd);
    tf.dispose([...sd.values()]);
    other.dispose();
    expectSameFeatures(features(net, x), unfused(), 'after loadStateDict');

    // A training-mode forward updates running statistics: eval afterwards folds the new ones.
    net.train();
    tf.dispose(Object.values(net.forward(x)));
    net.eval();
    expectSameFeatures(features(net, x), unfused(), 'after a training forward');
    expect(tf.memory().numTensors).toBe(cached);

    // Under a gradient tape with trainable weights the folds stand aside: gradients reach them.
    const grads = (): Float32Array[] => tf.tidy(() => {
      const vars = [net.conv1.weight, net.bn1.weight];
      const { grads: g } = tf.variableGrads(() => tf.sum((net.forward(x) as Record<string, tf.Tensor4D>).layer2) as tf.Scalar, vars);
      return vars.map((v) => data(g[v.name]));
    });
    const gf = grads();
    const gu = withoutLayerFusion(grads);
    gf.forEach((g, i) => expect(relErr(g, gu[i])).toBeLessThanOrEqual(TOL));
    expect(tf.memory().numTensors).toBe(cached);

    net.dispose();
    x.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it.each(BACKENDS)('%s: mobilenet_v1 (depthwise, ReLU6) and tiny_darknet (LeakyReLU 0.1), Keras same padding at an odd size', async (backend) => {
    await tf.setBackend(backend);
    const start = tf.memory().numTensors;
    setInitSeed(4);
    const nets = [new MobileNetV1({ blocks: 2, featureLayers: ['conv_dw_2_relu', 'conv_pw_2_relu'] }), new TinyDarknet({ featureLayers: ['leaky_re_lu_4'] })];
    const x = tf.tensor4d(randn(2 * 19 * 21 * 3, 8), [2, 19, 21, 3]);
    for (const [i, net] of nets.entries()) {
      randomizeBatchNorms(net, 300 + 50 * i);
      net.eval();
      const n0 = tf.memory().numTensors;
      expectSameFeatures(features(net, x), withoutLayerFusion(() => features(net, x)), net.name);
      const cached = tf.memory().numTensors;
      expect(cached).toBeGreaterThan(n0); // the folds ran (and cached their weights)
      features(net, x);
      expect(tf.memory().numTensors).toBe(cached);
      net.dispose();
    }
    x.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('MAC counting sees the unfused modules (same rows and parameters as without fusion)', async () => {
    await tf.setBackend('wasm');
    const net = resnet18({ upTo: 'layer2' }).eval();
    const x = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    const a = countMacs(() => net.forward(x), { modules: { backbone: net } });
    setLayerFusion(false);
    const b = countMacs(() => net.forward(x), { modules: { backbone: net } });
    setLayerFusion(true);
    expect(a.rows).toEqual(b.rows);
    expect(a.params).toEqual(b.params);
    expect(a.rows.some((r) => r.op === 'norm')).toBe(true);
    net.dispose();
    x.dispose();
  });
});
