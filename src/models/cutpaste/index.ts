import { ConfigError } from '../../errors.js';
import { createBackbone } from '../backbones/index.js';
import type { ResNet } from '../backbones/resnet.js';
import { applySetOverrides, profileConfig } from '../configOverrides.js';
import { defineMethod, type ConfigOverrides } from '../method.js';
import { defaultProtocol } from '../protocol.js';
import { CUTPASTE_PROFILES, PAPER_SCAR, scarParamsFor, type CutPasteConfig } from './config.js';
import { CutPaste, validateConfig } from './model.js';

export { CutPaste, validateConfig, type CutPasteBatch } from './model.js';
export { CutPasteNet, cutpasteHeadParams, type CutPasteOutput, type CutPasteFeatures } from './network.js';
export { GaussianDensity, l2NormalizeRows } from './density.js';
export { CUTPASTE_PROFILES, CUTPASTE_VARIANTS, PAPER_SCAR, scarParamsFor, numClasses, type CutPasteConfig, type CutPasteVariantName, type CutPasteMapLayer } from './config.js';
export { cutpasteCostSpec } from './costSpec.js';
import { cutpasteCostSpec } from './costSpec.js';

function resolveConfig(profile: string, o: ConfigOverrides): CutPasteConfig {
  const base = profileConfig(CUTPASTE_PROFILES, profile, 'CutPaste');
  const c: CutPasteConfig = { ...base, augmentParams: { ...base.augmentParams } };
  if (o.backbone !== undefined && o.backbone !== 'resnet18') {
    throw new ConfigError(`--backbone ${o.backbone}: CutPaste trains a ResNet-18 (cutpaste.md §2); drop the option or pass resnet18`);
  }
  if (o.imageSize !== undefined) {
    if (!Number.isInteger(o.imageSize) || o.imageSize < 32) throw new ConfigError(`--image-size ${o.imageSize}: CutPaste needs an integer of at least 32 (ResNet-18 stride 32)`);
    // Scars keep their share of the image (paper: pixels at 256²); explicit --set values come later.
    const kept = Object.entries(c.augmentParams).filter(([k]) => !(k in PAPER_SCAR));
    c.augmentParams = { ...Object.fromEntries(kept), ...scarParamsFor(o.imageSize) };
    c.resize = o.imageSize;
    c.crop = o.imageSize;
  }
  if (o.epochs !== undefined) {
    if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new ConfigError(`--epochs ${o.epochs}: must be a positive integer (an epoch is stepsPerEpoch steps)`);
    c.epochs = o.epochs;
  }
  if (o.textures !== undefined) throw new ConfigError('--textures: CutPaste pastes patches of the image itself, no textures; drop the option');
  const out = applySetOverrides(c, o.set, 'cutpaste');
  validateConfig(out);
  return out;
}

export const cutpasteMethod = defineMethod<CutPasteConfig>({
  name: 'cutpaste',
  paperId: 'cutpaste',
  displayName: 'CutPaste',
  summary: 'ResNet-18 trained to classify normal / CutPaste / CutPaste-Scar views (3-way); Gaussian density (Ledoit–Wolf) on pooled features, Mahalanobis score (Li et al. 2021)',
  usesSyntheticAnomalies: true,
  profiles: CUTPASTE_PROFILES,
  defaultProfile: 'cpu',
  resolveConfig,
  costSpec: cutpasteCostSpec,
  // cutpaste.md §2: the whole image squashed to a square, no crop, Pillow's default bicubic filter
  // (Runinho); ImageNet normalisation happens inside the network. The scorer is deterministic.
  protocol: (config) => {
    const p = defaultProtocol(config);
    const data = { ...p.data, resizeMode: 'squash', crop: null, filter: 'pil-bicubic' } as const;
    return { data, evaluation: { ...p.evaluation, data, batchSize: config.evalBatchSize } };
  },
  async create(config, env) {
    validateConfig(config);
    // Scratch is the paper's main setting (Table 1); ImageNet weights when the config asks for
    // them or --weights names a file (torchvision resnet18 names; the file's fc is ignored).
    const imagenet = config.backboneInit === 'imagenet' || env.weightsPath !== undefined;
    if (imagenet && env.backboneInit === 'random' && env.weightsPath === undefined) {
      throw new ConfigError("CutPaste: backboneInit 'imagenet' together with --backbone-init random; drop one of them");
    }
    const bb = await createBackbone('resnet18', {
      init: imagenet ? 'pretrained' : 'random',
      weights: env.weightsPath,
      weightsDir: env.weightsDir,
      seed: env.seed,
      featureLayers: ['layer3', 'layer4'],
      trainable: true,
    });
    if (bb.warning) env.warn(bb.warning);
    const init = !imagenet ? 'scratch' : bb.initUsed === 'pretrained' ? 'pretrained' : 'random-init';
    env.log(`[cutpaste] ResNet-18 ${init === 'scratch' ? 'from scratch (paper Table 1)' : `${bb.initUsed}: ${bb.source}`}`);
    return new CutPaste(config, bb.module as ResNet, init);
  },
});
