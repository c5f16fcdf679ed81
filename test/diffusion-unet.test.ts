/**
 * The diffusion UNet (src/models/diffusion/unet.ts): the specs' parameter counts (TABLE6.md,
 * ddad.md §2, diffusionad.md §2.1) from the analytic counter and from a built DDAD UNet; the
 * analytic counter against built small configurations; PyTorch parity of a tiny UNet with
 * formula weights (test/fixtures/make_diffusion_fixtures.py: state-dict names, output, input and
 * parameter gradients) and of GroupNorm; zero output when untrained; DDAD's Table 6 GMAC; a
 * training forward/backward with dropout and no leaks; bad input is a ConfigError.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { installEagerBackprop } from '../src/nn/backprop.js';
import { GroupNorm, setInitSeed, toTorchLayout, type StateDict } from '../src/nn/index.js';
import { countCostRow, disposeCostNetworks } from '../src/energy/costsTable.js';
import { ConfigError } from '../src/errors.js';
import {
  DDAD_S_UNET,
  DDAD_UNET,
  DIFFUSIONAD_UNET,
  DiffusionUNet,
  ddadUNetCostSpec,
  unetCostNetworks,
  unetParameterCount,
  type DiffusionUNetConfig,
} from '../src/models/diffusion/index.js';
import { relErr } from './helpers/numeric.js';

const FIX = join(import.meta.dirname, 'fixtures', 'diffusion');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const load = (name: string): any => JSON.parse(readFileSync(join(FIX, name), 'utf8'));
const arr = (t: tf.Tensor): number[] => Array.from(t.dataSync());

const TINY: DiffusionUNetConfig = {
  inChannels: 3, baseChannels: 16, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [8], imageSize: 16,
  numHeads: 2, normGroups: 8, dropout: 0,
};

beforeAll(async () => {
  await initBackend('wasm');
  registerWasmTrainingKernels();
  installEagerBackprop();
});

/** The fixture's formula for parameter j of torch shape `shape` (see make_diffusion_fixtures.py). */
function formulaValues(name: string, j: number, shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    if (shape.length >= 2) out[k] = Math.sqrt(3 / (n / shape[0])) * Math.sin(0.7 * k + 1.3 * j);
    else if (name.endsWith('weight')) out[k] = 1 + 0.1 * Math.sin(0.9 * k + j);
    else out[k] = 0.1 * Math.sin(0.9 * k + j);
  }
  return out;
}

describe('parameter counts', () => {
  it('analytic counts of the paper configurations equal the specs (verified counts)', () => {
    expect(unetParameterCount(DDAD_UNET)).toBe(32_952_707);
    expect(unetParameterCount(DDAD_S_UNET)).toBe(8_257_731);
    expect(unetParameterCount(DIFFUSIONAD_UNET)).toBe(131_654_403);
  });

  it.each<[string, Partial<DiffusionUNetConfig>]>([
    ['tiny', {}],
    ['3 levels, 2 res blocks, attention at two levels', { channelMults: [1, 2, 3], numResBlocks: 2, attentionResolutions: [8, 4], imageSize: 16 }],
    ['head width instead of head count, 1 → 2 channels', { inChannels: 1, outChannels: 2, numHeadChannels: 8, numHeads: 1 }],
    ['no attention resolutions, time embedding 48', { attentionResolutions: [], timeEmbedDim: 48 }],
  ])('analytic count equals the built model: %s', (_name, patch) => {
    const cfg = { ...TINY, ...patch };
    const net = new DiffusionUNet(cfg);
    try {
      expect(net.numParameters()).toBe(unetParameterCount(cfg));
    } finally {
      net.dispose();
    }
  });
});

describe('PyTorch parity (tiny UNet, formula weights)', () => {
  it('state-dict names, parameters, output and gradients equal torch', () => {
    const fx = load('tiny_unet.json');
    expect(fx.config).toEqual({ ...TINY });
    const net = new DiffusionUNet(TINY);
    try {
      expect(net.namedEntries().map(([n]) => n).sort()).toEqual([...fx.names].sort());
      expect(net.numParameters()).toBe(fx.numParameters);
      const dict: StateDict = new Map();
      (fx.names as string[]).forEach((name, j) => dict.set(name, tf.tensor(formulaValues(name, j, fx.shapes[j]), fx.shapes[j])));
      net.loadTorchStateDict(dict, { strict: true, source: 'tiny_unet.json' });
      for (const t of dict.values()) t.dispose();

      const [B, C, H, W] = fx.xShape as number[];
      const xNchw = new Float32Array(B * C * H * W).map((_, k) => Math.sin(0.11 * k));
      const rNchw = new Float32Array(B * C * H * W).map((_, k) => Math.cos(0.05 * k));
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const x = tf.variable(tf.transpose(tf.tensor4d(xNchw, [B, C, H, W]), [0, 2, 3, 1]));
        const r = tf.transpose(tf.tensor4d(rNchw, [B, C, H, W]), [0, 2, 3, 1]);
        const entries = new Map(net.namedEntries());
        const names = Object.keys(fx.grads as Record<string, number[]>);
        let y: number[] = [];
        const { grads } = tf.variableGrads(() => {
          const out = net.forward(x as unknown as tf.Tensor4D, fx.t);
          y = arr(tf.transpose(out, [0, 3, 1, 2]));
          return tf.sum(tf.mul(out, r)) as tf.Scalar;
        }, [x, ...names.map((n) => entries.get(n)!.variable)]);
        expect(relErr(y, fx.y)).toBeLessThan(1e-4);
        expect(relErr(arr(tf.transpose(grads[x.name], [0, 3, 1, 2])), fx.dx)).toBeLessThan(1e-4);
        for (const n of names) {
          const e = entries.get(n)!;
          expect(relErr(arr(toTorchLayout(grads[e.variable.name], e.torchLayout)), fx.grads[n])).toBeLessThan(1e-4);
        }
        x.dispose();
      });
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      net.dispose();
    }
  });

  it('GroupNorm (torch.nn.GroupNorm): output and gradients', () => {
    const fx = load('groupnorm.json');
    const [n, c, h, w] = fx.shape as number[];
    const gn = new GroupNorm(fx.groups, c);
    try {
      tf.tidy(() => {
        gn.weight.assign(tf.tensor1d(fx.weight));
        gn.bias.assign(tf.tensor1d(fx.bias));
        const x = tf.variable(tf.transpose(tf.tensor4d(fx.x, [n, c, h, w]), [0, 2, 3, 1]));
        const r = tf.transpose(tf.tensor4d(fx.r, [n, c, h, w]), [0, 2, 3, 1]);
        let y: number[] = [];
        const { grads } = tf.variableGrads(() => {
          const out = gn.call(x as unknown as tf.Tensor4D);
          y = arr(tf.transpose(out, [0, 3, 1, 2]));
          return tf.sum(tf.mul(out, r)) as tf.Scalar;
        }, [x, gn.weight, gn.bias]);
        expect(relErr(y, fx.y)).toBeLessThan(1e-5);
        expect(relErr(arr(tf.transpose(grads[x.name], [0, 3, 1, 2])), fx.dx)).toBeLessThan(1e-4);
        expect(relErr(arr(grads[gn.weight.name]), fx.dweight)).toBeLessThan(1e-4);
        expect(relErr(arr(grads[gn.bias.name]), fx.dbias)).toBeLessThan(1e-5);
        x.dispose();
      });
    } finally {
      gn.dispose();
    }
  });
});

describe('DDAD paper UNet', () => {
  it('built: 32,952,707 parameters, untrained output exactly 0, Table 6 GMAC 69.87 ptflops / 71.27 true at 256²', () => {
    setInitSeed(0);
    const nets = unetCostNetworks(DDAD_UNET);
    try {
      const unet = (nets.modules as { unet: DiffusionUNet }).unet;
      expect(unet.numParameters()).toBe(32_952_707);
      const y = tf.tidy(() => arr(unet.forward(tf.randomNormal([1, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D, [250])));
      expect(y.length).toBe(32 * 32 * 3);
      expect(y.every((v) => v === 0)).toBe(true);
      // Counted at 64² (16× fewer pixels) to stay fast. Every per-pixel op scales by 16, the
      // attention matmuls (N² per head) by 256, the time-embedding Linears not at all.
      const row = countCostRow(ddadUNetCostSpec, nets, 64);
      expect(row.paramsM).toBeCloseTo(32.952707, 6);
      expect(row.paperGmac).toBe(69.87);
      const op = row.macs.totals.byOp;
      const linear = op.linear!.macs;
      const ptflops256 = linear + 16 * (row.macs.totals.macsPtflops - linear);
      const true256 = linear + 16 * op.conv!.macs + 256 * op.matmul!.macs;
      expect((ptflops256 / 1e9).toFixed(2)).toBe('69.87');
      expect((true256 / 1e9).toFixed(2)).toBe('71.27');
      expect(op.norm).toBeUndefined(); // GroupNorm32: not hooked by ptflops
    } finally {
      disposeCostNetworks(nets);
    }
  });
});

describe('training forward/backward', () => {
  it('tiny UNet with dropout: gradients reach every parameter, numTensors flat over steps, eval deterministic', () => {
    setInitSeed(3);
    const net = new DiffusionUNet({ ...TINY, dropout: 0.2 });
    try {
      // Zero-init layers block the gradient of everything before them; give them values first.
      tf.tidy(() => {
        for (const [, v] of net.namedParameters()) if (tf.max(tf.abs(v)).dataSync()[0] === 0) v.assign(tf.randomNormal(v.shape, 0, 0.05, 'float32', 9));
      });
      const x = tf.randomNormal([2, 16, 16, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
      const eps = tf.randomNormal([2, 16, 16, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
      const vars = net.trainableVariables();
      const counts: number[] = [];
      const losses: number[] = [];
      net.train();
      for (let step = 0; step < 3; step++) {
        const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(net.forward(x, [10, 900]), eps))) as tf.Scalar, vars);
        losses.push(value.dataSync()[0]);
        const zeroGrads = Object.entries(grads).filter(([, g]) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]) === 0).length;
        expect(zeroGrads).toBe(0);
        value.dispose();
        tf.dispose(grads);
        counts.push(tf.memory().numTensors);
      }
      expect(counts[2]).toBe(counts[0]);
      expect(losses[0]).not.toBe(losses[1]); // dropout masks differ per step
      net.eval();
      const a = tf.tidy(() => arr(net.forward(x, 10)));
      const b = tf.tidy(() => arr(net.forward(x, 10)));
      expect(a).toEqual(b);
      x.dispose();
      eps.dispose();
    } finally {
      net.dispose();
    }
  });

  it('bad configurations and inputs are ConfigErrors naming the problem', () => {
    expect(() => new DiffusionUNet({ ...TINY, normGroups: 32 })).toThrow(/normGroups 32/);
    expect(() => new DiffusionUNet({ ...TINY, numHeads: 3 })).toThrow(/numHeads 3/);
    expect(() => new DiffusionUNet({ ...TINY, attentionResolutions: [5] })).toThrow(ConfigError);
    expect(() => new DiffusionUNet({ ...TINY, dropout: 1 })).toThrow(/dropout/);
    const net = new DiffusionUNet(TINY);
    try {
      expect(() => net.forward(tf.zeros([1, 15, 16, 3]) as tf.Tensor4D, 1)).toThrow(/divisible by 2/);
      expect(() => net.forward(tf.zeros([1, 16, 16, 1]) as tf.Tensor4D, 1)).toThrow(/3 input channels/);
      expect(() => net.forward(tf.zeros([2, 16, 16, 3]) as tf.Tensor4D, [1])).toThrow(/1 timesteps for a batch of 2/);
    } finally {
      net.dispose();
    }
  });
});
