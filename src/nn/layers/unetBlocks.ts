import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { normalInit } from '../init.js';
import { Layer, Module } from '../module.js';
import { Conv2d, ConvTranspose2d } from './conv.js';
import { BatchNorm2d } from './norm.js';
import { ReLU, Sequential, maxPool2d } from './sequential.js';
import { resizeBilinear } from './smoothing.js';

/**
 * U-Net building blocks shared by the reconstruction methods, with PyTorch module names so that
 * state dicts line up with the reference implementations:
 *  - DRAEM (draem.md §2; VitjanZ/DRAEM model_unet.py): `blockN`/`dbN` = doubleConv (Sequential
 *    indices 0,1,3,4 hold parameters; 2 and 5 are ReLU), `mpN` = Sequential(MaxPool2d(2)),
 *    `upN` = upConvBnRelu (Upsample at index 0, conv 1, BN 2, ReLU 3), bilinear align_corners=True.
 *  - RIAD (riad.md §2; taikiinoue45/RIAD unet.py): UNetDownBlock / UNetUpBlock with children
 *    conv1, bn1, conv2, bn2 (and upconv = ConvTranspose2d 4×4, stride 2, pad 1).
 * All layers NHWC.
 */

/** torch.nn.MaxPool2d(kernel, stride = kernel, padding). */
export class MaxPool2d extends Layer<tf.Tensor4D, tf.Tensor4D> {
  constructor(
    readonly kernelSize: number,
    readonly stride: number = kernelSize,
    readonly padding = 0,
  ) {
    super();
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return maxPool2d(x, this.kernelSize, this.stride, this.padding);
  }
}

/**
 * torch.nn.Upsample(scale_factor, mode) for 'bilinear' (alignCorners as given; DRAEM uses true,
 * torch's default is false) and 'nearest' (torch legacy nearest: src = ⌊dst·in/out⌋). Bilinear
 * uses resizeBilinear, whose gradient is correct for both alignments on every backend.
 */
export class Upsample extends Layer<tf.Tensor4D, tf.Tensor4D> {
  constructor(
    readonly scaleFactor = 2,
    readonly mode: 'bilinear' | 'nearest' = 'nearest',
    readonly alignCorners = false,
  ) {
    super();
    if (mode === 'nearest' && alignCorners) throw new ConfigError('Upsample: alignCorners only applies to bilinear');
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    const [, h, w] = x.shape;
    const size: [number, number] = [Math.floor(h * this.scaleFactor), Math.floor(w * this.scaleFactor)];
    if (this.mode === 'bilinear') return resizeBilinear(x, size, this.alignCorners);
    // Integer nearest upscaling = repeat each pixel; differentiable everywhere (tile/reshape).
    const s = this.scaleFactor;
    if (!Number.isInteger(s)) throw new ConfigError(`Upsample: nearest mode supports integer scale factors, got ${s}`);
    return nearestUpsample(x, s);
  }
}

/**
 * Integer nearest upscaling (torch F.interpolate(mode='nearest') with an integer scale): each
 * pixel repeated s×s, as concats + reshapes — tfjs 4.22 has no gradient for a rank-6 tile.
 */
export function nearestUpsample(x: tf.Tensor4D, s: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return tf.tidy(() => {
    const copies = (t: tf.Tensor4D, axis: number) => tf.concat(Array.from({ length: s }, () => t), axis);
    const wide = tf.reshape(copies(x, 3), [n, h, s * w, c]) as tf.Tensor4D;
    return tf.reshape(copies(wide, 2), [n, s * h, s * w, c]) as tf.Tensor4D;
  });
}

export interface ConvBnReluOptions {
  kernelSize?: number;
  stride?: number;
  /** Default: kernelSize//2 ("same" for odd kernels). */
  padding?: number;
  bias?: boolean;
  eps?: number;
}

/** Sequential(Conv2d, BatchNorm2d, ReLU): parameters under `0.` and `1.`. */
export function convBnRelu(inChannels: number, outChannels: number, opts: ConvBnReluOptions = {}): Sequential<tf.Tensor4D> {
  const k = opts.kernelSize ?? 3;
  return new Sequential<tf.Tensor4D>([
    new Conv2d(inChannels, outChannels, k, { stride: opts.stride ?? 1, padding: opts.padding ?? Math.floor(k / 2), bias: opts.bias ?? true }),
    new BatchNorm2d(outChannels, opts.eps ?? 1e-5),
    new ReLU(),
  ]);
}

/**
 * Sequential(Conv3×3, BN, ReLU, Conv3×3, BN, ReLU), in → mid → out (mid defaults to out):
 * DRAEM's encoder `blockN` and decoder `dbN` (parameters under 0., 1., 3., 4.).
 */
export function doubleConv(inChannels: number, outChannels: number, midChannels = outChannels, opts: { eps?: number } = {}): Sequential<tf.Tensor4D> {
  const eps = opts.eps ?? 1e-5;
  return new Sequential<tf.Tensor4D>([
    new Conv2d(inChannels, midChannels, 3, { padding: 1 }),
    new BatchNorm2d(midChannels, eps),
    new ReLU(),
    new Conv2d(midChannels, outChannels, 3, { padding: 1 }),
    new BatchNorm2d(outChannels, eps),
    new ReLU(),
  ]);
}

/** DRAEM `mpN` = nn.Sequential(nn.MaxPool2d(2)). */
export function downPool(kernel = 2): Sequential<tf.Tensor4D> {
  return new Sequential<tf.Tensor4D>([new MaxPool2d(kernel)]);
}

/**
 * Sequential(Upsample ×2, Conv3×3, BN, ReLU): DRAEM's `upN` (parameters under 1. and 2.),
 * bilinear with align_corners=True by default as in model_unet.py.
 */
export function upConvBnRelu(inChannels: number, outChannels: number, opts: { mode?: 'bilinear' | 'nearest'; alignCorners?: boolean } = {}): Sequential<tf.Tensor4D> {
  const mode = opts.mode ?? 'bilinear';
  return new Sequential<tf.Tensor4D>([
    new Upsample(2, mode, mode === 'bilinear' ? (opts.alignCorners ?? true) : false),
    new Conv2d(inChannels, outChannels, 3, { padding: 1 }),
    new BatchNorm2d(outChannels),
    new ReLU(),
  ]);
}

/** Concatenate along channels (torch.cat(dim=1) in NCHW = axis 3 in NHWC), in the given order. */
export function catChannels(xs: tf.Tensor4D[]): tf.Tensor4D {
  return tf.concat(xs, 3);
}

/**
 * RIAD encoder stage (taikiinoue45 UNetDownBlock): conv1 (k, stride, padding) → bn1 → ReLU →
 * conv2 (3×3, pad 1) → bn2 → ReLU. riad.md §2: D1 = (3→64, k3 s1 p1), D2..D5 = (k4 s2 p1).
 */
export class UNetDownBlock extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;

  constructor(inChannels: number, outChannels: number, kernelSize = 3, stride = 1, padding = 1) {
    super();
    this.conv1 = this.addModule('conv1', new Conv2d(inChannels, outChannels, kernelSize, { stride, padding }));
    this.bn1 = this.addModule('bn1', new BatchNorm2d(outChannels, 1e-5));
    this.conv2 = this.addModule('conv2', new Conv2d(outChannels, outChannels, 3, { padding: 1 }));
    this.bn2 = this.addModule('bn2', new BatchNorm2d(outChannels, 1e-5));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const a = tf.relu(this.bn1.call(this.conv1.call(x)));
      return tf.relu(this.bn2.call(this.conv2.call(a)));
    });
  }
}

/**
 * RIAD decoder stage (taikiinoue45 UNetUpBlock, merge 'concat', up 'transpose'):
 * upconv = ConvTranspose2d(in→out, 4, stride 2, pad 1); x = cat(up, skip); conv1 (2·out→out) →
 * bn1 → ReLU → conv2 → bn2 → ReLU. Input: [fromUp, fromDown].
 */
export class UNetUpBlock extends Layer<[tf.Tensor4D, tf.Tensor4D], tf.Tensor4D> {
  readonly upconv: ConvTranspose2d;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;

  constructor(inChannels: number, outChannels: number) {
    super();
    this.upconv = this.addModule('upconv', new ConvTranspose2d(inChannels, outChannels, 4, { stride: 2, padding: 1 }));
    this.conv1 = this.addModule('conv1', new Conv2d(2 * outChannels, outChannels, 3, { padding: 1 }));
    this.bn1 = this.addModule('bn1', new BatchNorm2d(outChannels, 1e-5));
    this.conv2 = this.addModule('conv2', new Conv2d(outChannels, outChannels, 3, { padding: 1 }));
    this.bn2 = this.addModule('bn2', new BatchNorm2d(outChannels, 1e-5));
  }

  forward([fromUp, fromDown]: [tf.Tensor4D, tf.Tensor4D]): tf.Tensor4D {
    return tf.tidy(() => {
      const x = catChannels([this.upconv.call(fromUp), fromDown]);
      const a = tf.relu(this.bn1.call(this.conv1.call(x)));
      return tf.relu(this.bn2.call(this.conv2.call(a)));
    });
  }
}

/** All modules below `m` (depth first, `m` included). */
export function allModules(m: Module): Module[] {
  return [m, ...m.namedChildren().flatMap(([, c]) => allModules(c))];
}

/**
 * DRAEM's `weights_init` (train_DRAEM.py; draem.md §2): every module whose class name contains
 * "Conv" (Conv2d and ConvTranspose2d) gets weight ~ N(0, 0.02) (biases keep the PyTorch default);
 * every BatchNorm gets γ ~ N(1, 0.02), β = 0. Seeded through setInitSeed.
 */
export function draemWeightsInit(root: Module, std = 0.02): void {
  for (const m of allModules(root)) {
    if (m instanceof Conv2d || m instanceof ConvTranspose2d) {
      const w = normalInit(m.weight.shape, std);
      m.weight.assign(w);
      w.dispose();
    } else if (m instanceof BatchNorm2d) {
      const g = normalInit(m.weight.shape, std, 1);
      m.weight.assign(g);
      g.dispose();
      tf.tidy(() => m.bias.assign(tf.zerosLike(m.bias)));
    }
  }
}
