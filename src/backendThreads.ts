import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Multi-threaded tfjs-backend-wasm under Node (opt-in: ADBENCH_WASM_THREADS=N, N >= 2).
 *
 * The package ships the threaded SIMD binary (XNNPACK with a pthreadpool), but in Node tfjs
 * 4.22 never uses it, for three separate reasons, each worked around here for the duration of
 * the backend's initialisation only:
 *  1. flags_wasm.ts answers WASM_HAS_MULTITHREAD_SUPPORT = false whenever IS_NODE (tfjs issue
 *     #3830): we set the flag to true.
 *  2. Emscripten's pthread workers are created from blob: URLs (the worker script and the main
 *     script are Blobs built in backend_wasm.ts init()), and Node's worker_threads only load
 *     files. We write both scripts to a temporary folder, answer URL.createObjectURL for the
 *     worker Blob with that file, and prepend to the worker a two-line prologue that does the
 *     same for the main-script Blob the worker receives (the unbundled emscripten output in
 *     wasm-out/, so the rollup globals `require$$N` / `commonjsGlobal` are not needed).
 *  3. The C++ side (backend.cc) caps the pthreadpool at emscripten_num_logical_cores() / 2,
 *     computed once in a static initialiser (it assumes 2 hyperthreads per core): on a 2-core
 *     machine every setThreadsCount(N) ends as 1 thread. Emscripten answers that call with
 *     require('os').cpus().length, so while the module initialises os.cpus() reports 2N entries.
 * Afterwards the running pthreads are unref'd (emscripten refs them, which would keep a CLI
 * alive after its work is done) and the temporary folder is removed.
 *
 * Whether it pays depends on the machine being otherwise idle: see docs/performance.md.
 */

/** Threads asked for through ADBENCH_WASM_THREADS (1 = the default single-threaded backend). */
export function requestedWasmThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.ADBENCH_WASM_THREADS;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 8) {
    throw new Error(`ADBENCH_WASM_THREADS=${raw}: expected an integer from 1 to 8 (8 = the pthread pool tfjs builds)`);
  }
  return n;
}

interface WasmModuleLike {
  PThread?: { runningWorkers?: { unref?: () => void }[]; unusedWorkers?: { unref?: () => void }[] };
}

/**
 * Makes the next tf.setBackend('wasm') initialise the threaded SIMD binary with `threads`
 * threads. Call after importing @tensorflow/tfjs-backend-wasm and before tf.setBackend('wasm');
 * call the returned function once tf.ready() has settled (success or not): it restores the
 * patched globals and the flag, and removes the temporary scripts.
 */
export async function prepareWasmThreads(threads: number): Promise<() => void> {
  const require = createRequire(import.meta.url);
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as typeof import('@tensorflow/tfjs-backend-wasm');
  const dir = mkdtempSync(join(tmpdir(), 'adbench-wasm-threads-'));
  const mainScript = join(dir, 'tfjs-backend-wasm-threaded-simd.cjs');
  const workerScript = join(dir, 'tfjs-backend-wasm-threaded-simd.worker.cjs');
  writeFileSync(mainScript, readFileSync(require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js'), 'utf8'));
  const { wasmWorkerContents } = require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as { wasmWorkerContents: string };
  // The exported string holds real newlines inside string literals ("...\n"): escape them, as
  // backend_wasm.ts does before making its Blob.
  writeFileSync(workerScript, [
    `URL.createObjectURL = () => ${JSON.stringify(mainScript)};`,
    'URL.revokeObjectURL = () => {};',
    wasmWorkerContents.replace(/\n/g, '\\n'),
  ].join('\n'));

  const os = require('node:os') as typeof import('node:os');
  const originalCpus = os.cpus;
  const originalCreateObjectURL = URL.createObjectURL;
  const flagBefore = tf.env().getFlags().WASM_HAS_MULTITHREAD_SUPPORT;
  os.cpus = () => {
    const c = originalCpus();
    return Array.from({ length: 2 * threads }, (_, i) => c[i % c.length]);
  };
  URL.createObjectURL = ((obj: Blob) => (obj instanceof Blob && obj.type === 'application/javascript'
    ? workerScript
    : originalCreateObjectURL(obj))) as typeof URL.createObjectURL;
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);

  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    os.cpus = originalCpus;
    URL.createObjectURL = originalCreateObjectURL;
    if (tf.getBackend() === 'wasm') {
      const mod = (tf.backend() as unknown as { wasm?: WasmModuleLike }).wasm;
      for (const w of [...(mod?.PThread?.runningWorkers ?? []), ...(mod?.PThread?.unusedWorkers ?? [])]) w.unref?.();
    } else {
      // Failed: the next initialisation must take the single-threaded path (false is what
      // tfjs itself answers under Node).
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', flagBefore ?? false);
      wasm.setThreadsCount(-1);
    }
    rmSync(dir, { recursive: true, force: true });
  };
}

/** Threads the active wasm backend really runs (1 when single-threaded or not wasm). */
export async function activeWasmThreads(): Promise<number> {
  if (tf.getBackend() !== 'wasm') return 1;
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as typeof import('@tensorflow/tfjs-backend-wasm');
  try {
    return Math.max(1, wasm.getThreadsCount());
  } catch {
    return 1;
  }
}
