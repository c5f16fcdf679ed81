import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DatasetError } from '../../errors.js';
import { PAPER_NOTES, PAPER_SOURCE } from '../../eval/paperReference.js';
import { writeFigures, type FigureOptions } from './figures.js';
import { tableCsv, tableMarkdown } from './render.js';
import { scanRuns, type RunRecord } from './runRecords.js';
import { allTables, type ReportTable } from './tables.js';

export interface ReportOptions extends FigureOptions {
  runsDir: string;
  /** Output folder; default `<runsDir>/report`. */
  out?: string;
  /** Skip the plots (tables only). */
  figures?: boolean;
  /** Command line recorded at the top of report.md. */
  command?: string;
}

export interface ReportResult {
  out: string;
  records: RunRecord[];
  incomplete: string[];
  tables: ReportTable[];
  files: string[];
}

function header(records: readonly RunRecord[], incomplete: readonly string[], o: ReportOptions): string[] {
  const uniq = (f: (r: RunRecord) => string): string => [...new Set(records.map(f))].sort().join(', ');
  const synthetic = records.some((r) => r.dataSource !== 'real');
  const randomInit = records.filter((r) => r.backboneInit !== null && /random/.test(r.backboneInit));
  const lines = [
    '# Benchmark report',
    '',
    o.command ? `Made by: \`${o.command}\`` : '',
    '',
    `${records.length} complete runs: methods ${uniq((r) => r.variant ? `${r.method}/${r.variant}` : r.method)}; categories ${uniq((r) => r.category)}; profiles ${uniq((r) => r.profile)}; seeds ${uniq((r) => String(r.seed))}; data ${uniq((r) => r.dataSource)}.`,
  ];
  if (incomplete.length) lines.push('', `**Incomplete run folders (not reported): ${incomplete.join(', ')}.**`);
  if (synthetic) lines.push('', '**Some runs use SYNTHETIC data: their numbers are not comparable to the paper.**');
  if (randomInit.length) lines.push('', `**${randomInit.length} run(s) use a random-init backbone** (${[...new Set(randomInit.map((r) => r.method))].join(', ')}).`);
  if (records.some((r) => r.profile !== 'paper')) lines.push('', "Profiles other than `paper` use reduced resolution/epochs: absolute numbers are not the paper's configuration.");
  lines.push(
    '',
    `Paper values: ${PAPER_SOURCE} (src/eval/reference/paper-reference.json). Performance in percent. ` +
      "Recall and F1 are shown at two thresholds: **oracle** = best F1 on the test set (what the paper reports) and **calibrated** = from validation normals only (usable in production); the paper's value beside both is its own (oracle-style) number. " +
      'Ranks are recomputed from the values among the rows shown (the paper\'s printed ranks contradict its values in places). ' +
      'Groups as the paper: textures (carpet, grid, leather, tile, wood); rotating objects (hazelnut, metal_nut, screw); fixed objects (the other 7). ' +
      'A group/average Δ is given only where our runs cover every class the paper averaged.',
    '',
    'Paper caveats: ' + Object.values(PAPER_NOTES).join(' '),
    '',
  );
  return lines;
}

/** Writes report.md, one CSV per table and the figures; returns what it wrote. */
export async function writeReport(o: ReportOptions): Promise<ReportResult> {
  const runsDir = resolve(o.runsDir);
  const out = resolve(o.out ?? join(runsDir, 'report'));
  const { records, incomplete } = scanRuns(runsDir);
  if (records.length === 0) {
    throw new DatasetError(`no complete run folders under '${runsDir}' (a run folder has config.json, metrics.json and costs.json)${incomplete.length ? `; incomplete: ${incomplete.join(', ')}` : ''}`);
  }
  mkdirSync(out, { recursive: true });
  const tables = allTables(records);
  const files: string[] = [];
  for (const t of tables) {
    writeFileSync(join(out, `${t.name}.csv`), tableCsv(t));
    files.push(`${t.name}.csv`);
  }
  const md = header(records, incomplete, o);
  let figureNotes: string[] = [];
  if (o.figures !== false) {
    const figs = await writeFigures(records, join(out, 'figures'), o);
    files.push(...figs.files.map((f) => join('figures', f)));
    figureNotes = figs.notes;
  }
  md.push('## Performance (Tables 1-4)', '', ...tables.filter((t) => /^table[1-4]/.test(t.name)).map(tableMarkdown));
  md.push('## Costs (Tables 5-6)', '', 'Mean ± std over all runs of a method (every category and seed). Energy and CO2 marked (est.) are the CPU-time estimate, not a measurement.', '', ...tables.filter((t) => /^table[56]/.test(t.name)).map(tableMarkdown));
  md.push('## Per class (Tables A1-A4)', '', ...tables.filter((t) => /^a[1-4]/.test(t.name)).map(tableMarkdown));
  if (o.figures !== false) {
    md.push('## Figures', '', ...files.filter((f) => f.startsWith('figures') && !f.includes('power')).map((f) => `![${f}](${f})`), '');
    const power = files.filter((f) => f.includes('power'));
    if (power.length) md.push(`Power traces: ${power.map((f) => `[${f.replace(/^figures\/power\//, '').replace(/\.svg$/, '')}](${f})`).join(', ')}`, '');
    for (const n of figureNotes) md.push(`Note: ${n}`, '');
  }
  md.push('## Runs', '', '| run folder | method | category | seed | profile | data | backbone | AUROC | AP |', '|---|---|---|---|---|---|---|---|---|');
  for (const r of records) {
    const p = (v: number | null): string => (v === null ? '—' : (100 * v).toFixed(2));
    md.push(`| ${r.relDir} | ${r.method} | ${r.category} | ${r.seed} | ${r.profile} | ${r.dataSource} | ${r.backboneInit ?? ''} | ${p(r.auroc)} | ${p(r.ap)} |`);
  }
  md.push('');
  writeFileSync(join(out, 'report.md'), md.join('\n'));
  files.unshift('report.md');
  return { out, records, incomplete, tables, files };
}
