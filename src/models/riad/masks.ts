import * as tf from '@tensorflow/tfjs';
import { createImageStrategy, getStrategyEntry } from '../../augment/registry.js';
import { RIAD_PARAMS } from '../../augment/riad.js';
import { disposeBatch, type ImageStrategy, type ParamValue } from '../../augment/types.js';
import { ConfigError } from '../../errors.js';
import type { Rng } from '../../util/rng.js';

/**
 * One draw of RIAD's input masks: n planes of H·W values with 1 = HIDDEN, Σ planes ≡ 1
 * (riad.md §3 "Disjoint masks"; the registry's 'riad-masks' convention).
 */
export interface MaskDraw {
  cellSize: number;
  hidden: Float32Array[];
}

/**
 * Training masks by strategy name (config `masks.strategy`), drawn by the registered src/augment
 * strategy itself (`generate`), so the generator can be swapped from the config. The draw is
 * asynchronous and runs in the trainer's prepareBatch hook, outside the differentiable step.
 */
export class TrainMaskSampler {
  readonly strategy: ImageStrategy;
  readonly numMasks: number;

  constructor(name: string, params: Readonly<Record<string, ParamValue>>) {
    const entry = getStrategyEntry(name);
    if (entry.kind !== 'image' || entry.role !== 'inpaint') {
      throw new ConfigError(
        `RIAD masks: strategy '${name}' is a${entry.role === 'anomaly' ? 'n anomaly' : ` ${entry.kind}`} strategy; RIAD needs an 'inpaint' strategy (riad-masks)`,
      );
    }
    this.strategy = createImageStrategy(name, { params });
    const fill = this.strategy.params.fill;
    if (fill !== undefined && fill !== RIAD_PARAMS.fill.default) {
      // Masked pixels are 0 in normalised space (riad.md §3); the model multiplies by the visible mask.
      throw new ConfigError(`RIAD masks: fill must stay ${RIAD_PARAMS.fill.default} (hidden pixels are 0 after [−1, 1] normalisation)`);
    }
    this.numMasks = this.strategy.outputsPerInput;
  }

  /**
   * One partition for a whole mini-batch (riad.md §3 "one random partition shared by the whole
   * batch"): the strategy's output is mask-major (sample j·N + b = image b under mask j), so mask j
   * is the one of sample j·N. Deterministic in `rng`; `images` are not disposed.
   */
  async sample(images: tf.Tensor4D, rng: Rng): Promise<MaskDraw> {
    const [n, h, w] = images.shape;
    const out = await this.strategy.generate({ images }, rng);
    try {
      const m = (await out.masks.data()) as Float32Array;
      const plane = h * w;
      const hidden = Array.from({ length: this.numMasks }, (_, j) => m.slice(j * n * plane, j * n * plane + plane));
      const k = out.meta[0]?.cellSize;
      return { cellSize: typeof k === 'number' ? k : 0, hidden };
    } finally {
      disposeBatch(out);
    }
  }
}

/** A draw as [1, H, W, 1] hidden-mask tensors (broadcast over the batch and the channels). */
export function maskTensors(draw: MaskDraw, h: number, w: number): tf.Tensor4D[] {
  return draw.hidden.map((m) => tf.tensor4d(m, [1, h, w, 1]));
}
