import { ConfigError } from '../errors.js';
import { getBackboneSpec } from './backbones/index.js';

/** A method's named profile (`--profile`), or a ConfigError listing the ones it has. */
export function profileConfig<C>(profiles: Readonly<Record<string, C>>, profile: string, displayName: string): C {
  const base = (profiles as Readonly<Record<string, C | undefined>>)[profile];
  if (!base) throw new ConfigError(`--profile ${profile}: ${displayName} has profiles ${Object.keys(profiles).join(', ')}`);
  return base;
}

/** `--backbone NAME` for feature-extractor methods: the backbone and its default taps replace the profile's. */
export function overrideBackbone(c: { backbone: string; layers: string[] }, requested: string | undefined): void {
  if (!requested || requested === c.backbone) return;
  const spec = getBackboneSpec(requested);
  c.backbone = spec.name;
  c.layers = [...spec.featureLayers];
}

/**
 * `--set key=value` overrides of any scalar config field, for ablations (e.g.
 * `--set coresetRatio=0.1`). Values are parsed by the type the field already has; unknown keys
 * and unparsable values are errors naming the key and the allowed ones, so a typo never runs
 * silently with the default.
 */
export function parseSetOptions(items: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set ${item}: expected key=value`);
    out[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  return out;
}

export function applySetOverrides<C extends object>(config: C, set: Readonly<Record<string, string>> | undefined, method: string): C {
  if (!set) return config;
  const out = { ...config } as Record<string, unknown>;
  const scalarKeys = Object.keys(out).filter((k) => ['number', 'string', 'boolean'].includes(typeof out[k]));
  for (const [key, raw] of Object.entries(set)) {
    if (!(key in out)) {
      throw new ConfigError(`--set ${key}=${raw}: ${method} has no config field '${key}'; settable fields: ${scalarKeys.join(', ')}`);
    }
    const current = out[key];
    if (typeof current === 'number') {
      const v = Number(raw);
      if (raw === '' || !Number.isFinite(v)) throw new ConfigError(`--set ${key}=${raw}: expected a number`);
      out[key] = v;
    } else if (typeof current === 'boolean') {
      if (raw !== 'true' && raw !== 'false') throw new ConfigError(`--set ${key}=${raw}: expected true or false`);
      out[key] = raw === 'true';
    } else if (typeof current === 'string') {
      out[key] = raw;
    } else {
      throw new ConfigError(`--set ${key}: only scalar fields can be set (${key} is ${Array.isArray(current) ? 'a list' : typeof current})`);
    }
  }
  return out as C;
}
