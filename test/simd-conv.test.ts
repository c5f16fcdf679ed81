import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { installSimdConvKernels, simdCapacityFallbacks, simdConvEngine, uninstallSimdConvKernels } from '../src/nn/kernels/conv2d-simd.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { isOurs } from '../src/nn/kernels/kernel-util.js';
import { EngineCapacityError, GemmEngine, tapAlignedChunk, type ConvGeometry2d } from '../src/nn/simd/gemmEngine.js';
import { gemmModuleBytes } from '../src/nn/simd/gemmModule.js';

/** Deterministic pseudo-random values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-12);
}

type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;
interface Case {
  x: [number, number, number, number];
  f: [number, number, number, number];
  stride: number | [number, number];
  dilation: number;
  pad: Pad;
  /** FusedConv2D with bias and this activation; undefined = plain Conv2D */
  act?: 'linear' | 'relu' | 'elu';
}

// Geometries that reach every path of the engine: im2col runs (contiguous and per tap), zero
// padding on every side, asymmetric explicit padding, 'same' with stride 2 (tfjs pads
// asymmetrically), dilation, the 1×1 direct path with a row count that is not a multiple of 4,
// output channels 1..17 (partial panels, scalar tails), non-square odd images, batch > 1,
// 7×7 stride-2 stems, and a kernel-sized "filter" as the gradient convolutions use.
const CASES: Case[] = [
  { x: [2, 9, 11, 5], f: [3, 3, 5, 7], stride: 1, dilation: 1, pad: 'same' },
  { x: [1, 13, 10, 6], f: [5, 3, 6, 9], stride: 2, dilation: 1, pad: 'valid' },
  { x: [2, 16, 15, 8], f: [3, 3, 8, 17], stride: 1, dilation: 2, pad: [[0, 0], [2, 2], [2, 2], [0, 0]] },
  { x: [2, 17, 15, 4], f: [7, 7, 4, 8], stride: 2, dilation: 1, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] },
  { x: [1, 12, 12, 3], f: [3, 3, 3, 16], stride: 2, dilation: 1, pad: 'same' },
  { x: [1, 11, 9, 16], f: [3, 3, 16, 8], stride: 1, dilation: 1, pad: [[0, 0], [0, 2], [1, 0], [0, 0]] },
  { x: [3, 7, 9, 24], f: [1, 1, 24, 12], stride: 1, dilation: 1, pad: 'valid' },
  { x: [2, 10, 10, 32], f: [1, 1, 32, 1], stride: 2, dilation: 1, pad: 'valid' },
  { x: [1, 20, 20, 32], f: [3, 3, 32, 64], stride: 1, dilation: 1, pad: 'same' },
  { x: [4, 18, 18, 2], f: [16, 16, 2, 3], stride: 1, dilation: 1, pad: 'valid' },
  { x: [2, 9, 11, 5], f: [3, 3, 5, 7], stride: 1, dilation: 1, pad: 'same', act: 'relu' },
  { x: [1, 16, 16, 8], f: [3, 3, 8, 12], stride: 2, dilation: 1, pad: 'same', act: 'linear' },
  { x: [1, 16, 16, 8], f: [3, 3, 8, 12], stride: 1, dilation: 1, pad: 'same', act: 'elu' },
  // implicit GEMM with channels not a multiple of 4 (packA's scalar tail)
  { x: [2, 12, 10, 11], f: [3, 3, 11, 9], stride: 1, dilation: 1, pad: 'same' },
  // K in two chunks: im2col (K = 2304 > 2048 for 64 outputs), then implicit (two tap chunks)
  { x: [1, 7, 7, 256], f: [3, 3, 256, 64], stride: 2, dilation: 1, pad: 'same' },
  { x: [1, 20, 20, 256], f: [3, 3, 256, 64], stride: 1, dilation: 1, pad: 'same' },
  // few rows, many panels: blocks split by panels too (the last panel partial), bias at the offset
  { x: [1, 8, 8, 96], f: [3, 3, 96, 136], stride: 1, dilation: 1, pad: 'same', act: 'relu' },
  { x: [1, 8, 8, 48], f: [3, 3, 48, 200], stride: 1, dilation: 1, pad: 'same', act: 'relu' },
];

function runCase(c: Case, seed: number): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor4d(values(c.x.reduce((a, b) => a * b), seed), c.x);
    const f = tf.tensor4d(values(c.f.reduce((a, b) => a * b), seed + 1), c.f);
    if (c.act) {
      const bias = tf.tensor1d(values(c.f[3], seed + 2));
      return tf.fused.conv2d({ x, filter: f, strides: c.stride, pad: c.pad, dilations: c.dilation, bias, activation: c.act }).dataSync() as Float32Array;
    }
    return tf.conv2d(x, f, c.stride, c.pad, 'NHWC', c.dilation).dataSync() as Float32Array;
  });
}

beforeAll(async () => {
  await initBackend('wasm');
  registerWasmTrainingKernels();
  // minMacs 0: every case below runs on the engine, however small.
  await installSimdConvKernels(2, { minMacs: 0 });
});

afterAll(() => uninstallSimdConvKernels());

describe('SIMD GEMM conv kernels on wasm', () => {
  it('replace Conv2D and FusedConv2D, with relaxed SIMD where V8 has it', () => {
    expect(isOurs(tf.getKernel('Conv2D', 'wasm'))).toBe(true);
    expect(isOurs(tf.getKernel('FusedConv2D', 'wasm'))).toBe(true);
    const engine = simdConvEngine();
    expect(engine?.info.threads).toBe(2);
    // Node 20 has relaxed SIMD behind a flag that the engine sets; later versions ship it.
    expect(engine?.info.relaxedSimd).toBe(true);
  });

  it.each(CASES.map((c, i) => [i, c] as const))('case %i matches the cpu backend', async (i, c) => {
    const engine = simdConvEngine() as GemmEngine;
    const before = engine.stats.convs;
    const implicitBefore = engine.stats.implicitConvs;
    const got = runCase(c, 10 * i + 1);
    // elu is not fused by the engine: that case must fall back to XNNPACK's FusedConv2D
    expect(engine.stats.convs - before).toBe(c.act === 'elu' ? 0 : 1);
    // stride-1 cases with ≥ 8 input channels take the implicit GEMM (2, 5, 8, 13, 15, 17), the rest im2col
    expect(engine.stats.implicitConvs - implicitBefore).toBe([2, 5, 8, 13, 15, 17].includes(i) ? 1 : 0);
    await tf.setBackend('cpu');
    const want = runCase(c, 10 * i + 1);
    await tf.setBackend('wasm');
    expect(relErr(got, want)).toBeLessThan(2e-6);
  });

  it.each([
    { a: [5, 7], b: [7, 9], tA: false, tB: false, engineCalls: 1 },
    { a: [5, 7], b: [9, 7], tA: false, tB: true, engineCalls: 1 },
    { a: [2, 3, 5, 7], b: [7, 9], tA: false, tB: false, engineCalls: 1 },
    { a: [2, 5, 7], b: [1, 9, 7], tA: false, tB: true, engineCalls: 1 },
    { a: [7, 5], b: [7, 9], tA: true, tB: false, engineCalls: 1 }, // transposed by matmul.ts, then here
    { a: [2, 5, 7], b: [2, 7, 9], tA: false, tB: false, engineCalls: 0 }, // batched B: wasm's own
  ])('matMul $a x $b (transposeA $tA, transposeB $tB) matches the cpu backend', async ({ a, b, tA, tB, engineCalls }) => {
    const run = () => tf.tidy(() => tf.matMul(
      tf.tensor(values(a.reduce((p, q) => p * q), 11), a), tf.tensor(values(b.reduce((p, q) => p * q), 12), b), tA, tB,
    ).dataSync() as Float32Array);
    const engine = simdConvEngine() as GemmEngine;
    const before = engine.stats.convs;
    const got = run();
    expect(engine.stats.convs - before).toBe(engineCalls);
    await tf.setBackend('cpu');
    const want = run();
    await tf.setBackend('wasm');
    expect(relErr(got, want)).toBeLessThan(2e-6);
  });

  it('a convolution too large for the engine memory falls back to tfjs\' kernel, same result, no leak', async () => {
    uninstallSimdConvKernels();
    await installSimdConvKernels(1, { minMacs: 0, maxPages: 64 }); // 4 MB engine memory
    try {
      const c: Case = { x: [2, 20, 20, 32], f: [3, 3, 32, 32], stride: 1, dilation: 1, pad: 'same' }; // fits: runs on the engine
      const big: Case = { x: [4, 64, 64, 32], f: [3, 3, 32, 32], stride: 1, dilation: 1, pad: 'same' }; // 2.2 MB padded in + 2 MB out: does not
      const f0 = simdCapacityFallbacks();
      const small = runCase(c, 5);
      expect(simdCapacityFallbacks()).toBe(f0);
      const before = tf.memory().numTensors;
      const got = runCase(big, 6);
      expect(simdCapacityFallbacks()).toBe(f0 + 1);
      expect(tf.memory().numTensors).toBe(before);
      await tf.setBackend('cpu');
      const want = runCase(big, 6);
      const wantSmall = runCase(c, 5);
      await tf.setBackend('wasm');
      expect(relErr(got, want)).toBeLessThan(2e-6);
      expect(relErr(small, wantSmall)).toBeLessThan(2e-6);
    } finally {
      uninstallSimdConvKernels();
      await installSimdConvKernels(2, { minMacs: 0 });
    }
  });

  it('does not leak tensors', () => {
    const c = CASES[0];
    runCase(c, 3);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) runCase(c, 3);
    expect(tf.memory().numTensors).toBe(before);
  });
});

interface FilterGradCase {
  x: [number, number, number, number];
  f: [number, number, number, number];
  stride: number | [number, number];
  pad: Pad;
}

// Filter gradients: 'same' and 'valid', stride 2 on odd sizes, 'same' with stride 2 on an even
// size (tfjs pads 0 before, 1 after), explicit asymmetric padding, 1×1 (with stride), 7×7 stride-2
// stems, an even-sized filter, unequal strides, batch 1 and 4, Cin / Cout that are not multiples of
// 4 or 8 (channel-padded image rows, partial panels), Cout = 1..3, and one case large enough for
// both threads and several k chunks.
const FILTER_GRAD_CASES: FilterGradCase[] = [
  { x: [2, 9, 11, 5], f: [3, 3, 5, 7], stride: 1, pad: 'same' },
  { x: [1, 13, 11, 6], f: [3, 3, 6, 9], stride: 2, pad: 'same' },
  { x: [1, 12, 12, 3], f: [3, 3, 3, 16], stride: 2, pad: 'same' },
  { x: [2, 10, 9, 8], f: [5, 3, 8, 12], stride: [2, 1], pad: 'valid' },
  { x: [1, 11, 9, 16], f: [3, 3, 16, 8], stride: 1, pad: [[0, 0], [0, 2], [1, 0], [0, 0]] },
  { x: [3, 7, 9, 24], f: [1, 1, 24, 12], stride: 1, pad: 'valid' },
  { x: [2, 10, 10, 12], f: [1, 1, 12, 5], stride: 2, pad: 'valid' },
  { x: [2, 17, 15, 4], f: [7, 7, 4, 8], stride: 2, pad: 'same' },
  { x: [4, 10, 10, 2], f: [3, 3, 2, 1], stride: 1, pad: 'same' },
  { x: [4, 8, 8, 6], f: [3, 3, 6, 2], stride: 1, pad: 'same' },
  { x: [1, 9, 9, 5], f: [2, 2, 5, 3], stride: 1, pad: 'same' },
  { x: [2, 20, 20, 32], f: [3, 3, 32, 64], stride: 1, pad: 'same' },
];

function runFilterGrad(c: FilterGradCase, seed: number, dataFormat: 'NHWC' | 'NCHW' = 'NHWC'): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor4d(values(c.x.reduce((a, b) => a * b), seed), c.x);
    const dyShape = tf.backend_util.computeConv2DInfo(c.x, c.f, c.stride, 1, c.pad).outShape;
    const dy = tf.tensor4d(values(dyShape.reduce((a, b) => a * b), seed + 1), dyShape as [number, number, number, number]);
    const nchw = dataFormat === 'NCHW';
    const attrs = { strides: c.stride, pad: c.pad, dataFormat, filterShape: c.f };
    const inputs = nchw ? { x: tf.transpose(x, [0, 3, 1, 2]), dy: tf.transpose(dy, [0, 3, 1, 2]) } : { x, dy };
    const dw = tf.engine().runKernel(tf.Conv2DBackpropFilter, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    return dw.dataSync() as Float32Array;
  });
}

describe('SIMD GEMM filter gradient (Conv2DBackpropFilter) on wasm', () => {
  it('replaces the Conv2DBackpropFilter kernel and uninstall restores the one before', async () => {
    uninstallSimdConvKernels();
    const before = tf.getKernel(tf.Conv2DBackpropFilter, 'wasm');
    expect(isOurs(before)).toBe(true); // conv-kernels.ts' forward-conv form
    await installSimdConvKernels(2, { minMacs: 0 });
    expect(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm')?.kernelFunc).not.toBe(before?.kernelFunc);
    uninstallSimdConvKernels();
    expect(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm')?.kernelFunc).toBe(before?.kernelFunc);
    await installSimdConvKernels(2, { minMacs: 0 });
  });

  it.each(FILTER_GRAD_CASES.map((c, i) => [i, c] as const))('case %i matches the cpu backend', async (i, c) => {
    const engine = simdConvEngine() as GemmEngine;
    const before = engine.stats.filterGrads;
    const got = runFilterGrad(c, 100 + 10 * i);
    expect(engine.stats.filterGrads - before).toBe(1);
    // the forward-conv form (conv-kernels.ts, the fallback) gives the same
    engine.directFilterGrad = false;
    const viaForward = runFilterGrad(c, 100 + 10 * i);
    engine.directFilterGrad = true;
    expect(engine.stats.filterGrads - before).toBe(1);
    await tf.setBackend('cpu');
    const want = runFilterGrad(c, 100 + 10 * i);
    await tf.setBackend('wasm');
    expect(relErr(got, want)).toBeLessThan(1e-5);
    expect(relErr(viaForward, want)).toBeLessThan(1e-5);
  });

  it('NCHW goes to the kernel registered before, same result', async () => {
    const c = FILTER_GRAD_CASES[1];
    const engine = simdConvEngine() as GemmEngine;
    const before = engine.stats.filterGrads;
    const got = runFilterGrad(c, 7, 'NCHW');
    expect(engine.stats.filterGrads).toBe(before);
    await tf.setBackend('cpu');
    const want = runFilterGrad(c, 7);
    await tf.setBackend('wasm');
    expect(relErr(got, want)).toBeLessThan(1e-5);
  });

  it('1024 input channels (pixel pitch padded by a cache line) run on the engine too, same result', async () => {
    const c: FilterGradCase = { x: [1, 5, 4, 1024], f: [3, 3, 1024, 2], stride: 1, pad: 'same' };
    const engine = simdConvEngine() as GemmEngine;
    const before = engine.stats.filterGrads;
    const got = runFilterGrad(c, 8);
    expect(engine.stats.filterGrads).toBe(before + 1);
    await tf.setBackend('cpu');
    const want = runFilterGrad(c, 8);
    await tf.setBackend('wasm');
    expect(relErr(got, want)).toBeLessThan(1e-5);
  });

  it('does not leak tensors', () => {
    const c = FILTER_GRAD_CASES[0];
    runFilterGrad(c, 3);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) runFilterGrad(c, 3);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a filter gradient too large for the engine memory falls back to the kernel before, same result, no leak', async () => {
    uninstallSimdConvKernels();
    await installSimdConvKernels(1, { minMacs: 0, maxPages: 64 }); // 4 MB engine memory
    try {
      const engine = simdConvEngine() as GemmEngine;
      // x 2.1 MB as a padded image + dy 1.2 MB raw and 1.2 MB packed: does not fit
      const big: FilterGradCase = { x: [16, 24, 24, 32], f: [3, 3, 32, 32], stride: 1, pad: 'same' };
      const f0 = simdCapacityFallbacks();
      runFilterGrad(FILTER_GRAD_CASES[0], 5); // fits
      expect(simdCapacityFallbacks()).toBe(f0);
      const before = tf.memory().numTensors;
      const grads0 = engine.stats.filterGrads;
      const got = runFilterGrad(big, 6);
      expect(engine.stats.filterGrads).toBe(grads0 + 1); // tried, then fell back
      // (+2: the fallback's own forward convolution does not fit either and falls back in turn)
      expect(simdCapacityFallbacks()).toBeGreaterThan(f0);
      expect(tf.memory().numTensors).toBe(before);
      await tf.setBackend('cpu');
      const want = runFilterGrad(big, 6);
      await tf.setBackend('wasm');
      expect(relErr(got, want)).toBeLessThan(1e-5);
    } finally {
      uninstallSimdConvKernels();
      await installSimdConvKernels(2, { minMacs: 0 });
    }
  });
});

describe('SIMD GEMM input gradient (Conv2DBackpropInput, stride 1) on wasm', () => {
  // stride 1: 'same' (odd and even filters: tfjs pads the even one 0 before / 1 after), 'valid',
  // explicit asymmetric padding, 1×1, Cin/Cout not multiples of 4 or 8; stride 2 goes to the kernel before.
  const cases: FilterGradCase[] = [
    { x: [2, 9, 11, 5], f: [3, 3, 5, 7], stride: 1, pad: 'same' },
    { x: [1, 10, 10, 6], f: [2, 2, 6, 3], stride: 1, pad: 'same' },
    { x: [2, 10, 9, 8], f: [5, 3, 8, 12], stride: 1, pad: 'valid' },
    { x: [1, 11, 9, 16], f: [3, 3, 16, 8], stride: 1, pad: [[0, 0], [0, 2], [1, 0], [0, 0]] },
    { x: [3, 7, 9, 24], f: [1, 1, 24, 12], stride: 1, pad: 'valid' },
    { x: [2, 20, 20, 32], f: [3, 3, 32, 64], stride: 1, pad: 'same' },
    { x: [1, 13, 11, 6], f: [3, 3, 6, 9], stride: 2, pad: 'same' },
    // the flipped filter packed in two chunks of whole taps: im2col, then implicit
    { x: [1, 8, 8, 64], f: [3, 3, 64, 256], stride: 1, pad: 'same' },
    { x: [1, 20, 20, 64], f: [3, 3, 64, 256], stride: 1, pad: 'same' },
    // split by panels (136 outputs: the last panel partial)
    { x: [1, 8, 8, 136], f: [3, 3, 136, 96], stride: 1, pad: 'same' },
  ];
  const runInputGrad = (c: FilterGradCase, seed: number): Float32Array => tf.tidy(() => {
    const f = tf.tensor4d(values(c.f.reduce((a, b) => a * b), seed), c.f);
    const dyShape = tf.backend_util.computeConv2DInfo(c.x, c.f, c.stride, 1, c.pad).outShape;
    const dy = tf.tensor4d(values(dyShape.reduce((a, b) => a * b), seed + 1), dyShape as [number, number, number, number]);
    const attrs = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x };
    return (tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter: f }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor).dataSync() as Float32Array;
  });
  it.each(cases.map((c, i) => [i, c] as const))('case %i matches the cpu backend; stride 1 runs as one engine conv', async (i, c) => {
    const engine = simdConvEngine() as GemmEngine;
    const before = engine.stats.convs;
    const got = runInputGrad(c, 300 + 10 * i);
    // stride 1: exactly one engine call; stride 2: the forward-conv form's polyphase convs
    if (c.stride === 1) expect(engine.stats.convs - before).toBe(1);
    await tf.setBackend('cpu');
    const want = runInputGrad(c, 300 + 10 * i);
    await tf.setBackend('wasm');
    expect(relErr(got, want)).toBeLessThan(1e-5);
  });
});

describe('GemmEngine', () => {
  it('gives bit-identical results with 1 and 2 threads (work split by rows, fixed order)', async () => {
    const g = {
      batch: 2, inHeight: 24, inWidth: 20, inChannels: 32, filterHeight: 3, filterWidth: 3, outChannels: 40,
      strideHeight: 1, strideWidth: 1, dilationHeight: 1, dilationWidth: 1, padTop: 1, padLeft: 1, outHeight: 24, outWidth: 20,
    };
    const x = values(2 * 24 * 20 * 32, 5);
    const f = values(3 * 3 * 32 * 40, 6);
    const bias = values(40, 7);
    const macs = 2 * 24 * 20 * 40 * 9 * 32;
    expect(macs).toBeGreaterThan(4e6); // above the engine's threshold for using its workers
    const outs: Float32Array[] = [];
    for (const threads of [1, 2]) {
      const e = await GemmEngine.create(threads);
      const out = new Float32Array(2 * 24 * 20 * 40);
      e.conv2d(g, x, f, bias, true, out);
      e.dispose();
      outs.push(out);
    }
    expect(Buffer.from(outs[1].buffer).equals(Buffer.from(outs[0].buffer))).toBe(true);
    expect(outs[0].some((v) => v > 0)).toBe(true);
    expect(outs[0].every((v) => v >= 0)).toBe(true); // relu
  });

  it('gives the same results with K in many small chunks (whole taps, parts of a tap, flipped filters)', async () => {
    // a tap of C channels is split where C·panels·8 floats exceed the chunk: at 1024 floats and 4
    // panels, 64 channels go in 2 chunks of 32; 67 (prime) stays whole
    expect(tapAlignedChunk(9, 64, 4, 1024)).toBe(32);
    expect(tapAlignedChunk(9, 67, 4, 1024)).toBe(67);
    expect(tapAlignedChunk(9, 8, 4, 1024)).toBe(24); // 3 whole taps (9 in 3 even chunks)
    const geo = (b: number, h: number, c: number, s: number, n: number): ConvGeometry2d => {
      const oh = Math.floor((h + 2 - 3) / s) + 1;
      return {
        batch: b, inHeight: h, inWidth: h, inChannels: c, filterHeight: 3, filterWidth: 3, outChannels: n, strideHeight: s,
        strideWidth: s, dilationHeight: 1, dilationWidth: 1, padTop: 1, padLeft: 1, outHeight: oh, outWidth: oh,
      };
    };
    const small = await GemmEngine.create(2, { bChunkFloats: 1024 });
    const ref = await GemmEngine.create(2);
    try {
      // implicit GEMM (parts of taps), im2col with K chunks, im2col with a 96-channel tap in 4 parts
      for (const [i, g] of [geo(2, 20, 64, 1, 32), geo(1, 15, 24, 2, 16), geo(2, 8, 96, 1, 40)].entries()) {
        const x = values(g.batch * g.inHeight * g.inWidth * g.inChannels, 40 + i);
        const w = values(9 * g.inChannels * g.outChannels, 50 + i);
        const out = (e: GemmEngine, flip: boolean): Float32Array => {
          const o = new Float32Array(g.batch * g.outHeight * g.outWidth * g.outChannels);
          if (flip) e.conv2dFlipped(g, x, w, o);
          else e.conv2d(g, x, w, null, false, o);
          return o;
        };
        expect(relErr(out(small, false), out(ref, false))).toBeLessThan(1e-5);
        if (g.strideHeight !== 1) continue;
        // conv2dFlipped(w) = conv2d(W') with W'[a, b, c, n] = w[2 − a, 2 − b, n, c] (w as [3, 3, N, C])
        const flipped = new Float32Array(w.length);
        const [C, N] = [g.inChannels, g.outChannels];
        for (let t = 0; t < 9; t++) for (let c = 0; c < C; c++) for (let n = 0; n < N; n++) flipped[(t * C + c) * N + n] = w[((8 - t) * N + n) * C + c];
        const want = new Float32Array(g.batch * g.outHeight * g.outWidth * N);
        ref.conv2d(g, x, flipped, null, false, want);
        expect(relErr(out(small, true), want)).toBeLessThan(1e-5);
        expect(relErr(out(ref, true), want)).toBeLessThan(1e-5);
      }
    } finally {
      small.dispose();
      ref.dispose();
    }
  });

  it('computes filter gradients bit-identically with 1 and 2 threads', async () => {
    // Cin 20 (channel-padded to the tile), Cout 40 (a partial panel), stride 2 with 'same' padding
    const g = {
      batch: 4, inHeight: 32, inWidth: 21, inChannels: 20, filterHeight: 3, filterWidth: 3, outChannels: 40,
      strideHeight: 2, strideWidth: 2, dilationHeight: 1, dilationWidth: 1, padTop: 0, padLeft: 1, outHeight: 16, outWidth: 11,
    };
    const x = values(4 * 32 * 21 * 20, 15);
    const dy = values(4 * 16 * 11 * 40, 16);
    expect(4 * 16 * 11 * 9 * 20 * 40).toBeGreaterThan(4e6); // the workers take part
    const outs: Float32Array[] = [];
    for (const threads of [1, 2]) {
      const e = await GemmEngine.create(threads);
      const out = new Float32Array(3 * 3 * 20 * 40);
      e.conv2dFilterGrad(g, x, dy, out);
      expect(e.stats.filterGrads).toBe(1);
      e.dispose();
      outs.push(out);
    }
    expect(Buffer.from(outs[1].buffer).equals(Buffer.from(outs[0].buffer))).toBe(true);
    // a direct reference for one element: dW[2, 0, 7, 33] (tap row 2, column 0 reads x column 2j − 1)
    let ref = 0;
    for (let n = 0; n < 4; n++) for (let i = 0; i < 16; i++) for (let j = 0; j < 11; j++) {
      const iy = 2 * i + 2;
      const ix = 2 * j - 1;
      if (iy < 32 && ix >= 0) ref += x[((n * 32 + iy) * 21 + ix) * 20 + 7] * dy[((n * 16 + i) * 11 + j) * 40 + 33];
    }
    expect(outs[0][((2 * 3 + 0) * 20 + 7) * 40 + 33]).toBeCloseTo(ref, 4);
  });

  it('plain SIMD (no relaxed madd) and relaxed agree to float rounding', async () => {
    expect(WebAssembly.validate(gemmModuleBytes(false))).toBe(true);
    const g = {
      batch: 1, inHeight: 10, inWidth: 10, inChannels: 20, filterHeight: 3, filterWidth: 3, outChannels: 9,
      strideHeight: 1, strideWidth: 1, dilationHeight: 1, dilationWidth: 1, padTop: 0, padLeft: 0, outHeight: 8, outWidth: 8,
    };
    const x = values(10 * 10 * 20, 8);
    const f = values(3 * 3 * 20 * 9, 9);
    const outs: Float32Array[] = [];
    for (const relaxedSimd of [false, true]) {
      const e = await GemmEngine.create(1, { relaxedSimd });
      expect(e.info.relaxedSimd).toBe(relaxedSimd);
      const out = new Float32Array(8 * 8 * 9);
      e.conv2d(g, x, f, null, false, out);
      e.dispose();
      outs.push(out);
    }
    expect(relErr(outs[1], outs[0])).toBeLessThan(1e-5);
    // a direct reference for one output element: (n=0, y=3, x=5, c=4)
    let ref = 0;
    for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) for (let ci = 0; ci < 20; ci++) {
      ref += x[((3 + ky) * 10 + 5 + kx) * 20 + ci] * f[((ky * 3 + kx) * 20 + ci) * 9 + 4];
    }
    expect(outs[0][(3 * 8 + 5) * 9 + 4]).toBeCloseTo(ref, 4);
  });

  it('caches packed weights from the second call with the same key, with the same results', async () => {
    const g = {
      batch: 1, inHeight: 12, inWidth: 12, inChannels: 16, filterHeight: 3, filterWidth: 3, outChannels: 24,
      strideHeight: 2, strideWidth: 2, dilationHeight: 1, dilationWidth: 1, padTop: 1, padLeft: 1, outHeight: 6, outWidth: 6,
    };
    const e = await GemmEngine.create(1);
    const f = values(3 * 3 * 16 * 24, 21);
    const key = {};
    const outs: Float32Array[] = [];
    for (let i = 0; i < 4; i++) {
      const out = new Float32Array(6 * 6 * 24);
      e.conv2d(g, values(12 * 12 * 16, 30 + (i % 2)), f, null, false, out, key);
      outs.push(out);
    }
    expect(e.stats.packedHits).toBe(2); // 1st: seen, 2nd: packed into the cache, 3rd and 4th: hits
    expect(Buffer.from(outs[2].buffer).equals(Buffer.from(outs[0].buffer))).toBe(true);
    expect(Buffer.from(outs[3].buffer).equals(Buffer.from(outs[1].buffer))).toBe(true);
    // a matMul with another key does not see those panels; its own result stays right
    const a = values(5 * 16, 40);
    const b = values(16 * 24, 41);
    const got = new Float32Array(5 * 24);
    for (let i = 0; i < 3; i++) e.matMul(a, b, 5, 16, 24, false, got, {});
    let ref = 0;
    for (let k = 0; k < 16; k++) ref += a[2 * 16 + k] * b[k * 24 + 7];
    expect(got[2 * 24 + 7]).toBeCloseTo(ref, 5);
    e.dispose();
  });

  it('says how much memory a call needed when it does not fit', async () => {
    const e = await GemmEngine.create(1, { maxPages: 16 });
    const g = {
      batch: 1, inHeight: 256, inWidth: 256, inChannels: 8, filterHeight: 1, filterWidth: 1, outChannels: 8,
      strideHeight: 1, strideWidth: 1, dilationHeight: 1, dilationWidth: 1, padTop: 0, padLeft: 0, outHeight: 256, outWidth: 256,
    };
    expect(() => e.conv2d(g, new Float32Array(256 * 256 * 8), new Float32Array(64), null, false, new Float32Array(256 * 256 * 8)))
      .toThrow(EngineCapacityError);
    e.dispose();
  });

  it('rejects use after dispose and a bad ADBENCH_SIMD_THREADS', async () => {
    const e = await GemmEngine.create(1);
    e.dispose();
    expect(() => e.conv2d({
      batch: 1, inHeight: 1, inWidth: 1, inChannels: 1, filterHeight: 1, filterWidth: 1, outChannels: 1,
      strideHeight: 1, strideWidth: 1, dilationHeight: 1, dilationWidth: 1, padTop: 0, padLeft: 0, outHeight: 1, outWidth: 1,
    }, new Float32Array(1), new Float32Array(1), null, false, new Float32Array(1))).toThrow(/dispose/);
    expect(() => GemmEngine.defaultThreads({ ADBENCH_SIMD_THREADS: 'two' })).toThrow(/ADBENCH_SIMD_THREADS=two/);
    expect(GemmEngine.defaultThreads({ ADBENCH_SIMD_THREADS: '3' })).toBe(3);
  });
});
