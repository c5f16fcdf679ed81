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
}
