import { ConfigError } from '../../errors.js';
import { createBackbone } from '../backbones/index.js';
import { defineMethod, type ConfigOverrides } from '../method.js';
import { patchcoreCostSpec } from './costSpec.js';
import { defaultProtocol } from '../protocol.js';
import { applySetOverrides, profileConfig, overrideBackbone } from '../configOverrides.js';
import { PATCHCORE_PROFILES, type PatchCoreConfig } from './config.js';
import { PatchCore } from './model.js';

export { PatchCore } from './model.js';
export { patchcoreCostSpec, resnetPartParams } from './costSpec.js';
export { PATCHCORE_PROFILES, type PatchCoreConfig } from './config.js';

function resolveConfig(profile: string, o: ConfigOverrides): PatchCoreConfig {
  const base = profileConfig(PATCHCORE_PROFILES, profile, 'PatchCore');
  const c: PatchCoreConfig = { ...base, layers: [...base.layers] };
  overrideBackbone(c, o.backbone);
  if (o.imageSize !== undefined) {
    if (!Number.isInteger(o.imageSize) || o.imageSize < 32) throw new ConfigError(`--image-size ${o.imageSize}: must be an integer >= 32`);
    // Keep the profile's resize/crop ratio (256/224 in the official pipeline).
    c.resize = Math.round((o.imageSize * base.resize) / base.crop);
    c.crop = o.imageSize;
    c.blurSigma = (base.blurSigma * o.imageSize) / base.crop;
  }
  if (o.textures !== undefined) throw new ConfigError('--textures: PatchCore uses no synthetic anomalies; drop the option');
  if (o.epochs !== undefined && o.epochs !== 1) {
    throw new ConfigError('--epochs: PatchCore does not train (it fits a memory bank in one pass); drop the option');
  }
  const out = applySetOverrides(c, o.set, 'patchcore');
  if (out.distance !== 'squared-l2' && out.distance !== 'l2') {
    throw new ConfigError(`--set distance=${out.distance}: choose squared-l2 (official, faiss IndexFlatL2) or l2 (anomalib)`);
  }
  if (!(out.coresetRatio > 0 && out.coresetRatio <= 1)) throw new ConfigError(`--set coresetRatio=${out.coresetRatio}: must be in (0, 1]`);
  return out;
}

export const patchcoreMethod = defineMethod<PatchCoreConfig>({
  name: 'patchcore',
  paperId: 'patchcore',
  displayName: 'PatchCore',
  summary: 'frozen WideResNet-50-2 patch features, 10% greedy coreset memory bank, nearest-neighbour distance (Roth et al. 2022)',
  usesSyntheticAnomalies: false,
  profiles: PATCHCORE_PROFILES,
  defaultProfile: 'cpu',
  resolveConfig,
  costSpec: patchcoreCostSpec,
  // torchvision Resize(resize) + CenterCrop(crop), Pillow bilinear (patchcore.md §2): the default.
  protocol: (config) => defaultProtocol(config),
  async create(config, env) {
    const bb = await createBackbone(config.backbone, {
      init: env.backboneInit,
      weights: env.weightsPath,
      weightsDir: env.weightsDir,
      seed: env.seed,
      featureLayers: config.layers,
    });
    if (bb.warning) env.warn(bb.warning);
    env.log(`[patchcore] backbone ${config.backbone} (${bb.initUsed}): ${bb.source}`);
    return new PatchCore(config, bb.module, bb.initUsed, env.backboneChoice);
  },
});
