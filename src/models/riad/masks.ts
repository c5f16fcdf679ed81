import * as tf from '@tensorflow/tfjs';
import { createImageStrategy, getStrategyEntry } from '../../augment/registry.js';
import { disjointMasks, RIAD_PARAMS } from '../../augment/riad.js';
import { resolveParams } from '../../augment/params.js';
import type { ImageStrategy, ParamValue } from '../../augment/types.js';
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
 * Training masks by strategy name (config `masks.strategy`), validated against the src/augment
 * registry so the generator can be swapped from the config.
 *
 * Why not `strategy.generate()`: the trainer's step function is synchronous (it runs inside
 * tf.variableGrads) while ImageStrategy.generate is async (it reads the images with `await
 * data()`). RIAD's masks do not depend on the images, so for inpaint strategies we draw the
 * masks synchronously with exactly the strategy's RNG draw order (k = rng.choice(cellSizes), then
 * disjointMasks) — test/riad.test.ts checks that both give identical masks for the same RNG state.
 * A new inpaint strategy needs a synchronous branch here (or an async prepare hook in the trainer).
 */
export class TrainMaskSampler {
  readonly strategy: ImageStrategy;
  private readonly cellSizes: readonly number[];
  readonly numMasks: number;

  constructor(name: string, params: Readonly<Record<string, ParamValue>>) {
    const entry = getStrategyEntry(name);
    if (entry.kind !== 'image' || entry.role !== 'inpaint') {
      throw new ConfigError(
        `RIAD masks: strategy '${name}' is a${entry.role === 'anomaly' ? 'n anomaly' : ` ${entry.kind}`} strategy; RIAD needs an 'inpaint' strategy (riad-masks)`,
      );
    }
    this.strategy = createImageStrategy(name, { params });
    if (name !== 'riad-masks') {
      throw new ConfigError(`RIAD masks: inpaint strategy '${name}' has no synchronous mask path in src/models/riad/masks.ts`);
    }
    const p = resolveParams(name, RIAD_PARAMS, params);
    if (p.fill !== RIAD_PARAMS.fill.default) {
      // Masked pixels are 0 in normalised space (riad.md §3); the model multiplies by the visible mask.
      throw new ConfigError(`RIAD masks: fill must stay ${RIAD_PARAMS.fill.default} (hidden pixels are 0 after [−1, 1] normalisation)`);
    }
    this.cellSizes = p.cellSizes;
    this.numMasks = p.numMasks;
  }

  /** One partition for a whole mini-batch (riad.md §3 "one random partition shared by the whole batch"). */
  sample(h: number, w: number, rng: Rng): MaskDraw {
    const k = rng.choice(this.cellSizes);
    return { cellSize: k, hidden: disjointMasks(h, w, k, this.numMasks, rng) };
  }
}

/** A draw as [1, H, W, 1] hidden-mask tensors (broadcast over the batch and the channels). */
export function maskTensors(draw: MaskDraw, h: number, w: number): tf.Tensor4D[] {
  return draw.hidden.map((m) => tf.tensor4d(m, [1, h, w, 1]));
}
