import reference from './reference/paper-reference.json' with { type: 'json' };
import { ConfigError } from '../errors.js';

/**
 * The paper's numbers (Cools et al. 2025), read from the data file made from its tables by
 * scripts/make-paper-reference.ts. Reports put these beside ours; nothing here is computed.
 */
type Cell = string | number | null;
type Row = Record<string, Cell>;
const tables = reference.tables as unknown as Record<string, Row[]>;

export const PAPER_SOURCE: string = reference.source;
export const PAPER_NOTES: Record<string, string> = reference.notes;
export const PAPER_DOI: string = reference.doi;

export interface PaperTableSource {
  /** 'Table 1' ... 'Table 6', 'Table A1' ... 'Table A4'. */
  paperTable: string;
  caption: string;
  /** Lines of ../shared/paper/cools-2025-anomaly-benchmark.txt the rows were read from. */
  textLines: string;
  csv: string;
}

/** Table name (e.g. 'table1_global', 'a4_ap_per_class') -> where in the paper it comes from. */
export const PAPER_TABLE_SOURCES: Record<string, PaperTableSource> = reference.tableSources;

/** Every row of one of the paper's tables, values as printed (null where the paper has none). */
export function paperTable(name: string): ReadonlyArray<Readonly<Row>> {
  const t = tables[name];
  if (!t) throw new ConfigError(`no paper table '${name}'; tables: ${Object.keys(tables).join(', ')}`);
  return t;
}

/** Paper ids of the ten methods (the `id` column of every table). */
export const PAPER_METHOD_IDS = tables.table1_global.map((r) => String(r.id));

function row(table: string, id: string): Row | undefined {
  return tables[table]?.find((r) => r.id === id);
}

function num(v: Cell | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export interface PaperCategoryResult {
  /** Image AUROC, recall, F1 and AP in percent, as printed; null where the paper has no value. */
  auroc: number | null;
  recall: number | null;
  f1: number | null;
  ap: number | null;
}

/** Per-class (Tables A1-A4) or the average ('average') for one method. */
export function paperCategoryResult(methodId: string, category: string): PaperCategoryResult | null {
  const a1 = row('a1_auc_per_class', methodId);
  if (!a1 || !(category in a1)) return null;
  return {
    auroc: num(a1[category]),
    recall: num(row('a2_recall_per_class', methodId)?.[category]),
    f1: num(row('a3_f1_per_class', methodId)?.[category]),
    ap: num(row('a4_ap_per_class', methodId)?.[category]),
  };
}

export interface PaperCosts {
  co2Kg: number | null;
  energyKj: number | null;
  gpuPowerW: number | null;
  trainTimeS: number | null;
  inferenceTimeS: number | null;
  gpuUtilPct: number | null;
  /** The paper's "Model Size (MB)" column, which is parameters in millions. */
  modelSizeParamsM: number | null;
  gmac: number | null;
}

/** Tables 5 and 6 for one method. */
export function paperCosts(methodId: string): PaperCosts | null {
  const t5 = row('table5_environment', methodId);
  const t6 = row('table6_hardware', methodId);
  if (!t5 && !t6) return null;
  return {
    co2Kg: num(t5?.co2_kg),
    energyKj: num(t5?.energy_kj),
    gpuPowerW: num(t5?.gpu_power_w),
    trainTimeS: num(t6?.train_time_s),
    inferenceTimeS: num(t6?.inference_time_s),
    gpuUtilPct: num(t6?.gpu_util_pct),
    modelSizeParamsM: num(t6?.model_size_mb),
    gmac: num(t6?.gmac),
  };
}

/** Table 1-4 row (global, fixed, rotating, textures) for one method. */
export function paperGroupResult(
  methodId: string,
  group: 'global' | 'fixed' | 'rotating' | 'textures',
): PaperCategoryResult | null {
  const table = { global: 'table1_global', fixed: 'table2_fixed', rotating: 'table3_rotating', textures: 'table4_textures' }[group];
  const r = row(table, methodId);
  if (!r) return null;
  return { auroc: num(r.auc), recall: num(r.recall), f1: num(r.f1), ap: num(r.ap) };
}

/** Every row the paper has for one method (MethodDefinition.paperReference()). */
export interface MethodPaperReference {
  /** The method's id in the paper's tables. */
  paperId: string;
  /** Tables 5 and 6, or null if the paper has neither row. */
  costs: PaperCosts | null;
  /** Tables 1-4: global, fixed objects, rotating objects, textures. */
  groups: Record<'global' | 'fixed' | 'rotating' | 'textures', PaperCategoryResult | null>;
  /** Tables A1-A4 for one MVTec category, or 'average'. */
  category(category: string): PaperCategoryResult | null;
}

/**
 * The paper's rows for `paperId`, read from paper-reference.json (the only copy of the paper's
 * numbers; reports, costs.ts and tests all come here).
 *
 * ```ts
 * paperReference('draem').costs?.gmac;            // 198.44 (Table 6)
 * paperReference('draem').category('bottle')?.auroc; // Table A1
 * ```
 */
export function paperReference(paperId: string): MethodPaperReference {
  return {
    paperId,
    costs: paperCosts(paperId),
    groups: {
      global: paperGroupResult(paperId, 'global'),
      fixed: paperGroupResult(paperId, 'fixed'),
      rotating: paperGroupResult(paperId, 'rotating'),
      textures: paperGroupResult(paperId, 'textures'),
    },
    category: (category: string) => paperCategoryResult(paperId, category),
  };
}
