import { ConfigError } from '../../errors.js';
import { applySetOverrides, profileConfig } from '../configOverrides.js';
import { defineMethod, type ConfigOverrides } from '../method.js';
import { riadCostSpec } from './costs.js';
import { defaultProtocol } from '../protocol.js';
import { RIAD_PROFILES, type RiadConfig } from './config.js';
import { TrainMaskSampler } from './masks.js';
import { Riad } from './model.js';

export { Riad } from './model.js';
export { RiadUNet, riadUNetParams } from './network.js';
export { RIAD_PROFILES, type RiadConfig, type MsgmsColour, type RiadSmoothing } from './config.js';
export { riadCostSpec } from './costs.js';

function oddAtLeastOne(v: number): number {
  const r = Math.max(1, Math.round(v));
  return r % 2 === 1 ? r : r + 1;
}

/** Profile + CLI overrides → config; checks everything a long run would otherwise trip over late. */
function resolveConfig(profile: string, o: ConfigOverrides): RiadConfig {
  const base = profileConfig(RIAD_PROFILES, profile, 'RIAD');
  const c: RiadConfig = {
    ...base,
    masks: { strategy: base.masks.strategy, params: { ...base.masks.params } },
    testCellSizes: [...base.testCellSizes],
    lossWeights: { ...base.lossWeights },
    lrMilestones: [...base.lrMilestones],
    smoothing: { ...base.smoothing },
  };
  if (o.backbone !== undefined) throw new ConfigError('--backbone: RIAD trains its U-Net from scratch and has no backbone; drop the option');
  if (o.imageSize !== undefined) {
    if (!Number.isInteger(o.imageSize) || o.imageSize < 32 || o.imageSize % 16 !== 0) {
      throw new ConfigError(`--image-size ${o.imageSize}: RIAD needs a multiple of 16 (four stride-2 stages), at least 32`);
    }
    // Smoothing keeps its size relative to the image (21 px at 256², riad.md §4).
    const f = o.imageSize / base.crop;
    c.smoothing = base.smoothing.kind === 'mean' ? { kind: 'mean', size: oddAtLeastOne(base.smoothing.size * f) } : { kind: 'gaussian', sigma: base.smoothing.sigma * f };
    c.resize = o.imageSize;
    c.crop = o.imageSize;
  }
  if (o.epochs !== undefined) {
    if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new ConfigError(`--epochs ${o.epochs}: must be a positive integer`);
    c.epochs = o.epochs;
  }
  if (o.textures !== undefined) throw new ConfigError('--textures: RIAD inpaints masked regions and pastes no textures; drop the option');
  const out = applySetOverrides(c, o.set, 'riad');
  validate(out);
  return out;
}

function validate(c: RiadConfig): void {
  if (c.crop % 16 !== 0) throw new ConfigError(`RIAD: input ${c.crop} must be a multiple of 16`);
  if (c.resize !== c.crop) throw new ConfigError('RIAD: resize and crop must be equal (riad.md §2 resizes to a square, no crop)');
  if (c.testCellSizes.length === 0 || c.testCellSizes.some((k) => !Number.isInteger(k) || k < 1 || k > c.crop)) {
    throw new ConfigError(`RIAD: testCellSizes must be integers in [1, ${c.crop}], got [${c.testCellSizes.join(', ')}]`);
  }
  if (!Number.isInteger(c.testDraws) || c.testDraws < 1) throw new ConfigError('RIAD: testDraws must be a positive integer');
  if (c.smoothing.kind === 'mean' && (c.smoothing.size < 1 || c.smoothing.size % 2 !== 1)) throw new ConfigError('RIAD: mean smoothing size must be odd');
  // Fails early on an unknown or non-inpaint strategy or bad parameters.
  new TrainMaskSampler(c.masks.strategy, c.masks.params);
}

export const riadMethod = defineMethod<RiadConfig>({
  name: 'riad',
  paperId: 'riad',
  displayName: 'RIAD',
  summary: 'U-Net inpainting of 3 disjoint random cell masks (k ∈ {2,4,8,16}), MSE + MSGMS + SSIM loss, MSGMS anomaly map (Zavrtanik et al. 2021)',
  usesSyntheticAnomalies: false,
  profiles: RIAD_PROFILES,
  defaultProfile: 'cpu',
  resolveConfig,
  costSpec: riadCostSpec,
  // riad.md §2: squash to a square, no crop, Pillow-exact bilinear; scoring uses fixed seeded
  // partitions (config.evalSeed), so the scorer is deterministic.
  protocol: (config) => {
    const p = defaultProtocol(config);
    const data = { ...p.data, resizeMode: 'squash', crop: null } as const;
    return { data, evaluation: { ...p.evaluation, data } };
  },
  async create(config, env) {
    validate(config);
    const r = new Riad(config);
    env.log(`[riad] U-Net width ${config.width}: ${r.net.numParameters().toLocaleString('en-US')} parameters, input ${config.crop}x${config.crop}`);
    return r;
  },
});
