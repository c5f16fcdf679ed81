import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { rocCurve } from '../../eval/metrics/index.js';
import { powerPlotSvg } from '../../energy/plot.js';
import type { PowerSample, SamplerId, MeasurementMethod } from '../../energy/samplers/types.js';
import { mean } from './aggregate.js';
import { readTestScores, type RunRecord } from './runRecords.js';
import { escapeXml, lineChartSvg, scatterSvg, type LineSeries, type ScatterPoint } from './svg.js';
import { orderCategories, rowKey } from './tables.js';

/**
 * The report's figures: AUROC against training energy and against inference time (the paper's
 * performance/cost trade-off, sec. 4.6), ROC curves per category, power traces per run, and a
 * Figure-3-style grid (image, ground truth, each method's heatmap) built from the heatmap panels
 * train.ts already wrote (src/eval/heatmap.ts: image | mask | overlay), so nothing is re-scored.
 */

export interface FigureFiles {
  files: string[];
  notes: string[];
}

function byRow(records: readonly RunRecord[]): Map<string, RunRecord[]> {
  const m = new Map<string, RunRecord[]>();
  for (const r of records) {
    const k = rowKey(r);
    if (!m.has(k)) m.set(k, []);
    m.get(k)!.push(r);
  }
  return new Map([...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
}

function costScatter(records: readonly RunRecord[], pick: (r: RunRecord) => number | null, xLabel: string, title: string): string | null {
  const points: ScatterPoint[] = [];
  for (const [row, rs] of byRow(records)) {
    const xs = rs.map(pick).filter((v): v is number => v !== null);
    const ys = rs.map((r) => r.auroc).filter((v): v is number => v !== null).map((v) => 100 * v);
    const x = mean(xs);
    const y = mean(ys);
    if (x === null || y === null) continue;
    points.push({ x, y, label: row, series: row, hollow: xLabel.includes('Energy') && rs.some((r) => r.costs?.energyEstimated) });
  }
  if (points.length === 0) return null;
  return scatterSvg({ title, xLabel, yLabel: 'Image AUROC (%), mean over runs', points, logX: true });
}

function parsePowerTrace(path: string): PowerSample[] {
  const lines = readFileSync(path, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
  const h = lines[0].split(',');
  const at = (name: string): number => h.indexOf(name);
  const num = (s: string | undefined): number | null => (s === undefined || s === '' ? null : Number(s));
  return lines.slice(1).map((l) => {
    const f = l.split(',');
    return {
      sampler: f[at('sampler')] as SamplerId,
      method: f[at('method')] as MeasurementMethod,
      device: f[at('device')],
      tMs: Number(f[at('unix_ms')]),
      powerW: num(f[at('power_w')]),
      utilizationPct: num(f[at('utilization_pct')]),
      memoryUsedMiB: num(f[at('memory_used_mib')]),
      memoryTotalMiB: num(f[at('memory_total_mib')]),
    };
  }).filter((s) => Number.isFinite(s.tMs));
}

const panelName = (id: string): string => `${id.replace(/[/\\]/g, '_')}.png`;

/** Test images that every row has a heatmap panel for (same split seed -> same picks), anomalous first. */
export function commonHeatmapIds(runs: readonly RunRecord[]): string[] {
  if (runs.length === 0) return [];
  const ids = readTestScores(runs[0].dir).ids;
  const have = ids.filter((id) => runs.every((r) => existsSync(join(r.dir, 'heatmaps', panelName(id)))));
  return [...have.filter((id) => !id.startsWith('test/good/')), ...have.filter((id) => id.startsWith('test/good/'))];
}

/**
 * Figure 3 of the paper: rows = test images, columns = image, ground truth, then one heatmap per
 * method (the same seed for all; each run's heatmaps share that run's value range).
 */
export async function writeFigure3Grid(path: string, runs: readonly RunRecord[], ids: readonly string[]): Promise<void> {
  // Runs may differ in resolution: each panel is cut by its own size and scaled to one cell.
  const first = await sharp(join(runs[0].dir, 'heatmaps', panelName(ids[0]))).metadata();
  const cell = Math.max(Math.floor((first.width ?? 0) / 3), 96);
  const head = 22;
  const cols = ['image', 'ground truth', ...runs.map(rowKey)];
  const W = cols.length * cell;
  const H = head + ids.length * cell;
  const composites: sharp.OverlayOptions[] = [];
  const header = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${head}">${cols.map((c, i) => `<text x="${i * cell + cell / 2}" y="15" font-family="sans-serif" font-size="12" text-anchor="middle">${escapeXml(c)}</text>`).join('')}</svg>`;
  composites.push({ input: Buffer.from(header), left: 0, top: 0 });
  for (let r = 0; r < ids.length; r++) {
    const top = head + r * cell;
    const tile = async (file: string, third: number): Promise<Buffer> => {
      const m = await sharp(file).metadata();
      const w = Math.floor((m.width ?? 0) / 3);
      return sharp(file).extract({ left: third * w, top: 0, width: w, height: m.height ?? 0 }).resize(cell, cell, { kernel: 'nearest' }).png().toBuffer();
    };
    const base = join(runs[0].dir, 'heatmaps', panelName(ids[r]));
    composites.push({ input: await tile(base, 0), left: 0, top }, { input: await tile(base, 1), left: cell, top });
    for (let k = 0; k < runs.length; k++) {
      composites.push({ input: await tile(join(runs[k].dir, 'heatmaps', panelName(ids[r])), 2), left: (2 + k) * cell, top });
    }
  }
  await sharp({ create: { width: W, height: H, channels: 3, background: { r: 255, g: 255, b: 255 } } }).composite(composites).png().toFile(path);
}

export interface FigureOptions {
  /** Test image ids for the Figure-3 grid; default: up to 4 anomalous and 1 normal all rows have. */
  figureImages?: readonly string[];
  /** Category of the grid; default the first one every row ran. */
  figureCategory?: string;
}

export async function writeFigures(records: readonly RunRecord[], outDir: string, o: FigureOptions = {}): Promise<FigureFiles> {
  const files: string[] = [];
  const notes: string[] = [];
  mkdirSync(outDir, { recursive: true });
  const put = (name: string, svg: string | null): void => {
    if (svg === null) return;
    writeFileSync(join(outDir, name), svg);
    files.push(name);
  };
  put('auroc_vs_energy.svg', costScatter(records, (r) => r.costs?.energyKj ?? null, 'Training energy (kJ, log scale)', 'Image AUROC against training energy'));
  put('auroc_vs_inference_time.svg', costScatter(records, (r) => r.costs?.inferenceTimeS ?? null, 'Inference time (s per image, batch 1, log scale)', 'Image AUROC against inference time'));

  for (const category of orderCategories(records.map((r) => r.category))) {
    const series: LineSeries[] = [];
    for (const [row, rs] of byRow(records.filter((r) => r.category === category))) {
      const run = [...rs].sort((a, b) => a.seed - b.seed)[0];
      const t = readTestScores(run.dir);
      if (!t.labels.includes(0) || !t.labels.includes(1)) continue;
      const c = rocCurve(t.scores, t.labels);
      series.push({ label: `${row} (seed ${run.seed}, AUROC ${run.auroc === null ? '—' : (100 * run.auroc).toFixed(1)})`, xs: c.fpr, ys: c.tpr });
    }
    if (series.length) put(`roc_${category}.svg`, lineChartSvg({ title: `ROC, ${category} (test set)`, xLabel: 'false positive rate', yLabel: 'true positive rate', series, xRange: [0, 1], yRange: [0, 1], diagonal: true }));
  }

  mkdirSync(join(outDir, 'power'), { recursive: true });
  const sparse: string[] = [];
  for (const r of records) {
    const trace = join(r.dir, 'power-trace.csv');
    if (!existsSync(trace)) continue;
    const samples = parsePowerTrace(trace);
    // The CPU-time estimate yields one average point per phase: no trace to draw.
    if (samples.filter((s) => s.powerW !== null).length < 2) {
      sparse.push(r.relDir);
      continue;
    }
    put(join('power', `${r.relDir.replace(/\//g, '__')}.svg`), powerPlotSvg(samples, { title: `Power, ${rowKey(r)} on ${r.category} (seed ${r.seed})`, phases: r.costs?.phases ?? [] }));
  }

  if (sparse.length) notes.push(`no power trace drawn for ${sparse.join(', ')}: fewer than two power samples (the CPU-time estimate gives one average per phase; NVML, nvidia-smi or RAPL give traces)`);

  const categories = orderCategories(records.map((r) => r.category));
  const rows = [...byRow(records).keys()];
  const gridCategory = o.figureCategory ?? categories.find((c) => rows.every((row) => records.some((r) => rowKey(r) === row && r.category === c)));
  if (gridCategory) {
    const runs = rows.map((row) => records.filter((r) => rowKey(r) === row && r.category === gridCategory).sort((a, b) => a.seed - b.seed)[0]).filter((r): r is RunRecord => r !== undefined);
    const common = commonHeatmapIds(runs);
    const ids = o.figureImages?.length ? o.figureImages.filter((id) => common.includes(id)) : [...common.filter((id) => !id.startsWith('test/good/')).slice(0, 4), ...common.filter((id) => id.startsWith('test/good/')).slice(0, 1)];
    if (o.figureImages?.length && ids.length < o.figureImages.length) {
      notes.push(`Figure 3 grid: ${o.figureImages.filter((id) => !common.includes(id)).join(', ')} have no heatmap panel in every run of ${gridCategory}; available: ${common.join(', ')}`);
    }
    if (ids.length) {
      await writeFigure3Grid(join(outDir, `figure3_${gridCategory}.png`), runs, ids);
      files.push(`figure3_${gridCategory}.png`);
    }
  }
  return { files, notes };
}
