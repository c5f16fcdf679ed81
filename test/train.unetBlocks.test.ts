import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { setInitSeed } from '../src/nn/init.js';
import { Layer, StateDict } from '../src/nn/module.js';
import { Sequential } from '../src/nn/layers/sequential.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import {
  UNetDownBlock, UNetUpBlock, Upsample, catChannels, doubleConv, downPool, draemWeightsInit, upConvBnRelu,
} from '../src/nn/layers/unetBlocks.js';

// Fixture: tiny DRAEM- and RIAD-style stacks built in PyTorch with the reference child names
// (test/fixtures/make_loss_fixtures.py, unet_cases); BN in training mode.
interface UnetCase {
  state_dict: Record<string, [number[], number[]]>;
  x_shape: number[]; x: number[]; y_shape: number[]; y: number[]; w: number[]; grad_x: number[];
  running_after: Record<string, number[]>;
}
const fx = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'losses', 'unet.json'), 'utf8')) as Record<string, UnetCase>;

class DraemLike extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly block1 = this.addModule('block1', doubleConv(3, 4));
  readonly mp1 = this.addModule('mp1', downPool(2));
  readonly up1 = this.addModule('up1', upConvBnRelu(4, 2));
  readonly db1 = this.addModule('db1', doubleConv(2 + 4, 2, 3));
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const b1 = this.block1.call(x);
      return this.db1.call(catChannels([this.up1.call(this.mp1.call(b1)), b1]));
    });
  }
}

class RiadLike extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly down1 = this.addModule('down1', new UNetDownBlock(3, 3, 3, 1, 1));
  readonly down2 = this.addModule('down2', new UNetDownBlock(3, 4, 4, 2, 1));
  readonly up1 = this.addModule('up1', new UNetUpBlock(4, 3));
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const x1 = this.down1.call(x);
      return this.up1.call([this.down2.call(x1), x1]);
    });
  }
}

const nhwc = (d: number[], s: number[]) => tf.tidy(() => tf.transpose(tf.tensor4d(d, s as [number, number, number, number]), [0, 2, 3, 1]) as tf.Tensor4D);
const nchw = (t: tf.Tensor) => tf.tidy(() => tf.transpose(t, [0, 3, 1, 2]).dataSync());
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('U-Net blocks match PyTorch (names, forward, input gradient, BN running stats)', () => {
  for (const backend of ['cpu', 'wasm']) {
    for (const [name, make] of [['draem', () => new DraemLike()], ['riad', () => new RiadLike()]] as const) {
      it(`${name} stack on ${backend}`, async () => {
        await tf.setBackend(backend);
        await tf.ready();
        // the conv layers' own gradient op needs the filter-gradient kernel wasm lacks
        registerWasmTrainingKernels();
        const c = fx[name];
        const m = make();
        // Exact PyTorch key set, in PyTorch's order.
        expect(m.namedEntries().map(([k]) => k)).toEqual(Object.keys(c.state_dict));
        const sd: StateDict = new Map(Object.entries(c.state_dict).map(([k, [shape, v]]) => [k, tf.tensor(v, shape)]));
        m.loadTorchStateDict(sd, { source: `${name} fixture` });
        tf.dispose([...sd.values()]);
        m.train();
        const x = nhwc(c.x, c.x_shape);
        const w = nhwc(c.w, c.y_shape);
        const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(m.call(a as tf.Tensor4D), w)))(x);
        // the gradient pass ran forward once: running statistics updated like PyTorch's one forward
        const entries = new Map(m.namedEntries());
        for (const [k, v] of Object.entries(c.running_after)) {
          expect(maxAbs(entries.get(k)?.variable.dataSync() ?? [], v)).toBeLessThan(1e-5);
        }
        // forward again in eval mode would use running stats; compare the train-mode output instead
        const y = m.call(x);
        expect(y.shape).toEqual([c.y_shape[0], c.y_shape[2], c.y_shape[3], c.y_shape[1]]);
        expect(maxAbs(nchw(y), c.y)).toBeLessThan(1e-4);
        expect(maxAbs(nchw(g), c.grad_x)).toBeLessThan(1e-3);
        tf.dispose([x, w, g, y]);
        m.dispose();
      });
    }
  }
});

describe('U-Net block pieces', () => {
  it('upsampling: bilinear ×2 align_corners and nearest repeat; pool halves', async () => {
    await tf.setBackend('cpu');
    const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    expect(Array.from(new Upsample(2, 'nearest').call(x).dataSync())).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    const b = new Upsample(2, 'bilinear', true).call(x).dataSync();
    expect(b[0]).toBe(1);
    expect(b[3]).toBe(2);
    expect(b[15]).toBe(4);
    expect(b[1]).toBeCloseTo(1 + 1 / 3, 6);
    expect(downPool().call(tf.ones([1, 4, 6, 2]) as tf.Tensor4D).shape).toEqual([1, 2, 3, 2]);
  });

  it('nearest upsampling is differentiable (×3, two channels): each input pixel gets the sum of its 3×3 copies', async () => {
    await tf.setBackend('cpu');
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]);
    const up = new Upsample(3, 'nearest');
    const y = up.call(x);
    expect(y.shape).toEqual([1, 6, 6, 2]);
    // Output pixel (row 4, col 1) comes from input (1, 0); channel 1 of it is 6.
    expect(y.arraySync()[0][4][1]).toEqual([5, 6]);
    const w = tf.range(0, 72).reshape([1, 6, 6, 2]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(up.call(t as tf.Tensor4D), w)))(x).arraySync() as number[][][][];
    const wv = w.arraySync() as number[][][][];
    let expected = 0;
    for (let r = 3; r < 6; r++) for (let c = 0; c < 3; c++) expected += wv[0][r][c][1];
    expect(g[0][1][0][1]).toBe(expected);
  });

  it('DRAEM init: conv weights N(0, 0.02), BN γ ~ N(1, 0.02), β = 0, seeded', async () => {
    await tf.setBackend('cpu');
    setInitSeed(1);
    const s: Sequential<tf.Tensor4D> = doubleConv(64, 64);
    draemWeightsInit(s);
    const w = (s.layers[0] as unknown as { weight: tf.Variable }).weight;
    const { mean, variance } = tf.moments(w);
    expect(Math.abs(mean.dataSync()[0])).toBeLessThan(2e-3);
    expect(Math.sqrt(variance.dataSync()[0])).toBeCloseTo(0.02, 3);
    const gamma = (s.layers[1] as unknown as { weight: tf.Variable; bias: tf.Variable });
    expect(Math.abs(tf.mean(gamma.weight).dataSync()[0] - 1)).toBeLessThan(0.01);
    expect(Array.from(gamma.bias.dataSync()).every((v) => v === 0)).toBe(true);
    // DRAEM's reconstructive decoder stage up1 + db1 at base width 128 (draem.md §2 counts)
    const up = upConvBnRelu(1024, 1024);
    const db = doubleConv(1024, 512, 1024);
    expect(up.numParameters() + db.numParameters()).toBe((1024 * 9 * 1024 + 1024 + 2048) * 2 + 1024 * 9 * 512 + 512 + 1024);
    s.dispose();
    up.dispose();
    db.dispose();
  });
});
