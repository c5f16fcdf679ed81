/**
 * Declarative strategy parameters: each strategy file declares a `ParamSpec` (default, range,
 * doc, spec citation); the registry merges config overrides into it with validation, and
 * README.md's parameter table is checked against these declarations by the tests.
 */
import { ConfigError } from '../errors.js';
import type { ParamMap, ParamValue } from './types.js';

export interface ParamDoc {
  readonly default: ParamValue;
  readonly doc: string;
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[];
}
export type ParamSpec = Readonly<Record<string, ParamDoc>>;

type Widen<T> = T extends number ? number : T extends string ? string : T extends boolean ? boolean : readonly number[];
/** The typed parameter object a ParamSpec describes. */
export type ParamsOf<S extends ParamSpec> = { readonly [K in keyof S]: Widen<S[K]['default']> };

function kindOf(v: ParamValue): 'number' | 'string' | 'boolean' | 'number[]' {
  if (Array.isArray(v)) return 'number[]';
  return typeof v as 'number' | 'string' | 'boolean';
}

/** Defaults merged with overrides. @throws ConfigError on unknown keys, wrong types, out-of-range values. */
export function resolveParams<S extends ParamSpec>(
  strategy: string,
  spec: S,
  overrides: Readonly<Record<string, ParamValue>> = {},
): ParamsOf<S> {
  const out: Record<string, ParamValue> = {};
  for (const [k, d] of Object.entries(spec)) out[k] = d.default;
  for (const [k, v] of Object.entries(overrides)) {
    const d = spec[k];
    if (!d) {
      throw new ConfigError(`strategy ${strategy}: unknown parameter '${k}'; valid parameters: ${Object.keys(spec).join(', ')}`);
    }
    if (kindOf(v) !== kindOf(d.default)) {
      throw new ConfigError(`strategy ${strategy}: parameter '${k}' must be a ${kindOf(d.default)} (got ${JSON.stringify(v)})`);
    }
    const nums = typeof v === 'number' ? [v] : Array.isArray(v) ? (v as readonly number[]) : [];
    for (const x of nums) {
      if (!Number.isFinite(x) || (d.min !== undefined && x < d.min) || (d.max !== undefined && x > d.max)) {
        throw new ConfigError(`strategy ${strategy}: parameter '${k}' = ${x} outside [${d.min ?? '-inf'}, ${d.max ?? 'inf'}]`);
      }
    }
    if (typeof v === 'string' && d.choices && !d.choices.includes(v)) {
      throw new ConfigError(`strategy ${strategy}: parameter '${k}' = '${v}'; choose one of ${d.choices.join(', ')}`);
    }
    out[k] = v;
  }
  return out as ParamsOf<S>;
}

/** Parses `key=value` strings against a spec (numbers, booleans, comma lists as the default's type). */
export function parseParamAssignments(strategy: string, spec: ParamSpec, items: readonly string[]): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--param ${item}: expected key=value`);
    const key = item.slice(0, eq);
    const raw = item.slice(eq + 1);
    const d = spec[key];
    if (!d) throw new ConfigError(`strategy ${strategy}: unknown parameter '${key}'; valid parameters: ${Object.keys(spec).join(', ')}`);
    switch (kindOf(d.default)) {
      case 'number':
        out[key] = Number(raw);
        break;
      case 'boolean':
        if (raw !== 'true' && raw !== 'false') throw new ConfigError(`--param ${item}: '${key}' takes true or false`);
        out[key] = raw === 'true';
        break;
      case 'number[]':
        out[key] = raw.split(',').map(Number);
        break;
      default:
        out[key] = raw;
    }
  }
  return out;
}

/** A plain copy of resolved params for records. */
export function paramRecord(p: object): ParamMap {
  return { ...(p as Record<string, ParamValue>) };
}
