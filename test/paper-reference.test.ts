import { describe, expect, it } from 'vitest';
import { PAPER_CATEGORY_ORDER } from '../src/data/categories.js';
import { PAPER_DOI, PAPER_METHOD_IDS, PAPER_SOURCE, PAPER_TABLE_SOURCES, paperCategoryResult, paperCosts, paperGroupResult, paperTable } from '../src/eval/paperReference.js';

const TABLES = ['table1_global', 'table2_fixed', 'table3_rotating', 'table4_textures', 'table5_environment', 'table6_hardware', 'a1_auc_per_class', 'a2_recall_per_class', 'a3_f1_per_class', 'a4_ap_per_class'];

describe("the paper's numbers (one data file, with their source)", () => {
  it('holds Tables 1-6 and A1-A4, each with the paper table and text lines it came from', () => {
    expect(PAPER_SOURCE).toMatch(/Cools.*2025/);
    expect(PAPER_DOI).toBe('10.3390/bdcc9050128');
    expect(Object.keys(PAPER_TABLE_SOURCES).sort()).toEqual([...TABLES].sort());
    for (const t of TABLES) {
      expect(PAPER_TABLE_SOURCES[t].paperTable).toMatch(/^Table (A?[1-6])$/);
      expect(PAPER_TABLE_SOURCES[t].textLines).toMatch(/^\d+-\d+$/);
      expect(paperTable(t).map((r) => r.id).sort()).toEqual([...PAPER_METHOD_IDS].sort());
    }
    expect(PAPER_METHOD_IDS).toHaveLength(10);
    expect(() => paperTable('table7')).toThrow(/no paper table/);
  });

  it('spot values as printed, and the gaps the paper has (A4 lacks RIAD and PatchSVDD)', () => {
    expect(paperCategoryResult('patchcore', 'screw')).toEqual({ auroc: 98.68, recall: 96.64, f1: 96.23, ap: 98.65 });
    expect(paperCategoryResult('riad', 'bottle')?.ap).toBeNull();
    expect(paperGroupResult('riad', 'global')?.ap).toBe(82.07);
    expect(paperGroupResult('dinomaly', 'textures')?.auroc).toBe(99.94);
    expect(paperCosts('patchcore')).toMatchObject({ energyKj: 233.46, trainTimeS: 135, gmac: 9.24 });
  });

  it('per-class averages and group tables agree with the per-class rows (tables README checks 2, 3)', () => {
    const fixed = ['bottle', 'cable', 'capsule', 'pill', 'toothbrush', 'transistor', 'zipper'];
    const rotating = ['hazelnut', 'metal_nut', 'screw'];
    const textures = ['carpet', 'grid', 'leather', 'tile', 'wood'];
    const m = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
    for (const id of PAPER_METHOD_IDS) {
      for (const metric of ['auroc', 'recall', 'f1', 'ap'] as const) {
        const v = (c: string): number | null => paperCategoryResult(id, c)![metric];
        if (v('bottle') === null) continue; // A4 rows missing for RIAD, PatchSVDD
        expect(m(PAPER_CATEGORY_ORDER.map((c) => v(c) as number))).toBeCloseTo(v('average') as number, 2);
        for (const [group, cats] of [['fixed', fixed], ['rotating', rotating], ['textures', textures]] as const) {
          expect(Math.abs(m(cats.map((c) => v(c) as number)) - (paperGroupResult(id, group)![metric] as number))).toBeLessThan(0.006);
        }
      }
    }
  });
});
