import type { ParamValue } from '../../augment/types.js';
import type { BaseMethodConfig } from '../method.js';

/** The registry's CutPaste strategies (src/augment/cutpaste.ts); the method trains on any of them. */
export const CUTPASTE_VARIANTS = ['cutpaste-3way', 'cutpaste', 'cutpaste-scar', 'cutpaste-union'] as const;
export type CutPasteVariantName = (typeof CUTPASTE_VARIANTS)[number];

/** Where the anomaly map comes from (README.md "Localisation"): a shared GDE over one stage's spatial features. */
export type CutPasteMapLayer = 'layer3' | 'layer4';

/** CutPaste hyperparameters (cutpaste.md). Every choice the paper leaves open is a field here. */
export interface CutPasteConfig extends BaseMethodConfig {
  /** Square network input (cutpaste.md §2: whole image resized to 256×256, no crop). */
  resize: number;
  crop: number;
  /** Paper "epochs" of `stepsPerEpoch` update steps each (cutpaste.md §3: 256 × 256 = 65,536 steps). */
  epochs: number;
  stepsPerEpoch: number;
  /**
   * Source images per step (cutpaste.md §3, Runinho's reading: 32); each contributes its normal
   * view and one view per anomaly class, so the network sees 2× or 3× this many samples.
   */
  batchSize: number;
  /** Registry strategy that makes the views: 'cutpaste-3way' (paper's best, Table 1) or a binary variant. */
  variant: CutPasteVariantName;
  /** Parameter overrides for that strategy (src/augment/cutpaste.ts CUTPASTE_PARAMS); empty = paper A.2. */
  augmentParams: Readonly<Record<string, ParamValue>>;
  /** Projection head: headLayers × [Linear→512, BN1d, ReLU], [Linear→128, BN1d, ReLU], Linear→classes (cutpaste.md §2). */
  headLayers: number;
  /** 'scratch' (paper Table 1) or 'imagenet' (torchvision resnet18 V1 weights; `--weights FILE` implies it). */
  backboneInit: 'scratch' | 'imagenet';
  /** With ImageNet weights: backbone frozen for the first N steps (Runinho's `freeze_resnet` = 20); ignored from scratch. */
  freezeBackboneSteps: number;
  /** SGD (cutpaste.md §3): lr 0.03, momentum 0.9, coupled L2 3e-5, one cosine cycle to 0 over all steps. */
  lr: number;
  momentum: number;
  weightDecay: number;
  /** L2-normalise feature vectors before the Gaussian density estimator (Runinho; cutpaste.md §4, default on). */
  l2Normalize: boolean;
  /** Stage whose spatial features give the anomaly map (one shared GDE over all positions). */
  mapLayer: CutPasteMapLayer;
  /** Images per forward pass when extracting GDE features and scoring. */
  evalBatchSize: number;
  /** Checkpoint every this many epochs (each holds weights + SGD momentum: ~90 MB for ResNet-18). */
  checkpointEveryEpochs: number;
  keepCheckpoints: number;
}

/** The paper's scar geometry (pixels at 256², cutpaste.md §3). */
export const PAPER_SCAR = { scarWidthMin: 2, scarWidthMax: 16, scarLengthMin: 10, scarLengthMax: 25 } as const;

/**
 * Scar geometry for a `size`² input: the paper's pixel ranges × size/256 (at least 1 px), so a
 * scar covers the same share of the image at any resolution; {} at 256 (the strategy's defaults).
 */
export function scarParamsFor(size: number): Record<string, number> {
  if (size === 256) return {};
  const f = size / 256;
  const px = (v: number): number => Math.max(1, Math.round(v * f));
  return {
    scarWidthMin: px(PAPER_SCAR.scarWidthMin),
    scarWidthMax: Math.max(px(PAPER_SCAR.scarWidthMin), px(PAPER_SCAR.scarWidthMax)),
    scarLengthMin: px(PAPER_SCAR.scarLengthMin),
    scarLengthMax: Math.max(px(PAPER_SCAR.scarLengthMin), px(PAPER_SCAR.scarLengthMax)),
  };
}

export const CUTPASTE_PROFILES: Record<'paper' | 'cpu', CutPasteConfig> = {
  // cutpaste.md §2–4 as specified: 256² squashed, ResNet-18 from scratch + 2-layer head (Table 6's
  // 11,770,179 parameters), 3-way, 32 source images (96 samples) per step, 256 × 256 steps,
  // SGD 0.03 / momentum 0.9 / wd 3e-5, cosine to 0, GDE (Ledoit–Wolf) on L2-normalised pooled features.
  paper: {
    resize: 256,
    crop: 256,
    epochs: 256,
    stepsPerEpoch: 256,
    batchSize: 32,
    variant: 'cutpaste-3way',
    augmentParams: {},
    headLayers: 2,
    backboneInit: 'scratch',
    freezeBackboneSteps: 20,
    lr: 0.03,
    momentum: 0.9,
    weightDecay: 3e-5,
    l2Normalize: true,
    mapLayer: 'layer3',
    evalBatchSize: 16,
    checkpointEveryEpochs: 8,
    keepCheckpoints: 2,
  },
  // Minutes on two cores (README.md "Profiles"): 64² input, 8 source images (24 views) per step,
  // 4 × 40 = 160 steps, the same network, optimiser and cosine schedule. Scar sizes are pixels at
  // 256² in the paper (width 2–16, length 10–25): scaled by 64/256 so scars keep their share of
  // the image. Measured on bottle: README.md.
  cpu: {
    resize: 64,
    crop: 64,
    epochs: 4,
    stepsPerEpoch: 40,
    batchSize: 8,
    variant: 'cutpaste-3way',
    augmentParams: scarParamsFor(64),
    headLayers: 2,
    backboneInit: 'scratch',
    freezeBackboneSteps: 20,
    lr: 0.03,
    momentum: 0.9,
    weightDecay: 3e-5,
    l2Normalize: true,
    mapLayer: 'layer3',
    evalBatchSize: 16,
    checkpointEveryEpochs: 1,
    keepCheckpoints: 2,
  },
};

/** Classifier outputs of a variant: normal + one class per anomaly view (3-way: 3; binary: 2). */
export function numClasses(variant: CutPasteVariantName): number {
  return variant === 'cutpaste-3way' ? 3 : 2;
}
