/**
 * Prototype for `npm run bench -- --fused`: what fusing the layers would buy, measured before
 * anyone changes src/nn. Patches, inside the benchmark's child process only:
 *  - BatchNorm2d (training): one tf.customGrad op. The forward keeps x̂ = (x − μ)/σ and 1/σ;
 *    the backward is the closed form dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)), dγ = Σ dy·x̂,
 *    dβ = Σ dy. tfjs' autodiff of the op chain (moments, sub, div, mul, add) instead records
 *    ~6 full-size tensors per layer and ~15 elementwise kernels in the backward.
 *  - BatchNorm2d (eval): y = x·scale + shift with scale/shift computed once per weights version.
 *  - Conv2d with stride 1 and symmetric 'same'-sized padding: tfjs' 'same' (no tf.pad copy of
 *    the input, which the tape would also keep).
 * Numerics match the unfused layers to float32 rounding (checked by the bench's --fused run via
 * the training loss; PyTorch's cudnn/mkldnn BN uses the same closed form).
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../../src/nn/layers/conv.js';
import { BatchNorm2d } from '../../src/nn/layers/norm.js';

function bnTrain(bn: BatchNorm2d, x: tf.Tensor4D): tf.Tensor4D {
  const c = bn.numFeatures;
  const m = x.size / c;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, gamma, beta] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const mean = tf.mean(xi, [0, 1, 2]);
    const xc = tf.sub(xi, mean);
    const variance = tf.mean(tf.square(xc), [0, 1, 2]);
    const inv = tf.rsqrt(tf.add(variance, bn.eps));
    const xhat = tf.mul(xc, inv);
    save([xhat, inv, gamma]);
    // Running statistics: detached state, as BatchNorm2d does it.
    tf.tidy(() => {
      const mo = bn.momentum;
      const unbiased = m > 1 ? m / (m - 1) : 1;
      bn.runningMean.assign(tf.add(tf.mul(bn.runningMean, 1 - mo), tf.mul(mean, mo)));
      bn.runningVar.assign(tf.add(tf.mul(bn.runningVar, 1 - mo), tf.mul(variance, mo * unbiased)));
      bn.numBatchesTracked.assign(tf.add(bn.numBatchesTracked, 1));
    });
    const value = tf.add(tf.mul(xhat, gamma), beta);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sinv, sg] = saved;
        const dbeta = tf.sum(dy, [0, 1, 2]);
        const dgamma = tf.sum(tf.mul(dy, sx), [0, 1, 2]);
        // dx = γ/σ · (dy − dβ/M − x̂·dγ/M)
        const dx = tf.mul(tf.sub(tf.sub(dy, tf.div(dbeta, m)), tf.mul(sx, tf.div(dgamma, m))), tf.mul(sg, sinv));
        return [dx, dgamma, dbeta];
      },
    };
  });
  return op(x, bn.weight, bn.bias) as tf.Tensor4D;
}

const evalCache = new WeakMap<BatchNorm2d, { key: string; scale: tf.Tensor; shift: tf.Tensor }>();

function bnEval(bn: BatchNorm2d, x: tf.Tensor4D): tf.Tensor4D {
  // Variables keep their id across assign(); key on the data ids so a reload invalidates.
  const key = [bn.weight, bn.bias, bn.runningMean, bn.runningVar].map((v) => (v as unknown as { dataId: { id: number } }).dataId.id ?? '').join(',');
  let e = evalCache.get(bn);
  if (!e || e.key !== key) {
    e?.scale.dispose();
    e?.shift.dispose();
    const scale = tf.keep(tf.tidy(() => tf.mul(bn.weight, tf.rsqrt(tf.add(bn.runningVar, bn.eps)))));
    const shift = tf.keep(tf.tidy(() => tf.sub(bn.bias, tf.mul(bn.runningMean, scale))));
    e = { key, scale, shift };
    evalCache.set(bn, e);
  }
  return tf.add(tf.mul(x, e.scale), e.shift) as tf.Tensor4D;
}

let installed = false;

/** Patches BatchNorm2d and Conv2d for this process; returns what was changed. */
export function installFusedLayers(): string {
  if (installed) return 'fused layers already installed';
  installed = true;
  const bnForward = BatchNorm2d.prototype.forward;
  BatchNorm2d.prototype.forward = function (this: BatchNorm2d, x: tf.Tensor4D): tf.Tensor4D {
    if (x.rank !== 4) return bnForward.call(this, x);
    return tf.tidy(() => (this.isTraining ? bnTrain(this, x) : bnEval(this, x)));
  };
  const convForward = Conv2d.prototype.forward;
  Conv2d.prototype.forward = function (this: Conv2d, x: tf.Tensor4D): tf.Tensor4D {
    const p = this.pad;
    const same = this.stride === 1 && this.dilation === 1 && this.groups === 1 && p !== 'valid'
      && p[0] === p[1] && 2 * p[0] === this.kernelSize - 1;
    if (!same) return convForward.call(this, x);
    return tf.tidy(() => {
      const y = tf.conv2d(x, this.weight as tf.Tensor4D, 1, 'same');
      return this.bias ? (tf.add(y, this.bias) as tf.Tensor4D) : y;
    });
  };
  return 'BatchNorm2d: one customGrad op (closed-form backward), eval scale/shift cached; Conv2d stride-1 odd-kernel: tfjs \'same\' padding (no tf.pad copy)';
}
