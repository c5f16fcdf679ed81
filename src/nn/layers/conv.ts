import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Layer } from '../module.js';
import { layerFusionEnabled } from '../fusion.js';
import { kaimingNormalFanOut, uniformInit } from '../init.js';

export type Padding2d = number | [number, number] | 'same' | 'valid';

export interface Conv2dOptions {
  stride?: number;
  /** PyTorch semantics: symmetric zero padding of this many pixels, or 'same'/'valid'. */
  padding?: Padding2d;
  dilation?: number;
  groups?: number;
  bias?: boolean;
  /** 'torch' = PyTorch's default U(±1/sqrt(fan_in)); 'kaiming_out' = torchvision ResNet init. */
  init?: 'torch' | 'kaiming_out';
}

/**
 * Pads NHWC spatially with PyTorch's symmetric semantics. wasm rejects explicit pad arrays in
 * conv2d, and tfjs 'same' pads asymmetrically for stride 2, so we pad explicitly and convolve
 * 'valid' — except where 'same' is exactly PyTorch's padding (Conv2d.samePadding).
 */
export function padSpatial(x: tf.Tensor4D, ph: number, pw: number): tf.Tensor4D {
  if (ph === 0 && pw === 0) return x;
  return tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]]);
}

function resolvePadding(p: Padding2d, k: number, dilation: number): [number, number] | 'valid' {
  if (p === 'valid') return 'valid';
  if (p === 'same') {
    const total = (k - 1) * dilation;
    if (total % 2 !== 0) throw new ConfigError(`padding 'same' with even effective kernel ${k} is asymmetric; give explicit padding`);
    return [total / 2, total / 2];
  }
  return typeof p === 'number' ? [p, p] : p;
}

/**
 * 2D convolution over NHWC tensors with PyTorch parameter names (`weight`, `bias`) and
 * semantics (symmetric padding, groups, dilation). Depthwise when groups == in == out / m.
 */
export class Conv2d extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  readonly stride: number;
  readonly pad: [number, number] | 'valid';
  readonly dilation: number;
  readonly groups: number;
  readonly depthwise: boolean;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    opts: Conv2dOptions = {},
  ) {
    super();
    this.stride = opts.stride ?? 1;
    this.dilation = opts.dilation ?? 1;
    this.groups = opts.groups ?? 1;
    this.pad = resolvePadding(opts.padding ?? 0, kernelSize, this.dilation);
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new ConfigError(`Conv2d: channels ${inChannels}->${outChannels} not divisible by groups ${this.groups}`);
    }
    this.depthwise = this.groups > 1 && this.groups === inChannels;
    const k = kernelSize;
    const fanIn = (inChannels / this.groups) * k * k;
    const fanOut = (outChannels / this.groups) * k * k;
    const shape = this.depthwise
      ? [k, k, inChannels, outChannels / inChannels]
      : [k, k, inChannels / this.groups, outChannels];
    const w = opts.init === 'kaiming_out' ? kaimingNormalFanOut(shape, fanOut) : uniformInit(shape, 1 / Math.sqrt(fanIn));
    this.weight = this.addParameter('weight', w, this.depthwise ? 'depthwise' : 'conv2d');
    this.bias = opts.bias === false ? null : this.addParameter('bias', uniformInit([outChannels], 1 / Math.sqrt(fanIn)));
  }

  /**
   * True when PyTorch's symmetric padding equals tfjs 'same' (stride 1, dilation 1, one group,
   * padding (k-1)/2 on both axes), so the conv can pad implicitly: no padded copy of the input
   * is made, nor kept on the gradient tape.
   */
  get samePadding(): boolean {
    const p = this.pad;
    return this.stride === 1 && this.dilation === 1 && this.groups === 1 && p !== 'valid'
      && p[0] === p[1] && 2 * p[0] === this.kernelSize - 1;
  }

  /**
   * The input as the convolution kernel sees it and the tfjs padding mode to give that kernel:
   * `{ x, pad: 'same' }` for samePadding with layer fusion on (src/nn/fusion.ts), otherwise the
   * explicitly padded input (which the caller must dispose if it is not `x`) and 'valid'.
   */
  kernelInput(x: tf.Tensor4D): { x: tf.Tensor4D; pad: 'same' | 'valid' } {
    if (this.samePadding && layerFusionEnabled()) return { x, pad: 'same' };
    return { x: this.pad === 'valid' ? x : padSpatial(x, this.pad[0], this.pad[1]), pad: 'valid' };
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const { x: xp, pad } = this.kernelInput(x);
      const d: [number, number] = [this.dilation, this.dilation];
      let y: tf.Tensor4D;
      if (this.depthwise) {
        y = tf.depthwiseConv2d(xp, this.weight as tf.Tensor4D, this.stride, pad, 'NHWC', d);
      } else if (this.groups === 1 && this.bias && this.dilation === 1 && layerFusionEnabled()) {
        return convWithBias(xp, this.weight as tf.Tensor4D, this.bias, this.stride, pad);
      } else if (this.groups === 1) {
        y = tf.conv2d(xp, this.weight as tf.Tensor4D, this.stride, pad, 'NHWC', d);
      } else {
        const xs = tf.split(xp, this.groups, 3) as tf.Tensor4D[];
        const ws = tf.split(this.weight as tf.Tensor4D, this.groups, 3) as tf.Tensor4D[];
        y = tf.concat(xs.map((xi, i) => tf.conv2d(xi, ws[i], this.stride, pad, 'NHWC', d)), 3);
      }
      return this.bias ? (tf.add(y, this.bias) as tf.Tensor4D) : y;
    });
  }
}

/**
 * conv2d(x, w) + b (dilation 1, NHWC) as one op. Why: tfjs' Add keeps both inputs on the tape to
 * work out its broadcast gradient, i.e. the whole conv output per layer, and adds a full pass; here
 * the tape keeps x and w only (as tfjs' conv2d does), the bias gradient is Σ dy, and on wasm the
 * bias is added in the SIMD GEMM's write-out (FusedConv2D).
 */
export function convWithBias(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor, stride: number, pad: 'same' | 'valid'): tf.Tensor4D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, wi, bi] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    save([xi, wi]);
    const value = tf.fused.conv2d({ x: xi as tf.Tensor4D, filter: wi as tf.Tensor4D, bias: bi, strides: stride, pad });
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sw] = saved as tf.Tensor4D[];
        const dy4 = dy as tf.Tensor4D;
        const dx = tf.conv2dTranspose(dy4, sw, sx.shape, stride, pad);
        const attrs = { strides: stride, pad, dataFormat: 'NHWC', filterShape: sw.shape };
        const dw = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: sx, dy: dy4 }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
        return [dx, dw, tf.sum(dy4, [0, 1, 2])];
      },
    };
  });
  return op(x, w, b) as tf.Tensor4D;
}

/**
 * Transposed convolution with PyTorch semantics: out = (in-1)*stride - 2*padding + kernel + outputPadding.
 * Weight stored as tfjs conv2dTranspose filter [kh, kw, out, in].
 */
export class ConvTranspose2d extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly opts: { stride?: number; padding?: number; outputPadding?: number; bias?: boolean } = {},
  ) {
    super();
    const k = kernelSize;
    // PyTorch computes fan_in of a transposed conv weight [in, out, k, k] as out*k*k.
    const fanIn = outChannels * k * k;
    this.weight = this.addParameter('weight', uniformInit([k, k, outChannels, inChannels], 1 / Math.sqrt(fanIn)), 'convTranspose2d');
    this.bias = opts.bias === false ? null : this.addParameter('bias', uniformInit([outChannels], 1 / Math.sqrt(fanIn)));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const s = this.opts.stride ?? 1;
      const p = this.opts.padding ?? 0;
      const op = this.opts.outputPadding ?? 0;
      const [n, h, w] = x.shape;
      const k = this.kernelSize;
      // Full (unpadded) transposed conv, then crop PyTorch's padding: valid for any padding/stride.
      const fullH = (h - 1) * s + k;
      const fullW = (w - 1) * s + k;
      let y: tf.Tensor4D = tf.conv2dTranspose(x, this.weight as tf.Tensor4D, [n, fullH + op, fullW + op, this.outChannels], s, 'valid');
      const outH = fullH - 2 * p + op;
      const outW = fullW - 2 * p + op;
      if (p > 0 || op > 0) y = tf.slice(y as tf.Tensor4D, [0, p, p, 0], [n, outH, outW, this.outChannels]);
      return this.bias ? (tf.add(y, this.bias) as tf.Tensor4D) : y;
    });
  }
}

/**
 * torch.nn.Conv1d over NWC tensors [B, L, C] (stride 1, symmetric zero padding), PyTorch names
 * `weight` (torch [O, I, k], stored [k, I, O]) and `bias`, default init U(±1/√(I·k)). The
 * guided-diffusion attention block's qkv and output projections are 1×1 Conv1d over the
 * flattened positions (src/models/diffusion/unet.ts).
 */
export class Conv1d extends Layer<tf.Tensor3D, tf.Tensor3D> {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize = 1,
    readonly opts: { padding?: number; bias?: boolean } = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inChannels * kernelSize);
    this.weight = this.addParameter('weight', uniformInit([kernelSize, inChannels, outChannels], bound), 'conv1d');
    this.bias = opts.bias === false ? null : this.addParameter('bias', uniformInit([outChannels], bound));
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    if (x.shape[2] !== this.inChannels) throw new ConfigError(`Conv1d(${this.inChannels}→${this.outChannels}): expected [B, L, ${this.inChannels}], got [${x.shape}]`);
    return tf.tidy(() => {
      const p = this.opts.padding ?? 0;
      const xp = p > 0 ? tf.pad(x, [[0, 0], [p, p], [0, 0]]) : x;
      const y = tf.conv1d(xp, this.weight as tf.Tensor3D, 1, 'valid');
      return (this.bias ? tf.add(y, this.bias) : y) as tf.Tensor3D;
    });
  }
}
