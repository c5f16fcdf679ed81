/**
 * The synthetic-anomaly registry: every generator the ten methods use (Cools et al. 2025, §2.1
 * first axis: trained with synthetic anomalies or not), one entry each. Methods read a strategy
 * name (+ parameter overrides) from their config and call `createImageStrategy` /
 * `createFeatureStrategy`, so any generator can be swapped into any method that takes one.
 * Parameters, defaults and sources are declared next to each strategy (the *_PARAMS objects) and
 * tabulated in README.md (a test keeps the two in sync).
 */
import { ConfigError } from '../errors.js';
import { CUTPASTE_PARAMS, CutPasteStrategy } from './cutpaste.js';
import { DIFFUSIONAD_PARAMS, DiffusionAdStrategy } from './diffusionad.js';
import { DRAEM_PARAMS, DraemStrategy } from './draem.js';
import { GLASS_GAS_PARAMS, GlassGasStrategy } from './glass-gas.js';
import { GLASS_LAS_PARAMS, GlassLasStrategy } from './glass-las.js';
import { type ParamSpec, parseParamAssignments } from './params.js';
import { PERLIN_ANOMALY_PARAMS, PerlinAnomalyStrategy } from './perlin-anomaly.js';
import { RIAD_PARAMS, RiadMaskStrategy } from './riad.js';
import type { FeatureStrategy, ImageStrategy, ImageStrategyRole, ParamValue, Strategy, StrategyOptions } from './types.js';

export interface StrategyEntry {
  readonly name: string;
  readonly kind: 'image' | 'feature';
  /** Image strategies: 'anomaly' or 'inpaint'. */
  readonly role?: ImageStrategyRole;
  /** Methods whose reference code uses this generator. */
  readonly usedBy: readonly string[];
  readonly summary: string;
  /** Spec file and section the behaviour follows. */
  readonly spec: string;
  readonly params: ParamSpec;
  readonly usesTextures: boolean;
  readonly usesForeground: boolean;
  readonly create: (opts: StrategyOptions) => Strategy;
}

const ENTRIES: readonly StrategyEntry[] = [
  {
    name: 'perlin',
    kind: 'image',
    role: 'anomaly',
    usedBy: ['DRAEM', 'GLASS', 'DiffusionAD (mask generator)'],
    summary: 'Perlin mask (scales 2^0..2^5, rotation, > 0.5) filled with the noise itself (anomalib no-texture fallback)',
    spec: 'draem.md §3.2, §6; README-part-B.md "Shared anomaly generator"',
    params: PERLIN_ANOMALY_PARAMS,
    usesTextures: false,
    usesForeground: false,
    create: (o) => new PerlinAnomalyStrategy(o),
  },
  {
    name: 'draem',
    kind: 'image',
    role: 'anomaly',
    usedBy: ['DRAEM'],
    summary: 'texture × 3 random imgaug-style augmenters pasted through a Perlin mask, β ~ U[0, 0.8), 50 % clean, 30 % clean-image rotation',
    spec: 'draem.md §3',
    params: DRAEM_PARAMS,
    usesTextures: true,
    usesForeground: false,
    create: (o) => new DraemStrategy(o),
  },
  {
    name: 'glass-las',
    kind: 'image',
    role: 'anomaly',
    usedBy: ['GLASS'],
    summary: 'union / intersection / single of two Perlin masks × foreground, β ~ N(0.5, 0.1²) clipped [0.2, 0.8], redrawn until the pooled mask is non-empty',
    spec: 'glass.md §3 LAS',
    params: GLASS_LAS_PARAMS,
    usesTextures: true,
    usesForeground: true,
    create: (o) => new GlassLasStrategy(o),
  },
  {
    name: 'glass-gas',
    kind: 'feature',
    usedBy: ['GLASS'],
    summary: 'feature-level Gaussian noise + gradient ascent against the discriminator with truncated projection (manifold / hypersphere)',
    spec: 'glass.md §3 step 3',
    params: GLASS_GAS_PARAMS,
    usesTextures: false,
    usesForeground: false,
    create: (o) => new GlassGasStrategy(o),
  },
  {
    name: 'cutpaste',
    kind: 'image',
    role: 'anomaly',
    usedBy: ['CutPaste'],
    summary: 'rectangular patch (area 2–15 %, aspect 0.3–3.3, jitter 0.1) cut and pasted elsewhere; binary',
    spec: 'cutpaste.md §3; paper A.2',
    params: CUTPASTE_PARAMS,
    usesTextures: false,
    usesForeground: false,
    create: (o) => new CutPasteStrategy('cutpaste', o),
  },
  {
    name: 'cutpaste-scar',
    kind: 'image',
    role: 'anomaly',
    usedBy: ['CutPaste'],
    summary: 'thin patch (2–16 × 10–25 px) rotated ±45°, pasted; binary',
    spec: 'cutpaste.md §3',
    params: CUTPASTE_PARAMS,
    usesTextures: false,
    usesForeground: false,
    create: (o) => new CutPasteStrategy('cutpaste-scar', o),
  },
  {
    name: 'cutpaste-3way',
    kind: 'image',
    role: 'anomaly',
    usedBy: ['CutPaste (headline configuration)'],
    summary: 'normal / CutPaste / Scar views, labels 0 / 1 / 2',
    spec: 'cutpaste.md §3, §7.3',
    params: CUTPASTE_PARAMS,
    usesTextures: false,
    usesForeground: false,
    create: (o) => new CutPasteStrategy('cutpaste-3way', o),
  },
  {
    name: 'cutpaste-union',
    kind: 'image',
    role: 'anomaly',
    usedBy: ['CutPaste (binary-union variant, paper Table 5)'],
    summary: 'binary; each anomalous view is CutPaste or Scar with probability 1/2',
    spec: 'cutpaste.md §3 (binary union)',
    params: CUTPASTE_PARAMS,
    usesTextures: false,
    usesForeground: false,
    create: (o) => new CutPasteStrategy('cutpaste-union', o),
  },
  {
    name: 'diffusionad',
    kind: 'image',
    role: 'anomaly',
    usedBy: ['DiffusionAD'],
    summary: 'Perlin × foreground (≤ 50 redraws), texture or strip-shuffled self-augmentation source, β ~ U[0.2, 0.8), 50 % clean',
    spec: 'diffusionad.md §3 "Synthetic anomalies"',
    params: DIFFUSIONAD_PARAMS,
    usesTextures: true,
    usesForeground: true,
    create: (o) => new DiffusionAdStrategy(o),
  },
  {
    name: 'riad-masks',
    kind: 'image',
    role: 'inpaint',
    usedBy: ['RIAD'],
    summary: 'n = 3 disjoint random cell masks, cell size from {2, 4, 8, 16} per batch (masked inputs, not anomalies)',
    spec: 'riad.md §3 "Disjoint masks"',
    params: RIAD_PARAMS,
    usesTextures: false,
    usesForeground: false,
    create: (o) => new RiadMaskStrategy(o),
  },
];

const BY_NAME = new Map(ENTRIES.map((e) => [e.name, e]));

/** Registered strategy names, in registry order. */
export function listStrategies(): string[] {
  return ENTRIES.map((e) => e.name);
}

export function strategyEntries(): readonly StrategyEntry[] {
  return ENTRIES;
}

/** @throws ConfigError naming the valid strategies. */
export function getStrategyEntry(name: string): StrategyEntry {
  const e = BY_NAME.get(name);
  if (!e) throw new ConfigError(`unknown anomaly strategy '${name}'; registered strategies: ${listStrategies().join(', ')}`);
  return e;
}

export function createStrategy(name: string, opts: StrategyOptions = {}): Strategy {
  return getStrategyEntry(name).create(opts);
}

/** For methods that synthesise images (DRAEM, CutPaste, DiffusionAD, GLASS LAS, RIAD masks...). */
export function createImageStrategy(name: string, opts: StrategyOptions = {}): ImageStrategy {
  const s = createStrategy(name, opts);
  if (s.kind !== 'image') {
    throw new ConfigError(`strategy '${name}' works on features, not images; image strategies: ${imageStrategyNames().join(', ')}`);
  }
  return s;
}

/** For methods that perturb features (GLASS GAS and ablations). */
export function createFeatureStrategy(name: string, opts: StrategyOptions = {}): FeatureStrategy {
  const s = createStrategy(name, opts);
  if (s.kind !== 'feature') {
    const names = ENTRIES.filter((e) => e.kind === 'feature').map((e) => e.name);
    throw new ConfigError(`strategy '${name}' works on images, not features; feature strategies: ${names.join(', ')}`);
  }
  return s;
}

export function imageStrategyNames(): string[] {
  return ENTRIES.filter((e) => e.kind === 'image').map((e) => e.name);
}

/** `--param key=value` strings → typed overrides for `name` (validated again on create). */
export function parseStrategyParams(name: string, items: readonly string[]): Record<string, ParamValue> {
  return parseParamAssignments(name, getStrategyEntry(name).params, items);
}
