import { backendLogLine, initBackend, type BackendChoice, type BackendInfo } from './backend.js';
import { installSimdConvKernels } from './nn/kernels/conv2d-simd.js';
import { registerWasmTrainingKernels } from './nn/kernels/index.js';
import { installHeapKernels } from './nn/simd/heapKernels.js';
import { installEagerBackprop } from './nn/backprop.js';

/**
 * An on-by-default switch for A/B runs: off when the variable is `off`, `0` or `false`.
 * ADBENCH_SIMD (SIMD GEMM convolutions and heap kernels), ADBENCH_HEAP_KERNELS,
 * ADBENCH_EAGER_BACKPROP.
 */
export function envSwitchOn(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const v = (env[name] ?? '').toLowerCase();
  return !(v === 'off' || v === '0' || v === 'false');
}

/**
 * Everything a CLI or test needs before touching tensors: choose the backend, then register the
 * kernels and gradients that wasm lacks (conv gradients as forward convolutions, etc.) and, on
 * wasm, the SIMD GEMM convolutions (src/nn/simd; ADBENCH_SIMD=off keeps XNNPACK's,
 * ADBENCH_SIMD_THREADS sets their threads) and the SIMD kernels on tfjs' own heap (per-channel
 * reductions, BatchNorm passes, 2×2 max-pool gradients, Adam; src/nn/simd/heapKernels.ts;
 * ADBENCH_SIMD=off turns these off too, ADBENCH_HEAP_KERNELS=off only these), and on every
 * backend a backward pass that frees memory as it goes (src/nn/backprop.ts; ADBENCH_EAGER_BACKPROP=0
 * keeps tfjs' own).
 */
export async function setupRuntime(choice: BackendChoice = 'auto', log: (l: string) => void = () => {}): Promise<BackendInfo> {
  const info = await initBackend(choice);
  registerWasmTrainingKernels();
  // Backward passes free each gradient and saved tensor once used (src/nn/backprop.ts).
  if (envSwitchOn('ADBENCH_EAGER_BACKPROP')) installEagerBackprop();
  log(backendLogLine(info));
  if (info.active === 'wasm' && envSwitchOn('ADBENCH_SIMD')) {
    try {
      const engine = await installSimdConvKernels();
      if (engine) {
        const { threads, relaxedSimd } = engine.info;
        log(`[backend] wasm convolutions: SIMD GEMM, ${threads} thread${threads > 1 ? 's' : ''}, ${relaxedSimd ? 'relaxed-SIMD FMA' : 'SIMD mul+add (no relaxed SIMD in this V8)'} (ADBENCH_SIMD=off: XNNPACK's)`);
      }
    } catch (e) {
      log(`[backend] SIMD GEMM convolutions unavailable (${(e as Error).message}); using XNNPACK's`);
    }
    try {
      if (envSwitchOn('ADBENCH_HEAP_KERNELS') && installHeapKernels()) log('[backend] wasm reductions, BatchNorm, max-pool gradient, concat/split and Adam: SIMD kernels on the tfjs heap (ADBENCH_HEAP_KERNELS=off: tfjs\' own)');
    } catch (e) {
      log(`[backend] SIMD heap kernels unavailable (${(e as Error).message}); using tfjs' own`);
    }
  }
  return info;
}
