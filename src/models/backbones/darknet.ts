import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { Module, runFrozen } from '../../nn/module.js';
import { BatchNorm2d } from '../../nn/layers/norm.js';
import { ConvBnFold } from '../../nn/layers/fold.js';
import { UNIT_NORMALIZATION, normalizeInput, pickFeatures, type FeatureExtractor, type Normalization } from './common.js';
import { KerasConv2d, kerasBatchNorm, kerasMaxPoolSame } from './keras.js';

/**
 * Tiny Darknet (Redmon), as the ml5 TF.js Layers model (Keras 2.1.6): 16 convs without bias,
 * each followed by BatchNormalization (eps 1e-3) and LeakyReLU(0.1) except the last (classifier,
 * with bias); 2x2/2 'same' max-pools after conv 1, 2, 6 and 10. Input RGB in [0, 1].
 *
 * Children carry the Keras layer names (conv2d_k, batch_normalization_k) so the model.json
 * weights map one to one. Taps are the LeakyReLU outputs `leaky_re_lu_k` (k = 1..15):
 * stride 1 (k=1), 2 (k=2), 4 (k=3..6), 8 (k=7..10), 16 (k=11..15).
 * Default taps: leaky_re_lu_10 (256 ch, stride 8) and leaky_re_lu_14 (512 ch, stride 16); the
 * network is built only up to the deepest tap (conv2d_15 at most) unless `includeTop`.
 */

/** [filters, kernel] of conv2d_1..16, and whether a max-pool follows. */
const DARKNET_CONVS: readonly { filters: number; kernel: number; poolAfter: boolean }[] = [
  { filters: 16, kernel: 3, poolAfter: true },
  { filters: 32, kernel: 3, poolAfter: true },
  { filters: 16, kernel: 1, poolAfter: false },
  { filters: 128, kernel: 3, poolAfter: false },
  { filters: 16, kernel: 1, poolAfter: false },
  { filters: 128, kernel: 3, poolAfter: true },
  { filters: 32, kernel: 1, poolAfter: false },
  { filters: 256, kernel: 3, poolAfter: false },
  { filters: 32, kernel: 1, poolAfter: false },
  { filters: 256, kernel: 3, poolAfter: true },
  { filters: 64, kernel: 1, poolAfter: false },
  { filters: 512, kernel: 3, poolAfter: false },
  { filters: 64, kernel: 1, poolAfter: false },
  { filters: 512, kernel: 3, poolAfter: false },
  { filters: 128, kernel: 1, poolAfter: false },
  { filters: 1000, kernel: 1, poolAfter: false },
];

export const TINY_DARKNET_DEFAULT_TAPS = ['leaky_re_lu_10', 'leaky_re_lu_14'] as const;

function tapInfo(): { strides: Record<string, number>; channels: Record<string, number> } {
  const strides: Record<string, number> = {};
  const channels: Record<string, number> = {};
  let stride = 1;
  DARKNET_CONVS.slice(0, 15).forEach((c, i) => {
    strides[`leaky_re_lu_${i + 1}`] = stride;
    channels[`leaky_re_lu_${i + 1}`] = c.filters;
    if (c.poolAfter) stride *= 2;
  });
  return { strides, channels };
}

export const TINY_DARKNET_TAPS = tapInfo();

export interface TinyDarknetOptions {
  featureLayers?: readonly string[];
  /** Build conv2d_16 (1000-class 1x1 conv with bias) and global average pooling: `logits`. */
  includeTop?: boolean;
}

export class TinyDarknet extends Module implements FeatureExtractor {
  readonly name = 'tiny_darknet';
  readonly featureLayers: readonly string[];
  readonly strides: Readonly<Record<string, number>> = TINY_DARKNET_TAPS.strides;
  readonly channels: Readonly<Record<string, number>> = TINY_DARKNET_TAPS.channels;
  readonly normalization: Normalization = UNIT_NORMALIZATION;
  readonly convs: KerasConv2d[] = [];
  readonly bns: BatchNorm2d[] = [];
  readonly top: KerasConv2d | null = null;
  /** conv+BN+LeakyReLU(0.1) units, folded into fused convs in eval mode (src/nn/layers/fold.ts). */
  private readonly folds: ConvBnFold[] = [];
  /** Number of conv+BN+LeakyReLU units built (1..15). */
  readonly depth: number;

  constructor(opts: TinyDarknetOptions = {}) {
    super();
    this.featureLayers = [...(opts.featureLayers ?? TINY_DARKNET_DEFAULT_TAPS)];
    let depth = 0;
    for (const f of this.featureLayers) {
      const m = /^leaky_re_lu_(\d+)$/.exec(f);
      const k = m ? Number(m[1]) : 0;
      if (k < 1 || k > 15) throw new ConfigError(`tiny_darknet: unknown tap '${f}' (leaky_re_lu_1 .. leaky_re_lu_15)`);
      depth = Math.max(depth, k);
    }
    if (opts.includeTop) depth = 15;
    this.depth = depth;
    let inC = 3;
    for (let i = 0; i < depth; i++) {
      const c = DARKNET_CONVS[i];
      this.convs.push(this.addModule(`conv2d_${i + 1}`, new KerasConv2d(inC, c.filters, c.kernel, { padding: 'same' })));
      this.bns.push(this.addModule(`batch_normalization_${i + 1}`, kerasBatchNorm(c.filters)));
      this.folds.push(new ConvBnFold(this.convs[i], this.bns[i], 'leakyrelu', 0.1));
      inC = c.filters;
    }
    if (opts.includeTop) this.top = this.addModule('conv2d_16', new KerasConv2d(inC, 1000, 1, { padding: 'same', bias: true }));
  }

  get module(): Module {
    return this;
  }

  override dispose(): void {
    for (const f of this.folds) f.dispose();
    super.dispose();
  }

  /** LeakyReLU outputs of every built unit, on an already-normalised batch. */
  forward(x: tf.Tensor4D): Record<string, tf.Tensor4D> {
    return tf.tidy(() => {
      const out: Record<string, tf.Tensor4D> = {};
      let h = x;
      for (let i = 0; i < this.depth; i++) {
        h = this.folds[i].call(h);
        out[`leaky_re_lu_${i + 1}`] = h;
        if (DARKNET_CONVS[i].poolAfter) h = kerasMaxPoolSame(h, 2, 2);
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

  /** ImageNet logits [N, 1000] (Darknet class order), needs includeTop. */
  logits(x: tf.Tensor4D): tf.Tensor2D {
    const top = this.top;
    if (!top) throw new ConfigError('tiny_darknet: logits need includeTop');
    return tf.tidy(() => tf.mean(top.call(this.forward(x).leaky_re_lu_15), [1, 2]) as tf.Tensor2D);
  }
}
