import { ConfigError } from '../../errors.js';
import { applySetOverrides, profileConfig } from '../configOverrides.js';
import { defineMethod, type ConfigOverrides } from '../method.js';
import { draemCostSpec } from './costSpec.js';
import { defaultProtocol } from '../protocol.js';
import { DRAEM_PROFILES, scaledScoreFilter, type DraemConfig } from './config.js';
import { Draem, validateConfig } from './model.js';

export { Draem, type DraemFitSummary, type DraemHooks } from './model.js';
export { DRAEM_PROFILES, scaledScoreFilter, type DraemConfig, type DraemProfile } from './config.js';
export { draemCostSpec } from './costSpec.js';
export { draemLoss, type DraemLossTerms } from './loss.js';
export { anomalyMap, imageScores } from './scoring.js';
export * from './network.js';

function resolveConfig(profile: string, o: ConfigOverrides): DraemConfig {
  const base = profileConfig(DRAEM_PROFILES, profile, 'DRAEM');
  const c: DraemConfig = { ...base, anomalyParams: { ...base.anomalyParams } };
  if (o.backbone !== undefined) {
    throw new ConfigError('--backbone: DRAEM has no pretrained backbone (both networks train from scratch); drop the option');
  }
  if (o.imageSize !== undefined) {
    if (!Number.isInteger(o.imageSize) || o.imageSize < 32 || o.imageSize % 32 !== 0) {
      throw new ConfigError(`--image-size ${o.imageSize}: DRAEM needs a multiple of 32 (its segmenter pools 5 times), e.g. 64, 96, 128, 256`);
    }
    // DRAEM squashes the image to the network size (no crop, draem.md §2); the score filter keeps
    // its share of the image (21 px at 256).
    c.resize = o.imageSize;
    c.crop = o.imageSize;
    c.scoreFilterSize = scaledScoreFilter(o.imageSize);
  }
  if (o.epochs !== undefined) {
    if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new ConfigError(`--epochs ${o.epochs}: must be a positive integer`);
    c.epochs = o.epochs;
  }
  if (o.textures !== undefined) c.texturesDir = o.textures;
  const out = applySetOverrides(c, o.set, 'draem');
  validateConfig(out);
  return out;
}

export const draemMethod = defineMethod<DraemConfig>({
  name: 'draem',
  paperId: 'draem',
  displayName: 'DRAEM',
  summary: 'reconstructive autoencoder + discriminative U-Net trained on Perlin × texture synthetic anomalies; max of the mean-filtered segmentation map (Zavrtanik et al. 2021)',
  usesSyntheticAnomalies: true,
  profiles: DRAEM_PROFILES,
  defaultProfile: 'cpu',
  resolveConfig,
  costSpec: draemCostSpec,
  // draem.md §2: squash to the network size, no crop. The official loader resizes with OpenCV
  // INTER_LINEAR; we keep Pillow-exact bilinear (what every DRAEM number so far was measured
  // with; 'cv2-bilinear' is available). MVTec images are square, so squash = keep-aspect here.
  protocol: (config) => {
    const p = defaultProtocol(config);
    const data = { ...p.data, resizeMode: 'squash', crop: null } as const;
    return { data, evaluation: { ...p.evaluation, data } };
  },
  async create(config, env) {
    validateConfig(config);
    const d = new Draem(config);
    env.log(
      `[draem] networks built: reconstructive width ${config.reconstructiveWidth}, discriminative width ${config.discriminativeWidth}, ` +
        `${(d.numParameters() / 1e6).toFixed(2)} M parameters, random init (DRAEM trains from scratch)`,
    );
    return d;
  },
});
