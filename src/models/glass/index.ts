import { ConfigError } from '../../errors.js';
import { getStrategyEntry } from '../../augment/registry.js';
import { setInitSeed } from '../../nn/init.js';
import { createBackbone } from '../backbones/index.js';
import { applySetOverrides, profileConfig, overrideBackbone } from '../configOverrides.js';
import { defineMethod, type ConfigOverrides, type ResolveContext } from '../method.js';
import { defaultProtocol } from '../protocol.js';
import { GLASS_DISTRIBUTION, GLASS_PROFILES, type GlassConfig, type GlassDistribution } from './config.js';
import { glassCostSpec } from './costSpec.js';
import { Glass } from './model.js';

export { Glass } from './model.js';
export { GlassAdaptor, GlassDiscriminator, glassTrainableParams } from './network.js';
export { GLASS_PROFILES, GLASS_DISTRIBUTION, type GlassConfig, type GlassDistribution } from './config.js';
export { glassCostSpec } from './costSpec.js';
export { glassLoss, glassFocalLoss, maskToGrid, quantileLinear } from './objective.js';

/** Categories the official code resizes to 329 before the 288 crop (glass.md §2). */
const LARGER_RESIZE = new Set(['wood', 'toothbrush']);

/**
 * Profile + CLI overrides + category → config. Per-category rules (glass.md §2-3) come before
 * `--set`: the manifold/hypersphere table and the 329/288 resize of wood and toothbrush. An
 * unknown category (synthetic data, a new dataset) keeps the profile's 'manifold' (the majority
 * class and the one that needs no centre); `--set distribution=hypersphere` overrides it.
 */
function resolveConfig(profile: string, o: ConfigOverrides, ctx: ResolveContext = {}): GlassConfig {
  const base = profileConfig(GLASS_PROFILES, profile, 'GLASS');
  const c: GlassConfig = { ...base, layers: [...base.layers] };
  overrideBackbone(c, o.backbone);
  if (o.imageSize !== undefined) {
    if (!Number.isInteger(o.imageSize) || o.imageSize < 32) throw new ConfigError(`--image-size ${o.imageSize}: must be an integer >= 32`);
    c.crop = o.imageSize;
    c.resize = o.imageSize;
    c.blurSigma = (base.blurSigma * o.imageSize) / base.crop;
  }
  if (o.epochs !== undefined) {
    if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new ConfigError(`--epochs ${o.epochs}: must be a positive integer`);
    c.epochs = o.epochs;
  }
  if (o.textures !== undefined) c.texturesDir = o.textures;
  const cat = ctx.category;
  if (cat !== undefined) {
    const d = GLASS_DISTRIBUTION[cat];
    if (d) c.distribution = d;
    if (LARGER_RESIZE.has(cat)) c.resize = Math.round((c.crop * 329) / 288);
  }
  const out = applySetOverrides(c, o.set, 'glass');
  validate(out);
  return out;
}

function validate(c: GlassConfig): void {
  const dists: readonly GlassDistribution[] = ['manifold', 'hypersphere'];
  if (!dists.includes(c.distribution)) throw new ConfigError(`GLASS: distribution must be manifold or hypersphere, got '${c.distribution}'`);
  for (const k of ['pretrainDim', 'embedDim', 'discHidden', 'batchSize', 'epochs', 'gasProjectEvery', 'patchSize'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new ConfigError(`GLASS: ${k} must be a positive integer, got ${c[k]}`);
  }
  if (!Number.isInteger(c.gasSteps) || c.gasSteps < 0) throw new ConfigError(`GLASS: gasSteps must be an integer >= 0, got ${c.gasSteps}`);
  for (const k of ['radiusQuantile', 'ohemQuantile'] as const) {
    if (!(c[k] >= 0 && c[k] <= 1)) throw new ConfigError(`GLASS: ${k} must lie in [0, 1], got ${c[k]}`);
  }
  if (c.resize < c.crop) throw new ConfigError(`GLASS: resize ${c.resize} is smaller than crop ${c.crop}`);
  if (!(c.blurSigma > 0)) throw new ConfigError(`GLASS: blurSigma must be > 0, got ${c.blurSigma}`);
  const entry = getStrategyEntry(c.anomalyStrategy);
  if (entry.kind !== 'image') throw new ConfigError(`GLASS: anomalyStrategy '${c.anomalyStrategy}' is a ${entry.kind} strategy; LAS needs an image strategy (glass-las)`);
}

export const glassMethod = defineMethod<GlassConfig>({
  name: 'glass',
  paperId: 'glass',
  displayName: 'GLASS',
  summary: 'frozen WRN-50-2 patch features, adaptor + discriminator trained on gradient-ascent (GAS) and local (LAS) synthetic anomalies (Chen et al. 2024)',
  usesSyntheticAnomalies: true,
  profiles: GLASS_PROFILES,
  defaultProfile: 'cpu',
  resolveConfig,
  costSpec: glassCostSpec,
  // glass.md §2: Resize(shorter side) + CenterCrop, bilinear: the default protocol.
  protocol: (config) => defaultProtocol(config),
  async create(config, env) {
    validate(config);
    const bb = await createBackbone(config.backbone, {
      init: env.backboneInit,
      weights: env.weightsPath,
      weightsDir: env.weightsDir,
      seed: env.seed,
      featureLayers: config.layers,
    });
    if (bb.warning) env.warn(bb.warning);
    env.log(`[glass] backbone ${config.backbone} (${bb.initUsed}): ${bb.source}`);
    setInitSeed(`glass/${env.seed ?? 0}`);
    const g = new Glass(config, bb.module, bb.initUsed, env.backboneChoice, env.category);
    env.log(`[glass] ${config.distribution} GAS (category ${env.category ?? 'none'}), embedding ${config.embedDim}, adaptor+discriminator ${(g.adaptor.numParameters() + g.discriminator.numParameters()).toLocaleString('en-US')} parameters`);
    return g;
  },
});
