import * as tf from '@tensorflow/tfjs';
import { Layer, runFrozen } from '../module.js';
import { layerFusionEnabled } from '../fusion.js';
import { affineReluGrad, channelAffine, channelDot } from '../kernels/fused-ops.js';
import { withModuleScope } from '../scope.js';
import { BatchNormBase } from './batchNormBase.js';

/**
 * BatchNorm over the channel (last) axis of NHWC tensors, PyTorch semantics: training normalises
 * with the biased batch variance and updates running_var with the unbiased one, momentum 0.1.
 * Buffers carry torchvision's names, num_batches_tracked included, so checkpoints load strictly.
 */
export class BatchNorm2d extends BatchNormBase<tf.Tensor4D, tf.Tensor4D> {
  forward(x: tf.Tensor4D): tf.Tensor4D {
    if (!this.training) {
      // C-sized scale/shift recomputed per call (4 tiny kernels): cheaper than any cache check
      // that must notice weight updates, and it keeps gradients to γ/β in eval mode.
      return tf.tidy(() => {
        const scale = tf.mul(this.weight, tf.rsqrt(tf.add(this.runningVar, this.eps)));
        const shift = tf.sub(this.bias, tf.mul(this.runningMean, scale));
        return tf.add(tf.mul(x, scale), shift) as tf.Tensor4D;
      });
    }
    if (x.rank === 4 && layerFusionEnabled()) return tf.tidy(() => this.fusedTrainingForward(x, false));
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      this.updateRunningStats(mean, variance, x.size / this.numFeatures);
      const xn = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(xn, this.weight), this.bias) as tf.Tensor4D;
    });
  }

  /**
   * relu(this(x)), as this layer followed by torch.nn.ReLU (Sequential fuses the pair, see
   * runLayers). While training with layer fusion the ReLU joins the customGrad below: its
   * gradient mask is recomputed from the saved xc, so neither the BatchNorm output nor the
   * ReLU's input is kept for the backward pass (one full-size tensor less per layer).
   */
  callWithRelu(x: tf.Tensor4D): tf.Tensor4D {
    return runFrozen(this, () => withModuleScope(this.path || this.constructor.name, this.constructor.name, () => {
      if (this.training && x.rank === 4 && layerFusionEnabled()) return tf.tidy(() => this.fusedTrainingForward(x, true));
      return tf.tidy(() => tf.relu(this.forward(x)));
    }));
  }

  /**
   * Training forward as one tf.customGrad op. Forward: xc = x − μ, σ = sqrt(var + eps) with the
   * biased batch variance, y = xc·(γ/σ) + β. The tape keeps only xc, 1/σ and γ; the backward is
   * the closed form (M = N·H·W values per channel, x̂ = xc/σ):
   *     dβ = Σ dy,   dγ = Σ dy·x̂,   dx = γ/σ · (dy − dβ/M − x̂·dγ/M)
   * instead of tfjs' autodiff of the op chain, which records ~6 full-size tensors per layer and
   * runs ~15 elementwise kernels backwards. Same values as the op chain to float32 rounding, same
   * running statistics as the op chain to float32 rounding (on wasm, Σ xc² runs as one ChannelDot
   * kernel rather than square + mean). With `relu`, z = max(0, y) and dy = dz·[xc·(γ/σ) + β > 0].
   */
  private fusedTrainingForward(x: tf.Tensor4D, relu: boolean): tf.Tensor4D {
    const count = x.size / this.numFeatures;
    const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [xi, gamma, beta] = args as tf.Tensor[];
      const save = args[3] as tf.GradSaveFunc;
      const mean = tf.mean(xi, [0, 1, 2]);
      // xc = x·1 + x·0 − μ: exactly x − μ, as one heap kernel on wasm (tfjs' broadcast Sub is slower)
      const ones = tf.onesLike(mean) as tf.Tensor1D;
      const zeros = tf.zerosLike(mean) as tf.Tensor1D;
      const xc = channelAffine(xi, ones, xi, zeros, tf.neg(mean) as tf.Tensor1D);
      const variance = channelDot(xc, xc, true);
      this.updateRunningStats(mean, variance, count);
      const inv = tf.div(1, tf.sqrt(tf.add(variance, this.eps)));
      save([xc, inv, gamma, beta]);
      // On wasm each full-size pass below is one kernel (fused-ops.ts): y = xc·(γ/σ) + β
      const value = channelAffine(xc, tf.mul(gamma, inv) as tf.Tensor1D, xc, zeros, beta as tf.Tensor1D, relu);
      return {
        value,
        // tidy: tfjs runs a customGrad's gradFunc in the backward pass's scope, so the masked dy
        // (full size) would otherwise live until the whole backward pass ends
        gradFunc: (dz: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
          const [sxc, sinv, sgamma, sbeta] = saved;
          const s = tf.mul(sgamma, sinv) as tf.Tensor1D; // γ/σ
          const dy = relu ? affineReluGrad(dz, sxc, s, sbeta as tf.Tensor1D) : dz;
          const dbeta = tf.sum(dy, [0, 1, 2]) as tf.Tensor1D;
          // Σ dy·x̂ = (Σ dy·xc)/σ
          const dgamma = tf.mul(channelDot(dy, sxc), sinv) as tf.Tensor1D;
          // dx = s·dy + xc·(−s·(dγ/σ)/M) + (−s·dβ/M)
          const t = tf.neg(tf.mul(s, tf.div(tf.mul(dgamma, sinv), count))) as tf.Tensor1D;
          const k = tf.neg(tf.mul(s, tf.div(dbeta, count))) as tf.Tensor1D;
          const dx = channelAffine(dy, s, sxc, t, k);
          return [dx, dgamma, dbeta];
        }),
      };
    });
    return op(x, this.weight, this.bias) as tf.Tensor4D;
  }
}

/** LayerNorm over the last axis (ViT/DINO blocks), PyTorch names `weight`, `bias`. */
export class LayerNorm extends Layer<tf.Tensor, tf.Tensor> {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.addParameter('weight', tf.ones([dim]));
    this.bias = this.addParameter('bias', tf.zeros([dim]));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      const xn = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(xn, this.weight), this.bias);
    });
  }
}

/** GroupNorm over NHWC (diffusion U-Nets), PyTorch names `weight`, `bias`. */
export class GroupNorm extends Layer<tf.Tensor4D, tf.Tensor4D> {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.addParameter('weight', tf.ones([numChannels]));
    this.bias = this.addParameter('bias', tf.zeros([numChannels]));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      const g = this.numGroups;
      const xg = tf.reshape(x, [n, h * w, g, c / g]);
      const { mean, variance } = tf.moments(xg, [1, 3], true);
      const xn = tf.div(tf.sub(xg, mean), tf.sqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(tf.reshape(xn, [n, h, w, c]), this.weight), this.bias) as tf.Tensor4D;
    });
  }
}
