/**
 * The DRAEM cpu profile relies on the official MultiStepLR milestones (0.8·E, 0.9·E) being whole
 * epochs so that the rate decays before scoring (src/models/draem/README.md, "cpu profile across
 * seeds"): with 6 epochs they never fired and five seeds spread over 61–89 image AUROC.
 */
import { describe, expect, it } from 'vitest';
import { DRAEM_PROFILES } from '../src/models/draem/index.js';
import { draemSchedule } from '../src/train/schedules.js';

describe('DRAEM cpu profile schedule', () => {
  it('decays ×0.2 at 0.8·E and again at 0.9·E epochs, ending at 4 % of the base rate', () => {
    const c = DRAEM_PROFILES.cpu;
    const stepsPerEpoch = Math.ceil(188 / c.batchSize); // bottle after the 10 % hold-out: 24
    const lr = draemSchedule({ baseLr: c.lr, epochs: c.epochs, stepsPerEpoch, paper: c.lrSchedule === 'paper' });
    const first = (epoch: number): number => lr(epoch * stepsPerEpoch);
    expect(first(0)).toBe(c.lr);
    expect(first(0.8 * c.epochs - 1)).toBe(c.lr);
    expect(first(0.8 * c.epochs)).toBeCloseTo(0.2 * c.lr, 12);
    expect(first(0.9 * c.epochs)).toBeCloseTo(0.04 * c.lr, 12);
    expect(lr(c.epochs * stepsPerEpoch - 1)).toBeCloseTo(0.04 * c.lr, 12);
  });
});
