import type * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';

/**
 * Shared contract of every synthetic-anomaly / input-masking strategy (README.md in this folder
 * lists them with their parameters).
 *
 * Tensor conventions (the whole folder): images are tf.Tensor4D NHWC float32 in [0, 1] (RGB,
 * C = 3; C = 1 also works where noted), masks are [N, H, W, 1] float32 holding exactly 0 or 1,
 * labels are [N] float32. Every tensor a strategy returns is owned by the caller (dispose it, e.g.
 * with `disposeBatch`); nothing else is left allocated.
 */

/** A scalar or small-vector parameter value, settable from a config file or `--param k=v`. */
export type ParamValue = number | string | boolean | readonly number[];
export type ParamMap = Readonly<Record<string, ParamValue>>;

/** Per-output-sample record of what was drawn (β, Perlin scales, patch box...), for tests and logs. */
export type SampleMeta = Readonly<Record<string, number | string | boolean | readonly number[]>>;

/** Input to an image strategy: a batch of normal images and, optionally, their foreground masks. */
export interface AugmentInput {
  /** [N, H, W, C] normal images in [0, 1]. */
  images: tf.Tensor4D;
  /**
   * [N, H, W, 1] foreground masks (1 = object). Strategies that restrict anomalies to the object
   * (glass-las, diffusionad) resolve a missing mask with `foreground.ts` (all ones for textures, a
   * simple estimate for objects, see README.md §Foreground).
   */
  foreground?: tf.Tensor4D;
}

/**
 * Output of an image strategy. M = N · outputsPerInput samples; `clean[i]` is the normal image
 * `images[i]` was made from (identical to the input except where the strategy itself alters the
 * normal image, e.g. DRAEM's rotation of the clean image or CutPaste's pre-jitter): it is the
 * reconstruction target, and `masks` mark exactly the pixels where `images` differs from `clean`
 * by construction.
 */
export interface AnomalyBatch {
  /** [M, H, W, C] images with synthetic anomalies (or clean / masked samples). */
  images: tf.Tensor4D;
  /** [M, H, W, 1] 0/1 anomaly mask (for inpainting strategies: 1 = hidden pixel). */
  masks: tf.Tensor4D;
  /** [M] 0 = normal; > 0 = anomalous (multi-class strategies number their classes 1..K). */
  labels: tf.Tensor1D;
  /** [M, H, W, C] aligned normal image (reconstruction target). */
  clean: tf.Tensor4D;
  /** Index of the input image each output sample was made from. */
  source: Int32Array;
  /** What was drawn for each output sample. */
  meta: SampleMeta[];
}

/** 'anomaly' strategies synthesise defects; 'inpaint' strategies hide pixels (RIAD) and never label anything anomalous. */
export type ImageStrategyRole = 'anomaly' | 'inpaint';

/** What a run records about its strategy (the texture source is itself an ablation axis). */
export interface StrategyRecord {
  strategy: string;
  kind: 'image' | 'feature';
  params: ParamMap;
  textureSource?: TextureSourceRecord;
  foreground?: string;
}

export interface ImageStrategy {
  readonly kind: 'image';
  readonly role: ImageStrategyRole;
  readonly name: string;
  /** Effective parameters (defaults merged with overrides). */
  readonly params: ParamMap;
  /** Output samples per input image (e.g. 3 for cutpaste-3way with its normal view). */
  readonly outputsPerInput: number;
  /** Deterministic in (input, rng state); advances `rng`. Disposes nothing it was given. */
  generate(input: AugmentInput, rng: Rng): Promise<AnomalyBatch>;
  record(): StrategyRecord;
}

/**
 * A patch discriminator as GAS sees it: rows of features → anomaly probability per row (shape
 * [rows] or [rows, 1], values in (0, 1), normal = 0). It may be called in training mode.
 */
export type FeatureDiscriminator = (features: tf.Tensor2D) => tf.Tensor;

export interface FeatureContext {
  /** Hypersphere mode: centres c, [rows, D] or [P, D] with rows a multiple of P (one per patch position). */
  center?: tf.Tensor2D;
  /** Hypersphere mode: radius r_t (GLASS: 0.75-quantile of normal distances to c). */
  radius?: number;
}

/** Feature-level strategy (GLASS GAS): perturbs normal feature rows into hard synthetic anomalies. */
export interface FeatureStrategy {
  readonly kind: 'feature';
  readonly name: string;
  readonly params: ParamMap;
  /** Returns new perturbed rows G, [rows, D], detached from the graph; disposes nothing it was given. */
  perturb(features: tf.Tensor2D, discriminator: FeatureDiscriminator, rng: Rng, ctx?: FeatureContext): tf.Tensor2D;
  record(): StrategyRecord;
}

export type Strategy = ImageStrategy | FeatureStrategy;

export type TextureSourceRecord =
  | { kind: 'folder'; dir: string; files: number }
  | { kind: 'procedural'; families: readonly string[] };

/** How a texture is brought to the image size: 'fill' squashes (DRAEM), 'cover' resizes the shorter side and centre-crops (GLASS). */
export type TextureFit = 'fill' | 'cover';

/** Where anomaly textures come from (README.md §Texture sources). */
export interface TextureSource {
  readonly kind: 'folder' | 'procedural';
  /** One texture, [h, w, 3] HWC float32 in [0, 1]; deterministic in the rng draws. */
  sample(rng: Rng, h: number, w: number, fit: TextureFit): Promise<Float32Array>;
  record(): TextureSourceRecord;
}

/** Options every strategy factory receives. */
export interface StrategyOptions {
  /** Parameter overrides; unknown keys are a ConfigError. */
  params?: Readonly<Record<string, ParamValue>>;
  /** Texture source for texture-based strategies; default: procedural. */
  textures?: TextureSource;
  /** MVTec category (decides texture vs object handling for foreground masks and DiffusionAD). */
  category?: string;
}

export function disposeBatch(b: AnomalyBatch): void {
  b.images.dispose();
  b.masks.dispose();
  b.labels.dispose();
  b.clean.dispose();
}
