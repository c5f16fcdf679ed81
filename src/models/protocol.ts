import { DEFAULT_RESIZE_FILTER, type ImageTransform, type ResizeFilter } from '../data/imageIO.js';
import { ConfigError } from '../errors.js';
import type { BaseMethodConfig } from './method.js';

/**
 * A method's data and evaluation protocol: how images become network inputs, how ground truth is
 * brought to the anomaly maps, and how scoring is batched and seeded. Each method declares its
 * own (MethodDefinition.protocol), because the ten reference implementations differ exactly here
 * (paper sec. 3.2: "each method keeps its own preprocessing"); trainAndEvaluate and scoreImages
 * read nothing else.
 *
 * ```ts
 * // DDAD-like: squash to 256, Pillow bicubic, no crop; stochastic scorer, 16 images per call
 * protocol: (c) => {
 *   const p = defaultProtocol(c);
 *   const data = { ...p.data, resizeMode: 'squash', filter: 'pil-bicubic', crop: null } as const;
 *   return { data, evaluation: { ...p.evaluation, data, batchSize: 16, stochastic: true } };
 * },
 * ```
 */
export interface MethodProtocol {
  /** Training images (and validation images unless `evaluation.data` differs). */
  data: DataProtocol;
  evaluation: EvaluationProtocol;
}

/** Image geometry and resampling (the data layer's ImageTransform, named by what the specs say). */
export interface DataProtocol {
  /** Resize target in pixels: the shorter side ('keep-aspect') or both sides ('squash'). */
  resize: number;
  /**
   * 'keep-aspect': torchvision `Resize(int)` (shorter side = resize); 'squash': `Resize((s, s))`,
   * stretching non-square images. MVTec AD images are square, where both agree.
   */
  resizeMode: 'keep-aspect' | 'squash';
  /** Centre crop after resizing (torchvision `CenterCrop`); null = none. */
  crop: number | null;
  /** Resize filter (src/data/imageIO.ts ResizeFilter: Pillow-exact, OpenCV-like or sharp kernels). */
  filter: ResizeFilter;
}

export interface EvaluationProtocol {
  /** Geometry of validation and test images; their ground-truth masks get the same resize (nearest) and crop. */
  data: DataProtocol;
  /**
   * Ground-truth rule: masks are resized with nearest neighbour (labels never blur), cropped like
   * the image, and anomalous where value > maskThreshold × full scale (0.5: > 127 for 8-bit).
   */
  maskThreshold: number;
  /**
   * Resolution at which maps meet ground truth: 'input' = the map predict() returns at the network
   * input size; N = maps resized bilinearly (half-pixel centres) to N×N and masks nearest-resized
   * to N×N, e.g. for methods evaluated at a fixed 256² whatever their input.
   */
  mapSize: 'input' | number;
  /** Images per predict() call when scoring validation and test sets (and the batch-N timing). */
  batchSize: number;
  /**
   * The scorer draws random numbers (RIAD with fresh partitions, diffusion noise): predict() then
   * gets `{ rng }`, a stream that is a pure function of (run seed, set, first image of the batch),
   * so scores are reproducible for a given seed and batch size.
   */
  stochastic: boolean;
}

/**
 * The behaviour every method had before protocols were declared: resize the shorter side to
 * `config.resize` (Pillow-exact bilinear), centre-crop `config.crop`, masks nearest + > 127,
 * maps at the input size, scoring in batches of `config.batchSize`, deterministic scorer.
 */
export function defaultProtocol(config: BaseMethodConfig): MethodProtocol {
  const data: DataProtocol = { resize: config.resize, resizeMode: 'keep-aspect', crop: config.crop, filter: DEFAULT_RESIZE_FILTER };
  return { data, evaluation: { data, maskThreshold: 0.5, mapSize: 'input', batchSize: config.batchSize, stochastic: false } };
}

/**
 * The data layer's transform for a geometry (and the evaluation's mask threshold). Fields at
 * their defaults are left out, so the default protocol gives exactly the transform (and the
 * preprocessing-cache keys) of before.
 */
export function transformOf(d: DataProtocol, maskThreshold = 0.5): ImageTransform {
  return {
    size: d.resize,
    keepAspect: d.resizeMode === 'keep-aspect',
    ...(d.crop !== null ? { crop: d.crop } : {}),
    ...(d.filter !== DEFAULT_RESIZE_FILTER ? { filter: d.filter } : {}),
    ...(maskThreshold !== 0.5 ? { maskThreshold } : {}),
  };
}

/** @throws ConfigError naming the method and field for a protocol that cannot run. */
export function validateProtocol(method: string, p: MethodProtocol): void {
  const bad = (what: string): never => {
    throw new ConfigError(`method '${method}' declares an invalid protocol: ${what}`);
  };
  for (const [where, d] of [['data', p.data], ['evaluation.data', p.evaluation.data]] as const) {
    if (!Number.isInteger(d.resize) || d.resize < 1) bad(`${where}.resize must be a positive integer, got ${d.resize}`);
    if (d.resizeMode !== 'keep-aspect' && d.resizeMode !== 'squash') bad(`${where}.resizeMode must be 'keep-aspect' or 'squash', got '${String(d.resizeMode)}'`);
    if (d.crop !== null && (!Number.isInteger(d.crop) || d.crop < 1 || d.crop > d.resize)) bad(`${where}.crop must be null or an integer in [1, resize = ${d.resize}], got ${d.crop}`);
  }
  const e = p.evaluation;
  if (!(e.maskThreshold >= 0 && e.maskThreshold < 1)) bad(`evaluation.maskThreshold must be in [0, 1), got ${e.maskThreshold}`);
  if (e.mapSize !== 'input' && (!Number.isInteger(e.mapSize) || e.mapSize < 1)) bad(`evaluation.mapSize must be 'input' or a positive integer, got ${e.mapSize}`);
  if (!Number.isInteger(e.batchSize) || e.batchSize < 1) bad(`evaluation.batchSize must be a positive integer, got ${e.batchSize}`);
}
