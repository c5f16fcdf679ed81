import type * as tf from '@tensorflow/tfjs';
import { closeSync, openSync, readSync } from 'node:fs';
import { WeightsError } from '../errors.js';
import { readSafetensors } from './safetensors.js';
import { isLegacyTorch, readTorchStateDict } from './torchPickle.js';
import { isZip } from './zipArchive.js';

/**
 * Reads a PyTorch-layout weights file, whichever format it is in: `torch.save` .pth/.pt (zip or
 * legacy, see torchPickle.ts) or safetensors. The format is told by the first bytes, not the extension,
 * so a torchvision `.pth` renamed `.bin` still loads. Float32 tensors, caller disposes.
 */
export function readWeightsFile(path: string, opts: { filter?: (name: string) => boolean } = {}): Map<string, tf.Tensor> {
  const head = new Uint8Array(4);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new WeightsError(`${path}: cannot open weights file (${code === 'ENOENT' ? 'does not exist' : (code ?? String(e))})`);
  }
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  return isZip(head) || isLegacyTorch(head) ? readTorchStateDict(path, opts) : readSafetensors(path, opts);
}
