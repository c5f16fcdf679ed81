/**
 * Max-pool gradients stay right on wasm whatever the switches say: with many ties, under
 * ADBENCH_SIMD=off, ADBENCH_HEAP_KERNELS=off and the default (child processes, since the switches
 * act at backend setup), in-process without the heap kernels and after uninstalling them, they
 * equal the cpu backend's (first maximum of each window), and no gradient mass is lost. tfjs-wasm's
 * own kernel on the same inputs does lose gradient (the inputs do trigger the bug).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { registerWasmTrainingKernels } from '../src/nn/kernels/index.js';
import { installHeapKernels, uninstallHeapKernels } from '../src/nn/simd/heapKernels.js';
import { isOurs } from '../src/nn/kernels/kernel-util.js';
import { POOL_CASES, poolDyMass, poolGrads } from './fixtures/maxpool-grad/cases.js';

const ROOT = join(import.meta.dirname, '..');
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');

let reference: number[][] = [];
let nativeGrads: number[][] = [];

function child(env: Record<string, string>): { backend: string; log: string[]; grads: number[][] } {
  const e = { ...process.env };
  for (const k of ['ADBENCH_SIMD', 'ADBENCH_HEAP_KERNELS', 'ADBENCH_EAGER_BACKPROP']) delete e[k];
  const r = spawnSync(TSX, [join(ROOT, 'test', 'fixtures', 'maxpool-grad', 'child.ts')], { env: { ...e, ...env }, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
}

/** Element by element; overlapping windows may add their shares in another order (float32 rounding). */
function expectReference(grads: number[][]): void {
  grads.forEach((g, i) => {
    expect(g.length).toBe(reference[i].length);
    const worst = g.reduce((m, v, k) => Math.max(m, Math.abs(v - reference[i][k])), 0);
    expect(worst, POOL_CASES[i].name).toBeLessThan(1e-5);
  });
}

const mass = (g: number[]): number => g.reduce((a, b) => a + b, 0);

beforeAll(async () => {
  await initBackend('wasm');
  // tfjs-wasm's own kernel, before the project replaces it
  const native = tf.getKernel(tf.MaxPoolGrad, 'wasm');
  expect(native && !isOurs(native)).toBe(true);
  nativeGrads = poolGrads();
  await tf.setBackend('cpu');
  reference = poolGrads();
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

describe('MaxPoolGrad on wasm', () => {
  it('the cases have ties, and tfjs-wasm\'s own kernel loses gradient on them', () => {
    const lost = nativeGrads.filter((g, i) => Math.abs(mass(g) - mass(reference[i])) > 1e-3);
    expect(lost.length).toBeGreaterThan(0);
  });

  it('the cpu reference conserves gradient mass (Σ dx = Σ dy)', () => {
    const dyMass = poolDyMass();
    reference.forEach((g, i) => expect(Math.abs(mass(g) - dyMass[i])).toBeLessThan(1e-3));
  });

  it('registerWasmTrainingKernels alone (no heap kernels) gives the cpu backend\'s gradients', () => {
    expect(isOurs(tf.getKernel(tf.MaxPoolGrad, 'wasm'))).toBe(true);
    expectReference(poolGrads());
  });

  it('with the heap kernels installed, and after uninstalling them', () => {
    expect(installHeapKernels()).toBe(true);
    expectReference(poolGrads());
    uninstallHeapKernels();
    expect(isOurs(tf.getKernel(tf.MaxPoolGrad, 'wasm'))).toBe(true);
    expectReference(poolGrads());
  });

  it.each([
    ['default switches', {}],
    ['ADBENCH_SIMD=off', { ADBENCH_SIMD: 'off' }],
    ['ADBENCH_HEAP_KERNELS=off', { ADBENCH_HEAP_KERNELS: 'off' }],
    ['ADBENCH_SIMD=off ADBENCH_EAGER_BACKPROP=0', { ADBENCH_SIMD: 'off', ADBENCH_EAGER_BACKPROP: '0' }],
  ])('setupRuntime with %s', (_label, env) => {
    const r = child(env as Record<string, string>);
    expect(r.backend).toBe('wasm');
    expectReference(r.grads);
  });
});
