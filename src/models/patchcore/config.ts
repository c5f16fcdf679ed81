import type { DistanceKind } from '../../nn/nearestNeighbour.js';

/** PatchCore hyperparameters (patchcore.md; official `sample_training.sh` WR50 baseline). */
export interface PatchCoreConfig {
  backbone: string;
  /** Backbone taps, finest first. */
  layers: string[];
  /** Resize (shorter side) then centre crop, as the official MVTec loader. */
  resize: number;
  crop: number;
  patchSize: number;
  pretrainDim: number;
  targetDim: number;
  /** Fraction of patch features kept by the coreset (official baseline 0.10). */
  coresetRatio: number;
  projectionDim: number;
  distance: DistanceKind;
  /** Paper eq. 7 re-weighting of the image score (absent from official code). */
  reweight: boolean;
  reweightNeighbours: number;
  /** Gaussian blur of the upsampled map (official sigma 4, truncate 4). */
  blurSigma: number;
  batchSize: number;
}

export const PATCHCORE_PROFILES: Record<'paper' | 'cpu', PatchCoreConfig> = {
  // Official IM224_WR50_L2-3_P01_D1024-1024_PS-3_AN-1 (10% coreset, seed 0).
  paper: {
    backbone: 'wide_resnet50_2',
    layers: ['layer2', 'layer3'],
    resize: 256,
    crop: 224,
    patchSize: 3,
    pretrainDim: 1024,
    targetDim: 1024,
    coresetRatio: 0.1,
    projectionDim: 128,
    distance: 'squared-l2',
    reweight: false,
    reweightNeighbours: 9,
    blurSigma: 4,
    batchSize: 2,
  },
  // Same pipeline at 128 px (16x16 patch grid, ~3x fewer backbone MACs) with the paper's 1%
  // coreset (PatchCore-1%: 99.0 image AUROC, as the 10% model): the greedy selection is
  // O(N · count · 128) and dominates fit time on CPU (bottle at 10%: 4.8k x 48k x 128, ~2-5 min
  // on two cores; at 1%: ~10-30 s). Blur sigma scaled with the resolution.
  cpu: {
    backbone: 'wide_resnet50_2',
    layers: ['layer2', 'layer3'],
    resize: 146,
    crop: 128,
    patchSize: 3,
    pretrainDim: 1024,
    targetDim: 1024,
    coresetRatio: 0.01,
    projectionDim: 128,
    distance: 'squared-l2',
    reweight: false,
    reweightNeighbours: 9,
    blurSigma: 2.3,
    batchSize: 4,
  },
};
