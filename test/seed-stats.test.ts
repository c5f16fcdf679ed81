/**
 * src/eval/seedStats.ts on hand-computed numbers: mean, sample sd (n − 1), min/max, nulls left
 * out, the markdown table and the --seeds parser.
 */
import { describe, expect, it } from 'vitest';
import { describeValues, parseSeedList, renderSeedsMarkdown, seedRowFromRun, summarizeSeeds, trainCpuSeconds } from '../src/eval/seedStats.js';

const metricsJson = (auroc: number, aupro: number | null) => ({
  image: { auroc, ap: 0.5 },
  pixel: { auroc: 0.8, aupro },
  calibrated: { threshold: 1, precision: 0.6, recall: 0.4, f1: 0.48, rule: 'q' },
  oracle: { threshold: 2, precision: 1, recall: 0.5, f1: 2 / 3 },
});

describe('describeValues', () => {
  it('mean, sample sd with n − 1, min and max', () => {
    // mean 0.8; deviations ±0.1, 0 → sd = sqrt((0.01 + 0 + 0.01) / 2) = 0.1 (population sd would be 0.0816)
    const d = describeValues([0.9, 0.7, 0.8]);
    expect(d.n).toBe(3);
    expect(d.mean).toBeCloseTo(0.8, 12);
    expect(d.sd).toBeCloseTo(0.1, 12);
    expect(d.min).toBe(0.7);
    expect(d.max).toBe(0.9);
    // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum 32 → sd = sqrt(32/7) = 2.138089935
    expect(describeValues([2, 4, 4, 4, 5, 5, 7, 9]).sd).toBeCloseTo(2.138089935, 8);
  });
  it('nulls and non-finite values are left out; one value has no sd; none has no statistics', () => {
    const d = describeValues([0.5, null, 1.0, Number.NaN]);
    expect(d.n).toBe(2);
    expect(d.mean).toBeCloseTo(0.75, 12);
    expect(d.sd).toBeCloseTo(Math.SQRT1_2 * 0.5, 12); // sqrt(2 · 0.25² / 1) = 0.35355
    expect(describeValues([0.3])).toEqual({ n: 1, mean: 0.3, sd: null, min: 0.3, max: 0.3 });
    expect(describeValues([null, null])).toEqual({ n: 0, mean: null, sd: null, min: null, max: null });
  });
});

describe('summarizeSeeds / renderSeedsMarkdown', () => {
  const rows = [
    seedRowFromRun(3, '/r/seed-3', metricsJson(0.7, 0.4), { wallTimeS: 100, trainCpuS: 50 }),
    seedRowFromRun(0, '/r/seed-0', metricsJson(0.9, null), { wallTimeS: 140, trainCpuS: 70 }),
    seedRowFromRun(1, '/r/seed-1', metricsJson(0.8, 0.6), { wallTimeS: null, trainCpuS: 60 }),
  ];
  const s = summarizeSeeds(rows);
  const get = (k: string) => s.metrics.find((m) => m.key === k)!;

  it('reads every metric of metrics.json and the wall time, sorted by seed', () => {
    expect(s.seeds).toEqual([0, 1, 3]);
    expect(rows[0].values['oracle.f1']).toBeCloseTo(2 / 3, 12);
    expect(rows[0].values['calibrated.recall']).toBe(0.4);
    expect(get('image.auroc')).toMatchObject({ n: 3, min: 0.7, max: 0.9 });
    expect(get('image.auroc').mean).toBeCloseTo(0.8, 12);
    expect(get('image.auroc').sd).toBeCloseTo(0.1, 12);
    expect(get('pixel.aupro')).toMatchObject({ n: 2, min: 0.4, max: 0.6 });
    expect(get('pixel.aupro').sd).toBeCloseTo(Math.sqrt(0.02), 12);
    expect(get('image.ap').sd).toBe(0);
    expect(get('wallTimeS')).toMatchObject({ n: 2, mean: 120, min: 100, max: 140 });
    expect(get('wallTimeS').sd).toBeCloseTo(Math.sqrt(800), 10); // (±20)² · 2 / 1
    expect(get('trainCpuS')).toMatchObject({ n: 3, mean: 60, min: 50, max: 70 });
    expect(get('trainCpuS').sd).toBeCloseTo(10, 12);
  });

  it('markdown: points with two decimals, seconds with one, per-seed rows with n/a', () => {
    const md = renderSeedsMarkdown({ method: 'DRAEM', category: 'bottle', profile: 'cpu', dataSource: 'real', command: 'x' }, s);
    expect(md).toContain('| image AUROC | 80.00 ± 10.00 | 70.00 | 90.00 | 3 |');
    expect(md).toContain('| AUPRO | 50.00 ± 14.14 | 40.00 | 60.00 | 2 |');
    expect(md).toContain('| wall time (s) | 120.0 ± 28.3 | 100.0 | 140.0 | 2 |');
    expect(md).toMatch(/\| 0 \| 90\.00 \| 50\.00 \| 80\.00 \| n\/a \|/);
    expect(md).toContain('| train CPU time (s) | 60.0 ± 10.0 | 50.0 | 70.0 | 3 |');
    expect(md).toMatch(/\| 1 \| 80\.00 .*\| n\/a \| 60\.0 \|\n/);
    expect(md).not.toContain('SYNTHETIC');
    const one = renderSeedsMarkdown({ method: 'm', category: 'c', profile: 'p', dataSource: 'synthetic', command: 'x' }, summarizeSeeds([rows[0]]));
    expect(one).toContain('| image AUROC | 70.00 | 70.00 | 70.00 | 1 |');
    expect(one).toContain('SYNTHETIC DATA');
  });
});

describe('trainCpuSeconds', () => {
  it("adds user and system CPU seconds of costs.json's train phase; null without one", () => {
    const costs = { phases: [{ phase: 'test', process: { cpuUserS: 9, cpuSystemS: 9 } }, { phase: 'train', process: { cpuUserS: 58.5, cpuSystemS: 1.25 } }] };
    expect(trainCpuSeconds(costs)).toBe(59.75);
    expect(trainCpuSeconds({ phases: [{ phase: 'test', process: { cpuUserS: 1, cpuSystemS: 1 } }] })).toBeNull();
    expect(trainCpuSeconds({ phases: [{ phase: 'train', process: { cpuUserS: 1 } }] })).toBeNull();
    expect(trainCpuSeconds(null)).toBeNull();
  });
});

describe('parseSeedList', () => {
  it('a count gives 0..N−1, a comma list is taken as is, anything else is null', () => {
    expect(parseSeedList('5')).toEqual([0, 1, 2, 3, 4]);
    expect(parseSeedList('1')).toEqual([0]);
    expect(parseSeedList('0,3,7')).toEqual([0, 3, 7]);
    expect(parseSeedList(' 2, 9 ')).toEqual([2, 9]);
    for (const bad of ['0', '', '-1', '1.5', '0,,3', '3,3', 'a', '0,-2']) expect(parseSeedList(bad), bad).toBeNull();
  });
});
