/**
 * Builds src/eval/reference/paper-reference.json from the paper's tables (Cools et al. 2025) as
 * clean CSV in ../shared/paper/tables. Run once when the tables change:
 *   npx tsx scripts/make-paper-reference.ts [TABLES_DIR]
 * Values are kept as printed (percentages 0-100, seconds, kJ...); known inconsistencies of the
 * paper (its tables README: I1 DDAD AP, I4 DDAD/DiffusionAD Table 6 row, I5 CO2) are recorded
 * as notes, never "fixed".
 */
import { readFileSync, readdirSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';

const dir = resolve(process.argv[2] ?? '../shared/paper/tables');
const files = readdirSync(dir).filter((f) => f.endsWith('.csv')).sort();

type Row = Record<string, string | number | null>;
const tables: Record<string, Row[]> = {};
for (const f of files) {
  const lines = readFileSync(join(dir, f), 'utf8').trim().split(/\r?\n/);
  const header = lines[0].split(',');
  tables[f.replace(/\.csv$/, '')] = lines.slice(1).map((line) => {
    const cells = line.split(',');
    const row: Row = {};
    header.forEach((h, i) => {
      const v = cells[i] ?? '';
      row[h] = v === '' ? null : h === 'id' || h === 'method' ? v : Number(v);
    });
    return row;
  });
}

// Where each table comes from: the paper's table, the lines of the PDF-extracted text
// (../shared/paper/cools-2025-anomaly-benchmark.txt) and the CSV it was read from (tables README).
const tableSources: Record<string, { paperTable: string; caption: string; textLines: string; csv: string }> = {
  table1_global: { paperTable: 'Table 1', caption: 'Global ranking, averaged over the 15 classes', textLines: '192-203', csv: 'table1_global.csv' },
  table2_fixed: { paperTable: 'Table 2', caption: 'Fixed objects (bottle, cable, capsule, pill, toothbrush, transistor, zipper)', textLines: '211-222', csv: 'table2_fixed.csv' },
  table3_rotating: { paperTable: 'Table 3', caption: 'Rotating objects (hazelnut, metal_nut, screw)', textLines: '232-243', csv: 'table3_rotating.csv' },
  table4_textures: { paperTable: 'Table 4', caption: 'Textures (carpet, grid, leather, tile, wood)', textLines: '257-268', csv: 'table4_textures.csv' },
  table5_environment: { paperTable: 'Table 5', caption: 'CO2 (kg), total energy (kJ), GPU power (W)', textLines: '280-290', csv: 'table5_environment.csv' },
  table6_hardware: { paperTable: 'Table 6', caption: 'Training time (s), inference time per image (s), GPU utilization (%), model size (MB), GMAC', textLines: '300-310', csv: 'table6_hardware.csv' },
  a1_auc_per_class: { paperTable: 'Table A1', caption: 'Image AUC per class', textLines: '457-467', csv: 'a1_auc_per_class.csv' },
  a2_recall_per_class: { paperTable: 'Table A2', caption: 'Recall per class', textLines: '471-481', csv: 'a2_recall_per_class.csv' },
  a3_f1_per_class: { paperTable: 'Table A3', caption: 'F1 per class (caption misplaced after the rows, l. 495)', textLines: '483-493', csv: 'a3_f1_per_class.csv' },
  a4_ap_per_class: { paperTable: 'Table A4', caption: 'Image AP per class (RIAD and PatchSVDD rows missing in the paper)', textLines: '499-507', csv: 'a4_ap_per_class.csv' },
};
for (const name of Object.keys(tables)) if (!tableSources[name]) throw new Error(`no source recorded for table ${name}`);

const out = {
  source:
    'A. Cools, M. A. Belarbi, S. A. Mahmoudi, "Benchmarking of Anomaly Detection Methods for Industry 4.0", Big Data Cogn. Comput. 2025, 9, 128 (CC BY 4.0)',
  doi: '10.3390/bdcc9050128',
  title: 'Benchmarking of Anomaly Detection Methods for Industry 4.0: Evaluation, Ranking, and Practical Recommendations',
  tablesFrom: '../shared/paper/tables/*.csv (values as printed; see its README for the inconsistencies noted below)',
  tableSources,
  units: {
    performance: 'percent (0-100)',
    co2_kg: 'kg CO2', energy_kj: 'kJ', gpu_power_w: 'W',
    train_time_s: 's', inference_time_s: 's per image', gpu_util_pct: '%', model_size_mb: 'paper "MB" = parameters in millions', gmac: 'GMAC (ptflops-style)',
  },
  notes: {
    ddad_table1_ap: 'Table 1 DDAD AP 96.79 looks copied from its AUC; A4 average is 97.14 (tables README I1).',
    a4_missing: 'Table A4 has no RIAD and PatchSVDD rows (I2).',
    table6_ddad_diffusionad: 'DDAD and DiffusionAD share model size and GMAC in Table 6; one row is probably copied (I4).',
    table5_co2: 'Printed CO2 is not energy x 0.475 for CutPaste, GLASS, DDAD, DiffusionAD, PatchCore (I5).',
    table5_energy: 'Total energy is not GPU power x training time (ratio 1.01-24.3; I6).',
  },
  tables,
};
const target = resolve('src/eval/reference/paper-reference.json');
writeFileSync(`${target}.tmp`, `${JSON.stringify(out, null, 1)}\n`);
renameSync(`${target}.tmp`, target);
console.log(`wrote ${target} (${files.length} tables)`);
