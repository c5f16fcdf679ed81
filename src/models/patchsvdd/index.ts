import { ConfigError } from '../../errors.js';
import { applySetOverrides, profileConfig } from '../configOverrides.js';
import { defineMethod, type ConfigOverrides } from '../method.js';
import { defaultProtocol } from '../protocol.js';
import { PATCHSVDD_PROFILES, type PatchSvddConfig } from './config.js';
import { PatchSvdd } from './model.js';
import { checkStrides } from './scoring.js';

export { PatchSvdd, meanImage } from './model.js';
export { PATCHSVDD_PROFILES, type PatchSvddConfig } from './config.js';
export { PatchEncoderHier, PatchEncoderSmall, PositionClassifier, NormalizedLinear, PATCHSVDD_PARAMS } from './network.js';
export { patchsvddCostSpec } from './costSpec.js';
import { patchsvddCostSpec } from './costSpec.js';

/** Profile + CLI overrides → config; checks what a long run would otherwise trip over late. */
function resolveConfig(profile: string, o: ConfigOverrides): PatchSvddConfig {
  const base = profileConfig(PATCHSVDD_PROFILES, profile, 'Patch SVDD');
  const c: PatchSvddConfig = { ...base };
  if (o.backbone !== undefined) throw new ConfigError('--backbone: Patch SVDD trains its patch encoder from scratch and has no backbone; drop the option');
  if (o.textures !== undefined) throw new ConfigError('--textures: Patch SVDD uses no synthetic anomalies; drop the option');
  if (o.imageSize !== undefined) {
    c.resize = o.imageSize;
    c.crop = o.imageSize;
  }
  if (o.epochs !== undefined) {
    if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new ConfigError(`--epochs ${o.epochs}: must be a positive integer`);
    c.epochs = o.epochs;
  }
  const out = applySetOverrides(c, o.set, 'patchsvdd');
  validate(out);
  return out;
}

function validate(c: PatchSvddConfig): void {
  if (c.resize !== c.crop) throw new ConfigError('patchsvdd: resize and crop must be equal (patchsvdd.md §2 resizes to a square, no crop)');
  checkStrides(c, c.crop);
  const posInt = ['epochs', 'batchSize', 'repeat', 'testBatchSize', 'keepCheckpoints'] as const;
  for (const k of posInt) if (!Number.isInteger(c[k]) || c[k] < 1) throw new ConfigError(`patchsvdd: ${k} must be a positive integer, got ${c[k]}`);
  if (!(c.lr > 0)) throw new ConfigError(`patchsvdd: lr must be > 0, got ${c.lr}`);
  if (!(c.lambda >= 0)) throw new ConfigError(`patchsvdd: lambda must be ≥ 0, got ${c.lambda}`);
  if (!(c.noiseSigma >= 0)) throw new ConfigError(`patchsvdd: noiseSigma must be ≥ 0, got ${c.noiseSigma}`);
  if (!(c.collapseVariance >= 0)) throw new ConfigError(`patchsvdd: collapseVariance must be ≥ 0, got ${c.collapseVariance}`);
  if (c.collapseAction !== 'error' && c.collapseAction !== 'warn') throw new ConfigError(`patchsvdd: collapseAction must be 'error' or 'warn', got '${String(c.collapseAction)}'`);
}

export const patchsvddMethod = defineMethod<PatchSvddConfig>({
  name: 'patchsvdd',
  paperId: 'patchsvdd',
  displayName: 'Patch SVDD',
  summary: "hierarchical 64/32-px patch encoder trained from scratch (SVDD' + relative-position classification), nearest-train-patch distance at two scales, maps multiplied (Yi & Yoon 2020)",
  usesSyntheticAnomalies: false,
  profiles: PATCHSVDD_PROFILES,
  defaultProfile: 'cpu',
  resolveConfig,
  // patchsvdd.md §2: squash to a square (256), Pillow bicubic (PIL's default filter), no crop;
  // maps at the input size (already 256² in the paper); deterministic scorer.
  costSpec: patchsvddCostSpec,
  protocol: (config) => {
    const p = defaultProtocol(config);
    const data = { ...p.data, resizeMode: 'squash', crop: null, filter: 'pil-bicubic' } as const;
    return { data, evaluation: { ...p.evaluation, data, batchSize: config.testBatchSize } };
  },
  async create(config, env) {
    validate(config);
    const m = new PatchSvdd(config);
    const params = m.nets.encoder.numParameters() + m.nets.cls64.numParameters() + m.nets.cls32.numParameters();
    env.log(`[patchsvdd] encoder + classifiers: ${params.toLocaleString('en-US')} parameters, input ${config.crop}x${config.crop}, λ = ${config.lambda}`);
    return m;
  },
});
