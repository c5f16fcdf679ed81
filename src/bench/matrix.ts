import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';

/**
 * The benchmark matrix as data: which runs exist (method × category × seed, optionally × variant),
 * where each one's run folder lives, which shard runs which, and when a run counts as done. Pure
 * functions only; executing the runs is matrixExecutor.ts.
 */

export interface RunSpec {
  /** `<method>/<category>[/<variant>]/seed-<seed>`: also the run folder, relative to the matrix root. */
  id: string;
  method: string;
  category: string;
  seed: number;
  /** Training profile passed as --profile (null: the method's default). */
  profile: string | null;
  /** Ablation variant name (e.g. a synthetic-anomaly strategy); null in a plain benchmark. */
  variant: string | null;
  /** Extra train.ts arguments for this run (method arguments, then variant arguments). */
  args: string[];
}

export interface MatrixSpec {
  methods: readonly string[];
  categories: readonly string[];
  seeds: readonly number[];
  profile?: string | null;
  /** Extra train.ts arguments for every run. */
  commonArgs?: readonly string[];
  /** Extra train.ts arguments per method name. */
  methodArgs?: Readonly<Record<string, readonly string[]>>;
  /** Variants (ablation): name -> arguments; absent = one run per cell, no variant. */
  variants?: ReadonlyArray<{ name: string; args: readonly string[] }>;
}

// Names become path components of the run folder: keep them to plain names.
const SAFE = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

function checkName(kind: string, name: string): void {
  if (!SAFE.test(name) || name.includes('..')) {
    throw new ConfigError(`invalid ${kind} name '${name}': use letters, digits and _ . + - only`);
  }
}

export function runId(method: string, category: string, seed: number, variant: string | null = null): string {
  return variant === null ? `${method}/${category}/seed-${seed}` : `${method}/${category}/${variant}/seed-${seed}`;
}

/** Every run of the matrix, in method, category, variant, seed order (stable: shards depend on it). */
export function enumerateRuns(spec: MatrixSpec): RunSpec[] {
  if (spec.methods.length === 0) throw new ConfigError('--methods: name at least one method');
  if (spec.categories.length === 0) throw new ConfigError('--categories: name at least one category');
  if (spec.seeds.length === 0) throw new ConfigError('--seeds: name at least one seed');
  spec.methods.forEach((m) => checkName('method', m));
  spec.categories.forEach((c) => checkName('category', c));
  const variants = spec.variants ?? [null];
  for (const v of variants) if (v) checkName('variant', v.name);
  const runs: RunSpec[] = [];
  const seen = new Set<string>();
  for (const method of spec.methods) {
    for (const category of spec.categories) {
      for (const v of variants) {
        for (const seed of spec.seeds) {
          const id = runId(method, category, seed, v?.name ?? null);
          if (seen.has(id)) throw new ConfigError(`run ${id} is listed twice (repeated method, category, variant or seed)`);
          seen.add(id);
          runs.push({
            id,
            method,
            category,
            seed,
            profile: spec.profile ?? null,
            variant: v?.name ?? null,
            args: [...(spec.commonArgs ?? []), ...(spec.methodArgs?.[method] ?? []), ...(v?.args ?? [])],
          });
        }
      }
    }
  }
  return runs;
}

/** Comma-separated list, empty items dropped. */
export function parseList(option: string, value: string | readonly string[] | undefined): string[] {
  const raw = Array.isArray(value) ? value.join(',') : (value ?? '');
  return String(raw).split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** `0,1,2`, `0-4` (inclusive) or a mix: `0-2,7`. */
export function parseSeeds(value: string | number | undefined): number[] {
  const out: number[] = [];
  for (const part of parseList('--seeds', value === undefined ? '0' : String(value))) {
    const range = /^(\d+)-(\d+)$/.exec(part);
    if (range) {
      const a = Number(range[1]);
      const b = Number(range[2]);
      if (b < a) throw new ConfigError(`--seeds ${part}: range end is below its start`);
      for (let s = a; s <= b; s++) out.push(s);
    } else if (/^\d+$/.test(part)) {
      out.push(Number(part));
    } else {
      throw new ConfigError(`--seeds: '${part}' is not a seed (non-negative integers, 'a-b' ranges, comma-separated)`);
    }
  }
  return [...new Set(out)];
}

export interface Shard {
  /** 0-based, so that Slurm's $SLURM_ARRAY_TASK_ID can be passed as is. */
  index: number;
  count: number;
}

/** `i/n` with 0 <= i < n. */
export function parseShard(value: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  if (!m) throw new ConfigError(`--shard ${value}: expected i/n (0-based shard i of n, e.g. 0/4)`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new ConfigError(`--shard ${value}: need 0 <= i < n and n >= 1`);
  return { index, count };
}

/**
 * Round-robin: run k belongs to shard k mod n. Disjoint and complete for any n, and long and short
 * runs (methods are enumerated together) spread over shards instead of one shard getting one method.
 */
export function shardRuns<T>(runs: readonly T[], shard: Shard): T[] {
  return runs.filter((_, k) => k % shard.count === shard.index);
}

export type RunFolderState = 'complete' | 'incomplete' | 'absent';

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isMetric = (v: unknown): boolean => v === null || (typeof v === 'number' && Number.isFinite(v));

/**
 * A run is complete when metrics.json parses and holds the image metrics and both thresholds,
 * and costs.json (written after metrics.json, src/run/trainAndEvaluate.ts) parses too; a run
 * killed between the two would otherwise count as done without its costs.
 */
export function runFolderState(dir: string): RunFolderState {
  if (!existsSync(dir)) return 'absent';
  const m = readJson(join(dir, 'metrics.json'));
  const c = readJson(join(dir, 'costs.json'));
  if (!isObject(m) || !isObject(c)) return 'incomplete';
  const image = m.image;
  if (!isObject(image) || !isMetric(image.auroc) || !isMetric(image.ap)) return 'incomplete';
  for (const t of ['oracle', 'calibrated']) {
    const th = m[t];
    if (!isObject(th) || !isMetric(th.recall) || !isMetric(th.f1)) return 'incomplete';
  }
  return 'complete';
}

/**
 * Splits an argument string into words like a POSIX shell without expansions: whitespace
 * separates, single quotes keep everything, double quotes keep all but `\"` and `\\`.
 */
export function splitArgs(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote === "'") {
      if (ch === "'") quote = null;
      else word += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = null;
      else if (ch === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) word += text[++i];
      else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote) throw new ConfigError(`unterminated ${quote} quote in '${text}'`);
  if (inWord) words.push(word);
  return words;
}

/** `--method-args NAME=ARGS` items -> method -> argument words. */
export function parseMethodArgs(items: readonly string[] | undefined, methods: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const item of items ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--method-args ${item}: expected METHOD='train.ts arguments'`);
    const name = item.slice(0, eq).trim();
    if (!methods.includes(name)) throw new ConfigError(`--method-args ${item}: '${name}' is not one of --methods (${methods.join(', ')})`);
    out[name] = [...(out[name] ?? []), ...splitArgs(item.slice(eq + 1))];
  }
  return out;
}

/** Keeps the runs named by `--only` (every name must be a run of the matrix). */
export function selectRuns(runs: readonly RunSpec[], only: readonly string[] | undefined): RunSpec[] {
  if (!only || only.length === 0) return [...runs];
  const ids = new Set(runs.map((r) => r.id));
  for (const id of only) if (!ids.has(id)) throw new ConfigError(`--only ${id}: no such run in this matrix (runs look like ${runs[0]?.id ?? 'method/category/seed-0'})`);
  return runs.filter((r) => only.includes(r.id));
}
