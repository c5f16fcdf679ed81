import { chooseBackbone, type BackboneChoice } from '../models/backbones/choice.js';
import type { BaseMethodConfig, ConfigOverrides, MethodDefinition, ResolveContext } from '../models/method.js';

export interface RunBackboneOptions {
  weightsPath?: string;
  weightsDir?: string;
  backboneInit: 'pretrained' | 'random';
}

/**
 * A method's config for a run, with its backbone chosen by `chooseBackbone` (paper backbone
 * when its weights are on disk, else the shipped Tiny Darknet) unless the user named one.
 * Methods without a backbone get their config unchanged and `backbone: null`.
 */
export function resolveRunConfig<C extends BaseMethodConfig>(
  method: MethodDefinition<C>,
  profile: string,
  overrides: ConfigOverrides,
  o: RunBackboneOptions,
  ctx: ResolveContext = {},
): { config: C; backbone: BackboneChoice | null } {
  const base = method.resolveConfig(profile, { ...overrides, backbone: undefined }, ctx);
  if (typeof base.backbone !== 'string') return { config: method.resolveConfig(profile, overrides, ctx), backbone: null };
  const choice = chooseBackbone({
    preferred: base.backbone,
    requested: overrides.backbone,
    weightsPath: o.weightsPath,
    weightsDir: o.weightsDir,
    init: o.backboneInit,
  });
  return { config: method.resolveConfig(profile, { ...overrides, backbone: choice.name }, ctx), backbone: choice };
}
