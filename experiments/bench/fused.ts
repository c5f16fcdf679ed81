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
 *  - ResNet in eval mode (the frozen backbones: PatchCore's WRN50): every conv + BatchNorm pair
 *    folded into one tf.fused.conv2d (weights × γ/σ, bias β − μγ/σ, ReLU fused where it follows),
 *    so the 2–3 full-size elementwise passes after each conv disappear.
 * Numerics match the unfused layers to float32 rounding (checked by the bench's --fused run via
 * the training loss; PyTorch's cudnn/mkldnn BN uses the same closed form).
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../../src/nn/layers/conv.js';
import { BatchNorm2d } from '../../src/nn/layers/norm.js';
import { Bottleneck, ResNet } from '../../src/models/backbones/resnet.js';
import { maxPool2d } from '../../src/nn/layers/sequential.js';
import type { Sequential } from '../../src/nn/layers/sequential.js';

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

const dataIdKey = (ts: (tf.Tensor | null)[]): string =>
  ts.map((t) => (t ? String((t as unknown as { dataId: { id: number } }).dataId.id) : '-')).join(',');

const foldCache = new WeakMap<Conv2d, { key: string; w: tf.Tensor4D; b: tf.Tensor1D }>();

/** conv then eval-mode BN as one fused conv (+ ReLU when `relu`). */
function convBn(conv: Conv2d, bn: BatchNorm2d, x: tf.Tensor4D, relu: boolean): tf.Tensor4D {
  const key = dataIdKey([conv.weight, conv.bias, bn.weight, bn.bias, bn.runningMean, bn.runningVar]);
  let f = foldCache.get(conv);
  if (!f || f.key !== key) {
    f?.w.dispose();
    f?.b.dispose();
    const { w, b } = tf.tidy(() => {
      const scale = tf.mul(bn.weight, tf.rsqrt(tf.add(bn.runningVar, bn.eps)));
      let shift = tf.sub(bn.bias, tf.mul(bn.runningMean, scale));
      if (conv.bias) shift = tf.add(shift, tf.mul(conv.bias, scale));
      return { w: tf.keep(tf.mul(conv.weight, scale) as tf.Tensor4D), b: tf.keep(shift as tf.Tensor1D) };
    });
    f = { key, w, b };
    foldCache.set(conv, f);
  }
  const p = conv.pad;
  const same = conv.stride === 1 && p !== 'valid' && p[0] === p[1] && 2 * p[0] === conv.kernelSize - 1;
  const xp = same || p === 'valid' || (p[0] === 0 && p[1] === 0) ? x : tf.pad(x, [[0, 0], [p[0], p[0]], [p[1], p[1]], [0, 0]]);
  return tf.fused.conv2d({
    x: xp as tf.Tensor4D, filter: f.w, strides: conv.stride, pad: same ? 'same' : 'valid', bias: f.b,
    activation: relu ? 'relu' : 'linear',
  });
}

function fusedBottleneck(m: Bottleneck, x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    let out = convBn(m.conv1, m.bn1, x, true);
    out = convBn(m.conv2, m.bn2, out, true);
    out = convBn(m.conv3, m.bn3, out, false);
    let identity = x;
    if (m.downsample) {
      const [dconv, dbn] = [...(m.downsample as Sequential<tf.Tensor4D>).namedChildren()].map(([, c]) => c) as [Conv2d, BatchNorm2d];
      identity = convBn(dconv, dbn, x, false);
    }
    return tf.relu(tf.add(out, identity)) as tf.Tensor4D;
  });
}

let installed = false;
const restorers: (() => void)[] = [];

/** Undoes installFusedLayers (for A/B measurements in one process). */
export function uninstallFusedLayers(): void {
  while (restorers.length) (restorers.pop() as () => void)();
  installed = false;
}

/** Patches BatchNorm2d and Conv2d for this process; returns what was changed. */
export function installFusedLayers(): string {
  if (installed) return 'fused layers already installed';
  installed = true;
  const saved = [BatchNorm2d.prototype.forward, Conv2d.prototype.forward, Bottleneck.prototype.forward, ResNet.prototype.forward] as const;
  restorers.push(() => {
    BatchNorm2d.prototype.forward = saved[0];
    Conv2d.prototype.forward = saved[1];
    Bottleneck.prototype.forward = saved[2];
    ResNet.prototype.forward = saved[3];
  });
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
  const bottleneckForward = Bottleneck.prototype.forward;
  Bottleneck.prototype.forward = function (this: Bottleneck, x: tf.Tensor4D): tf.Tensor4D {
    return this.isTraining ? bottleneckForward.call(this, x) : fusedBottleneck(this, x);
  };
  const resnetForward = ResNet.prototype.forward;
  ResNet.prototype.forward = function (this: ResNet, x: tf.Tensor4D) {
    if (this.isTraining) return resnetForward.call(this, x);
    return tf.tidy(() => {
      const out: Record<string, tf.Tensor4D> = {};
      let h = maxPool2d(convBn(this.conv1, this.bn1, x, true), 3, 2, 1);
      this.stages.forEach((stage, i) => {
        h = stage.call(h);
        out[this.builtStages[i]] = h;
      });
      return out;
    });
  };
  return 'BatchNorm2d: one customGrad op (closed-form backward), eval scale/shift cached; Conv2d stride-1 odd-kernel: tfjs \'same\' padding (no tf.pad copy); ResNet eval: conv+BN(+ReLU) folded into tf.fused.conv2d';
}
