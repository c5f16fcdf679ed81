import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { DatasetError } from '../../errors.js';
import { runFolderState } from '../matrix.js';

/**
 * What the report reads from run folders: only the files train.ts writes (config.json,
 * metrics.json, costs.json, scores.csv, power-trace.csv, heatmaps/), never internal interfaces,
 * so any run folder (from benchmark.ts, ablate.ts, Slurm or a hand-run train.ts) can be reported.
 */

export interface ThresholdMetrics {
  precision: number | null;
  recall: number | null;
  f1: number | null;
}

export interface RunCosts {
  co2Kg: number | null;
  energyKj: number | null;
  /** The energy (and CO2) is the CPU-time estimate, not a measurement. */
  energyEstimated: boolean;
  gpuPowerW: number | null;
  trainTimeS: number | null;
  inferenceTimeS: number | null;
  gpuUtilPct: number | null;
  modelSizeMParams: number | null;
  /** The ptflops convention of the paper's Table 6. */
  gmacPtflops: number | null;
  /** True MACs (every multiply-accumulate of the kernels that ran). */
  gmac: number | null;
  phases: Array<{ phase: string; startMs: number; endMs: number }>;
}

export interface RunRecord {
  dir: string;
  /** Path of the run folder relative to the reported root. */
  relDir: string;
  method: string;
  paperId: string;
  category: string;
  seed: number;
  profile: string;
  /** Ablation variant: the path segment between category and seed-N (benchmark/ablate layout). */
  variant: string | null;
  dataSource: string;
  backboneInit: string | null;
  /** Metrics as fractions (0-1), as metrics.json has them. */
  auroc: number | null;
  ap: number | null;
  pixelAuroc: number | null;
  aupro: number | null;
  oracle: ThresholdMetrics;
  calibrated: ThresholdMetrics;
  costs: RunCosts | null;
}

export interface RunScan {
  records: RunRecord[];
  /** Run folders (with a config.json) whose metrics/costs are missing or invalid. */
  incomplete: string[];
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown, d: string): string => (typeof v === 'string' ? v : d);

function readJson(path: string): Json {
  try {
    return obj(JSON.parse(readFileSync(path, 'utf8')));
  } catch (e) {
    throw new DatasetError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function thresholds(v: unknown): ThresholdMetrics {
  const t = obj(v);
  return { precision: num(t.precision), recall: num(t.recall), f1: num(t.f1) };
}

const cell = (section: unknown, key: string): { value: number | null; estimated: boolean } => {
  const c = obj(obj(section)[key]);
  return { value: num(c.value), estimated: c.estimated === true };
};

function readCosts(path: string): RunCosts | null {
  if (!existsSync(path)) return null;
  const c = readJson(path);
  const t5 = c.table5;
  const t6 = c.table6;
  const energy = cell(t5, 'energyKj');
  const phases = Array.isArray(c.phases)
    ? c.phases.map((p) => {
        const q = obj(p);
        return { phase: str(q.phase, '?'), startMs: Date.parse(str(q.startedAt, '')), endMs: Date.parse(str(q.endedAt, '')) };
      }).filter((p) => Number.isFinite(p.startMs) && Number.isFinite(p.endMs))
    : [];
  return {
    co2Kg: cell(t5, 'co2Kg').value,
    energyKj: energy.value,
    energyEstimated: energy.estimated,
    gpuPowerW: cell(t5, 'gpuPowerW').value,
    trainTimeS: cell(t6, 'trainTimeS').value,
    inferenceTimeS: cell(t6, 'inferenceTimeS').value,
    gpuUtilPct: cell(t6, 'gpuUtilPct').value,
    modelSizeMParams: cell(t6, 'modelSizeMParams').value,
    gmacPtflops: cell(t6, 'gmacPtflops').value,
    gmac: cell(t6, 'gmac').value,
    phases,
  };
}

/** Reads one complete run folder. */
export function readRunRecord(dir: string, root: string): RunRecord {
  const config = readJson(join(dir, 'config.json'));
  const metrics = readJson(join(dir, 'metrics.json'));
  const relDir = relative(root, dir).split(sep).join('/');
  const parts = relDir.split('/');
  const category = str(config.category, '?');
  const seedSeg = parts[parts.length - 1];
  const catIdx = parts.lastIndexOf(category);
  const variant = /^seed-\d+$/.test(seedSeg) && catIdx >= 0 && catIdx === parts.length - 3 ? parts[parts.length - 2] : null;
  const image = obj(metrics.image);
  const pixel = obj(metrics.pixel);
  return {
    dir,
    relDir,
    method: str(config.method, '?'),
    paperId: str(config.paperId, str(config.method, '?')),
    category,
    seed: num(config.seed) ?? 0,
    profile: str(config.profile, '?'),
    variant,
    dataSource: str(config.dataSource, str(metrics.dataSource, '?')),
    backboneInit: typeof metrics.backboneInit === 'string' ? metrics.backboneInit : null,
    auroc: num(image.auroc),
    ap: num(image.ap),
    pixelAuroc: num(pixel.auroc),
    aupro: num(pixel.aupro),
    oracle: thresholds(metrics.oracle),
    calibrated: thresholds(metrics.calibrated),
    costs: readCosts(join(dir, 'costs.json')),
  };
}

/** Every run folder (a folder with config.json) under root; logs/ and model/ folders are not descended. */
export function scanRuns(rootDir: string): RunScan {
  const root = resolve(rootDir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new DatasetError(`runs folder '${root}' does not exist`);
  const records: RunRecord[] = [];
  const incomplete: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (existsSync(join(dir, 'config.json'))) {
      if (runFolderState(dir) === 'complete') records.push(readRunRecord(dir, root));
      else incomplete.push(relative(root, dir).split(sep).join('/'));
      return;
    }
    if (depth > 6) return;
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'logs') walk(join(dir, e.name), depth + 1);
    }
  };
  walk(root, 0);
  return { records, incomplete };
}

/** Test-set rows of a run's scores.csv (validation rows are marked split=validation). */
export function readTestScores(dir: string): { ids: string[]; scores: number[]; labels: number[] } {
  const text = readFileSync(join(dir, 'scores.csv'), 'utf8');
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = lines[0].split(',');
  const col = (name: string): number => header.indexOf(name);
  const [iId, iScore, iLabel, iSplit] = [col('id'), col('score'), col('label'), col('split')];
  if (iId < 0 || iScore < 0 || iLabel < 0) throw new DatasetError(`${join(dir, 'scores.csv')}: expected columns id,score,label`);
  const out = { ids: [] as string[], scores: [] as number[], labels: [] as number[] };
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    if (iSplit >= 0 && f[iSplit] !== 'test') continue;
    out.ids.push(f[iId]);
    out.scores.push(Number(f[iScore]));
    out.labels.push(Number(f[iLabel]));
  }
  return out;
}
