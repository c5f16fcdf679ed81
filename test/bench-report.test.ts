import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ranks, stat } from '../src/bench/report/aggregate.js';
import { tableCsv, tableMarkdown } from '../src/bench/report/render.js';
import { scanRuns } from '../src/bench/report/runRecords.js';
import { allTables, type ReportTable, type TableCell } from '../src/bench/report/tables.js';
import { writeReport } from '../src/bench/report/writeReport.js';
import { MVTEC_CATEGORIES } from '../src/data/categories.js';

interface Fake {
  method: string;
  category: string;
  seed: number;
  auroc: number;
  recall?: number;
  calF1?: number;
  trainS?: number;
}

/** A run folder as train.ts writes it (only the fields the report reads). */
function writeRun(root: string, f: Fake): void {
  const dir = join(root, f.method, f.category, `seed-${f.seed}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ method: f.method, paperId: f.method, category: f.category, seed: f.seed, profile: 'cpu', dataSource: 'real' }));
  writeFileSync(join(dir, 'metrics.json'), JSON.stringify({
    image: { auroc: f.auroc, ap: f.auroc - 0.1 },
    pixel: { auroc: null, aupro: null },
    oracle: { precision: 1, recall: f.recall ?? 1, f1: 0.9 },
    calibrated: { precision: 1, recall: 0.5, f1: f.calF1 ?? 0.5, rule: 'q' },
    backboneInit: 'pretrained',
  }));
  const c = (value: number | null, estimated = false): object => ({ value, estimated });
  writeFileSync(join(dir, 'costs.json'), JSON.stringify({
    schema: 'adbench-costs/1',
    table5: { co2Kg: c(0.001, true), energyKj: c(7.5, true), gpuPowerW: c(null) },
    table6: { trainTimeS: c(f.trainS ?? 100), inferenceTimeS: c(0.05), gpuUtilPct: c(null), modelSizeMParams: c(2), gmacPtflops: c(1.5), gmac: c(1.6) },
    phases: [],
  }));
  // Ten test images, labels 0,0,0,0,0,1,1,1,1,1; scores rank them by label with one swap.
  const rows = ['id,score,label,defect_type,split'];
  for (let i = 0; i < 10; i++) rows.push(`test/${i < 5 ? 'good' : 'crack'}/${i},${i === 4 ? 7 : i},${i < 5 ? 0 : 1},x,test`);
  rows.push('train/good/9,0.1,0,good,validation');
  writeFileSync(join(dir, 'scores.csv'), `${rows.join('\n')}\n`);
}

const get = (t: ReportTable, row: string, scope: string, metric: string, threshold = 'none'): TableCell => {
  const c = t.cells.find((x) => x.row === row && x.scope === scope && x.metric === metric && x.threshold === threshold);
  if (!c) throw new Error(`no cell ${t.name} ${row} ${scope} ${metric} ${threshold}`);
  return c;
};

function fixture(): string {
  const root = mkdtempSync(join(tmpdir(), 'bench-report-'));
  const runs: Fake[] = [
    { method: 'patchcore', category: 'bottle', seed: 0, auroc: 0.9, calF1: 0.7, trainS: 10 },
    { method: 'patchcore', category: 'bottle', seed: 1, auroc: 0.94, calF1: 0.8, trainS: 20 },
    { method: 'patchcore', category: 'screw', seed: 0, auroc: 0.8, trainS: 30 },
    { method: 'patchcore', category: 'screw', seed: 1, auroc: 0.7, trainS: 40 },
    { method: 'draem', category: 'bottle', seed: 0, auroc: 0.96 },
    { method: 'draem', category: 'bottle', seed: 1, auroc: 0.96 },
    { method: 'draem', category: 'screw', seed: 0, auroc: 0.6 },
  ];
  for (const r of runs) writeRun(root, r);
  // A killed run: config.json only. Reported as incomplete, never as a cell.
  mkdirSync(join(root, 'draem', 'screw', 'seed-1'), { recursive: true });
  writeFileSync(join(root, 'draem', 'screw', 'seed-1', 'config.json'), '{}');
  mkdirSync(join(root, 'logs'), { recursive: true });
  return root;
}

describe('report statistics', () => {
  it('sample std, competition ranks with ties, nulls unranked', () => {
    expect(stat([1, 2, 3, 4])).toEqual({ mean: 2.5, std: Math.sqrt(5 / 3), n: 4 });
    expect(stat([5])).toEqual({ mean: 5, std: null, n: 1 });
    expect(stat([null])).toEqual({ mean: null, std: null, n: 0 });
    expect(ranks([90, 95, 90, null, 80])).toEqual([2, 1, 2, null, 4]);
    expect(ranks([3, 1, 2], true)).toEqual([3, 1, 2]);
  });
});

describe('report tables from run folders', () => {
  const root = fixture();
  const scan = scanRuns(root);
  const tables = new Map(allTables(scan.records).map((t) => [t.name, t]));
  const T = (n: string): ReportTable => tables.get(n)!;

  it('reads complete runs and lists the incomplete one', () => {
    expect(scan.records).toHaveLength(7);
    expect(scan.incomplete).toEqual(['draem/screw/seed-1']);
  });

  it('per-class cells: mean ± std over seeds beside the paper, with the difference', () => {
    const pb = get(T('a1_auc_per_class'), 'patchcore', 'bottle', 'auroc');
    expect(pb.value).toBeCloseTo(92, 10);
    expect(pb.std).toBeCloseTo(Math.sqrt(8), 10); // (90, 94): sqrt((4 + 4) / 1)
    expect(pb.nSeeds).toBe(2);
    expect(pb.paper).toBe(100); // Table A1, PatchCore, bottle
    expect(pb.diff).toBeCloseTo(-8, 10);
    const db = get(T('a1_auc_per_class'), 'draem', 'bottle', 'auroc');
    expect(db).toMatchObject({ value: 96, std: 0, paper: 98.9, rank: 1, paperRank: 2 });
    expect(db.diff).toBeCloseTo(96 - 98.9, 10);
    expect(pb).toMatchObject({ rank: 2, paperRank: 1 });
    const ds = get(T('a1_auc_per_class'), 'draem', 'screw', 'auroc');
    expect(ds).toMatchObject({ value: 60, std: null, nSeeds: 1, paper: 97.73 });
    // The killed seed-1 run is not in any cell.
    expect(T('a1_auc_per_class').cells.filter((c) => c.row === 'draem' && c.scope === 'screw')).toHaveLength(1);
  });

  it('calibrated and oracle thresholds are separate, labelled cells', () => {
    const a3 = T('a3_f1_per_class');
    expect(get(a3, 'patchcore', 'bottle', 'f1', 'oracle').value).toBeCloseTo(90, 10);
    expect(get(a3, 'patchcore', 'bottle', 'f1', 'calibrated').value).toBeCloseTo(75, 10);
    expect(get(a3, 'patchcore', 'bottle', 'f1', 'calibrated').std).toBeCloseTo(Math.sqrt(50), 10);
    expect(get(a3, 'patchcore', 'bottle', 'f1', 'oracle').paper).toBe(100);
    expect(a3.columns.map((c) => c.label)).toEqual(['F1 (oracle)', 'F1 (calibrated)']);
    // All oracle recalls are 100: a tie, both rank 1.
    expect(get(T('table1_global'), 'patchcore', 'global', 'recall', 'oracle').rank).toBe(1);
    expect(get(T('table1_global'), 'draem', 'global', 'recall', 'oracle').rank).toBe(1);
  });

  it('group averages are means of category means; the spread is over per-seed averages', () => {
    const pg = get(T('table1_global'), 'patchcore', 'global', 'auroc');
    expect(pg.value).toBeCloseTo((92 + 75) / 2, 10);
    // Per seed: (90 + 80) / 2 = 85 and (94 + 70) / 2 = 82 -> std sqrt(4.5).
    expect(pg.std).toBeCloseTo(Math.sqrt(4.5), 10);
    expect(pg).toMatchObject({ nCategories: 2, paperCategories: 15, paper: 98.89, rank: 1, diff: null });
    const dg = get(T('table1_global'), 'draem', 'global', 'auroc');
    expect(dg.value).toBeCloseTo(78, 10); // (96 + 60) / 2
    expect(dg).toMatchObject({ std: null, nSeeds: 1, rank: 2 });
    // Rotating objects: screw only; fixed: bottle only; textures: no runs.
    expect(get(T('table3_rotating'), 'patchcore', 'rotating objects', 'auroc')).toMatchObject({ value: 75, paper: 99.49, nCategories: 1, paperCategories: 3, rank: 1 });
    expect(get(T('table2_fixed'), 'draem', 'fixed objects', 'auroc')).toMatchObject({ value: 96, rank: 1 });
    expect(T('table4_textures').cells).toHaveLength(0);
    // Per-class 'average' column equals the global cell.
    expect(get(T('a1_auc_per_class'), 'patchcore', 'average', 'auroc').value).toBeCloseTo(83.5, 10);
  });

  it('cost tables: mean ± std over runs, lower is better, ratio to the paper', () => {
    const pt = get(T('table6_hardware'), 'patchcore', 'all runs', 'train_time_s');
    expect(pt.value).toBe(25);
    expect(pt.std).toBeCloseTo(Math.sqrt(500 / 3), 10);
    expect(pt.ratio).toBeCloseTo(25 / 135, 10); // Table 6: PatchCore 135 s
    expect(pt.rank).toBe(1);
    expect(get(T('table6_hardware'), 'draem', 'all runs', 'train_time_s')).toMatchObject({ value: 100, std: 0, rank: 2, paper: 9137 });
    expect(get(T('table5_environment'), 'draem', 'all runs', 'energy_kj').estimated).toBe(true);
  });

  it('the report holds exactly the expected cells', () => {
    const count = (n: string): number => T(n).cells.length;
    // 2 rows x 6 performance columns for global; fixed and rotating too; textures none.
    expect([count('table1_global'), count('table2_fixed'), count('table3_rotating'), count('table4_textures')]).toEqual([12, 12, 12, 0]);
    // 2 rows x (2 classes + average) x thresholds.
    expect([count('a1_auc_per_class'), count('a2_recall_per_class'), count('a3_f1_per_class'), count('a4_ap_per_class')]).toEqual([6, 12, 12, 6]);
    expect([count('table5_environment'), count('table6_hardware')]).toEqual([6, 12]);
    expect(tableCsv(T('a1_auc_per_class')).trim().split('\n')).toHaveLength(7);
    const md = tableMarkdown(T('a1_auc_per_class'));
    expect(md).toContain('| patchcore | 92.00 ± 2.83 #2<br>paper 100.00 #1, Δ -8.00 |');
  });

  it('a difference for group tables only when every class the paper averaged is covered', () => {
    const all = mkdtempSync(join(tmpdir(), 'bench-report-15-'));
    for (const c of MVTEC_CATEGORIES) writeRun(all, { method: 'patchcore', category: c, seed: 0, auroc: 0.5 });
    const t = new Map(allTables(scanRuns(all).records).map((x) => [x.name, x]));
    expect(get(t.get('table1_global')!, 'patchcore', 'global', 'auroc').diff).toBeCloseTo(50 - 98.89, 10);
    expect(get(t.get('table3_rotating')!, 'patchcore', 'rotating objects', 'auroc').diff).toBeCloseTo(50 - 99.49, 10);
    expect(get(t.get('a1_auc_per_class')!, 'patchcore', 'average', 'auroc').diff).toBeCloseTo(50 - 98.89, 10);
  });

  it('writes report.md, one CSV per table and the figures', async () => {
    const trace = (n: number): string => ['sampler,method,estimated,device,t_s,unix_ms,power_w,utilization_pct,memory_used_mib,memory_total_mib',
      ...Array.from({ length: n }, (_, i) => `rapl,rapl,false,package-0,${i},${1_700_000_000_000 + 1000 * i},${20 + i},,,`)].join('\n');
    writeFileSync(join(root, 'patchcore', 'bottle', 'seed-0', 'power-trace.csv'), trace(3));
    writeFileSync(join(root, 'draem', 'bottle', 'seed-0', 'power-trace.csv'), trace(1));
    const r = await writeReport({ runsDir: root, command: 'test' });
    expect(existsSync(join(r.out, 'figures', 'power', 'patchcore__bottle__seed-0.svg'))).toBe(true);
    expect(existsSync(join(r.out, 'figures', 'power', 'draem__bottle__seed-0.svg'))).toBe(false);
    for (const f of ['report.md', 'table1_global.csv', 'table5_environment.csv', 'a4_ap_per_class.csv', 'figures/roc_bottle.svg', 'figures/auroc_vs_energy.svg', 'figures/auroc_vs_inference_time.svg']) {
      expect(existsSync(join(r.out, f)), f).toBe(true);
    }
    const md = readFileSync(join(r.out, 'report.md'), 'utf8');
    expect(md).toContain('Incomplete run folders (not reported): draem/screw/seed-1');
    expect(md).toContain('### Table A4: image AP per class');
    expect(md).toContain('no power trace drawn for draem/bottle/seed-0: fewer than two power samples');
    expect(md).toContain('[patchcore__bottle__seed-0](figures/power/patchcore__bottle__seed-0.svg)');
    const svg = readFileSync(join(r.out, 'figures', 'roc_bottle.svg'), 'utf8');
    expect(svg).toContain('patchcore (seed 0, AUROC 90.0)');
  });
});
