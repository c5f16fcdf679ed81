import type { ParamValue } from '../../augment/types.js';
import type { BaseMethodConfig } from '../method.js';

/** How the MSGMS term handles colour (riad.md §3 "Colour handling differs"). */
export type MsgmsColour =
  /** taikiinoue45: Prewitt per RGB channel (zero pad 1), channel mean of the GMS maps. Recommended by the spec. */
  | 'rgb'
  /** plutoyuxie: channel mean to grey, 3×3 median filter (zero padding), Prewitt without padding. */
  | 'grey-median';

export type RiadSmoothing =
  /** size×size mean filter, zero padding counted (taikiinoue45 `mean_smoothing`, riad.md §4 step 4). */
  | { kind: 'mean'; size: number }
  /** scipy gaussian_filter(σ), 'reflect' border, truncate 4 (plutoyuxie test.py). */
  | { kind: 'gaussian'; sigma: number };

/** RIAD hyperparameters (riad.md). Every choice that differs between the two reproductions is a field here. */
export interface RiadConfig extends BaseMethodConfig {
  /** Square input side after resize (riad.md §2: 256, no crop). */
  resize: number;
  crop: number;
  /** Maximum epochs (riad.md §3: at most 300). */
  epochs: number;
  /** Images per mini-batch (riad.md §3: 4). */
  batchSize: number;
  /** U-Net base width; 64 = the reference network (28,805,699 parameters). */
  width: number;
  /**
   * Training masks: a registered 'inpaint' strategy of src/augment and its parameter overrides
   * (riad.md §3 "Disjoint masks": 'riad-masks', cell sizes {2,4,8,16}, n = 3).
   */
  masks: { strategy: string; params: Readonly<Record<string, ParamValue>> };
  /** Cell sizes K used at inference, one reconstruction each (riad.md §4 step 1). */
  testCellSizes: readonly number[];
  /** Random partitions averaged per cell size at inference (1 = the reference's single draw). */
  testDraws: number;
  /** Seed of the fixed inference partitions (riad.md §4: seed them for reproducible scores). */
  evalSeed: number;
  /** L = mse·MSE + msgms·L_MSGMS + ssim·L_SSIM (riad.md §3: all 1). */
  lossWeights: { mse: number; msgms: number; ssim: number };
  /** MSGMS scales (riad.md §3: 4 = image + 3 average-pooled copies). */
  msgmsScales: number;
  msgmsColour: MsgmsColour;
  /** Adam (riad.md §3: lr 1e-4, weight decay 1e-5 coupled as torch.optim.Adam). */
  lr: number;
  weightDecay: number;
  /** MultiStepLR in epochs (plutoyuxie: ×0.1 at epoch 250). Empty = constant (taikiinoue's warm restarts with eta_min = lr). */
  lrMilestones: readonly number[];
  lrGamma: number;
  /** Early stopping on the validation loss (riad.md §3: patience 20); 0 disables it. */
  earlyStopPatience: number;
  /** Load the best-validation weights at the end (plutoyuxie keeps the best checkpoint). */
  restoreBest: boolean;
  /** Validate every this many epochs (needs FitContext.validation). */
  validateEvery: number;
  /** Map smoothing before the max (riad.md §4 step 4: mean 21×21 at 256²). */
  smoothing: RiadSmoothing;
  /** Step checkpoints kept (each holds weights + two Adam slots: ~350 MB at width 64). */
  keepCheckpoints: number;
}

const RIAD_MASKS = { strategy: 'riad-masks', params: { cellSizes: [2, 4, 8, 16], numMasks: 3 } } as const;

export const RIAD_PROFILES: Record<'paper' | 'cpu', RiadConfig> = {
  // riad.md §2–4 as specified: 256², reference U-Net, Adam 1e-4 / wd 1e-5, batch 4, ≤ 300 epochs,
  // ×0.1 at epoch 250 (plutoyuxie), early stopping patience 20 keeping the best-validation weights,
  // per-channel MSGMS, mean-21 smoothing, max score.
  paper: {
    resize: 256,
    crop: 256,
    epochs: 300,
    batchSize: 4,
    width: 64,
    masks: RIAD_MASKS,
    testCellSizes: [2, 4, 8, 16],
    testDraws: 1,
    evalSeed: 0,
    lossWeights: { mse: 1, msgms: 1, ssim: 1 },
    msgmsScales: 4,
    msgmsColour: 'rgb',
    lr: 1e-4,
    weightDecay: 1e-5,
    lrMilestones: [250],
    lrGamma: 0.1,
    earlyStopPatience: 20,
    restoreBest: true,
    validateEvery: 1,
    smoothing: { kind: 'mean', size: 21 },
    keepCheckpoints: 1,
  },
  // Minutes on two loaded cores (README.md "Profiles"): 64² input, U-Net width 8 (0.45 M
  // parameters), 5 epochs at lr 1e-3 with ×0.1 for the last one, smoothing 5×5 (≈ 21·64/256).
  // Masks, loss, batch size and scoring are the paper's. Measured on bottle: README.md.
  cpu: {
    resize: 64,
    crop: 64,
    epochs: 5,
    batchSize: 4,
    width: 8,
    masks: RIAD_MASKS,
    testCellSizes: [2, 4, 8, 16],
    testDraws: 1,
    evalSeed: 0,
    lossWeights: { mse: 1, msgms: 1, ssim: 1 },
    msgmsScales: 4,
    msgmsColour: 'rgb',
    lr: 1e-3,
    weightDecay: 1e-5,
    lrMilestones: [4],
    lrGamma: 0.1,
    earlyStopPatience: 0,
    restoreBest: false,
    validateEvery: 1,
    smoothing: { kind: 'mean', size: 5 },
    keepCheckpoints: 2,
  },
};
