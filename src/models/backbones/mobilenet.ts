import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Module, runFrozen } from '../../nn/module.js';
import { BatchNorm2d } from '../../nn/layers/norm.js';
import { ConvBnFold } from '../../nn/layers/fold.js';
import { SYMMETRIC_NORMALIZATION, normalizeInput, pickFeatures, type FeatureExtractor, type Normalization } from './common.js';
import { KerasConv2d, kerasBatchNorm } from './keras.js';

/**
 * MobileNet v1 (alpha 1.0) as Keras 2.1.4 defines it and tfjs-models hosted it
 * (`mobilenet_v1_1.0_224`): conv1 3x3/2 'same' + BN + ReLU6, then 13 blocks of depthwise 3x3
 * (stride 2 in blocks 2, 4, 6, 12; Keras 'same' padding, i.e. 0 before / 1 after on even sizes)
 * + BN + ReLU6 and pointwise 1x1 + BN + ReLU6. BN epsilon 1e-3. Input: x/127.5 - 1 on 0..255.
 *
 * Children carry the Keras names (conv1, conv1_bn, conv_dw_k, conv_dw_k_bn, conv_pw_k,
 * conv_pw_k_bn). Taps: `conv1_relu`, `conv_dw_k_relu`, `conv_pw_k_relu`. The backbone is
 * truncated: by default it ends with block 12 (`conv_pw_12_relu`, stride 32), so it never needs
 * conv_pw_13 (group37, missing from the partial copy). Default taps: conv_pw_5_relu (256 ch,
 * stride 8) and conv_pw_11_relu (512 ch, stride 16).
 */

const PW_FILTERS = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024] as const;
const DW_STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1] as const;

export const MOBILENET_V1_DEFAULT_TAPS = ['conv_pw_5_relu', 'conv_pw_11_relu'] as const;

function tapInfo(): { strides: Record<string, number>; channels: Record<string, number> } {
  const strides: Record<string, number> = { conv1_relu: 2 };
  const channels: Record<string, number> = { conv1_relu: 32 };
  let stride = 2;
  let c = 32;
  for (let b = 1; b <= 13; b++) {
    stride *= DW_STRIDES[b - 1];
    strides[`conv_dw_${b}_relu`] = stride;
    channels[`conv_dw_${b}_relu`] = c;
    c = PW_FILTERS[b - 1];
    strides[`conv_pw_${b}_relu`] = stride;
    channels[`conv_pw_${b}_relu`] = c;
  }
  return { strides, channels };
}

export const MOBILENET_V1_TAPS = tapInfo();

export interface MobileNetV1Options {
  featureLayers?: readonly string[];
  /** Number of dw/pw blocks to build, 1..13 (default 12, or as deep as the deepest tap needs). */
  blocks?: number;
}

function tapBlock(tap: string): number {
  if (tap === 'conv1_relu') return 0;
  const m = /^conv_(?:dw|pw)_(\d+)_relu$/.exec(tap);
  const b = m ? Number(m[1]) : -1;
  if (b < 1 || b > 13) throw new ConfigError(`mobilenet_v1: unknown tap '${tap}' (conv1_relu, conv_dw_k_relu, conv_pw_k_relu, k = 1..13)`);
  return b;
}

export class MobileNetV1 extends Module implements FeatureExtractor {
  readonly name = 'mobilenet_v1';
  readonly featureLayers: readonly string[];
  readonly strides: Readonly<Record<string, number>>;
  readonly channels: Readonly<Record<string, number>>;
  readonly normalization: Normalization = SYMMETRIC_NORMALIZATION;
  readonly blocks: number;
  private readonly conv1: KerasConv2d;
  private readonly conv1Bn: BatchNorm2d;
  private readonly dw: KerasConv2d[] = [];
  private readonly dwBn: BatchNorm2d[] = [];
  private readonly pw: KerasConv2d[] = [];
  private readonly pwBn: BatchNorm2d[] = [];
  /** conv+BN+ReLU6 units, folded into fused convs in eval mode (src/nn/layers/fold.ts). */
  private readonly folds: { conv1: ConvBnFold; dw: ConvBnFold[]; pw: ConvBnFold[] };

  constructor(opts: MobileNetV1Options = {}) {
    super();
    this.featureLayers = [...(opts.featureLayers ?? MOBILENET_V1_DEFAULT_TAPS)];
    const deepest = Math.max(0, ...this.featureLayers.map(tapBlock));
    const blocks = opts.blocks ?? Math.max(12, deepest);
    if (!Number.isInteger(blocks) || blocks < 1 || blocks > 13) throw new ConfigError(`mobilenet_v1: blocks ${blocks} not in 1..13`);
    if (deepest > blocks) throw new ConfigError(`mobilenet_v1: tap in block ${deepest} but only ${blocks} blocks built`);
    this.blocks = blocks;
    const strides: Record<string, number> = {};
    const channels: Record<string, number> = {};
    for (const [k, v] of Object.entries(MOBILENET_V1_TAPS.strides)) {
      if (tapBlock(k) <= blocks) {
        strides[k] = v;
        channels[k] = MOBILENET_V1_TAPS.channels[k];
      }
    }
    this.strides = strides;
    this.channels = channels;

    this.conv1 = this.addModule('conv1', new KerasConv2d(3, 32, 3, { stride: 2, padding: 'same' }));
    this.conv1Bn = this.addModule('conv1_bn', kerasBatchNorm(32));
    let c = 32;
    for (let b = 1; b <= blocks; b++) {
      this.dw.push(this.addModule(`conv_dw_${b}`, new KerasConv2d(c, c, 3, { stride: DW_STRIDES[b - 1], padding: 'same', depthwise: true })));
      this.dwBn.push(this.addModule(`conv_dw_${b}_bn`, kerasBatchNorm(c)));
      const out = PW_FILTERS[b - 1];
      this.pw.push(this.addModule(`conv_pw_${b}`, new KerasConv2d(c, out, 1, { padding: 'same' })));
      this.pwBn.push(this.addModule(`conv_pw_${b}_bn`, kerasBatchNorm(out)));
      c = out;
    }
    this.folds = {
      conv1: new ConvBnFold(this.conv1, this.conv1Bn, 'relu6'),
      dw: this.dw.map((conv, i) => new ConvBnFold(conv, this.dwBn[i], 'relu6')),
      pw: this.pw.map((conv, i) => new ConvBnFold(conv, this.pwBn[i], 'relu6')),
    };
  }

  get module(): Module {
    return this;
  }

  override dispose(): void {
    for (const f of [this.folds.conv1, ...this.folds.dw, ...this.folds.pw]) f.dispose();
    super.dispose();
  }

  /** Every ReLU6 output of the built network, on an already-normalised batch. */
  forward(x: tf.Tensor4D): Record<string, tf.Tensor4D> {
    return tf.tidy(() => {
      const out: Record<string, tf.Tensor4D> = {};
      let h = this.folds.conv1.call(x);
      out.conv1_relu = h;
      for (let i = 0; i < this.blocks; i++) {
        h = this.folds.dw[i].call(h);
        out[`conv_dw_${i + 1}_relu`] = h;
        h = this.folds.pw[i].call(h);
        out[`conv_pw_${i + 1}_relu`] = h;
      }
      return out;
    });
  }

  /** Frozen (Module.freeze): runs entirely off the gradient tape. */
  extract(x: tf.Tensor4D, layers: readonly string[] = this.featureLayers): Record<string, tf.Tensor4D> {
    return runFrozen(this, () => {
      const xn = normalizeInput(x, this.normalization);
      try {
        return pickFeatures(this.forward(xn), layers, this.name);
      } finally {
        xn.dispose();
      }
    });
  }
}
