import type { BaseMethodConfig } from '../method.js';

/** What to do when the encoder collapses to a constant (patchsvdd.md §3: λ too large → AUROC exactly 0.5). */
export type CollapseAction = 'error' | 'warn';

/** Patch SVDD hyperparameters (patchsvdd.md; official main_train.py / inspection.py). */
export interface PatchSvddConfig extends BaseMethodConfig {
  /** Square input side: images are squashed to it, no crop (patchsvdd.md §2: 256). */
  resize: number;
  crop: number;
  /** Training epochs (official: 300 loop iterations, the first evaluation only → 299). */
  epochs: number;
  /** Samples per stream per step (official: 64). */
  batchSize: number;
  /** Samples per training image per epoch and stream (official `repeat = 100`). */
  repeat: number;
  /** Adam learning rate (official 1e-4, default betas, no weight decay). */
  lr: number;
  /** λ in L = L_pos64 + L_pos32 + λ (L_svdd64 + L_svdd32) (patchsvdd.md §3 recommends 1e-3). */
  lambda: number;
  /** σ of the per-channel shift and per-pixel noise on position patches (official 0.02). */
  noiseSigma: number;
  /** Dense scoring strides for K = 64 and K = 32 (official 16 and 4 at 256²); both even. */
  stride64: number;
  stride32: number;
  /** Images per predict() call (dense scoring memory grows with it). */
  testBatchSize: number;
  /**
   * Collapse check after every epoch: mean per-dimension variance of f_big and f_small embeddings
   * of fixed probe patches; below this for both scales the encoder is constant. Tiny on purpose:
   * at PyTorch's default init (kept) the variance is already ~1e-8 (each valid conv + LeakyReLU
   * shrinks it ~6×), and training grows it; only an encoder constant to float32 precision
   * (saturated tanh: AUROC exactly 0.5, patchsvdd.md §3) should stop a run.
   */
  collapseVariance: number;
  collapseAction: CollapseAction;
  /** Step checkpoints kept. */
  keepCheckpoints: number;
}

export const PATCHSVDD_PROFILES: Record<'paper' | 'cpu', PatchSvddConfig> = {
  // patchsvdd.md §2–4 as specified: 256², batch 64 per stream, epoch = 100·N samples per stream
  // (≈ 100·N/64 steps), 299 training epochs, Adam 1e-4, λ = 1e-3, strides 16 / 4.
  paper: {
    resize: 256,
    crop: 256,
    epochs: 299,
    batchSize: 64,
    repeat: 100,
    lr: 1e-4,
    lambda: 1e-3,
    noiseSigma: 0.02,
    stride64: 16,
    stride32: 4,
    testBatchSize: 4,
    collapseVariance: 1e-12,
    collapseAction: 'error',
    keepCheckpoints: 2,
  },
  // Minutes on two loaded cores (README.md "Profiles"): the exact networks and streams at 128²
  // (the 64/32-px patches then cover half / a quarter of the side), batch 16 per stream, an epoch
  // of one sample per image and stream, 3 epochs at a 10× learning rate (5× already collapsed the
  // tiny runs: saturated tanh). Strides 16 / 8 (5×5 and 13×13 grids): stride 4 at K = 32 (25×25)
  // made the exact nearest-neighbour search ~14× dearer (625 queries per image against 117,500
  // vectors: 4 s per image here). At 256² dense scoring alone would exceed the whole budget.
  cpu: {
    resize: 128,
    crop: 128,
    epochs: 3,
    batchSize: 16,
    repeat: 1,
    lr: 1e-3,
    lambda: 1e-3,
    noiseSigma: 0.02,
    stride64: 16,
    stride32: 8,
    testBatchSize: 8,
    collapseVariance: 1e-12,
    collapseAction: 'error',
    keepCheckpoints: 2,
  },
};
