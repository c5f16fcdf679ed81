/** Synthetic-anomaly strategies and their registry (see README.md in this folder). */
export * from './types.js';
export * from './registry.js';
export { resolveParams, parseParamAssignments, type ParamDoc, type ParamSpec, type ParamsOf } from './params.js';
export { perlinNoise, perlinMask, rotatedPerlin, fractalPerlin, PERLIN_MASK_DEFAULTS, type PerlinMaskParams } from './perlin.js';
export {
  FolderTextureSource,
  ProceduralTextureSource,
  PROCEDURAL_FAMILIES,
  createTextureSource,
  proceduralTexture,
  type ProceduralFamily,
} from './textures.js';
export { estimateForeground, foregroundMasks, isTextureCategory, readForegroundMasks, resolveForeground } from './foreground.js';
export { DRAEM_AUGMENTERS, GLASS_AUGMENTERS, randomAugment, type Augmenter } from './augmenters.js';
export { gasPerturb, projectToShell, expandCenter, type GasParams } from './glass-gas.js';
export { disjointMasks } from './riad.js';
export { stripShuffle } from './diffusionad.js';
export { pooledNonEmpty } from './glass-las.js';
