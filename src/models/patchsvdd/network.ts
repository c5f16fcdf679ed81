import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../errors.js';
import { noGrad } from '../../nn/gradControl.js';
import { uniformInit } from '../../nn/init.js';
import { Conv2d } from '../../nn/layers/conv.js';
import { Linear } from '../../nn/layers/linear.js';
import { Layer, Module } from '../../nn/module.js';

/** Embedding size D (patchsvdd.md §2). */
export const EMBED_DIM = 64;
/** Patch side of f_small and of f_big (patchsvdd.md §2). */
export const SMALL_PATCH = 32;
export const BIG_PATCH = 64;
/** LeakyReLU slope of every hidden layer (official networks.py: F.leaky_relu(h, 0.1)). */
const SLOPE = 0.1;

/** (in, out, stride) of f_small's eight valid 3×3 convolutions: 32 → 15, 13, 11, 9, 7, 5, 3, 1 (patchsvdd.md §2). */
const SMALL_CONVS: readonly [number, number, number][] = [
  [3, 32, 2], [32, 64, 1], [64, 128, 1], [128, 128, 1], [128, 64, 1], [64, 32, 1], [32, 32, 1], [32, EMBED_DIM, 1],
];

/**
 * f_small (official `EncoderDeep`, names conv1..conv8): a 32×32×3 patch → 1×1×64, valid convs with
 * bias, LeakyReLU 0.1 after the first seven, tanh at the end; 360,832 parameters.
 *
 * Fully convolutional: on an H×W input it returns the embeddings of every 32×32 patch whose top-left
 * corner is on the stride-2 grid, ((H−32)/2 + 1)² of them, each computed from exactly the pixels
 * (and with exactly the arithmetic) of that patch encoded on its own — the receptive field is 31
 * pixels and no padding is involved. Dense scoring (scoring.ts) relies on this.
 */
export class PatchEncoderSmall extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly convs: Conv2d[];

  constructor() {
    super();
    this.convs = SMALL_CONVS.map(([cin, cout, stride], i) => this.addModule(`conv${i + 1}`, new Conv2d(cin, cout, 3, { stride, padding: 'valid' })));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = x;
      this.convs.forEach((c, i) => {
        h = c.call(h);
        h = (i < this.convs.length - 1 ? tf.leakyRelu(h, SLOPE) : tf.tanh(h)) as tf.Tensor4D;
      });
      return h;
    });
  }
}

/**
 * f_big (official `EncoderHier(64)`, names enc.*, conv1, conv2): the four 32×32 quadrants of a
 * 64×64 patch go through f_small (`enc`, shared weights), their embeddings are placed as a 2×2 map
 * in spatial order (official forward_hier: cat([h1, h2], W), cat([h3, h4], W), then cat along H),
 * then conv 64→128 k2 + LeakyReLU and conv 128→64 k1 + tanh. 401,984 parameters.
 */
export class PatchEncoderHier extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly enc: PatchEncoderSmall;
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;

  constructor() {
    super();
    this.enc = this.addModule('enc', new PatchEncoderSmall());
    this.conv1 = this.addModule('conv1', new Conv2d(EMBED_DIM, 128, 2, { padding: 'valid' }));
    this.conv2 = this.addModule('conv2', new Conv2d(128, EMBED_DIM, 1, { padding: 'valid' }));
  }

  /** [N, 64, 64, 3] → [N, 1, 1, 64]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    const [n, h, w, c] = x.shape;
    if (h !== BIG_PATCH || w !== BIG_PATCH) throw new ConfigError(`PatchEncoderHier: expects ${BIG_PATCH}×${BIG_PATCH} patches, got ${h}×${w}`);
    return tf.tidy(() => {
      const q = SMALL_PATCH;
      const quad = (r: number, col: number) => tf.slice(x, [0, r, col, 0], [n, q, q, c]);
      // Quadrants in official order: top-left, top-right, bottom-left, bottom-right, one f_small call.
      const hh = this.enc.call(tf.concat([quad(0, 0), quad(0, q), quad(q, 0), quad(q, q)], 0) as tf.Tensor4D);
      const [h1, h2, h3, h4] = tf.split(hh, 4, 0) as tf.Tensor4D[];
      return this.head(arrange2x2(h1, h2, h3, h4));
    });
  }

  /** conv1 + LeakyReLU + conv2 + tanh on 2×2 maps of f_small embeddings: [M, 2, 2, 64] → [M, 1, 1, 64]. */
  head(grid: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.tanh(this.conv2.call(tf.leakyRelu(this.conv1.call(grid), SLOPE) as tf.Tensor4D)) as tf.Tensor4D);
  }
}

/** [M, r, c, D] ×4 (top-left, top-right, bottom-left, bottom-right, each a 1×1 cell per row) → [M·r·c, 2, 2, D]. */
export function arrange2x2(tl: tf.Tensor4D, tr: tf.Tensor4D, bl: tf.Tensor4D, br: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const d = tl.shape[3];
    const flat = (t: tf.Tensor4D) => t.reshape([-1, 1, 1, d]);
    const top = tf.concat([flat(tl), flat(tr)], 2);
    const bottom = tf.concat([flat(bl), flat(br)], 2);
    return tf.concat([top, bottom], 1) as tf.Tensor4D;
  });
}

/**
 * The official `NormalizedLinear`: y = x Ŵ + b with Ŵ = W / ‖W‖ per input feature (norm over the
 * outputs), Ŵ computed under torch.no_grad — so W never receives a gradient and stays at its
 * Kaiming-uniform init; only b learns (patchsvdd.md §2, §6: reproduced for fidelity). W is a
 * non-trainable parameter (counted, saved, not given to the optimiser) and Ŵ is built off the tape.
 */
export class NormalizedLinear extends Layer<tf.Tensor, tf.Tensor> {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(readonly inFeatures: number, readonly outFeatures: number) {
    super();
    // kaiming_uniform_(a=√5) and the bias bound: both U(±1/√fan_in).
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.addParameter('weight', uniformInit([inFeatures, outFeatures], bound), 'linear', false);
    this.bias = this.addParameter('bias', uniformInit([outFeatures], bound));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      // torch weight [out, in], .norm(dim=0): over the outputs, one norm per input — axis 1 of our [in, out].
      const w = noGrad(() => tf.div(this.weight, tf.norm(this.weight, 'euclidean', 1, true)));
      return tf.add(tf.matMul(x.reshape([-1, this.inFeatures]) as tf.Tensor2D, w as tf.Tensor2D), this.bias);
    });
  }
}

/** The eight relative positions (row, col) of p2 w.r.t. p1, indexed by the class label (official pos_to_diff). */
export const POSITION_DIRECTIONS: readonly (readonly [number, number])[] = [
  [-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1],
];

/**
 * Position classifier C_K (official `PositionClassifier`, names fc1, fc2, fc3): h1 − h2 (64-d) →
 * Linear 128 + LeakyReLU → Linear 128 + LeakyReLU → NormalizedLinear 128 → 8 logits. 25,864 parameters.
 */
export class PositionClassifier extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly fc3: NormalizedLinear;

  constructor() {
    super();
    this.fc1 = this.addModule('fc1', new Linear(EMBED_DIM, 128));
    this.fc2 = this.addModule('fc2', new Linear(128, 128));
    this.fc3 = this.addModule('fc3', new NormalizedLinear(128, POSITION_DIRECTIONS.length));
  }

  /** Embeddings [N, …, 64] (any shape with N·64 values) → logits [N, 8]. */
  call(h1: tf.Tensor, h2: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => {
      const d = tf.sub(h1.reshape([-1, EMBED_DIM]), h2.reshape([-1, EMBED_DIM]));
      const a = tf.leakyRelu(this.fc1.call(d), SLOPE);
      const b = tf.leakyRelu(this.fc2.call(a), SLOPE);
      return this.fc3.call(b) as tf.Tensor2D;
    });
  }
}

/** Parameter counts of patchsvdd.md §2 (asserted in the tests). */
export const PATCHSVDD_PARAMS = { small: 360_832, hier: 401_984, classifier: 25_864, total: 453_712, updated: 451_664 } as const;
