import type { ReportTable, TableCell } from './tables.js';

/** Markdown and CSV of report tables: Markdown for reading, CSV (one row per cell) for tools. */

/** Significant digits for costs (kg CO2 spans 1e-6 to 1e0), fixed decimals for percentages. */
function fmtValue(v: number | null, cost: boolean): string {
  if (v === null) return '—';
  if (!cost) return v.toFixed(2);
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 0.01 ? v.toPrecision(4).replace(/\.?0+$/, '') : v.toExponential(2);
}

const signed = (v: number, s: string): string => (v > 0 ? `+${s}` : s);

export function cellText(c: TableCell, cost: boolean): string {
  const ours = c.value === null ? '—' : `${fmtValue(c.value, cost)}${c.std !== null ? ` ± ${fmtValue(c.std, cost)}` : ''}${c.estimated ? ' (est.)' : ''}`;
  const rank = c.rank !== null ? ` #${c.rank}` : '';
  const paper = c.paper === null ? 'paper —' : `paper ${fmtValue(c.paper, cost)}${c.paperRank !== null ? ` #${c.paperRank}` : ''}`;
  let cmp = '';
  if (cost && c.ratio !== null) cmp = `, ×${fmtValue(c.ratio, true)}`;
  else if (!cost && c.diff !== null) cmp = `, Δ ${signed(c.diff, c.diff.toFixed(2))}`;
  else if (!cost && c.paper !== null && c.value !== null && c.paperCategories !== null && c.nCategories < c.paperCategories) cmp = `, ${c.nCategories}/${c.paperCategories} classes: no Δ`;
  return `${ours}${rank}<br>${paper}${cmp}`;
}

const isCost = (t: ReportTable): boolean => t.name.startsWith('table5') || t.name.startsWith('table6');

function find(t: ReportTable, row: string, scope: string, metric: string, threshold: string): TableCell | undefined {
  return t.cells.find((c) => c.row === row && c.scope === scope && c.metric === metric && c.threshold === threshold);
}

export function tableMarkdown(t: ReportTable): string {
  const cost = isCost(t);
  const out = [`### ${t.title}`, '', `Paper: ${t.paperTable}. Cell: ours (mean ± std over ${cost ? 'all runs' : 'seeds'}) #rank among these rows; paper's value #its rank among the same rows; ${cost ? '× = ours / paper' : 'Δ = ours − paper (only where ours covers the same classes)'}.`, ''];
  if (t.rows.length === 0) return [...out, '_no runs in this table_', ''].join('\n');
  if (t.scopes.length === 1) {
    const counts = (row: string): string => {
      const c = t.cells.find((x) => x.row === row);
      return c ? `${c.nCategories}${c.paperCategories ? `/${c.paperCategories}` : ''} class${c.nCategories === 1 && !c.paperCategories ? '' : 'es'}, ${c.nSeeds} seed${c.nSeeds === 1 ? '' : 's'}` : '';
    };
    out.push(`| method | ${t.columns.map((c) => c.label).join(' | ')} | coverage |`, `|---|${t.columns.map(() => '---').join('|')}|---|`);
    for (const row of t.rows) {
      out.push(`| ${row} | ${t.columns.map((col) => { const c = find(t, row, t.scopes[0], col.metric, col.threshold); return c ? cellText(c, cost) : ''; }).join(' | ')} | ${counts(row)} |`);
    }
  } else {
    for (const col of t.columns) {
      out.push(`**${col.label}**`, '', `| method | ${t.scopes.join(' | ')} |`, `|---|${t.scopes.map(() => '---').join('|')}|`);
      for (const row of t.rows) {
        out.push(`| ${row} | ${t.scopes.map((s) => { const c = find(t, row, s, col.metric, col.threshold); return c ? cellText(c, cost) : ''; }).join(' | ')} |`);
      }
      out.push('');
    }
  }
  out.push('');
  return out.join('\n');
}

export const CSV_HEADER = 'table,row,paper_id,scope,metric,threshold,n_seeds,n_categories,paper_categories,value,std,rank,paper,paper_rank,diff,ratio,estimated';

const q = (s: string): string => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
const n = (v: number | null): string => (v === null ? '' : String(Number(v.toPrecision(10))));

export function tableCsv(t: ReportTable): string {
  const lines = [CSV_HEADER];
  for (const c of t.cells) {
    lines.push([
      c.table, q(c.row), q(c.paperId), q(c.scope), c.metric, c.threshold, c.nSeeds, c.nCategories, c.paperCategories ?? '',
      n(c.value), n(c.std), c.rank ?? '', n(c.paper), c.paperRank ?? '', n(c.diff), n(c.ratio), c.estimated ? 'true' : 'false',
    ].join(','));
  }
  return `${lines.join('\n')}\n`;
}
