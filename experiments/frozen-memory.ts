/**
 * What a frozen backbone saves during a training step (src/nn/gradControl.ts, Module.freeze):
 * resnet18 up to layer3 in eval mode feeding a trainable 1×1 conv head on layer2; prints the
 * tape nodes and the bytes held at the end of the forward pass (what the backward pass keeps)
 * with the backbone's parameters merely non-trainable, frozen, and run under noGrad.
 *   npx tsx experiments/frozen-memory.ts          (SIZE=128 BATCH=4 by default)
 */
import * as tf from '@tensorflow/tfjs';
import { setupRuntime } from '../src/runtime.js';
import { ResNet } from '../src/models/backbones/resnet.js';
import { Conv2d } from '../src/nn/layers/conv.js';
import { activeTapeLength, noGrad } from '../src/nn/gradControl.js';
import { setInitSeed } from '../src/nn/init.js';

await setupRuntime('wasm', (l) => console.log(l));
setInitSeed(0);
const size = Number(process.env.SIZE ?? 128);
const batch = Number(process.env.BATCH ?? 4);
const backbone = new ResNet('resnet18', { upTo: 'layer3', featureLayers: ['layer2', 'layer3'] });
backbone.eval();
const head = new Conv2d(128, 1, 1);
const x = tf.randomUniform([batch, size, size, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
function step(mode: string): void {
  const start = tf.memory().numBytes;
  let tape = 0;
  let held = 0;
  let peak = 0;
  const t0 = performance.now();
  tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const feats = mode.startsWith('noGrad') ? noGrad(() => backbone.extract(x)) : backbone.extract(x);
      const out = tf.mean(tf.square(head.call(feats.layer2))) as tf.Scalar;
      tape = activeTapeLength();
      held = tf.memory().numBytes - start;
      return out;
    }, head.trainableVariables());
    peak = tf.memory().numBytes - start;
    void value; void grads;
  });
  const ms = performance.now() - t0;
  console.log(`${mode.padEnd(28)} tape nodes ${String(tape).padStart(4)}  bytes held at end of forward ${(held / 2 ** 20).toFixed(1).padStart(7)} MiB  after backward ${(peak / 2 ** 20).toFixed(1)} MiB  step ${ms.toFixed(0)} ms`);
}
backbone.setTrainable(false);
step('first call (builds caches)'); step('setTrainable(false) only');
backbone.freeze();
step('freeze()');
backbone.unfreeze(); backbone.setTrainable(false);
step('noGrad(() => extract(x))');
console.log('numTensors at end', tf.memory().numTensors);
