import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { BackendError, ConfigError } from './errors.js';
import { activeWasmThreads, prepareWasmThreads, requestedWasmThreads } from './backendThreads.js';

export const BACKEND_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendInfo {
  /** What the user asked for. */
  requested: BackendChoice;
  /** tfjs backend name actually active ('tensorflow', 'wasm', 'cpu'). */
  active: string;
  /** Package that provides it. */
  provider: string;
  /** True only when TensorFlow really runs kernels on a GPU. */
  gpu: boolean;
  /** One human sentence: what was chosen and why (the log line). */
  reason: string;
  /** Attempts that failed before the chosen one, with their error. */
  rejected: { backend: string; why: string }[];
  tfjsVersion: string;
}

export function parseBackendChoice(value: string): BackendChoice {
  if ((BACKEND_CHOICES as readonly string[]).includes(value)) return value as BackendChoice;
  throw new ConfigError(`--backend ${value}: unknown backend; choose one of ${BACKEND_CHOICES.join(', ')}`);
}

/**
 * tfjs-node-gpu 4.22 bundles libtensorflow 2.9.1, built against CUDA 11.2 and cuDNN 8.1. With any
 * other CUDA runtime it loads without error and silently runs on the CPU, so "it imported" is not
 * evidence of a GPU: we look for the exact shared libraries TensorFlow dlopens and a visible GPU.
 */
export function cudaRuntimeProblem(): string | null {
  const libs = ['libcudart.so.11.0', 'libcudnn.so.8', 'libcublas.so.11'];
  let ldcache = '';
  try {
    ldcache = execFileSync('ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    ldcache = '';
  }
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  const missing = libs.filter(
    (lib) => !ldcache.includes(lib) && !dirs.some((d) => existsSync(`${d}/${lib}`)),
  );
  if (missing.length > 0) {
    return `CUDA 11.2/cuDNN 8.1 libraries not found (${missing.join(', ')}); TensorFlow would run on the CPU`;
  }
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    if (!/GPU \d+:/.test(out)) return 'nvidia-smi lists no GPU';
  } catch {
    if (!existsSync('/dev/nvidia0') && !readdirSafe('/dev').some((f) => f.startsWith('nvidia'))) {
      return 'no NVIDIA driver (nvidia-smi not found, no /dev/nvidia*)';
    }
  }
  return null;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function errorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0].slice(0, 200);
}

async function tryTfjsNode(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<void> {
  // Dynamic import through a variable so bundlers and tsc do not require the optional package.
  const name: string = pkg;
  await import(name);
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but the tensorflow backend failed to initialise`);
  await tf.ready();
}

async function tryWasm(): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  // Opt-in multi-threading (src/backendThreads.ts): ADBENCH_WASM_THREADS=N >= 2 initialises the
  // threaded SIMD binary; if that fails we say so and take the default single-threaded path.
  const threads = requestedWasmThreads();
  if (threads > 1) {
    const restore = await prepareWasmThreads(threads);
    let ok = false;
    try {
      ok = await tf.setBackend('wasm');
      if (ok) await tf.ready();
    } catch {
      ok = false;
    } finally {
      restore();
    }
    if (ok) return;
    console.warn(`[backend] ADBENCH_WASM_THREADS=${threads}: the threaded wasm binary did not initialise; using the single-threaded one`);
  }
  if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to initialise');
  await tf.ready();
}

async function tryCpu(): Promise<void> {
  if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend failed to initialise');
  await tf.ready();
}

/**
 * Selects and initialises the tfjs backend. `auto` prefers tfjs-node-gpu (only if a GPU is really
 * usable), then tfjs-node, then wasm, then the pure-JS cpu backend.
 */
export async function initBackend(requested: BackendChoice = 'auto'): Promise<BackendInfo> {
  const rejected: { backend: string; why: string }[] = [];
  const info = (active: string, provider: string, gpu: boolean, reason: string): BackendInfo => ({
    requested, active, provider, gpu, reason, rejected, tfjsVersion: tf.version.tfjs,
  });

  const attempt = async (
    name: BackendChoice,
    run: () => Promise<void>,
  ): Promise<boolean> => {
    try {
      await run();
      return true;
    } catch (e) {
      rejected.push({ backend: name, why: errorText(e) });
      return false;
    }
  };

  if (requested === 'tensorflow-gpu' || requested === 'auto') {
    const problem = cudaRuntimeProblem();
    if (problem === null && (await attempt('tensorflow-gpu', () => tryTfjsNode('@tensorflow/tfjs-node-gpu')))) {
      return info('tensorflow', '@tensorflow/tfjs-node-gpu', true, 'tfjs-node-gpu loaded and CUDA 11.2/cuDNN 8.1 and a GPU were found');
    }
    if (problem !== null) rejected.push({ backend: 'tensorflow-gpu', why: problem });
    if (requested === 'tensorflow-gpu') {
      throw new BackendError(
        `--backend tensorflow-gpu: ${rejected.map((r) => r.why).join('; ')}. ` +
          'Install @tensorflow/tfjs-node-gpu 4.22 with CUDA 11.2 and cuDNN 8.1 (see README, GPU section), or use --backend auto.',
      );
    }
  }
  if (requested === 'tensorflow' || requested === 'auto') {
    if (await attempt('tensorflow', () => tryTfjsNode('@tensorflow/tfjs-node'))) {
      return info('tensorflow', '@tensorflow/tfjs-node', false, 'tfjs-node (libtensorflow on CPU) loaded');
    }
    if (requested === 'tensorflow') {
      throw new BackendError(
        `--backend tensorflow: @tensorflow/tfjs-node did not load (${rejected.at(-1)?.why}). ` +
          'Its install script downloads libtensorflow; run `npm rebuild @tensorflow/tfjs-node` with network access, or use --backend wasm.',
      );
    }
  }
  if (requested === 'wasm' || requested === 'auto') {
    if (await attempt('wasm', tryWasm)) {
      const why = requested === 'wasm' ? 'requested' : `fallback: ${rejected.map((r) => `${r.backend}: ${r.why}`).join('; ')}`;
      const threads = await activeWasmThreads();
      return info('wasm', '@tensorflow/tfjs-backend-wasm', false, `wasm (${why})${threads > 1 ? `, ${threads} threads` : ''}`);
    }
    if (requested === 'wasm') throw new BackendError(`--backend wasm: ${rejected.at(-1)?.why}`);
  }
  if (await attempt('cpu', tryCpu)) {
    const why = requested === 'cpu' ? 'requested' : `fallback: ${rejected.map((r) => `${r.backend}: ${r.why}`).join('; ')}`;
    return info('cpu', '@tensorflow/tfjs (pure JS)', false, `cpu (${why})`);
  }
  throw new BackendError(`no tfjs backend could be initialised: ${rejected.map((r) => `${r.backend}: ${r.why}`).join('; ')}`);
}

export function backendLogLine(b: BackendInfo): string {
  return `[backend] ${b.active} via ${b.provider}${b.gpu ? ' (GPU)' : ''}: ${b.reason}`;
}
