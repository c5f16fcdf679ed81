import type { ParamValue } from '../../augment/types.js';
import type { BaseMethodConfig } from '../method.js';
import type { DraemCheckpointing } from './network.js';

/**
 * DRAEM hyperparameters (draem.md §2–§4; official VitjanZ/DRAEM train_DRAEM.py / test_DRAEM.py).
 * Every field is plain JSON: the config is hashed into training checkpoints, so a resumed run
 * refuses a checkpoint written with other training settings.
 */
export interface DraemConfig extends BaseMethodConfig {
  /** Square input side; DRAEM squashes to 256×256 (no crop), so resize = crop. Multiple of 32 (5 poolings). */
  resize: number;
  crop: number;
  epochs: number;
  batchSize: number;
  /** Adam learning rate for both networks (one optimiser, draem.md §3). */
  lr: number;
  /**
   * 'official': MultiStepLR at 0.8·E and 0.9·E epochs, ×0.2 (train_DRAEM.py, milestone quirk: a
   * non-integer 0.8·E never fires); 'paper': ×0.1 after epochs 400 and 600 (paper, anomalib).
   */
  lrSchedule: 'official' | 'paper';
  /** Base width of the reconstructive autoencoder (official 128 → 69,048,579 parameters). */
  reconstructiveWidth: number;
  /** Base width of the discriminative U-Net (official 64 → 28,374,146 parameters). */
  discriminativeWidth: number;
  /** Synthetic-anomaly strategy from src/augment's registry ('draem' = the official simulator). */
  anomalyStrategy: string;
  /** Parameter overrides for that strategy (validated by the registry). */
  anomalyParams: Record<string, ParamValue>;
  /** Folder of texture photos (DTD's dtd/images); null = procedural textures (draem.md §6 substitute). */
  texturesDir: string | null;
  /**
   * Side of the mean filter applied to the anomaly map before the image score's max (draem.md §4:
   * 21 at 256²). Odd. The cpu profile scales it with the resolution so it covers the same share
   * of the image.
   */
  scoreFilterSize: number;
  /**
   * Gradient checkpointing of the network blocks while training (src/nn/checkpoint.ts; network.ts
   * DraemCheckpointing): 'off', 'block' or 'layer'. Trades one more forward pass per step for
   * much less memory; the gradients, BN statistics and so the whole training trajectory are those
   * of 'off', so it is not part of the checkpoint's config hash (a run may resume with another
   * setting).
   */
  gradientCheckpointing: DraemCheckpointing;
  /** Training checkpoint every this many epochs (the last epoch is always saved). */
  checkpointEveryEpochs: number;
  /** Step checkpoints kept in `<runDir>/checkpoints`. */
  keepCheckpoints: number;
}

export type DraemProfile = 'paper' | 'cpu';

/** The official 21×21 filter at 256² scaled to `size`, rounded to the nearest odd integer (≥ 1). */
export function scaledScoreFilter(size: number, reference = 256, filter = 21): number {
  const f = (filter * size) / reference;
  const odd = 2 * Math.round((f - 1) / 2) + 1;
  return Math.max(1, odd);
}

export const DRAEM_PROFILES: Record<DraemProfile, DraemConfig> = {
  // Faithful to the official code (draem.md §2–§4): 256×256, batch 8, 700 epochs (README
  // command), Adam 1e-4 with the code's MultiStepLR, full widths (97,422,725 parameters), the
  // official anomaly simulator with DTD-style textures, 21×21 mean-filtered max as image score.
  // A checkpoint holds ~1.2 GB (weights + two Adam moments), so it is written every 10 epochs.
  // Gradient checkpointing per conv-BN-ReLU ('layer'): this profile's step (256², batch 8) needs
  // far more than wasm32's 4 GB without it (the 128², batch 4 step of these widths now fits
  // without it, 2.4 GB, since the training-memory work in docs/performance.md, optimisation 9);
  // elsewhere it trades ~25 % step time for memory and leaves the trajectory unchanged
  // (--set gradientCheckpointing=off).
  paper: {
    resize: 256,
    crop: 256,
    epochs: 700,
    batchSize: 8,
    lr: 1e-4,
    lrSchedule: 'official',
    reconstructiveWidth: 128,
    discriminativeWidth: 64,
    anomalyStrategy: 'draem',
    anomalyParams: {},
    texturesDir: null,
    scoreFilterSize: 21,
    gradientCheckpointing: 'layer',
    checkpointEveryEpochs: 10,
    keepCheckpoints: 2,
  },
  // Two-core CPU budget (README.md in this folder). 64×64 input; both networks at 1/8 of the
  // official base width (16 and 8 — 1.53 M parameters instead of 97.4 M; same topology, block
  // structure and names, same 2:1 width ratio); batch 8; lr 1e-3 instead of 1e-4 so that a few
  // hundred steps get somewhere (the official run is ~18,000 steps). 20 epochs (480 steps on
  // bottle's 188 training images): the official MultiStepLR milestones 0.8·20 = 16 and 0.9·20 = 18
  // are integers, so the official schedule itself now fires (×0.2 twice: 2e-4 for epochs 17–18,
  // 4e-5 for 19–20). The former 6 epochs (144 steps; 4.8 and 5.4 never fire) ended at the full
  // rate wherever the chaotic trajectory happened to be — image AUROC 70.70 ± 11.05 over seeds 0–4
  // on bottle; the longer run with the decayed end settles both the weights and the BatchNorm
  // running statistics the scores use (README.md, "cpu profile across seeds"). Same simulator,
  // loss and scoring; the mean filter is scaled to 5×5 (21/256 of the side). No gradient
  // checkpointing: the step needs < 0.5 GB and would be ~21 % slower with it.
  cpu: {
    resize: 64,
    crop: 64,
    epochs: 20,
    batchSize: 8,
    lr: 1e-3,
    lrSchedule: 'official',
    reconstructiveWidth: 16,
    discriminativeWidth: 8,
    anomalyStrategy: 'draem',
    anomalyParams: {},
    texturesDir: null,
    scoreFilterSize: scaledScoreFilter(64),
    gradientCheckpointing: 'off',
    checkpointEveryEpochs: 1,
    keepCheckpoints: 2,
  },
};
