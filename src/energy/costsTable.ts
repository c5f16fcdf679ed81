import { countMacs, type MacReport } from './macs.js';
import { moduleRoots, type ModuleSet, type ParamInclusionRule } from './params.js';

/**
 * What experiments/costs.ts needs from a method to print its Table 6 parameter and GMAC row: how
 * to build its networks and run the pass the paper counted, and the paper's figures with the rule
 * the paper used to count parameters (TABLE6.md). Each method's spec lives beside its code and is
 * reachable as MethodDefinition.costSpec (src/registry.ts); this file imports no method code
 * (energy sits below models).
 */

export interface CostNetworks {
  /** Every network the method builds (named roots prefix parameter names for the paper rule). */
  modules: ModuleSet;
  /** The counted pass, synchronous, at batch 1: e.g. `x => wrn.forward(tf.zeros([1, s, s, 3]))`. */
  forward(inputSize: number): unknown;
  /** Frees the networks; default disposes every root module. */
  dispose?(): void;
}

export interface MethodCostSpec {
  /** Registry name ('patchcore'). */
  method: string;
  build(): CostNetworks | Promise<CostNetworks>;
  /** Input side the paper counted at (224 for PatchCore). */
  inputSize: number;
  /** The paper's Table 6 "Model Size (MB)" (= M params) and GMAC; null where it has none. */
  paperParamsM: number | null;
  paperGmac: number | null;
  /** How the paper counted parameters; default: all unique parameters built. */
  paperRule?: ParamInclusionRule;
  /** What the row includes and any caveat (one sentence). */
  note: string;
}

/** One row of `costs.ts --json`. */
export interface CostRow {
  method: string;
  /** Distinct parameters that ran in the counted pass, millions. */
  paramsM: number;
  /** Under the paper's inclusion rule, millions. */
  paramsMPaperRule: number;
  /** True MACs of the counted pass, 1e9. */
  gmac: number;
  /** ptflops-convention MACs (the paper's), 1e9. */
  gmacPtflops: number;
  paperParamsM: number | null;
  paperGmac: number | null;
  note: string;
}

export interface CostRowDetail extends CostRow {
  inputSize: number;
  paramsMUnique: number;
  sizeMiBFloat32: number;
  /** Ours / paper, for the parameter count under the paper rule and the ptflops GMAC. */
  ratioParams: number | null;
  ratioGmacPtflops: number | null;
  paperRuleDescription: string;
  macs: MacReport;
}

/** Counts one pass of already-built networks (kept alive: the caller disposes them). */
export function countCostRow(spec: MethodCostSpec, nets: CostNetworks, inputSize = spec.inputSize): CostRowDetail {
  const macs = countMacs(() => nets.forward(inputSize), { modules: nets.modules, paperRule: spec.paperRule });
  const p = macs.params!;
  return {
    method: spec.method,
    paramsM: p.runM ?? p.uniqueM,
    paramsMPaperRule: p.paperRuleM,
    gmac: macs.totals.gmac,
    gmacPtflops: macs.totals.gmacPtflops,
    paperParamsM: spec.paperParamsM,
    paperGmac: spec.paperGmac,
    note: spec.note,
    inputSize,
    paramsMUnique: p.uniqueM,
    sizeMiBFloat32: p.sizeMiBFloat32,
    ratioParams: spec.paperParamsM ? p.paperRuleM / spec.paperParamsM : null,
    ratioGmacPtflops: spec.paperGmac ? macs.totals.gmacPtflops / spec.paperGmac : null,
    paperRuleDescription: p.paperRuleDescription,
    macs,
  };
}

export function disposeCostNetworks(nets: CostNetworks): void {
  if (nets.dispose) nets.dispose();
  else for (const { module } of moduleRoots(nets.modules)) module.dispose();
}

/** Builds the method's networks, counts one pass, disposes the networks. */
export async function computeCostRow(spec: MethodCostSpec, inputSize = spec.inputSize): Promise<CostRowDetail> {
  const nets = await spec.build();
  try {
    return countCostRow(spec, nets, inputSize);
  } finally {
    disposeCostNetworks(nets);
  }
}

/** The `--json` shape: exactly these keys. */
export function toJsonRow(r: CostRow): CostRow {
  const { method, paramsM, paramsMPaperRule, gmac, gmacPtflops, paperParamsM, paperGmac, note } = r;
  return { method, paramsM, paramsMPaperRule, gmac, gmacPtflops, paperParamsM, paperGmac, note };
}

/** A plain-text table of rows for the terminal. */
export function formatCostRows(rows: readonly CostRowDetail[]): string {
  const f = (v: number | null, d: number): string => (v === null ? '–' : v.toFixed(d));
  const head = ['method', 'input', 'params M (run)', 'params M (paper rule)', 'paper M', 'ratio', 'GMAC true', 'GMAC ptflops', 'paper GMAC', 'ratio (ptflops)'];
  const body = rows.map((r) => [
    r.method,
    `${r.inputSize}²`,
    f(r.paramsM, 2),
    f(r.paramsMPaperRule, 2),
    f(r.paperParamsM, 2),
    f(r.ratioParams, 3),
    f(r.gmac, 3),
    f(r.gmacPtflops, 3),
    f(r.paperGmac, 3),
    f(r.ratioGmacPtflops, 3),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  const out = [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)];
  out.push('');
  for (const r of rows) out.push(`${r.method}: ${r.note} Paper rule: ${r.paperRuleDescription}.`);
  return out.join('\n');
}
