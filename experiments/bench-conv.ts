/**
 * Microbenchmark: GMAC/s of forward conv, filter gradient and input gradient on the wasm backend
 * (plus conv2dTranspose's forward and a Linear layer's matMul gradients),
 * before (wasm's own kernels) and after registerWasmTrainingKernels() (gradients as forward convs).
 *
 *   npx tsx experiments/bench-conv.ts [--quick] [--cpu-ref]
 *
 * MACs are the forward conv's N·Ho·Wo·Co·(Ci/groups)·kh·kw for all three, so the numbers compare
 * directly. "old" filter grad: wasm has no Conv2DBackpropFilter kernel, so training there failed;
 * with --cpu-ref we print the cpu backend's kernel (the only fallback) for scale: one call, slow.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { pathToFileURL } from 'node:url';

export interface Case {
  name: string;
  n: number;
  h: number;
  c: number;
  o: number;
  k: number;
  s: number;
  depthwise?: boolean;
}

const quick = process.argv.includes('--quick');
const cpuRef = process.argv.includes('--cpu-ref');
/** Typical shapes (batch 4); also the conv section of experiments/bench.ts. */
export const CASES: Case[] = [
  { name: '64x64x64->64 3x3 s1', n: 4, h: 64, c: 64, o: 64, k: 3, s: 1 },
  { name: '32x32x128->128 3x3 s1', n: 4, h: 32, c: 128, o: 128, k: 3, s: 1 },
  { name: '128x128x3->64 7x7 s2', n: 4, h: 128, c: 3, o: 64, k: 7, s: 2 },
  { name: '64x64x64->128 3x3 s2', n: 4, h: 64, c: 64, o: 128, k: 3, s: 2 },
  { name: '64x64x64->64 1x1 s2', n: 4, h: 64, c: 64, o: 64, k: 1, s: 2 },
  { name: 'dw 64x64x64 3x3 s1', n: 4, h: 64, c: 64, o: 64, k: 3, s: 1, depthwise: true },
  { name: 'dw 64x64x64 3x3 s2', n: 4, h: 64, c: 64, o: 64, k: 3, s: 2, depthwise: true },
];

/** Seconds per call: one warm-up, then repeat until `budget` seconds (at least one timed call). */
function time(f: () => tf.Tensor, budget = quick ? 0.3 : 1.5, maxReps = 50): number {
  f().dispose();
  let reps = 0;
  const t0 = performance.now();
  do {
    const r = f();
    r.dataSync();
    r.dispose();
    reps++;
  } while (performance.now() - t0 < budget * 1000 && reps < maxReps);
  return (performance.now() - t0) / 1000 / reps;
}

/** One timed call, no warm-up: for the slow reference kernels. */
function timeOnce(f: () => tf.Tensor): number {
  const t0 = performance.now();
  const r = f();
  r.dataSync();
  r.dispose();
  return (performance.now() - t0) / 1000;
}

function gmacs(macs: number, sec: number): string {
  return (macs / sec / 1e9).toFixed(2).padStart(7);
}

async function main(): Promise<void> {
  const info = await initBackend('wasm');
  console.log(`tfjs ${info.tfjsVersion}, backend ${tf.getBackend()}, simd=${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads=${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}`);
  // wasm's own kernels, captured before registerWasmTrainingKernels() replaces them.
  const native = new Map<string, tf.KernelConfig>();
  for (const k of ['Conv2DBackpropInput', 'BatchMatMul']) {
    const cfg = tf.getKernel(k, 'wasm');
    if (cfg == null) throw new Error(`wasm ${k} not registered`);
    native.set(k, cfg);
  }
  registerWasmTrainingKernels();
  const withNative = <T>(kernelName: string, f: () => T): T => {
    const ours = tf.getKernel(kernelName, 'wasm');
    const old = native.get(kernelName);
    if (ours == null || old == null) throw new Error(`no ${kernelName}`);
    tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel(old);
    try {
      return f();
    } finally {
      tf.unregisterKernel(kernelName, 'wasm');
      tf.registerKernel(ours);
    }
  };
  const withNativeInputKernel = <T>(f: () => T): T => withNative('Conv2DBackpropInput', f);

  console.log('GMAC/s (batch 4)              forward | filter-grad old / new | input-grad old / new');
  for (const cs of quick ? CASES.slice(0, 3) : CASES) {
    const p = cs.k >> 1;
    const mult = cs.o / cs.c;
    const wShape: [number, number, number, number] = cs.depthwise ? [cs.k, cs.k, cs.c, mult] : [cs.k, cs.k, cs.c, cs.o];
    const x = tf.randomNormal([cs.n, cs.h, cs.h, cs.c]) as tf.Tensor4D;
    const xp = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]) as tf.Tensor4D;
    const w = tf.randomNormal(wShape) as tf.Tensor4D;
    const fwd = (): tf.Tensor4D => (cs.depthwise
      ? tf.depthwiseConv2d(xp, w, cs.s, 'valid')
      : tf.conv2d(xp, w, cs.s, 'valid'));
    const dy = tf.randomNormal(fwd().shape) as tf.Tensor4D;
    const [, ho, wo] = dy.shape;
    const macs = cs.n * ho * wo * cs.o * (cs.depthwise ? 1 : cs.c) * cs.k * cs.k;
    const attrs = { strides: cs.s, pad: 'valid' as const, dataFormat: 'NHWC' as const, dilations: 1 };
    const filterGrad = (): tf.Tensor => tf.engine().runKernel(
      cs.depthwise ? 'DepthwiseConv2dNativeBackpropFilter' : 'Conv2DBackpropFilter',
      { x: xp, dy }, { ...attrs, filterShape: wShape }) as tf.Tensor;
    const inputGrad = (): tf.Tensor => tf.engine().runKernel(
      cs.depthwise ? 'DepthwiseConv2dNativeBackpropInput' : 'Conv2DBackpropInput',
      { dy, filter: w }, { ...attrs, inputShape: xp.shape }) as tf.Tensor;

    const tFwd = time(fwd);
    const tFilterNew = time(filterGrad);
    const tInputNew = time(inputGrad);
    let oldInput = '    n/a';
    let oldFilter = 'missing';
    if (!cs.depthwise) {
      oldInput = gmacs(macs, withNativeInputKernel(() => timeOnce(inputGrad)));
    }
    if (cpuRef) {
      // Reference only: the cpu backend's kernel (wasm has none). One call, data copied to cpu first.
      await tf.setBackend('cpu');
      const xc = tf.tensor(xp.dataSync(), xp.shape);
      const dyc = tf.tensor(dy.dataSync(), dy.shape);
      const t = timeOnce(() => tf.engine().runKernel(
        cs.depthwise ? 'DepthwiseConv2dNativeBackpropFilter' : 'Conv2DBackpropFilter',
        { x: xc, dy: dyc }, { ...attrs, filterShape: wShape }) as tf.Tensor);
      oldFilter = `${gmacs(macs, t)}*`;
      tf.dispose([xc, dyc]);
      await tf.setBackend('wasm');
    }
    console.log(`${cs.name.padEnd(28)} ${gmacs(macs, tFwd)} | ${oldFilter} / ${gmacs(macs, tFilterNew)} | ${oldInput} / ${gmacs(macs, tInputNew)}`);
    tf.dispose([x, xp, w, dy]);
  }

  // conv2dTranspose forward (decoder upsampling) is the Conv2DBackpropInput kernel.
  {
    const x = tf.randomNormal([4, 32, 32, 64]) as tf.Tensor4D;
    const w = tf.randomNormal([4, 4, 32, 64]) as tf.Tensor4D;
    const up = (): tf.Tensor => tf.conv2dTranspose(x, w, [4, 66, 66, 32], 2, 'valid');
    const macs = 4 * 32 * 32 * 64 * 32 * 16;
    const tNew = time(up);
    const tOld = withNativeInputKernel(() => timeOnce(up));
    console.log(`${'convT 32x32x64->64x64x32 k4s2'.padEnd(28)} forward old ${gmacs(macs, tOld)} / new ${gmacs(macs, tNew)}`);
    tf.dispose([x, w]);
  }
  // Linear layer [P, Din] x [Din, Dout]: backward is dX = dY·Wᵀ (transposeB), dW = Xᵀ·dY (transposeA).
  for (const [p, din, dout] of quick ? [[4096, 256, 256]] : [[4096, 256, 256], [16384, 64, 64], [1024, 1024, 512]]) {
    const x = tf.randomNormal([p, din]) as tf.Tensor2D;
    const w = tf.randomNormal([din, dout]) as tf.Tensor2D;
    const dy = tf.randomNormal([p, dout]) as tf.Tensor2D;
    const macs = p * din * dout;
    const fwdT = time(() => tf.matMul(x, w));
    const dxNew = time(() => tf.matMul(dy, w, false, true));
    const dwNew = time(() => tf.matMul(x, dy, true, false));
    const dxOld = withNative('BatchMatMul', () => time(() => tf.matMul(dy, w, false, true), 0.3, 3));
    const dwOld = withNative('BatchMatMul', () => time(() => tf.matMul(x, dy, true, false), 0.3, 3));
    console.log(`${`matMul ${p}x${din}->${dout}`.padEnd(28)} ${gmacs(macs, fwdT)} | dW old ${gmacs(macs, dwOld)} / new ${gmacs(macs, dwNew)} | dX old ${gmacs(macs, dxOld)} / new ${gmacs(macs, dxNew)}`);
    tf.dispose([x, w, dy]);
  }
  if (cpuRef) console.log('* old filter-grad = cpu backend kernel (wasm has no Conv2DBackpropFilter / depthwise backprop kernels)');
}

// Run only when executed directly (experiments/bench.ts imports CASES).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
