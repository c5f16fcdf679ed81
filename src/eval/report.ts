import { PAPER_SOURCE, paperCategoryResult, type PaperCategoryResult } from './paperReference.js';

/** The subset of computed metrics a report shows (values in [0,1], null = not computable). */
export interface ReportMetrics {
  image: { auroc: number | null; ap: number | null };
  pixel: { auroc: number | null; aupro: number | null };
  calibrated: { threshold: number | null; precision: number | null; recall: number | null; f1: number | null; rule?: string };
  oracle: { threshold: number | null; precision: number | null; recall: number | null; f1: number | null };
}

export interface ReportInput {
  method: string;
  paperId: string;
  displayName: string;
  category: string;
  profile: string;
  backend: string;
  seed: number | string;
  /** 'real' MVTec data or the built-in synthetic dataset. */
  dataSource: 'real' | 'synthetic';
  backboneInit: string | null;
  /** Set when a stand-in backbone replaced the paper's (src/models/backbones/choice.ts): why. */
  backboneFallback?: string;
  metrics: ReportMetrics;
  counts: { train: number; validation: number; testNormal: number; testAnomalous: number };
  wallTimeS: number;
  details: Record<string, string | number | boolean>;
  /** Markdown of the cost section (Tables 5 and 6 layout), when metering ran. */
  costsMarkdown?: string;
}

const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : (100 * v).toFixed(2));
const paperPct = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : v.toFixed(2));

/**
 * report.md for one run: our metrics beside the paper's for the same method and category.
 * The paper reported image metrics at the best-F1 threshold chosen on the test set; we show that
 * ("oracle") and a threshold calibrated on validation normals only, which a deployment can use.
 */
export function renderReport(r: ReportInput): string {
  const paper: PaperCategoryResult | null = paperCategoryResult(r.paperId, r.category);
  const lines: string[] = [];
  lines.push(`# ${r.displayName} on ${r.category}`, '');
  const warnings: string[] = [];
  if (r.dataSource === 'synthetic') {
    warnings.push('**Synthetic data**: this run used the built-in synthetic dataset, not MVTec AD. Its numbers are not comparable to the paper.');
  }
  if (r.backboneInit === 'random-init') {
    warnings.push('**random-init backbone**: pretrained weights were not available; features are from a randomly initialised network.');
  }
  if (r.backboneFallback) {
    warnings.push(`**Stand-in backbone**: ${r.backboneFallback}. Not the paper's backbone.`);
  }
  if (r.profile !== 'paper') {
    warnings.push(`Profile \`${r.profile}\` (reduced resolution/epochs for CPU), not the paper's configuration.`);
  }
  for (const w of warnings) lines.push(`> ${w}`, '');
  lines.push(
    `Backend \`${r.backend}\`, seed ${r.seed}, wall time ${r.wallTimeS.toFixed(1)} s. ` +
      `Images: ${r.counts.train} train, ${r.counts.validation} validation (normal, held out), ` +
      `${r.counts.testNormal} normal + ${r.counts.testAnomalous} anomalous test.`,
    '',
  );
  lines.push('## Detection', '');
  lines.push('| metric (%) | ours | paper |', '| --- | --- | --- |');
  lines.push(`| image AUROC | ${pct(r.metrics.image.auroc)} | ${paperPct(paper?.auroc)} |`);
  lines.push(`| image AP | ${pct(r.metrics.image.ap)} | ${paperPct(paper?.ap)} |`);
  lines.push(`| recall (oracle threshold) | ${pct(r.metrics.oracle.recall)} | ${paperPct(paper?.recall)} |`);
  lines.push(`| F1 (oracle threshold) | ${pct(r.metrics.oracle.f1)} | ${paperPct(paper?.f1)} |`);
  lines.push(`| precision (oracle threshold) | ${pct(r.metrics.oracle.precision)} | — |`);
  lines.push(`| recall (calibrated threshold) | ${pct(r.metrics.calibrated.recall)} | — |`);
  lines.push(`| precision (calibrated threshold) | ${pct(r.metrics.calibrated.precision)} | — |`);
  lines.push(`| F1 (calibrated threshold) | ${pct(r.metrics.calibrated.f1)} | — |`);
  lines.push(`| pixel AUROC | ${pct(r.metrics.pixel.auroc)} | not reported |`);
  lines.push(`| AUPRO (FPR ≤ 0.3) | ${pct(r.metrics.pixel.aupro)} | not reported |`, '');
  lines.push(
    `Oracle threshold ${fmt(r.metrics.oracle.threshold)}: the best-F1 threshold chosen on the test set, as the paper reported; ` +
      `not usable in deployment. Calibrated threshold ${fmt(r.metrics.calibrated.threshold)}` +
      `${r.metrics.calibrated.rule ? ` (${r.metrics.calibrated.rule})` : ''}: from validation normals only.`,
    '',
  );
  if (Object.keys(r.details).length > 0) {
    lines.push('## Details', '', '| key | value |', '| --- | --- |');
    for (const [k, v] of Object.entries(r.details)) lines.push(`| ${k} | ${typeof v === 'number' ? fmt(v) : String(v)} |`);
    lines.push('');
  }
  if (r.costsMarkdown) lines.push(r.costsMarkdown.trim(), '');
  lines.push(`Paper numbers: ${PAPER_SOURCE}, Tables A1–A4 (${paper ? r.paperId : 'no entry for this category'}).`, '');
  return lines.join('\n');
}

function fmt(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '—';
  return Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toFixed(4).replace(/\.?0+$/, '');
}
