import { getStrategyEntry, listStrategies, strategyEntries, type StrategyEntry } from '../augment/registry.js';
import { ConfigError } from '../errors.js';
import type { BaseMethodConfig, MethodDefinition } from '../models/method.js';
import { stat, type Stat } from './report/aggregate.js';
import type { RunRecord } from './report/runRecords.js';

/**
 * Synthetic-anomaly ablation (Cools et al. 2025, sec. 2.1: the first axis of the taxonomy is
 * whether and how a method synthesises anomalies): one method trained with each registered
 * strategy in turn, same seeds, everything else equal. A strategy reaches the method as
 * `--set <field>=<name>` on train.ts, where <field> is the method's scalar config field that holds a
 * registered strategy name (DRAEM: anomalyStrategy), found from its profile rather than hard-coded,
 * so a new method with such a field takes part without changes here.
 */

export const NO_STRATEGY = 'none';

export interface StrategySlot {
  /** Config field, e.g. 'anomalyStrategy'; null when the method synthesises nothing. */
  field: string | null;
  /** The profile's own strategy (its registry entry decides which others fit). */
  defaultStrategy: StrategyEntry | null;
}

export function strategySlot(method: MethodDefinition<BaseMethodConfig>, profile?: string): StrategySlot {
  const config = method.profiles[profile ?? method.defaultProfile] as unknown as Record<string, unknown> | undefined;
  if (!config) throw new ConfigError(`${method.name} has no profile '${profile}'; profiles: ${Object.keys(method.profiles).join(', ')}`);
  const names = new Set(listStrategies());
  const field = Object.keys(config).find((k) => typeof config[k] === 'string' && names.has(config[k] as string)) ?? null;
  return { field, defaultStrategy: field ? getStrategyEntry(config[field] as string) : null };
}

/** Strategies that can stand in for the method's own: same kind (image/feature) and role. */
export function compatibleStrategies(slot: StrategySlot): string[] {
  if (!slot.defaultStrategy) return [NO_STRATEGY];
  const d = slot.defaultStrategy;
  return strategyEntries().filter((e) => e.kind === d.kind && e.role === d.role).map((e) => e.name);
}

export interface StrategyVariant {
  name: string;
  args: string[];
}

/** `--strategies` names -> run variants; anything the method cannot take is a ConfigError saying what it can. */
export function strategyVariants(method: MethodDefinition<BaseMethodConfig>, requested: readonly string[] | null, profile?: string): StrategyVariant[] {
  const slot = strategySlot(method, profile);
  const ok = compatibleStrategies(slot);
  const names = requested && requested.length ? requested : ok;
  return names.map((name) => {
    if (name === NO_STRATEGY) {
      if (slot.field) {
        throw new ConfigError(`--strategies ${NO_STRATEGY}: ${method.name} needs a synthetic-anomaly strategy (config '${slot.field}'); it can take: ${ok.join(', ')}`);
      }
      return { name, args: [] };
    }
    if (!slot.field) {
      throw new ConfigError(`--strategies ${name}: ${method.name} trains without synthetic anomalies; the only variant is '${NO_STRATEGY}'`);
    }
    const entry = getStrategyEntry(name);
    if (!ok.includes(entry.name)) {
      throw new ConfigError(`--strategies ${name}: a ${entry.kind}${entry.role ? `/${entry.role}` : ''} strategy cannot replace ${method.name}'s '${slot.defaultStrategy!.name}' (${slot.defaultStrategy!.kind}${slot.defaultStrategy!.role ? `/${slot.defaultStrategy!.role}` : ''}); it can take: ${ok.join(', ')}`);
    }
    return { name, args: ['--set', `${slot.field}=${name}`] };
  });
}

export interface AblationRow {
  strategy: string;
  runs: number;
  seeds: number[];
  cells: Record<string, Stat>;
}

export const ABLATION_COLUMNS: ReadonlyArray<{ key: string; label: string; pick: (r: RunRecord) => number | null; percent: boolean }> = [
  { key: 'auroc', label: 'image AUROC %', pick: (r) => r.auroc, percent: true },
  { key: 'ap', label: 'image AP %', pick: (r) => r.ap, percent: true },
  { key: 'pixel_auroc', label: 'pixel AUROC %', pick: (r) => r.pixelAuroc, percent: true },
  { key: 'aupro', label: 'AUPRO %', pick: (r) => r.aupro, percent: true },
  { key: 'f1_oracle', label: 'F1 oracle %', pick: (r) => r.oracle.f1, percent: true },
  { key: 'f1_calibrated', label: 'F1 calibrated %', pick: (r) => r.calibrated.f1, percent: true },
  { key: 'train_time_s', label: 'train time s', pick: (r) => r.costs?.trainTimeS ?? null, percent: false },
  { key: 'energy_kj', label: 'energy kJ', pick: (r) => r.costs?.energyKj ?? null, percent: false },
  { key: 'inference_time_s', label: 'inference s/image', pick: (r) => r.costs?.inferenceTimeS ?? null, percent: false },
];

/** One row per strategy (in the order given), mean ± std over seeds. */
export function ablationRows(records: readonly RunRecord[], strategies: readonly string[]): AblationRow[] {
  return strategies.map((strategy) => {
    const rs = records.filter((r) => r.variant === strategy);
    const cells: Record<string, Stat> = {};
    for (const c of ABLATION_COLUMNS) cells[c.key] = stat(rs.map((r) => { const v = c.pick(r); return v === null ? null : c.percent ? 100 * v : v; }));
    return { strategy, runs: rs.length, seeds: rs.map((r) => r.seed).sort((a, b) => a - b), cells };
  });
}

const fmt = (s: Stat, percent: boolean): string => {
  if (s.mean === null) return '—';
  const f = (v: number): string => (percent ? v.toFixed(2) : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  return s.std === null ? f(s.mean) : `${f(s.mean)} ± ${f(s.std)}`;
};

export function ablationMarkdown(o: { method: string; category: string; rows: readonly AblationRow[]; energyEstimated: boolean; command?: string }): string {
  const lines = [
    `# Synthetic-anomaly ablation: ${o.method} on ${o.category}`,
    '',
    o.command ? `Made by: \`${o.command}\`` : '',
    '',
    `Each row trains ${o.method} with one strategy of src/augment's registry, same seeds and configuration otherwise; mean ± std over seeds. F1 at the oracle threshold (best on test, as the paper) and the calibrated one (validation normals only).${o.energyEstimated ? ' Energy is the CPU-time estimate, not a measurement.' : ''}`,
    '',
    `| strategy | runs | ${ABLATION_COLUMNS.map((c) => c.label).join(' | ')} |`,
    `|---|---|${ABLATION_COLUMNS.map(() => '---').join('|')}|`,
    ...o.rows.map((r) => `| ${r.strategy} | ${r.runs} | ${ABLATION_COLUMNS.map((c) => fmt(r.cells[c.key], c.percent)).join(' | ')} |`),
    '',
  ];
  return lines.join('\n');
}

export function ablationCsv(rows: readonly AblationRow[]): string {
  const head = ['strategy', 'runs', ...ABLATION_COLUMNS.flatMap((c) => [c.key, `${c.key}_std`])];
  const n = (v: number | null): string => (v === null ? '' : String(Number(v.toPrecision(10))));
  return `${[head.join(','), ...rows.map((r) => [r.strategy, r.runs, ...ABLATION_COLUMNS.flatMap((c) => [n(r.cells[c.key].mean), n(r.cells[c.key].std)])].join(','))].join('\n')}\n`;
}
