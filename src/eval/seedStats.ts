/**
 * Aggregation of one method/category over several seeds (experiments/seeds.ts). Short trainings
 * of small networks are chaotic (the DRAEM cpu profile moved 20 AUROC points with float rounding
 * alone), so a single run says little: every metric is reported as mean ± sample standard
 * deviation (n − 1) with its min and max, beside the per-seed rows. Pure: no files, no tfjs.
 */

/** The numbers of one run folder that are aggregated, in the order they are reported. */
export const SEED_METRICS = [
  { key: 'image.auroc', label: 'image AUROC', percent: true },
  { key: 'image.ap', label: 'image AP', percent: true },
  { key: 'pixel.auroc', label: 'pixel AUROC', percent: true },
  { key: 'pixel.aupro', label: 'AUPRO', percent: true },
  { key: 'calibrated.precision', label: 'calibrated precision', percent: true },
  { key: 'calibrated.recall', label: 'calibrated recall', percent: true },
  { key: 'calibrated.f1', label: 'calibrated F1', percent: true },
  { key: 'oracle.precision', label: 'oracle precision', percent: true },
  { key: 'oracle.recall', label: 'oracle recall', percent: true },
  { key: 'oracle.f1', label: 'oracle F1', percent: true },
  { key: 'wallTimeS', label: 'wall time (s)', percent: false },
  // Process CPU time (user + system) of the training phase (costs.json): unlike the wall time it
  // hardly depends on what else runs on the machine, so sweeps on a shared machine stay comparable.
  { key: 'trainCpuS', label: 'train CPU time (s)', percent: false },
] as const;

export type SeedMetricKey = (typeof SEED_METRICS)[number]['key'];

/** One seed's run: its values (null = not measured, e.g. no pixel masks or no validation normals). */
export interface SeedRow {
  seed: number;
  runDir: string;
  values: Record<SeedMetricKey, number | null>;
}

export interface MetricSummary {
  key: SeedMetricKey;
  label: string;
  /** Seeds with a value; the statistics below are over those only. */
  n: number;
  mean: number | null;
  /** Sample standard deviation (n − 1); null when n < 2. */
  sd: number | null;
  min: number | null;
  max: number | null;
}

export interface SeedsSummary {
  seeds: number[];
  metrics: MetricSummary[];
  rows: SeedRow[];
}

/** Mean, sample sd (n − 1), min and max of the finite values; nulls when there are none. */
export function describeValues(values: readonly (number | null)[]): { n: number; mean: number | null; sd: number | null; min: number | null; max: number | null } {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  const n = v.length;
  if (n === 0) return { n, mean: null, sd: null, min: null, max: null };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const sd = n < 2 ? null : Math.sqrt(v.reduce((a, b) => a + (b - mean) * (b - mean), 0) / (n - 1));
  return { n, mean, sd, min: Math.min(...v), max: Math.max(...v) };
}

type JsonObject = Record<string, unknown>;

function pick(obj: unknown, path: string): number | null {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return null;
    cur = (cur as JsonObject)[part];
  }
  return typeof cur === 'number' && Number.isFinite(cur) ? cur : null;
}

/** Seconds measured outside metrics.json; null when the run folder lacks them. */
export interface RunTimes {
  /** timing.json `wallTimeS`. */
  wallTimeS: number | null;
  /** costs.json: cpuUserS + cpuSystemS of the 'train' phase. */
  trainCpuS: number | null;
}

/** costs.json → train-phase process CPU seconds (null when the phase or its process figures are missing). */
export function trainCpuSeconds(costsJson: unknown): number | null {
  const phases = (costsJson as { phases?: unknown } | null)?.phases;
  if (!Array.isArray(phases)) return null;
  const train = phases.find((p) => (p as { phase?: unknown })?.phase === 'train');
  const user = pick(train, 'process.cpuUserS');
  const sys = pick(train, 'process.cpuSystemS');
  return user === null || sys === null ? null : user + sys;
}

/** A row from a run folder's metrics.json (as written by src/run/trainAndEvaluate.ts) and its times. */
export function seedRowFromRun(seed: number, runDir: string, metricsJson: unknown, times: RunTimes): SeedRow {
  const values = {} as Record<SeedMetricKey, number | null>;
  for (const m of SEED_METRICS) values[m.key] = m.key === 'wallTimeS' || m.key === 'trainCpuS' ? times[m.key] : pick(metricsJson, m.key);
  return { seed, runDir, values };
}

/** Summary over rows, sorted by seed. */
export function summarizeSeeds(rows: readonly SeedRow[]): SeedsSummary {
  const sorted = [...rows].sort((a, b) => a.seed - b.seed);
  return {
    seeds: sorted.map((r) => r.seed),
    metrics: SEED_METRICS.map((m) => ({ key: m.key, label: m.label, ...describeValues(sorted.map((r) => r.values[m.key])) })),
    rows: sorted,
  };
}

const isPercent = (key: SeedMetricKey): boolean => SEED_METRICS.find((m) => m.key === key)?.percent ?? false;

/** Percentages as points with 2 decimals (fractions in the data), seconds with 1. */
function fmt(key: SeedMetricKey, v: number | null): string {
  if (v === null) return 'n/a';
  return isPercent(key) ? (100 * v).toFixed(2) : v.toFixed(1);
}

export interface SeedsHeader {
  method: string;
  category: string;
  profile: string;
  dataSource: string;
  /** The command line that produced the runs. */
  command: string;
}

/** seeds.md: the summary table (mean ± sd, min, max) and the per-seed rows. */
export function renderSeedsMarkdown(h: SeedsHeader, s: SeedsSummary): string {
  const lines: string[] = [];
  lines.push(`# ${h.method} on ${h.category} over ${s.seeds.length} seeds (profile ${h.profile})`, '');
  if (h.dataSource === 'synthetic') lines.push('**SYNTHETIC DATA: not comparable to the paper.**', '');
  lines.push(`Seeds ${s.seeds.join(', ')}. \`${h.command}\``, '');
  lines.push('Metrics in %, sd = sample standard deviation (n − 1); n = seeds with a value.', '');
  lines.push('| metric | mean ± sd | min | max | n |', '|---|---:|---:|---:|---:|');
  for (const m of s.metrics) {
    const sd = m.sd === null ? '' : ` ± ${fmt(m.key, m.sd)}`;
    lines.push(`| ${m.label} | ${fmt(m.key, m.mean)}${sd} | ${fmt(m.key, m.min)} | ${fmt(m.key, m.max)} | ${m.n} |`);
  }
  lines.push('', '## Per seed', '');
  lines.push(`| seed | ${SEED_METRICS.map((m) => m.label).join(' | ')} |`, `|---:|${SEED_METRICS.map(() => '---:').join('|')}|`);
  for (const r of s.rows) lines.push(`| ${r.seed} | ${SEED_METRICS.map((m) => fmt(m.key, r.values[m.key])).join(' | ')} |`);
  lines.push('');
  return lines.join('\n');
}

/**
 * `--seeds` value: a count N (seeds 0..N−1) or a comma list of distinct non-negative integers.
 * Returns null for malformed input so the caller can name the option in its error.
 */
export function parseSeedList(spec: string): number[] | null {
  const t = spec.trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    return n >= 1 ? Array.from({ length: n }, (_, i) => i) : null;
  }
  if (!/^\d+(\s*,\s*\d+)+$/.test(t)) return null;
  const seeds = t.split(',').map((x) => Number(x.trim()));
  return new Set(seeds).size === seeds.length ? seeds : null;
}
