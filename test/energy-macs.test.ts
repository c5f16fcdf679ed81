import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { countMacs, formatMacTable, macsCsv, type MacReport } from '../src/energy/macs.js';
import { paperModelSize, summarizeParams } from '../src/energy/params.js';
import { BatchNorm2d, Conv2d, ConvTranspose2d, Fn, Layer, Linear, Sequential } from '../src/nn/index.js';

const macsOf = (r: MacReport, op: string): number => r.rows.filter((x) => x.op === op).reduce((s, x) => s + x.macs, 0);
const ptflopsOf = (r: MacReport, op: string): number => r.rows.filter((x) => x.op === op).reduce((s, x) => s + x.macsPtflops, 0);

/** A module with attention-style activation x activation products, as ViT blocks do. */
class TinyAttention extends Layer<tf.Tensor, tf.Tensor> {
  readonly qkv: Linear;
  constructor(readonly dim: number) {
    super();
    this.qkv = this.addModule('qkv', new Linear(dim, 3 * dim));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [q, k, v] = tf.split(this.qkv.call(x), 3, -1);
      const att = tf.softmax(tf.matMul(q, k, false, true));
      return tf.matMul(att, v);
    });
  }
}

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`MAC counter on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    it('counts a strided, padded, grouped conv exactly (true = ptflops) and a bias per output element', () => {
      const conv = new Conv2d(6, 12, 3, { stride: 2, padding: 1, groups: 3 });
      const r = countMacs(() => conv.call(tf.zeros([2, 9, 9, 6]) as tf.Tensor4D), { modules: conv });
      // out 5x5, N=2: 2*5*5 positions x 3*3 taps x (6/3) in/group x 12 out
      const expected = 2 * 5 * 5 * 9 * 2 * 12;
      expect(r.totals.macs).toBe(expected);
      expect(macsOf(r, 'conv')).toBe(expected);
      expect(ptflopsOf(r, 'conv')).toBe(expected);
      expect(ptflopsOf(r, 'bias')).toBe(2 * 5 * 5 * 12);
      expect(r.totals.macsPtflops).toBe(expected + 2 * 5 * 5 * 12);
      // The per-group kernels merge into one row carrying the module's parameters.
      const convRows = r.rows.filter((x) => x.op === 'conv');
      expect(convRows).toHaveLength(1);
      expect(convRows[0].calls).toBe(3);
      expect(convRows[0].params).toBe(3 * 3 * 2 * 12 + 12);
      conv.dispose();
    });

    it('counts dilated and depthwise convs', () => {
      const dil = new Conv2d(4, 5, 3, { padding: 2, dilation: 2, bias: false });
      const r1 = countMacs(() => dil.call(tf.zeros([1, 10, 10, 4]) as tf.Tensor4D));
      expect(r1.totals.macs).toBe(10 * 10 * 9 * 4 * 5);
      const dw = new Conv2d(8, 16, 3, { groups: 8, padding: 1, stride: 2, bias: false });
      expect(dw.depthwise).toBe(true);
      const r2 = countMacs(() => dw.call(tf.zeros([1, 10, 10, 8]) as tf.Tensor4D));
      // 5x5 outputs x 16 channels x 9 taps (one input channel each)
      expect(r2.totals.macs).toBe(5 * 5 * 16 * 9);
      expect(r2.rows[0].op).toBe('conv_depthwise');
      dil.dispose();
      dw.dispose();
    });

    it('counts a transposed conv per input position (true) and per cropped output position (ptflops)', () => {
      const up = new ConvTranspose2d(8, 4, 4, { stride: 2, padding: 1, bias: false });
      const r = countMacs(() => up.call(tf.zeros([1, 6, 6, 8]) as tf.Tensor4D));
      const trueMacs = 6 * 6 * 16 * 8 * 4; // every input pixel scatters 4x4 taps x 8 in x 4 out
      const out = (6 - 1) * 2 - 2 * 1 + 4; // PyTorch output side, 12
      expect(out).toBe(12);
      expect(r.totals.macs).toBe(trueMacs);
      expect(r.totals.macsPtflops).toBe(out * out * 16 * 8 * 4);
      expect(r.totals.macsPtflops / r.totals.macs).toBe(4);
      up.dispose();
    });

    it('counts linear layers (bias per output feature under ptflops) and batched activation matmuls', () => {
      const lin = new Linear(10, 20);
      const r = countMacs(() => lin.call(tf.zeros([3, 5, 10])), { modules: lin });
      expect(r.totals.macs).toBe(15 * 10 * 20);
      expect(r.rows[0].op).toBe('linear');
      expect(ptflopsOf(r, 'bias')).toBe(20);
      const bmm = countMacs(() => tf.matMul(tf.zeros([4, 7, 3]), tf.zeros([4, 3, 5])));
      expect(bmm.totals.macs).toBe(4 * 7 * 5 * 3);
      expect(bmm.rows[0].op).toBe('matmul');
      expect(bmm.totals.macsPtflops).toBe(0); // attention-style products are invisible to ptflops
      const tA = countMacs(() => tf.matMul(tf.zeros([2, 6, 7]), tf.zeros([2, 5, 6]), true, true));
      expect(tA.totals.macs).toBe(2 * 7 * 5 * 6);
      if (tf.getBackend() === 'cpu') {
        // wasm registers no Einsum kernel in tfjs 4.22.
        const ein = countMacs(() => tf.einsum('bij,bjk->bik', tf.zeros([2, 3, 4]), tf.zeros([2, 4, 5])));
        expect(ein.totals.macs).toBe(2 * 3 * 4 * 5);
      }
      lin.dispose();
    });

    it('attributes kernels to module paths and types, and counts attention matmuls', () => {
      const net = new Sequential<tf.Tensor>([new Linear(8, 16), new Fn((x: tf.Tensor) => tf.relu(x), 'relu'), new TinyAttention(16)]);
      const r = countMacs(() => net.call(tf.zeros([1, 5, 8])), { modules: net });
      const byPath = new Map<string, number>();
      for (const row of r.rows) byPath.set(`${row.modulePath}|${row.moduleType}|${row.op}`, (byPath.get(`${row.modulePath}|${row.moduleType}|${row.op}`) ?? 0) + row.macs);
      expect(byPath.get('0|Linear|linear')).toBe(5 * 8 * 16);
      expect(byPath.get('2.qkv|Linear|linear')).toBe(5 * 16 * 48);
      // q k^T: 5x5 outputs x 16; att v: 5x16 outputs x 5
      expect(byPath.get('2|TinyAttention|matmul')).toBe(5 * 5 * 16 + 5 * 16 * 5);
      expect(r.rows.find((x) => x.op === 'activation')?.modulePath).toBe('1');
      expect(r.totals.macsPtflops).toBe(5 * 8 * 16 + 16 + 5 * 16 + 5 * 16 * 48 + 48); // linear + bias + relu + qkv + bias
      expect(r.params?.unique).toBe(8 * 16 + 16 + 16 * 48 + 48);
      expect(r.params?.run).toBe(r.params?.unique);
      const paramsByRow = r.rows.reduce((s, x) => s + (x.params ?? 0), 0);
      expect(paramsByRow).toBe(r.params?.unique);
      net.dispose();
    });

    it('charges norms, activations and pooling only under ptflops, and leaks no tensor', () => {
      const net = new Sequential<tf.Tensor4D>([
        new Conv2d(3, 4, 3, { padding: 1, bias: false }),
        new BatchNorm2d(4),
        new Fn((x: tf.Tensor4D) => tf.relu(x)),
        new Fn((x: tf.Tensor4D) => tf.maxPool(x, 2, 2, 'valid')),
        new Fn((x: tf.Tensor4D) => tf.image.resizeBilinear(x, [8, 8])),
      ]);
      net.eval();
      const before = tf.memory().numTensors;
      const r = countMacs(() => net.call(tf.zeros([1, 8, 8, 3]) as tf.Tensor4D), { modules: net });
      expect(tf.memory().numTensors).toBe(before);
      const numel = 8 * 8 * 4;
      expect(r.totals.macs).toBe(numel * 9 * 3);
      expect(ptflopsOf(r, 'norm')).toBe(2 * numel);
      expect(ptflopsOf(r, 'activation')).toBe(numel);
      expect(ptflopsOf(r, 'pool')).toBe(numel);
      expect(ptflopsOf(r, 'upsample')).toBe(numel);
      expect(r.kernels.notCounted).not.toHaveProperty('Conv2D');
      expect(formatMacTable(r)).toContain('Not counted');
      const csv = macsCsv(r).trim().split('\n');
      expect(csv[0]).toBe('module_path,module_type,op,kernel,calls,input_shapes,output_shape,macs,macs_ptflops,params');
      expect(csv).toHaveLength(r.rows.length + 1);
      // The engine is back to its prototype method once counting ends.
      expect(Object.prototype.hasOwnProperty.call(tf.engine(), 'runKernelFunc')).toBe(false);
      net.dispose();
    });
  });
}

describe('parameter counts', () => {
  it('counts unique parameters once, applies a paper rule and formats Model Size as the paper', async () => {
    await initBackend('cpu');
    const shared = new Linear(4, 4);
    const a = new Sequential<tf.Tensor>([shared, new Linear(4, 2)]);
    const b = new Sequential<tf.Tensor>([shared]);
    const set = { enc: a, dup: b };
    const s = summarizeParams(set, {
      description: 'enc counted three times, plus an unbuilt head',
      count: (p) => (p.startsWith('enc.') ? 3 : 1),
      extra: [{ label: 'head', params: 1000 }],
    });
    expect(s.unique).toBe(20 + 10);
    expect(s.paperRule).toBe(3 * 30 + 1000);
    expect(s.sizeMiBFloat32).toBe((30 * 4) / 2 ** 20);
    expect(paperModelSize(28_805_699)).toBe('28.80');
    expect(paperModelSize(148_008_960)).toBe('148.00');
    expect(paperModelSize(68_883_240)).toBe('68.88');
    a.dispose();
  });
});
