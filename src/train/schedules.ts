import { ConfigError } from '../errors.js';

/**
 * A learning-rate schedule: global training step (0-based optimizer iteration) → learning rate.
 * The trainer assigns `optimizer.lr = schedule(step)` before step `step`. Pure functions, so a
 * resumed run recomputes the same rates without schedule state in the checkpoint.
 *
 * Which spec uses which:
 *  - DRAEM (draem.md §3): `draemSchedule` = multiStep at 0.8·E and 0.9·E epochs, γ = 0.2, Adam 1e-4.
 *  - RIAD (riad.md §3): plutoyuxie ×0.1 at epoch 250 → `multiStep({milestones: [250], gamma: 0.1})`;
 *    taikiinoue's warm restarts with eta_min = lr are `constant`.
 *  - CutPaste (cutpaste.md §3): one cosine cycle to 0 over all steps → `cosineAnnealing({tMax: N})`.
 *  - Dinomaly (dinomaly.md §3): `warmCosine` (100 warm-up iterations, 2e-3 → 2e-4).
 *  - DiffusionAD (diffusionad.md §3): Seg net CosineAnnealingLR(T_max=10) stepped per iteration
 *    → `cosineAnnealing({tMax: 10})` (periodic, period 20; not clamped).
 *  - GLASS, Patch SVDD, MSPBA, DDAD: `constant`.
 */
export type Schedule = (step: number) => number;

export function constant(lr: number): Schedule {
  return () => lr;
}

export interface MultiStepOptions {
  baseLr: number;
  /**
   * Milestones in units of `stepsPerUnit` steps (epochs when stepsPerUnit = steps per epoch).
   * PyTorch MultiStepLR semantics: the rate is multiplied by γ when the unit counter (PyTorch's
   * last_epoch) *equals* a milestone, so a non-integer milestone never fires (train_DRAEM.py
   * passes epochs·0.8 as a float: for E = 700 it is 560.0 and fires; for E = 7 it is 5.6 and does not).
   * Repeated milestones multiply repeatedly (Counter semantics).
   */
  milestones: readonly number[];
  gamma: number;
  /** Steps per milestone unit (default 1: milestones counted in steps). */
  stepsPerUnit?: number;
}

/** torch.optim.lr_scheduler.MultiStepLR, stepped once per unit (epoch). */
export function multiStep(opts: MultiStepOptions): Schedule {
  const unit = opts.stepsPerUnit ?? 1;
  if (!(unit >= 1) || !Number.isInteger(unit)) throw new ConfigError(`multiStep: stepsPerUnit must be a positive integer, got ${unit}`);
  const effective = opts.milestones.filter((m) => Number.isInteger(m) && m >= 0);
  return (step: number) => {
    const e = Math.floor(step / unit);
    let lr = opts.baseLr;
    for (const m of effective) if (m <= e) lr *= opts.gamma;
    return lr;
  };
}

/**
 * DRAEM's official schedule (train_DRAEM.py; draem.md §3): MultiStepLR([E·0.8, E·0.9], γ = 0.2),
 * stepped per epoch. The paper (and anomalib) instead use ×0.1 after epochs 400 and 600: pass
 * `{ paper: true }` for that variant.
 */
export function draemSchedule(opts: { baseLr?: number; epochs: number; stepsPerEpoch: number; paper?: boolean }): Schedule {
  const baseLr = opts.baseLr ?? 1e-4;
  return opts.paper
    ? multiStep({ baseLr, milestones: [400, 600], gamma: 0.1, stepsPerUnit: opts.stepsPerEpoch })
    : multiStep({ baseLr, milestones: [opts.epochs * 0.8, opts.epochs * 0.9], gamma: 0.2, stepsPerUnit: opts.stepsPerEpoch });
}

export interface CosineAnnealingOptions {
  baseLr: number;
  /** Half-period in units (PyTorch T_max). */
  tMax: number;
  etaMin?: number;
  stepsPerUnit?: number;
}

/**
 * torch.optim.lr_scheduler.CosineAnnealingLR closed form,
 *   lr(k) = eta_min + (base − eta_min)·(1 + cos(π·k / T_max)) / 2,  k = ⌊step / stepsPerUnit⌋,
 * not clamped after T_max (it rises again, period 2·T_max, as PyTorch's recursion does).
 */
export function cosineAnnealing(opts: CosineAnnealingOptions): Schedule {
  const unit = opts.stepsPerUnit ?? 1;
  const etaMin = opts.etaMin ?? 0;
  if (!(opts.tMax > 0)) throw new ConfigError(`cosineAnnealing: tMax must be > 0, got ${opts.tMax}`);
  return (step: number) => {
    const k = Math.floor(step / unit);
    return etaMin + ((opts.baseLr - etaMin) * (1 + Math.cos((Math.PI * k) / opts.tMax))) / 2;
  };
}

export interface WarmCosineOptions {
  baseLr: number;
  finalLr: number;
  totalSteps: number;
  warmupSteps?: number;
  warmupStartLr?: number;
}

/**
 * Linear warm-up then cosine decay, per iteration; Dinomaly's WarmCosineScheduler
 * (dinomaly.md §3, utils.py): with W warm-up and N total iterations,
 *   i < W:      lr = start + (base − start)·i/(W − 1)        (np.linspace(start, base, W))
 *   W ≤ i < N:  lr = final + ½(base − final)(1 + cos(π(i − W)/(N − W)))
 *   i ≥ N:      lr = final.
 * Spec check values (base 2e-3, final 2e-4, W 100, N 10,000): i=50 → 1.0101e-3, i=5000 → 1.1143e-3, i=9999 → 2.0e-4.
 */
export function warmCosine(opts: WarmCosineOptions): Schedule {
  const w = opts.warmupSteps ?? 0;
  const n = opts.totalSteps;
  const start = opts.warmupStartLr ?? 0;
  if (!(n > w) || w < 0) throw new ConfigError(`warmCosine: need totalSteps > warmupSteps >= 0, got ${n}, ${w}`);
  return (i: number) => {
    if (i >= n) return opts.finalLr;
    if (i < w) return w === 1 ? start : start + ((opts.baseLr - start) * i) / (w - 1);
    return opts.finalLr + 0.5 * (opts.baseLr - opts.finalLr) * (1 + Math.cos((Math.PI * (i - w)) / (n - w)));
  };
}
