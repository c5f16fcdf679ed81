import { describe, expect, it } from 'vitest';
import { ablationCsv, ablationMarkdown, ablationRows, compatibleStrategies, strategySlot, strategyVariants } from '../src/bench/ablation.js';
import { enumerateRuns } from '../src/bench/matrix.js';
import type { RunRecord } from '../src/bench/report/runRecords.js';
import { ConfigError } from '../src/errors.js';
import { getMethod } from '../src/registry.js';

function record(variant: string, seed: number, auroc: number, trainS: number): RunRecord {
  return {
    dir: '', relDir: '', method: 'draem', paperId: 'draem', category: 'bottle', seed, profile: 'cpu', variant, dataSource: 'real', backboneInit: null,
    auroc, ap: 0.5, pixelAuroc: null, aupro: null, oracle: { precision: 1, recall: 1, f1: 0.8 }, calibrated: { precision: 1, recall: 0.5, f1: 0.4 },
    costs: { co2Kg: null, energyKj: 1, energyEstimated: true, gpuPowerW: null, trainTimeS: trainS, inferenceTimeS: 0.1, gpuUtilPct: null, modelSizeMParams: 1, gmacPtflops: 1, gmac: 1, phases: [] },
  };
}

describe('synthetic-anomaly ablation', () => {
  it("finds DRAEM's strategy field from its profile and offers only strategies of the same kind and role", () => {
    const draem = getMethod('draem');
    const slot = strategySlot(draem);
    expect(slot.field).toBe('anomalyStrategy');
    expect(slot.defaultStrategy?.name).toBe('draem');
    const ok = compatibleStrategies(slot);
    expect(ok).toContain('perlin');
    expect(ok).toContain('cutpaste');
    expect(ok).not.toContain('riad-masks'); // inpainting masks, not anomalies
    expect(ok).not.toContain('glass-gas'); // feature-level
    expect(strategyVariants(draem, ['perlin', 'draem'])).toEqual([
      { name: 'perlin', args: ['--set', 'anomalyStrategy=perlin'] },
      { name: 'draem', args: ['--set', 'anomalyStrategy=draem'] },
    ]);
    expect(() => strategyVariants(draem, ['none'])).toThrow(/needs a synthetic-anomaly strategy/);
    expect(() => strategyVariants(draem, ['riad-masks'])).toThrow(/cannot replace/);
    expect(() => strategyVariants(draem, ['nope'])).toThrow(ConfigError);
  });

  it("a method without synthetic anomalies has exactly one variant, 'none'", () => {
    const pc = getMethod('patchcore');
    expect(strategySlot(pc).field).toBeNull();
    expect(strategyVariants(pc, null)).toEqual([{ name: 'none', args: [] }]);
    expect(() => strategyVariants(pc, ['perlin'])).toThrow(/trains without synthetic anomalies/);
  });

  it('variants become run folders <method>/<category>/<strategy>/seed-N with the same seeds', () => {
    const runs = enumerateRuns({ methods: ['draem'], categories: ['bottle'], seeds: [0, 1], variants: strategyVariants(getMethod('draem'), ['perlin', 'draem']) });
    expect(runs.map((r) => r.id)).toEqual(['draem/bottle/perlin/seed-0', 'draem/bottle/perlin/seed-1', 'draem/bottle/draem/seed-0', 'draem/bottle/draem/seed-1']);
    expect(runs[1].args).toEqual(['--set', 'anomalyStrategy=perlin']);
  });

  it('the table has one row per strategy, mean ± std over seeds', () => {
    const rows = ablationRows([record('perlin', 0, 0.8, 10), record('perlin', 1, 0.9, 14), record('draem', 0, 0.7, 20)], ['draem', 'perlin', 'cutpaste']);
    expect(rows.map((r) => [r.strategy, r.runs])).toEqual([['draem', 1], ['perlin', 2], ['cutpaste', 0]]);
    const p = rows[1].cells;
    expect(p.auroc.mean).toBeCloseTo(85, 10);
    expect(p.auroc.std).toBeCloseTo(Math.sqrt(50), 10);
    expect(p.train_time_s).toMatchObject({ mean: 12, n: 2 });
    expect(p.train_time_s.std).toBeCloseTo(Math.sqrt(8), 10);
    expect(rows[0].cells.auroc).toEqual({ mean: 70, std: null, n: 1 });
    const md = ablationMarkdown({ method: 'DRAEM', category: 'bottle', rows, energyEstimated: true });
    expect(md).toContain('| perlin | 2 | 85.00 ± 7.07 |');
    expect(md).toContain('| cutpaste | 0 | — |');
    expect(ablationCsv(rows).split('\n')[2].startsWith('perlin,2,85,')).toBe(true);
  });
});
