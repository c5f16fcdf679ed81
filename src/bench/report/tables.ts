import { categoryInfo, PAPER_CATEGORY_ORDER, MVTEC_CATEGORIES, type CategoryGroup } from '../../data/categories.js';
import { paperCategoryResult, paperCosts, paperGroupResult, type PaperCosts } from '../../eval/paperReference.js';
import { mean, ranks, stat } from './aggregate.js';
import type { RunRecord } from './runRecords.js';

/**
 * The paper's Tables 1-6 and A1-A4 rebuilt from run records, every cell beside the paper's value
 * (src/eval/reference/paper-reference.json) and the difference. Performance is in percent like
 * the paper. Recall and F1 appear at both thresholds, labelled: 'oracle' (best F1 on the test set,
 * what the paper reported) and 'calibrated' (from validation normals only, usable in production).
 * Group membership is the paper's (Tables 2-4; tables README check 3).
 */

export type MetricName = 'auroc' | 'recall' | 'f1' | 'ap';
export type ThresholdKind = 'none' | 'oracle' | 'calibrated';

export interface TableCell {
  table: string;
  /** Row key: method, or method/variant for ablation runs. */
  row: string;
  paperId: string;
  /** Category, 'average' (per-class tables), group name, or 'all runs' (costs). */
  scope: string;
  metric: string;
  threshold: ThresholdKind;
  nSeeds: number;
  /** Categories the value averages over (1 for a per-category cell). */
  nCategories: number;
  /** Categories the paper's value averages over (null where the paper has no such scope). */
  paperCategories: number | null;
  value: number | null;
  std: number | null;
  rank: number | null;
  paper: number | null;
  /** The paper's values ranked among the same rows (recomputed, tables README I3). */
  paperRank: number | null;
  /** value - paper; null unless the value covers the same categories as the paper's. */
  diff: number | null;
  /** value / paper (cost tables: absolute scales differ by orders of magnitude across machines). */
  ratio: number | null;
  /** The value is (or includes) an estimate rather than a measurement. */
  estimated: boolean;
}

export interface ReportTable {
  name: string;
  title: string;
  paperTable: string;
  rows: string[];
  scopes: string[];
  columns: Array<{ metric: string; threshold: ThresholdKind; label: string; lowerIsBetter: boolean }>;
  cells: TableCell[];
}

export const PERFORMANCE_COLUMNS: ReadonlyArray<{ metric: MetricName; threshold: ThresholdKind; label: string; lowerIsBetter: boolean }> = [
  { metric: 'auroc', threshold: 'none', label: 'AUROC', lowerIsBetter: false },
  { metric: 'recall', threshold: 'oracle', label: 'Recall (oracle)', lowerIsBetter: false },
  { metric: 'f1', threshold: 'oracle', label: 'F1 (oracle)', lowerIsBetter: false },
  { metric: 'ap', threshold: 'none', label: 'AP', lowerIsBetter: false },
  { metric: 'recall', threshold: 'calibrated', label: 'Recall (calibrated)', lowerIsBetter: false },
  { metric: 'f1', threshold: 'calibrated', label: 'F1 (calibrated)', lowerIsBetter: false },
];

/** Percent value of one metric of one run. */
export function metricPercent(r: RunRecord, metric: MetricName, threshold: ThresholdKind): number | null {
  const v = metric === 'auroc' ? r.auroc : metric === 'ap' ? r.ap : (threshold === 'calibrated' ? r.calibrated : r.oracle)[metric];
  return v === null ? null : 100 * v;
}

export const rowKey = (r: RunRecord): string => (r.variant ? `${r.method}/${r.variant}` : r.method);

interface GroupDef {
  name: string;
  title: string;
  paperTable: string;
  scope: string;
  group: CategoryGroup | 'all';
  paperGroup: 'global' | 'fixed' | 'rotating' | 'textures';
}

export const GROUP_TABLES: readonly GroupDef[] = [
  { name: 'table1_global', title: 'Table 1: all categories', paperTable: 'Table 1 (global, 15 classes)', scope: 'global', group: 'all', paperGroup: 'global' },
  { name: 'table2_fixed', title: 'Table 2: fixed objects', paperTable: 'Table 2 (fixed objects)', scope: 'fixed objects', group: 'fixed_object', paperGroup: 'fixed' },
  { name: 'table3_rotating', title: 'Table 3: rotating objects (hazelnut, metal_nut, screw)', paperTable: 'Table 3 (rotating objects)', scope: 'rotating objects', group: 'rotating_object', paperGroup: 'rotating' },
  { name: 'table4_textures', title: 'Table 4: textures', paperTable: 'Table 4 (textures)', scope: 'textures', group: 'texture', paperGroup: 'textures' },
];

const PER_CLASS_TABLES: ReadonlyArray<{ name: string; title: string; paperTable: string; metric: MetricName; thresholds: ThresholdKind[] }> = [
  { name: 'a1_auc_per_class', title: 'Table A1: image AUROC per class', paperTable: 'Table A1', metric: 'auroc', thresholds: ['none'] },
  { name: 'a2_recall_per_class', title: 'Table A2: recall per class', paperTable: 'Table A2', metric: 'recall', thresholds: ['oracle', 'calibrated'] },
  { name: 'a3_f1_per_class', title: 'Table A3: F1 per class', paperTable: 'Table A3', metric: 'f1', thresholds: ['oracle', 'calibrated'] },
  { name: 'a4_ap_per_class', title: 'Table A4: image AP per class', paperTable: 'Table A4', metric: 'ap', thresholds: ['none'] },
];

const expectedCount = (g: CategoryGroup | 'all'): number => (g === 'all' ? MVTEC_CATEGORIES.length : MVTEC_CATEGORIES.filter((c) => categoryInfo(c).group === g).length);
const inGroup = (category: string, g: CategoryGroup | 'all'): boolean => g === 'all' || categoryInfo(category).group === g;

/** Categories in the paper's column order, then any others sorted. */
export function orderCategories(categories: Iterable<string>): string[] {
  const set = new Set(categories);
  const paper = PAPER_CATEGORY_ORDER.filter((c) => set.has(c));
  const rest = [...set].filter((c) => !(PAPER_CATEGORY_ORDER as readonly string[]).includes(c)).sort();
  return [...paper, ...rest];
}

/** Records grouped by row, then category, then seed. */
function index(records: readonly RunRecord[]): Map<string, Map<string, RunRecord[]>> {
  const out = new Map<string, Map<string, RunRecord[]>>();
  for (const r of records) {
    const k = rowKey(r);
    if (!out.has(k)) out.set(k, new Map());
    const byCat = out.get(k)!;
    if (!byCat.has(r.category)) byCat.set(r.category, []);
    byCat.get(r.category)!.push(r);
  }
  return out;
}

interface GroupValue {
  value: number | null;
  std: number | null;
  nSeeds: number;
  nCategories: number;
  categories: string[];
}

/**
 * Mean over the group's categories of each category's mean over seeds. The spread is over seeds:
 * the group average per seed, for the seeds every category ran; null with fewer than two.
 */
function groupValue(byCat: Map<string, RunRecord[]>, cats: readonly string[], metric: MetricName, th: ThresholdKind): GroupValue {
  const perCat = cats
    .map((c) => ({ c, s: stat(byCat.get(c)!.map((r) => metricPercent(r, metric, th))) }))
    .filter((x) => x.s.mean !== null);
  const value = mean(perCat.map((x) => x.s.mean as number));
  const seedSets = perCat.map((x) => new Set(byCat.get(x.c)!.filter((r) => metricPercent(r, metric, th) !== null).map((r) => r.seed)));
  const common = seedSets.length ? [...seedSets[0]].filter((s) => seedSets.every((set) => set.has(s))).sort((a, b) => a - b) : [];
  const perSeed = common.map((s) => mean(perCat.map((x) => metricPercent(byCat.get(x.c)!.find((r) => r.seed === s)!, metric, th) as number)) as number);
  const spread = stat(perSeed);
  return { value, std: spread.std, nSeeds: common.length, nCategories: perCat.length, categories: perCat.map((x) => x.c) };
}

function paperMetric(p: { auroc: number | null; recall: number | null; f1: number | null; ap: number | null } | null, m: MetricName): number | null {
  return p ? p[m] : null;
}

/** Same categories as the paper's value: all 15 for global/average, the whole group otherwise. */
function covers(categories: readonly string[], g: CategoryGroup | 'all'): boolean {
  const need = MVTEC_CATEGORIES.filter((c) => inGroup(c, g));
  return need.every((c) => categories.includes(c));
}

function withRanks(cells: TableCell[], lowerIsBetter: (c: TableCell) => boolean): TableCell[] {
  const groups = new Map<string, TableCell[]>();
  for (const c of cells) {
    const k = `${c.scope}|${c.metric}|${c.threshold}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(c);
  }
  for (const g of groups.values()) {
    const low = lowerIsBetter(g[0]);
    const r = ranks(g.map((c) => c.value), low);
    const pr = ranks(g.map((c) => c.paper), low);
    g.forEach((c, i) => {
      c.rank = r[i];
      c.paperRank = pr[i];
    });
  }
  return cells;
}

const paperIdOf = (byCat: Map<string, RunRecord[]>): string => [...byCat.values()][0][0].paperId;

function performanceCell(o: Omit<TableCell, 'rank' | 'paperRank' | 'ratio' | 'estimated'>): TableCell {
  return { ...o, rank: null, paperRank: null, ratio: null, estimated: false };
}

export function groupTables(records: readonly RunRecord[]): ReportTable[] {
  const idx = index(records);
  const rowsAll = [...idx.keys()].sort();
  return GROUP_TABLES.map((def) => {
    const cells: TableCell[] = [];
    for (const row of rowsAll) {
      const byCat = idx.get(row)!;
      const cats = orderCategories([...byCat.keys()].filter((c) => inGroup(c, def.group)));
      if (cats.length === 0) continue;
      const paperId = paperIdOf(byCat);
      for (const col of PERFORMANCE_COLUMNS) {
        const g = groupValue(byCat, cats, col.metric, col.threshold);
        const paper = paperMetric(paperGroupResult(paperId, def.paperGroup), col.metric);
        cells.push(performanceCell({
          table: def.name, row, paperId, scope: def.scope, metric: col.metric, threshold: col.threshold,
          nSeeds: g.nSeeds, nCategories: g.nCategories, paperCategories: expectedCount(def.group),
          value: g.value, std: g.std, paper,
          diff: g.value !== null && paper !== null && covers(g.categories, def.group) ? g.value - paper : null,
        }));
      }
    }
    const rows = [...new Set(cells.map((c) => c.row))];
    return { name: def.name, title: def.title, paperTable: def.paperTable, rows, scopes: [def.scope], columns: [...PERFORMANCE_COLUMNS], cells: withRanks(cells, () => false) };
  });
}

export function perClassTables(records: readonly RunRecord[]): ReportTable[] {
  const idx = index(records);
  const rows = [...idx.keys()].sort();
  const categories = orderCategories(records.map((r) => r.category));
  return PER_CLASS_TABLES.map((def) => {
    const cells: TableCell[] = [];
    for (const row of rows) {
      const byCat = idx.get(row)!;
      const paperId = paperIdOf(byCat);
      for (const th of def.thresholds) {
        for (const c of categories) {
          const rs = byCat.get(c);
          if (!rs) continue;
          const s = stat(rs.map((r) => metricPercent(r, def.metric, th)));
          const paper = paperMetric(paperCategoryResult(paperId, c), def.metric);
          cells.push(performanceCell({
            table: def.name, row, paperId, scope: c, metric: def.metric, threshold: th,
            nSeeds: s.n, nCategories: 1, paperCategories: paper === null ? null : 1,
            value: s.mean, std: s.std, paper, diff: s.mean !== null && paper !== null ? s.mean - paper : null,
          }));
        }
        const cats = orderCategories(byCat.keys());
        const g = groupValue(byCat, cats, def.metric, th);
        const paper = paperMetric(paperCategoryResult(paperId, 'average'), def.metric);
        cells.push(performanceCell({
          table: def.name, row, paperId, scope: 'average', metric: def.metric, threshold: th,
          nSeeds: g.nSeeds, nCategories: g.nCategories, paperCategories: MVTEC_CATEGORIES.length,
          value: g.value, std: g.std, paper, diff: g.value !== null && paper !== null && covers(g.categories, 'all') ? g.value - paper : null,
        }));
      }
    }
    const columns = def.thresholds.map((th) => ({
      metric: def.metric, threshold: th, lowerIsBetter: false,
      label: `${{ auroc: 'AUROC', recall: 'Recall', f1: 'F1', ap: 'AP' }[def.metric]}${th === 'none' ? '' : ` (${th})`}`,
    }));
    return { name: def.name, title: def.title, paperTable: def.paperTable, rows, scopes: [...categories, 'average'], columns, cells: withRanks(cells, () => false) };
  });
}

type CostKey = 'co2Kg' | 'energyKj' | 'gpuPowerW' | 'trainTimeS' | 'inferenceTimeS' | 'gpuUtilPct' | 'modelSizeMParams' | 'gmacPtflops' | 'gmac';

const COST_TABLES: ReadonlyArray<{ name: string; title: string; paperTable: string; columns: ReadonlyArray<{ key: CostKey; metric: string; label: string; paper: keyof PaperCosts | null }> }> = [
  {
    name: 'table5_environment', title: 'Table 5: environmental cost of training', paperTable: 'Table 5',
    columns: [
      { key: 'co2Kg', metric: 'co2_kg', label: 'CO2 (kg)', paper: 'co2Kg' },
      { key: 'energyKj', metric: 'energy_kj', label: 'Energy (kJ)', paper: 'energyKj' },
      { key: 'gpuPowerW', metric: 'gpu_power_w', label: 'GPU power (W)', paper: 'gpuPowerW' },
    ],
  },
  {
    name: 'table6_hardware', title: 'Table 6: hardware cost', paperTable: 'Table 6',
    columns: [
      { key: 'trainTimeS', metric: 'train_time_s', label: 'Training time (s)', paper: 'trainTimeS' },
      { key: 'inferenceTimeS', metric: 'inference_time_s', label: 'Inference (s/image)', paper: 'inferenceTimeS' },
      { key: 'gpuUtilPct', metric: 'gpu_util_pct', label: 'GPU util. (%)', paper: 'gpuUtilPct' },
      { key: 'modelSizeMParams', metric: 'model_size_mparams', label: 'Model size (M params)', paper: 'modelSizeParamsM' },
      { key: 'gmacPtflops', metric: 'gmac_ptflops', label: 'GMAC (ptflops, as paper)', paper: 'gmac' },
      { key: 'gmac', metric: 'gmac_true', label: 'GMAC (true MACs)', paper: null },
    ],
  },
];

/** Tables 5 and 6: per row, mean ± std over all its runs (categories × seeds); lower is better. */
export function costTables(records: readonly RunRecord[]): ReportTable[] {
  const idx = index(records);
  const rows = [...idx.keys()].sort();
  return COST_TABLES.map((def) => {
    const cells: TableCell[] = [];
    for (const row of rows) {
      const runs = [...idx.get(row)!.values()].flat().filter((r) => r.costs !== null);
      if (runs.length === 0) continue;
      const pc = paperCosts(runs[0].paperId);
      for (const col of def.columns) {
        const s = stat(runs.map((r) => r.costs![col.key]));
        const paper = col.paper && pc ? pc[col.paper] : null;
        const estimated = (col.key === 'energyKj' || col.key === 'co2Kg') && runs.some((r) => r.costs!.energyEstimated);
        cells.push({
          table: def.name, row, paperId: runs[0].paperId, scope: 'all runs', metric: col.metric, threshold: 'none',
          nSeeds: new Set(runs.map((r) => r.seed)).size, nCategories: new Set(runs.map((r) => r.category)).size, paperCategories: null,
          value: s.mean, std: s.std, rank: null, paperRank: null, paper,
          diff: s.mean !== null && paper !== null ? s.mean - paper : null,
          ratio: s.mean !== null && paper !== null && paper !== 0 ? s.mean / paper : null,
          estimated,
        });
      }
    }
    const columns = def.columns.map((c) => ({ metric: c.metric, threshold: 'none' as ThresholdKind, label: c.label, lowerIsBetter: true }));
    return { name: def.name, title: def.title, paperTable: def.paperTable, rows: [...new Set(cells.map((c) => c.row))], scopes: ['all runs'], columns, cells: withRanks(cells, () => true) };
  });
}

export function allTables(records: readonly RunRecord[]): ReportTable[] {
  return [...groupTables(records), ...costTables(records), ...perClassTables(records)];
}
