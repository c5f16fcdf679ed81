import type * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.js';

/**
 * The networks of a method, as given to the counters: one root module, a list, or named roots.
 * Named roots prefix their parameter names ('encoder.layer1.0.conv1.weight'), which is what the
 * paper inclusion rules match on.
 */
export type ModuleSet = Module | readonly Module[] | Readonly<Record<string, Module>>;

/**
 * How the paper counted a method's parameters (TABLE6.md): which named parameters, how many times,
 * plus counts of networks we do not build. Supplied by method owners.
 */
export interface ParamInclusionRule {
  /** One sentence for reports, e.g. 'whole WRN-50-2, though only stem..layer3 runs'. */
  description: string;
  /** Multiplicity of a parameter by its dotted name: 0 leaves it out, 3 counts it three times. Default 1. */
  count?: (paramPath: string) => number;
  /** Parameters the paper includes that are not in the module set. */
  extra?: readonly { label: string; params: number }[];
}

export interface NamedParam {
  path: string;
  variable: tf.Variable;
}

function isModule(x: unknown): x is Module {
  return typeof x === 'object' && x !== null && typeof (x as Module).namedParameters === 'function';
}

/** Roots with their name prefixes ('' for a single module). */
export function moduleRoots(set: ModuleSet): { prefix: string; module: Module }[] {
  if (isModule(set)) return [{ prefix: '', module: set }];
  if (Array.isArray(set)) return (set as readonly Module[]).map((m, i) => ({ prefix: set.length === 1 ? '' : `${i}.`, module: m }));
  return Object.entries(set as Readonly<Record<string, Module>>).map(([k, m]) => ({ prefix: `${k}.`, module: m }));
}

/**
 * Parameters (not buffers) by prefixed name, each variable once (the first name wins), so weights
 * shared between roots are counted once, as torch's `parameters()` does.
 */
export function uniqueParameters(set: ModuleSet): NamedParam[] {
  const seen = new Set<tf.Variable>();
  const out: NamedParam[] = [];
  for (const { prefix, module } of moduleRoots(set)) {
    for (const [name, v] of module.namedParameters(prefix)) {
      if (seen.has(v)) continue;
      seen.add(v);
      out.push({ path: name, variable: v });
    }
  }
  return out;
}

/** Buffers (BatchNorm running statistics...), reported apart: torch's parameter counts exclude them. */
export function bufferCount(set: ModuleSet): number {
  let n = 0;
  for (const { module } of moduleRoots(set)) {
    for (const [, e] of module.namedEntries()) if (e.kind === 'buffer') n += e.variable.size;
  }
  return n;
}

export interface ParamSummary {
  /** Distinct parameters over all given modules (torch: sum(p.numel() for p in parameters())). */
  unique: number;
  uniqueM: number;
  /** Distinct parameters that entered a kernel during the counted pass; null when no pass was counted. */
  run: number | null;
  runM: number | null;
  /** Under the paper's inclusion rule; equals `unique` when no rule is given. */
  paperRule: number;
  paperRuleM: number;
  paperRuleDescription: string;
  /** Non-trainable state (not in any of the counts above). */
  buffers: number;
  /** Size of the unique parameters stored as float32, in MiB (2^20 bytes). */
  sizeMiBFloat32: number;
}

/**
 * Counts parameters unique, actually used (`usedVariableIds`: ids of variables seen as kernel
 * inputs) and under the paper rule. The paper's "Model Size (MB)" is `paperRuleM` truncated to two
 * decimals (TABLE6.md); MiB of float32 is reported separately because it is a different quantity.
 */
export function summarizeParams(set: ModuleSet, rule?: ParamInclusionRule, usedVariableIds?: ReadonlySet<number>): ParamSummary {
  const params = uniqueParameters(set);
  const unique = params.reduce((s, p) => s + p.variable.size, 0);
  const run = usedVariableIds ? params.filter((p) => usedVariableIds.has(p.variable.id)).reduce((s, p) => s + p.variable.size, 0) : null;
  let paper = 0;
  for (const p of params) paper += (rule?.count ? rule.count(p.path) : 1) * p.variable.size;
  for (const e of rule?.extra ?? []) paper += e.params;
  return {
    unique,
    uniqueM: unique / 1e6,
    run,
    runM: run === null ? null : run / 1e6,
    paperRule: paper,
    paperRuleM: paper / 1e6,
    paperRuleDescription: rule?.description ?? 'all unique parameters of the given modules',
    buffers: bufferCount(set),
    sizeMiBFloat32: (unique * 4) / 2 ** 20,
  };
}

/** The paper's "Model Size (MB)" formatting: millions of parameters truncated (not rounded) to 2 decimals. */
export function paperModelSize(params: number): string {
  const hundredths = Math.floor(params / 1e4 + 1e-9);
  return (hundredths / 100).toFixed(2);
}

/** Parameters owned directly by each module (children excluded), keyed by the path Layer.call pushes. */
export function directParamsByModulePath(set: ModuleSet): Map<string, number> {
  const out = new Map<string, number>();
  const seen = new Set<Module>();
  const visit = (m: Module): void => {
    if (seen.has(m)) return;
    seen.add(m);
    const own = m.namedParameters().filter(([n]) => !n.includes('.'));
    const key = m.path || m.constructor.name;
    out.set(key, (out.get(key) ?? 0) + own.reduce((s, [, v]) => s + v.size, 0));
    for (const [, c] of m.namedChildren()) visit(c);
  };
  for (const { module } of moduleRoots(set)) visit(module);
  return out;
}
