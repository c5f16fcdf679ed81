import { backendLogLine, initBackend, type BackendChoice, type BackendInfo } from './backend.js';
import { registerWasmTrainingKernels } from './nn/kernels/index.js';

/**
 * Everything a CLI or test needs before touching tensors: choose the backend, then register the
 * kernels and gradients that wasm lacks (conv gradients as forward convolutions, etc.).
 */
export async function setupRuntime(choice: BackendChoice = 'auto', log: (l: string) => void = () => {}): Promise<BackendInfo> {
  const info = await initBackend(choice);
  registerWasmTrainingKernels();
  log(backendLogLine(info));
  return info;
}
