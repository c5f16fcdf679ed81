import { ConfigError } from '../errors.js';
import type { MethodCostSpec } from '../energy/costsTable.js';
import { paperReference, type MethodPaperReference } from '../eval/paperReference.js';
import type { MethodProtocol } from './protocol.js';
import type { AnomalyDetector, LogFn } from './types.js';

/** What the run gives a method to build its networks. */
export interface MethodEnv {
  /** 'pretrained' resolves weights (file, weights folder, hub); 'random' skips them. */
  backboneInit: 'pretrained' | 'random';
  /** Explicit --weights file: must exist and match, else a WeightsError. */
  weightsPath?: string;
  weightsDir?: string;
  log: LogFn;
  /** The run's --seed (initialisation is derived from it). */
  seed?: number;
  /** Called with a loud warning when pretrained weights could not be had. */
  warn: (message: string) => void;
  /** How the backbone was chosen (src/models/backbones/choice.ts), shown in describe() and reports. */
  backboneChoice?: string;
  /**
   * The MVTec AD category the run is for (the requested name, also when synthetic data stands in
   * for it), for methods with per-category rules (GLASS, DDAD, DiffusionAD). Undefined outside a run.
   */
  category?: string;
}

/**
 * What config resolution may depend on besides the profile and the CLI overrides.
 *
 * ```ts
 * const config = method.resolveConfig('paper', { epochs: 10 }, { category: 'bottle' });
 * ```
 */
export interface ResolveContext {
  /** Category of the run (see MethodEnv.category): per-category defaults, e.g. DDAD's w or GLASS' foreground rule. */
  category?: string;
}

/** Config values every method has, read by the data pipeline and the CLI. */
export interface BaseMethodConfig {
  /** Resize target (shorter side) before the centre crop. */
  resize: number;
  /** Square network input size after the centre crop. */
  crop: number;
  /** Training epochs, for methods that train (undefined for memory-bank methods). */
  epochs?: number;
  batchSize: number;
  /** Pretrained backbone, for methods built on one (chosen by src/models/backbones/choice.ts). */
  backbone?: string;
}

export interface ConfigOverrides {
  imageSize?: number;
  epochs?: number;
  backbone?: string;
  /** `--textures DIR`: texture images for methods that paste textures (DRAEM); default procedural. */
  textures?: string;
  /** `--set key=value` pairs applied last (see configOverrides.ts). */
  set?: Readonly<Record<string, string>>;
}

/**
 * One method as every CLI sees it (train.ts, costs.ts, bench): profiles, config resolution and a
 * factory. Its folder under src/models/<name>/ holds the whole story.
 */
export interface MethodDefinition<C extends BaseMethodConfig = BaseMethodConfig> {
  name: string;
  /** Row id in the paper's tables. */
  paperId: string;
  displayName: string;
  summary: string;
  usesSyntheticAnomalies: boolean;
  profiles: Readonly<Record<string, C>>;
  defaultProfile: string;
  /**
   * Profile + CLI overrides (+ the run's category) -> full config (throws ConfigError on bad
   * values). Per-category defaults are applied before `--set`, so the user still has the last word.
   */
  resolveConfig(profile: string, overrides: ConfigOverrides, ctx?: ResolveContext): C;
  create(config: C, env: MethodEnv): Promise<AnomalyDetector & { readonly backboneInit?: string }>;
  /**
   * Data and evaluation protocol for a resolved config (resize filter and mode, crop, ground-truth
   * rule, map resolution, test batch size, stochastic scoring): see protocol.ts; start from
   * `defaultProtocol(config)` and change what the method's reference implementation does differently.
   */
  protocol(config: C): MethodProtocol;
  /** Networks and counting rule of its Table 6 row (experiments/costs.ts); absent = no row yet. */
  costSpec?: MethodCostSpec;
  /** The paper's rows for `paperId` (Tables 1-6, A1-A4), from src/eval/reference/paper-reference.json. */
  paperReference(): MethodPaperReference;
}

/** A definition as a method's index.ts writes it; defineMethod adds what follows from it. */
export type MethodDefinitionInput<C extends BaseMethodConfig> = Omit<MethodDefinition<C>, 'paperReference'>;

/**
 * Completes a method's definition (paperReference from its paperId) and checks it is consistent.
 * The registry holds the results side by side as MethodDefinition<BaseMethodConfig> without casts:
 * `resolveConfig`, `create` and `protocol` are methods, which TypeScript compares bivariantly,
 * and every caller passes a method only the config its own resolveConfig returned.
 *
 * ```ts
 * export const fooMethod = defineMethod<FooConfig>({
 *   name: 'foo', paperId: 'foo', displayName: 'Foo', summary: '…', usesSyntheticAnomalies: true,
 *   profiles: FOO_PROFILES, defaultProfile: 'cpu', resolveConfig, protocol: defaultProtocol,
 *   costSpec: fooCostSpec, create: async (config, env) => new Foo(config, env),
 * });
 * ```
 */
export function defineMethod<C extends BaseMethodConfig>(def: MethodDefinitionInput<C>): MethodDefinition<C> {
  if (!/^[a-z0-9_-]+$/.test(def.name)) throw new ConfigError(`method name '${def.name}' must be lower-case letters, digits, '_' or '-' (it names run folders and CLI arguments)`);
  if (!(def.defaultProfile in def.profiles)) throw new ConfigError(`method '${def.name}': default profile '${def.defaultProfile}' is not one of ${Object.keys(def.profiles).join(', ')}`);
  if (def.costSpec && def.costSpec.method !== def.name) throw new ConfigError(`method '${def.name}': its cost spec is named '${def.costSpec.method}'`);
  return { ...def, paperReference: () => paperReference(def.paperId) };
}
