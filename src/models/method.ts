import type { AnomalyDetector } from './types.js';
import type { LogFn } from './types.js';

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
  /** Profile + CLI overrides -> full config (throws ConfigError on bad values). */
  resolveConfig(profile: string, overrides: ConfigOverrides): C;
  create(config: C, env: MethodEnv): Promise<AnomalyDetector & { readonly backboneInit?: string }>;
}
